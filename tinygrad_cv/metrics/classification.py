"""Classification metrics as plain functions ``f(pred, targ) -> float`` on raw model outputs (logits).

Each works on Tensors or arrays of any device and returns a Python float; use them directly or pass them
to a Learner, which averages them over an epoch weighted by batch size. ``functools.partial(fbeta,
thresh=0.3)`` works as a metric too (named 'fbeta').
"""
import numpy as np

from .. import backend
from .base import as_array


def accuracy(inp, targ, axis=-1):
    """Fraction of samples whose arg-max class along ``axis`` equals the target class."""
    inp, targ = as_array(inp), as_array(targ)
    pred = inp.argmax(axis=axis)
    if pred.shape != targ.shape:
        raise ValueError(f"accuracy: predictions of shape {inp.shape} give classes of shape {pred.shape} "
                         f"(arg-max over axis {axis}) but targets have shape {targ.shape}; they must match")
    return float((pred == targ).mean())


def error_rate(inp, targ, axis=-1):
    """1 - accuracy."""
    return 1.0 - accuracy(inp, targ, axis)


def _multi_label(name, inp, targ, thresh, sigmoid):
    """(xp, predicted 0/1 labels, 0/1 targets) for a multi-label metric, after checking the shapes."""
    inp, targ = as_array(inp), as_array(targ)
    if inp.shape != targ.shape or inp.ndim != 2:
        raise ValueError(f"{name}: expected predictions and targets of the same shape (batch, classes), got "
                         f"{inp.shape} and {targ.shape}")
    xp = backend.array_module(inp)
    probs = 1 / (1 + xp.exp(-inp.astype(np.float64))) if sigmoid else inp
    return xp, probs > thresh, targ > 0.5


def accuracy_multi(inp, targ, thresh=0.5, sigmoid=True):
    """Fraction of (sample, label) pairs where [p > thresh] equals the target, p = sigmoid(inp) or inp."""
    _, pred, truth = _multi_label("accuracy_multi", inp, targ, thresh, sigmoid)
    return float((pred == truth).mean())


accuracy_thresh = accuracy_multi  # fastai v1's name, same arguments; as a Learner metric it is named 'accuracy_multi'


def fbeta(inp, targ, *, beta=2, thresh=0.2, sigmoid=True, eps=1e-9):
    """Multi-label F-beta, averaged over samples (the Planet competition's F2).

    ``beta``, ``thresh``, ``sigmoid`` and ``eps`` are keyword-only: fastai v1's ``fbeta`` takes
    (thresh, beta) in the other order, so a positional 0.2 could silently mean either.

    Per sample, with predictions [p > thresh]: prec = TP / (predicted + eps), rec = TP / (actual + eps),
    F = prec rec / (beta^2 prec + rec + eps) (1 + beta^2). A sample empty in both scores 0.
    """
    xp, pred, truth = _multi_label("fbeta", inp, targ, thresh, sigmoid)
    true_pos = (pred & truth).sum(axis=1)
    prec = true_pos / (pred.sum(axis=1) + eps)
    rec = true_pos / (truth.sum(axis=1) + eps)
    beta2 = beta * beta
    return float(xp.mean(prec * rec / (prec * beta2 + rec + eps) * (1 + beta2)))
