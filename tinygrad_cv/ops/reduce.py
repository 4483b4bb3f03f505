"""Reductions over dims (sum, mean, max, min, var, std, logsumexp) and softmax / log_softmax.

float16 inputs accumulate in float32 and are rounded back at the end.
"""
from ..autograd import Function
from ..tensor import Tensor
from ._util import accumulate_dtype, normalize_dim


def _restore_dims(g, axes, keepdim):
    """Re-insert the reduced axes (size 1) so that ``g`` broadcasts against the input."""
    if keepdim:
        return g
    for axis in axes:
        g = g.reshape(g.shape[:axis] + (1,) + g.shape[axis:])
    return g


class Sum(Function):
    """y = sum_i x_i;  dy/dx_i = 1."""
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim, dtype=accumulate_dtype(x.dtype)).astype(x.dtype, copy=False)

    def backward(ctx, g):
        return ctx.xp.broadcast_to(_restore_dims(g, ctx.axes, ctx.keepdim), ctx.shape)


class Mean(Function):
    """y = (1/n) sum_i x_i;  dy/dx_i = 1/n."""
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.count = _reduced_count(x.shape, axes)
        return x.mean(axis=axes, keepdims=keepdim, dtype=accumulate_dtype(x.dtype)).astype(x.dtype, copy=False)

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


class Var(Function):
    """v = sum (x - mean)^2 / (n - correction);  dv/dx = 2 (x - mean) / (n - correction).

    With n - correction <= 0 the result is NaN, as in PyTorch."""
    def forward(ctx, x, axes, keepdim, correction):
        acc = x.astype(accumulate_dtype(x.dtype) or x.dtype, copy=False)
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
        s = e.sum(axis=axes, keepdims=True, dtype=accumulate_dtype(x.dtype))
        ctx.save((e / s).astype(x.dtype, copy=False))
        ctx.axes, ctx.keepdim = axes, keepdim
        y = (xp.log(s) + m).astype(x.dtype, copy=False)
        return y if keepdim else y.reshape([n for i, n in enumerate(y.shape) if i not in axes])

    def backward(ctx, g):
        return _restore_dims(g, ctx.axes, ctx.keepdim) * ctx.saved[0]


def softmax_array(xp, x, axis):
    """exp(x - max) / sum exp(x - max): the stable softmax along one axis."""
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True, dtype=accumulate_dtype(x.dtype))).astype(x.dtype, copy=False)


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
        lse = xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True, dtype=accumulate_dtype(x.dtype)))
        y = (shifted - lse).astype(x.dtype, copy=False)
        ctx.save(y)
        ctx.axis = axis
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g - ctx.xp.exp(y) * g.sum(axis=ctx.axis, keepdims=True)


# --------------------------------------------------------------------------- public wrappers
def sum(x, dim=None, keepdim=False):
    return Sum.apply(x, axes=normalize_dim(dim, x.ndim, "sum"), keepdim=keepdim)


def mean(x, dim=None, keepdim=False):
    return Mean.apply(x, axes=normalize_dim(dim, x.ndim, "mean"), keepdim=keepdim)


def amax(x, dim=None, keepdim=False):
    return Extreme.apply(x, axes=normalize_dim(dim, x.ndim, "max"), keepdim=keepdim, largest=True)


def amin(x, dim=None, keepdim=False):
    return Extreme.apply(x, axes=normalize_dim(dim, x.ndim, "min"), keepdim=keepdim, largest=False)


def var(x, dim=None, keepdim=False, unbiased=True, correction=None):
    """Variance with Bessel's correction by default (``correction=1``), as PyTorch."""
    correction = (1 if unbiased else 0) if correction is None else correction
    return Var.apply(x, axes=normalize_dim(dim, x.ndim, "var"), keepdim=keepdim, correction=correction)


def std(x, dim=None, keepdim=False, unbiased=True, correction=None):
    return var(x, dim, keepdim, unbiased, correction).sqrt()


def logsumexp(x, dim, keepdim=False):
    return LogSumExp.apply(x, axes=normalize_dim(dim, x.ndim, "logsumexp"), keepdim=keepdim)


def softmax(x, dim):
    return Softmax.apply(x, axis=normalize_dim(dim, x.ndim, "softmax")[0])


def log_softmax(x, dim):
    return LogSoftmax.apply(x, axis=normalize_dim(dim, x.ndim, "log_softmax")[0])


def argmax(x, dim=None, keepdim=False):
    """Index of the (first) largest element; not differentiable."""
    return _arg(x, dim, keepdim, x.xp.argmax)


def argmin(x, dim=None, keepdim=False):
    return _arg(x, dim, keepdim, x.xp.argmin)


def _arg(x, dim, keepdim, fn):
    if dim is None:
        out = fn(x.data.reshape(-1))
        return Tensor(out.reshape((1,) * x.ndim) if keepdim else out, device=x.device)
    return Tensor(fn(x.data, axis=dim, keepdims=keepdim), device=x.device)
