"""The learnable-layer ops: ``linear``, ``conv2d`` and ``conv_transpose2d``, and ``bias_relu``, the
bias add and ReLU that follow them, fused; with their argument checks.

A convolution is im2col followed by a matrix product, and its backward two more products of the
same pieces; that machinery (columns, tiles, the three GEMMs) is in ``conv_columns.py``.

A transposed convolution is the adjoint of a convolution with respect to its input: its forward
is conv2d's input gradient, and its backward is conv2d's forward and weight gradient.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd import Function
from ..backend import acc_dtype, launch
from ..tensor import Pair, Tensor
from . import linalg, shape
from ._util import Window, check_4d, pair
from .conv_columns import conv_forward, conv_input_grad, conv_weight_grad


# --------------------------------------------------------------------------- the bias
def bias_grad(dout):
    """d bias = dout summed over every axis but the channels (axis 1)."""
    n, c = dout.shape[:2]
    pixels = int(np.prod(dout.shape[2:]))  # not -1: a batch of 0 samples has no size to infer it from
    acc = acc_dtype(dout.dtype)  # float16 sums in float32
    return dout.reshape(n, c, pixels).sum(axis=2, dtype=acc).sum(axis=0).astype(dout.dtype, copy=False)


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
    """out = conv(x, w) + b, by im2col + GEMM; see ``conv_columns`` for the products."""
    def forward(ctx, x, w, b=None, *, window, groups):
        ctx.save(x, w)
        ctx.window, ctx.groups = window, groups
        out_size = window.output_size(x.shape[2:])
        return _add_bias(conv_forward(ctx.xp, x, w, window, groups, out_size, ctx.device), b)

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
