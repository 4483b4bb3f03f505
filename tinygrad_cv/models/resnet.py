"""ResNet (He et al., 2015): stacks of residual blocks, y = relu(F(x) + shortcut(x)).

The modules carry torchvision's names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``,
``fc``, ...), so ``state_dict()`` has torchvision's keys and a torchvision or timm weight file loads as
it is (``resnet34(weights="resnet34.safetensors")``), and ours load into torchvision.

Two views over those same modules (not copies): the *body* (stem and the stages, the part a U-Net or
Mask R-CNN reuses as an encoder) and the *head* (global average pool, flatten, linear).
``layer_groups()`` cuts the network into three groups (early body, late body, head) for freezing and
discriminative learning rates.

``resnet18/34/50(num_classes=1000, weights=None, ...)``: ``weights`` is None (random initialisation) or
the path of a ``.safetensors`` file of a torchvision or timm ResNet of that depth (e.g.
``save_safetensors(torchvision.models.resnet34(weights="DEFAULT").state_dict(), path)``, or timm's
``resnet34`` file from the hub; timm's deep-stem "d" variants have other keys). The load is strict: a
missing, unexpected or mis-shaped key is a ValueError naming every one of them and the file.

The head rule. Leaving ``num_classes`` at its default (1000) loads the file's ``fc`` as well, so a file
with another number of classes is an error naming ``fc.weight`` and both shapes. Passing ``num_classes``
yourself, different from the file's ``fc.weight.shape[0]`` (or for a file without ``fc``), replaces the
head, fastai's way: every other array is loaded, strictly, and ``fc`` is a new, randomly initialised
Linear(num_features, num_classes). Passing the file's own class count loads its ``fc``.

``width`` scales every stage (64 is the published network; other widths cannot load torchvision's
weights); ``small_images=True`` swaps in the small-image stem (see ``ResNet``).
"""
import os
from collections import OrderedDict

from .. import functional as F
from .. import nn
from ..io import load_safetensors


