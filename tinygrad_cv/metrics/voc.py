"""VOC-style average precision at one IoU threshold, per image, as the Matterport Mask R-CNN
"shapes" notebook reports it (``compute_ap``), with its duplicate-match bug fixed.

Predictions are taken in decreasing score order; each is matched to the unmatched ground truth of
the same class with the highest IoU, if that IoU is at least the threshold. A ground truth can be
matched once: a second detection of the same object is a false positive, so AP never exceeds 1.
(The notebook's early ``gt_match[j] > 0`` test let ground truth 0 be matched again and again.)

AP is the area under the precision-recall curve after replacing precision by its monotone
envelope (the best precision at this recall or beyond), summed over every recall step
("all-point" interpolation, VOC 2010 and later).
"""
import numpy as np

from .. import backend
from ..ops.boxes import box_iou, mask_iou


def voc_ap(recalls, precisions):
    """Area under the interpolated precision-recall curve.

    recalls, precisions: the curve in ranking order (recall non-decreasing). The curve is closed at
    (0, 0) and (1, 0), precision becomes its running maximum from the right, and the area is
    sum (r[i] - r[i-1]) * p[i] over the steps where recall increases.
    """
    recalls = np.concatenate([[0.0], np.asarray(recalls, dtype=np.float64), [1.0]])
    precisions = np.concatenate([[0.0], np.asarray(precisions, dtype=np.float64), [0.0]])
    envelope = np.maximum.accumulate(precisions[::-1])[::-1]
    steps = np.flatnonzero(recalls[1:] != recalls[:-1]) + 1
    return float(np.sum((recalls[steps] - recalls[steps - 1]) * envelope[steps]))


def compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5):
    """Greedy matching of predictions (best score first) to ground truths.

    Boxes are (N, 4) as (x1, y1, x2, y2); masks are (N, H, W) binary (the Matterport code uses
    (H, W, N)), or both None to match on box IoU. Returns (gt_match, pred_match, overlaps):
    gt_match[j] is the index (into the score-sorted predictions) of the prediction matched to ground
    truth j, or -1; pred_match[i] the ground truth matched to the i-th best prediction, or -1;
    overlaps the (n_pred, n_gt) IoU matrix with predictions in score order. Equal scores keep their
    input order.
    """
    gt_class_ids = backend.as_host(gt_class_ids).reshape(-1)
    pred_class_ids = backend.as_host(pred_class_ids).reshape(-1)
    order = np.argsort(-backend.as_host(pred_scores).reshape(-1), kind="stable")
    if (gt_masks is None) != (pred_masks is None):
        raise ValueError("compute_matches: give masks for both ground truths and predictions, or for neither")
    if gt_masks is None:
        overlaps = box_iou(backend.as_host(pred_boxes).reshape(-1, 4)[order], backend.as_host(gt_boxes).reshape(-1, 4))
    else:
        overlaps = mask_iou(backend.as_host(pred_masks)[order], backend.as_host(gt_masks))
    same_class = pred_class_ids[order][:, None] == gt_class_ids[None, :]
    candidates = np.where(same_class & (overlaps >= iou_threshold), overlaps, -1.0)
    gt_match = -np.ones(len(gt_class_ids), dtype=np.int64)
    pred_match = -np.ones(len(order), dtype=np.int64)
    for i, row in enumerate(candidates):
        row = np.where(gt_match < 0, row, -1.0)               # each ground truth is matched at most once
        j = int(np.argmax(row)) if row.size else -1
        if j >= 0 and row[j] >= 0:
            gt_match[j], pred_match[i] = i, j
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision of one image's predictions at ``iou_threshold`` (Matterport's signature).

    Returns (ap, precisions, recalls, overlaps): precision and recall after each prediction in score
    order, and the IoU matrix. With no ground truth the AP is undefined and returned as NaN (average
    over images with np.nanmean).
    """
    gt_match, pred_match, overlaps = compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes,
                                                     pred_class_ids, pred_scores, pred_masks, iou_threshold)
    hits = np.cumsum(pred_match >= 0)
    precisions = hits / np.arange(1, len(pred_match) + 1)
    if len(gt_match) == 0:
        return float("nan"), precisions, np.zeros(len(pred_match)), overlaps
    recalls = hits / len(gt_match)
    return voc_ap(recalls, precisions), precisions, recalls, overlaps
