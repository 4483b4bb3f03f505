"""Evaluating a Mask R-CNN: its detections over a list of samples, scored by COCO mAP and VOC AP50.

(Training is the Learner's: ``Learner(detection_dataloaders(...), model, None)``; see data.py.)
"""
import numpy as np

from ...metrics import coco_evaluate, compute_ap, to_coco_results
from ...train.progress import progress_bar
from .model import prepare_images


# --------------------------------------------------------------------------- evaluation
def predict(model, samples, batch_size=16, device="cpu", score_threshold=None):
    """``model.detect`` over the samples in batches: one detection dict per sample (a progress bar on a
    terminal or in a notebook)."""
    detections = []
    for start in progress_bar(range(0, len(samples), batch_size), desc="detect", unit="batch"):
        images = [s["image"] for s in samples[start:start + batch_size]]
        detections += model.detect(prepare_images(images, model.config, device), score_threshold)
    return detections


def evaluate(model, samples, coco, ground_truth, batch_size=16, device="cpu", verbose=False):
    """``score_detections`` of the model's detections on ``samples``."""
    return score_detections(samples, predict(model, samples, batch_size, device), coco, ground_truth, verbose)


def score_detections(samples, detections, coco, ground_truth, verbose=False):
    """COCO mAP for masks ('segm') and boxes ('bbox') of one detection dict per sample, against
    ``ground_truth`` (the COCO JSON path or dict the samples came from), and the mean over images
    of the VOC-style mask AP at IoU 0.5 that the Matterport shapes notebook reports."""
    category_of = np.array([0] + [c["id"] for c in coco.categories])
    results, voc = [], []
    for sample, found in zip(samples, detections):
        results += to_coco_results(sample["image_id"], found["boxes"], category_of[found["labels"]],
                                   found["scores"], found["masks"])
        voc.append(_voc_ap50(sample, found))
    return {"segm": coco_evaluate(ground_truth, results, "segm", verbose),
            "bbox": coco_evaluate(ground_truth, results, "bbox", verbose),
            "voc_ap50": float(np.nanmean(voc)) if not np.all(np.isnan(voc)) else float("nan")}


def _voc_ap50(sample, found):
    """``compute_ap`` of one image's masks; an image without detections scores 0 (NaN without objects),
    decided here because ``mask_iou`` cannot take an empty stack."""
    if len(found["labels"]) == 0:
        return 0.0 if len(sample["labels"]) else float("nan")
    return compute_ap(sample["boxes"], sample["labels"], sample["instance_masks"], found["boxes"],
                      found["labels"], found["scores"], found["masks"])[0]
