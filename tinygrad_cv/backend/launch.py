"""Python launchers for the CUDA kernels in ``kernels/*.cu``: one function per kernel.

A launcher takes arrays of one device (CuPy arrays run on the GPU, NumPy arrays on the emulator; the
ops call these only for the devices "cuda" and "emu"), makes them contiguous, allocates the outputs,
computes the grid and block from the shapes, and passes every scalar with the exact C type of the
kernel's signature (``np.int32(n)``, ``np.float32(scale)``): the same Python code drives the GPU and
the emulator. Every launcher accepts ``block`` (threads per block) so tests can try several launch
configurations, and ``out`` where a caller may reuse an output buffer.

Kernel names carry the dtype: ``im2col_f16``, ``im2col_f32``, ``im2col_f64``. float16 kernels
accumulate in float32; outputs that are sums over many elements (RoIAlign's backward, batch-norm
statistics) are returned in the accumulation dtype and cast by the launcher or the caller.
"""
import math
import os
from functools import lru_cache

import numpy as np

from . import acc_dtype, array_module, device_of_array, emu_array, emulator, nvrtc
from .window import Window, pair

DEFAULT_BLOCK = 256
MAX_BLOCKS = 4096   # grid-stride loops cover any size with at most this many blocks along x
MAX_GRID_Y = 65535  # the hardware's limit on gridDim.y (im2col and col2im put the batch there)
INT_MAX = 2**31 - 1
_SUFFIX = {np.dtype(np.float16): "f16", np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


# ---------------------------------------------------------------------------------------- modules
@lru_cache(maxsize=None)
def _module(file, device):
    """The compiled ``kernels/<file>.cu`` for 'cuda' (a cupy.RawModule) or 'emu' (an EmuModule)."""
    source = nvrtc.read_kernel(file)
    if device == "cuda":
        import cupy
        os.environ.setdefault("CUPY_CACHE_DIR", str(nvrtc.cache_dir("cupy")))
        return cupy.RawModule(code=source, options=nvrtc.compile_options())
    return emulator.load(source, f"{file}.cu")


def _kernel(file, name, like, op):
    """Kernel ``<name>_<dtype suffix>`` of ``kernels/<file>.cu`` for arrays like ``like``."""
    suffix = _SUFFIX.get(like.dtype)
    if suffix is None:
        raise TypeError(f"{op}: the CUDA kernels take float16, float32 or float64 arrays, got {like.dtype}")
    device = "cuda" if device_of_array(like) == "cuda" else "emu"
    kernel = _module(file, device).get_function(f"{name}_{suffix}")
    return kernel if device == "cuda" else emu_array.device_kernel(kernel)


# ---------------------------------------------------------------------------------------- helpers
def _ints(*values, op):
    """Values as C ints, refusing any that does not fit in 32 bits (the kernels take dimensions as int)."""
    for v in values:
        if not -2**31 <= v <= INT_MAX:
            raise ValueError(f"{op}: size {v} does not fit in a 32-bit int; the kernels take dimensions as int, "
                             f"so split the work into smaller batches")
    return tuple(np.int32(v) for v in values)


def _longs(*values):
    """Element counts as C long longs: the kernels index whole tensors with 64-bit offsets."""
    return tuple(np.int64(v) for v in values)


def _check_planes(kernel, **planes):
    """Refuse a plane (rows, cols) of more than INT_MAX elements: the kernels index inside a plane
    (h*W + w) with a 32-bit int. Checked from shapes, before anything is allocated."""
    for name, (rows, cols) in planes.items():
        if rows * cols > INT_MAX:
            raise ValueError(f"{kernel}: the {name} plane {rows} x {cols} has {rows * cols} elements; the kernel "
                             f"indexes inside a plane with a 32-bit int, so at most 2^31 - 1 = {INT_MAX}: "
                             f"split the image into tiles")


def _check_batch(kernel, n):
    """Refuse a batch larger than the grid's y dimension, where the kernel puts the image index."""
    if n > MAX_GRID_Y:
        raise ValueError(f"{kernel}: a batch of {n} images is more than the grid's y dimension holds "
                         f"({MAX_GRID_Y}, one image per blockIdx.y); call it on batches of at most {MAX_GRID_Y}")


def _blocks(total, block):
    """Blocks along x for a grid-stride loop over ``total`` elements."""
    return max(1, min(math.ceil(total / block), MAX_BLOCKS))


def _output(xp, out, shape, dtype, op):
    """``out`` checked against the shape and dtype the kernel writes, or a new array."""
    if out is None:
        return xp.empty(shape, dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{op}: out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}, "
                         f"got {out.dtype} {out.shape}")
    return out


