"""Pooling: ``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d`` and ``adaptive_max_pool2d``,
with PyTorch's geometry; each takes (N, C, H, W) batches or one unbatched (C, H, W) sample.

Max and average pooling loop over the kh*kw kernel offsets: offset (i, j) reads, for every output
pixel at once, the strided slice xpad[..., y*sh + i*dh, x*sw + j*dw] (``conv.offset_slices``).
Adaptive average pooling is separable: y = A_h @ x @ A_w^T with averaging matrices A (resample.py).
Adaptive max pooling loops over the oh*ow bins, bin (i, j) covering rows [floor(i*H/oh),
ceil((i+1)*H/oh)) and the columns likewise.
"""
from __future__ import annotations

import numbers
from typing import Literal, Optional, Union, overload

import numpy as np

from .. import backend
from ..autograd import Function
from ..backend import launch, threads
from ..tensor import Pair, Tensor
from ._util import Window, pair
from .conv import batched, unbatched
from .conv_columns import offset_slices, pad2d
from .resample import adaptive_bins, resample2d

# an adaptive pool's output size: an int (square), or (h, w) where None keeps that input size
AdaptiveSize = Union[int, None, tuple[Optional[int], Optional[int]]]


# --------------------------------------------------------------------------- geometry
def pool_output_size(size, window, ceil_mode):
    """PyTorch's pooling output size per dim: ``Window.output_size`` (rounded down), or with ceil_mode
    rounded up (the same formula with s - 1 more pixels at the end), but then the last window must
    start inside the input or its top/left padding."""
    if not ceil_mode:
        return window.output_size(size)
    grown = window._replace(padding=tuple((lo, hi + s - 1) for (lo, hi), s in zip(window.padding, window.stride)))
    return tuple(o - 1 if (o - 1) * s >= n + lo else o
                 for o, n, s, (lo, _) in zip(grown.output_size(size), size, window.stride, window.padding))


def _window_padding(size, window, out_size):
    """((top, bottom), (left, right)) such that every window lies inside the padded input: the
    bottom/right side grows beyond the window's padding when ceil_mode adds a partial window."""
    kernel, stride, padding, dilation = window
    return tuple((lo, max(0, (o - 1) * s + d * (k - 1) + 1 - n - lo))
                 for n, k, s, (lo, _), d, o in zip(size, kernel, stride, padding, dilation, out_size))


def _offsets(kernel):
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


# --------------------------------------------------------------------------- max pooling
def max_pool_forward(xp, x, window, out_size):
    """y (N, C, Ho, Wo) = the max of each window of x (N, C, H, W), padded with -inf, and argmax
    (N, C, Ho, Wo), the window offset i*kw + j of the maximum (the smallest unsigned dtype that holds
    kh*kw - 1). Ties keep the first offset in row-major order, as PyTorch; a NaN propagates to y and
    the first NaN of the window is its argmax.

    Arithmetic passes only (masked copies are several times slower in NumPy): y is a running maximum
    over the offsets, then argmax is the first offset that attains it.
    """
    kernel, stride, _, dilation = window
    xpad = pad2d(xp, x, _window_padding(x.shape[2:], window, out_size), value=-np.inf)
    views = [xpad[(Ellipsis,) + offset_slices(i, j, stride, dilation, out_size)] for i, j in _offsets(kernel)]
    y = views[0].copy()
    for v in views[1:]:
        xp.maximum(y, v, out=y)
    argmax = xp.zeros(y.shape, dtype=np.min_scalar_type(len(views) - 1))
    unfound = xp.ones(y.shape, dtype=bool)
    has_nan = bool(xp.isnan(y).any())
    for k, v in enumerate(views[:-1]):
        hit = v == y
        if has_nan:
            hit |= v != v                     # a NaN attains a NaN maximum
        hit &= unfound
        argmax += hit.astype(argmax.dtype) * argmax.dtype.type(k)
        unfound &= ~hit
    argmax += unfound.astype(argmax.dtype) * argmax.dtype.type(len(views) - 1)
    return y, argmax


