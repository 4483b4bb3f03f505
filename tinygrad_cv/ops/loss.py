"""Losses, with PyTorch's names, arguments and reductions ('mean', 'sum', 'none').

Fused ops (one Function: forward and gradient in closed form) where it pays: cross_entropy
(log_softmax + nll in one pass), nll_loss, the two binary cross entropies and smooth L1. The
others are short compositions of differentiable ops.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from .. import backend
from ..backend import acc_dtype, launch
from ..tensor import Tensor
from . import elementwise, reduce, shape
from .elementwise import stable_sigmoid

REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------- shared checks
def _check_reduction(fn, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _as_target(fn, input, target):
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be a floating tensor, got {input.dtype}")
    return target if isinstance(target, Tensor) else Tensor(target, device=input.device)


def _same_shape_target(fn, input, target, promote=False):
    """A target of the input's shape, cast to the input's dtype (values are kept: 0/1 labels stay 0/1).
    With ``promote`` a floating target keeps its dtype, so that the loss is computed in the wider of the
    two float dtypes, as PyTorch's regression losses are (float32 input, float64 target: float64)."""
    target = _as_target(fn, input, target)
    if target.shape != input.shape:
        raise ValueError(f"{fn}: target shape {target.shape} must equal input shape {input.shape}")
    if target.dtype.kind not in "fiub":
        raise TypeError(f"{fn}: target must be numeric, got {target.dtype}")
    if target.dtype == input.dtype or (promote and target.dtype.kind == "f"):
        return target
    return shape.cast(target, input.dtype)


def _reduce(loss, reduction):
    if reduction == "mean":
        return reduce.mean(loss)
    return reduce.sum(loss) if reduction == "sum" else loss


def _broadcast_weight(fn, name, weight, input, shape_):
    """``weight`` as a Tensor of the input's dtype that broadcasts to ``shape_``, or None."""
    if weight is None:
        return None
    weight = weight if isinstance(weight, Tensor) else Tensor(weight, dtype=input.dtype, device=input.device)
    try:
        fits = np.broadcast_shapes(weight.shape, shape_) == tuple(shape_)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{fn}: {name} of shape {weight.shape} does not broadcast to the input's shape {shape_}")
    return weight


def _weighted(loss, weight):
    return loss if weight is None else loss * weight


# --------------------------------------------------------------------------- binary cross entropy
def softplus_neg(xp, x):
    """softplus(-x) = log(1 + exp(-x)) = log1p(exp(-|x|)) + max(-x, 0), without overflow."""
    return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, x.dtype.type(0))


