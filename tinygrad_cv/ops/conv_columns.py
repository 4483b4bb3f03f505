"""The column and GEMM machinery of the convolutions (the ops themselves are in ``conv.py``).

A convolution is im2col followed by a matrix product. For an input x of shape (N, C, H, W), a
weight w of shape (O, C/G, kh, kw) and G groups, with K = C/G*kh*kw and P = Ho*Wo:

    cols[n, c, i, j, y, x] = xpad[n, c, y*sh + i*dh, x*sw + j*dw]                    (im2col)
    out[n, g, o, p]        = sum_k  w[g, o, k] * cols[n, g, k, p]                     (GEMM)

with cols viewed as (N, G, K, P) and w as (G, O/G, K): one GEMM per sample and group (a batched
GEMM), whose result (N, G, O/G, P) is already out's layout (N, O, Ho, Wo), so it is written in
place. The backward pass needs two more products of the same pieces:

    dw    = sum_n dout[n] @ cols[n]^T        (cols recomputed from x, never kept: memory)
    dcols = w^T @ dout,   dx = col2im(dcols) (col2im, a scatter-add, is the adjoint of im2col)

where dout is viewed as (N, G, O/G, P), a view of its own layout. With stride 1, dx is also a
plain convolution of dout with the flipped kernel, a gather that runs faster on the CPU than the
scatter; ``conv_input_grad`` takes it when there are enough input channels. A 1x1 convolution of
stride 1 without padding needs no columns at all: they are x itself, viewed as (N, C, H*W).

Every product runs over tiles. On the CPU a tile is a block of samples or a band of one sample's
output rows, small enough that its columns stay in cache, and the tiles run on the CPU's threads;
a tile of several small images runs one GEMM over all their pixels instead of one each (a merged
tile, see ``merges``), since BLAS is slow on short GEMMs. On 'cuda' and 'emu' (which stands for it)
the tiles are shaped by the device alone: the whole batch, or blocks of whole samples within
DEVICE_WORKSPACE_BYTES, one after the other, each one launch of the im2col/col2im kernel and one
batched GEMM; the host's thread count plays no part.

A window is (kernel, stride, padding, dilation): pairs, with padding ((top, bottom), (left, right)).
``im2col`` and ``col2im`` are the hot steps; on 'cuda' and 'emu' they are the CUDA kernels in
backend/kernels/im2col.cu, which write and read the same (nb, C*kh*kw, P) layout.
"""
import numpy as np

from ..backend import acc_dtype, launch, threads


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
# On the CPU the products run tile by tile: a tile is a block of samples or a band of one sample's output
# rows, and its columns take at most WORKSPACE_BYTES (one output row of one sample at least). The memory
# stays bounded, the columns are still in cache when the GEMM reads them, and the tiles run on the threads
# of backend/threads.py, so there are at least as many tiles as threads.
WORKSPACE_BYTES = 2 << 20
# On a device a tile is the whole batch, or as many whole samples as fit in this budget: a few percent of
# a data-centre GPU's memory, and few enough elements per kernel launch (under 2**31) for int indices.
DEVICE_WORKSPACE_BYTES = 1 << 30


