"""The learnable-layer ops: ``linear``, ``conv2d`` and ``conv_transpose2d``, and ``bias_relu``, the
bias add and ReLU that follow them, fused.

A convolution is im2col followed by a matrix product. For an input x of shape (N, C, H, W), a
weight w of shape (O, C/G, kh, kw) and G groups:

    cols[c, i, j, n, y, x] = xpad[n, c, y*sh + i*dh, x*sw + j*dw]                    (im2col)
    out[n, g, o, p]        = sum_k  w[g, o, k] * cols[g, k, n, p]                     (GEMM)

with cols viewed as (G, C/G*kh*kw, N*Ho*Wo) and w as (G, O/G, C/G*kh*kw). The backward pass
needs two more products of the same pieces:

    dw    = dout @ cols^T                    (cols recomputed from x, never kept: memory)
    dcols = w^T @ dout,   dx = col2im(dcols) (col2im, a scatter-add, is the adjoint of im2col)

where dout is viewed channels first, as (G, O/G, N*Ho*Wo). With stride 1, dx is also a plain
convolution of dout with the flipped kernel, a gather that runs faster than the scatter;
``conv_input_grad`` takes it when there are enough input channels. Every product runs over tiles
(blocks of samples, bands of output rows) so that the columns stay small and in cache, and the
tiles run on all the CPU's threads.

A transposed convolution is the adjoint of a convolution with respect to its input: its forward
is conv2d's input gradient, and its backward is conv2d's forward and weight gradient.

``im2col`` and ``col2im`` are the hot steps; their array layouts are documented so that a device
kernel can replace them one for one.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd import Function
from ..backend import launch, threads
from ..tensor import Pair, Tensor
from . import linalg, shape
from ._util import Window, check_4d, matmul_arrays, pair


# --------------------------------------------------------------------------- window geometry
def offset_slices(i, j, stride, dilation, out_size):
    """The slices of the padded input that kernel offset (i, j) reads, one element per output pixel:
    rows i*dh, i*dh + sh, ..., i*dh + sh*(Ho-1), and the same for columns."""
    (sh, sw), (dh, dw), (ho, wo) = stride, dilation, out_size
    return (slice(i * dh, i * dh + sh * (ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))


def pad2d(xp, x, padding, value=0, rows=None):
    """x (N, C, H, W) padded by ((top, bottom), (left, right)) with ``value``; of the padded rows,
    only the slice ``rows`` (default: all) is made. No copy when there is no padding."""
    (top, bottom), (left, right) = padding
    n, c, h, w = x.shape
    rows = slice(0, h + top + bottom) if rows is None else rows
    if not any(lo or hi for lo, hi in padding):
        return x[:, :, rows]
    out = xp.empty((n, c, rows.stop - rows.start, w + left + right), dtype=x.dtype)
    first = min(max(rows.start, top), rows.stop)  # the padded rows first..last hold rows of x
    last = max(min(rows.stop, top + h), first)
    inside = slice(first - rows.start, last - rows.start)
    out[:, :, inside, left:left + w] = x[:, :, first - top:last - top]
    for border in (np.s_[:, :, :inside.start], np.s_[:, :, inside.stop:], np.s_[:, :, inside, :left],
                   np.s_[:, :, inside, left + w:]):
        out[border] = value
    return out


# --------------------------------------------------------------------------- tiles
# The products run tile by tile: a tile is a block of samples and a band of their output rows, and its
# columns take at most WORKSPACE_BYTES (one output row of one sample at least). The memory stays bounded,
# the columns are still in cache when the GEMM reads them, and the GEMM of a tile is one matrix product
# over all of the tile's samples and pixels. On the CPU the tiles run on the threads of backend/threads.py,
# so there are at least as many tiles as threads.
WORKSPACE_BYTES = 2 << 20


def conv_tiles(n, out_rows, bytes_per_row, split_rows):
    """(samples, rows) slice pairs covering n samples of out_rows output rows, where one output row of
    one sample has bytes_per_row bytes of columns. Whole samples are grouped while they fit; a sample
    larger than the workspace is cut into bands of rows of (nearly) equal height when ``split_rows``
    (else it is a tile alone)."""
    per_sample = bytes_per_row * out_rows
    if per_sample > WORKSPACE_BYTES and split_rows:
        bands = -(-out_rows // max(1, WORKSPACE_BYTES // bytes_per_row))
        edges = [out_rows * k // bands for k in range(bands + 1)]  # bands of equal height, within one row
        return [(slice(i, i + 1), slice(lo, hi)) for i in range(n) for lo, hi in zip(edges, edges[1:])]
    step = max(1, min(WORKSPACE_BYTES // per_sample, -(-n // threads.get_num_threads())))
    return [(slice(i, min(n, i + step)), slice(0, out_rows)) for i in range(0, n, step)]


def channels_first(a, tile):
    """The tile's part of a (N, C, H, W), a[samples, :, rows], as a (C, nb, rows, W) view."""
    samples, rows = tile
    return a[samples, :, rows].swapaxes(0, 1)