class BinaryCrossEntropyWithLogits(Function):
    """l = (1 - t) x + (1 + (pw - 1) t) softplus(-x)   (pw = pos_weight, 1 if absent; with pw = 1
    this is max(x, 0) - x t + log1p(exp(-|x|))).
        dl/dx = (1 - t) - (1 + (pw - 1) t) sigmoid(-x),  dl/dt = (pw - 1) softplus(-x) - x,
        dl/dpw = t softplus(-x).
    Without pos_weight, on 'cuda' and 'emu', the fused CUDA kernels in backend/kernels/loss.cu give
    l and dl/dx.
    """
    def forward(ctx, x, t, pw=None):
        ctx.save(x, t, pw)
        if pw is None and ctx.device != "cpu":
            return launch.bce_with_logits(x, t)
        log_weight = 1 if pw is None else 1 + (pw - 1) * t
        return (1 - t) * x + log_weight * softplus_neg(ctx.xp, x)

    def backward(ctx, g):
        x, t, pw = ctx.saved
        xp = ctx.xp
        log_weight = 1 if pw is None else 1 + (pw - 1) * t
        if ctx.needs_input_grad[0] and pw is None and ctx.device != "cpu":
            gx = launch.bce_with_logits_backward(x, t, g)
        else:
            gx = g * ((1 - t) - log_weight * stable_sigmoid(xp, -x)) if ctx.needs_input_grad[0] else None
        if pw is None:
            return gx, (-g * x if ctx.needs_input_grad[1] else None)
        sp = softplus_neg(xp, x)
        gt = g * (sp * (pw - 1) - x) if ctx.needs_input_grad[1] else None
        gpw = g * t * sp if ctx.needs_input_grad[2] else None
        return gx, gt, gpw


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross entropy in the stable form, as PyTorch's: weight scales each element,
    pos_weight (broadcast over the last dim, e.g. one per class) scales the positive term.
    With floating input and target of different dtypes the loss is computed in the *target's* dtype, as
    PyTorch's (float32 logits, float64 target: float64; float64 logits, float32 target: float32); the
    input's gradient keeps the input's dtype. An integer or bool target takes the input's dtype (PyTorch
    refuses one)."""
    fn = "binary_cross_entropy_with_logits"
    _check_reduction(fn, reduction)
    if isinstance(target, Tensor) and target.dtype.kind == "f" and target.dtype != input.dtype:
        input = shape.cast(input, target.dtype)
    target = _same_shape_target(fn, input, target)
    weight = _broadcast_weight(fn, "weight", weight, input, input.shape)
    pos_weight = _broadcast_weight(fn, "pos_weight", pos_weight, input, input.shape)
    tensors = (input, target) if pos_weight is None else (input, target, pos_weight)
    return _reduce(_weighted(BinaryCrossEntropyWithLogits.apply(*tensors), weight), reduction)


class BinaryCrossEntropy(Function):
    """l = -(t log p + (1 - t) log(1 - p)), each log clamped at -100 (PyTorch).
        dl/dp = (p - t) / max(p (1 - p), 1e-12),  dl/dt = log(1 - p) - log(p)
    dl/dt uses the clamped logs: it is the derivative of the clamped forward (PyTorch gives +-inf
    at p = 0 or 1)."""
    def forward(ctx, p, t):
        xp = ctx.xp
        with np.errstate(divide="ignore"):  # log(0) = -inf is expected; the clamp handles it
            log_p, log_q = (xp.maximum(xp.log(v), p.dtype.type(-100)) for v in (p, 1 - p))
        ctx.save(p, t, log_p, log_q)
        return -(t * log_p + (1 - t) * log_q)

    def backward(ctx, g):
        p, t, log_p, log_q = ctx.saved
        gp = g * (p - t) / ctx.xp.maximum(p * (1 - p), p.dtype.type(1e-12)) if ctx.needs_input_grad[0] else None
        gt = g * (log_q - log_p) if ctx.needs_input_grad[1] else None
        return gp, gt


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """Binary cross entropy of probabilities ``input`` in [0, 1], as PyTorch's (logs clamped at -100).
    A floating target must have the input's dtype (PyTorch refuses a mix too); an integer or bool target
    takes the input's dtype (PyTorch refuses one)."""
    fn = "binary_cross_entropy"
    _check_reduction(fn, reduction)
    if isinstance(target, Tensor) and target.dtype.kind == "f" and target.dtype != input.dtype:
        raise TypeError(f"{fn}: target dtype {target.dtype} must equal the input's dtype {input.dtype}, as in "
                        f"PyTorch; cast one of them (e.g. target.to({input.dtype}))")
    target = _same_shape_target(fn, input, target)
    weight = _broadcast_weight(fn, "weight", weight, input, input.shape)
    if input.numel():  # on a device: raised at the next read back
        backend.deferred.check(((input.data < 0) | (input.data > 1)).any(), lambda: ValueError(
            f"{fn}: input must hold probabilities in [0, 1], but its values span "
            f"[{float(input.data.min()):.4g}, {float(input.data.max()):.4g}] (shape {input.shape}); "
            f"for logits use binary_cross_entropy_with_logits"))
    return _reduce(_weighted(BinaryCrossEntropy.apply(input, target), weight), reduction)


# --------------------------------------------------------------------------- class-index losses
class _ClassTargets:
    """Integer targets t (N, P) for scores (N, C, P): where the target scores sit in the flattened
    scores, each sample's weight w[t] (0 where t == ignore_index), and the 'mean' denominator
    sum(w[t]) (PyTorch's weighted mean; the count of non-ignored samples without weights)."""

    def __init__(self, xp, target, num_classes, weight, ignore_index, dtype):
        n, p = target.shape
        self.xp = xp
        self.valid = target != ignore_index
        safe = xp.where(self.valid, target, 0)
        self.flat = (xp.arange(n)[:, None] * num_classes + safe) * p + xp.arange(p)
        self.weight = (self.valid if weight is None else weight[safe] * self.valid).astype(dtype)
        self.denominator = self.weight.sum()

    def per_sample_grad(self, g, reduction, shape_):
        """The upstream gradient of each sample's loss, shape (N, P). A 'mean' over no counted sample
        (an empty batch, every target ignored) is NaN, but its gradient is 0, as PyTorch's."""
        if reduction == "none":
            return g.reshape(shape_)
        if reduction == "sum":
            return g
        empty = self.denominator == 0
        return self.xp.where(empty, g.dtype.type(0), g / self.xp.where(empty, 1, self.denominator))


