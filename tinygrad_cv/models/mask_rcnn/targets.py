"""Training targets: which anchors and ROIs count as objects, where their boxes should move, and the
28 x 28 mask each positive ROI should predict.

The ground truth of a batch is kept *flat*: every instance of every image in one array, each with
the index of its image, the layout RoIAlign uses for its (batch_index, x1, y1, x2, y2) boxes.
Matching boxes to the ground truth is then a single IoU matrix for the whole batch, with the pairs
from different images masked out, and sampling a fixed number per image is a sort, not a loop over
images.

This is bookkeeping on small arrays of boxes, never differentiated. The anchors' targets depend on the
anchors and the ground truth alone, both on the host, so they are computed there. The ROIs' depend on
the proposals, which the model computes on its device: they are computed there too, in arrays of fixed
size (a fixed number of slots per image, with flags for the empty ones), so that a GPU never waits for
the host to learn how many there are.
"""
from dataclasses import dataclass

import numpy as np

from ... import backend
from ... import functional as F
from ...autograd import no_grad
from ...backend import deferred
from ...ops.boxes import batched_box_iou, encode_boxes
from ...tensor import Tensor

# the box of an empty slot (no ROI there, or no instance to encode against): finite, so what the heads
# compute from it (weighted 0 in the losses) is finite too
EMPTY_SLOT = (0.0, 0.0, 1.0, 1.0)


# --------------------------------------------------------------------------- ground truth
@dataclass
class GroundTruth:
    """The instances of a batch of images, flattened, on the model's device (``image`` on the host: it
    follows from the shapes alone)."""

    boxes: object        # (G, 4) float64, (x1, y1, x2, y2) in pixels
    labels: object       # (G,) int64 classes, 1 .. num_classes - 1 (0 is the background)
    image: np.ndarray    # (G,) int64, which image of the batch each instance is in (host)
    masks: object        # (G, H, W) uint8 instance masks at image size, or None


def _array_on(value, device):
    """A target's array (or a Tensor's) on ``device``: copied there from elsewhere, as is when already there."""
    return backend.move(value.data if isinstance(value, Tensor) else value, device)


def _check_image_targets(i, target, image_size, num_classes, device):
    """One image's boxes, labels and masks as arrays of ``device``, or a ValueError that says what is
    wrong. Shapes and dtypes are checked at once, values without a read back (on a device a bad value
    raises at the next read, see ``backend.deferred``)."""
    where = f"MaskRCNN: targets[{i}]"
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"{where} must be a dict with 'boxes' (n, 4), 'labels' (n,) and 'instance_masks' "
                         f"(n, H, W), got {type(target).__name__}")
    boxes = _array_on(target["boxes"], device).astype(np.float64)
    labels = _array_on(target["labels"], device)
    xp = backend.array_module(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}['boxes'] must have shape (n, 4) as (x1, y1, x2, y2), got {boxes.shape}")
    if labels.shape != (len(boxes),) or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}['labels'] must be {len(boxes)} integers (one per box), got shape "
                         f"{labels.shape} of {labels.dtype}")
    deferred.check(~xp.isfinite(boxes).all(),
                   lambda: ValueError(f"{where}['boxes'] contains NaN or infinite coordinates"))
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    deferred.check(empty.any(), lambda: ValueError(
        f"{where}['boxes'][{int(xp.flatnonzero(empty)[0])}] = "
        f"{backend.as_host(boxes[xp.flatnonzero(empty)[0]]).tolist()} has x2 <= x1 or y2 <= y1; "
        f"boxes must be (x1, y1, x2, y2) with a positive width and height"))
    deferred.check(((labels < 1) | (labels >= num_classes)).any(), lambda: ValueError(
        f"{where}['labels'] must be classes in 1..{num_classes - 1} (0 is the background), "
        f"got {sorted(set(backend.as_host(labels).tolist()))}"))
    masks = target.get("instance_masks")
    if masks is not None:
        masks = _array_on(masks, device)
        if masks.shape != (len(boxes), image_size, image_size):
            raise ValueError(f"{where}['instance_masks'] must have shape ({len(boxes)}, {image_size}, "
                             f"{image_size}) (one image-size mask per box), got {masks.shape}")
    return boxes, labels.astype(np.int64), masks


