"""Elementwise ops: arithmetic, exp/log, comparisons, clamp and the activations.

Broadcasting is free here: backward returns gradients of the broadcast shape and the engine sums
them back to each input's shape (``autograd.sum_to_shape``).
"""
from ..autograd import Function
from ..tensor import Tensor
from ._util import lift_pair


class Add(Function):
    """z = a + b;  dz/da = dz/db = 1."""
    def forward(ctx, a, b):
        return a + b

    def backward(ctx, g):
        return g, g


class Sub(Function):
    """z = a - b;  dz/da = 1, dz/db = -1."""
    def forward(ctx, a, b):
        return a - b

    def backward(ctx, g):
        return g, -g


class Mul(Function):
    """z = a * b;  dz/da = b, dz/db = a."""
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a * b

    def backward(ctx, g):
        a, b = ctx.saved
        return (g * b if ctx.needs_input_grad[0] else None), (g * a if ctx.needs_input_grad[1] else None)


class Div(Function):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b^2."""
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a / b

    def backward(ctx, g):
        a, b = ctx.saved
        ga = g / b if ctx.needs_input_grad[0] else None
        gb = -g * a / (b * b) if ctx.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(ctx, a):
        return -a

    def backward(ctx, g):
        return -g


class Pow(Function):
    """z = a^p;  dz/da = p a^(p-1), dz/dp = a^p log(a)."""
    def forward(ctx, a, p):
        z = a ** p
        ctx.save(a, p, z)
        return z

    def backward(ctx, g):
        a, p, z = ctx.saved
        ga = g * p * a ** (p - 1) if ctx.needs_input_grad[0] else None
        gp = g * z * ctx.xp.log(a) if ctx.needs_input_grad[1] else None
        return ga, gp


class Exp(Function):
    """y = e^x;  dy/dx = y."""
    def forward(ctx, x):
        y = ctx.xp.exp(x)
        ctx.save(y)
        return y

    def backward(ctx, g):
        return g * ctx.saved[0]


class Log(Function):
    """y = ln x;  dy/dx = 1/x."""
    def forward(ctx, x):
        ctx.save(x)
        return ctx.xp.log(x)

    def backward(ctx, g):
        return g / ctx.saved[0]


class Sin(Function):
    """y = sin x;  dy/dx = cos x."""
    def forward(ctx, x):
        ctx.save(x)
        return ctx.xp.sin(x)

    def backward(ctx, g):
        return g * ctx.xp.cos(ctx.saved[0])


class Cos(Function):
    """y = cos x;  dy/dx = -sin x."""
    def forward(ctx, x):
        ctx.save(x)
        return ctx.xp.cos(x)

    def backward(ctx, g):
        return -g * ctx.xp.sin(ctx.saved[0])


class Sqrt(Function):
    """y = sqrt(x);  dy/dx = 1 / (2 y)."""
    def forward(ctx, x):
        y = ctx.xp.sqrt(x)
        ctx.save(y)
        return y

    def backward(ctx, g):
        return g / (2 * ctx.saved[0])


class Abs(Function):
    """y = |x|;  dy/dx = sign(x) (0 at 0, as PyTorch)."""
    def forward(ctx, x):
        ctx.save(x)
        return ctx.xp.abs(x)

    def backward(ctx, g):
        return g * ctx.xp.sign(ctx.saved[0])


class Maximum(Function):
    """z = max(a, b); the gradient goes to the larger input and is split evenly on ties (PyTorch)."""
    def forward(ctx, a, b):
        ctx.save(a, b)
        return ctx.xp.maximum(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        share_a = (a > b) + 0.5 * (a == b)
        return g * share_a, g * (1 - share_a)


class Minimum(Function):
    """z = min(a, b); the gradient goes to the smaller input and is split evenly on ties (PyTorch)."""
    def forward(ctx, a, b):
        ctx.save(a, b)
        return ctx.xp.minimum(a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        share_a = (a < b) + 0.5 * (a == b)
        return g * share_a, g * (1 - share_a)


class Where(Function):
    """z = cond ? a : b  (cond is not differentiable)."""
    def forward(ctx, a, b, cond):
        ctx.save(cond)
        return ctx.xp.where(cond, a, b)

    def backward(ctx, g):
        (cond,) = ctx.saved
        zero = g.dtype.type(0)
        return ctx.xp.where(cond, g, zero), ctx.xp.where(cond, zero, g)


class Clamp(Function):
    """y = min(max(x, lo), hi);  dy/dx = 1 where lo <= x <= hi, else 0 (PyTorch)."""
    def forward(ctx, x, lo, hi):
        inside = ctx.xp.ones(x.shape, dtype=bool)
        y = x
        if lo is not None:
            inside &= x >= lo
            y = ctx.xp.maximum(y, x.dtype.type(lo))
        if hi is not None:
            inside &= x <= hi
            y = ctx.xp.minimum(y, x.dtype.type(hi))
        ctx.save(inside)
        return y

    def backward(ctx, g):
        return g * ctx.saved[0]


class ReLU(Function):
    """y = max(x, 0);  dy/dx = [x > 0]."""
    def forward(ctx, x):
        y = ctx.xp.maximum(x, x.dtype.type(0))
        ctx.save(y)
        return y

    def backward(ctx, g):
        return g * (ctx.saved[0] > 0)


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x."""
    def forward(ctx, x, negative_slope):
        positive = x > 0
        ctx.save(positive)
        ctx.slope = x.dtype.type(negative_slope)
        return ctx.xp.where(positive, x, x * ctx.slope)

    def backward(ctx, g):
        return ctx.xp.where(ctx.saved[0], g, g * ctx.slope)


