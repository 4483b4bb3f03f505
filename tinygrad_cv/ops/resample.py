"""Resampling: ``interpolate`` (nearest, bilinear) and ``pixel_shuffle``.

Nearest and bilinear resizing are separable: y = R_h x R_w^T, where each 1-D operator R (out, in)
has at most two non-zeros per row. R is stored as *taps*: T pairs (index, weight) of shape (out,),
so that applying it along an axis is T gathers, y[o] = sum_t weight[t, o] * x[index[t, o]]. The
backward pass applies R^T, stored as taps too (one list per input position, padded with zero
weights), so both directions are gathers; no scatter-add.

Source coordinates follow PyTorch exactly, computed in float32 (float64 for float64 inputs):
  nearest:                       src = min(floor(dst * scale), in - 1)
  bilinear, align_corners=True:  src = dst * (in - 1) / (out - 1)
  bilinear, align_corners=False: src = max((dst + 0.5) * scale - 0.5, 0)
where scale = 1 / scale_factor when a scale factor is given, else in / out.
"""
import math
import numbers

import numpy as np

from ..autograd import Function
from . import shape
from .conv import check_4d


# --------------------------------------------------------------------------- 1-D operators as taps
def _coordinate_dtype(dtype):
    return np.float64 if dtype == np.float64 else np.float32


def nearest_taps(n_in, n_out, scale_factor, dtype):
    """One tap: index (1, out) = min(floor(dst * scale), in - 1), weight 1."""
    ft = _coordinate_dtype(dtype)
    scale = ft(1.0 / scale_factor) if scale_factor else ft(n_in) / ft(n_out)
    index = np.minimum(np.floor(np.arange(n_out, dtype=ft) * scale).astype(np.int64), n_in - 1)
    return index[None], np.ones((1, n_out), dtype=dtype)


def bilinear_taps(n_in, n_out, scale_factor, align_corners, dtype):
    """Two taps: index h0 = floor(src), h1 = min(h0 + 1, in - 1) with weights 1 - l and l, l = src - h0."""
    ft = _coordinate_dtype(dtype)
    dst = np.arange(n_out, dtype=ft)
    if align_corners:
        src = dst * (ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0))
    else:
        scale = ft(1.0 / scale_factor) if scale_factor else ft(n_in) / ft(n_out)
        src = np.maximum((dst + ft(0.5)) * scale - ft(0.5), ft(0))
    h0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    h1 = h0 + (h0 < n_in - 1)
    lam = np.clip(src - h0, 0, 1).astype(ft)
    return np.stack([h0, h1]), np.stack([1 - lam, lam]).astype(dtype)


def transpose_taps(index, weight, n_in):
    """The taps of R^T (in, out) from those of R: for each input position, the output positions
    that read it, with their weights; rows are padded with index 0 and weight 0 to a common count."""
    taps, n_out = index.shape
    dst = np.tile(np.arange(n_out), taps)
    src, w = index.reshape(-1), weight.reshape(-1)
    order = np.argsort(src, kind="stable")
    src, dst, w = src[order], dst[order], w[order]
    first = np.searchsorted(src, np.arange(n_in))
    rank = np.arange(src.size) - first[src]          # position of each entry within its input's list
    count = max(1, int(rank.max()) + 1) if src.size else 1
    t_index = np.zeros((count, n_in), dtype=np.int64)
    t_weight = np.zeros((count, n_in), dtype=weight.dtype)
    t_index[rank, src] = dst
    t_weight[rank, src] = w
    return t_index, t_weight


def apply_taps(xp, x, index, weight, axis):
    """y = R x along ``axis``: y[..., o, ...] = sum_t weight[t, o] * x[..., index[t, o], ...]."""
    along = [1] * x.ndim
    along[axis] = -1
    y = xp.take(x, index[0], axis=axis) * weight[0].reshape(along)
    for t in range(1, index.shape[0]):
        y += xp.take(x, index[t], axis=axis) * weight[t].reshape(along)
    return y