def collate_ground_truth(targets, image_size, num_classes, device="cpu"):
    """Check each image's targets (a dict with 'boxes', 'labels' and optionally 'instance_masks', the
    format of ``Coco.targets``) and flatten them into one ``GroundTruth`` on ``device``."""
    checked = [_check_image_targets(i, t, image_size, num_classes, device) for i, t in enumerate(targets)]
    counts = [len(boxes) for boxes, _, _ in checked]
    has_masks = [masks is not None for _, _, masks in checked]
    if any(has_masks) and not all(has_masks):
        raise ValueError(f"MaskRCNN: targets {[i for i, m in enumerate(has_masks) if not m]} have no "
                         f"'instance_masks' while others do; give masks for every image or for none")
    xp = backend.get_xp(device)
    return GroundTruth(
        boxes=xp.concatenate([b for b, _, _ in checked]).reshape(-1, 4) if checked else xp.zeros((0, 4)),
        labels=xp.concatenate([c for _, c, _ in checked]) if checked else xp.zeros(0, dtype=np.int64),
        image=np.repeat(np.arange(len(checked)), counts),
        masks=(xp.concatenate([m for _, _, m in checked]).reshape(-1, image_size, image_size)
               if checked and all(has_masks) else None))


def padded_ground_truth(gt, batch_size):
    """The instances image by image, padded to the most any image has (G'): boxes (N, G', 4), their index
    into the flat ground truth (N, G') and a flag (N, G'), False in the padding; on the ground truth's
    device."""
    xp = backend.array_module(gt.boxes)
    counts = np.bincount(gt.image, minlength=batch_size)
    width = int(counts.max()) if batch_size else 0
    slot = np.arange(len(gt.image)) - np.repeat(np.cumsum(counts) - counts, counts)
    index, valid = np.zeros((batch_size, width), dtype=np.int64), np.zeros((batch_size, width), dtype=bool)
    index[gt.image, slot], valid[gt.image, slot] = np.arange(len(gt.image)), True
    boxes = xp.zeros((batch_size, width, 4))
    boxes[xp.asarray(gt.image), xp.asarray(slot)] = gt.boxes
    return boxes, xp.asarray(index), xp.asarray(valid)


# --------------------------------------------------------------------------- matching and sampling
def best_match(iou):
    """For each row of IoU matrices (..., R, G), the highest IoU and its column; (-1, 0) when G = 0."""
    xp = backend.array_module(iou)
    if iou.shape[-1] == 0:
        return xp.full(iou.shape[:-1], -1.0), xp.zeros(iou.shape[:-1], dtype=np.int64)
    best = iou.argmax(axis=-1)
    return xp.take_along_axis(iou, best[..., None], axis=-1)[..., 0], best


def rank_within_classes(classes, keys, n_classes):
    """rank[b, i]: how many items of row b in i's class (ints 0 .. n_classes - 1) have a smaller key, ties
    broken by index. Two stable sorts (by key, then by class) order each row as a lexicographic sort."""
    xp = backend.array_module(classes)
    by_key = xp.argsort(keys, axis=1, kind="stable")
    order = xp.take_along_axis(by_key, xp.argsort(xp.take_along_axis(classes, by_key, axis=1), axis=1,
                                                  kind="stable"), axis=1)
    position = xp.argsort(order, axis=1, kind="stable")      # where each item lands in its row's order
    counts = (classes[..., None] == xp.arange(n_classes)).sum(axis=1)         # (N, classes)
    first = xp.cumsum(counts, axis=1) - counts                                 # where each class starts
    return position - xp.take_along_axis(first, classes, axis=1)


def sample_balanced(labels, per_row, positive_fraction, keys):
    """Which items to train on, row by row (an image's anchors, or its ROI candidates): in each row of
    ``labels`` (N, C) in {1, 0, -1}, at most int(per_row * positive_fraction) positives (label 1), then
    negatives (label 0) up to per_row in all; label -1 is never chosen. Within a label the items with the
    smallest ``keys`` (N, C) are chosen: random keys make a random choice in one sort. (N, C) bool."""
    rank = rank_within_classes(labels + 1, keys, 3)
    positive = (labels == 1) & (rank < int(per_row * positive_fraction))
    negative = (labels == 0) & (rank < per_row - positive.sum(axis=1, keepdims=True))
    return positive | negative