def _window(op, size, kernel_size, stride, padding, dilation, out_size):
    """(KH, KW, SH, SW, PH, PW, DH, DW, HO, WO) of PyTorch-style ints or pairs (checked as the ops check
    them); ``out_size`` (HO, WO) defaults to the floor-mode output size of the window over ``size``."""
    window = Window.from_args(op, kernel_size, stride, padding, dilation)
    (kh, kw), (sh, sw), ((ph, _), (pw, _)), (dh, dw) = window
    ho, wo = out_size or window.output_size(size)
    return kh, kw, sh, sw, ph, pw, dh, dw, ho, wo


# ---------------------------------------------------------------------------------------- im2col
def im2col(x, kernel_size, stride=1, padding=0, dilation=1, out_size=None, out=None, block=DEFAULT_BLOCK):
    """x (N, C, H, W) -> cols (N, C*KH*KW, HO*WO) with row (c*KH + i)*KW + j (Caffe layout).

    ``out_size`` (HO, WO) defaults to the floor-mode convolution output size.
    """
    xp = array_module(x)
    n, c, h, w = x.shape
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = _window("im2col", (h, w), kernel_size, stride, padding, dilation,
                                                     out_size)
    _check_batch("im2col", n)
    _check_planes("im2col", input=(h, w), output=(ho, wo))
    x = xp.ascontiguousarray(x)
    cols = _output(xp, out, (n, c * kh * kw, ho * wo), x.dtype, "im2col")
    _kernel("im2col", "im2col", x, "im2col")(
        (_blocks(c * ho * wo, block), n), (block,),
        (x, cols) + _ints(c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, op="im2col"))
    return cols


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1, out_size=None, out=None,
           block=DEFAULT_BLOCK):
    """The adjoint of im2col: cols (N, C*KH*KW, HO*WO) -> x (N, C, H, W), summing overlapping entries."""
    xp = array_module(cols)
    n, c, h, w = input_shape
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = _window("col2im", (h, w), kernel_size, stride, padding, dilation,
                                                     out_size)
    _check_batch("col2im", n)
    _check_planes("col2im", input=(h, w), output=(ho, wo))
    cols = xp.ascontiguousarray(cols)
    if cols.shape != (n, c * kh * kw, ho * wo):
        raise ValueError(f"col2im: cols has shape {cols.shape} but input shape {tuple(input_shape)} with a "
                         f"{kh}x{kw} window and output {ho}x{wo} needs {(n, c * kh * kw, ho * wo)}")
    x = _output(xp, out, (n, c, h, w), cols.dtype, "col2im")
    _kernel("im2col", "col2im", cols, "col2im")(
        (_blocks(c * h * w, block), n), (block,),
        (cols, x) + _ints(c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, op="col2im"))
    return x


# ---------------------------------------------------------------------------------------- max pooling
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, out_size=None, out=None,
               block=DEFAULT_BLOCK):
    """x (N, C, H, W) -> (y (N, C, HO, WO), argmax (N, C, HO, WO) int32 holding h*W + w of each winner)."""
    xp = array_module(x)
    n, c, h, w = x.shape
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = _window("max_pool2d", (h, w), kernel_size, stride, padding, dilation,
                                                     out_size)
    _check_planes("max_pool2d_forward", input=(h, w), output=(ho, wo))
    x = xp.ascontiguousarray(x)
    y_out, argmax_out = out if out is not None else (None, None)
    y = _output(xp, y_out, (n, c, ho, wo), x.dtype, "max_pool2d")
    argmax = _output(xp, argmax_out, (n, c, ho, wo), np.dtype(np.int32), "max_pool2d")
    _kernel("pool", "max_pool2d_forward", x, "max_pool2d")(
        (_blocks(n * c * ho * wo, block),), (block,),
        (x, y, argmax) + _ints(n * c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, op="max_pool2d"))
    return y, argmax