def conv_tiles(n, out_rows, bytes_per_row, split_rows):
    """(samples, rows) slice pairs covering n samples of out_rows output rows, where one output row of
    one sample has bytes_per_row bytes of columns, for the CPU. Whole samples are grouped while they
    fit; a sample larger than the workspace is cut into bands of rows of (nearly) equal height when
    ``split_rows`` (else it is a tile alone)."""
    per_sample = bytes_per_row * out_rows
    if per_sample > WORKSPACE_BYTES and split_rows:
        bands = -(-out_rows // max(1, WORKSPACE_BYTES // bytes_per_row))
        edges = [out_rows * k // bands for k in range(bands + 1)]  # bands of equal height, within one row
        return [(slice(i, i + 1), slice(lo, hi)) for i in range(n) for lo, hi in zip(edges, edges[1:])]
    step = max(1, min(WORKSPACE_BYTES // per_sample, -(-n // threads.get_num_threads())))
    return [(slice(i, min(n, i + step)), slice(0, out_rows)) for i in range(0, n, step)]


def device_tiles(n, out_rows, bytes_per_sample):
    """(samples, rows) slice pairs for 'cuda' and 'emu': blocks of whole samples whose work arrays take
    at most DEVICE_WORKSPACE_BYTES (one sample at least); the whole batch when it fits. They depend on
    the shapes alone, never on the host."""
    step = max(1, DEVICE_WORKSPACE_BYTES // max(1, bytes_per_sample))
    return [(slice(i, min(n, i + step)), slice(0, out_rows)) for i in range(0, n, step)]


def tiles(device, n, out_rows, bytes_per_row, split_rows, extra_per_sample=0):
    """The tiles of a product: ``conv_tiles`` on the CPU, ``device_tiles`` elsewhere (which also count
    ``extra_per_sample`` bytes of other work arrays per sample)."""
    if device == "cpu":
        return conv_tiles(n, out_rows, bytes_per_row, split_rows)
    return device_tiles(n, out_rows, bytes_per_row * out_rows + extra_per_sample)


def _cols_row_bytes(x, kernel, out_width):
    """Bytes of the columns of one output row of one sample."""
    return x.shape[1] * kernel[0] * kernel[1] * out_width * x.dtype.itemsize


def _writable_view(a, shape):
    """a (a tile of a fresh C-contiguous array: a[samples] or a[sample, :, rows]) reshaped for a GEMM
    to write through. Always a view: splitting the channels into groups and merging a band's rows with
    its columns keep the strides (a band's rows are whole rows, one after the other)."""
    return a.reshape(shape)


# A CPU tile of small images runs one GEMM over all its samples' pixels side by side ("merged"), because
# BLAS runs a GEMM of fewer columns than this per sample slowly (for the weight gradient, a short
# reduction): measured 61 against 85 GFLOP/s for 256 against 1024 columns of 128 channels, one thread.
MERGE_BELOW_PIXELS = 1024


def merges(tile, width, device):
    """Whether a tile's samples share one GEMM, their pixels side by side (a "merged" tile), rather
    than one GEMM each: on the CPU, for several samples of fewer than MERGE_BELOW_PIXELS output pixels
    each (rows x ``width``). Merging costs a transposing copy of the operands and results; a device's
    batched GEMMs need none."""
    samples, rows = tile
    pixels = (rows.stop - rows.start) * width
    return device == "cpu" and samples.stop - samples.start > 1 and pixels < MERGE_BELOW_PIXELS


def operand(a, tile, groups, merged):
    """The tile's part of a (N, C, H, W), a[samples, :, rows], as a GEMM operand (nb, G, C/G, rows*W) (a
    view), or for a merged tile (1, G, C/G, nb*rows*W), the samples' pixels side by side (a copy)."""
    part = a[tile[0], :, tile[1]]
    if merged:
        return part.swapaxes(0, 1).reshape(1, groups, part.shape[1] // groups, -1)
    return part.reshape(part.shape[0], groups, part.shape[1] // groups, -1)


def unmerged(result, nb):
    """A merged tile's product (1, G, R, nb*P) as the samples' (nb, G*R, P) (a view)."""
    return result.reshape(-1, nb, result.shape[-1] // nb).swapaxes(0, 1)


# --------------------------------------------------------------------------- im2col and col2im
def is_pointwise(window):
    """A 1x1 kernel of stride 1 without padding: every column is one pixel of x (dilation is moot)."""
    kernel, stride, padding, _ = window
    return kernel == (1, 1) and stride == (1, 1) and not any(lo or hi for lo, hi in padding)


def im2col(xp, x, window, out_size, device="cpu"):
    """The function tile -> the tile's im2col columns, for x (N, C, H, W): an array of shape
    (nb, C*kh*kw, rows*Wo) for the tile's nb samples and its output rows y (or, for a merged tile,
    (1, C*kh*kw, nb*rows*Wo), the samples side by side), row c*kh*kw + i*kw + j of sample n holding

        cols[n, c, i, j, y, x] = xpad[n, c, y*sh + i*dh, x*sw + j*dw]

    where xpad is x zero-padded by the window's padding ((top, bottom), (left, right)). It reshapes
    for free to (nb, G, C/G*kh*kw, rows*Wo), one GEMM operand per sample and group. A pointwise
    window (``is_pointwise``) reads x as it is: the columns are a view of x, no copy. Else, on the
    CPU, each tile pads the band of rows of x it reads, views the formula as strides of that band
    (read off the index: i moves dh rows, y moves sh rows...), and copies the view once; on 'cuda'
    and 'emu', the CUDA kernel in backend/kernels/im2col.cu writes the same layout.
    """
    kernel, stride, padding, dilation = window
    c, (kh, kw), wo = x.shape[1], kernel, out_size[1]
    if is_pointwise(window):
        return lambda tile, merged=False: operand(x, tile, 1, merged)[:, 0]
    if device != "cpu":
        def device_columns(tile, merged=False):
            cols = launch.im2col(x[tile[0]], kernel, stride, _top_left(padding), dilation, out_size)
            return xp.ascontiguousarray(cols.swapaxes(0, 1)).reshape(1, cols.shape[1], -1) if merged else cols
        return device_columns
    padded = [n + lo + hi for n, (lo, hi) in zip(x.shape[2:], padding)]
    reach = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(out_size, stride, dilation, kernel)]
    if any(r > p for r, p in zip(reach, padded)):  # as_strided would read outside the array
        raise ValueError(f"im2col: out_size {out_size} needs a padded input of at least {reach}, got {padded}")
    (sh, sw), (dh, dw) = stride, dilation

    def columns(tile, merged=False):
        samples, rows = tile
        band = pad2d(xp, x[samples], padding, rows=slice(rows.start * sh, (rows.stop - 1) * sh + dh * (kh - 1) + 1))
        s_n, s_c, s_h, s_w = band.strides
        nb, nr = band.shape[0], rows.stop - rows.start
        shape, strides = (c, kh, kw, nr, wo), (s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w)
        at = 3 if merged else 0  # the sample axis: next to the pixels, or first
        windows = xp.lib.stride_tricks.as_strided(band, shape[:at] + (nb,) + shape[at:],
                                                  strides[:at] + (s_n,) + strides[at:], writeable=False)
        return xp.ascontiguousarray(windows).reshape((1, c * kh * kw, -1) if merged else (nb, c * kh * kw, -1))
    return columns


def _top_left(padding):
    """(top, left) of ((top, bottom), (left, right)): the kernels pad by these, and the output size
    they are given implies the bottom and right."""
    return padding[0][0], padding[1][0]


def col2im(xp, cols, window, out_size, out, device="cpu"):
    """The adjoint of ``im2col`` for a tile of whole samples: fold cols (nb, C*kh*kw, Ho*Wo) into
    ``out`` (nb, C, H, W), summing the values that overlapping windows put on the same pixel:

        xpad[n, c, y*sh + i*dh, x*sw + j*dw] += cols[n, c, i, j, y, x];   out = xpad without padding

    On the CPU, one strided add per kernel offset (windows of one offset never overlap each other);
    on 'cuda' and 'emu', the CUDA kernel in backend/kernels/im2col.cu, writing ``out`` directly.
    """
    kernel, stride, padding, dilation = window
    (kh, kw), (ho, wo), (h, w) = kernel, out_size, out.shape[2:]
    if device != "cpu":
        return launch.col2im(cols, out.shape, kernel, stride, _top_left(padding), dilation, out_size=out_size, out=out)
    (top, bottom), (left, right) = padding
    n, c = out.shape[:2]
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    xpad = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xpad[(Ellipsis,) + offset_slices(i, j, stride, dilation, (ho, wo))] += cols[:, :, i, j]
    out[...] = xpad[:, :, top:top + h, left:left + w]
    return out


# --------------------------------------------------------------------------- the three products
def gemm(xp, a, b, device, out=None):
    """a @ b broadcast over the leading axes (a batched GEMM), into ``out`` if given.

    float16 is multiplied and summed in float32 everywhere. On the CPU the operands are cast to
    float32 (NumPy has no fp16 BLAS, and its float16 matmul is a slow loop); without ``out`` the
    float32 product is returned. On 'cuda' they stay float16: cuBLAS multiplies fp16 and accumulates
    in fp32 (CuPy's default compute type for a float16 GEMM is CUBLAS_COMPUTE_32F), at half the
    memory traffic of a cast; on 'emu', NumPy's float16 matmul also sums in float32.

    On a device the GEMM writes ``out`` itself. On the CPU the product is made and then copied into
    ``out``: NumPy's batched matmul writing a strided ``out`` view measured 3-9% slower (a 3x3
    convolution's forward, batch 8, 2 threads) than a fresh product and a copy.
    """
    if device != "cpu":
        return xp.matmul(a, b, out=out)
    if a.dtype == np.float16:
        a, b = a.astype(np.float32), b.astype(np.float32)
    product = xp.matmul(a, b)
    if out is None:
        return product
    out[...] = product
    return out


def conv_forward(xp, x, w, window, groups, out_size, device="cpu"):
    """The convolution of x (N, C, H, W) with w (O, C/G, kh, kw), of output size out_size (Ho, Wo):
    per tile, out[samples, :, rows] (nb, G, O/G, rows*Wo) = w (G, O/G, K) @ cols (nb, G, K, rows*Wo),
    the GEMM writing into out (a merged tile's result is copied there, transposed)."""
    out_size = tuple(out_size)
    n, o = x.shape[0], w.shape[0]
    out = xp.empty((n, o) + out_size, dtype=x.dtype)
    wg = w.reshape(groups, o // groups, -1)
    columns = im2col(xp, x, window, out_size, device)

    def product(tile):
        merged = merges(tile, out_size[1], device)
        cols = columns(tile, merged)
        part = out[tile[0], :, tile[1]]
        if merged:
            result = gemm(xp, wg, cols.reshape(1, groups, wg.shape[2], -1), device)
            part[...] = unmerged(result, part.shape[0]).reshape(part.shape)
        else:
            target = _writable_view(part, (part.shape[0], groups, o // groups, -1))
            gemm(xp, wg, cols.reshape(part.shape[0], groups, wg.shape[2], -1), device, out=target)
    threads.parallel_map(product, tiles(device, n, out_size[0], _cols_row_bytes(x, window[0], out_size[1]), True),
                         device)
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
    """dx (N, C, H, W) of a convolution from dout (N, O, Ho, Wo): per tile of whole samples,
    dcols (nb, G, K, P) = w^T (G, K, O/G) @ dout (nb, G, O/G, P), then col2im (a scatter). A pointwise
    window's dcols are dx itself, written by the GEMM (unless the tile is merged).

    On the CPU, with stride 1, dx is itself a convolution: of dout, padded by d*(k-1) - padding, with
    the flipped kernel. That gather (im2col + GEMM) runs faster there than the scatter, and is taken
    for kernels larger than 1x1 with at least GATHER_MIN_CHANNELS input channels per group. (On a
    device the col2im kernel is already a gather, one thread per pixel of dx.)
    """
    pads = _gather_padding(window)
    if device == "cpu" and pads is not None and w.shape[1] >= GATHER_MIN_CHANNELS and w.shape[2:] != (1, 1):
        gather_window = (window[0], (1, 1), pads, window[3])
        return conv_forward(xp, dout, flipped_kernel(w, groups), gather_window, groups, size, device)
    (n, o), out_size = dout.shape[:2], dout.shape[2:]
    dx = xp.empty((n, w.shape[1] * groups) + tuple(size), dtype=dout.dtype)
    wt = w.reshape(groups, o // groups, -1).swapaxes(1, 2)

    def product(tile):
        samples, merged = tile[0], merges(tile, out_size[1], device)
        d = operand(dout, tile, groups, merged)
        if is_pointwise(window) and not merged:
            gemm(xp, wt, d, device, out=_writable_view(dx[samples], d.shape[:2] + (wt.shape[1], -1)))
            return
        dcols = gemm(xp, wt, d, device)
        nb = dx[samples].shape[0]
        dcols = unmerged(dcols, nb) if merged else dcols.reshape(nb, -1, d.shape[3])
        col2im(xp, dcols, window, out_size, dx[samples], device)
    # windows of neighbouring rows overlap in dx, so the tiles here are whole samples
    threads.parallel_map(product, tiles(device, n, out_size[0], _cols_row_bytes(dx, w.shape[2:], out_size[1]), False),
                         device)
    return dx


def conv_weight_grad(xp, x, dout, window, groups, weight_shape, device="cpu"):
    """dw (G, O/G, K) of a convolution of x with output gradient dout: per tile, the sum over its
    samples of cols (nb, G, K, P) @ dout (nb, G, O/G, P)^T (one product for a merged tile), transposed
    (with few output channels BLAS runs that orientation faster), summed over the tiles in float32 for
    float16. The columns of x are recomputed here, tile by tile, rather than kept from the forward
    pass. An empty batch gives 0.

    On a device, the per-sample partial sums (nb, O, K) outgrow the columns (nb, K, P) when there are
    more output channels than pixels (late layers): there the tile is merged instead, the columns
    and dout copied into one (K, nb*P) and (O, nb*P) GEMM (one GEMM, with the long reduction cuBLAS
    needs too)."""
    if x.shape[0] == 0:
        return xp.zeros(weight_shape, dtype=x.dtype)
    (n, o), out_size = dout.shape[:2], dout.shape[2:]
    acc = acc_dtype(x.dtype)
    columns = im2col(xp, x, window, out_size, device)

    cols_row_bytes = _cols_row_bytes(x, window[0], out_size[1])
    device_merges = device != "cpu" and o > out_size[0] * out_size[1]

    def product(tile):
        merged = device_merges or merges(tile, out_size[1], device)
        d = operand(dout, tile, groups, merged)
        cols = columns(tile, merged).reshape(d.shape[0], groups, -1, d.shape[3])
        return gemm(xp, cols, d.swapaxes(2, 3), device).sum(axis=0, dtype=acc)
    # the device's other work arrays per sample: the copy of the columns, or the partial sums
    extra = cols_row_bytes * out_size[0] if device_merges else o * int(np.prod(weight_shape[1:])) * acc.itemsize
    parts = threads.parallel_map(product, tiles(device, n, out_size[0], cols_row_bytes, True, extra), device)
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total.swapaxes(1, 2).reshape(weight_shape).astype(x.dtype, copy=False)
