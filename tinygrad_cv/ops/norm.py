"""Normalisation (batch, layer, group) and dropout."""
from __future__ import annotations

import numbers
from typing import Any

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


BLOCK_BYTES = 1024 * 1024  # x per CPU block (the fastest measured of 128 KiB to 4 MiB)


def channel_blocks(xv, device):
    """The channel slices batch norm works on, one after another or on the thread pool.

    'cuda' and 'emu': one slice of every channel, so the kernels and array calls are whole-tensor ones
    and their number does not depend on the host's threads. The CPU: blocks of about BLOCK_BYTES of x
    (at least one channel, at least one block per thread; a core here has 1 MiB of L2), so the NumPy
    passes a block needs (statistics, normalise, affine; backward's sums and three-term dx) read it
    from the core's cache instead of from memory each time: measured on one thread (float32, CPU time)
    against one slice, backward 2.0x and 2.8x, forward with statistics 1.2x and 1.4x faster on
    (32, 32, 64, 64) and (8, 32, 128, 128); on (32, 256, 8, 8) backward ~10% slower. The results are those of one slice,
    bit for bit (every channel's arithmetic is the same whichever block it is in)."""
    channels = xv.shape[1]
    if device != "cpu" or channels == 0:
        return [slice(None)]
    per_channel = max(1, xv.shape[0] * xv.shape[2] * xv.itemsize)
    size = max(1, min(BLOCK_BYTES // per_channel, -(-channels // threads.get_num_threads())))
    return [slice(c, min(c + size, channels)) for c in range(0, channels, size)]


def _per_block(fn, xv, device):
    """fn(channels) for each block of channel_blocks: on the CPU thread pool (the blocks are
    independent), on the calling thread on 'cuda' and 'emu'."""
    blocks = channel_blocks(xv, device)
    if device != "cpu":
        return [fn(cs) for cs in blocks]
    return threads.parallel_map(fn, blocks)


def _block_stats(xp, v, count):
    """Mean and biased variance per channel of the block v (N, c, P), in v's dtype: two passes (the
    mean, then the mean squared deviation), so no cancellation."""
    mean = _channel_sum(v) / count
    centred = v - mean[:, None]
    return mean, _channel_dot(xp, centred, centred) / count


class BatchNorm(Function):
    """y = (x - mean) * invstd * w + b per channel (axis 1), invstd = 1 / sqrt(var + eps), computed as
    y = x * scale + shift with scale = w * invstd, shift = b - mean * scale.

    Training (``training=True``): mean and biased var are the batch's, measured here (on the CPU in the
    same cache-sized channel blocks as the normalisation, so x comes from memory once; on 'cuda' and
    'emu', one pass of the kernel in backend/kernels/batchnorm.cu), and the running statistics given
    are updated in place (see ``batch_norm``). Evaluation: mean and var are the running ones. float16
    input is normalised with float32 statistics.

    With xhat = (x - mean) * invstd, M values per channel and sums over all but the channel axis:
        dw = sum(g * xhat),  db = sum(g)
        dx = w * invstd * g                                          (mean, var constants: evaluation)
        dx = w * invstd * (g - sum(g)/M - xhat * sum(g * xhat)/M)    (batch statistics: training)
    """
    def forward(ctx, x, w, b, *, running_mean, running_var, training, momentum, eps):
        xp, acc = ctx.xp, acc_dtype(x.dtype)
        xv = _channels_view(x)
        count = xv.shape[0] * xv.shape[2]
        if training and ctx.device != "cpu":
            mean, var = launch.batch_norm_statistics(x)
        elif training:
            mean, var = xp.empty(xv.shape[1], dtype=acc), xp.empty(xv.shape[1], dtype=acc)
        else:
            mean, var = running_mean.data.astype(acc), running_var.data.astype(acc)
        invstd, scale = xp.empty_like(mean), xp.empty_like(mean)
        y = xp.empty_like(xv)

        def block(cs):
            if training and ctx.device == "cpu":
                mean[cs], var[cs] = _block_stats(xp, xv[:, cs].astype(acc, copy=False), count)
            invstd[cs] = 1 / xp.sqrt(var[cs] + var.dtype.type(eps))
            scale[cs] = w[cs].astype(acc) * invstd[cs]
            shift = b[cs].astype(acc) - mean[cs] * scale[cs]
            xp.multiply(xv[:, cs], scale[cs, None].astype(x.dtype), out=y[:, cs])
            y[:, cs] += shift[:, None].astype(x.dtype)
        _per_block(block, xv, ctx.device)
        if training:
            _update_running(running_mean, mean, momentum)
            _update_running(running_var, var * var.dtype.type(count / (count - 1)), momentum)
        ctx.save(x, scale, mean, invstd)
        ctx.training = training
        return y.reshape(x.shape)

    def backward(ctx, g):
        x, scale, mean, invstd = ctx.saved
        xp, acc, need = ctx.xp, mean.dtype, ctx.needs_input_grad
        gv, xv = _channels_view(g), _channels_view(x)
        count = gv.shape[0] * gv.shape[2]
        dx: Any = xp.empty_like(xv) if need[0] else None  # (None when the input needs no gradient)
        dw, db = xp.empty(xv.shape[1], dtype=acc), xp.empty(xv.shape[1], dtype=acc)

        def block(cs):
            g_c = gv[:, cs].astype(acc, copy=False)
            db[cs] = sum_g = _channel_sum(g_c)
            if need[1] or (need[0] and ctx.training):
                centred = xv[:, cs].astype(acc, copy=False) - mean[cs, None]
                dw[cs] = sum_g_xhat = _channel_dot(xp, g_c, centred) * invstd[cs]
            if not need[0]:
                return
            dx_c = dx[:, cs] if dx.dtype == acc else xp.empty(g_c.shape, dtype=acc)
            xp.multiply(g_c, scale[cs, None], out=dx_c)
            if ctx.training:
                centred *= (-scale[cs] * invstd[cs] * sum_g_xhat / count)[:, None]
                dx_c += centred
                dx_c -= (scale[cs] * sum_g / count)[:, None]
            if dx_c.dtype != dx.dtype:
                dx[:, cs] = dx_c
        _per_block(block, xv, ctx.device)
        return (dx.reshape(x.shape) if need[0] else None), (dw if need[1] else None), (db if need[2] else None)


def _check_channel_vector(name, t, channels, input_shape):
    if t is not None and (not isinstance(t, Tensor) or t.shape != (channels,)):
        shape = t.shape if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"batch_norm: {name} must be a Tensor of shape ({channels},) for an input of shape "
                         f"{input_shape}, got {shape}")


def _update_running(running, batch_value, momentum):
    """running <- (1 - momentum) * running + momentum * batch_value, in place of running.data (if given)."""
    if running is None:
        return
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
    if training and input.numel() // max(channels, 1) <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                         f"shape {input.shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are needed in evaluation mode "
                         "(training=False)")
    xp = input.xp
    weight = weight if weight is not None else Tensor(xp.ones(channels, dtype=input.dtype), device=input.device)
    bias = bias if bias is not None else Tensor(xp.zeros(channels, dtype=input.dtype), device=input.device)
    return BatchNorm.apply(input, weight, bias, running_mean=running_mean, running_var=running_var,
                           training=training, momentum=momentum, eps=eps)


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