class Resample2d(Function):
    """y = R_h x R_w^T (applied as taps along H, then W);  dx = R_h^T dy R_w."""
    def forward(ctx, x, *, rows, cols):
        ctx.rows, ctx.cols = rows, cols
        return apply_taps(ctx.xp, apply_taps(ctx.xp, x, *rows[:2], axis=2), *cols[:2], axis=3)

    def backward(ctx, g):
        return apply_taps(ctx.xp, apply_taps(ctx.xp, g, *ctx.cols[2:], axis=3), *ctx.rows[2:], axis=2)


def _operator(xp, index, weight, n_in):
    """Device copies of R's taps and of R^T's."""
    t_index, t_weight = transpose_taps(index, weight, n_in)
    return tuple(xp.asarray(a) for a in (index, weight, t_index, t_weight))


# --------------------------------------------------------------------------- public wrappers
def _output_size(fn, x, size, scale_factor):
    """The output (H, W) and the per-dim scale factors (None when a size was given)."""
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{fn}: give exactly one of size and scale_factor, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    if size is not None:
        sizes = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
        if len(sizes) != 2 or any(not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(f"{fn}: size must be a positive int or a pair of them, got {size!r}")
        return tuple(int(s) for s in sizes), (None, None)
    factors = (scale_factor, scale_factor) if isinstance(scale_factor, numbers.Real) else tuple(scale_factor)
    if len(factors) != 2 or any(not isinstance(f, numbers.Real) or f <= 0 for f in factors):
        raise ValueError(f"{fn}: scale_factor must be a positive number or a pair of them, got {scale_factor!r}")
    sizes = tuple(math.floor(n * float(f)) for n, f in zip(x.shape[2:], factors))
    if min(sizes) < 1:
        raise ValueError(f"{fn}: scale_factor {scale_factor!r} makes the input {x.shape} empty ({sizes})")
    return sizes, tuple(float(f) for f in factors)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resize (N, C, H, W) images, as ``torch.nn.functional.interpolate`` with mode 'nearest' or
    'bilinear' (align_corners False by default). With ``recompute_scale_factor`` the coordinate scale
    is in / out even when a scale_factor was given."""
    fn = "interpolate"
    check_4d(fn, "input", input)
    if input.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be a floating tensor, got {input.dtype}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{fn}: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{fn}: align_corners can only be set with mode='bilinear', got mode={mode!r}")
    out_size, factors = _output_size(fn, input, size, scale_factor)
    if recompute_scale_factor:
        factors = (None, None)
    operators = []
    for n_in, n_out, factor in zip(input.shape[2:], out_size, factors):
        if mode == "nearest":
            index, weight = nearest_taps(n_in, n_out, factor, input.dtype)
        else:
            index, weight = bilinear_taps(n_in, n_out, factor, bool(align_corners), input.dtype)
        operators.append(_operator(input.xp, index, weight, n_in))
    return Resample2d.apply(input, rows=operators[0], cols=operators[1])


def pixel_shuffle(input, upscale_factor):
    """(N, C*r*r, H, W) -> (N, C, H*r, W*r), as ``torch.nn.functional.pixel_shuffle``:
    out[n, c, h*r + i, w*r + j] = in[n, c*r*r + i*r + j, h, w]."""
    r = upscale_factor
    check_4d("pixel_shuffle", "input", input)
    if not isinstance(r, numbers.Integral) or r < 1:
        raise ValueError(f"pixel_shuffle: upscale_factor must be a positive int, got {r!r}")
    n, c, h, w = input.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle: the {c} input channels (shape {input.shape}) must be divisible by "
                         f"upscale_factor**2 = {r * r}")
    x = shape.reshape(input, n, c // (r * r), r, r, h, w)
    x = shape.permute(x, 0, 1, 4, 2, 5, 3)
    return shape.reshape(x, n, c // (r * r), h * r, w * r)