# --------------------------------------------------------------------------- RPN targets
def _best_anchor_of_each_instance(iou):
    """Rows (anchors) of IoU matrices (N, A, G) that are some instance's best match (ties included), so
    that every object has a positive anchor even when none reaches the positive IoU."""
    xp = backend.array_module(iou)
    if iou.shape[-1] == 0:
        return xp.zeros(iou.shape[:-1], dtype=bool)
    column_best = iou.max(axis=1, keepdims=True)
    return ((iou == column_best) & (column_best > 0)).any(axis=2)


def anchor_targets(anchors, gt, batch_size, config, rng):
    """RPN targets for every anchor of every image, on the ground truth's device.

    An anchor is positive when its IoU with some instance of its image is >= rpn_positive_iou, or it
    is an instance's best anchor; negative when its best IoU is < rpn_negative_iou; ignored between.
    Then rpn_anchors_per_image are sampled per image, at most rpn_positive_fraction of them positive,
    and the rest become ignored (-1). Returns labels (N, A) in {1, 0, -1} and box targets (N, A, 4)
    (the encoded deltas to the matched instance, zero except at positives).
    """
    xp = backend.array_module(gt.boxes)
    anchors = xp.asarray(anchors)
    gt_boxes, _, gt_valid = padded_ground_truth(gt, batch_size)
    iou = xp.where(gt_valid[:, None, :], batched_box_iou(anchors, gt_boxes), -1.0)      # (N, A, G')
    best_iou, best = best_match(iou)
    labels = xp.where(best_iou < config.rpn_negative_iou, 0, -1)
    labels = xp.where((best_iou >= config.rpn_positive_iou) | _best_anchor_of_each_instance(iou), 1, labels)
    keys = xp.asarray(rng.random(labels.shape))
    labels = xp.where(sample_balanced(labels, config.rpn_anchors_per_image, config.rpn_positive_fraction, keys),
                      labels, -1)
    if gt_boxes.shape[1] == 0:
        return labels, xp.zeros(labels.shape + (4,))
    here, empty = (labels == 1)[..., None], xp.asarray(EMPTY_SLOT)          # elsewhere encode(empty, empty) = 0
    instance = xp.where(here, xp.take_along_axis(gt_boxes, best[..., None], axis=1), empty)
    return labels, encode_boxes(xp.where(here, anchors, empty), instance, config.box_std)


# --------------------------------------------------------------------------- ROI targets
@dataclass
class RoiTargets:
    """The ROIs sampled for the heads, with what each should predict: ``per_image`` slots per image, image
    by image, the positive ROIs first (all within an image's first ``mask_slots``), then the background
    ones, then empty slots (``valid`` False) where an image has fewer candidates. Arrays of the device."""

    rois: object             # (K, 5) float64 (image index, x1, y1, x2, y2), K = N * per_image
    labels: object           # (K,) int64 class of the matched instance, 0 for background and empty slots
    box_targets: object      # (K, 4) deltas from the ROI to its instance (zero but at positives)
    matched: object          # (K,) int64 index into the ground truth (meaningful at positives)
    valid: object            # (K,) bool: a sampled ROI (not an empty slot)
    positive: object         # (K,) bool: a positive ROI (labels > 0)
    per_image: int
    mask_slots: int          # the first mask_slots of each image hold all its positives

    def mask_rows(self):
        """The rows the mask head runs on, which hold every positive ROI. On a device: the first mask_slots
        of each image, a count known without a read back (the background slots among them weigh 0 in the
        loss). On the CPU, where counting costs nothing: the positive rows alone, which spares the head the
        background slots' work (in lesson 16 about two thirds of them); the loss is the same."""
        if backend.device_of_array(self.positive) == "cpu":
            return np.flatnonzero(self.positive)
        xp = backend.array_module(self.positive)
        return xp.arange(len(self.positive)).reshape(-1, self.per_image)[:, :self.mask_slots].reshape(-1)


