"""COCO detection / instance-segmentation metrics: pycocotools' COCOeval, re-derived in NumPy.

For every image and category:
  1. detections are sorted by score (stable) and cut to the 100 best;
  2. IoU between each detection and each ground truth (box IoU, or mask IoU of RLEs); against a
     crowd region the "IoU" is intersection / area(detection);
  3. for each area range and each IoU threshold t in .50:.05:.95, detections are matched greedily in
     score order, each to the unmatched ground truth of highest IoU >= t. Ground truths that are
     crowd, or whose 'area' lies outside the range, are "ignored": a detection is matched to one of
     them only when no regular ground truth qualifies (crowds may absorb many detections), and
     then it is ignored too, as is an unmatched detection whose own area is outside the range.
Then per category, area range and detection budget (1, 10, 100 per image), the detections of all
images are ranked by score, giving the precision-recall curve. Precision is replaced by its
monotone envelope (best precision at this recall or beyond) and read at the 101 recall levels
0, .01, ..., 1 (0 beyond the highest recall reached); AP is the mean of those 101 values, and AR
the recall reached with the whole budget. The 12 summary numbers average over categories (and
thresholds), leaving out categories that have no regular ground truth in that area range (-1 when
nothing is left).

Categories and images are those of the ground truth, as in pycocotools:
  * a detection of category c on an image without a ground truth of c is a false positive of c;
  * a category listed in the ground truth but without any instance has undefined AP and is left
    out of the means, so detections of it change nothing;
  * detections whose category is not listed in the ground truth are dropped (with a warning).
Where we differ, only on malformed input: annotation ids play no part in matching (pycocotools
treats a ground truth with id 0 as unmatched), detections must refer to listed images, and
segmentation results must carry a 'segmentation'.
"""
import json
import os
import warnings

import numpy as np

