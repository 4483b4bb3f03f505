"""The feature pyramid network (Lin et al., 2017): features that are both fine and semantically strong.

A ResNet's stages give maps C2, C3, C4, C5 at strides 4, 8, 16, 32: the fine ones see small things
but little context, the coarse ones know what is where but are too coarse for small objects. FPN
gives every level the coarse levels' meaning:

    L_i = lateral_i(C_i)                            a 1 x 1 convolution to d channels
    T_top = L_top;  T_i = L_i + up2(T_{i+1})        top-down: nearest-neighbour upsampling and a sum
    P_i = output_i(T_i)                             a 3 x 3 convolution against the upsampling's aliasing
    P_pool = maxpool(P_top, kernel 1, stride 2)     one more, coarser level (for the largest anchors)

The modules carry torchvision's names (``inner_blocks.i.0`` the laterals, ``layer_blocks.i.0`` the
output convolutions, ``LastLevelMaxPool``), so torchvision's ``FeaturePyramidNetwork`` weights load.
"""
from collections import OrderedDict

from ... import functional as F
from ... import nn


def _conv(in_channels, out_channels, kernel_size):
    """torchvision's Conv2dNormActivation without norm and activation: Sequential(conv), hence the '.0' keys;
    weights kaiming_uniform_(a=1), biases zero, as torchvision's FPN."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv)


class LastLevelMaxPool(nn.Module):
    """torchvision's extra level: P_pool = max_pool2d(P_top, kernel_size=1, stride=2), named 'pool'
    (a stride-2 subsampling of the coarsest level)."""

    def forward(self, results, names):
        return results + [F.max_pool2d(results[-1], 1, 2, 0)], names + ["pool"]


class FeaturePyramidNetwork(nn.Module):
    """torchvision.ops.FeaturePyramidNetwork: maps named features, finest first (a dict of (N, C_i, H_i, W_i)
    Tensors with C_i = in_channels_list[i]), to an OrderedDict of the same names, (N, out_channels, H_i, W_i)
    each, plus the ``extra_blocks``' levels (e.g. LastLevelMaxPool's 'pool')."""

    def __init__(self, in_channels_list, out_channels, extra_blocks=None):
        super().__init__()
        if not in_channels_list or any(c <= 0 for c in in_channels_list):
            raise ValueError(f"FeaturePyramidNetwork: in_channels_list must be positive channel counts, finest "
                             f"level first, got {in_channels_list!r}")
        self.inner_blocks = nn.ModuleList([_conv(c, out_channels, 1) for c in in_channels_list])
        self.layer_blocks = nn.ModuleList([_conv(out_channels, out_channels, 3) for _ in in_channels_list])
        self.extra_blocks = extra_blocks

    def forward(self, x):
        names, features = list(x.keys()), list(x.values())
        if len(features) != len(self.inner_blocks):
            raise ValueError(f"FeaturePyramidNetwork: got {len(features)} feature maps ({names}), but it was built "
                             f"for {len(self.inner_blocks)}")
        last_inner = self.inner_blocks[-1](features[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.inner_blocks[i](features[i])
            last_inner = lateral + F.interpolate(last_inner, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[i](last_inner))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, names)
        return OrderedDict(zip(names, results))
