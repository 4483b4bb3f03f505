"""The layers, with PyTorch's names, arguments and default initialisation.

Learnable layers start as PyTorch's do: weight ~ kaiming_uniform_(a=sqrt(5)), which is
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the
weight's fan_in. Batch, layer and group norm start at weight 1, bias 0; batch norm's running mean at 0, variance 1.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import numpy as np

from .. import functional as F
from ..ops._util import pair
from ..tensor import Pair, ShapeLike, Tensor
from . import init
from .module import Module, Parameter


def _empty_parameter(*shape):
    return Parameter(np.zeros(shape, dtype=np.float32))


def _init_weight_and_bias(weight, bias):
    """PyTorch's default for Linear and the convolutions."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


# --------------------------------------------------------------------------- learnable layers
class Linear(Module):
    """y = x W^T + b, weight (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty_parameter(out_features, in_features)
        self.bias = _empty_parameter(out_features) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_weight_and_bias(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _check_channels(name, in_channels, out_channels, groups):
    """Positive channel counts and a positive groups that divides both, as PyTorch requires."""
    for arg, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"{name}: {arg} must be a positive int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{name}: groups={groups} must divide both in_channels={in_channels} and "
                         f"out_channels={out_channels}")


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _pad_amounts(padding, kernel_size, dilation):
    """F.pad's (left, right, top, bottom) for a padding pair or 'same' (the odd pixel of an even
    kernel at the right/bottom, as conv2d's own 'same') or 'valid'."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
        return tuple(p for t in reversed(totals) for p in (t // 2, t - t // 2))
    return tuple(p for p in reversed(padding) for _ in range(2))


class Conv2d(Module):
    """2-D convolution; weight (out_channels, in_channels/groups, kh, kw). ``padding`` may be an
    int, a pair, 'same' or 'valid'; ``padding_mode`` ('zeros', 'reflect', 'replicate', 'circular')
    says what the padding holds: modes other than 'zeros' pad with ``F.pad`` first, as PyTorch.
    kernel_size, stride, dilation (and an int padding) are kept as pairs, as PyTorch keeps them."""
    padding: str | tuple[int, int]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1,
                 padding: Pair | str = 0, dilation: Pair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        _check_channels("Conv2d", in_channels, out_channels, groups)
        self.kernel_size = pair(kernel_size, "Conv2d", "kernel_size", 1)
        self.stride, self.dilation = pair(stride, "Conv2d", "stride", 1), pair(dilation, "Conv2d", "dilation", 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1, got stride={self.stride}")
            self.padding = padding
        else:
            self.padding = pair(padding, "Conv2d", "padding", 0)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups, self.padding_mode = (in_channels, out_channels, groups,
                                                                               padding_mode)
        self.weight = _empty_parameter(out_channels, in_channels // groups, *self.kernel_size)
        self.bias = _empty_parameter(out_channels) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_weight_and_bias(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode == "zeros":
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        x = F.pad(x, _pad_amounts(self.padding, self.kernel_size, self.dilation), mode=self.padding_mode)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}, padding_mode={self.padding_mode!r}")


class ConvTranspose2d(Module):
    """Transposed 2-D convolution (learnable upsampling); weight (in_channels,
    out_channels/groups, kh, kw). As in PyTorch, the default init's fan_in is computed from that
    shape, i.e. out_channels/groups * kh * kw; only padding_mode='zeros' exists, as in PyTorch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0,
                 output_padding: Pair = 0, groups: int = 1, bias: bool = True, dilation: Pair = 1,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        name = "ConvTranspose2d"
        _check_channels(name, in_channels, out_channels, groups)
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported (as in PyTorch), got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, name, "kernel_size", 1)
        self.stride, self.dilation = pair(stride, name, "stride", 1), pair(dilation, name, "dilation", 1)
        self.padding, self.output_padding = pair(padding, name, "padding", 0), pair(output_padding, name,
                                                                                   "output_padding", 0)
        self.padding_mode = padding_mode
        self.weight = _empty_parameter(in_channels, out_channels // groups, *self.kernel_size)
        self.bias = _empty_parameter(out_channels) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_weight_and_bias(self.weight, self.bias)

    def forward(self, x: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        """``output_size`` ((H, W), or (N, C, H, W)) picks the output_padding that gives that size, as
        PyTorch: a strided transposed convolution has ``stride`` possible output sizes per dim."""
        extra = self.output_padding if output_size is None else self._output_padding(x, output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, extra, self.groups,
                                  self.dilation)

    def _output_padding(self, x, output_size):
        """size - min_size per dim, min_size = (n - 1)*s - 2p + d(k - 1) + 1, for a size in [min, min + s)."""
        name = "ConvTranspose2d"
        sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else ()
        if len(sizes) not in (2, 4) or not all(isinstance(o, numbers.Integral) and not isinstance(o, bool)
                                                for o in sizes):
            raise ValueError(f"{name}: output_size must be 2 ints (H, W) or 4 (N, C, H, W), got {output_size!r}")
        sizes = sizes[-2:]
        smallest = tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
                         zip(x.shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size))
        if any(not lo <= o < lo + s for o, lo, s in zip(sizes, smallest, self.stride)):
            largest = tuple(lo + s - 1 for lo, s in zip(smallest, self.stride))
            raise ValueError(f"{name}: output_size {sizes} is not reachable from an input of spatial size "
                             f"{x.shape[-2:]}: the sizes range from {smallest} to {largest}")
        return tuple(o - lo for o, lo in zip(sizes, smallest))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}, groups={self.groups}, "
                f"bias={self.bias is not None}, dilation={self.dilation}")


class _BatchNorm(Module):
    """Batch normalisation over the channels (axis 1) of inputs of the ranks in ``ndims``, as PyTorch's.

    Training uses the batch's statistics and folds them into the running ones (buffers
    ``running_mean``, ``running_var``, ``num_batches_tracked``); evaluation uses the running ones.
    ``momentum=None`` makes the running statistics a cumulative average (factor 1 / batches seen).
    """

    running_mean: Tensor | None  # buffers (None without track_running_stats)
    running_var: Tensor | None
    num_batches_tracked: Tensor | None

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype=np.float32)) if affine else None
        self.bias = _empty_parameter(num_features) if affine else None
        stats = track_running_stats
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=np.float32)) if stats else None)
        self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=np.float32)) if stats else None)
        self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)) if stats else None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)  # type: ignore[arg-type]  # the buffers exist with track_running_stats
            init.ones_(self.running_var)  # type: ignore[arg-type]
            init.zeros_(self.num_batches_tracked)  # type: ignore[arg-type]

    ndims: tuple[int, ...] = ()
    layout = ""
    _optional_state = ("num_batches_tracked",)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.ndims:
            raise ValueError(f"{type(self).__name__}: expected {self.layout}, got shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1  # type: ignore[union-attr]  # a buffer with track_running_stats
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())  # type: ignore[union-attr]
        use_batch_stats = self.training or not self.track_running_stats
        keep = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if keep else None, self.running_var if keep else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) inputs: statistics per channel over N (and L)."""
    ndims, layout = (2, 3), "a 2-D or 3-D input (N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) inputs: statistics per channel over N, H and W."""
    ndims, layout = (4,), "a 4-D input (N, C, H, W)"


class LayerNorm(Module):
    """``F.layer_norm`` over the last dims, ``normalized_shape``; learnable weight (ones) and bias (zeros)
    of that shape when ``elementwise_affine`` (the bias only if ``bias``), as PyTorch's."""

    def __init__(self, normalized_shape: ShapeLike, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True) -> None:
        super().__init__()
        shape = ((normalized_shape,) if isinstance(normalized_shape, (int, numbers.Integral))
                 else tuple(normalized_shape))
        if not shape or not all(isinstance(n, numbers.Integral) and n > 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a tuple of them, got "
                             f"{normalized_shape!r}")
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = Parameter(np.ones(shape, dtype=np.float32)) if elementwise_affine else None
        self.bias = _empty_parameter(*shape) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """``F.group_norm``: each sample's channels in ``num_groups`` groups, each normalised by its own
    statistics; a per-channel weight (ones) and bias (zeros) when ``affine``."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        if not all(isinstance(n, numbers.Integral) and n > 0 for n in (num_groups, num_channels)) or \
                num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels must be divisible by num_groups (both positive ints), got "
                             f"num_groups={num_groups!r}, num_channels={num_channels!r}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = Parameter(np.ones(num_channels, dtype=np.float32)) if affine else None
        self.bias = _empty_parameter(num_channels) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected an input (N, {self.num_channels}, *), got shape {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


# --------------------------------------------------------------------------- layers without parameters
_REQUIRED = object()


class _Functional(Module):
    """A layer that calls one function of ``F`` with the arguments it was built with. ``names`` and
    ``defaults`` give the constructor's parameters in PyTorch's order; they are passed to ``fn`` by
    name, except ``inplace``: accepted where PyTorch has it, and always computed out of place."""
    fn: Callable[..., Any]  # set by each subclass
    names: tuple[str, ...] = ()
    defaults: tuple[Any, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        cls = type(self).__name__
        if len(args) > len(self.names) or set(kwargs) - set(self.names):
            raise TypeError(f"{cls}: unexpected arguments {args}, {kwargs}; the parameters are {self.names}")
        values = dict(zip(self.names, self.defaults))
        values.update(zip(self.names, args))
        values.update(kwargs)
        missing = [n for n, v in values.items() if v is _REQUIRED]
        if missing:
            raise TypeError(f"{cls}: missing required argument(s) {missing}")
        self.__dict__.update(values)

    def forward(self, x: Tensor) -> Any:
        return type(self).fn(x, **{n: getattr(self, n) for n in self.names if n != "inplace"})

    def extra_repr(self) -> str:
        return ", ".join(f"{n}={getattr(self, n)!r}" for n in self.names)


class MaxPool2d(_Functional):
    fn = staticmethod(F.max_pool2d)
    names = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
    defaults = (_REQUIRED, None, 0, 1, False, False)


class AvgPool2d(_Functional):
    fn = staticmethod(F.avg_pool2d)
    names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
    defaults = (_REQUIRED, None, 0, False, True, None)


class AdaptiveAvgPool2d(_Functional):
    fn = staticmethod(F.adaptive_avg_pool2d)
    names = ("output_size",)
    defaults = (_REQUIRED,)


class AdaptiveMaxPool2d(_Functional):
    fn = staticmethod(F.adaptive_max_pool2d)
    names = ("output_size", "return_indices")
    defaults = (_REQUIRED, False)


class Upsample(_Functional):
    fn = staticmethod(F.interpolate)
    names = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")
    defaults = (None, None, "nearest", None, None)


class LeakyReLU(_Functional):
    fn = staticmethod(F.leaky_relu)
    names = ("negative_slope", "inplace")
    defaults = (0.01, False)


class ReLU(_Functional):
    fn = staticmethod(F.relu)
    names = ("inplace",)
    defaults = (False,)


class SiLU(_Functional):
    """x sigmoid(x)."""
    fn = staticmethod(F.silu)
    names = ("inplace",)
    defaults = (False,)


class GELU(_Functional):
    """x Phi(x), Phi the standard normal CDF (``approximate='tanh'``: its tanh form)."""
    fn = staticmethod(F.gelu)
    names = ("approximate",)
    defaults = ("none",)


class _SoftmaxDim(_Functional):
    """Softmax and LogSoftmax: ``dim`` defaults to None as in PyTorch, but PyTorch's deprecated guess of
    a dim from the input's rank is not made here: a None dim raises, so pass it."""
    names = ("dim",)
    defaults = (None,)
    dim: int | None

    def forward(self, x: Tensor) -> Tensor:
        if self.dim is None:
            raise ValueError(f"{type(self).__name__}: dim is None; pass the dim to normalise over, e.g. "
                             f"{type(self).__name__}(dim=1) for (N, C) scores")
        return type(self).fn(x, self.dim)


class Softmax(_SoftmaxDim):
    fn = staticmethod(F.softmax)


class LogSoftmax(_SoftmaxDim):
    fn = staticmethod(F.log_softmax)


class Flatten(_Functional):
    fn = staticmethod(F.flatten)
    names = ("start_dim", "end_dim")
    defaults = (1, -1)


class Dropout(Module):
    """Zero elements with probability p while training (scaling the rest by 1/(1-p)); identity in eval.
    ``inplace`` is accepted, as PyTorch's; the result is always a new tensor."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability between 0 and 1, got {p!r}")
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Identity(Module):
    """Returns its input; accepts (and ignores) any constructor arguments, as PyTorch's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x
