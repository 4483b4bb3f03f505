"""Normalisation (batch, layer, group) and dropout."""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd import Function
from ..backend import acc_dtype, launch, threads
from ..random import generator
from ..tensor import ShapeLike, Tensor
from .elementwise import rsqrt


# --------------------------------------------------------------------------- batch norm
def _channels_view(x):
    """x (N, C, *) viewed as (N, C, P): the statistics reduce over axes 0 and 2."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sum(a):
    """Per-channel sum of a (N, C, P): the contiguous axis first (fast and pairwise), then the batch."""
    return a.sum(axis=2).sum(axis=0)


def _channel_dot(xp, a, b):
    """Per-channel sum of a * b for (N, C, P) arrays, as N*C dot products: BLAS, and no product array."""
    return xp.matmul(a[:, :, None, :], b[:, :, :, None])[:, :, 0, 0].sum(axis=0)


def batch_norm_stats(xp, x, device="cpu"):
    """Per-channel mean and biased variance of x (N, C, *) over every axis but 1, in float32 for
    float16 inputs. Two passes (mean, then mean squared deviation): no cancellation. On the CPU the
    channels are split between the threads; on 'cuda' and 'emu', one pass of the CUDA kernel in
    backend/kernels/batchnorm.cu (shifted sums)."""
    if device != "cpu":
        return launch.batch_norm_statistics(x)
    acc = acc_dtype(x.dtype)
    xv = _channels_view(x)
    count = xv.shape[0] * xv.shape[2]
    mean, var = xp.empty(xv.shape[1], dtype=acc), xp.empty(xv.shape[1], dtype=acc)

    def channels(cs):
        v = xv[:, cs].astype(acc, copy=False)
        mean[cs] = _channel_sum(v) / count
        deviation = v - mean[cs, None]
        var[cs] = _channel_dot(xp, deviation, deviation) / count
    threads.parallel_map(channels, threads.split(xv.shape[1]))
    return mean, var


class BatchNorm(Function):
    """y = (x - mean) * invstd * w + b per channel (axis 1), invstd = 1 / sqrt(var + eps).

    With xhat = (x - mean) * invstd, M values per channel and sums over all but the channel axis:
        dw = sum(g * xhat),  db = sum(g)
        dx = w * invstd * g                                          (mean, var constants: evaluation)
        dx = w * invstd * (g - sum(g)/M - xhat * sum(g * xhat)/M)    (batch statistics: training)
    Every channel is independent, so on the CPU the channels are split between the threads.
    """
    def forward(ctx, x, w, b, *, mean, invstd, batch_stats):
        scale = w.astype(mean.dtype) * invstd
        shift = b.astype(mean.dtype) - mean * scale
        ctx.save(x, scale)
        ctx.mean, ctx.invstd, ctx.batch_stats = mean, invstd, batch_stats
        xv = _channels_view(x)
        y = ctx.xp.empty_like(xv)

        def channels(cs):
            ctx.xp.multiply(xv[:, cs], scale[cs, None].astype(x.dtype), out=y[:, cs])
            y[:, cs] += shift[cs, None].astype(x.dtype)
        threads.parallel_map(channels, threads.split(xv.shape[1]), ctx.device)
        return y.reshape(x.shape)

    def backward(ctx, g):
        x, scale = ctx.saved
        xp, acc, need = ctx.xp, ctx.mean.dtype, ctx.needs_input_grad
        gv, xv = _channels_view(g), _channels_view(x)
        count = gv.shape[0] * gv.shape[2]
        dx = xp.empty_like(xv) if need[0] else None
        dw, db = xp.empty(xv.shape[1], dtype=acc), xp.empty(xv.shape[1], dtype=acc)

        def channels(cs):
            g_c = gv[:, cs].astype(acc, copy=False)
            db[cs] = sum_g = _channel_sum(g_c)
            if need[1] or (need[0] and ctx.batch_stats):
                centred = xv[:, cs].astype(acc, copy=False) - ctx.mean[cs, None]
                dw[cs] = sum_g_xhat = _channel_dot(xp, g_c, centred) * ctx.invstd[cs]
            if not need[0]:
                return
            dx_c = g_c * scale[cs, None]
            if ctx.batch_stats:
                centred *= (-scale[cs] * ctx.invstd[cs] * sum_g_xhat / count)[:, None]
                dx_c += centred
                dx_c -= (scale[cs] * sum_g / count)[:, None]
            dx[:, cs] = dx_c  # type: ignore[index]  # only called when need[0], so dx is an array
        threads.parallel_map(channels, threads.split(xv.shape[1]), ctx.device)
        dx = dx.reshape(x.shape) if need[0] else None  # type: ignore[union-attr]
        return dx, (dw if need[1] else None), (db if need[2] else None)


def _check_channel_vector(name, t, channels, input_shape):
    if t is not None and (not isinstance(t, Tensor) or t.shape != (channels,)):
        shape = t.shape if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"batch_norm: {name} must be a Tensor of shape ({channels},) for an input of shape "
                         f"{input_shape}, got {shape}")


def _update_running(running, batch_value, momentum):
    """running <- (1 - momentum) * running + momentum * batch_value, in place of running.data."""
    data = running.data
    data *= data.dtype.type(1 - momentum)
    data += (momentum * batch_value).astype(data.dtype)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over axis 1, as ``torch.nn.functional.batch_norm``.

    Training: normalise with the batch's mean and biased variance, and (if given) update the running
    statistics in place, without gradient: running = (1 - momentum) * running + momentum * batch,
    where the variance folded in is the unbiased one (M / (M - 1) times the biased).
    Evaluation: normalise with the running statistics.
    """
    if not isinstance(input, Tensor) or input.ndim < 2:
        raise ValueError(f"batch_norm: input must be a Tensor of shape (N, C, ...), got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    channels = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        _check_channel_vector(name, t, channels, input.shape)
    count = input.numel() // channels
    xp = input.xp
    if training:
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                             f"shape {input.shape}")
        mean, var = batch_norm_stats(xp, input.data, input.device)
        if running_mean is not None:
            _update_running(running_mean, mean, momentum)
        if running_var is not None:
            _update_running(running_var, var * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed in evaluation mode "
                             "(training=False)")
        acc = acc_dtype(input.dtype)
        mean, var = running_mean.data.astype(acc), running_var.data.astype(acc)
    invstd = 1 / xp.sqrt(var + var.dtype.type(eps))
    weight = weight if weight is not None else Tensor(xp.ones(channels, dtype=input.dtype), device=input.device)
    bias = bias if bias is not None else Tensor(xp.zeros(channels, dtype=input.dtype), device=input.device)
    return BatchNorm.apply(input, weight, bias, mean=mean, invstd=invstd, batch_stats=training)


