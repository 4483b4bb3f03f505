"""U-Net (Ronneberger et al., 2015) on a ResNet encoder, in the manner of fastai's DynamicUnet.

The encoder (a ResNet body) shrinks the image while its features grow more abstract: good at
*what*, poor at *where*. The decoder grows the resolution back, and at each size it concatenates the
encoder's feature map of that size (a *skip connection*), which still knows *where*. A pixel's class
needs both.

    encoder stage outputs  ->  skips: the last output at each resolution
    bottom                 ->  conv block
    for each skip, deepest first:  upsample (transposed conv), BN(skip), concat, 2 x (conv+BN+ReLU)
    resize to the input size, concat the input itself (last cross connection), conv block, 1x1 conv
"""
import numpy as np

from .. import functional as F
from .. import nn
from ..autograd import no_grad
from ..tensor import Tensor
from .resnet import RESNETS, ResNet, conv_bn, resnet_small


def _double_conv(in_channels, out_channels):
    return nn.Sequential(conv_bn(in_channels, out_channels), conv_bn(out_channels, out_channels))


class UpBlock(nn.Module):
    """Upsample ``x`` by 2 with a transposed convolution, join the batch-normed skip, two conv+BN+ReLU.

    When the input size is not a multiple of the encoder's total stride, the upsampled map is one
    pixel off the skip's size; it is then resized (nearest) to the skip's size before joining."""

    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.skip_bn = nn.BatchNorm2d(skip_channels)
        self.convs = _double_conv(in_channels // 2 + skip_channels, out_channels)

    def forward(self, x, skip):
        up = self.up(x)
        if up.shape[-2:] != skip.shape[-2:]:
            up = F.interpolate(up, size=skip.shape[-2:], mode="nearest")
        return self.convs(F.cat([F.relu(up), self.skip_bn(skip)], dim=1))


class UNet(nn.Module):
    """A U-Net whose encoder is ``encoder_stages`` (a list of modules run in turn, e.g. a ResNet body)."""

    def __init__(self, encoder_stages, n_classes, in_channels=3):
        super().__init__()
        self.encoder = nn.ModuleList(encoder_stages)
        channels, sizes = self._trace(in_channels)
        self.skip_ids = [i for i in range(len(sizes) - 1) if sizes[i + 1] < sizes[i]]
        bottom = channels[-1]
        self.middle = _double_conv(bottom, bottom)
        blocks, up_channels = [], bottom
        for i in reversed(self.skip_ids):
            out_channels = max(channels[i], 8)
            blocks.append(UpBlock(up_channels, channels[i], out_channels))
            up_channels = out_channels
        self.decoder = nn.ModuleList(blocks)
        self.final = nn.Sequential(_double_conv(up_channels + in_channels, up_channels),
                                   nn.Conv2d(up_channels, n_classes, 1))

    def _trace(self, in_channels, size=64):
        """Run a dummy image through the encoder to learn each stage's channels and spatial size."""
        mode = self.training
        self.eval()
        with no_grad():
            x = Tensor(np.zeros((1, in_channels, size, size), dtype=np.float32))
            channels, sizes = [], []
            for stage in self.encoder:
                x = stage(x)
                channels.append(x.shape[1])
                sizes.append(x.shape[-1])
        self.train(mode)
        return channels, sizes

    def forward(self, x):
        features, h = [], x
        for stage in self.encoder:
            h = stage(h)
            features.append(h)
        h = self.middle(h)
        for block, i in zip(self.decoder, reversed(self.skip_ids)):
            h = block(h, features[i])
        if h.shape[-2:] != x.shape[-2:]:
            h = F.interpolate(h, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.final(F.cat([h, x.to(dtype=h.dtype)], dim=1))

    def layer_groups(self):
        """[encoder], [middle, decoder and final]: freeze the first to train only the new parts."""
        return [self.encoder, nn.ModuleList([self.middle, self.decoder, self.final])]


def unet_resnet(n_classes, width=None, depths=(1, 1, 1, 1), in_channels=3, encoder=None, weights=None):
    """A U-Net on a ResNet encoder: by default a small ResNet (``width`` default 32, ``depths``); or
    ``encoder``, a ResNet whose body it shares, or the name "resnet18", "resnet34" or "resnet50" for
    torchvision's network (``width`` default 64, the published one), pretrained from the safetensors file
    ``weights`` when given (its ``fc`` is not used: the U-Net has its own head)."""
    if isinstance(encoder, str):
        if encoder not in RESNETS:
            raise ValueError(f"unet_resnet: encoder must be a ResNet or one of {sorted(RESNETS)}, got {encoder!r}")
        # num_classes=1, chosen explicitly: a file with another head loads all but its fc (the head rule)
        encoder = RESNETS[encoder](1, weights=weights, width=width or 64, in_channels=in_channels)
    elif weights is not None:
        raise ValueError("unet_resnet: weights= needs encoder='resnet18', 'resnet34' or 'resnet50' (or load the "
                         "weights into the ResNet you pass as encoder)")
    if encoder is not None and not isinstance(encoder, ResNet):
        raise TypeError(f"unet_resnet: encoder must be a ResNet or a name, got {type(encoder).__name__}")
    encoder = encoder or resnet_small(1, width=width or 32, depths=depths, in_channels=in_channels)
    return UNet(list(encoder.body), n_classes, in_channels)
