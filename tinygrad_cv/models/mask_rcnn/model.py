"""Mask R-CNN (He et al., 2017): Faster R-CNN's two stages plus a mask branch.

    image -> backbone (ResNet body, stride 8; or its feature pyramid P2-P6) -> features
    features -> RPN head (shared by the levels) -> objectness and deltas per anchor -> proposals (NMS, top N)
    features + ROIs -> box head (RoIAlign 7x7, on each ROI's level) -> class and per-class box refinement
    features + ROIs -> mask head (RoIAlign 14x14, likewise) -> a 28 x 28 mask per class

Training samples anchors and ROIs against the ground truth (``targets.py``) and sums the five losses
(``losses.py``); inference keeps the confident, non-overlapping boxes and pastes their masks back
into the image (``inference.py``).
"""
import numpy as np

from ... import functional as F
from ... import nn
from ...autograd import no_grad
from ...ops.roi import roi_levels
from ...random import generator
from ...tensor import Tensor
from ..resnet import BasicBlock, Bottleneck, ResNet, load_resnet_weights
from .config import MaskRCNNConfig
from .fpn import FeaturePyramidNetwork, LastLevelMaxPool
from .heads import BoxHead, MaskHead
from .inference import paste_masks, select_detections
from .losses import box_head_losses, mask_loss, rpn_losses, zero_loss
from .rpn import RPNHead, compact_proposals, level_anchors, propose
from .targets import anchor_targets, collate_ground_truth, mask_targets, roi_targets


def backbone_resnet(config, num_classes=1, multi_label=False):
    """The ResNet whose ``.body`` is the Mask R-CNN backbone: the ImageNet stem (stride 4) and the
    stages of config.backbone_widths / backbone_depths / backbone_block. With config.backbone_weights,
    it starts from that torchvision or timm file (strictly, but with its own ``num_classes`` head, by
    the head rule of ``models.resnet``), as Matterport starts from ImageNet weights; without, train it
    as a classifier first (``pretrain_backbone``)."""
    block = Bottleneck if config.backbone_block == "bottleneck" else BasicBlock
    model = ResNet(block, config.backbone_depths, config.backbone_widths, num_classes,
                   small_images=False, multi_label=multi_label)
    if config.backbone_weights is None:
        return model
    return load_resnet_weights(model, config.backbone_weights, num_classes, where="backbone_resnet")


