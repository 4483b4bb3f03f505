"""From head outputs to detections: per-class boxes, score threshold, per-class NMS, and masks pasted
back into the image.
"""
from dataclasses import dataclass

import numpy as np

from ...ops.boxes import batched_nms, clip_boxes, decode_boxes, remove_small_boxes
from .targets import rank_within_classes


@dataclass
class Detections:
    """The detections of a batch, flattened like the ROIs: row i belongs to image ``image[i]``."""

    image: np.ndarray    # (D,) int64
    boxes: np.ndarray    # (D, 4) float64 (x1, y1, x2, y2) pixels
    labels: np.ndarray   # (D,) int64 classes 1 .. num_classes - 1
    scores: np.ndarray   # (D,) float64 softmax probability of the class

    def rois(self):
        """(D, 5) boxes with their image index, the form RoIAlign takes."""
        return np.column_stack([self.image, self.boxes])


def select_detections(rois, class_probs, deltas, config, score_threshold):
    """Detections from the box head's outputs for the ROIs (K, 5).

    Every ROI proposes one box per object class (its deltas for that class applied to it), scored by
    that class's probability (K, C). Boxes scoring below ``score_threshold`` or thinner than
    min_box_size go; NMS at detection_nms_threshold runs within each (image, class), so a circle
    never suppresses an overlapping square; the max_detections best per image stay.
    """
    n_rois, n_classes = class_probs.shape
    boxes = decode_boxes(rois[:, None, 1:], deltas, config.box_std)                  # (K, C, 4)
    boxes = clip_boxes(boxes, config.image_size, config.image_size)[:, 1:].reshape(-1, 4)
    scores = class_probs[:, 1:].reshape(-1)                                          # background dropped
    labels = np.tile(np.arange(1, n_classes), n_rois)
    image = np.repeat(rois[:, 0].astype(np.int64), n_classes - 1)
    candidates = np.flatnonzero(scores > score_threshold)
    candidates = candidates[remove_small_boxes(boxes[candidates], config.min_box_size)]
    keep = candidates[batched_nms(boxes[candidates], scores[candidates], image[candidates] * n_classes
                                  + labels[candidates], config.detection_nms_threshold)]
    n_images = int(image.max()) + 1 if len(image) else 1
    rank = rank_within_classes(image[keep][None], np.arange(len(keep))[None], n_images)[0]  # in score order
    keep = keep[rank < config.max_detections]
    return Detections(image=image[keep], boxes=boxes[keep], labels=labels[keep], scores=scores[keep])


def _paste_weights(low, high, length, mask_size):
    """W (D, length, mask_size): row y of W[d] holds the linear-interpolation weights of the mask
    cells for image pixel y, for boxes spanning [low[d], high[d]) along this axis.

    Pixel y's centre y + 0.5 falls at u = (y + 0.5 - low) / (high - low) * M - 0.5 in mask cells
    (whose centres are at 0.5, 1.5, ... in mask units); u is clamped to [0, M - 1] and spread over
    floor(u) and floor(u) + 1. Pixels whose centre is outside the box get no weight at all.
    """
    centres = np.arange(length) + 0.5
    extent = np.maximum(high - low, 1e-6)[:, None]
    u = np.clip((centres - low[:, None]) / extent * mask_size - 0.5, 0, mask_size - 1)   # (D, length)
    floor = np.minimum(np.floor(u), mask_size - 2)
    frac = u - floor
    inside = (centres >= low[:, None]) & (centres < high[:, None])
    cells = np.arange(mask_size)
    weights = ((cells == floor[..., None]) * (1 - frac)[..., None]
               + (cells == floor[..., None] + 1) * frac[..., None])
    return weights * inside[..., None]


def paste_masks(masks, boxes, height, width):
    """Each (M, M) mask of ``masks`` (D, M, M) resized bilinearly into its box (D, 4) of an image of
    height x width; zero outside the box. Returns (D, height, width) float probabilities.

    Bilinear resizing is separable, so pasting mask d is two small matrix products,
    W_y[d] @ mask[d] @ W_x[d]^T with the interpolation matrices of ``_paste_weights``: the whole batch
    in one batched matmul, without a loop over masks or pixels.
    """
    masks, boxes = np.asarray(masks, dtype=np.float64), np.asarray(boxes, dtype=np.float64)
    size = masks.shape[-1]
    rows = _paste_weights(boxes[:, 1], boxes[:, 3], height, size)                  # (D, H, M)
    cols = _paste_weights(boxes[:, 0], boxes[:, 2], width, size)                   # (D, W, M)
    return rows @ masks @ cols.transpose(0, 2, 1)