def _reduce_samples(xp, loss, targets, reduction, out_shape):
    if reduction == "none":
        return loss.reshape(out_shape)
    total = loss.sum()
    if reduction == "sum":
        return xp.asarray(total, dtype=loss.dtype)
    with np.errstate(invalid="ignore"):  # 0 / 0 = NaN over no counted sample, as PyTorch
        return xp.asarray(total / targets.denominator, dtype=loss.dtype)


def _spatial(shape_):
    """(N, C, d1, ...) -> (N, C, d1 * ...); explicit, since -1 cannot be inferred for an empty batch."""
    return tuple(shape_[:2]) + (int(np.prod(shape_[2:])),)


class NLLLoss(Function):
    """l_i = -w[t_i] x[i, t_i] (0 where t_i is ignored);  dl_i/dx[i, t_i] = -w[t_i]."""
    def forward(ctx, x, *, target, weight, ignore_index, reduction):
        xp = ctx.xp
        v = x.reshape(_spatial(x.shape))
        targets = _ClassTargets(xp, target.reshape(v.shape[0], v.shape[2]), x.shape[1], weight, ignore_index, x.dtype)
        ctx.save(targets)
        ctx.shape, ctx.out_shape, ctx.reduction = v.shape, target.shape, reduction
        loss = -targets.weight * v.reshape(-1)[targets.flat]
        return _reduce_samples(xp, loss, targets, reduction, target.shape)

    def backward(ctx, g):
        (targets,) = ctx.saved
        n, c, p = ctx.shape
        gx = ctx.xp.zeros(ctx.shape, dtype=g.dtype)
        per_sample = targets.per_sample_grad(g, ctx.reduction, (n, p))
        gx.reshape(-1)[targets.flat] = -targets.weight * per_sample
        return gx.reshape((n, c) + ctx.out_shape[1:])


class CrossEntropy(Function):
    """log_softmax over the classes and the negative log likelihood, fused. With logp = log_softmax(x),
    e = label_smoothing, C classes and class weights w (all 1 if absent):

        l_i = -(1 - e) w[t_i] logp[i, t_i] - (e / C) sum_c w_c logp[i, c]
        dl_i/dx[i, c] = ((1 - e) w[t_i] + (e / C) sum_k w_k) softmax(x)[i, c] - (1 - e) w[t_i] [c = t_i] - (e / C) w_c

    Ignored samples contribute 0; 'mean' divides by sum_i w[t_i] over the others (PyTorch).
    """
    def forward(ctx, x, *, target, weight, ignore_index, reduction, label_smoothing):
        xp = ctx.xp
        n, c = x.shape[:2]
        acc = acc_dtype(x.dtype)
        v = x.reshape(_spatial(x.shape)).astype(acc, copy=False)
        targets = _ClassTargets(xp, target.reshape(n, v.shape[2]), c, weight, ignore_index, acc)
        shifted = v - v.max(axis=1, keepdims=True)
        probs = xp.exp(shifted)
        total = probs.sum(axis=1, keepdims=True)
        probs /= total
        log_total = xp.log(total)[:, 0]                              # logp = shifted - log_total
        loss = -(1 - label_smoothing) * targets.weight * (shifted.reshape(-1)[targets.flat] - log_total)
        if label_smoothing:
            weighted = shifted if weight is None else shifted * weight.astype(acc)[:, None]
            class_sum = c if weight is None else weight.astype(acc).sum()
            smooth = weighted.sum(axis=1) - class_sum * log_total  # sum_c w_c logp_c
            loss -= (label_smoothing / c) * smooth * targets.valid
        ctx.save(probs, targets, weight)
        ctx.dtype, ctx.out_shape, ctx.reduction, ctx.smoothing = x.dtype, target.shape, reduction, label_smoothing
        return _reduce_samples(xp, loss, targets, reduction, target.shape).astype(x.dtype, copy=False)

    def backward(ctx, g):
        probs, targets, weight = ctx.saved
        n, c, p = probs.shape
        e = ctx.smoothing
        per_sample = targets.per_sample_grad(g.astype(probs.dtype, copy=False), ctx.reduction, (n, p))
        hard = (1 - e) * targets.weight * per_sample                   # (N, P)
        if not e:
            gx = probs * hard[:, None, :]
        else:
            smooth = (e / c) * per_sample * targets.valid                # (N, P)
            w = ctx.xp.ones(c, dtype=probs.dtype) if weight is None else weight.astype(probs.dtype)
            gx = probs * (hard + w.sum() * smooth)[:, None, :]
            gx -= w[:, None] * smooth[:, None, :]
        gx.reshape(-1)[targets.flat] -= hard
        return gx.reshape((n, c) + ctx.out_shape[1:]).astype(ctx.dtype, copy=False)