def max_pool2d_backward(gy, argmax, input_shape, kernel_size, stride=None, padding=0, dilation=1, out=None,
                        block=DEFAULT_BLOCK):
    """gx (N, C, H, W): each input element receives the gy of every window it won (given by argmax)."""
    xp = array_module(gy)
    n, c, h, w = input_shape
    kh, kw, sh, sw, ph, pw, dh, dw, ho, wo = _window("max_pool2d_backward", (h, w), kernel_size, stride, padding,
                                                     dilation, gy.shape[2:])
    _check_planes("max_pool2d_backward", input=(h, w), output=(ho, wo))
    gy, argmax = xp.ascontiguousarray(gy), xp.ascontiguousarray(argmax, dtype=np.int32)
    if argmax.shape != gy.shape or gy.shape[:2] != (n, c):
        raise ValueError(f"max_pool2d_backward: gy {gy.shape} and argmax {argmax.shape} must both be "
                         f"({n}, {c}, HO, WO) for input shape {tuple(input_shape)}")
    gx = _output(xp, out, (n, c, h, w), gy.dtype, "max_pool2d_backward")
    _kernel("pool", "max_pool2d_backward", gy, "max_pool2d_backward")(
        (_blocks(n * c * h * w, block),), (block,),
        (gy, argmax, gx) + _ints(n * c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo,
                                 op="max_pool2d_backward"))
    return gx