from .. import backend
from ..data import coco_mask
from ..data.errors import DataFormatError, is_finite_number, is_integer
from ..tensor import Tensor
from .base import Metric

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)          # pycocotools' values, bit for bit
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = (1, 10, 100)
AREA_RANGES = {"all": (0, 1e10), "small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2), "large": (96 ** 2, 1e10)}
# (name, AP or AR, IoU threshold index or None for all, area range, max detections)
SUMMARY = (("AP", True, None, "all", 100), ("AP50", True, 0, "all", 100), ("AP75", True, 5, "all", 100),
           ("APs", True, None, "small", 100), ("APm", True, None, "medium", 100),
           ("APl", True, None, "large", 100), ("AR1", False, None, "all", 1), ("AR10", False, None, "all", 10),
           ("AR100", False, None, "all", 100), ("ARs", False, None, "small", 100),
           ("ARm", False, None, "medium", 100), ("ARl", False, None, "large", 100))


# --------------------------------------------------------------------------- inputs
def _load_json(source, what):
    """A COCO dict or list: as given, or read from the JSON file at ``source``."""
    if not isinstance(source, (str, os.PathLike)):
        return source
    try:
        with open(source, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFormatError(f"coco_evaluate: cannot read the {what} {os.fspath(source)!r} as JSON "
                              f"({type(error).__name__}: {error})") from error


class _Instances:
    """The ground truths or the detections of one (image, category): boxes [x, y, w, h], areas,
    crowd flags, scores (1 for ground truths) and segmentations (RLE dicts, for 'segm')."""

    def __init__(self):
        self.boxes, self.areas, self.crowd, self.scores, self.segmentations = [], [], [], [], []

    def add(self, box, area, crowd, score, segmentation):
        self.boxes.append(box)
        self.areas.append(area)
        self.crowd.append(crowd)
        self.scores.append(score)
        self.segmentations.append(segmentation)


def _image_sizes(dataset):
    """{id: (height, width)} of the ground truth's images, each checked."""
    images = {}
    for i, img in enumerate(dataset["images"]):
        if not (isinstance(img, dict) and is_integer(img.get("id"))
                and all(is_integer(img.get(k)) and img[k] > 0 for k in ("height", "width"))):
            raise DataFormatError(f"coco_evaluate: ground truth images[{i}] = {str(img)[:80]} needs an integer "
                                  f"'id' and positive integer 'height' and 'width'")
        images[img["id"]] = (img["height"], img["width"])
    return images


def _check_truth(ann, i, images, categories, iou_type):
    """Why a ground-truth annotation cannot be evaluated (named by its id and image), or nothing."""
    if not isinstance(ann, dict):
        raise DataFormatError(f"coco_evaluate: ground truth annotations[{i}] is a {type(ann).__name__}, not a dict")
    name = f"coco_evaluate: annotation {ann.get('id')} (annotations[{i}])"
    if ann.get("image_id") not in images:
        raise DataFormatError(f"{name} refers to image {ann.get('image_id')}, which is not in the ground "
                              f"truth's 'images'")
    if not is_finite_number(ann.get("area")):
        raise DataFormatError(f"{name} of image {ann['image_id']} has no numeric 'area' (COCO uses it to sort "
                              f"ground truths into small/medium/large)")
    if ann.get("iscrowd", 0) not in (0, 1) or not is_integer(ann.get("iscrowd", 0)):
        raise DataFormatError(f"{name} of image {ann['image_id']}: 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
    if iou_type == "bbox" and ann.get("category_id") in categories:
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(is_finite_number, bbox)) and min(bbox[2:]) >= 0):
            raise DataFormatError(f"{name} of image {ann['image_id']}: 'bbox' must be [x, y, w, h] with w, h >= 0, "
                                  f"got {str(bbox)[:60]}")


def _truth_rle(ann, size):
    """The RLE of a ground truth's segmentation at its image's ``size``, or a DataFormatError naming it."""
    name = f"coco_evaluate: annotation {ann.get('id')} of image {ann['image_id']}"
    segmentation = ann.get("segmentation")
    if not isinstance(segmentation, (list, dict)):
        raise DataFormatError(f"{name} has no polygon or RLE 'segmentation' (iou_type 'segm' needs one), "
                              f"got {str(segmentation)[:40]}")
    return _rle_of(segmentation, size, name)


def _rle_of(segmentation, size, name):
    """The checked RLE (see coco_mask.checked_rle) of a polygon or RLE segmentation at its image's
    ``size``; anything else is a DataFormatError naming the record."""
    try:
        rle = coco_mask.segmentation_to_rle(segmentation, *size)
        rle_size, _ = coco_mask.checked_rle(rle)
    except (ValueError, TypeError, AttributeError) as error:
        raise DataFormatError(f"{name}: cannot read its segmentation ({error})") from error
    if rle_size != list(size):
        raise DataFormatError(f"{name}: its RLE size {rle_size} is not the image's {list(size)}")
    return rle


def _ground_truth(dataset, iou_type):
    """Images {id: (height, width)}, sorted category ids, and {(image, category): _Instances}."""
    if not isinstance(dataset, dict) or not all(isinstance(dataset.get(k), list) for k in
                                                ("images", "annotations", "categories")):
        raise DataFormatError("coco_evaluate: ground_truth must be a COCO dataset (dict or JSON path) with the "
                              "lists 'images', 'annotations' and 'categories'")
    images = _image_sizes(dataset)
    if not all(isinstance(c, dict) and is_integer(c.get("id")) for c in dataset["categories"]):
        raise DataFormatError("coco_evaluate: every ground truth category needs an integer 'id'")
    categories = sorted({c["id"] for c in dataset["categories"]})
    groups = {}
    for i, ann in enumerate(dataset["annotations"]):
        _check_truth(ann, i, images, categories, iou_type)
        if ann.get("category_id") not in categories:
            continue
        segmentation = _truth_rle(ann, images[ann["image_id"]]) if iou_type == "segm" else None
        groups.setdefault((ann["image_id"], ann["category_id"]), _Instances()).add(
            ann.get("bbox"), ann["area"], bool(ann.get("iscrowd", 0)), 1.0, segmentation)
    return images, categories, groups


def _checked_prediction(res, i, size):
    """A prediction's score and bbox must be finite numbers and its mask (the returned RLE, or None)
    of its image's size; else a DataFormatError naming the prediction."""
    name = f"coco_evaluate: prediction {i} (image {res['image_id']})"
    if not is_finite_number(res["score"]):
        raise DataFormatError(f"{name}: 'score' must be a finite number, got {str(res['score'])[:30]}")
    bbox = res.get("bbox")
    if bbox and not (isinstance(bbox, list) and len(bbox) == 4 and all(map(is_finite_number, bbox))):
        raise DataFormatError(f"{name}: 'bbox' must be [x, y, w, h], four finite numbers, got {str(bbox)[:60]}")
    if "segmentation" not in res:
        return None
    return _rle_of(res["segmentation"], size, name)


def _detections(results, images, categories, iou_type):
    """{(image, category): _Instances} of the detections, with pycocotools' loadRes rules: the area
    is w * h of the result's box when it has one, else its mask area; the box, when missing, is
    the mask's bounding box."""
    groups, unknown = {}, set()
    for i, res in enumerate(results):
        if not isinstance(res, dict):
            raise DataFormatError(f"coco_evaluate: prediction {i} is a {type(res).__name__}, not a result dict")
        missing = {"image_id", "category_id", "score", "bbox" if iou_type == "bbox" else "segmentation"} - set(res)
        if iou_type == "bbox" and "segmentation" in res:
            missing.discard("bbox")
        if missing:
            raise DataFormatError(f"coco_evaluate: prediction {i} lacks {sorted(missing)}; each needs image_id, "
                                  f"category_id, score and " + ("bbox" if iou_type == "bbox" else "segmentation (RLE)"))
        if res["image_id"] not in images:
            raise DataFormatError(f"coco_evaluate: prediction {i} is for image {res['image_id']}, which is not "
                                  f"in the ground truth")
        if res["category_id"] not in categories:
            unknown.add(res["category_id"])
            continue
        segmentation = _checked_prediction(res, i, images[res["image_id"]])
        if res.get("bbox"):
            box = list(res["bbox"])
            area = box[2] * box[3]
        else:
            box, area = coco_mask.to_bbox(segmentation).tolist(), coco_mask.area(segmentation)
        groups.setdefault((res["image_id"], res["category_id"]), _Instances()).add(
            box, area, False, float(res["score"]), segmentation)
    if unknown:
        warnings.warn(f"coco_evaluate: predictions of categories {sorted(unknown)} are ignored: the ground "
                      f"truth does not list them", stacklevel=3)
    return groups


# --------------------------------------------------------------------------- one image, one category
def _ious(detections, truths, iou_type):
    """(D, G) IoU matrix ('segm': masks, 'bbox': boxes); crowd ground truths use area(detection)."""
    if iou_type == "segm":
        return coco_mask.iou(detections.segmentations, truths.segmentations, truths.crowd)
    return coco_mask.iou(np.asarray(detections.boxes, float).reshape(-1, 4),
                         np.asarray(truths.boxes, float).reshape(-1, 4), truths.crowd)


def _match(ious, gt_ignored, crowd):
    """Greedy matching of detections (rows of ``ious``, best score first) for every area range
    (rows of ``gt_ignored``, shape (A, G)) and IoU threshold at once.

    Returns (matched, matched_to_ignored), each (A, T, D) bool.
    """
    n_ranges, n_gt = gt_ignored.shape
    n_det, n_thr = ious.shape[0], len(IOU_THRESHOLDS)
    matched = np.zeros((n_ranges, n_thr, n_det), dtype=bool)
    matched_to_ignored = np.zeros_like(matched)
    if n_gt == 0:
        return matched, matched_to_ignored
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, :, None]
    ignored = np.broadcast_to(gt_ignored[:, None, :], (n_ranges, n_thr, n_gt))
    taken = np.zeros((n_ranges, n_thr, n_gt), dtype=bool)
    a, t = np.ogrid[:n_ranges, :n_thr]
    for d in range(n_det):
        good = (~taken | crowd) & (ious[d] >= thresholds)              # crowds can be matched again
        regular = good & ~ignored
        candidates = np.where(regular.any(axis=-1, keepdims=True), regular, good)
        score = np.where(candidates, ious[d], -1.0)
        best = n_gt - 1 - np.argmax(score[..., ::-1], axis=-1)         # highest IoU, the last one on ties
        found = candidates.any(axis=-1)
        matched[..., d] = found
        matched_to_ignored[..., d] = found & ignored[a, t, best]
        taken[a, t, best] |= found
    return matched, matched_to_ignored