def _check_class_input(fn, input, min_ndim=1):
    if not isinstance(input, Tensor) or input.ndim < min_ndim:
        raise ValueError(f"{fn}: input must be a Tensor of scores (N, C) or (N, C, d1, ...), or (C,) for one "
                         f"sample, got {getattr(input, 'shape', type(input).__name__)}")
    if input.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be a floating tensor, got {input.dtype}")


def _one_sample_as_batch(fn, input, target):
    """A 1-D input (C,) is one sample, as PyTorch: it and its target (a 0-d class index, or (C,)
    probabilities) become a batch of one. Returns the input, the target and whether that was done."""
    if input.ndim != 1:
        return input, target, False
    if target.dtype.kind == "f" and target.shape == input.shape:
        return shape.unsqueeze(input, 0), shape.unsqueeze(target, 0), True
    if target.shape not in ((), (1,)):
        raise ValueError(f"{fn}: a 1-D input {input.shape} is one sample and needs a 0-d class index as target, "
                         f"got target shape {target.shape}")
    return shape.unsqueeze(input, 0), shape.reshape(target, 1), True


def _one_sample_result(loss, was_one, reduction):
    """The loss of a single 1-D sample: 'none' gives a 0-d loss, as PyTorch."""
    return shape.reshape(loss, ()) if was_one and reduction == "none" else loss


def _class_index_target(fn, input, target, ignore_index):
    """Integer class indices of shape (N, d1, ...), each in [0, C) or equal to ignore_index."""
    expected = input.shape[:1] + input.shape[2:]
    if target.dtype.kind not in "iu":
        raise TypeError(f"{fn}: target must hold integer class indices (int64) of shape {expected}, got dtype "
                        f"{target.dtype} and shape {target.shape}; use .long() on class labels")
    if target.shape != expected:
        raise ValueError(f"{fn}: target shape {target.shape} does not match input shape {input.shape}; "
                         f"expected {expected} (the input's shape without the class dim 1)")
    t = target.data
    bad = (t < 0) | (t >= input.shape[1])
    if ignore_index is not None:
        bad &= t != ignore_index
    backend.deferred.check(bad.any(), lambda: ValueError(  # on a device: raised at the next read back
        f"{fn}: target holds class index {int(backend.as_host(t[bad]).reshape(-1)[0])}, outside "
        f"[0, {input.shape[1]}) for input of shape {input.shape} (ignore_index={ignore_index})"))
    return t