# --------------------------------------------------------------------------- im2col and col2im
def im2col(xp, x, window, out_size, device="cpu"):
    """The function tile -> the tile's im2col columns, for x (N, C, H, W): an array of shape
    (C, kh, kw, nb, rows, Wo) for the tile's nb samples and its output rows y:

        cols[c, i, j, n, y, x] = xpad[n, c, y*sh + i*dh, x*sw + j*dw]

    where xpad is x zero-padded by the window's padding ((top, bottom), (left, right)). cols is
    C-contiguous, so it reshapes for free to (G, C/G*kh*kw, nb*rows*Wo): the tile's samples and pixels
    are the columns of one GEMM. On the CPU, each tile pads the band of rows of x it reads, views
    the formula as strides of that band (read off the index: i moves dh rows, y moves sh rows...), and
    copies the view once. On 'cuda' and 'emu' (tiles of whole samples), the CUDA kernel in
    backend/kernels/im2col.cu writes (nb, C*kh*kw, Ho*Wo), and the sample axis moves next to the pixels.
    """
    kernel, stride, padding, dilation = window
    c, (kh, kw) = x.shape[1], kernel
    if device != "cpu":
        top_left = (padding[0][0], padding[1][0])

        def device_columns(tile):
            cols = launch.im2col(x[tile[0]], kernel, stride, top_left, dilation, out_size)
            return xp.ascontiguousarray(cols.swapaxes(0, 1)).reshape((c, kh, kw, -1) + tuple(out_size))
        return device_columns
    padded = [n + lo + hi for n, (lo, hi) in zip(x.shape[2:], padding)]
    reach = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(out_size, stride, dilation, kernel)]
    if any(r > p for r, p in zip(reach, padded)):  # as_strided would read outside the array
        raise ValueError(f"im2col: out_size {out_size} needs a padded input of at least {reach}, got {padded}")
    (sh, sw), (dh, dw) = stride, dilation

    def columns(tile):
        samples, rows = tile
        band = pad2d(xp, x[samples], padding, rows=slice(rows.start * sh, (rows.stop - 1) * sh + dh * (kh - 1) + 1))
        s_n, s_c, s_h, s_w = band.strides
        shape = (c, kh, kw, band.shape[0], rows.stop - rows.start, out_size[1])
        windows = xp.lib.stride_tricks.as_strided(band, shape, (s_c, dh * s_h, dw * s_w, s_n, sh * s_h, sw * s_w),
                                                  writeable=False)
        return xp.ascontiguousarray(windows)
    return columns


def col2im(xp, cols, size, stride, padding, dilation, device="cpu"):
    """The adjoint of ``im2col`` for a tile of whole samples: fold cols (C, kh, kw, nb, Ho, Wo) back
    into x of shape (nb, C, H, W) with (H, W) = ``size``, summing the values that overlapping windows
    put on the same pixel:

        xpad[n, c, y*sh + i*dh, x*sw + j*dw] += cols[c, i, j, n, y, x];   x = xpad without padding

    One strided add per kernel offset (windows of one offset never overlap each other); on 'cuda'
    and 'emu', the CUDA kernel in backend/kernels/im2col.cu.
    """
    c, kh, kw, n, ho, wo = cols.shape
    (top, bottom), (left, right) = padding
    h, w = size
    if device != "cpu":
        per_sample = xp.ascontiguousarray(cols.reshape(c * kh * kw, n, ho * wo).swapaxes(0, 1))
        return launch.col2im(per_sample, (n, c, h, w), (kh, kw), stride, (top, left), dilation, out_size=(ho, wo))
    xpad = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xpad[(Ellipsis,) + offset_slices(i, j, stride, dilation, (ho, wo))] += cols[:, i, j].swapaxes(0, 1)
    return xpad[:, :, top:top + h, left:left + w]