class MaskRCNN(nn.Module):
    """Mask R-CNN on one feature level, or on a feature pyramid with ``config.fpn``. ``backbone`` is an
    nn.Sequential of ResNet stages (a ResNet's ``.body``), by default a fresh ``backbone_resnet(config).body``;
    with ``config.fpn``, ``fpn`` is a FeaturePyramidNetwork over the outputs of all its stages (torchvision's
    module names: ``fpn.inner_blocks.0.0.weight``, ...), which trains with the heads."""

    def __init__(self, config=None, backbone=None):
        super().__init__()
        self.config = config = config or MaskRCNNConfig()
        self.backbone = backbone if backbone is not None else backbone_resnet(config).body
        if config.fpn:
            self.fpn = FeaturePyramidNetwork(config.stage_channels, config.fpn_channels, LastLevelMaxPool())
        channels = config.backbone_channels
        scale = [1.0 / s for s in config.level_strides[:-1]] if config.fpn else 1.0 / config.backbone_stride
        canonical = (config.roi_canonical_scale, config.roi_canonical_level)
        self.rpn = RPNHead(channels, config.rpn_channels, config.anchors_per_cell)
        self.box_head = BoxHead(channels, config.num_classes, config.box_pool_size, config.box_head_units,
                                scale, config.sampling_ratio, canonical)
        self.mask_head = MaskHead(channels, config.num_classes, config.mask_pool_size,
                                  config.mask_head_channels, scale, config.sampling_ratio, canonical)
        per_level = level_anchors(config)
        self.anchors, self.level_sizes = np.concatenate(per_level), [len(a) for a in per_level]

    # ------------------------------------------------------------------ shared first stage
    def features(self, images):
        """The backbone's feature map of normalised images (N, 3, S, S), S = config.image_size; with the FPN,
        the list of its levels P2, P3, ..., finest first (the last one the pooled level)."""
        config, size = self.config, self.config.image_size
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1:] != (3, size, size):
            raise ValueError(f"MaskRCNN: images must be a Tensor (N, 3, {size}, {size}) (see "
                             f"prepare_images), got {getattr(images, 'shape', type(images).__name__)}")
        features = self._pyramid(images) if config.fpn else self.backbone(images)
        sizes = config.level_sizes if config.fpn else [config.feature_size]
        for level, size in zip(features if config.fpn else [features], sizes):
            if level.shape[1:] != (config.backbone_channels, size, size):
                raise ValueError(f"MaskRCNN: the backbone gives features {level.shape[1:]}, but the config "
                                 f"expects {(config.backbone_channels, size, size)} (channels, and image_size / "
                                 f"stride: backbone_widths, backbone_block and backbone_depths must match it)")
        return features

    def _pyramid(self, images):
        """The FPN's levels: every backbone stage's output (strides 4, 8, ...) through ``fpn``, finest first."""
        stages, x = {}, images
        for name, module in self.backbone._modules.items():
            x = module(x)
            if name.startswith("layer"):
                stages[str(len(stages))] = x
        return list(self.fpn(stages).values())

    def _rpn(self, features):
        """The RPN head on the feature map, or on each level with the same weights, outputs concatenated
        in the anchors' order (level by level)."""
        if not self.config.fpn:
            return self.rpn(features)
        outputs = [self.rpn(level) for level in features]
        return F.cat([o[0] for o in outputs], 1), F.cat([o[1] for o in outputs], 1)

    def _pooled(self, features):
        """What the heads pool from: the feature map, or the pyramid without its pooled level (P2-P5), as
        torchvision's MultiScaleRoIAlign over '0'..'3'."""
        return features[:-1] if self.config.fpn else features

    def forward(self, images, targets=None):
        """The losses (a dict) when ``targets`` are given, else the detections (see ``detect``)."""
        return self.detect(images) if targets is None else self.losses(images, targets)

    def pooling_levels(self, boxes):
        """FPN: the pyramid level (2 for P2, 3 for P3, ...) the heads pool each box (K, 4) of image pixels
        from, by multi_scale_roi_align's rule with config.roi_canonical_scale and roi_canonical_level."""
        if not self.config.fpn:
            raise ValueError("MaskRCNN.pooling_levels: this model has a single feature level (config.fpn is False)")
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        finest, coarsest = 2, len(self.config.backbone_depths) + 1
        rois = np.column_stack([np.zeros(len(boxes)), boxes])
        return finest + roi_levels(np, rois, finest, coarsest, self.config.roi_canonical_scale,
                                   self.config.roi_canonical_level)

    # ------------------------------------------------------------------ training
    def losses(self, images, targets, rng=None):
        """The five losses for a batch: a dict of scalar Tensors (sum them to train).

        ``targets``: one dict per image with 'boxes' (n, 4) (x1, y1, x2, y2), 'labels' (n,) in
        1..num_classes-1 and 'instance_masks' (n, S, S), as ``Coco.targets`` gives them; n may be 0.
        ``rng`` draws the anchor and ROI samples (default: the global seeded generator).
        """
        config, rng = self.config, rng or generator()
        features = self.features(images)
        if len(targets) != images.shape[0]:
            raise ValueError(f"MaskRCNN.losses: {images.shape[0]} images but {len(targets)} targets")
        gt = collate_ground_truth(targets, config.image_size, config.num_classes, images.device)
        if gt.masks is None:
            raise ValueError("MaskRCNN.losses: targets need 'instance_masks' to train the mask head")
        logits, deltas = self._rpn(features)
        labels, box_targets = anchor_targets(self.anchors, gt, len(targets), config, rng)
        rpn_objectness, rpn_box = rpn_losses(logits, deltas, labels, box_targets, config.smooth_l1_beta)

        boxes, valid = propose(self.anchors, logits.data, deltas.data, config, config.rpn_post_nms_train,
                               self.level_sizes)
        rois = roi_targets(boxes, valid, gt, config, rng)
        features = self._pooled(features)
        class_logits, box_deltas = self.box_head(features, rois.rois)
        head_class, head_box = box_head_losses(class_logits, box_deltas, rois.labels, rois.box_targets, rois.valid,
                                               config.smooth_l1_beta)
        return {"loss_objectness": rpn_objectness, "loss_rpn_box_reg": rpn_box, "loss_classifier": head_class,
                "loss_box_reg": head_box, "loss_mask": self._mask_loss(features, rois, gt)}

    def _mask_loss(self, features, rois, gt):
        """The mask head runs on the positive ROIs (the only ones with a mask to learn), ``rois.mask_rows``."""
        rows = rois.mask_rows()
        if len(gt.boxes) == 0 or len(rows) == 0:
            return zero_loss(features[0] if isinstance(features, list) else features)
        boxes = rois.rois[rows]
        logits = self.mask_head(features, boxes)
        targets = mask_targets(gt.masks, rois.matched[rows], boxes, self.config.mask_size)
        return mask_loss(logits, rois.labels[rows], targets)

    # ------------------------------------------------------------------ inference
    def detect(self, images, score_threshold=None):
        """Detections for each image: a list of dicts with 'boxes' (D, 4), 'labels' (D,), 'scores' (D,)
        and 'masks' (D, S, S) bool, best score first. Runs in eval mode (batch norm uses its running
        statistics) and without recording a graph; the training mode is restored afterwards."""
        config = self.config
        threshold = config.detection_score_threshold if score_threshold is None else score_threshold
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                features = self.features(images)
                logits, deltas = self._rpn(features)
                proposals = compact_proposals(*propose(self.anchors, logits.data, deltas.data, config,
                                                       config.rpn_post_nms_test, self.level_sizes))
                features = self._pooled(features)
                class_logits, box_deltas = self.box_head(features, proposals)
                found = select_detections(proposals, F.softmax(class_logits, 1).numpy(), box_deltas.numpy(),
                                          config, threshold)
                masks = self._masks(features, found)
        finally:
            self.train(was_training)
        return [{"boxes": found.boxes[found.image == i], "labels": found.labels[found.image == i],
                 "scores": found.scores[found.image == i], "masks": masks[found.image == i]}
                for i in range(images.shape[0])]

    def _masks(self, features, found):
        """Each detection's mask for its class: sigmoid of the 28 x 28 logits, pasted into its box,
        thresholded at config.mask_threshold."""
        size = self.config.image_size
        if len(found.boxes) == 0:
            return np.zeros((0, size, size), dtype=bool)
        logits = self.mask_head(features, found.rois())
        probabilities = F.sigmoid(logits[np.arange(len(found.labels)), found.labels]).numpy()
        return paste_masks(probabilities, found.boxes, size, size) > self.config.mask_threshold

    # ------------------------------------------------------------------ training stages
    def layer_groups(self):
        """The Learner's layer groups, early layers first: the backbone's stem with its first stage
        (``layer1``, Matterport's res2), then each later stage (``layer2`` = res3, ...), and last the heads:
        every parameter outside the backbone's stem and stages (RPN, box and mask heads, and a feature
        pyramid if there is one), Matterport's 'heads'. Lists of parameters."""
        n_stages = sum(1 for name, _ in self.backbone.named_children() if _stage_number(name) is not None)
        groups = [[] for _ in range(max(n_stages, 1) + 1)]
        for name, param in self.named_parameters():
            groups[self._group_of(name, len(groups))].append(param)
        return groups

    @staticmethod
    def _group_of(name, n_groups):
        parts = name.split(".")
        if parts[0] != "backbone" or len(parts) < 3:
            return n_groups - 1
        stage = _stage_number(parts[1])
        if stage is None:
            return 0 if parts[1] in ("conv1", "bn1") else n_groups - 1     # the stem; anything else: a head
        return max(stage - 1, 0)

    def layer_group_index(self, stage):
        """The first layer group that a Matterport training stage trains: 'heads' the last group, 'all'
        the first, 'N+' (e.g. '3+', '4+') the backbone from stage resN (``layer{N-1}``) up with the heads;
        the stages that exist are the backbone's (res2 .. res{K+1} for K stages)."""
        n_groups = len(self.layer_groups())
        named = {"heads": n_groups - 1, "all": 0,
                 **{f"{k + 2}+": k for k in range(1, n_groups - 1)}}    # res3 = layer2 = group 1, ...
        if stage not in named:
            raise ValueError(f"MaskRCNN: unknown training stage {stage!r}; this model's are {list(named)} "
                             f"(its backbone has {n_groups - 1} stages, res2 to res{n_groups})")
        return named[stage]

    def set_trainable(self, layers):
        """Train only the parameters of a Matterport stage ('heads', '3+', '4+', ..., 'all'; see
        ``layer_group_index``), as Matterport's ``train(layers=...)``, and freeze the rest. Returns the
        names now trainable. Batch norm layers whose parameters are frozen also stop updating their
        running statistics (they run in eval mode while the model trains). A Learner does the same with
        ``learn.freeze_to(layers)`` (which, with ``train_bn``, keeps batch norm trainable)."""
        first = self.layer_group_index(layers)
        for i, group in enumerate(self.layer_groups()):
            for param in group:
                param.requires_grad_(i >= first)
        self.train(self.training)
        return [name for name, param in self.named_parameters() if param.requires_grad]

    def train(self, mode=True):
        """As ``Module.train``, except that batch norm layers with frozen parameters stay in eval mode."""
        super().train(mode)
        if mode:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d) and not module.weight.requires_grad:
                    object.__setattr__(module, "training", False)
        return self


def _stage_number(name):
    """k for a ResNet body's stage ``layer{k}``, else None."""
    return int(name[5:]) if name.startswith("layer") and name[5:].isdigit() else None


def prepare_images(images, config, device="cpu"):
    """uint8 images (N, S, S, 3) (or a list of (S, S, 3)) -> the normalised float32 Tensor (N, 3, S, S)
    the model takes: scaled to [0, 1], then (x - pixel_mean) / pixel_std per channel."""
    array = np.stack([np.asarray(image) for image in images]) if isinstance(images, (list, tuple)) \
        else np.asarray(images)
    size = config.image_size
    if array.ndim != 4 or array.shape[1:] != (size, size, 3):
        raise ValueError(f"prepare_images: expected images of shape (N, {size}, {size}, 3) (RGB, "
                         f"config.image_size), got {array.shape}; resize them to {size} x {size} first")
    mean, std = np.asarray(config.pixel_mean), np.asarray(config.pixel_std)
    normalised = (array.astype(np.float32) / 255 - mean) / std
    return Tensor(normalised.transpose(0, 3, 1, 2).astype(np.float32), device=device)
