"""Training targets: which anchors and ROIs count as objects, where their boxes should move, and the
28 x 28 mask each positive ROI should predict.

The ground truth of a batch is kept *flat*: every instance of every image in one array, each with
the index of its image, the layout RoIAlign uses for its (batch_index, x1, y1, x2, y2) boxes.
Matching boxes to the ground truth is then a single IoU matrix for the whole batch, with the pairs
from different images masked out, and sampling a fixed number per image is a sort, not a loop over
images.

This is bookkeeping on small arrays of boxes, never differentiated, so it runs in NumPy on the host;
only the tensors that carry gradients (features, logits, deltas) live on the model's device.
"""
from dataclasses import dataclass

import numpy as np

from ... import backend
from ... import functional as F
from ...autograd import no_grad
from ...ops.boxes import box_iou, encode_boxes
from ...tensor import Tensor


# --------------------------------------------------------------------------- ground truth
@dataclass
class GroundTruth:
    """The instances of a batch of images, flattened."""

    boxes: np.ndarray    # (G, 4) float64, (x1, y1, x2, y2) in pixels
    labels: np.ndarray   # (G,) int64 classes, 1 .. num_classes - 1 (0 is the background)
    image: np.ndarray    # (G,) int64, which image of the batch each instance is in
    masks: np.ndarray    # (G, H, W) uint8 instance masks at image size, or None


def _check_image_targets(i, target, image_size, num_classes):
    """One image's boxes, labels and masks as arrays, or a ValueError that says what is wrong."""
    where = f"MaskRCNN: targets[{i}]"
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"{where} must be a dict with 'boxes' (n, 4), 'labels' (n,) and 'instance_masks' "
                         f"(n, H, W), got {type(target).__name__}")
    boxes = backend.as_host(target["boxes"]).astype(np.float64)
    labels = backend.as_host(target["labels"])
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}['boxes'] must have shape (n, 4) as (x1, y1, x2, y2), got {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError(f"{where}['boxes'] contains NaN or infinite coordinates")
    bad = np.flatnonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    if bad.size:
        raise ValueError(f"{where}['boxes'][{bad[0]}] = {boxes[bad[0]].tolist()} has x2 <= x1 or y2 <= y1; "
                         f"boxes must be (x1, y1, x2, y2) with a positive width and height")
    if labels.shape != (len(boxes),) or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}['labels'] must be {len(boxes)} integers (one per box), got shape "
                         f"{labels.shape} of {labels.dtype}")
    if labels.size and not (labels.min() >= 1 and labels.max() < num_classes):
        raise ValueError(f"{where}['labels'] must be classes in 1..{num_classes - 1} (0 is the background), "
                         f"got {sorted(set(labels.tolist()))}")
    masks = target.get("instance_masks")
    if masks is not None:
        masks = backend.as_host(masks)
        if masks.shape != (len(boxes), image_size, image_size):
            raise ValueError(f"{where}['instance_masks'] must have shape ({len(boxes)}, {image_size}, "
                             f"{image_size}) (one image-size mask per box), got {masks.shape}")
    return boxes, labels.astype(np.int64), masks


def collate_ground_truth(targets, image_size, num_classes):
    """Check each image's targets (a dict with 'boxes', 'labels' and optionally 'instance_masks', the
    format of ``Coco.targets``) and flatten them into one ``GroundTruth``."""
    checked = [_check_image_targets(i, t, image_size, num_classes) for i, t in enumerate(targets)]
    counts = [len(boxes) for boxes, _, _ in checked]
    has_masks = [masks is not None for _, _, masks in checked]
    if any(has_masks) and not all(has_masks):
        raise ValueError(f"MaskRCNN: targets {[i for i, m in enumerate(has_masks) if not m]} have no "
                         f"'instance_masks' while others do; give masks for every image or for none")
    return GroundTruth(
        boxes=np.concatenate([b for b, _, _ in checked]).reshape(-1, 4),
        labels=np.concatenate([c for _, c, _ in checked]).astype(np.int64),
        image=np.repeat(np.arange(len(checked)), counts),
        masks=(np.concatenate([m for _, _, m in checked]).reshape(-1, image_size, image_size)
               if checked and all(has_masks) else None))


# --------------------------------------------------------------------------- matching and sampling
def masked_iou(boxes, box_image, gt):
    """IoU (R, G) of boxes with the ground truth; -1 where a box and an instance are from different images."""
    iou = box_iou(boxes, gt.boxes)
    return np.where(box_image[:, None] == gt.image[None, :], iou, -1.0)


def best_match(iou):
    """For each row of an IoU matrix, the highest IoU and its column; (-1, 0) when the row has none."""
    if iou.shape[1] == 0:
        return np.full(len(iou), -1.0), np.zeros(len(iou), dtype=np.int64)
    best = iou.argmax(axis=1)
    return iou[np.arange(len(iou)), best], best


def rank_within_groups(groups, keys):
    """rank[i]: how many items of i's group come before i when the group is sorted by key (ties by index)."""
    order = np.lexsort((keys, groups))
    sorted_groups = groups[order]
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - np.searchsorted(sorted_groups, sorted_groups, side="left")
    return rank


