"""Each core op declared once: how to make its inputs, what it computes (a NumPy reference written
independently of the op), and on what shapes. ``test_ops_core.py`` runs every declaration over
dtypes, devices, non-contiguous inputs and gradcheck.

Inputs are drawn away from kinks and ties (ReLU near 0, max-pool with equal values, ...), where a
finite difference does not estimate the derivative.
"""
import math
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


def with_zeros(rng, s, i):
    """Normal values, about a third of them exactly zero (prod's gradient must not divide by them)."""
    return rng.standard_normal(s) * (rng.random(s) > 0.3)


def off_the_steps(rng, s, i):
    """Input 0: an integer plus a fraction in [0.2, 0.8]; input 1: 1 or 2. Then a / b is at least 0.1
    from an integer, away from the jumps of remainder and floor_divide."""
    if i == 1:
        return rng.choice([1.0, 2.0], size=s)
    return rng.integers(-3, 4, size=s) + rng.uniform(0.2, 0.8, size=s)


def clamp_bounds(rng, s, i):
    """x on odd multiples of 0.25, lo on even ones in [-2, -0.5], hi on even ones in [0, 2]: no ties
    between x and a bound, and lo < hi."""
    if i == 0:
        return (2 * rng.integers(-4, 5, size=s) + 1) * 0.25
    return 2 * rng.integers(*((-4, 0) if i == 1 else (0, 5)), size=s) * 0.25


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


def _np_gelu(x):
    """x Phi(x) with Phi from math.erf, one element at a time."""
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _np_layer_norm(x, w, b):
    """Normalise over the last dim, one row at a time."""
    rows = x.reshape(-1, x.shape[-1])
    out = np.array([(r - r.mean()) / np.sqrt(r.var() + 1e-5) for r in rows]).reshape(x.shape)
    return out * w + b


def _np_group_norm(x, w, b, groups=2):
    n, c = x.shape[:2]
    out = np.empty_like(x)
    for i in range(n):
        for g in range(groups):
            part = x[i, g * c // groups:(g + 1) * c // groups]
            out[i, g * c // groups:(g + 1) * c // groups] = (part - part.mean()) / np.sqrt(part.var() + 1e-5)
    return out * w.reshape((c,) + (1,) * (x.ndim - 2)) + b.reshape((c,) + (1,) * (x.ndim - 2))


def _sig(x):
    return 0.5 * (1 + np.tanh(x / 2))  # sigmoid by another formula than the op's


# ----------------------------------------------------------------------------- vision-op references
# Written as loops or with NumPy's own padding, independently of the ops' matrices and strides.
def _np_conv_same(x, w):
    """Unbatched (C, H, W) cross-correlation with 'same' padding, the odd pixel at the bottom/right."""
    (kh, kw), (h, wd) = w.shape[2:], x.shape[1:]
    xpad = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)))
    out = np.zeros((w.shape[0], h, wd))
    for i in range(h):
        for j in range(wd):
            out[:, i, j] = np.tensordot(w, xpad[:, i:i + kh, j:j + kw], axes=3)
    return out