def max_pool_backward(xp, dy, argmax, size, window):
    """dx (N, C, H, W): each dy goes to the input pixel its window's argmax points to (summed where
    windows overlap)."""
    kernel, stride, _, dilation = window
    out_size = dy.shape[2:]
    (top, bottom), (left, right) = _window_padding(size, window, out_size)
    dxpad = xp.zeros(dy.shape[:2] + (size[0] + top + bottom, size[1] + left + right), dtype=dy.dtype)
    disjoint = all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))
    for k, (i, j) in enumerate(_offsets(kernel)):
        target = dxpad[(Ellipsis,) + offset_slices(i, j, stride, dilation, out_size)]
        if disjoint:  # no pixel is in two windows: write instead of read-add-write
            xp.multiply(dy, argmax == k, out=target)
        else:
            target += dy * (argmax == k)
    return dxpad[:, :, top:top + size[0], left:left + size[1]]


def plane_indices(xp, argmax, width, window):
    """PyTorch's ``return_indices``: argmax offsets turned into flat indices h*W + w of the input plane."""
    kernel, stride, ((top, _), (left, _)), dilation = window
    ho, wo = argmax.shape[2:]
    i, j = argmax // kernel[1], argmax % kernel[1]
    h = xp.arange(ho).reshape(-1, 1) * stride[0] - top + i * dilation[0]
    w = xp.arange(wo) * stride[1] - left + j * dilation[1]
    return (h * width + w).astype(np.int64)


class MaxPool2d(Function):
    """y = max over each window; the gradient goes to the window's (first) arg-max.

    On 'cuda' and 'emu' the CUDA kernels in backend/kernels/pool.cu run both passes; their argmax
    holds plane indices h*W + w instead of window offsets. On the CPU the samples are split between
    the threads."""
    def forward(ctx, x, *, window, out_size):
        if ctx.device != "cpu":
            y, argmax = launch.max_pool2d(x, *_launch_window(window), out_size=out_size)  # type: ignore[misc]
        else:
            parts = threads.parallel_map(lambda s: max_pool_forward(ctx.xp, x[s], window, out_size),
                                         threads.split(x.shape[0]))
            y, argmax = (ctx.xp.concatenate(arrays) for arrays in zip(*parts))
        ctx.save(argmax)
        ctx.window, ctx.size = window, x.shape[2:]
        return y

    def backward(ctx, dy):
        (argmax,) = ctx.saved
        if ctx.device != "cpu":
            return launch.max_pool2d_backward(dy, argmax, dy.shape[:2] + tuple(ctx.size), *_launch_window(ctx.window))
        return ctx.xp.concatenate(threads.parallel_map(
            lambda s: max_pool_backward(ctx.xp, dy[s], argmax[s], ctx.size, ctx.window), threads.split(dy.shape[0])))


def _launch_window(window):
    """The window as the kernels take it: kernel, stride, the (top, left) padding, dilation (the kernels
    clip each window to the input, so the bottom/right padding needs no argument)."""
    kernel, stride, ((top, _), (left, _)), dilation = window
    return kernel, stride, (top, left), dilation


# --------------------------------------------------------------------------- average pooling
def avg_pool_divisor(size, window, out_size, count_include_pad):
    """The (Ho, Wo) host array of PyTorch's divisors: the window's area clipped to the padded input
    (count_include_pad) or to the input itself. The area is a product of one length per dim."""
    lengths = []
    for n, k, s, (lo, hi), o in zip(size, window.kernel, window.stride, window.padding, out_size):
        start = np.arange(o) * s - lo
        end = np.minimum(start + k, n + hi)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        lengths.append(end - start)
    return np.outer(*lengths)


class AvgPool2d(Function):
    """y = sum over each window / divisor;  dx[window pixel] += dy / divisor."""
    def forward(ctx, x, *, window, out_size, divisor):
        kernel, stride, _, dilation = window
        pads = _window_padding(x.shape[2:], window, out_size)
        xpad = pad2d(ctx.xp, x, pads)
        y = ctx.xp.zeros(x.shape[:2] + out_size, dtype=x.dtype)
        for i, j in _offsets(kernel):
            y += xpad[(Ellipsis,) + offset_slices(i, j, stride, dilation, out_size)]
        ctx.save(divisor)
        ctx.window, ctx.size, ctx.pads = window, x.shape[2:], pads
        return y / divisor

    def backward(ctx, dy):
        (divisor,) = ctx.saved
        kernel, stride, _, dilation = ctx.window
        (top, bottom), (left, right) = ctx.pads
        h, w = ctx.size
        share = dy / divisor
        dxpad = ctx.xp.zeros(dy.shape[:2] + (h + top + bottom, w + left + right), dtype=dy.dtype)
        for i, j in _offsets(kernel):
            dxpad[(Ellipsis,) + offset_slices(i, j, stride, dilation, dy.shape[2:])] += share
        return dxpad[:, :, top:top + h, left:left + w]