def conv_bn(in_channels, out_channels, kernel_size=3, stride=1, relu=True):
    """Convolution (no bias: batch norm has one) + BatchNorm2d (+ ReLU), as one Sequential."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
              nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


def downsample(in_channels, out_channels, stride):
    """None when shapes agree (the shortcut is the identity); otherwise torchvision's strided 1x1
    convolution + batch norm (``downsample.0``, ``downsample.1``)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return conv_bn(in_channels, out_channels, kernel_size=1, stride=stride, relu=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); conv1 carries the stride."""
    expansion = 1

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample(in_channels, planes, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, torchvision's "ResNet v1.5"), 1x1 expand to 4x the planes,
    plus the shortcut."""
    expansion = 4

    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.downsample = downsample(in_channels, out_channels, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """stem (conv1, bn1, relu, maxpool) -> layer1, layer2, ... (the first keeps the resolution, each
    later one halves it) -> avgpool -> flatten -> (dropout) -> fc.

    ``small_images=False`` is the ImageNet stem (7x7 stride-2 conv1, then a 3x3 stride-2 max-pool: the
    resolution divided by 4 at once). ``small_images=True`` (for images of <= 128 px) makes conv1 a
    stride-1 3x3 convolution and the max-pool the identity, keeping the resolution.

    ``multi_label=True`` means the logits are read through a sigmoid, one independent probability per
    class (train with binary_cross_entropy_with_logits); otherwise through a softmax (cross_entropy).
    ``dropout`` > 0 adds a Dropout before ``fc`` (it has no parameters, so the keys are unchanged).
    """

    def __init__(self, block, depths, widths, num_classes, in_channels=3, small_images=True,
                 multi_label=False, dropout=0.0):
        super().__init__()
        if len(depths) != len(widths) or not depths:
            raise ValueError(f"ResNet: depths {depths} and widths {widths} must have the same, non-zero length")
        self.multi_label, self.n_stages = multi_label, len(depths)
        if small_images:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        channels = widths[0]
        for i, (depth, width) in enumerate(zip(depths, widths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(channels, width, stride=2 if (i > 0 and j == 0) else 1))
                channels = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)

    @property
    def stages(self):
        """[layer1, layer2, ...]."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.n_stages)]

    @property
    def body(self):
        """The encoder, a Sequential over this model's own modules (conv1, bn1, relu, maxpool, layer1, ...):
        a U-Net or Mask R-CNN built on it shares (and trains) these very parameters."""
        names = ["conv1", "bn1", "relu", "maxpool"] + [f"layer{i + 1}" for i in range(self.n_stages)]
        return nn.Sequential(OrderedDict((name, getattr(self, name)) for name in names))

    @property
    def head(self):
        """avgpool -> flatten -> dropout -> fc, a Sequential over this model's own modules."""
        names = ["avgpool", "flatten", "dropout", "fc"]
        return nn.Sequential(OrderedDict((name, getattr(self, name)) for name in names))

    def forward(self, x):
        return self.head(self.body(x))

    def predict_proba(self, logits):
        """Class probabilities from logits: sigmoid for multi-label, softmax otherwise."""
        return F.sigmoid(logits) if self.multi_label else F.softmax(logits, 1)

    def layer_groups(self):
        """[stem and the first half of the stages], [the rest of the body], [head] (as Sequential views)."""
        body = list(self.body._modules.items())
        cut = 4 + self.n_stages // 2
        return [nn.Sequential(OrderedDict(body[:cut])), nn.Sequential(OrderedDict(body[cut:])), self.head]


class _DefaultNumClasses(int):
    """1000, ImageNet's class count, as ``num_classes``'s default: an int that also tells the weight loader
    that the caller did not choose it (see ``resnet18``)."""

    def __repr__(self):
        return "1000"


IMAGENET_CLASSES = _DefaultNumClasses(1000)


def load_resnet_weights(model, weights, num_classes=None, where="load_resnet_weights"):
    """Load the safetensors file ``weights`` into the ResNet ``model`` by the head rule of the module
    docstring (``num_classes`` None: the caller did not choose it, so the file's ``fc`` must fit).
    Any missing, unexpected or mis-shaped key raises ValueError naming every one and the file."""
    state = load_safetensors(weights)
    fc = state.get("fc.weight")
    if num_classes is not None and (fc is None or fc.shape[0] != num_classes):
        state = {k: v for k, v in state.items() if k not in ("fc.weight", "fc.bias")}
        state.update({"fc.weight": model.fc.weight.numpy(), "fc.bias": model.fc.bias.numpy()})
    try:
        model.load_state_dict(state, strict=True)
    except ValueError as error:
        raise ValueError(f"{where}: {os.fspath(weights)!r} does not fit this model: {error}") from None
    return model


def _build(name, block, depths, num_classes, weights, width, in_channels, small_images, multi_label, dropout):
    model = ResNet(block, depths, tuple(width * 2 ** i for i in range(4)), int(num_classes), in_channels,
                   small_images, multi_label, dropout)
    if weights is None:
        return model
    chosen = None if num_classes is IMAGENET_CLASSES else int(num_classes)
    return load_resnet_weights(model, weights, chosen, where=f"{name}(weights={os.fspath(weights)!r})")


def resnet18(num_classes=IMAGENET_CLASSES, weights=None, width=64, in_channels=3, small_images=False,
             multi_label=False, dropout=0.0):
    """ResNet-18 as torchvision's: BasicBlocks (2, 2, 2, 2) at widths 64, 128, 256, 512. ``weights`` and
    the head rule: see the module docstring."""
    return _build("resnet18", BasicBlock, (2, 2, 2, 2), num_classes, weights, width, in_channels, small_images,
                  multi_label, dropout)


def resnet34(num_classes=IMAGENET_CLASSES, weights=None, width=64, in_channels=3, small_images=False,
             multi_label=False, dropout=0.0):
    """ResNet-34 as torchvision's: BasicBlocks (3, 4, 6, 3) at widths 64, 128, 256, 512. ``weights`` and
    the head rule: see the module docstring."""
    return _build("resnet34", BasicBlock, (3, 4, 6, 3), num_classes, weights, width, in_channels, small_images,
                  multi_label, dropout)


def resnet50(num_classes=IMAGENET_CLASSES, weights=None, width=64, in_channels=3, small_images=False,
             multi_label=False, dropout=0.0):
    """ResNet-50 as torchvision's (v1.5: the stride on the 3x3 convolution): Bottlenecks (3, 4, 6, 3), planes
    64, 128, 256, 512 expanded 4x (2048 features). ``weights`` and the head rule: see the module docstring."""
    return _build("resnet50", Bottleneck, (3, 4, 6, 3), num_classes, weights, width, in_channels, small_images,
                  multi_label, dropout)


RESNETS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def resnet_small(num_classes, width=32, depths=(1, 1, 1, 1), in_channels=3, multi_label=False, block=BasicBlock,
                 dropout=0.0):
    """A small ResNet for small images: widths width, 2*width, 4*width, 8*width; ``depths`` blocks per stage."""
    widths = tuple(width * 2 ** i for i in range(len(depths)))
    return ResNet(block, depths, widths, num_classes, in_channels, small_images=True, multi_label=multi_label,
                  dropout=dropout)
