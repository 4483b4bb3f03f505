"""The two heads that work on ROIs: the box head (what is in the ROI, and a finer box for it) and the
mask head (which pixels of the ROI belong to the object).

Both start with RoIAlign, which cuts a fixed-size grid of features out of the feature map for every
ROI, whatever its size: 7 x 7 for the box head, 14 x 14 for the mask head. On a feature pyramid
(``features`` a list of levels, ``spatial_scale`` a list of their scales) each ROI is cut out of the
level that suits its size, by ``multi_scale_roi_align``.
"""
from ... import functional as F
from ... import nn


def pool_rois(features, rois, output_size, spatial_scale, sampling_ratio, canonical=(224, 4)):
    """RoIAlign (aligned) of the ROIs (K, 5) on one feature map, or on a pyramid's levels (lists of
    maps and of scales, finest first) with the FPN level rule of ``canonical`` = (scale, level)."""
    if isinstance(features, (list, tuple)):
        return F.multi_scale_roi_align(features, rois, output_size, list(spatial_scale), sampling_ratio,
                                       *canonical, aligned=True)
    return F.roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned=True)


class BoxHead(nn.Module):
    """RoIAlign (pool_size x pool_size) -> two fully connected layers with ReLU -> class logits
    (num_classes) and per-class box deltas (num_classes x 4)."""

    def __init__(self, in_channels, num_classes, pool_size, units, spatial_scale, sampling_ratio, canonical=(224, 4)):
        super().__init__()
        self.pool_size, self.spatial_scale, self.sampling_ratio = pool_size, spatial_scale, sampling_ratio
        self.canonical, self.num_classes = canonical, num_classes
        self.fc1 = nn.Linear(in_channels * pool_size * pool_size, units)
        self.fc2 = nn.Linear(units, units)
        self.classes = nn.Linear(units, num_classes)
        self.deltas = nn.Linear(units, 4 * num_classes)
        nn.init.normal_(self.classes.weight, std=0.01)   # torchvision: small outputs to start with
        nn.init.normal_(self.deltas.weight, std=0.001)
        for layer in (self.classes, self.deltas):
            nn.init.zeros_(layer.bias)

    def forward(self, features, rois):
        """features (N, C, H, W) or their pyramid, rois (K, 5) -> class logits (K, num_classes), deltas
        (K, num_classes, 4)."""
        x = pool_rois(features, rois, self.pool_size, self.spatial_scale, self.sampling_ratio, self.canonical)
        x = x.reshape(len(rois), self.fc1.in_features)
        for fc in (self.fc1, self.fc2):  # relu(fc(x)), with the bias add and the ReLU fused into one op
            x = F.bias_relu(F.linear(x, fc.weight), fc.bias)
        return self.classes(x), self.deltas(x).reshape(len(rois), self.num_classes, 4)


class MaskHead(nn.Module):
    """RoIAlign (pool_size x pool_size) -> two 3 x 3 convolutions with ReLU -> a 2 x 2 transposed
    convolution with stride 2 (doubling the size) and ReLU -> a 1 x 1 convolution giving one mask
    logit map per class, (2 pool_size) x (2 pool_size)."""

    def __init__(self, in_channels, num_classes, pool_size, channels, spatial_scale, sampling_ratio,
                 canonical=(224, 4)):
        super().__init__()
        self.pool_size, self.spatial_scale, self.sampling_ratio = pool_size, spatial_scale, sampling_ratio
        self.canonical = canonical
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsample = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features, rois):
        """features (N, C, H, W) or their pyramid, rois (K, 5) -> mask logits (K, num_classes, 2 pool_size,
        2 pool_size)."""
        x = pool_rois(features, rois, self.pool_size, self.spatial_scale, self.sampling_ratio, self.canonical)
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.logits(F.relu(self.upsample(x)))
