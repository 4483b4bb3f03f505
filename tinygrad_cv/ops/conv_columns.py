"""The column and GEMM machinery of the convolutions (the ops themselves are in ``conv.py``).

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

A window is (kernel, stride, padding, dilation): pairs, with padding ((top, bottom), (left, right)).
``im2col`` and ``col2im`` are the hot steps; their array layouts are documented so that a device
kernel can replace them one for one.
"""
import numpy as np

from ..backend import launch, threads
from ._util import matmul_arrays


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


def conv_forward(xp, x, w, window, groups, out_size, device="cpu"):
    """The convolution of x (N, C, H, W) with w (O, C/G, kh, kw), of output size out_size (Ho, Wo):
    im2col + GEMM, tile by tile."""
    out_size = tuple(out_size)
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
        dx[tile[0]] = col2im(xp, dcols, size, *window[1:], device=device)
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