# --------------------------------------------------------------------------- the three products
def _float32_if_half(a):
    """float16 operands are multiplied and summed in float32 (NumPy has no fp16 BLAS)."""
    return a.astype(np.float32) if a.dtype == np.float16 else a


def conv_gemm(xp, cols, w, groups):
    """A tile's output (O, T) = w (G, O/G, K) @ cols (G, K, T), K = C/G*kh*kw, T = the tile's pixels."""
    a = w.reshape(groups, w.shape[0] // groups, -1)
    return matmul_arrays(xp, a, cols.reshape(groups, a.shape[2], -1)).reshape(w.shape[0], -1)


def conv_gemm_transposed(xp, dout, w, groups):
    """A tile's dcols (G, K, T) = w^T (G, K, O/G) @ dout (G, O/G, T), for dout (O, T): the input-side
    product of a convolution's backward (and of a transposed convolution's forward)."""
    wt = w.reshape(groups, w.shape[0] // groups, -1).swapaxes(1, 2)
    return matmul_arrays(xp, wt, dout.reshape(groups, w.shape[0] // groups, -1))


def conv_weight_gemm(xp, dout, cols, groups):
    """A tile's dw (G, O/G, K) = dout (G, O/G, T) @ cols (G, K, T)^T, in float32 for float16 inputs.
    Computed as (cols @ dout^T)^T: with few output channels BLAS runs that orientation faster."""
    g = _float32_if_half(dout).reshape(groups, dout.shape[0] // groups, -1)
    c = _float32_if_half(cols).reshape(groups, -1, g.shape[2])
    return xp.matmul(c, g.swapaxes(1, 2)).swapaxes(1, 2)


def _cols_row_bytes(x, kernel, out_width):
    """Bytes of the columns of one output row of one sample."""
    return x.shape[1] * kernel[0] * kernel[1] * out_width * x.dtype.itemsize


def conv_forward(xp, x, w, window, groups, out_size=None, device="cpu"):
    """The convolution of x (N, C, H, W) with w (O, C/G, kh, kw): im2col + GEMM, tile by tile."""
    out_size = tuple(out_size or Window(*window).output_size(x.shape[2:]))
    out = xp.empty((x.shape[0], w.shape[0]) + out_size, dtype=x.dtype)
    columns = im2col(xp, x, window, out_size, device)

    def product(tile):
        target = channels_first(out, tile)
        target[...] = conv_gemm(xp, columns(tile), w, groups).reshape(target.shape)
    tiles = conv_tiles(x.shape[0], out_size[0], _cols_row_bytes(x, window[0], out_size[1]), device == "cpu")
    threads.parallel_map(product, tiles, device)
    return out


# Below this many input channels per group the gather's GEMM (that many rows) runs too slowly.
GATHER_MIN_CHANNELS = 16


def flipped_kernel(w, groups):
    """w (O, C/G, kh, kw) -> (C, O/G, kh, kw): in and out channels swapped within each group and the
    window turned by 180 degrees, the kernel of a stride-1 convolution's input gradient."""
    o, cg, kh, kw = w.shape
    flipped = w.reshape(groups, o // groups, cg, kh, kw)[..., ::-1, ::-1].swapaxes(1, 2)
    return flipped.reshape(groups * cg, o // groups, kh, kw)


def _gather_padding(window):
    """Padding of dout that makes dx a plain convolution (stride 1): the kernel's reach d*(k-1) minus
    the forward padding, per side; None where that is negative or the stride is not 1."""
    kernel, stride, padding, dilation = window
    reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
    pads = tuple((r - lo, r - hi) for r, (lo, hi) in zip(reach, padding))
    if stride != (1, 1) or any(p < 0 for side in pads for p in side):
        return None
    return pads


def conv_input_grad(xp, dout, w, window, groups, size, device="cpu"):
    """dx (N, C, H, W) of a convolution from dout (N, O, Ho, Wo).

    With stride 1, dx is itself a convolution: of dout, padded by d*(k-1) - padding, with the
    flipped kernel. That is a gather (im2col + GEMM), faster than the general route, a scatter:
    dcols = w^T @ dout, then col2im. The gather is taken for kernels larger than 1x1 with at least
    GATHER_MIN_CHANNELS input channels per group.
    """
    pads = _gather_padding(window)
    if pads is not None and w.shape[1] >= GATHER_MIN_CHANNELS and w.shape[2:] != (1, 1):
        gather_window = (window[0], (1, 1), pads, window[3])
        return conv_forward(xp, dout, flipped_kernel(w, groups), gather_window, groups, size, device)
    dx = xp.empty(dout.shape[:1] + (w.shape[1] * groups,) + tuple(size), dtype=dout.dtype)
    ho, wo = dout.shape[2:]

    def product(tile):
        dcols = conv_gemm_transposed(xp, channels_first(dout, tile).reshape(dout.shape[1], -1), w, groups)
        dcols = dcols.reshape((dx.shape[1],) + w.shape[2:] + (-1, ho, wo))
        dx[tile[0]] = col2im(xp, dcols, size, *window[1:], device=device)  # type: ignore[misc]  # window[1:] is 3 long
    # windows of neighbouring rows overlap in dx, so the tiles here are whole samples
    threads.parallel_map(product, conv_tiles(dout.shape[0], ho, _cols_row_bytes(dx, w.shape[2:], wo), False), device)
    return dx


def conv_weight_grad(xp, x, dout, window, groups, weight_shape, device="cpu"):
    """dw of a convolution of x with output gradient dout, summed over the tiles; the columns of x are
    recomputed here, tile by tile, rather than kept from the forward pass. An empty batch gives 0."""
    if x.shape[0] == 0:
        return xp.zeros(weight_shape, dtype=x.dtype)
    out_size = dout.shape[2:]
    columns = im2col(xp, x, window, out_size, device)

    def product(tile):
        return conv_weight_gemm(xp, channels_first(dout, tile).reshape(dout.shape[1], -1), columns(tile), groups)
    tiles = conv_tiles(x.shape[0], out_size[0], _cols_row_bytes(x, window[0], out_size[1]), device == "cpu")
    return sum(threads.parallel_map(product, tiles, device)).reshape(weight_shape).astype(x.dtype, copy=False)


def bias_grad(dout):
    """d bias = dout summed over every axis but the channels (axis 1)."""
    n, c = dout.shape[:2]
    pixels = int(np.prod(dout.shape[2:]))  # not -1: a batch of 0 samples has no size to infer it from
    return _float32_if_half(dout).reshape(n, c, pixels).sum(axis=2).sum(axis=0).astype(dout.dtype, copy=False)


def _add_bias(out, b):
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _with_bias_grad(ctx, dout, grads):
    """Append the bias gradient when the op was given a bias."""
    if len(ctx.needs_input_grad) == len(grads):
        return grads
    return grads + (bias_grad(dout) if ctx.needs_input_grad[-1] else None,)


# --------------------------------------------------------------------------- the ops
class Conv2d(Function):
    """out = conv(x, w) + b, by im2col + GEMM; see the module docstring for the products."""
    def forward(ctx, x, w, b=None, *, window, groups):
        ctx.save(x, w)
        ctx.window, ctx.groups = window, groups
        return _add_bias(conv_forward(ctx.xp, x, w, window, groups, device=ctx.device), b)

    def backward(ctx, dout):
        x, w = ctx.saved
        xp, window, groups, device = ctx.xp, ctx.window, ctx.groups, ctx.device
        dx = conv_input_grad(xp, dout, w, window, groups, x.shape[2:], device) if ctx.needs_input_grad[0] else None
        dw = conv_weight_grad(xp, x, dout, window, groups, w.shape, device) if ctx.needs_input_grad[1] else None
        return _with_bias_grad(ctx, dout, (dx, dw))


class ConvTranspose2d(Function):
    """out = conv^T(x, w) + b: conv2d's input gradient with x in the place of dout, so that
    conv_transpose2d(conv2d's dout, w) is exactly conv2d's dx (same weight, same geometry)."""
    def forward(ctx, x, w, b=None, *, window, groups, size):
        ctx.save(x, w)
        ctx.window, ctx.groups = window, groups
        return _add_bias(conv_input_grad(ctx.xp, x, w, window, groups, size, ctx.device), b)

    def backward(ctx, dout):
        x, w = ctx.saved
        xp, window, groups, device = ctx.xp, ctx.window, ctx.groups, ctx.device
        dx = conv_forward(xp, dout, w, window, groups, x.shape[2:], device) if ctx.needs_input_grad[0] else None
        dw = conv_weight_grad(xp, dout, x, window, groups, w.shape, device) if ctx.needs_input_grad[1] else None
        return _with_bias_grad(ctx, dout, (dx, dw))


class BiasReLU(Function):
    """y = max(x + b[c], 0), the bias b (C,) along axis 1 of x (N, C, ...);  dx = g * [y > 0],
    db = dx summed over every axis but 1. The bias add and the ReLU that follow a learnable layer, in
    one pass over memory instead of two; on 'cuda' and 'emu', the kernels in
    backend/kernels/activation.cu."""
    def forward(ctx, x, b):
        if ctx.device != "cpu":
            y = launch.bias_relu(x, b)
        else:
            y = x + b.reshape((1, -1) + (1,) * (x.ndim - 2))
            ctx.xp.maximum(y, y.dtype.type(0), out=y)
        ctx.save(y)
        return y

    def backward(ctx, g):
        y = ctx.saved[0]
        dx = launch.bias_relu_backward(g, y) if ctx.device != "cpu" else g * (y > 0)
        return dx, (bias_grad(dx) if ctx.needs_input_grad[1] else None)


# --------------------------------------------------------------------------- argument checks
def batched(fn, t):
    """(t as a 4-D batch, whether it was an unbatched (C, H, W) sample): PyTorch's 2-D ops take one
    3-D sample and return a 3-D result. Anything else than 3-D or 4-D is refused."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(t).__name__}")
    if t.ndim not in (3, 4):
        raise ValueError(f"{fn}: input must be 4-D (N, C, H, W) or 3-D (C, H, W) for one unbatched sample, "
                         f"got shape {t.shape}")
    return (shape.unsqueeze(t, 0), True) if t.ndim == 3 else (t, False)


def unbatched(out, was_unbatched):
    """Undo ``batched``: drop the batch dim of a result when the input had none."""
    return shape.squeeze(out, 0) if was_unbatched else out


def _check_conv_operands(fn, x, w, b, groups, transposed):
    """x, w, b are 4-D/4-D/1-D with one float dtype; groups divides both channel counts; the input's
    channels match the weight (dim 1 * groups for a convolution, dim 0 for a transposed one)."""
    check_4d(fn, "input", x)
    check_4d(fn, "weight", w)
    if x.dtype.kind != "f" or w.dtype != x.dtype:
        raise TypeError(f"{fn}: input and weight must have the same floating dtype, got {x.dtype} and {w.dtype}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    if x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(f"{fn}: groups={groups} must divide the input's channels and the weight's dim 0 "
                         f"(input shape {x.shape}, weight shape {w.shape})")
    in_channels = w.shape[0] if transposed else w.shape[1] * groups
    out_channels = w.shape[1] * groups if transposed else w.shape[0]
    if x.shape[1] != in_channels:
        raise ValueError(f"{fn}: input has {x.shape[1]} channels but weight expects {in_channels} "
                         f"(weight shape {w.shape}, groups={groups})")
    if b is not None and (b.ndim != 1 or b.shape[0] != out_channels):
        raise ValueError(f"{fn}: bias must have shape ({out_channels},) to match the weight {w.shape}, "
                         f"got {b.shape}")
    if b is not None and b.dtype != x.dtype:
        raise TypeError(f"{fn}: bias dtype {b.dtype} differs from the input's {x.dtype}")


def _conv_padding(padding: Pair | str, kernel: tuple[int, ...], stride: tuple[int, int],
                  dilation: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """Padding as ((top, bottom), (left, right)); 'same' splits d*(k-1) with the extra pixel at the
    end (as PyTorch), 'valid' is no padding."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"conv2d: padding='same' needs stride 1, got stride={stride}")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if isinstance(padding, str):
        raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = pair(padding, "conv2d", "padding", 0)
    return ((ph, ph), (pw, pw))


def check_window_fits(fn, size, kernel, padding, dilation):
    """A window larger than the padded input leaves no output pixel."""
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(size, padding))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(e > p for e, p in zip(extent, padded)):
        raise ValueError(f"{fn}: the kernel {kernel[0]}x{kernel[1]} (dilated extent {extent[0]}x{extent[1]}) "
                         f"is larger than the padded input {padded[0]}x{padded[1]} (input {size[0]}x{size[1]}, "
                         f"padding {padding}); use a smaller kernel or more padding")


# --------------------------------------------------------------------------- public wrappers
def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Pair = 1, padding: Pair | str = 0,
           dilation: Pair = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``: input (N, C, H, W), weight
    (O, C/groups, kh, kw), bias (O,) -> (N, O, Ho, Wo); an unbatched (C, H, W) input gives
    (O, Ho, Wo). ``padding`` may be 'same' (the odd pixel of an even kernel's padding goes to the
    bottom/right, as PyTorch; stride 1 only) or 'valid' (none)."""
    input, was_unbatched = batched("conv2d", input)
    _check_conv_operands("conv2d", input, weight, bias, groups, transposed=False)
    kernel = weight.shape[2:]
    stride = pair(stride, "conv2d", "stride", 1)
    dilation = pair(dilation, "conv2d", "dilation", 1)
    pads = _conv_padding(padding, kernel, stride, dilation)
    check_window_fits("conv2d", input.shape[2:], kernel, pads, dilation)
    tensors = (input, weight) if bias is None else (input, weight, bias)
    window = Window(kernel, stride, pads, dilation)
    return unbatched(Conv2d.apply(*tensors, window=window, groups=groups), was_unbatched)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Pair = 1, padding: Pair = 0,
                     output_padding: Pair = 0, groups: int = 1, dilation: Pair = 1) -> Tensor:
    """Transposed 2-D convolution (learnable upsampling), as ``torch.nn.functional.conv_transpose2d``:
    input (N, C, H, W), weight (C, O/groups, kh, kw) -> (N, O, Ho, Wo) with
    Ho = (H - 1)*sh - 2*ph + dh*(kh - 1) + output_padding + 1. An unbatched (C, H, W) input gives
    (O, Ho, Wo)."""
    fn = "conv_transpose2d"
    input, was_unbatched = batched(fn, input)
    _check_conv_operands(fn, input, weight, bias, groups, transposed=True)
    kernel = weight.shape[2:]
    stride = pair(stride, fn, "stride", 1)
    dilation = pair(dilation, fn, "dilation", 1)
    ph, pw = pair(padding, fn, "padding", 0)
    extra = pair(output_padding, fn, "output_padding", 0)
    if any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ValueError(f"{fn}: output_padding {extra} must be smaller than stride {stride} or dilation "
                         f"{dilation} in each dim")
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + e + 1
                 for n, s, p, d, k, e in zip(input.shape[2:], stride, (ph, pw), dilation, kernel, extra))
    if min(size) < 1:
        raise ValueError(f"{fn}: the output size {size} is not positive (input {input.shape}, kernel {kernel}, "
                         f"stride {stride}, padding {(ph, pw)}); reduce the padding")
    tensors = (input, weight) if bias is None else (input, weight, bias)
    window = Window(kernel, stride, ((ph, ph), (pw, pw)), dilation)
    return unbatched(ConvTranspose2d.apply(*tensors, window=window, groups=groups, size=size), was_unbatched)


def bias_relu(input: Tensor, bias: Tensor) -> Tensor:
    """relu(input + bias), the bias (C,) added along axis 1 of input (N, C, ...): the bias add and
    the ReLU after a layer, fused into one op, e.g. ``F.bias_relu(F.linear(x, w), b)`` for
    ``F.relu(F.linear(x, w, b))``."""
    if not isinstance(input, Tensor) or not isinstance(bias, Tensor):
        raise TypeError(f"bias_relu: input and bias must be Tensors, got {type(input).__name__} and "
                        f"{type(bias).__name__}")
    if input.ndim < 2 or bias.shape != (input.shape[1],):
        raise ValueError(f"bias_relu: input must be (N, C, ...) and bias (C,), got input {input.shape} and "
                         f"bias {bias.shape}")
    if bias.dtype != input.dtype:
        raise TypeError(f"bias_relu: bias dtype {bias.dtype} differs from the input's {input.dtype}")
    return BiasReLU.apply(input, bias)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b, as ``torch.nn.functional.linear``: input (..., in), weight (out, in), bias (out,)
    (or a 0-d bias, broadcast as PyTorch does)."""
    for name, t in (("input", input), ("weight", weight)) + ((("bias", bias),) if bias is not None else ()):
        if not isinstance(t, Tensor):
            raise TypeError(f"linear: {name} must be a Tensor, got {type(t).__name__}")
    if weight.ndim != 2 or input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input's last dim must equal weight's dim 1 (weight is (out, in)); got "
                         f"input {input.shape} and weight {weight.shape}")
    if bias is not None and bias.shape not in ((), (weight.shape[0],)):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), one per output feature of the weight "
                         f"{weight.shape}, got {bias.shape}")
    out = linalg.matmul(input, shape.transpose(weight, 0, 1))
    return out if bias is None else out + bias
