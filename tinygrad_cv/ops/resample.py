"""Resampling: ``interpolate`` (nearest, bilinear) and ``pixel_shuffle``.

Nearest and bilinear resizing, like adaptive average pooling, are separable linear maps:
y = A_h @ x @ A_w^T, with one (out, in) matrix per spatial dim. The backward pass is
dx = A_h^T @ dy @ A_w. The matrices are dense: each output pixel costs in_h + in_w multiply-adds
instead of the 4 of a gather, but BLAS runs them faster than NumPy runs gathers and scatter-adds at
the sizes of this project (a few hundred pixels), and the backward needs no scatter at all.

Source coordinates follow PyTorch exactly, computed in float32 (float64 for float64 inputs):
  nearest:                       src = min(floor(dst * scale), in - 1)
  bilinear, align_corners=True:  src = dst * (in - 1) / (out - 1)
  bilinear, align_corners=False: src = max((dst + 0.5) * scale - 0.5, 0)
where scale = 1 / scale_factor when a scale factor is given, else in / out. Bilinear weights are
1 - l and l on pixels h0 = floor(src) and min(h0 + 1, in - 1), l = src - h0.
"""
import math
import numbers

import numpy as np

from ..autograd import Function
from . import shape
from ._util import matmul_arrays
from .conv import check_4d


# --------------------------------------------------------------------------- 1-D resampling matrices
def _coordinate_dtype(dtype):
    return np.float64 if dtype == np.float64 else np.float32


def _scale(n_in, n_out, scale_factor, ft):
    return ft(1.0 / scale_factor) if scale_factor else ft(n_in) / ft(n_out)


def nearest_matrix(n_in, n_out, scale_factor, dtype):
    """The (out, in) host matrix of nearest resampling: row o has a 1 at min(floor(o * scale), in - 1)."""
    ft = _coordinate_dtype(dtype)
    src = np.floor(np.arange(n_out, dtype=ft) * _scale(n_in, n_out, scale_factor, ft)).astype(np.int64)
    matrix = np.zeros((n_out, n_in), dtype=dtype)
    matrix[np.arange(n_out), np.minimum(src, n_in - 1)] = 1
    return matrix


def bilinear_matrix(n_in, n_out, scale_factor, align_corners, dtype):
    """The (out, in) host matrix of linear resampling: row o weighs h0 by 1 - l and h1 by l."""
    ft = _coordinate_dtype(dtype)
    dst = np.arange(n_out, dtype=ft)
    if align_corners:
        src = dst * (ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0))
    else:
        src = np.maximum((dst + ft(0.5)) * _scale(n_in, n_out, scale_factor, ft) - ft(0.5), ft(0))
    h0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    h1 = h0 + (h0 < n_in - 1)
    lam = np.clip(src - h0, 0, 1).astype(ft)
    matrix = np.zeros((n_out, n_in), dtype=ft)
    rows = np.arange(n_out)
    matrix[rows, h0] += 1 - lam
    matrix[rows, h1] += lam           # h1 == h0 at the last pixel: the weights add up to 1 there
    return matrix.astype(dtype)


class Resample2d(Function):
    """y = A_h @ x @ A_w^T for (N, C, H, W) inputs;  dx = A_h^T @ dy @ A_w."""
    def forward(ctx, x, *, rows, cols):
        ctx.rows, ctx.cols = rows, cols
        return _apply(ctx.xp, x, rows, cols)

    def backward(ctx, dy):
        return _apply(ctx.xp, dy, ctx.rows.T, ctx.cols.T)


def _apply(xp, x, rows, cols):
    """rows (Ho, H) @ x (N, C, H, W) @ cols^T (W, Wo). The W side is one GEMM over every image row;
    the H side is one small GEMM per image, so it runs where the images are narrower."""
    def along_w(a):
        return matmul_arrays(xp, a.reshape(-1, a.shape[-1]), cols.T).reshape(a.shape[:-1] + (cols.shape[0],))
    if cols.shape[0] > x.shape[3]:
        return along_w(matmul_arrays(xp, rows, x))
    return matmul_arrays(xp, rows, along_w(x))


def resample2d(input, rows, cols):
    """y = rows @ input @ cols^T with host matrices rows (Ho, H) and cols (Wo, W)."""
    rows, cols = (input.xp.asarray(m.astype(input.dtype)) for m in (rows, cols))
    return Resample2d.apply(input, rows=rows, cols=cols)


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
    if mode == "nearest":
        rows, cols = (nearest_matrix(n, o, f, input.dtype) for n, o, f in zip(input.shape[2:], out_size, factors))
    else:
        rows, cols = (bilinear_matrix(n, o, f, bool(align_corners), input.dtype)
                      for n, o, f in zip(input.shape[2:], out_size, factors))
    return resample2d(input, rows, cols)


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