# --------------------------------------------------------------------------- layer and group norm
def _normalize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over ``axes``, biased variance, composed of differentiable ops
    (so autograd gives the gradient); float16 is computed in float32 and cast back, as PyTorch."""
    h = x.float() if x.dtype == np.float16 else x
    centred = h - h.mean(axes, keepdim=True)
    y = centred * rsqrt((centred * centred).mean(axes, keepdim=True) + eps)
    return y.to(dtype=x.dtype) if y.dtype != x.dtype else y


def _affine_shape_check(fn, name, t, shape):
    if t is not None and (not isinstance(t, Tensor) or t.shape != tuple(shape)):
        seen = t.shape if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{fn}: {name} must be a Tensor of shape {tuple(shape)}, got {seen}")


def layer_norm(input: Tensor, normalized_shape: ShapeLike, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias, the statistics over the last
    len(normalized_shape) dims (biased variance), as ``torch.nn.functional.layer_norm``."""
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, numbers.Integral)) else tuple(normalized_shape)
    if not isinstance(input, Tensor) or not shape or tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ValueError(f"layer_norm: input's last dims must be normalized_shape={shape}, got input shape "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    for name, t in (("weight", weight), ("bias", bias)):
        _affine_shape_check("layer_norm", name, t, shape)
    y = _normalize(input, tuple(range(input.ndim - len(shape), input.ndim)), eps)
    y = y * weight if weight is not None else y
    return y + bias if bias is not None else y


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Split the C channels of x (N, C, *) into ``num_groups`` groups and normalise each sample's group
    by its own mean and biased variance; then y * weight[c] + bias[c], as
    ``torch.nn.functional.group_norm``."""
    if not isinstance(input, Tensor) or input.ndim < 2:
        raise ValueError(f"group_norm: input must be a Tensor of shape (N, C, ...), got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    n, c = input.shape[:2]
    if not isinstance(num_groups, numbers.Integral) or num_groups < 1 or c % num_groups:
        raise ValueError(f"group_norm: num_groups must be a positive int dividing the {c} channels, got "
                         f"{num_groups!r}")
    for name, t in (("weight", weight), ("bias", bias)):
        _affine_shape_check("group_norm", name, t, (c,))
    y = _normalize(input.reshape(n, num_groups, -1), (2,), eps).reshape(input.shape)
    per_channel = (c,) + (1,) * (input.ndim - 2)
    y = y * weight.reshape(per_channel) if weight is not None else y
    return y + bias.reshape(per_channel) if bias is not None else y


# --------------------------------------------------------------------------- dropout
class Dropout(Function):
    """y = x * mask / (1 - p) with mask ~ Bernoulli(1 - p);  dx = g * mask / (1 - p)."""
    def forward(ctx, x, *, scaled_mask):
        ctx.save(scaled_mask)
        return x * scaled_mask

    def backward(ctx, g):
        return g * ctx.saved[0]


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only), as
    ``torch.nn.functional.dropout``. The mask comes from ``tinygrad_cv.random.generator()``."""
    if not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability between 0 and 1, got {p!r}")
    if not training or p == 0:
        return input
    keep = generator().random(input.shape, dtype=np.float32) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    scaled_mask = input.xp.asarray(keep.astype(input.dtype) * input.dtype.type(scale))
    return Dropout.apply(input, scaled_mask=scaled_mask)