class _ImageResult:
    """What one (image, category) contributes: detection scores (D,), and per area range and IoU
    threshold which detections are true positives and which are ignored (A, T, D), plus which
    ground truths are ignored (A, G)."""

    def __init__(self, scores, matched, dt_ignored, gt_ignored):
        self.scores, self.matched, self.dt_ignored, self.gt_ignored = scores, matched, dt_ignored, gt_ignored


def _outside(areas, ranges):
    """(A, n) bool: area outside each [lo, hi] range (bounds included, as pycocotools)."""
    areas = np.asarray(areas, dtype=np.float64)
    return (areas[None, :] < ranges[:, :1]) | (areas[None, :] > ranges[:, 1:])


def _evaluate_image(detections, truths, iou_type):
    ranges = np.array(list(AREA_RANGES.values()), dtype=np.float64)
    order = np.argsort(-np.asarray(detections.scores, dtype=np.float64), kind="mergesort")[:MAX_DETECTIONS[-1]]
    sorted_dt = _Instances()
    for i in order:
        sorted_dt.add(detections.boxes[i], detections.areas[i], False, detections.scores[i],
                      detections.segmentations[i])
    crowd = np.asarray(truths.crowd, dtype=bool)
    gt_ignored = crowd[None, :] | _outside(truths.areas, ranges)
    ious = _ious(sorted_dt, truths, iou_type) if len(order) and len(crowd) else np.zeros((len(order), len(crowd)))
    matched, dt_ignored = _match(ious, gt_ignored, crowd)
    dt_ignored |= ~matched & _outside(sorted_dt.areas, ranges)[:, None, :]
    return _ImageResult(np.asarray(sorted_dt.scores, dtype=np.float64), matched, dt_ignored, gt_ignored)


