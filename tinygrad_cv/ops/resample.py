"""Resampling: ``interpolate`` (nearest, nearest-exact, (bi)linear, bicubic, area) and ``pixel_shuffle``.

Every mode of ``interpolate``, like adaptive average pooling, is a separable linear map:
y = A_h @ x @ A_w^T, with one (out, in) matrix per spatial dim (a 1-D resize of (N, C, L) inputs is
the same with A_h = [1]). The backward pass is dx = A_h^T @ dy @ A_w. The matrices are dense: each
output pixel costs in_h + in_w multiply-adds instead of the 4 (16 for bicubic) of a gather, but BLAS
runs them faster than NumPy runs gathers and scatter-adds at the sizes of this project (a few
hundred pixels), and the backward needs no scatter at all.

Source coordinates follow PyTorch exactly, computed in the accumulation dtype (``backend.acc_dtype``:
float32 for float16 and float32 inputs, float64 for float64), with
scale = 1 / scale_factor when a scale factor is given, else in / out:
  nearest:                       src = min(floor(dst * scale), in - 1)
  nearest-exact:                 src = min(floor((dst + 0.5) * scale), in - 1)
  linear, align_corners=True:    src = dst * (in - 1) / (out - 1)       (bicubic too)
  linear, align_corners=False:   src = max((dst + 0.5) * scale - 0.5, 0) (bicubic: not clamped at 0)
Linear weights are 1 - l and l on pixels h0 = floor(src) and min(h0 + 1, in - 1), l = src - h0.
Bicubic weights are Keys' cubic convolution with A = -0.75 on pixels h0 - 1 .. h0 + 2, each index
clamped into [0, in - 1] (the border pixel takes the weight of the pixels beyond it):
  W(d) = (A + 2)|d|^3 - (A + 3)|d|^2 + 1           for |d| <= 1
  W(d) = A|d|^3 - 5A|d|^2 + 8A|d| - 4A             for 1 < |d| < 2
Area is adaptive average pooling: bin o covers [floor(o*in/out), ceil((o+1)*in/out)).
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from ..autograd import Function
from ..backend import acc_dtype
from ..tensor import ShapeLike, Tensor
from . import shape
from ._util import check_4d, matmul_arrays


# --------------------------------------------------------------------------- 1-D resampling matrices
def _scale(n_in, n_out, scale_factor, ft):
    return ft(1.0 / scale_factor) if scale_factor else ft(n_in) / ft(n_out)


def nearest_matrix(n_in, n_out, scale_factor, dtype, exact=False):
    """The (out, in) host matrix of nearest resampling: row o has a 1 at min(floor(o * scale), in - 1)
    (at min(floor((o + 0.5) * scale), in - 1) for 'nearest-exact')."""
    ft = acc_dtype(dtype).type
    dst = np.arange(n_out, dtype=ft) + (ft(0.5) if exact else ft(0))
    src = np.floor(dst * _scale(n_in, n_out, scale_factor, ft)).astype(np.int64)
    matrix = np.zeros((n_out, n_in), dtype=dtype)
    matrix[np.arange(n_out), np.minimum(src, n_in - 1)] = 1
    return matrix


def _source(n_in, n_out, scale_factor, align_corners, ft, clamp):
    """Source coordinates of the output pixels for the linear and cubic modes."""
    dst = np.arange(n_out, dtype=ft)
    if align_corners:
        return dst * (ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0))
    src = (dst + ft(0.5)) * _scale(n_in, n_out, scale_factor, ft) - ft(0.5)
    return np.maximum(src, ft(0)) if clamp else src


def bilinear_matrix(n_in, n_out, scale_factor, align_corners, dtype):
    """The (out, in) host matrix of linear resampling: row o weighs h0 by 1 - l and h1 by l."""
    ft = acc_dtype(dtype).type
    src = _source(n_in, n_out, scale_factor, align_corners, ft, clamp=True)
    h0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    h1 = h0 + (h0 < n_in - 1)
    lam = np.clip(src - h0, 0, 1).astype(ft)
    matrix = np.zeros((n_out, n_in), dtype=ft)
    rows = np.arange(n_out)
    matrix[rows, h0] += 1 - lam
    matrix[rows, h1] += lam           # h1 == h0 at the last pixel: the weights add up to 1 there
    return matrix.astype(dtype)


CUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution constant


def _cubic_weight(d, a):
    """Keys' cubic convolution kernel W(d) (module docstring), for distances 0 <= d < 2."""
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, far)


