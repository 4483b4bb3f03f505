"""The settings of the small Mask R-CNN, with defaults for the synthetic "shapes" data.

The defaults follow Matterport's ShapesConfig where it makes sense for a CPU: 128-pixel images,
anchors of sides 8 to 128 pixels at three aspect ratios, 32 sampled ROIs per image with a third
positive, 28x28 masks.

Two backbones. ``fpn=False`` (the default): a *single* feature map at stride 8, the last stage's, and
every anchor scale lives on it: simpler to read and cheaper to run, and shapes of 10 to 80 pixels are
well covered by a 16 x 16 map of 8-pixel cells. ``fpn=True``: a feature pyramid (``fpn.py``) over all
the stages, as torchvision's and Matterport's Mask R-CNN, with one anchor scale per level. The levels
are P2-P5 (strides 4 to 32, from four stages) plus the max-pooled P6 (stride 64), rather than
RetinaNet's P3-P7: on 128-pixel images the smallest objects are about 8 pixels, which a stride-8 map
(P3) sees as a single cell and its 8-pixel anchors miss by up to 4 pixels (IoU as low as 0.14); at
stride 4 (P2) the object spans 2 x 2 cells and an anchor is at most 2 pixels off, while P6 (a 2 x 2
map) still holds the 128-pixel anchors. RoIs are pooled from level
k = floor(roi_canonical_level + log2(sqrt(w h) / roi_canonical_scale)), clamped to P2-P5: with 112 and 4,
a box spans 7 to 14 cells of its level (a 7 x 7 RoIAlign reads about a cell per bin), except boxes
under 56 pixels, which all pool from the finest level, P2.
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
    # the feature pyramid (see the module docstring): P2 .. P(n+1) from the n stages plus a pooled level,
    # each with fpn_channels channels and one anchor scale, so len(anchor_scales) == n + 1
    fpn: bool = False
    fpn_channels: int = 64
    roi_canonical_scale: float = 112              # FPN: boxes of this side (pixels) pool from level
    roi_canonical_level: int = 4                  # roi_canonical_level, each halving one level finer

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
            (not self.fpn or len(self.anchor_scales) == len(self.backbone_depths) + 1,
             "with fpn=True, anchor_scales needs one scale per pyramid level: one per backbone stage, plus one "
             "for the pooled level"),
            (self.roi_canonical_scale > 0 and isinstance(self.roi_canonical_level, int),
             "roi_canonical_scale must be positive and roi_canonical_level an int"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError(f"MaskRCNNConfig: {'; '.join(problems)} (got {self})")

    @property
    def backbone_stride(self):
        """The stem divides by 4, every stage after the first by 2 more."""
        return 4 * 2 ** (len(self.backbone_depths) - 1)

    @property
    def stage_channels(self):
        """The channels of each stage's output: its width, times 4 for bottleneck blocks."""
        return [w * (4 if self.backbone_block == "bottleneck" else 1) for w in self.backbone_widths]

    @property
    def backbone_channels(self):
        """The channels of the feature map(s) the heads see: the last stage's, or fpn_channels."""
        return self.fpn_channels if self.fpn else self.stage_channels[-1]

    @property
    def anchors_per_cell(self):
        """Anchors per feature cell: one per ratio on each pyramid level, every (scale, ratio) on a single one."""
        return len(self.anchor_ratios) * (1 if self.fpn else len(self.anchor_scales))

    @property
    def feature_size(self):
        return self.image_size // self.backbone_stride

    @property
    def level_strides(self):
        """FPN: the strides of P2, P3, ... and of the pooled level (4, 8, ..., twice the last)."""
        return [4 * 2 ** i for i in range(len(self.backbone_depths) + 1)]

    @property
    def level_sizes(self):
        """FPN: the side of each level's square map (the pooled level halves the last, rounding up)."""
        sizes = [self.image_size // s for s in self.level_strides[:-1]]
        return sizes + [-(-sizes[-1] // 2)]