# --------------------------------------------------------------------------- accumulate and summarise
def _precision_recall(matched, ignored, n_gt):
    """101-point interpolated precision (T, R) and final recall (T,) of detections ranked by score."""
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    recall = tp / n_gt
    precision = tp / (fp + tp + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]     # best precision from here on
    padded = np.concatenate([envelope, np.zeros((len(envelope), 1))], axis=1)  # 0 beyond the last recall
    at_level = np.stack([np.searchsorted(row, RECALL_LEVELS, side="left") for row in recall])
    final_recall = recall[:, -1] if recall.shape[1] else np.zeros(len(recall))
    return np.take_along_axis(padded, at_level, axis=1), final_recall


def _accumulate(per_category):
    """precision (T, R, K, A, M) and recall (T, K, A, M); -1 where a category has no regular ground truth."""
    shape = (len(IOU_THRESHOLDS), len(per_category), len(AREA_RANGES), len(MAX_DETECTIONS))
    precision = -np.ones(shape[:1] + (len(RECALL_LEVELS),) + shape[1:])
    recall = -np.ones(shape)
    for k, results in enumerate(per_category):
        if not results:
            continue
        n_gt = (~np.concatenate([r.gt_ignored for r in results], axis=1)).sum(axis=1)   # (A,)
        for m, budget in enumerate(MAX_DETECTIONS):
            scores = np.concatenate([r.scores[:budget] for r in results])
            order = np.argsort(-scores, kind="mergesort")
            matched = np.concatenate([r.matched[..., :budget] for r in results], axis=-1)[..., order]
            ignored = np.concatenate([r.dt_ignored[..., :budget] for r in results], axis=-1)[..., order]
            for a in np.flatnonzero(n_gt):
                precision[:, :, k, a, m], recall[:, k, a, m] = _precision_recall(matched[a], ignored[a], n_gt[a])
    return precision, recall


