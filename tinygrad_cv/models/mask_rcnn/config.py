"""The settings of the small Mask R-CNN, with defaults for the synthetic "shapes" data.

The defaults follow Matterport's ShapesConfig where it makes sense for a CPU: 128-pixel images,
anchors of sides 8 to 128 pixels at three aspect ratios, 32 sampled ROIs per image with a third
positive, 28x28 masks. Unlike Matterport (a five-level feature pyramid, one anchor scale per
level) the backbone gives a *single* feature map at stride 8, and every anchor scale lives on it:
one level is simpler to read and several times cheaper to run, and shapes of 10 to 80 pixels are
well covered by a 16 x 16 map of 8-pixel cells.
"""
from dataclasses import dataclass


@dataclass
class MaskRCNNConfig:
    """Hyper-parameters of the model, its targets and its inference (names close to Matterport's)."""

    num_classes: int = 4                      # including the background (label 0)
    image_size: int = 128                     # images are square, image_size x image_size
    pixel_mean: tuple = (0.5, 0.5, 0.5)       # of images scaled to [0, 1]
    pixel_std: tuple = (0.25, 0.25, 0.25)

    # backbone: the body of a ResNet with the ImageNet stem (stride 4) and two stages, the second
    # at stride 8; a stride-1 stem would keep 128 x 128 maps and cost about ten times more
    backbone_widths: tuple = (32, 64)
    backbone_depths: tuple = (2, 2)
    # "basic" (ResNet-18/34's blocks) or "bottleneck" (ResNet-50's, 4x the width out); and optionally a
    # torchvision/timm ResNet .safetensors file to start from: with widths (64, 128, 256, 512) and depths
    # (2, 2, 2, 2), (3, 4, 6, 3) or (3, 4, 6, 3) + "bottleneck", the body of ResNet-18, -34 or -50
    backbone_block: str = "basic"
    backbone_weights: str = None

    # anchors and the region proposal network
    anchor_scales: tuple = (8, 16, 32, 64, 128)   # sqrt(anchor area), image pixels
    anchor_ratios: tuple = (0.5, 1.0, 2.0)        # width / height
    rpn_channels: int = 64
    rpn_positive_iou: float = 0.7
    rpn_negative_iou: float = 0.3
    rpn_anchors_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n: int = 300
    rpn_nms_threshold: float = 0.7
    rpn_post_nms_train: int = 100
    rpn_post_nms_test: int = 100
    min_box_size: float = 1.0                     # proposals thinner than this (pixels) are dropped

    # proposal targets and the heads
    rois_per_image: int = 32
    roi_positive_fraction: float = 0.33
    roi_positive_iou: float = 0.5
    box_pool_size: int = 7
    box_head_units: int = 128
    mask_pool_size: int = 14
    mask_head_channels: int = 32
    mask_size: int = 28                           # 2 x mask_pool_size (one transposed convolution)
    sampling_ratio: int = 2                       # RoIAlign samples per bin side
    box_std: tuple = (0.1, 0.1, 0.2, 0.2)         # the box coder's scaling of (dx, dy, dw, dh)
    smooth_l1_beta: float = 1.0 / 9

    # inference
    detection_score_threshold: float = 0.05
    detection_nms_threshold: float = 0.5
    max_detections: int = 20
    mask_threshold: float = 0.5

    def __post_init__(self):
        checks = [
            (self.num_classes >= 2, "num_classes counts the background, so it must be at least 2"),
            (len(self.backbone_widths) == len(self.backbone_depths) > 0,
             "backbone_widths and backbone_depths need one entry per stage"),
            (self.backbone_block in ("basic", "bottleneck"), "backbone_block must be 'basic' or 'bottleneck'"),
            (self.image_size % self.backbone_stride == 0,
             "image_size must be a multiple of the backbone's stride"),
            (self.mask_size == 2 * self.mask_pool_size, "mask_size must be 2 * mask_pool_size"),
            (0 < self.rpn_positive_fraction <= 1 and 0 < self.roi_positive_fraction <= 1,
             "the positive fractions must be in (0, 1]"),
            (self.rpn_negative_iou <= self.rpn_positive_iou, "rpn_negative_iou must be <= rpn_positive_iou"),
            (len(self.anchor_scales) > 0 and len(self.anchor_ratios) > 0, "anchors need scales and ratios"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError(f"MaskRCNNConfig: {'; '.join(problems)} (got {self})")

    @property
    def backbone_stride(self):
        """The stem divides by 4, every stage after the first by 2 more."""
        return 4 * 2 ** (len(self.backbone_depths) - 1)

    @property
    def backbone_channels(self):
        """The channels of the feature map: the last width, times 4 for bottleneck blocks."""
        return self.backbone_widths[-1] * (4 if self.backbone_block == "bottleneck" else 1)

    @property
    def anchors_per_cell(self):
        return len(self.anchor_scales) * len(self.anchor_ratios)

    @property
    def feature_size(self):
        return self.image_size // self.backbone_stride