# --------------------------------------------------------------------------- adaptive max pooling
def adaptive_bounds(n, out):
    """PyTorch's adaptive bins of n pixels into out: [(floor(i*n/out), ceil((i+1)*n/out)) for each i]."""
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def adaptive_max_forward(xp, x, out_size):
    """y (N, C, oh, ow), the max of x (N, C, H, W) over each adaptive bin, and the flat index h*W + w
    of the bin's first maximum in row-major order (a NaN counts as the maximum)."""
    n, c, h, w = x.shape
    y = xp.empty((n, c) + out_size, dtype=x.dtype)
    indices = xp.empty((n, c) + out_size, dtype=np.int64)
    for i, (top, bottom) in enumerate(adaptive_bounds(h, out_size[0])):
        for j, (left, right) in enumerate(adaptive_bounds(w, out_size[1])):
            patch = x[:, :, top:bottom, left:right].reshape(n, c, (bottom - top) * (right - left))
            best = patch.argmax(axis=2)
            y[:, :, i, j] = xp.take_along_axis(patch, best[..., None], axis=2)[..., 0]
            indices[:, :, i, j] = (top + best // (right - left)) * w + left + best % (right - left)
    return y, indices


class AdaptiveMaxPool2d(Function):
    """y[n, c, i, j] = the max of x[n, c] over bin (i, j); the gradient goes to the bin's (first)
    arg-max, summed where overlapping bins pick the same pixel."""
    def forward(ctx, x, *, out_size):
        y, indices = adaptive_max_forward(ctx.xp, x, out_size)
        ctx.save(indices)
        ctx.size = x.shape[2:]
        return y

    def backward(ctx, dy):
        (indices,) = ctx.saved
        n, c = dy.shape[:2]
        dx = ctx.xp.zeros((n * c, ctx.size[0] * ctx.size[1]), dtype=dy.dtype)
        planes = ctx.xp.arange(n * c)[:, None]
        bins = dy.shape[2] * dy.shape[3]
        backend.add_at(ctx.xp, dx, (planes, indices.reshape(n * c, bins)), dy.reshape(n * c, bins))
        return dx.reshape((n, c) + tuple(ctx.size))


# --------------------------------------------------------------------------- public wrappers
def _check_pool_input(fn, x):
    """x as a 4-D batch (see ``conv.batched``: a 3-D input is one unbatched sample) and whether it was one."""
    x, was_unbatched = batched(fn, x)
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be a floating tensor, got {x.dtype}")
    return x, was_unbatched


def _pool_window(fn, kernel_size, stride, padding, dilation):
    """The validated Window; stride defaults to the kernel size and each padding is at most half the
    (dilated) kernel, as PyTorch requires."""
    window = Window.from_args(fn, kernel_size, stride, padding, dilation)
    kernel, _, pads, dilation = window
    if any(lo > (d * (k - 1) + 1) // 2 for (lo, _), k, d in zip(pads, kernel, dilation)):
        raise ValueError(f"{fn}: padding {tuple(lo for lo, _ in pads)} must be at most half the effective "
                         f"kernel size (kernel {kernel}, dilation {dilation})")
    return window


def _pool_out_size(fn, x, window, ceil_mode):
    out_size = pool_output_size(x.shape[2:], window, ceil_mode)
    if min(out_size) < 1:
        raise ValueError(f"{fn}: the kernel {window.kernel} (dilation {window.dilation}) is larger than the padded "
                         f"input (input shape {x.shape}, padding {tuple(lo for lo, _ in window.padding)}); output "
                         f"size would be {out_size}")
    return out_size


@overload
def max_pool2d(input: Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0, dilation: Pair = 1,
               ceil_mode: bool = False, return_indices: Literal[False] = False) -> Tensor: ...
@overload
def max_pool2d(input: Tensor, kernel_size: Pair, stride: Pair | None, padding: Pair, dilation: Pair,
               ceil_mode: bool, return_indices: Literal[True]) -> tuple[Tensor, Tensor]: ...
@overload
def max_pool2d(input: Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0, dilation: Pair = 1,
               ceil_mode: bool = False, *, return_indices: Literal[True]) -> tuple[Tensor, Tensor]: ...
def max_pool2d(input: Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0, dilation: Pair = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Max over sliding windows, as ``torch.nn.functional.max_pool2d``. With ``return_indices``,
    also the flat index h*W + w (in the input plane) of each maximum. A 3-D input is one unbatched
    (C, H, W) sample and gives 3-D results."""
    input, was_unbatched = _check_pool_input("max_pool2d", input)
    window = _pool_window("max_pool2d", kernel_size, stride, padding, dilation)
    out_size = _pool_out_size("max_pool2d", input, window, ceil_mode)
    out = unbatched(MaxPool2d.apply(input, window=window, out_size=out_size), was_unbatched)
    if not return_indices:
        return out
    _, argmax = max_pool_forward(input.xp, input.data, window, out_size)
    indices = plane_indices(input.xp, argmax, input.shape[3], window)
    return out, Tensor(indices[0] if was_unbatched else indices, device=input.device)


def avg_pool2d(input: Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over sliding windows, as ``torch.nn.functional.avg_pool2d`` (count_include_pad=True and
    ceil_mode=False by default; ``divisor_override``, a non-zero int, replaces every divisor). A 3-D
    input is one unbatched (C, H, W) sample and gives a 3-D result."""
    input, was_unbatched = _check_pool_input("avg_pool2d", input)
    window = _pool_window("avg_pool2d", kernel_size, stride, padding, 1)
    out_size = _pool_out_size("avg_pool2d", input, window, ceil_mode)
    if divisor_override is not None:
        if not isinstance(divisor_override, numbers.Integral) or isinstance(divisor_override, bool):
            raise TypeError(f"avg_pool2d: divisor_override must be an int (or None), got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must be non-zero, got 0")
        divisor = input.dtype.type(divisor_override)
    else:
        divisor = avg_pool_divisor(input.shape[2:], window, out_size, count_include_pad)
        divisor = input.xp.asarray(divisor.astype(input.dtype))
    out = AvgPool2d.apply(input, window=window, out_size=out_size, divisor=divisor)
    return unbatched(out, was_unbatched)


def adaptive_avg_pool2d(input: Tensor, output_size: AdaptiveSize) -> Tensor:
    """Average over PyTorch's adaptive bins so that the output is (N, C) + output_size; an int means
    a square output and None keeps that dim's input size. Bin i of n pixels into o covers
    [floor(i*n/o), ceil((i+1)*n/o)), so bins overlap when o does not divide n. A 3-D input is one
    unbatched (C, H, W) sample and gives a 3-D result."""
    input, was_unbatched = _check_pool_input("adaptive_avg_pool2d", input)
    sizes = adaptive_output_size("adaptive_avg_pool2d", input.shape[2:], output_size)
    rows, cols = (adaptive_bins(n, o) for n, o in zip(input.shape[2:], sizes))
    return unbatched(resample2d(input, rows, cols), was_unbatched)


@overload
def adaptive_max_pool2d(input: Tensor, output_size: AdaptiveSize,
                        return_indices: Literal[False] = False) -> Tensor: ...
@overload
def adaptive_max_pool2d(input: Tensor, output_size: AdaptiveSize,
                        return_indices: Literal[True]) -> tuple[Tensor, Tensor]: ...
def adaptive_max_pool2d(input: Tensor, output_size: AdaptiveSize,
                        return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Max over PyTorch's adaptive bins (as ``adaptive_avg_pool2d``'s), as
    ``torch.nn.functional.adaptive_max_pool2d``; with ``return_indices``, also the flat index
    h*W + w (in the input plane) of each maximum."""
    fn = "adaptive_max_pool2d"
    input, was_unbatched = _check_pool_input(fn, input)
    sizes = adaptive_output_size(fn, input.shape[2:], output_size)
    out = AdaptiveMaxPool2d.apply(input, out_size=sizes)
    if not return_indices:
        return unbatched(out, was_unbatched)
    _, indices = adaptive_max_forward(input.xp, input.data, sizes)
    return unbatched(out, was_unbatched), unbatched(Tensor(indices, device=input.device), was_unbatched)


def adaptive_output_size(fn, size, output_size):
    """output_size (an int, or a pair of ints or None) as a pair of positive ints (``pair``); None keeps
    the input's size. A one-element sequence is refused, as PyTorch refuses it here."""
    if isinstance(output_size, (tuple, list)) and len(output_size) != 2:
        raise ValueError(f"{fn}: output_size must be an int or a pair (None keeps the input's size), got "
                         f"{output_size!r}")
    if output_size is None or isinstance(output_size, (tuple, list)):
        output_size = tuple(n if o is None else o for n, o in zip(size, output_size or (None, None)))
    return pair(output_size, fn, "output_size", 1)