def _summarize(precision, recall):
    ranges, budgets = list(AREA_RANGES), list(MAX_DETECTIONS)
    stats = {}
    for name, is_ap, threshold, area, budget in SUMMARY:
        values = precision if is_ap else recall
        values = values if threshold is None else values[threshold:threshold + 1]
        values = values[..., ranges.index(area), budgets.index(budget)]
        defined = values[values > -1]
        stats[name] = float(np.mean(defined)) if defined.size else -1.0
    return stats


def format_summary(stats):
    """COCO's familiar 12-line table."""
    lines = []
    for name, is_ap, threshold, area, budget in SUMMARY:
        title = "Average Precision  (AP)" if is_ap else "Average Recall     (AR)"
        iou = "0.50:0.95" if threshold is None else f"{IOU_THRESHOLDS[threshold]:0.2f}"
        lines.append(f" {title} @[ IoU={iou:<9} | area={area:>6s} | maxDets={budget:>3d} ] = {stats[name]:0.3f}")
    return "\n".join(lines)


def coco_evaluate(ground_truth, predictions, iou_type="segm", verbose=True):
    """COCO mAP of ``predictions`` against ``ground_truth``, numerically identical to pycocotools.

    ground_truth: a COCO dataset dict (or the path of its JSON file) with 'images' (id, height,
        width), 'annotations' (id, image_id, category_id, bbox [x, y, w, h], area, iscrowd,
        segmentation as polygons or RLE) and 'categories'.
    predictions: a COCO results list (or JSON path): dicts with image_id, category_id, score and
        bbox [x, y, w, h] ('bbox') or segmentation as RLE ('segm'); see ``to_coco_results``.
    iou_type: 'segm' (mask IoU) or 'bbox' (box IoU).
    Returns {AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl} (-1 where undefined)
    and prints COCO's summary table when ``verbose``. APs, APm, APl (and ARs, ARm, ARl; Detectron2's
    names for AP_small, AP_medium, AP_large) are by object size, the ground truth's 'area' field (not its
    box): small up to 32^2 pixels, medium 32^2 to 96^2, large from 96^2 (COCO's ranges; a bound belongs to
    both of its ranges, as in pycocotools); -1 for a range without any object.
    """
    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"coco_evaluate: iou_type must be 'segm' or 'bbox', got {iou_type!r}")
    images, categories, truths = _ground_truth(_load_json(ground_truth, "ground truth"), iou_type)
    results = _load_json(predictions, "predictions")
    if not isinstance(results, list):
        raise TypeError(f"coco_evaluate: predictions must be a list of result dicts, got {type(results).__name__}")
    detections = _detections(results, images, categories, iou_type)
    empty = _Instances()
    per_category = [[_evaluate_image(detections.get((i, c), empty), truths.get((i, c), empty), iou_type)
                     for i in sorted(images) if (i, c) in detections or (i, c) in truths]
                    for c in categories]
    stats = _summarize(*_accumulate(per_category))
    if verbose:
        print(format_summary(stats))
    return stats


def as_numpy(values):
    """A NumPy array from a Tensor, a NumPy or CuPy array, or a list."""
    if isinstance(values, Tensor):
        return values.numpy()
    return backend.to_numpy(values) if backend.is_device_array(values) else np.asarray(values)