def _np_avg_pool_ceil_divisor(x, k, s, divisor):
    """Unbatched avg pool with ceil_mode (the last window may hang off the edge) and a fixed divisor."""
    out_h, out_w = (-(-(n - k) // s) + 1 for n in x.shape[1:])
    return np.array([[[x[c, i * s:i * s + k, j * s:j * s + k].sum() / divisor for j in range(out_w)]
                      for i in range(out_h)] for c in range(x.shape[0])])


def _np_adaptive(x, out, reduce_fn):
    """Unbatched adaptive pooling over bins [floor(i*n/out), ceil((i+1)*n/out))."""
    (h, w), (oh, ow) = x.shape[1:], out
    bins = [[(i * n // o, -(-(i + 1) * n // o)) for i in range(o)] for n, o in ((h, oh), (w, ow))]
    return np.array([[[reduce_fn(x[c, r0:r1, c0:c1]) for c0, c1 in bins[1]] for r0, r1 in bins[0]]
                     for c in range(x.shape[0])])


def _np_cubic(d):
    a, d = -0.75, abs(d)
    return ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else ((a * d - 5 * a) * d + 8 * a) * d - 4 * a


def _np_resize_1d(line, n_out, mode):
    """Resize a 1-D array by PyTorch's rules (align_corners False, scale in / out), one output at a time."""
    n = len(line)
    scale = n / n_out
    out = []
    for o in range(n_out):
        if mode == "nearest-exact":
            out.append(line[min(int(np.floor((o + 0.5) * scale)), n - 1)])
        elif mode == "linear":
            src = max((o + 0.5) * scale - 0.5, 0.0)
            lo = min(int(np.floor(src)), n - 1)
            out.append(line[lo] + (src - lo) * (line[min(lo + 1, n - 1)] - line[lo]))
        elif mode == "bicubic":
            src = (o + 0.5) * scale - 0.5
            lo = int(np.floor(src))
            out.append(sum(_np_cubic(src - (lo + k)) * line[min(max(lo + k, 0), n - 1)] for k in (-1, 0, 1, 2)))
        else:  # area
            out.append(line[o * n // n_out:-(-(o + 1) * n // n_out)].mean())
    return np.array(out)


def _np_resize(x, size, mode):
    """(N, C, L) along L, or (N, C, H, W) along W then H (each mode here is separable)."""
    x = np.apply_along_axis(_np_resize_1d, -1, x, size[-1], mode)
    return x if len(size) == 1 else np.apply_along_axis(_np_resize_1d, -2, x, size[0], mode)


@st.composite
def conv_unbatched_shapes(draw):
    c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return (c, draw(st.integers(1, 5)), draw(st.integers(1, 5))), (o, c) + k


image_3d = st.tuples(dims, st.integers(3, 6), st.integers(3, 6))  # (C, H, W), each side >= 3 for reflect

# multi_scale_roi_align on a two-level pyramid of a 32-pixel image (strides 4 and 8; canonical 16 px at level 3):
# a 12-pixel box pools from level 2, a 24-pixel one from level 3; each is centred on a feature pixel's centre,
# so one aligned sample (output 1 x 1, sampling_ratio 1) reads exactly that pixel.
PYRAMID_BOXES = [[4.0, 0.0, 16.0, 12.0], [0.0, 8.0, 24.0, 32.0]]    # on the first and the last image
pyramid_shapes = st.tuples(dims, dims).map(lambda nc: ((nc[0], nc[1], 8, 8), (nc[0], nc[1], 4, 4)))


def _multi_scale_roi_align(p2, p3):
    boxes = [[0] + PYRAMID_BOXES[0], [p2.shape[0] - 1] + PYRAMID_BOXES[1]]
    return F.multi_scale_roi_align([p2, p3], np.array(boxes), 1, [1 / 4, 1 / 8], sampling_ratio=1,
                                   canonical_scale=16, canonical_level=3, aligned=True)


def _np_pyramid_pixels(p2, p3):
    """Box 0's centre (10, 6) is P2's pixel (row 1, col 2); box 1's (12, 20) is P3's pixel (row 2, col 1)."""
    return np.stack([p2[0, :, 1, 2], p3[-1, :, 2, 1]])[:, :, None, None]


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
    OpSpec("silu", F.silu, lambda x: x / (1 + np.exp(-x)), single(shape)),
    OpSpec("gelu", F.gelu, _np_gelu, single(shape)),
    OpSpec("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), _np_gelu_tanh, single(shape)),
    OpSpec("square", F.square, lambda x: x * x, single(shape)),
    OpSpec("reciprocal", F.reciprocal, lambda x: x ** -1.0, single(shape), make=away_from_zero),
    OpSpec("rsqrt", F.rsqrt, lambda x: x ** -0.5, single(shape), make=positive),
    OpSpec("log1p", F.log1p, lambda x: np.log(1 + x), single(shape), make=positive),
    OpSpec("expm1", F.expm1, lambda x: np.exp(x) - 1, single(shape)),
    OpSpec("floor_plus_x", lambda x: F.floor(x) + F.ceil(x) + F.round(x) + F.trunc(x) + x,
           lambda x: np.floor(x) + np.ceil(x) + np.rint(x) + np.fix(x) + x, single(shape), make=off_the_steps),
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
    OpSpec("remainder", lambda a, b: a % b, lambda a, b: a - np.floor(a / b) * b, broadcast_pair(), make=off_the_steps),
    OpSpec("floor_divide", lambda a, b: (a // b) + a, lambda a, b: np.floor(a / b) + a, broadcast_pair(),
           make=off_the_steps),
    OpSpec("clamp_tensor", lambda x, lo, hi: F.clamp(x, lo, hi), lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
           broadcast_pair().map(lambda ab: (ab[0], ab[1], ab[1])), make=clamp_bounds),
    OpSpec("max_binary", lambda a, b: F.max(a, b), np.maximum, broadcast_pair(), make=interleaved),
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
    OpSpec("max_dim", lambda x, dim: x.max(dim).values, lambda x, dim: x.max(axis=dim), _dim_shapes(), make=distinct),
    OpSpec("min_dim_keepdim", lambda x, dim: F.min(x, dim, keepdim=True).values,
           lambda x, dim: x.min(axis=dim, keepdims=True), _dim_shapes(), make=distinct),
    OpSpec("prod_dim", lambda x, dim: x.prod(dim), lambda x, dim: np.multiply.reduce(x, axis=dim), _dim_shapes(),
           make=with_zeros),
    OpSpec("prod_all", lambda x: F.prod(x), lambda x: np.multiply.reduce(x.ravel()), single(shape), make=with_zeros),
    OpSpec("cumsum", lambda x, dim: x.cumsum(dim), lambda x, dim: np.add.accumulate(x, axis=dim), _dim_shapes()),
    OpSpec("var_correction", lambda x, dim: F.var(x, dim, keepdim=True, correction=0),
           lambda x, dim: ((x - x.mean(axis=dim, keepdims=True)) ** 2).mean(axis=dim, keepdims=True), _dim_shapes()),
    OpSpec("min_all", lambda x: x.min(), lambda x: x.min(), single(shape), make=distinct),
    OpSpec("logsumexp", lambda x, dim: F.logsumexp(x, dim),
           lambda x, dim: np.log(np.exp(x).sum(axis=dim)), _dim_shapes()),
    OpSpec("softmax", lambda x, dim: F.softmax(x, dim), lambda x, dim: _softmax(x, dim), _dim_shapes()),
    OpSpec("log_softmax", lambda x, dim: F.log_softmax(x, dim), lambda x, dim: np.log(_softmax(x, dim)),
           _dim_shapes()),
    OpSpec("batch_norm", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), _batch_norm_ref,
           st.tuples(st.integers(2, 4), dims, st.integers(2, 3)).map(lambda s: (s, (s[1],), (s[1],)))),
    # ------------------------------------------------------------ normalisation over the ranks (a world of one here)
    OpSpec("sync_batch_norm", lambda x, w, b: sync_batch_norm(x, None, None, w, b, training=True), _batch_norm_ref,
           st.tuples(st.integers(2, 4), dims, st.integers(2, 3)).map(lambda s: (s, (s[1],), (s[1],)))),
    OpSpec("layer_norm", lambda x, w, b: F.layer_norm(x, x.shape[-1:], w, b), _np_layer_norm,
           st.tuples(dims, dims, st.integers(2, 5)).map(lambda s: (s, s[-1:], s[-1:]))),
    OpSpec("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b), _np_group_norm,
           st.tuples(dims, st.sampled_from([2, 4, 6]), st.integers(1, 3)).map(lambda s: (s, (s[1],), (s[1],)))),
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
    OpSpec("flip", lambda x: x.flip(0, -1), lambda x: x[::-1, ..., ::-1] if x.ndim > 1 else x[::-1], single(shape)),
    OpSpec("clone", lambda x: x.clone(), lambda x: np.array(x, copy=True), single(shape)),
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
    OpSpec("multi_scale_roi_align", _multi_scale_roi_align, _np_pyramid_pixels, pyramid_shapes),
    # ------------------------------------------------------------ vision ops: unbatched inputs, pad and resize modes
    OpSpec("conv2d_unbatched_same", lambda x, w: F.conv2d(x, w, padding="same"), _np_conv_same,
           conv_unbatched_shapes(), fp16_rtol=5e-2),
    # a 2x2 window at stride 1 over n + 2 padded pixels is the adaptive bin of n + 2 into n + 1 outputs
    OpSpec("max_pool2d_unbatched", lambda x: F.max_pool2d(x, (2,), stride=1, padding=1),
           lambda x: _np_adaptive(np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf),
                                  (x.shape[1] + 1, x.shape[2] + 1), np.max),
           single(image_3d), make=distinct),
    OpSpec("avg_pool2d_ceil_divisor", lambda x: F.avg_pool2d(x, (2,), stride=(2,), ceil_mode=True, divisor_override=3),
           lambda x: _np_avg_pool_ceil_divisor(x, 2, 2, 3), single(image_3d)),
    OpSpec("adaptive_avg_pool2d_uneven", lambda x: F.adaptive_avg_pool2d(x, (2, None)),
           lambda x: _np_adaptive(x, (2, x.shape[2]), np.mean), single(image_3d)),
    OpSpec("adaptive_max_pool2d", lambda x: F.adaptive_max_pool2d(x, (2, 3)),
           lambda x: _np_adaptive(x, (2, 3), np.max), single(image_3d), make=distinct),
    OpSpec("pad_reflect", lambda x: F.pad(x, (2, 1, 0, 2), mode="reflect"),
           lambda x: np.pad(x, ((0, 0), (0, 2), (2, 1)), mode="reflect"), single(image_3d)),
    OpSpec("pad_replicate", lambda x: F.pad(x, (3, 1, 2, 0), mode="replicate"),
           lambda x: np.pad(x, ((0, 0), (2, 0), (3, 1)), mode="edge"), single(image_3d)),
    OpSpec("pad_circular", lambda x: F.pad(x, (1, 3, 2, 1), mode="circular"),
           lambda x: np.pad(x, ((0, 0), (2, 1), (1, 3)), mode="wrap"), single(image_3d)),
    OpSpec("pad_constant_crop", lambda x: F.pad(x, (-1, 2, 1, -2), value=1.5),
           lambda x: np.pad(x, ((0, 0), (1, 0), (0, 2)), constant_values=1.5)[:, :-2, 1:], single(image_3d)),
    OpSpec("interpolate_nearest_exact", lambda x: F.interpolate(x[None], size=(5, 2), mode="nearest-exact")[0],
           lambda x: _np_resize(x[None], (5, 2), "nearest-exact")[0], single(image_3d)),
    OpSpec("interpolate_bicubic", lambda x: F.interpolate(x[None], size=(7, 2), mode="bicubic")[0],
           lambda x: _np_resize(x[None], (7, 2), "bicubic")[0], single(image_3d)),
    OpSpec("interpolate_area", lambda x: F.interpolate(x[None], size=(2, 4), mode="area")[0],
           lambda x: _np_resize(x[None], (2, 4), "area")[0], single(image_3d)),
    OpSpec("interpolate_linear_1d", lambda x: F.interpolate(x, size=7, mode="linear"),
           lambda x: _np_resize(x, (7,), "linear"), single(image_3d)),
]

SPECS_BY_NAME = {s.name: s for s in SPECS}
