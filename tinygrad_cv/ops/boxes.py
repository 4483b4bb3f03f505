"""Boxes and masks for detection: areas, IoU, non-maximum suppression, the box coder, anchors.

Conventions (torchvision's):
  * a box is (x1, y1, x2, y2) in continuous pixel coordinates: pixel (row r, column c) covers
    [c, c+1) x [r, r+1), so a box around exactly that pixel is (c, r, c+1, r+1) and its area
    is (x2 - x1) * (y2 - y1) = 1 (no "+1");
  * boxes are arrays of shape (N, 4); masks are (N, H, W) arrays of 0/1 (or bool).

These are array functions, not differentiable: they take NumPy or CuPy arrays and compute with
that array's module. A Tensor may be passed instead of any array argument; the result then comes
back as a Tensor on the same device (outside the autograd graph).
"""
import functools
import math

import numpy as np

from .. import backend
from ..backend import launch
from ..tensor import Tensor

# decode_boxes never lets a box grow by more than 1000/16 per side (torchvision's bbox_xform_clip)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _accepts_tensors(fn):
    """Let an array function take Tensors: their arrays go in, and the result comes back as a
    Tensor (each result, for a function that returns several) on the first Tensor argument's device."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device for a in args if isinstance(a, Tensor)), None)
        out = fn(*[a.data if isinstance(a, Tensor) else a for a in args], **kwargs)
        if device is None:
            return out
        return tuple(Tensor(o, device=device) for o in out) if isinstance(out, tuple) else Tensor(out, device=device)
    return wrapper


def _boxes(boxes, fn, name="boxes"):
    """``boxes`` as an array of shape (..., 4), or a ValueError naming ``fn`` and the argument."""
    boxes = boxes if backend.is_device_array(boxes) else np.asarray(boxes, dtype=np.float64)
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: {name} must have shape (N, 4) as (x1, y1, x2, y2), got shape {boxes.shape}")
    return boxes


# --------------------------------------------------------------------------- areas and overlaps
@_accepts_tensors
def box_area(boxes):
    """(x2 - x1) * (y2 - y1) for each box."""
    boxes = _boxes(boxes, "box_area")
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _safe_ratio(xp, numerator, denominator):
    """numerator / denominator, and 0 where the denominator is 0 (two empty boxes or masks)."""
    return numerator / xp.where(denominator > 0, denominator, 1)


@_accepts_tensors
def box_iou(boxes1, boxes2):
    """(N, M) matrix of intersection over union.

    IoU = area(a & b) / (area(a) + area(b) - area(a & b)). Pairs whose union is empty get 0
    (torchvision gives NaN there).
    """
    boxes1, boxes2 = _boxes(boxes1, "box_iou", "boxes1"), _boxes(boxes2, "box_iou", "boxes2")
    if boxes1.ndim != 2 or boxes2.ndim != 2:
        raise ValueError(f"box_iou: boxes1 and boxes2 must have shape (N, 4) and (M, 4), got {boxes1.shape} and "
                         f"{boxes2.shape} (batched_box_iou takes a batch of them)")
    return _pairwise_iou(boxes1, boxes2)


@_accepts_tensors
def batched_box_iou(boxes1, boxes2):
    """``box_iou`` of each pair of rows: boxes (..., N, 4) and (..., M, 4) give IoUs (..., N, M), the
    leading dimensions broadcast (a batch of images, each with its own boxes)."""
    return _pairwise_iou(_boxes(boxes1, "batched_box_iou", "boxes1"), _boxes(boxes2, "batched_box_iou", "boxes2"))


def _pairwise_iou(boxes1, boxes2):
    """IoU (..., N, M) of checked boxes (..., N, 4) and (..., M, 4)."""
    xp = backend.array_module(boxes1)
    lo = xp.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    hi = xp.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    size = xp.clip(hi - lo, 0, None)
    inter = size[..., 0] * size[..., 1]
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    return _safe_ratio(xp, inter, area1[..., :, None] + area2[..., None, :] - inter)


@_accepts_tensors
def mask_iou(masks1, masks2):
    """(N, M) IoU matrix of binary masks (N, H, W) and (M, H, W): the intersections of all pairs
    are one matrix product of the flattened masks. Pairs of empty masks get 0."""
    masks1 = masks1 if backend.is_device_array(masks1) else np.asarray(masks1)
    masks2 = masks2 if backend.is_device_array(masks2) else np.asarray(masks2)
    if masks1.ndim != 3 or masks2.ndim != 3 or masks1.shape[1:] != masks2.shape[1:]:
        raise ValueError(f"mask_iou: expected masks of shapes (N, H, W) and (M, H, W) with the same H, W, "
                         f"got {masks1.shape} and {masks2.shape}")
    xp = backend.array_module(masks1)
    pixels = masks1.shape[1] * masks1.shape[2]
    dtype = np.float32 if pixels < 2 ** 24 else np.float64   # counts of 0/1 stay exact below 2^24
    flat1 = (masks1.reshape(len(masks1), pixels) != 0).astype(dtype)   # explicit size: N or M may be 0
    flat2 = (masks2.reshape(len(masks2), pixels) != 0).astype(dtype)
    inter = flat1 @ flat2.T
    union = flat1.sum(axis=1)[:, None] + flat2.sum(axis=1)[None, :] - inter
    return _safe_ratio(xp, inter, union)


# --------------------------------------------------------------------------- non-maximum suppression
@_accepts_tensors
def nms(boxes, scores, iou_threshold):
    """Indices of the boxes kept by greedy non-maximum suppression, in decreasing score order.

    Walk the boxes from the highest score down; keep a box unless its IoU with an already kept box
    is greater than ``iou_threshold``. Each kept box removes all the boxes it suppresses at once,
    so the loop runs once per *kept* box. Equal scores keep their input order (stable sort).
    """
    boxes = _boxes(boxes, "nms")
    if np.shape(scores) != boxes.shape[:1]:
        raise ValueError(f"nms: scores must have shape ({len(boxes)},) to match boxes {boxes.shape}, "
                         f"got {np.shape(scores)}")
    xp = backend.array_module(boxes)
    scores = xp.asarray(scores)
    remaining = xp.argsort(-scores, kind="stable")
    keep = []
    while remaining.size:
        best, rest = remaining[:1], remaining[1:]
        keep.append(best)
        remaining = rest[_pairwise_iou(boxes[best], boxes[rest])[0] <= iou_threshold]
    return xp.concatenate(keep) if keep else xp.zeros(0, dtype=np.int64)


@_accepts_tensors
def batched_nms(boxes, scores, idxs, iou_threshold):
    """NMS within each category ``idxs[i]`` separately, in one call.

    The trick: shift every category's boxes by its own offset, larger than the span of all
    coordinates, so boxes of different categories never overlap; then run plain ``nms``.
    """
    boxes = _boxes(boxes, "batched_nms")
    xp = backend.array_module(boxes)
    if boxes.shape[0] == 0:
        return xp.zeros(0, dtype=np.int64)
    span = float(boxes.max() - boxes.min()) + 1
    shifted = boxes.astype(np.float64) + (xp.asarray(idxs, dtype=np.float64) * span)[:, None]
    return nms(shifted, scores, iou_threshold)


@_accepts_tensors
def padded_nms(boxes, scores, valid, groups, iou_threshold, max_output):
    """Greedy NMS row by row, with results of a fixed size: for each row b of boxes (B, M, 4) with scores
    (B, M), the indices of the first ``max_output`` boxes that ``batched_nms`` keeps among the valid ones
    (``valid`` (B, M) bool; ``groups`` (B, M) ints: boxes of different groups never suppress each other),
    best score first. Returns ``(indices, kept)``, both (B, max_output); ``kept[b, j]`` is False where row b
    keeps fewer than j + 1 boxes (``indices`` is 0 there). A fixed size needs no count read back from a GPU
    (TensorFlow's ``non_max_suppression_padded``). On a device every row runs in one kernel launch
    (``launch.nms_rows``, over the row sorted by score); on the CPU each row is ``batched_nms`` over its
    best boxes first (``first_kept``). Both keep the same boxes: greedy NMS decides a box from the boxes
    scored above it alone, and equal scores keep their index order."""
    boxes = _boxes(boxes, "padded_nms")
    if boxes.ndim != 3 or tuple(scores.shape) != boxes.shape[:2] or tuple(valid.shape) != boxes.shape[:2] \
            or tuple(groups.shape) != boxes.shape[:2]:
        raise ValueError(f"padded_nms: boxes must be (B, M, 4) with scores, valid and groups (B, M), got "
                         f"{boxes.shape}, {scores.shape}, {valid.shape} and {groups.shape}")
    if backend.device_of_array(boxes) == "cpu":
        return _padded_nms_by_rows(boxes, scores, valid, groups, iou_threshold, max_output)
    xp = backend.array_module(boxes)
    rows = xp.arange(boxes.shape[0])[:, None]
    order = xp.argsort(xp.where(valid, -scores, xp.inf), axis=1, kind="stable")  # valid boxes first, best first
    keep = launch.nms_rows(boxes[rows, order], groups[rows, order], valid[rows, order], iou_threshold)
    rank = xp.cumsum(keep, axis=1) - 1
    slot = xp.where((keep == 1) & (rank < max_output), rank, max_output)   # the rest go to a spare column
    indices = xp.zeros((boxes.shape[0], max_output + 1), dtype=np.int64)
    indices[rows, slot] = order
    kept = xp.arange(max_output)[None, :] < keep.sum(axis=1, keepdims=True)
    return indices[:, :max_output], kept


def _padded_nms_by_rows(boxes, scores, valid, groups, iou_threshold, max_output):
    indices = np.zeros((boxes.shape[0], max_output), dtype=np.int64)
    kept = np.zeros((boxes.shape[0], max_output), dtype=bool)
    for b in range(boxes.shape[0]):
        candidates = np.flatnonzero(valid[b])
        keep = candidates[first_kept(boxes[b, candidates], scores[b, candidates], groups[b, candidates],
                                     iou_threshold, max_output)]
        indices[b, :len(keep)], kept[b, :len(keep)] = keep, True
    return indices, kept


def first_kept(boxes, scores, groups, iou_threshold, n):
    """``batched_nms(boxes, scores, groups, iou_threshold)[:n]``, usually much faster. Greedy NMS decides each
    box from the boxes scored above it alone, so NMS over the m best boxes keeps the same first boxes as NMS
    over all of them: try the n best, then twice as many, ..., until n are kept or all boxes were tried
    (scores tie in index order both ways)."""
    order = np.argsort(-scores, kind="stable")
    m = max(n, 1)
    while True:
        best = order[:m]
        keep = best[batched_nms(boxes[best], scores[best], groups[best], iou_threshold)]
        if len(keep) >= n or m >= len(order):
            return keep[:n]
        m *= 2


# --------------------------------------------------------------------------- the box coder
def _centres_and_sizes(boxes):
    width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * width, boxes[..., 1] + 0.5 * height, width, height


@_accepts_tensors
def encode_boxes(anchors, gt, std=(0.1, 0.1, 0.2, 0.2)):
    """Regression targets (dx, dy, dw, dh) that move each anchor onto its ground-truth box::

        dx = (gx - ax) / aw / std[0]     dw = log(gw / aw) / std[2]
        dy = (gy - ay) / ah / std[1]     dh = log(gh / ah) / std[3]

    with (x, y) the box centre and (w, h) its size. Dividing by ``std`` gives targets of roughly
    unit scale (torchvision's BoxCoder with weights 1/std = (10, 10, 5, 5)).
    """
    anchors, gt = _boxes(anchors, "encode_boxes", "anchors"), _boxes(gt, "encode_boxes", "gt")
    xp = backend.array_module(anchors)
    ax, ay, aw, ah = _centres_and_sizes(anchors)
    gx, gy, gw, gh = _centres_and_sizes(gt)
    deltas = xp.stack([(gx - ax) / aw, (gy - ay) / ah, xp.log(gw / aw), xp.log(gh / ah)], axis=-1)
    return deltas / xp.asarray(std, dtype=deltas.dtype)


@_accepts_tensors
def decode_boxes(anchors, deltas, std=(0.1, 0.1, 0.2, 0.2)):
    """Boxes (x1, y1, x2, y2) from anchors and deltas (dx, dy, dw, dh): the inverse of
    ``encode_boxes``. dw and dh are clamped at log(1000/16) so that exp() cannot overflow."""
    anchors, deltas = _boxes(anchors, "decode_boxes", "anchors"), _boxes(deltas, "decode_boxes", "deltas")
    xp = backend.array_module(anchors)
    d = deltas * xp.asarray(std, dtype=deltas.dtype)
    ax, ay, aw, ah = _centres_and_sizes(anchors)
    x, y = ax + d[..., 0] * aw, ay + d[..., 1] * ah
    w = aw * xp.exp(xp.minimum(d[..., 2], BBOX_XFORM_CLIP))
    h = ah * xp.exp(xp.minimum(d[..., 3], BBOX_XFORM_CLIP))
    return xp.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], axis=-1)


# --------------------------------------------------------------------------- anchors and clean-up
def generate_anchors(scales, ratios, feature_shapes, strides):
    """Anchor boxes for a feature pyramid, one scale per level (Matterport's Mask R-CNN layout).

    Level l has feature map ``feature_shapes[l] = (H, W)`` with ``strides[l]`` image pixels per cell
    and anchors of area ``scales[l]^2``, one per ratio = width / height:
    height = scale / sqrt(ratio), width = scale * sqrt(ratio).
    Anchors are centred on the cells' centres ((i + 0.5) * stride, where Matterport uses
    i * stride) and written (x1, y1, x2, y2). Returns a list with one (H * W * len(ratios), 4)
    float64 NumPy array per level, ordered by row, then column, then ratio (the order of an RPN
    head's output permuted from (A, H, W) to (H, W, A)).
    """
    if not len(scales) == len(feature_shapes) == len(strides):
        raise ValueError(f"generate_anchors: need one scale, feature shape and stride per level, got "
                         f"{len(scales)} scales, {len(feature_shapes)} shapes and {len(strides)} strides")
    ratios = np.asarray(ratios, dtype=np.float64)
    return [_level_anchors(scale, ratios, shape, stride)
            for scale, shape, stride in zip(scales, feature_shapes, strides)]


def _level_anchors(scale, ratios, shape, stride):
    half_w = 0.5 * scale * np.sqrt(ratios)
    half_h = 0.5 * scale / np.sqrt(ratios)
    cy = (np.arange(shape[0]) + 0.5) * stride
    cx = (np.arange(shape[1]) + 0.5) * stride
    cy, cx = cy[:, None, None], cx[None, :, None]                     # (H, 1, 1), (1, W, 1) x (R,)
    corners = np.broadcast_arrays(cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    return np.stack(corners, axis=-1).reshape(-1, 4)


@_accepts_tensors
def clip_boxes(boxes, height, width):
    """Boxes clipped to the image: x to [0, width], y to [0, height]."""
    boxes = _boxes(boxes, "clip_boxes")
    xp = backend.array_module(boxes)
    limit = xp.asarray([width, height, width, height], dtype=boxes.dtype)
    return xp.clip(boxes, 0, limit)


@_accepts_tensors
def remove_small_boxes(boxes, min_size):
    """Indices of the boxes whose width and height are both at least ``min_size``."""
    boxes = _boxes(boxes, "remove_small_boxes")
    xp = backend.array_module(boxes)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return xp.flatnonzero((width >= min_size) & (height >= min_size))