def to_coco_results(image_id, boxes_xyxy, labels, scores, masks=None, mask_threshold=0.5):
    """COCO result dicts for one image's predictions.

    boxes_xyxy (N, 4) as (x1, y1, x2, y2), labels (N,) category ids, scores (N,); masks, if given,
    (N, H, W) at image size, a pixel belonging to the instance when its value is > mask_threshold
    (so 0/1 and bool masks work as they are). Arrays or Tensors of any device.
    """
    boxes, labels, scores = (as_numpy(v) for v in (boxes_xyxy, labels, scores))
    boxes = boxes.reshape(-1, 4).astype(np.float64)
    if not len(boxes) == len(labels) == len(scores) or (masks is not None and len(masks) != len(boxes)):
        raise ValueError(f"to_coco_results: got {len(boxes)} boxes, {len(labels)} labels, {len(scores)} scores"
                         + ("" if masks is None else f" and {len(masks)} masks") + "; they must match")
    results = []
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        result = {"image_id": int(image_id), "category_id": int(labels[i]), "score": float(scores[i]),
                  "bbox": [x1, y1, x2 - x1, y2 - y1]}
        if masks is not None:
            result["segmentation"] = coco_mask.encode(as_numpy(masks[i]) > mask_threshold)
        results.append(result)
    return results


class COCOMetric(Metric):
    """COCO mAP of a detector as a Learner metric. ``accumulate(pred, targ)`` takes one batch's detections,
    one dict per image with 'boxes' (x1, y1, x2, y2), 'labels', 'scores' and, for 'segm', 'masks' at image
    size (as ``MaskRCNN.detect`` gives them), and its targets, dicts with the COCO 'image_id';
    ``value`` is the statistic ``stat`` ('AP', 'AP50', 'APs', ...: a key of ``coco_evaluate``) of all the
    epoch's detections against ``ground_truth`` (a COCO dict or JSON path, read once).
    ``category_ids[label]`` is the COCO category id of a model label (e.g. [0] + the ids of
    ``Coco.categories``). The name in the epoch table is ``name``, by default 'mask_AP' or 'box_AP' for
    stat 'AP'."""

    def __init__(self, ground_truth, category_ids, iou_type="segm", stat="AP", name=None):
        if iou_type not in ("segm", "bbox"):
            raise ValueError(f"COCOMetric: iou_type must be 'segm' or 'bbox', got {iou_type!r}")
        if stat not in {row[0] for row in SUMMARY}:
            raise ValueError(f"COCOMetric: stat must be one of {[row[0] for row in SUMMARY]}, got {stat!r}")
        self.ground_truth = _load_json(ground_truth, "ground truth")
        self.category_ids = np.asarray(category_ids, dtype=np.int64)
        self.iou_type, self.stat = iou_type, stat
        self.name = name or f"{'mask' if iou_type == 'segm' else 'box'}_{stat}"
        self.reset()

    def reset(self):
        self.results = []

    def accumulate(self, pred, targ):
        if len(pred) != len(targ):
            raise ValueError(f"COCOMetric: {len(pred)} detection dicts for {len(targ)} targets; the model must "
                             f"give one per image")
        for found, target in zip(pred, targ):
            if "image_id" not in target:
                raise ValueError("COCOMetric: the targets need 'image_id' (the COCO image each detection "
                                 "belongs to); samples from load_coco_instances have it")
            masks = found["masks"] if self.iou_type == "segm" else None
            self.results += to_coco_results(int(as_numpy(target["image_id"])), found["boxes"],
                                            self.category_ids[as_numpy(found["labels"]).astype(np.int64)],
                                            found["scores"], masks)

    @property
    def value(self):
        return coco_evaluate(self.ground_truth, self.results, self.iou_type, verbose=False)[self.stat]
