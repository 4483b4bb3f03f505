"""Each core op declared once: how to make its inputs, what it computes (a NumPy reference written
independently of the op), and on what shapes. ``test_ops_core.py`` runs every declaration over
dtypes, devices, non-contiguous inputs and gradcheck.

Inputs are drawn away from kinks and ties (ReLU near 0, max-pool with equal values, ...), where a
finite difference does not estimate the derivative.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import strategies as st

import tinygrad_cv.functional as F
from tinygrad_cv.nn.sync_batchnorm import sync_batch_norm

# ----------------------------------------------------------------------------- shape strategies
dims = st.integers(1, 4)
shape = st.lists(dims, min_size=1, max_size=3).map(tuple)
shape_2d_plus = st.lists(dims, min_size=2, max_size=3).map(tuple)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast: the second drops leading dims and sets some dims to 1."""
    a = draw(shape)
    b = list(a[draw(st.integers(0, len(a) - 1)):])
    b = tuple(1 if draw(st.booleans()) else n for n in b)
    return (a, b) if draw(st.booleans()) else (b, a)


@st.composite
def matmul_shapes(draw):
    m, k, n, batch = draw(dims), draw(dims), draw(dims), draw(dims)
    kind = draw(st.sampled_from(["vv", "mv", "vm", "mm", "bm", "broadcast"]))
    return {"vv": ((k,), (k,)), "mv": ((m, k), (k,)), "vm": ((k,), (k, n)), "mm": ((m, k), (k, n)),
            "bm": ((batch, m, k), (k, n)), "broadcast": ((batch, 1, m, k), (2, k, n))}[kind]


def single(strategy):
    return strategy.map(lambda s: (s,))


@st.composite
def with_dim(draw, base=shape):
    """A shape and a dim (possibly negative) inside it."""
    s = draw(base)
    return s, draw(st.integers(-len(s), len(s) - 1))


# ----------------------------------------------------------------------------- value makers
def normal(rng, s, i):
    return rng.standard_normal(s)


def away_from_zero(rng, s, i):
    return rng.choice([-1.0, 1.0], size=s) * rng.uniform(0.2, 2.0, size=s)


def positive(rng, s, i):
    return rng.uniform(0.5, 2.0, size=s)


def distinct(rng, s, i):
    """All values different by at least 0.05, so max/min have a unique winner."""
    n = int(np.prod(s))
    return (rng.permutation(n) * 0.05 + rng.uniform(0, 0.01)).reshape(s) - n * 0.025


def interleaved(rng, s, i):
    """Input 0 on odd multiples of 0.25, input 1 on even ones: the two never come closer than 0.25,
    so maximum/minimum have no ties."""
    return (2 * rng.integers(-4, 5, size=s) + (i + 1) % 2) * 0.25


@dataclass
class OpSpec:
    name: str
    fn: Callable                       # tinygrad_cv tensors -> tensor
    ref: Callable                      # float64 numpy arrays -> numpy array
    shapes: st.SearchStrategy          # draws a tuple of input shapes (or a dict of params below)
    make: Callable = normal            # (rng, shape, input index) -> float64 array
    fp16_rtol: float = 2e-2

    def inputs(self, rng, shapes):
        return [self.make(rng, s, i) for i, s in enumerate(shapes)]


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _dim_shapes(strategy=None):
    """Draws ((shape,), dim) and passes dim as a parameter."""
    return with_dim(shape if strategy is None else strategy).map(lambda sd: ((sd[0],), {"dim": sd[1]}))


def bias_away_from_the_kink(rng, s, i):
    """x (input 0) at least 0.2 from zero, the bias (input 1) within 0.1: x + b stays 0.1 from the kink."""
    return away_from_zero(rng, s, i) if i == 0 else rng.uniform(-0.1, 0.1, size=s)


def _batch_norm_ref(x, w, b, eps=1e-5):
    """Normalise each channel (axis 1) by its mean and biased variance over the other axes."""
    c = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    y = (c - c.mean(axis=1, keepdims=True)) / np.sqrt(c.var(axis=1, keepdims=True) + eps) * w[:, None] + b[:, None]
    return np.moveaxis(y.reshape((x.shape[1], x.shape[0]) + x.shape[2:]), 0, 1)


