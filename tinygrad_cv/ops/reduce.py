"""Reductions over dims (sum, prod, mean, max, min, var, std, logsumexp, cumsum, any, all) and softmax /
log_softmax.

float16 inputs accumulate in float32 and are rounded back at the end. Sums and products of bool and
integer tensors are int64; mean, var, std, softmax and log_softmax refuse them, as PyTorch.
"""
from __future__ import annotations

import numbers
from typing import NamedTuple, overload

import numpy as np

from ..autograd import Function
from ..backend import acc_dtype
from ..tensor import DTypeLike, Dims, Number, Tensor
from ._util import normalize_dim, require_floating, to_floating
from .elementwise import maximum, minimum
from .shape import reshape


class MaxResult(NamedTuple):
    """What max(input, dim) returns, as torch.return_types.max: a tuple with named fields."""
    values: Tensor
    indices: Tensor


class MinResult(NamedTuple):
    """What min(input, dim) returns, as torch.return_types.min."""
    values: Tensor
    indices: Tensor


MaxResult.__name__ = MaxResult.__qualname__ = "max"  # the type's name, as PyTorch's
MinResult.__name__ = MinResult.__qualname__ = "min"


def _restore_dims(g, axes, keepdim):
    """Re-insert the reduced axes (size 1) so that ``g`` broadcasts against the input (a 0-d ``g``, the
    gradient of a full reduction, already does)."""
    if keepdim or not axes or g.ndim == 0:
        return g
    shape = list(g.shape)
    for axis in axes:  # sorted, so each is already at its place among the dims before it
        shape.insert(axis, 1)
    return g.reshape(shape)


class Sum(Function):
    """y = sum_i x_i;  dy/dx_i = 1."""
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim, dtype=acc_dtype(x.dtype)).astype(x.dtype, copy=False)

    def backward(ctx, g):
        return ctx.xp.broadcast_to(_restore_dims(g, ctx.axes, ctx.keepdim), ctx.shape)


class Mean(Function):
    """y = (1/n) sum_i x_i;  dy/dx_i = 1/n."""
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.count = _reduced_count(x.shape, axes)
        return x.mean(axis=axes, keepdims=keepdim, dtype=acc_dtype(x.dtype)).astype(x.dtype, copy=False)

    def backward(ctx, g):
        g = _restore_dims(g, ctx.axes, ctx.keepdim) / g.dtype.type(ctx.count)
        return ctx.xp.broadcast_to(g, ctx.shape)


def _reduced_count(shape, axes):
    """How many elements each output of a reduction over ``axes`` combines."""
    n = 1
    for axis in axes:
        n *= shape[axis]
    return n


class Extreme(Function):
    """y = max (or min) over axes. The gradient is shared evenly by the elements that attain it
    (PyTorch's ``amax``/``amin``); keep inputs free of ties when the choice matters."""
    def forward(ctx, x, axes, keepdim, largest):
        y = x.max(axis=axes, keepdims=True) if largest else x.min(axis=axes, keepdims=True)
        ctx.save(x, y)
        ctx.axes = axes
        return y if keepdim else y.reshape([s for i, s in enumerate(y.shape) if i not in axes])

    def backward(ctx, g):
        x, y = ctx.saved
        hit = x == y
        g = _restore_dims(g, ctx.axes, g.ndim == x.ndim)
        return g * hit / hit.sum(axis=ctx.axes, keepdims=True)


class ExtremeAlongDim(Function):
    """values = x at ``index`` (the first max or min along ``axis``, found by the caller); the whole
    gradient goes to that element, as PyTorch's ``max(input, dim)`` (unlike ``amax``, which shares it)."""
    def forward(ctx, x, index, axis, keepdim):
        ctx.save(index)
        ctx.axis, ctx.keepdim, ctx.size = axis, keepdim, x.shape[axis]
        y = ctx.xp.take_along_axis(x, index, axis)
        return y if keepdim else y.squeeze(axis)

    def backward(ctx, g):
        (index,) = ctx.saved
        xp = ctx.xp
        g = g if ctx.keepdim else xp.expand_dims(g, ctx.axis)
        positions = xp.arange(ctx.size).reshape((-1,) + (1,) * (g.ndim - 1 - ctx.axis))
        return xp.where(positions == index, g, g.dtype.type(0))


