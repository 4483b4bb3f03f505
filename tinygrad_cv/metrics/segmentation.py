"""Segmentation metrics: pixel accuracy ignoring a void class, Dice and IoU from a confusion matrix.

Predictions are raw outputs (batch, classes, H, W); the class of a pixel is the arg-max over ``axis``
(with a single channel, the logit's sign: foreground where it is > 0). Targets are (batch, H, W) class
indices, or (batch, 1, H, W). Dice and IoU are ratios of sums, so their classes accumulate the
confusion matrix over the whole epoch rather than averaging per-batch ratios.
"""
import numpy as np

from .. import backend
from .base import Metric, as_array


def predicted_labels(name, inp, targ, axis=1):
    """(class per pixel, target per pixel as int64, number of classes) after checking the shapes."""
    inp, targ = as_array(inp), as_array(targ)
    if targ.ndim == inp.ndim and targ.shape[axis] == 1:
        targ = targ.squeeze(axis)
    n_channels = inp.shape[axis] if inp.ndim else 0
    labels = (inp > 0).squeeze(axis) if n_channels == 1 else inp.argmax(axis=axis)
    if labels.shape != targ.shape:
        raise ValueError(f"{name}: predictions of shape {inp.shape} give labels of shape {labels.shape} "
                         f"(classes along axis {axis}) but targets have shape {targ.shape}; they must match")
    return labels.astype(np.int64), targ.astype(np.int64), max(n_channels, 2)


def _pixel_counts(inp, targ, void_code):
    """(correctly classified pixels, counted pixels), pixels of class ``void_code`` left out."""
    labels, targ, _ = predicted_labels("acc_ignore", inp, targ)
    keep = targ != void_code
    return int(((labels == targ) & keep).sum()), int(keep.sum())


def acc_ignore(inp, targ, void_code):
    """Pixel accuracy over the pixels whose target is not ``void_code`` (0.0 when every pixel is void)."""
    correct, counted = _pixel_counts(inp, targ, void_code)
    return correct / counted if counted else 0.0


class AccIgnore(Metric):
    """``acc_ignore`` accumulated over the epoch, weighted by counted pixels rather than by batches."""

    name = "acc_ignore"

    def __init__(self, void_code):
        self.void_code = void_code
        self.reset()

    def reset(self):
        self.correct = self.counted = 0

    def accumulate(self, pred, targ):
        correct, counted = _pixel_counts(pred, targ, self.void_code)
        self.correct += correct
        self.counted += counted

    @property
    def value(self):
        return self.correct / self.counted if self.counted else 0.0


def confusion_matrix(labels, targ, n_classes, ignore_index=None):
    """(n_classes, n_classes) counts; entry [t, p] is the number of pixels of true class t predicted as p.
    Pixels whose target is ``ignore_index`` are skipped."""
    labels, targ = as_array(labels).reshape(-1), as_array(targ).reshape(-1)
    xp = backend.array_module(labels)
    if ignore_index is not None:
        keep = targ != ignore_index
        labels, targ = labels[keep], targ[keep]
    if targ.size and (int(targ.min()) < 0 or int(targ.max()) >= n_classes):
        raise ValueError(f"confusion_matrix: targets range over [{int(targ.min())}, {int(targ.max())}] but "
                         f"there are {n_classes} classes; pass the right n_classes or the void code to "
                         f"ignore")
    counts = xp.bincount(targ * n_classes + labels, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def iou_score(tp, fp, fn):
    """TP / (TP + FP + FN), NaN where the class is absent from predictions and targets."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / (tp + fp + fn)


def dice_score(tp, fp, fn):
    """2 TP / (2 TP + FP + FN), NaN where the class is absent from predictions and targets."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * tp / (2 * tp + fp + fn)


class ConfusionMatrixMetric(Metric):
    """Accumulates the epoch's confusion matrix; ``per_class`` applies ``score(tp, fp, fn)`` to each class
    and ``value`` is the mean over the classes present (in predictions or targets; None if there are none).
    Pixels whose target is ``void_code`` are ignored. Subclasses set ``name`` and ``score``."""

    score = None

    def __init__(self, n_classes=None, axis=1, void_code=None):
        self.n_classes, self.axis, self.void_code = n_classes, axis, void_code
        self.reset()

    def reset(self):
        self.matrix = None

    def accumulate(self, pred, targ):
        labels, targ, n_channels = predicted_labels(self.name, pred, targ, self.axis)
        counts = confusion_matrix(labels, targ, self.n_classes or n_channels, ignore_index=self.void_code)
        counts = backend.as_host(counts).astype(np.int64)
        self.matrix = counts if self.matrix is None else self.matrix + counts

    @property
    def per_class(self):
        if self.matrix is None:
            return None
        tp = np.diag(self.matrix).astype(np.float64)
        return self.score(tp, self.matrix.sum(axis=0) - tp, self.matrix.sum(axis=1) - tp)

    @property
    def value(self):
        per_class = self.per_class
        if per_class is None or np.isnan(per_class).all():
            return None
        return float(np.nanmean(per_class))


class MeanIoU(ConfusionMatrixMetric):
    """Mean IoU over the classes present; ``per_class`` has each class's IoU (NaN where absent)."""

    name = "mean_iou"
    score = staticmethod(iou_score)


class DiceMulti(ConfusionMatrixMetric):
    """Mean Dice over the classes present; ``per_class`` has each class's Dice (NaN where absent)."""

    name = "dice_multi"
    score = staticmethod(dice_score)


class ForegroundMetric(ConfusionMatrixMetric):
    """A binary score of the foreground (class 1) alone; None while it is absent from predictions and
    targets."""

    def __init__(self, axis=1):
        super().__init__(n_classes=2, axis=axis)

    @property
    def value(self):
        per_class = self.per_class
        return None if per_class is None or np.isnan(per_class[1]) else float(per_class[1])


class Dice(ForegroundMetric):
    """Binary Dice: 2 |P & T| / (|P| + |T|), accumulated over the epoch."""

    name = "dice"
    score = staticmethod(dice_score)


class IoU(ForegroundMetric):
    """Binary IoU (Jaccard): |P & T| / |P | T|, accumulated over the epoch."""

    name = "iou"
    score = staticmethod(iou_score)