def _class_weight(fn, input, weight):
    if weight is None:
        return None
    if not isinstance(weight, Tensor) or weight.shape != (input.shape[1],):
        raise ValueError(f"{fn}: weight must be a Tensor of shape ({input.shape[1]},), one per class, got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    return weight.data


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log likelihood of log-probabilities ``input`` (N, C, ...) at integer ``target``, as PyTorch's."""
    fn = "nll_loss"
    _check_reduction(fn, reduction)
    _check_class_input(fn, input)
    input, target, was_one = _one_sample_as_batch(fn, input, _as_target(fn, input, target))
    target = _class_index_target(fn, input, target, ignore_index)
    loss = NLLLoss.apply(input, target=target, weight=_class_weight(fn, input, weight), ignore_index=ignore_index,
                         reduction=reduction)
    return _one_sample_result(loss, was_one, reduction)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy of scores (N, C) or (N, C, d1, ...) against integer class indices (N, d1, ...) or
    class probabilities of the input's shape, as ``torch.nn.functional.cross_entropy``: class
    weights, ignore_index, label_smoothing and the weighted mean all follow PyTorch."""
    fn = "cross_entropy"
    _check_reduction(fn, reduction)
    _check_class_input(fn, input)
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    input, target, was_one = _one_sample_as_batch(fn, input, _as_target(fn, input, target))
    class_weight = _class_weight(fn, input, weight)
    if target.dtype.kind == "f" and target.shape == input.shape:
        if ignore_index != -100:
            raise ValueError(f"{fn}: ignore_index={ignore_index} applies to class-index targets only, not to class "
                             f"probabilities (a floating target of the input's shape {input.shape})")
        return _one_sample_result(_soft_cross_entropy(input, target, weight, reduction, label_smoothing), was_one,
                                  reduction)
    target = _class_index_target(fn, input, target, ignore_index)
    loss = CrossEntropy.apply(input, target=target, weight=class_weight, ignore_index=ignore_index,
                              reduction=reduction, label_smoothing=float(label_smoothing))
    return _one_sample_result(loss, was_one, reduction)


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    """l_i = -sum_c w_c q_c logp_c with q = (1 - e) target + e / C; 'mean' averages over samples."""
    classes = input.shape[1]  # a float64 target with float32 logits gives a float64 loss, as PyTorch's
    q = target * (1 - label_smoothing) + label_smoothing / classes
    if weight is not None:
        q = q * shape.reshape(weight, (1, classes) + (1,) * (input.ndim - 2))
    loss = elementwise.neg(reduce.sum(q * reduce.log_softmax(input, 1), 1))
    return _reduce(loss, reduction)


def dice_loss(input: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """Soft Dice loss for segmentation: scores (N, C, *) against integer classes (N, *).

    With p = softmax(input) over the classes and y the one-hot target, for each class c (sums over
    the batch and all pixels):  dice_c = (2 sum(p_c y_c) + eps) / (sum(p_c) + sum(y_c) + eps),
    and the loss is 1 - mean_c dice_c. ``eps`` smooths classes absent from both.
    """
    fn = "dice_loss"
    _check_class_input(fn, input, min_ndim=2)
    target = _class_index_target(fn, input, _as_target(fn, input, target), ignore_index=None)
    xp, classes = input.xp, input.shape[1]
    one_hot = (target[:, None] == xp.arange(classes).reshape((1, classes) + (1,) * (input.ndim - 2)))
    y = Tensor(one_hot.astype(input.dtype), device=input.device)
    p = reduce.softmax(input, 1)
    axes = (0,) + tuple(range(2, input.ndim))
    intersection = reduce.sum(p * y, axes)
    total = reduce.sum(p, axes) + reduce.sum(y, axes)
    dice = (intersection * 2 + eps) / (total + eps)
    return 1 - reduce.mean(dice)


# --------------------------------------------------------------------------- regression losses
class SmoothL1(Function):
    """l = 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta;  dl/dd = clip(d / beta, -1, 1)
    (sign(d) for beta = 0, which is the L1 loss)."""
    def forward(ctx, d, *, beta):
        xp = ctx.xp
        ctx.save(d)
        ctx.beta = beta
        a = xp.abs(d)
        if beta == 0:
            return a
        b = d.dtype.type(beta)
        return xp.where(a < b, d.dtype.type(0.5) * d * d / b, a - d.dtype.type(0.5) * b)

    def backward(ctx, g):
        (d,) = ctx.saved
        xp = ctx.xp
        if ctx.beta == 0:
            return g * xp.sign(d)
        return g * xp.clip(d / d.dtype.type(ctx.beta), -1, 1)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """mean((input - target)^2), as PyTorch's."""
    _check_reduction("mse_loss", reduction)
    d = input - _same_shape_target("mse_loss", input, target, promote=True)
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """mean(|input - target|), as PyTorch's."""
    _check_reduction("l1_loss", reduction)
    return _reduce(elementwise.abs(input - _same_shape_target("l1_loss", input, target, promote=True)), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Huber-like loss: quadratic below ``beta``, linear above, as PyTorch's ``smooth_l1_loss``."""
    _check_reduction("smooth_l1_loss", reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta!r}")
    d = input - _same_shape_target("smooth_l1_loss", input, target, promote=True)
    return _reduce(SmoothL1.apply(d, beta=float(beta)), reduction)