class Prod(Function):
    """y = prod_i x_i;  dy/dx_i = prod_{j != i} x_j, computed without dividing by zero: where the
    slice has no zero it is y / x_i; with one zero, only that element gets the product of the others."""
    def forward(ctx, x, axes, keepdim):
        ctx.save(x)
        ctx.axes, ctx.keepdim = axes, keepdim
        return x.prod(axis=axes, keepdims=keepdim, dtype=acc_dtype(x.dtype)).astype(x.dtype, copy=False)

    def backward(ctx, g):
        (x,) = ctx.saved
        xp = ctx.xp
        zero = x == 0
        safe = xp.where(zero, x.dtype.type(1), x)
        nonzero_prod = safe.prod(axis=ctx.axes, keepdims=True)
        zeros = zero.sum(axis=ctx.axes, keepdims=True)
        others = xp.where(zeros == 0, nonzero_prod / safe, xp.where((zeros == 1) & zero, nonzero_prod, 0))
        return (_restore_dims(g, ctx.axes, ctx.keepdim) * others).astype(g.dtype, copy=False)


class CumSum(Function):
    """y_i = sum_{j <= i} x_j along an axis;  dx_j = sum_{i >= j} g_i (a reversed cumulative sum)."""
    def forward(ctx, x, axis):
        ctx.axis = axis
        return x.cumsum(axis=axis, dtype=acc_dtype(x.dtype)).astype(x.dtype, copy=False)

    def backward(ctx, g):
        xp = ctx.xp
        return xp.flip(xp.flip(g, ctx.axis).cumsum(axis=ctx.axis), ctx.axis)


class Var(Function):
    """v = sum (x - mean)^2 / (n - correction);  dv/dx = 2 (x - mean) / (n - correction).

    With n - correction <= 0 the result is NaN, as in PyTorch."""
    def forward(ctx, x, axes, keepdim, correction):
        acc = x.astype(acc_dtype(x.dtype), copy=False)
        xc = acc - acc.mean(axis=axes, keepdims=True)
        denominator = _reduced_count(x.shape, axes) - correction
        ctx.scale = xc.dtype.type(1 / denominator if denominator > 0 else float("nan"))
        ctx.save(xc)
        ctx.axes, ctx.keepdim, ctx.dtype = axes, keepdim, x.dtype
        return ((xc * xc).sum(axis=axes, keepdims=keepdim) * ctx.scale).astype(x.dtype, copy=False)

    def backward(ctx, g):
        (xc,) = ctx.saved
        g = _restore_dims(g, ctx.axes, ctx.keepdim).astype(xc.dtype, copy=False)
        return (g * 2 * xc * ctx.scale).astype(ctx.dtype, copy=False)


class LogSumExp(Function):
    """y = m + log sum exp(x - m) with m = max x (stable);  dy/dx = softmax(x)."""
    def forward(ctx, x, axes, keepdim):
        xp = ctx.xp
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, x.dtype.type(0))
        e = xp.exp(x - m)
        s = e.sum(axis=axes, keepdims=True, dtype=acc_dtype(x.dtype))
        ctx.save((e / s).astype(x.dtype, copy=False))
        ctx.axes, ctx.keepdim = axes, keepdim
        y = (xp.log(s) + m).astype(x.dtype, copy=False)
        return y if keepdim else y.reshape([n for i, n in enumerate(y.shape) if i not in axes])

    def backward(ctx, g):
        return _restore_dims(g, ctx.axes, ctx.keepdim) * ctx.saved[0]


def softmax_array(xp, x, axis):
    """exp(x - max) / sum exp(x - max): the stable softmax along one axis."""
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True, dtype=acc_dtype(x.dtype))).astype(x.dtype, copy=False)


