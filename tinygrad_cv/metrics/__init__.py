"""Metrics: plain functions f(pred, targ) -> float and Metric classes that accumulate over an epoch."""
from .base import AvgMetric, Metric, as_metric  # noqa: F401
from .classification import accuracy, accuracy_multi, accuracy_thresh, error_rate, fbeta  # noqa: F401
from .segmentation import (AccIgnore, ConfusionMatrixMetric, Dice, DiceMulti, IoU, MeanIoU,  # noqa: F401
                           acc_ignore, confusion_matrix)
from .coco import COCOMetric, coco_evaluate, format_summary, to_coco_results  # noqa: F401
from .voc import compute_ap, compute_matches, voc_ap  # noqa: F401