def stable_sigmoid(xp, x):
    """1 / (1 + e^-x) computed without overflow: e^-|x| never exceeds 1."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x));  dy/dx = y (1 - y)."""
    def forward(ctx, x):
        y = stable_sigmoid(ctx.xp, x)
        ctx.save(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y * (1 - y)


class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y^2."""
    def forward(ctx, x):
        y = ctx.xp.tanh(x)
        ctx.save(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (1 - y * y)


# --------------------------------------------------------------------------- public wrappers
def add(a, b): return Add.apply(*lift_pair(a, b))
def sub(a, b): return Sub.apply(*lift_pair(a, b))
def mul(a, b): return Mul.apply(*lift_pair(a, b))
def div(a, b): return Div.apply(*lift_pair(a, b))
def neg(x): return Neg.apply(x)
def pow(x, exponent): return Pow.apply(*lift_pair(x, exponent))
def exp(x): return Exp.apply(x)
def log(x): return Log.apply(x)
def sqrt(x): return Sqrt.apply(x)
def sin(x): return Sin.apply(x)
def cos(x): return Cos.apply(x)
def abs(x): return Abs.apply(x)
def maximum(a, b): return Maximum.apply(*lift_pair(a, b))
def minimum(a, b): return Minimum.apply(*lift_pair(a, b))
def relu(x): return ReLU.apply(x)
def leaky_relu(x, negative_slope=0.01): return LeakyReLU.apply(x, negative_slope=negative_slope)
def sigmoid(x): return Sigmoid.apply(x)
def tanh(x): return Tanh.apply(x)


def where(condition, x, y):
    """Elementwise ``condition ? x : y``; x or y may be Python numbers."""
    x, y = lift_pair(x, y)
    cond = condition.data if isinstance(condition, Tensor) else x.xp.asarray(condition)
    return Where.apply(x, y, cond=cond.astype(bool, copy=False))


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    return Clamp.apply(x, lo=min, hi=max)


def compare(a, b, how):
    """Elementwise comparison (``how`` is a NumPy ufunc name such as 'less'); the result is a bool
    tensor that carries no gradient."""
    a, b = lift_pair(a, b)
    if a.device != b.device:
        raise RuntimeError(f"{how}: operands are on different devices ({a.device!r} and {b.device!r})")
    return Tensor(getattr(a.xp, how)(a.data, b.data), device=a.device)


def sign(x):
    """Elementwise sign, not differentiable."""
    return Tensor(x.xp.sign(x.data), device=x.device)

