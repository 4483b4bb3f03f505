"""The five losses of Mask R-CNN, all computed on the sampled anchors and ROIs only.

    RPN objectness   binary cross-entropy over the sampled anchors (positives and negatives)
    RPN boxes        smooth L1 between predicted and target deltas, positive anchors only
    head classes     cross-entropy over the sampled ROIs (background included)
    head boxes       smooth L1 on the deltas of the ROI's true class, positive ROIs only
    masks            per-pixel binary cross-entropy on the true class's mask, positive ROIs only

A loss over positives only is zero (not the NaN of a mean over nothing) when a batch has no
positives, e.g. images without any object: they still train the objectness and the classifier.
"""
import numpy as np

from ... import functional as F
from ...tensor import Tensor


def zero_loss(like):
    """A 0 loss of ``like``'s dtype and device, for a term that has nothing to average over."""
    return Tensor(np.zeros((), dtype=like.dtype), device=like.device)


def box_regression_loss(deltas, targets, beta):
    """Smooth L1 averaged over the rows and the four coordinates of (P, 4) deltas; 0 when P = 0."""
    if len(deltas) == 0:
        return zero_loss(deltas)
    return F.smooth_l1_loss(deltas, targets, beta=beta)


def rpn_losses(logits, deltas, labels, box_targets, beta):
    """(objectness loss, box loss) from the RPN's logits (N, A) and deltas (N, A, 4), with
    labels (N, A) in {1, 0, -1 = not sampled} and box_targets (N, A, 4) from ``anchor_targets``."""
    sampled, positive = np.nonzero(labels >= 0), np.nonzero(labels == 1)
    objectness = F.binary_cross_entropy_with_logits(logits[sampled], labels[sampled].astype(logits.dtype))
    return objectness, box_regression_loss(deltas[positive], box_targets[positive], beta)


def box_head_losses(class_logits, deltas, labels, box_targets, beta):
    """(classification loss, box loss) from class logits (K, C) and per-class deltas (K, C, 4):
    cross-entropy against the ROI labels, and smooth L1 on the deltas of each positive ROI's class."""
    classification = F.cross_entropy(class_logits, labels) if len(labels) else zero_loss(class_logits)
    positive = np.flatnonzero(labels > 0)
    box = box_regression_loss(deltas[positive, labels[positive]], box_targets[positive], beta)
    return classification, box


def mask_loss(mask_logits, labels, targets):
    """Mean binary cross-entropy with logits between each positive ROI's mask for its true class,
    taken from mask_logits (P, C, M, M), and its 0/1 target (P, M, M). The other classes' masks get
    no loss: classes do not compete for pixels, the box head has already decided the class.
    (With no positive ROI the model does not run the mask head and uses ``zero_loss``.)"""
    chosen = mask_logits[np.arange(len(labels)), labels]
    return F.binary_cross_entropy_with_logits(chosen, targets.astype(mask_logits.dtype))
