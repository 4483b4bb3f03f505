"""The five losses of Mask R-CNN, all computed on the sampled anchors and ROIs only.

    RPN objectness   binary cross-entropy over the sampled anchors (positives and negatives)
    RPN boxes        smooth L1 between predicted and target deltas, positive anchors only
    head classes     cross-entropy over the sampled ROIs (background included)
    head boxes       smooth L1 on the deltas of the ROI's true class, positive ROIs only
    masks            per-pixel binary cross-entropy on the true class's mask, positive ROIs only

The heads' ROIs come in fixed-size slots (``targets.roi_targets``), some empty: their losses are means
weighted by 0/1 flags (``weighted_mean``), which also makes a loss over positives only zero (not the NaN
of a mean over nothing) when a batch has no positives, e.g. images without any object: they still
train the objectness and the classifier.
"""
import numpy as np

from ... import backend
from ... import functional as F
from ...tensor import Tensor


def zero_loss(like):
    """A 0 loss of ``like``'s dtype and device, for a term that has nothing to average over."""
    return Tensor(np.zeros((), dtype=like.dtype), device=like.device)


def rpn_losses(logits, deltas, labels, box_targets, beta):
    """(objectness loss, box loss) from the RPN's logits (N, A) and deltas (N, A, 4), with
    labels (N, A) in {1, 0, -1 = not sampled} and box_targets (N, A, 4) from ``anchor_targets``: binary
    cross-entropy averaged over the sampled anchors, and smooth L1 averaged over the four coordinates of
    the positive anchors and over those anchors. Computed at every anchor and weighted (``weighted_mean``):
    picking the sampled ones would read their count back from a GPU."""
    xp = backend.array_module(labels)
    targets = Tensor(xp.asarray(labels == 1, dtype=logits.dtype), device=logits.device)
    objectness = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").reshape(-1)
    box_targets = Tensor(xp.asarray(box_targets, dtype=deltas.dtype), device=deltas.device)
    box = F.smooth_l1_loss(deltas, box_targets, reduction="none", beta=beta).mean(2).reshape(-1)
    return weighted_mean(objectness, (labels >= 0).reshape(-1)), weighted_mean(box, (labels == 1).reshape(-1))


def weighted_mean(values, weights):
    """sum(values * weights) / max(sum(weights), 1) for a loss per row (K,) and 0/1 ``weights`` (K,) (an
    array of the device): the mean over the rows that count, 0 when none does (fixed-size slots, some
    empty, some not trained on)."""
    w = Tensor(backend.array_module(weights).asarray(weights, dtype=values.dtype), device=values.device)
    return (values * w).sum() / w.sum().clamp(min=1)


def box_head_losses(class_logits, deltas, labels, box_targets, valid, beta):
    """(classification loss, box loss) from class logits (K, C) and per-class deltas (K, C, 4) of ROI
    slots (``roi_targets``): cross-entropy against the labels (K,) over the ``valid`` (K,) slots, and
    smooth L1 averaged over the four coordinates of each positive slot's (label > 0) class deltas and over
    those slots."""
    if len(labels) == 0:
        return zero_loss(class_logits), zero_loss(deltas)
    xp = backend.array_module(labels)
    classes = Tensor(labels, device=class_logits.device)
    classification = weighted_mean(F.cross_entropy(class_logits, classes, reduction="none"), valid)
    chosen = deltas[xp.arange(len(labels)), labels]
    targets = Tensor(box_targets.astype(deltas.dtype), device=deltas.device)
    box = F.smooth_l1_loss(chosen, targets, reduction="none", beta=beta).mean(1)
    return classification, weighted_mean(box, labels > 0)


def mask_loss(mask_logits, labels, targets):
    """Mean binary cross-entropy with logits between each positive ROI's (label > 0) mask for its true
    class, taken from mask_logits (K, C, M, M), and its 0/1 target (K, M, M), averaged over the pixels and
    the positive ROIs (0 when there are none). The other classes' masks get no loss: classes do not
    compete for pixels, the box head has already decided the class. (With no instance in the batch the
    model does not run the mask head and uses ``zero_loss``.)"""
    xp = backend.array_module(labels)
    chosen = mask_logits[xp.arange(len(labels)), labels]
    targets = Tensor(targets.astype(mask_logits.dtype), device=mask_logits.device)
    per_roi = F.binary_cross_entropy_with_logits(chosen, targets, reduction="none").mean((1, 2))
    return weighted_mean(per_roi, labels > 0)