def bicubic_matrix(n_in, n_out, scale_factor, align_corners, dtype):
    """The (out, in) host matrix of cubic resampling: row o weighs pixels h0 - 1 .. h0 + 2 (clamped
    into the input) by W(t + 1), W(t), W(1 - t), W(2 - t), with h0 = floor(src) and t = src - h0."""
    ft = acc_dtype(dtype).type
    src = _source(n_in, n_out, scale_factor, align_corners, ft, clamp=False)
    h0 = np.floor(src)
    t = (src - h0).astype(ft)
    matrix = np.zeros((n_out, n_in), dtype=ft)
    rows = np.arange(n_out)
    for k in range(4):                           # the taps h0 - 1, h0, h0 + 1, h0 + 2
        pixel = np.clip(h0.astype(np.int64) - 1 + k, 0, n_in - 1)
        np.add.at(matrix, (rows, pixel), _cubic_weight(np.abs(t - ft(k - 1)), ft(CUBIC_A)).astype(ft))
    return matrix.astype(dtype)


def adaptive_bins(n, out):
    """The (out, n) host matrix that averages PyTorch's adaptive bins:
    bin i covers [floor(i*n/out), ceil((i+1)*n/out))."""
    i = np.arange(out)
    start = (i * n) // out
    end = -((-(i + 1) * n) // out)
    pixel = np.arange(n)
    inside = (pixel >= start[:, None]) & (pixel < end[:, None])
    return inside / (end - start)[:, None]


def resample_matrix(mode, n_in, n_out, scale_factor, align_corners, dtype):
    """The (out, in) host matrix of one spatial dim for an ``interpolate`` mode."""
    if mode in ("nearest", "nearest-exact"):
        return nearest_matrix(n_in, n_out, scale_factor, dtype, exact=mode == "nearest-exact")
    if mode in ("linear", "bilinear"):
        return bilinear_matrix(n_in, n_out, scale_factor, align_corners, dtype)
    if mode == "bicubic":
        return bicubic_matrix(n_in, n_out, scale_factor, align_corners, dtype)
    return adaptive_bins(n_in, n_out).astype(dtype)


class Resample2d(Function):
    """y = A_h @ x @ A_w^T for (N, C, H, W) inputs;  dx = A_h^T @ dy @ A_w."""
    def forward(ctx, x, *, rows, cols):
        ctx.save(rows, cols)
        return _apply(ctx.xp, x, rows, cols)

    def backward(ctx, dy):
        rows, cols = ctx.saved
        return _apply(ctx.xp, dy, rows.T, cols.T)


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
# The modes of each input rank, as PyTorch: a 3-D input is (N, C, L), resized along L; 4-D is (N, C, H, W).
MODES = {3: ("nearest", "nearest-exact", "linear", "area"),
         4: ("nearest", "nearest-exact", "bilinear", "bicubic", "area")}
ALIGNING_MODES = ("linear", "bilinear", "bicubic")


def _per_dim(value, dims, fn, name):
    """A number or a sequence of one per spatial dim, as a tuple of ``dims`` items."""
    if isinstance(value, (tuple, list)):
        if len(value) != dims:
            raise ValueError(f"{fn}: {name} must have one entry per spatial dim of the input ({dims}), got {value!r}")
        return tuple(value)
    return (value,) * dims


def _output_size(fn, x, size, scale_factor, recompute_scale_factor):
    """The output spatial size and the per-dim scale factors that set the coordinate scale (None
    when a size was given, or with ``recompute_scale_factor``: then the scale is in / out)."""
    dims = x.ndim - 2
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{fn}: give exactly one of size and scale_factor, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{fn}: recompute_scale_factor is meaningless with an explicit size; give "
                             f"scale_factor instead, or leave recompute_scale_factor None")
        sizes = _per_dim(size, dims, fn, "size")
        if any(not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1 for s in sizes):
            raise ValueError(f"{fn}: size must be a positive int or a sequence of {dims} of them, got {size!r}")
        return tuple(int(s) for s in sizes), (None,) * dims
    factors = _per_dim(scale_factor, dims, fn, "scale_factor")
    if any(not isinstance(f, numbers.Real) or isinstance(f, bool) or not math.isfinite(f) or f <= 0
           for f in factors):
        raise ValueError(f"{fn}: scale_factor must be a finite positive number or a sequence of {dims} of them, "
                         f"got {scale_factor!r}")
    sizes = tuple(math.floor(n * float(f)) for n, f in zip(x.shape[2:], factors))
    if min(sizes) < 1:
        raise ValueError(f"{fn}: scale_factor {scale_factor!r} makes the input {x.shape} empty ({sizes})")
    return sizes, (None,) * dims if recompute_scale_factor else tuple(float(f) for f in factors)


