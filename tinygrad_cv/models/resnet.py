"""ResNet (He et al., 2015): stacks of residual blocks, y = relu(F(x) + shortcut(x)).

The network is split into a *body* (stem and four stages, the part a U-Net or Mask R-CNN reuses as
an encoder) and a *head* (global average pool and a linear layer). ``layer_groups()`` cuts it into
three groups (early body, late body, head) for freezing and discriminative learning rates.
"""
from .. import functional as F
from .. import nn


def conv_bn(in_channels, out_channels, kernel_size=3, stride=1, relu=True):
    """Convolution (no bias: batch norm has one) + BatchNorm2d (+ ReLU)."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
              nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


def shortcut(in_channels, out_channels, stride):
    """Identity when shapes agree; otherwise a strided 1x1 convolution + batch norm."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv_bn(in_channels, out_channels, kernel_size=1, stride=stride, relu=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""
    expansion = 1

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.convs = nn.Sequential(conv_bn(in_channels, planes, 3, stride), conv_bn(planes, planes, 3, relu=False))
        self.shortcut = shortcut(in_channels, planes, stride)

    def forward(self, x):
        return F.relu(self.convs(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand to 4x the planes, plus the shortcut."""
    expansion = 4

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        out_channels = planes * self.expansion
        self.convs = nn.Sequential(conv_bn(in_channels, planes, 1), conv_bn(planes, planes, 3, stride),
                                   conv_bn(planes, out_channels, 1, relu=False))
        self.shortcut = shortcut(in_channels, out_channels, stride)

    def forward(self, x):
        return F.relu(self.convs(x) + self.shortcut(x))


def make_stem(in_channels, width, small_images):
    """For small images (<= 128 px) one stride-1 3x3 convolution keeps the resolution; the ImageNet
    stem (7x7 stride 2, then a stride-2 max-pool) divides it by 4 at once."""
    if small_images:
        return conv_bn(in_channels, width, 3)
    return nn.Sequential(nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                         nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))


class ResNet(nn.Module):
    """stem -> stages (the first keeps the resolution, each later one halves it) -> pool -> linear.

    ``multi_label=True`` means the logits are read through a sigmoid, one independent probability per
    class (train with binary_cross_entropy_with_logits); otherwise through a softmax (cross_entropy).
    """

    def __init__(self, block, depths, widths, num_classes, in_channels=3, small_images=True,
                 multi_label=False, dropout=0.0):
        super().__init__()
        if len(depths) != len(widths):
            raise ValueError(f"ResNet: depths {depths} and widths {widths} must have the same length")
        self.multi_label = multi_label
        stages, channels = [make_stem(in_channels, widths[0], small_images)], widths[0]
        for i, (depth, width) in enumerate(zip(depths, widths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(channels, width, stride=2 if (i > 0 and j == 0) else 1))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.body = nn.Sequential(*stages)
        self.num_features = channels
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if dropout:
            head.append(nn.Dropout(dropout))
        self.head = nn.Sequential(*head, nn.Linear(channels, num_classes))

    def forward(self, x):
        return self.head(self.body(x))

    def predict_proba(self, logits):
        """Class probabilities from logits: sigmoid for multi-label, softmax otherwise."""
        return F.sigmoid(logits) if self.multi_label else F.softmax(logits, 1)

    def layer_groups(self):
        """[stem and the first half of the stages], [the rest of the body], [head]."""
        stages = list(self.body)
        cut = (len(stages) + 1) // 2
        return [nn.Sequential(*stages[:cut]), nn.Sequential(*stages[cut:]), self.head]


def resnet_small(num_classes, width=32, depths=(1, 1, 1, 1), in_channels=3, multi_label=False, block=BasicBlock,
                 dropout=0.0):
    """A small ResNet for small images: widths width, 2*width, 4*width, 8*width; ``depths`` blocks per stage."""
    widths = tuple(width * 2 ** i for i in range(len(depths)))
    return ResNet(block, depths, widths, num_classes, in_channels, small_images=True, multi_label=multi_label,
                  dropout=dropout)


def resnet18(num_classes, width=64, in_channels=3, small_images=False, multi_label=False):
    """ResNet-18's shape: BasicBlocks (2, 2, 2, 2) at width, 2x, 4x, 8x (64 in the original)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), tuple(width * 2 ** i for i in range(4)), num_classes, in_channels,
                  small_images, multi_label)


def resnet34(num_classes, width=64, in_channels=3, small_images=False, multi_label=False):
    """ResNet-34's shape: BasicBlocks (3, 4, 6, 3)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), tuple(width * 2 ** i for i in range(4)), num_classes, in_channels,
                  small_images, multi_label)