# ---------------------------------------------------------------------------------------- bias + ReLU
def bias_relu(x, bias, out=None, block=DEFAULT_BLOCK):
    """y = max(x + bias[c], 0) for x (N, C, ...) and bias (C,)."""
    xp = array_module(x)
    x, bias = xp.ascontiguousarray(x), xp.ascontiguousarray(bias, dtype=x.dtype)
    if x.ndim < 2 or bias.shape != (x.shape[1],):
        raise ValueError(f"bias_relu: x must be (N, C, ...) and bias (C,), got {x.shape} and {bias.shape}")
    y = _output(xp, out, x.shape, x.dtype, "bias_relu")
    _kernel("activation", "bias_relu_forward", x, "bias_relu")(
        (_blocks(x.size, block),), (block,),
        (x, bias, y) + _longs(x.size) + _ints(x.shape[1], op="bias_relu")
        + _longs(x.size // max(x.shape[0] * x.shape[1], 1)))
    return y


def bias_relu_backward(gy, y, out=None, block=DEFAULT_BLOCK):
    """gx = gy * [y > 0] (the bias gradient is gx summed over every axis but 1)."""
    xp = array_module(gy)
    gy, y = xp.ascontiguousarray(gy), xp.ascontiguousarray(y, dtype=gy.dtype)
    gx = _output(xp, out, y.shape, gy.dtype, "bias_relu_backward")
    _kernel("activation", "bias_relu_backward", gy, "bias_relu_backward")(
        (_blocks(y.size, block),), (block,), (gy, y, gx) + _longs(y.size))
    return gx


# ---------------------------------------------------------------------------------------- BCE with logits
def bce_with_logits(x, target, out=None, block=DEFAULT_BLOCK):
    """Elementwise max(x, 0) - x*t + log(1 + exp(-|x|)) (the caller reduces)."""
    xp = array_module(x)
    x, target = xp.ascontiguousarray(x), xp.ascontiguousarray(target, dtype=x.dtype)
    loss = _output(xp, out, x.shape, x.dtype, "bce_with_logits")
    _kernel("loss", "bce_with_logits_forward", x, "bce_with_logits")(
        (_blocks(x.size, block),), (block,), (x, target, loss) + _longs(x.size))
    return loss


def bce_with_logits_backward(x, target, gy, scale=1.0, out=None, block=DEFAULT_BLOCK):
    """gx = (sigmoid(x) - t) * gy * scale, with gy of x's shape or a single element (broadcast)."""
    xp = array_module(x)
    x, target = xp.ascontiguousarray(x), xp.ascontiguousarray(target, dtype=x.dtype)
    gy = xp.ascontiguousarray(gy, dtype=x.dtype)
    if gy.size != 1 and gy.shape != x.shape:
        raise ValueError(f"bce_with_logits_backward: gy must have one element or x's shape {x.shape}, "
                         f"got {gy.shape}")
    gx = _output(xp, out, x.shape, x.dtype, "bce_with_logits_backward")
    gy_stride = 0 if gy.size == 1 else 1
    _kernel("loss", "bce_with_logits_backward", x, "bce_with_logits_backward")(
        (_blocks(x.size, block),), (block,),
        (x, target, gy, gx) + _longs(x.size) + _ints(gy_stride, op="bce_with_logits_backward")
        + (acc_dtype(x.dtype).type(scale),))
    return gx


# ---------------------------------------------------------------------------------------- RoIAlign
ROI_ALIGN_MAX_BLOCK = 256  # the kernels' __launch_bounds__


def _roi_args(boxes, output_size, spatial_scale, sampling_ratio, aligned, dtype, op):
    xp = array_module(boxes)
    boxes = xp.ascontiguousarray(boxes, dtype=acc_dtype(dtype))
    if boxes.ndim != 2 or boxes.shape[1] != 5:
        raise ValueError(f"{op}: boxes must be (K, 5) rows (batch_index, x1, y1, x2, y2), got {boxes.shape}")
    ph, pw = pair(output_size, op, "output_size", 1)
    return boxes, ph, pw, acc_dtype(dtype).type(spatial_scale), int(sampling_ratio), int(bool(aligned))


def roi_align(x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, out=None,
              block=DEFAULT_BLOCK):
    """x (N, C, H, W), boxes (K, 5) -> y (K, C, PH, PW), torchvision's roi_align."""
    xp = array_module(x)
    n, c, h, w = x.shape
    _check_planes("roi_align_forward", input=(h, w), output=pair(output_size, "roi_align", "output_size", 1))
    x = xp.ascontiguousarray(x)
    boxes, ph, pw, scale, ratio, aligned = _roi_args(boxes, output_size, spatial_scale, sampling_ratio,
                                                     aligned, x.dtype, "roi_align")
    k = boxes.shape[0]
    y = _output(xp, out, (k, c, ph, pw), x.dtype, "roi_align")
    block = min(block, ROI_ALIGN_MAX_BLOCK)
    _kernel("roi_align", "roi_align_forward", x, "roi_align")(
        (_blocks(k * c * ph * pw, block),), (block,),
        (x, boxes, y) + _ints(c, h, w, k, ph, pw, op="roi_align") + (scale,)
        + _ints(ratio, aligned, op="roi_align"))
    return y


def roi_align_backward(gy, boxes, input_shape, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
                       block=DEFAULT_BLOCK):
    """gx (N, C, H, W) from gy (K, C, PH, PW): the adjoint of roi_align, accumulated (atomically) in the
    accumulation dtype and cast to gy's dtype."""
    xp = array_module(gy)
    n, c, h, w = input_shape
    k, _, ph, pw = gy.shape
    _check_planes("roi_align_backward", input=(h, w), output=(ph, pw))
    gy = xp.ascontiguousarray(gy)
    boxes, ph, pw, scale, ratio, aligned = _roi_args(boxes, (ph, pw), spatial_scale, sampling_ratio, aligned,
                                                     gy.dtype, "roi_align_backward")
    if boxes.shape[0] != k or gy.shape[1] != c:
        raise ValueError(f"roi_align_backward: gy {gy.shape} needs {boxes.shape[0]} boxes and {c} channels")
    gx = xp.zeros((n, c, h, w), acc_dtype(gy.dtype))
    block = min(block, ROI_ALIGN_MAX_BLOCK)
    _kernel("roi_align", "roi_align_backward", gy, "roi_align_backward")(
        (_blocks(gy.size, block),), (block,),
        (gy, boxes, gx) + _ints(c, h, w, k, ph, pw, op="roi_align_backward") + (scale,)
        + _ints(ratio, aligned, op="roi_align_backward"))
    return gx.astype(gy.dtype, copy=False)


# ---------------------------------------------------------------------------------------- loss scaling
def has_nonfinite(arrays, block=DEFAULT_BLOCK):
    """True when any element of any array is inf or NaN: one flag, one launch per array, one read back."""
    arrays = list(arrays)
    return bool(arrays) and bool(int(nonfinite_flag(arrays, block)[0]))


def nonfinite_flag(arrays, block=DEFAULT_BLOCK):
    """A device int32 array of shape (1,): nonzero when any element of any (non-empty list of) array is
    inf or NaN. Nothing is read back, so the caller decides when to pay for the one read."""
    xp = array_module(arrays[0])
    flag = xp.zeros(1, np.int32)
    for a in arrays:
        a = xp.ascontiguousarray(a)
        _kernel("nonfinite", "nonfinite_check", a, "has_nonfinite")(
            (_blocks(a.size, block),), (block,), (a, *_longs(a.size), flag))
    return flag


# ---------------------------------------------------------------------------------------- batch-norm stats
def batch_norm_statistics(x, block=DEFAULT_BLOCK):
    """Per-channel mean and biased variance of x (N, C, ...) over every axis but 1, in the accumulation
    dtype (float32 for float16 input). ``block`` must be a power of two <= 1024."""
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    if x.ndim < 2 or x.size == 0:
        raise ValueError(f"batch_norm_statistics: x must be a non-empty (N, C, ...) array, got shape "
                         f"{x.shape}")
    if block & (block - 1) or not 1 <= block <= 1024:
        raise ValueError(f"batch_norm_statistics: block must be a power of two <= 1024 (the kernel halves it "
                         f"at each reduction step), got {block}")
    n, c = x.shape[:2]
    spatial = x.size // (n * c)
    acc = acc_dtype(x.dtype)
    sums, sumsq = xp.empty(c, acc), xp.empty(c, acc)
    _kernel("batchnorm", "channel_sums", x, "batch_norm_statistics")(
        (c,), (block,), (x, sums, sumsq) + _ints(n, c, op="batch_norm_statistics") + _longs(spatial))
    count = n * spatial
    shift = x.reshape(n, c, spatial)[0, :, 0].astype(acc)
    mean_shifted = sums / count
    var = xp.maximum(sumsq / count - mean_shifted * mean_shifted, 0)
    return shift + mean_shifted, var


# ---------------------------------------------------------------------------------------- NMS
def nms_rows(boxes, groups, valid, iou_threshold, block=DEFAULT_BLOCK):
    """Greedy NMS of each row of boxes (B, M, 4), sorted by score, best first: keep (B, M) int32, 1 for a
    valid box (``valid`` (B, M) bool) that no earlier kept box of its group (``groups`` (B, M) int)
    overlaps with IoU > iou_threshold. One block per row, M barrier-separated steps."""
    xp = array_module(boxes)
    boxes = xp.ascontiguousarray(boxes)
    if boxes.ndim != 3 or boxes.shape[2] != 4 or groups.shape != boxes.shape[:2] or valid.shape != boxes.shape[:2]:
        raise ValueError(f"nms_rows: boxes must be (B, M, 4) with groups and valid (B, M), got {boxes.shape}, "
                         f"{groups.shape} and {valid.shape}")
    rows, m = boxes.shape[:2]
    keep = valid.astype(np.int32)  # a new array: the kernel writes its verdicts there
    if rows == 0 or m == 0:
        return keep
    _kernel("nms", "nms_rows", boxes, "nms_rows")(
        (rows,), (block,), (boxes, xp.ascontiguousarray(groups, dtype=np.int32), keep)
        + _ints(m, op="nms_rows") + (acc_dtype(boxes.dtype).type(iou_threshold),))
    return keep