def roi_targets(boxes, valid, gt, config, rng):
    """Sample rois_per_image ROIs per image for the box and mask heads from the proposals, ``boxes`` (N, P, 4)
    with ``valid`` (N, P) as ``propose`` gives them, on the model's device; nothing is read back.

    The ground-truth boxes join the proposals (early in training the RPN proposes little, and the
    heads still see perfect positives). A candidate whose best IoU with an instance of its image is
    >= roi_positive_iou is positive and takes that instance's class; the others are background. At
    most roi_positive_fraction of the sampled ROIs are positive; background fills the rest, as far
    as there is enough of it (``RoiTargets.valid`` marks the slots filled).
    """
    xp = backend.array_module(boxes)
    n_images = boxes.shape[0]
    gt_boxes, gt_index, gt_valid = padded_ground_truth(gt, n_images)
    candidates = xp.concatenate([boxes, gt_boxes], axis=1)                              # (N, C, 4)
    iou = xp.where(gt_valid[:, None, :], batched_box_iou(candidates, gt_boxes), -1.0)   # (N, C, G')
    best_iou, best = best_match(iou)
    labels = xp.where(xp.concatenate([valid, gt_valid], axis=1),
                      (best_iou >= config.roi_positive_iou).astype(np.int64), -1)
    keys = xp.asarray(rng.random(labels.shape))
    sampled = sample_balanced(labels, config.rois_per_image, config.roi_positive_fraction, keys)
    kind = xp.where(sampled, 1 - labels, 2)                        # 0 positive, 1 background, 2 not sampled
    per_image = min(config.rois_per_image, candidates.shape[1])
    order = xp.argsort(kind, axis=1, kind="stable")[:, :per_image]     # positives first, in candidate order
    kind, best = (xp.take_along_axis(a, order, axis=1) for a in (kind, best))
    positive = kind == 0
    rois = xp.where((kind < 2)[..., None], xp.take_along_axis(candidates, order[..., None], axis=1),
                    xp.asarray(EMPTY_SLOT))
    box_targets, matched, classes = _matched_targets(xp, rois, positive, best, gt_boxes, gt_index, gt, config)
    image = xp.broadcast_to(xp.arange(n_images, dtype=np.float64)[:, None, None], (n_images, per_image, 1))

    def flat(a):
        return a.reshape((n_images * per_image,) + a.shape[2:])
    return RoiTargets(rois=flat(xp.concatenate([image, rois], axis=2)), labels=flat(classes),
                      box_targets=flat(box_targets), matched=flat(matched), valid=flat(kind < 2),
                      positive=flat(positive), per_image=per_image,
                      mask_slots=min(int(config.rois_per_image * config.roi_positive_fraction), per_image))


def _matched_targets(xp, rois, positive, best, gt_boxes, gt_index, gt, config):
    """For ROI slots (N, S, 4) and their best instance (column ``best`` of the padded ground truth): the
    box deltas to it and its class at the positive slots (zero elsewhere), and its flat index."""
    if gt_boxes.shape[1] == 0:
        zeros = xp.zeros(best.shape, dtype=np.int64)
        return xp.zeros(rois.shape), zeros, zeros
    here, empty = positive[..., None], xp.asarray(EMPTY_SLOT)     # elsewhere encode(empty, empty) = 0
    instance = xp.where(here, xp.take_along_axis(gt_boxes, best[..., None], axis=1), empty)
    box_targets = encode_boxes(xp.where(here, rois, empty), instance, config.box_std)
    matched = xp.take_along_axis(gt_index, best, axis=1)
    classes = xp.where(positive, gt.labels[matched], 0)
    return box_targets, matched, classes


def mask_targets(gt_masks, matched, rois, size):
    """What the mask head should output for each ROI: its instance's full-size mask cropped to the ROI and
    resized to size x size, 0/1 as a float32 array of the ROIs' device (nothing is read back).

    It is exactly RoIAlign applied to the (G, 1, H, W) stack of masks, each ROI reading the mask of
    its matched instance (the instance index plays the role of the batch index): bilinear
    resampling in one vectorised call, then a threshold at 0.5 (torchvision does the same).
    """
    xp, device = backend.array_module(rois), backend.device_of_array(rois)
    masks = Tensor(gt_masks[:, None].astype(np.float32), device=device)
    boxes = xp.concatenate([xp.asarray(matched, dtype=np.float64)[:, None], rois[:, 1:]], axis=1)
    with no_grad():
        crops = F.roi_align(masks, boxes, size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return (crops.data[:, 0] >= 0.5).astype(np.float32)