def _sig(x):
    return 0.5 * (1 + np.tanh(x / 2))  # sigmoid by another formula than the op's


SPECS = [
    # ------------------------------------------------------------ elementwise, unary
    OpSpec("neg", lambda x: -x, lambda x: -x, single(shape)),
    OpSpec("exp", F.exp, np.exp, single(shape)),
    OpSpec("log", F.log, np.log, single(shape), make=positive),
    OpSpec("sqrt", F.sqrt, np.sqrt, single(shape), make=positive),
    OpSpec("sin", F.sin, lambda x: np.cos(x - np.pi / 2), single(shape)),
    OpSpec("cos", F.cos, lambda x: np.sin(x + np.pi / 2), single(shape)),
    OpSpec("abs", F.abs, np.abs, single(shape), make=away_from_zero),
    OpSpec("relu", F.relu, lambda x: x * (x > 0), single(shape), make=away_from_zero),
    OpSpec("bias_relu", F.bias_relu, lambda x, b: np.clip(np.moveaxis(np.moveaxis(x, 1, -1) + b, -1, 1), 0, None),
           shape_2d_plus.map(lambda s: (s, (s[1],))), make=bias_away_from_the_kink),
    OpSpec("leaky_relu", lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
           single(shape), make=away_from_zero),
    OpSpec("sigmoid", F.sigmoid, _sig, single(shape)),
    OpSpec("tanh", F.tanh, np.tanh, single(shape)),
    OpSpec("clamp", lambda x: F.clamp(x, -0.1, 0.1), lambda x: np.minimum(np.maximum(x, -0.1), 0.1),
           single(shape), make=away_from_zero),
    OpSpec("pow_scalar", lambda x: x ** 3, lambda x: x * x * x, single(shape)),
    OpSpec("pow_fractional", lambda x: x ** 2.5, lambda x: np.sqrt(x) ** 5, single(shape), make=positive),
    OpSpec("rpow", lambda x: 2.0 ** x, lambda x: np.exp(x * np.log(2.0)), single(shape)),
    OpSpec("scalar_arith", lambda x: (2 - x) * 3 + x / 4 - 1, lambda x: (2 - x) * 3 + x / 4 - 1, single(shape)),
    OpSpec("rdiv", lambda x: 3 / x, lambda x: 3 * x ** -1, single(shape), make=away_from_zero),
    # ------------------------------------------------------------ elementwise, binary with broadcasting
    OpSpec("add", lambda a, b: a + b, np.add, broadcast_pair()),
    OpSpec("sub", lambda a, b: a - b, np.subtract, broadcast_pair()),
    OpSpec("mul", lambda a, b: a * b, np.multiply, broadcast_pair()),
    OpSpec("div", lambda a, b: a / b, np.divide, broadcast_pair(), make=away_from_zero),
    OpSpec("pow_tensor", lambda a, b: a ** b, lambda a, b: np.exp(b * np.log(a)), broadcast_pair(), make=positive),
    OpSpec("maximum", F.maximum, np.maximum, broadcast_pair(), make=interleaved),
    OpSpec("minimum", F.minimum, np.minimum, broadcast_pair(), make=interleaved),
    OpSpec("where", lambda a, b: F.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b),
           broadcast_pair(), make=away_from_zero),
    # ------------------------------------------------------------ matmul
    OpSpec("matmul", lambda a, b: a @ b, np.matmul, matmul_shapes()),
    # ------------------------------------------------------------ reductions
    OpSpec("sum_all", lambda x: x.sum(), lambda x: np.sum(x), single(shape)),
    OpSpec("sum_dim", lambda x, dim: x.sum(dim), lambda x, dim: x.sum(axis=dim), _dim_shapes()),
    OpSpec("sum_keepdim", lambda x, dim: x.sum((0, dim), keepdim=True),
           lambda x, dim: x.sum(axis=tuple({0, dim % x.ndim}), keepdims=True), _dim_shapes()),
    OpSpec("mean_dim", lambda x, dim: x.mean(dim), lambda x, dim: x.mean(axis=dim), _dim_shapes()),
    OpSpec("var_dim", lambda x, dim: x.var(dim), lambda x, dim: x.var(axis=dim, ddof=1),
           _dim_shapes(shape.filter(lambda s: min(s) > 1))),
    OpSpec("std_all", lambda x: x.std(unbiased=False), lambda x: np.std(x),
           single(shape.filter(lambda s: np.prod(s) > 1))),
    OpSpec("max_dim", lambda x, dim: x.max(dim), lambda x, dim: x.max(axis=dim), _dim_shapes(), make=distinct),
    OpSpec("min_all", lambda x: x.min(), lambda x: x.min(), single(shape), make=distinct),
    OpSpec("logsumexp", lambda x, dim: F.logsumexp(x, dim),
           lambda x, dim: np.log(np.exp(x).sum(axis=dim)), _dim_shapes()),
    OpSpec("softmax", lambda x, dim: F.softmax(x, dim), lambda x, dim: _softmax(x, dim), _dim_shapes()),
    OpSpec("log_softmax", lambda x, dim: F.log_softmax(x, dim), lambda x, dim: np.log(_softmax(x, dim)),
           _dim_shapes()),
    # ------------------------------------------------------------ normalisation over the ranks (a world of one here)
    OpSpec("sync_batch_norm", lambda x, w, b: sync_batch_norm(x, None, None, w, b, training=True), _batch_norm_ref,
           st.tuples(st.integers(2, 4), dims, st.integers(2, 3)).map(lambda s: (s, (s[1],), (s[1],)))),
    # ------------------------------------------------------------ shape ops
    OpSpec("reshape", lambda x: x.reshape(-1), lambda x: x.ravel(), single(shape)),
    OpSpec("transpose", lambda x: x.transpose(0, -1), lambda x: np.swapaxes(x, 0, -1), single(shape)),
    OpSpec("permute", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1),
           single(st.tuples(dims, dims, dims))),
    OpSpec("flatten", lambda x: x.flatten(1), lambda x: x.reshape(x.shape[0], -1), single(shape_2d_plus)),
    OpSpec("unsqueeze_squeeze", lambda x: x.unsqueeze(1).squeeze(1).unsqueeze(-1),
           lambda x: x[..., None], single(shape)),
    OpSpec("expand", lambda x: x.unsqueeze(0).expand(3, *x.shape),
           lambda x: np.broadcast_to(x, (3,) + x.shape), single(shape)),
    OpSpec("getitem_slice", lambda x: x[1:, ::2], lambda x: x[1:, ::2], single(shape_2d_plus)),
    OpSpec("getitem_repeated_index", lambda x: x[[0, -1, 0, 0]], lambda x: x[[0, -1, 0, 0]], single(shape)),
    OpSpec("getitem_mixed", lambda x: x[[0, 0, -1], ..., 0], lambda x: x[[0, 0, -1], ..., 0], single(shape_2d_plus)),
    OpSpec("cat", lambda a, b: F.cat([a, b, a], dim=-1), lambda a, b: np.concatenate([a, b, a], axis=-1),
           st.tuples(shape_2d_plus, dims).map(lambda sd: (sd[0], sd[0][:-1] + (sd[1],)))),
    OpSpec("stack", lambda a, b: F.stack([a, b], dim=1), lambda a, b: np.stack([a, b], axis=1),
           shape.map(lambda s: (s, s))),
    OpSpec("split", lambda x: F.cat([p * (i + 1) for i, p in enumerate(F.split(x, 2))]),
           lambda x: np.concatenate([p * (i + 1) for i, p in enumerate(np.split(x, range(2, len(x), 2)))]),
           single(shape)),
    OpSpec("chunk", lambda x: F.cat([p * (i + 1) for i, p in enumerate(F.chunk(x, 3))]),
           lambda x: np.concatenate([p * (i + 1) for i, p in
                                     enumerate(np.split(x, range(-(-len(x) // 3), len(x), -(-len(x) // 3))))]),
           single(shape)),
    OpSpec("pad", lambda x: F.pad(x, (1, 2, 0, 1), value=0.5),
           lambda x: np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, 1), (1, 2)], constant_values=0.5),
           single(shape_2d_plus)),
]

SPECS_BY_NAME = {s.name: s for s in SPECS}