def _check_mode(fn, x, mode, align_corners, antialias):
    if x.ndim not in MODES:
        raise ValueError(f"{fn}: input must be 3-D (N, C, L) for a 1-D resize or 4-D (N, C, H, W) for a 2-D "
                         f"resize, got shape {x.shape}")
    if mode not in MODES[x.ndim]:
        raise ValueError(f"{fn}: mode {mode!r} does not apply to a {x.ndim}-D input (shape {x.shape}); the modes "
                         f"for {x.ndim}-D inputs are {MODES[x.ndim]}")
    if align_corners is not None and mode not in ALIGNING_MODES:
        raise ValueError(f"{fn}: align_corners can only be set with the interpolating modes {ALIGNING_MODES}, "
                         f"got mode={mode!r}")
    if antialias:
        raise ValueError(f"{fn}: antialias=True is not implemented; downsample with mode='area' for an "
                         f"anti-aliased result, or leave antialias False")


def interpolate(input: Tensor, size: ShapeLike | None = None, scale_factor: float | Sequence[float] | None = None,
                mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resize, as ``torch.nn.functional.interpolate``: a 3-D input (N, C, L) is resized along L (modes
    'nearest', 'nearest-exact', 'linear', 'area'), a 4-D input (N, C, H, W) along H and W ('nearest',
    'nearest-exact', 'bilinear', 'bicubic', 'area'); align_corners (linear modes only) is False by
    default. The output size is ``size`` or floor(in * scale_factor); a given scale_factor also sets
    the coordinate scale (1 / scale_factor) unless ``recompute_scale_factor``, which uses in / out.
    ``antialias=True`` is not implemented and raises."""
    fn = "interpolate"
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(input).__name__}")
    _check_mode(fn, input, mode, align_corners, antialias)
    if input.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be a floating tensor, got {input.dtype}")
    out_size, factors = _output_size(fn, input, size, scale_factor, recompute_scale_factor)
    matrices = [resample_matrix(mode, n, o, f, bool(align_corners), input.dtype)
                for n, o, f in zip(input.shape[2:], out_size, factors)]
    if input.ndim == 3:   # a 1-D resize is a 2-D one of (N, C, 1, L) that keeps the single row
        out = resample2d(shape.unsqueeze(input, 2), np.ones((1, 1)), matrices[0])
        return shape.squeeze(out, 2)
    return resample2d(input, *matrices)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
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