class Softmax(Function):
    """y = softmax(x);  dx = y * (g - sum(g * y))."""
    def forward(ctx, x, axis):
        y = softmax_array(ctx.xp, x, axis)
        ctx.save(y)
        ctx.axis = axis
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return y * (g - (g * y).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x);  dx = g - softmax(x) * sum(g)."""
    def forward(ctx, x, axis):
        xp = ctx.xp
        shifted = x - x.max(axis=axis, keepdims=True)
        lse = xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True, dtype=acc_dtype(x.dtype)))
        y = (shifted - lse).astype(x.dtype, copy=False)
        ctx.save(y)
        ctx.axis = axis
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g - ctx.xp.exp(y) * g.sum(axis=ctx.axis, keepdims=True)


# --------------------------------------------------------------------------- public wrappers
def _summable(x, dtype):
    """The input of sum/prod/cumsum: cast to ``dtype`` when given; bool and integers become int64."""
    if dtype is not None:
        return x.to(dtype=dtype)
    return x.to(dtype=np.int64) if x.dtype.kind in "biu" else x


def sum(input: Tensor, dim: Dims = None, keepdim: bool = False, *, dtype: DTypeLike = None) -> Tensor:
    """Sum over ``dim`` (an int, a tuple, or None for all); bool and integer inputs give int64."""
    x = _summable(input, dtype)
    return Sum.apply(x, axes=normalize_dim(dim, x.ndim, "sum"), keepdim=keepdim)


def prod(input: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: DTypeLike = None) -> Tensor:
    """Product of all elements, or along one ``dim``; bool and integer inputs give int64."""
    if dim is not None and not isinstance(dim, numbers.Integral):
        raise TypeError(f"prod: dim must be an int (one dim, as PyTorch), got {dim!r}")
    x = _summable(input, dtype)
    return Prod.apply(x, axes=normalize_dim(dim, x.ndim, "prod"), keepdim=keepdim)


def cumsum(input: Tensor, dim: int, *, dtype: DTypeLike = None) -> Tensor:
    """Running sum along ``dim``; bool and integer inputs give int64."""
    x = _summable(input, dtype)
    axes = normalize_dim(dim, x.ndim, "cumsum")
    return CumSum.apply(x, axis=axes[0]) if axes else reshape(x, ())


def mean(input: Tensor, dim: Dims = None, keepdim: bool = False, *, dtype: DTypeLike = None) -> Tensor:
    """Mean over ``dim``. Integer inputs need ``dtype`` (a float dtype), as in PyTorch."""
    x = input if dtype is None else input.to(dtype=dtype)
    require_floating(x, "mean")
    return Mean.apply(x, axes=normalize_dim(dim, x.ndim, "mean"), keepdim=keepdim)


def amax(input: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """The largest value over ``dim`` (None: all); ties share the gradient evenly."""
    return Extreme.apply(input, axes=normalize_dim(dim, input.ndim, "amax"), keepdim=keepdim, largest=True)


def amin(input: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    return Extreme.apply(input, axes=normalize_dim(dim, input.ndim, "amin"), keepdim=keepdim, largest=False)


@overload
def max(input: Tensor) -> Tensor: ...
@overload
def max(input: Tensor, dim: int, keepdim: bool = False) -> MaxResult: ...
@overload
def max(input: Tensor, dim: Tensor) -> Tensor: ...
@overload
def max(input: Tensor, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | MaxResult: ...
def max(input: Tensor, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | MaxResult:
    """PyTorch's three forms: ``max(input)`` is the 0-d largest value; ``max(input, dim, keepdim=False)``
    is a named tuple ``(values, indices)`` of the first largest element along ``dim``, its gradient going
    to that element; ``max(input, other)`` with a Tensor ``other`` is ``maximum(input, other)``."""
    return _extreme("max", input, dim, keepdim, largest=True)


@overload
def min(input: Tensor) -> Tensor: ...
@overload
def min(input: Tensor, dim: int, keepdim: bool = False) -> MinResult: ...
@overload
def min(input: Tensor, dim: Tensor) -> Tensor: ...
@overload
def min(input: Tensor, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | MinResult: ...
def min(input: Tensor, dim: int | Tensor | None = None, keepdim: bool = False) -> Tensor | MinResult:
    """``min(input)``, ``min(input, dim, keepdim=False) -> (values, indices)`` or ``min(input, other)``."""
    return _extreme("min", input, dim, keepdim, largest=False)


def _extreme(op, x, dim, keepdim, largest):
    if isinstance(dim, Tensor):
        if keepdim is not False:
            raise TypeError(f"{op}: the form {op}(input, other) takes no keepdim, got keepdim={keepdim!r}")
        return (maximum if largest else minimum)(x, dim)
    if dim is None:
        if keepdim:
            raise TypeError(f"{op}: keepdim=True needs a dim; use {op}(input, dim, keepdim=True) or "
                            f"a{op}(input, keepdim=True)")
        return Extreme.apply(x, axes=tuple(range(x.ndim)), keepdim=False, largest=largest)
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{op}: the second argument must be an int dim or a Tensor (other), got "
                        f"{type(dim).__name__} {dim!r}")
    result = MaxResult if largest else MinResult
    axes = normalize_dim(dim, x.ndim, op)
    if not axes:  # a 0-d tensor: its only element, at index 0
        return result(reshape(x, ()), Tensor(x.xp.zeros((), dtype=np.int64), device=x.device))
    axis = axes[0]
    index = (x.xp.argmax if largest else x.xp.argmin)(x.data, axis=axis, keepdims=True).astype(np.int64)
    values = ExtremeAlongDim.apply(x, index=index, axis=axis, keepdim=keepdim)
    return result(values, Tensor(index if keepdim else index.squeeze(axis), device=x.device))


def _correction(op, dim, unbiased, correction):
    """Sort out PyTorch's overloads of var/std: (input, unbiased), (input, dim, unbiased, keepdim)
    and (input, dim=None, *, correction=1, keepdim=False)."""
    if isinstance(dim, bool):  # var(input, unbiased)
        if unbiased is not None:
            raise TypeError(f"{op}: got unbiased twice ({dim!r} in place of dim, and unbiased={unbiased!r})")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: give unbiased or correction, not both (got {unbiased!r} and {correction!r})")
    if correction is None:
        correction = 0 if unbiased is False else 1
    return dim, correction


def var(input: Tensor, dim: Dims | bool = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: Number | None = None) -> Tensor:
    """sum (x - mean)^2 / (n - correction) over ``dim``; ``correction=1`` (Bessel) by default, and
    ``unbiased=False`` means ``correction=0``, as PyTorch (also ``var(input, unbiased)``)."""
    require_floating(input, "var")
    dim, correction = _correction("var", dim, unbiased, correction)
    return Var.apply(input, axes=normalize_dim(dim, input.ndim, "var"), keepdim=keepdim, correction=correction)


def std(input: Tensor, dim: Dims | bool = None, unbiased: bool | None = None, keepdim: bool = False, *,
        correction: Number | None = None) -> Tensor:
    """sqrt(var(...)), with the same arguments."""
    require_floating(input, "std")
    return var(input, dim, unbiased, keepdim, correction=correction).sqrt()


def logsumexp(input: Tensor, dim: Dims, keepdim: bool = False) -> Tensor:
    """log sum exp over ``dim``; integer inputs are computed in float32, as PyTorch."""
    x = to_floating(input)
    return LogSumExp.apply(x, axes=normalize_dim(dim, x.ndim, "logsumexp"), keepdim=keepdim)


def softmax(input: Tensor, dim: int, dtype: DTypeLike = None) -> Tensor:
    """exp(x) / sum exp(x) along ``dim``, computed in ``dtype`` when given."""
    x = input if dtype is None else input.to(dtype=dtype)
    require_floating(x, "softmax")
    return Softmax.apply(x, axis=normalize_dim(dim, x.ndim, "softmax"))


def log_softmax(input: Tensor, dim: int, dtype: DTypeLike = None) -> Tensor:
    x = input if dtype is None else input.to(dtype=dtype)
    require_floating(x, "log_softmax")
    return LogSoftmax.apply(x, axis=normalize_dim(dim, x.ndim, "log_softmax"))


def any(input: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """True where some element over ``dim`` (None: all) is nonzero; a bool tensor, not differentiable."""
    return _logical(input, dim, keepdim, "any")


def all(input: Tensor, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """True where every element over ``dim`` (None: all) is nonzero."""
    return _logical(input, dim, keepdim, "all")


def _logical(x, dim, keepdim, how):
    axes = normalize_dim(dim, x.ndim, how)
    return Tensor(getattr(x.data, how)(axis=axes, keepdims=keepdim), device=x.device)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index (int64) of the first largest element, over all (flattened) or along ``dim``; not differentiable."""
    return _arg(input, dim, keepdim, input.xp.argmax, "argmax")


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _arg(input, dim, keepdim, input.xp.argmin, "argmin")


def _arg(x, dim, keepdim, fn, op):
    if dim is None or x.ndim == 0:
        normalize_dim(dim, x.ndim, op)  # a 0-d tensor accepts dim 0 and -1 only
        out = fn(x.data.reshape(-1))
        out = out.reshape((1,) * x.ndim) if keepdim else out
    else:
        out = fn(x.data, axis=normalize_dim(dim, x.ndim, op)[0], keepdims=keepdim)
    return Tensor(x.xp.asarray(out).astype(np.int64, copy=False), device=x.device)