def sample_balanced(labels, groups, n_groups, per_group, positive_fraction, rng):
    """Which items to train on: in each group, at most int(per_group * positive_fraction) positives
    (label 1) chosen at random, then random negatives (label 0) up to per_group in all; label -1 is
    never chosen. A random key per item, ranked within (group, label), makes the choice in one sort."""
    rank = rank_within_groups(groups * 3 + (labels + 1), rng.random(len(labels)))
    positive = (labels == 1) & (rank < int(per_group * positive_fraction))
    positives_per_group = np.bincount(groups[positive], minlength=n_groups)
    negative = (labels == 0) & (rank < per_group - positives_per_group[groups])
    return positive | negative


# --------------------------------------------------------------------------- RPN targets
def _best_anchor_of_each_instance(iou):
    """Rows that are some instance's best match (ties included), so that every object has a positive
    anchor even when none reaches the positive IoU."""
    if iou.shape[1] == 0:
        return np.zeros(len(iou), dtype=bool)
    column_best = iou.max(axis=0)
    return ((iou == column_best) & (column_best > 0)).any(axis=1)


def anchor_targets(anchors, gt, batch_size, config, rng):
    """RPN targets for every anchor of every image.

    An anchor is positive when its IoU with some instance of its image is >= rpn_positive_iou, or it
    is an instance's best anchor; negative when its best IoU is < rpn_negative_iou; ignored between.
    Then rpn_anchors_per_image are sampled per image, at most rpn_positive_fraction of them positive,
    and the rest become ignored (-1). Returns labels (N, A) in {1, 0, -1} and box targets (N, A, 4)
    (the encoded deltas to the matched instance, zero except at positives).
    """
    n_anchors = len(anchors)
    image = np.repeat(np.arange(batch_size), n_anchors)
    boxes = np.tile(anchors, (batch_size, 1))
    same_image = np.arange(batch_size)[:, None, None] == gt.image[None, None, :]        # (N, 1, G)
    iou = np.where(same_image, box_iou(anchors, gt.boxes)[None], -1.0).reshape(len(boxes), -1)
    best_iou, best_gt = best_match(iou)
    labels = np.full(len(boxes), -1, dtype=np.int64)
    labels[best_iou < config.rpn_negative_iou] = 0
    labels[(best_iou >= config.rpn_positive_iou) | _best_anchor_of_each_instance(iou)] = 1
    sampled = sample_balanced(labels, image, batch_size, config.rpn_anchors_per_image,
                              config.rpn_positive_fraction, rng)
    labels = np.where(sampled, labels, -1)
    box_targets = np.zeros((len(boxes), 4))
    positive = labels == 1
    box_targets[positive] = encode_boxes(boxes[positive], gt.boxes[best_gt[positive]], config.box_std)
    return labels.reshape(batch_size, n_anchors), box_targets.reshape(batch_size, n_anchors, 4)


# --------------------------------------------------------------------------- ROI targets
@dataclass
class RoiTargets:
    """The ROIs sampled for the heads, with what each should predict."""

    rois: np.ndarray         # (K, 5) float64 (image index, x1, y1, x2, y2)
    labels: np.ndarray       # (K,) int64 class of the matched instance, 0 for background ROIs
    box_targets: np.ndarray  # (K, 4) deltas from the ROI to its instance (zero for background)
    matched: np.ndarray      # (K,) int64 index into the ground truth (meaningful where labels > 0)


def roi_targets(proposals, gt, batch_size, config, rng):
    """Sample rois_per_image ROIs per image from the proposals (K, 5) for the box and mask heads.

    The ground-truth boxes join the proposals (early in training the RPN proposes little, and the
    heads still see perfect positives). A candidate whose best IoU with an instance of its image is
    >= roi_positive_iou is positive and takes that instance's class; the others are background. At
    most roi_positive_fraction of the sampled ROIs are positive; background fills the rest, as far
    as there is enough of it.
    """
    candidates = np.concatenate([proposals.reshape(-1, 5), np.column_stack([gt.image, gt.boxes])])
    image = candidates[:, 0].astype(np.int64)
    best_iou, best_gt = best_match(masked_iou(candidates[:, 1:], image, gt))
    positive = (best_iou >= config.roi_positive_iou).astype(np.int64)
    keep = np.flatnonzero(sample_balanced(positive, image, batch_size, config.rois_per_image,
                                          config.roi_positive_fraction, rng))
    rois, matched, positive = candidates[keep], best_gt[keep], positive[keep] == 1
    box_targets = np.zeros((len(keep), 4))
    box_targets[positive] = encode_boxes(rois[positive, 1:], gt.boxes[matched[positive]], config.box_std)
    labels = np.zeros(len(keep), dtype=np.int64)
    labels[positive] = gt.labels[matched[positive]]
    return RoiTargets(rois=rois, labels=labels, box_targets=box_targets, matched=matched)


def mask_targets(gt_masks, matched, rois, size):
    """What the mask head should output for each positive ROI: its instance's full-size mask cropped
    to the ROI and resized to size x size, 0/1 as float32.

    It is exactly RoIAlign applied to the (G, 1, H, W) stack of masks, each ROI reading the mask of
    its matched instance (the instance index plays the role of the batch index): bilinear
    resampling in one vectorised call, then a threshold at 0.5 (torchvision does the same).
    """
    masks = Tensor(gt_masks[:, None].astype(np.float32))
    boxes = np.column_stack([matched, rois[:, 1:]])
    with no_grad():
        crops = F.roi_align(masks, boxes, size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return (crops.numpy()[:, 0] >= 0.5).astype(np.float32)
