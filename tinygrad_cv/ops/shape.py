"""Ops that move data without arithmetic: reshape, permute, expand, indexing, cat, pad, casts and
device transfers. Their backward puts each gradient element back where its value came from."""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from .. import backend
from ..autograd import Function
from ..tensor import DTypeLike, Dims, Number, ShapeLike, Tensor
from ._util import normalize_dim


class Reshape(Function):
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


class Permute(Function):
    def forward(ctx, x, dims):
        ctx.inverse = tuple(np.argsort(dims))
        return x.transpose(dims)

    def backward(ctx, g):
        return g.transpose(ctx.inverse)


class Flip(Function):
    """y = x reversed along ``axes``; the gradient is reversed back."""
    def forward(ctx, x, axes):
        ctx.axes = axes
        return ctx.xp.flip(x, axes)

    def backward(ctx, g):
        return ctx.xp.flip(g, ctx.axes)


class Expand(Function):
    """A broadcast view; backward sums over the expanded dims (done by the engine's sum_to_shape)."""
    def forward(ctx, x, shape):
        return ctx.xp.broadcast_to(x, shape)

    def backward(ctx, g):
        return g


class GetItem(Function):
    """y = x[index]. Basic slices write the gradient back directly; integer-array indices may repeat,
    so their gradients are scattered with add-at semantics."""
    def forward(ctx, x, index, advanced):
        ctx.in_shape, ctx.index, ctx.advanced = x.shape, index, advanced
        return x[index]

    def backward(ctx, g):
        gx = ctx.xp.zeros(ctx.in_shape, dtype=g.dtype)
        if ctx.advanced:
            backend.add_at(ctx.xp, gx, ctx.index, g)
        else:
            gx[ctx.index] = g
        return gx


class Cat(Function):
    """y = concatenate(xs, axis); backward slices the gradient into the pieces."""
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        ctx.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1].tolist()
        return ctx.xp.concatenate(xs, axis=axis)

    def backward(ctx, g):
        return tuple(ctx.xp.split(g, ctx.bounds, axis=ctx.axis))


class Pad(Function):
    """Constant padding; ``widths`` is NumPy's ((before, after), ...) per axis."""
    def forward(ctx, x, widths, value):
        ctx.crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return ctx.xp.pad(x, widths, mode="constant", constant_values=value)

    def backward(ctx, g):
        return g[ctx.crop]


class Cast(Function):
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(ctx, g):
        return g.astype(ctx.in_dtype)


class Clone(Function):
    """y = a copy of x;  dy/dx = 1."""
    def forward(ctx, x):
        return x.copy()

    def backward(ctx, g):
        return g


class ToDevice(Function):
    """y = x on another device (``moves_device``: the output is on ``device``, ctx.device stays the
    input's);  dx = dy moved back to the input's device."""
    moves_device = True

    def forward(ctx, x, device):
        return backend.move(x, device)

    def backward(ctx, g):
        return backend.move(g, ctx.device)


# --------------------------------------------------------------------------- public wrappers
def _sizes(args: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)


def reshape(x: Tensor, *shape: ShapeLike) -> Tensor:
    shape = _sizes(shape)
    try:
        target = np.empty(x.shape, dtype=np.uint8).reshape(shape).shape  # resolves -1, checks sizes
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.numel()} elements) "
                         f"into shape {shape}") from None
    return Reshape.apply(x, shape=target)


view = reshape


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def permute(x: Tensor, *dims: ShapeLike) -> Tensor:
    dims = _sizes(dims)
    if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {x.ndim} dims of shape {x.shape}")
    return Permute.apply(x, dims=tuple(d % x.ndim for d in dims))


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dims; a 0-d tensor accepts transpose(0, 0) (and -1), as PyTorch."""
    normalize_dim((dim0, dim1), x.ndim, "transpose")
    dims = list(range(x.ndim))
    if not dims:
        return reshape(x, ())
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return permute(x, *dims)


def flip(x: Tensor, *dims: ShapeLike) -> Tensor:
    """Reverse the order of elements along ``dims`` (``flip(x, (0, 1))`` or ``x.flip(0, 1)``)."""
    dims = _sizes(dims)
    return Flip.apply(x, axes=normalize_dim(dims, x.ndim, "flip"))


def squeeze(x: Tensor, dim: Dims = None) -> Tensor:
    axes = normalize_dim(dim, x.ndim, "squeeze")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def expand(x: Tensor, *sizes: ShapeLike) -> Tensor:
    sizes = _sizes(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: cannot expand shape {x.shape} to fewer dims {sizes}")
    target = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
    for i, n in enumerate(x.shape):
        if n != 1 and n != target[i + lead]:
            raise ValueError(f"expand: dim {i} of shape {x.shape} has size {n} and cannot become {target[i + lead]}")
    return Expand.apply(x, shape=target)


def _index_arrays(index, xp):
    """Replace Tensors inside an index by their arrays; report whether integer/bool arrays occur."""
    items = index if isinstance(index, tuple) else (index,)
    out, advanced = [], False
    for item in items:
        if isinstance(item, Tensor):
            item = item.data
        if isinstance(item, (list, np.ndarray)) or backend.is_device_array(item):
            item = xp.asarray(item)
            if item.dtype == bool:
                out.extend(xp.nonzero(item))
                advanced = True
                continue
            advanced = True
        out.append(item)
    return tuple(out), advanced


def getitem(x: Tensor, index: Any) -> Tensor:
    index, advanced = _index_arrays(index, x.xp)
    return GetItem.apply(x, index=index, advanced=advanced)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    ref = tensors[0]
    axis = dim % ref.ndim
    for i, t in enumerate(tensors[1:], 1):
        if t.ndim != ref.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, ref.shape)) if k != axis):
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, which does not match tensor 0's "
                             f"shape {ref.shape} outside dim {dim}")
    return Cat.apply(*tensors, axis=axis)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    dim = dim % (tensors[0].ndim + 1)
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[Tensor, ...]:
    """Split into pieces of ``split_size`` (the last may be smaller) or of the given list of sizes."""
    axis = dim % x.ndim
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, numbers.Integral)):
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} add up to {sum(sizes)} but dim {dim} has size {n}")
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(getitem(x, index))
        start += size
    return tuple(pieces)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    n = x.shape[dim % x.ndim]
    return split(x, -(-n // chunks), dim)


PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad_source(mode, n, lo, hi):
    """The indices into a dim of n elements that each element of the padded dim (lo + n + hi long)
    copies, for the non-constant modes (a negative lo or hi crops):
      reflect    ... x2 x1 | x0 x1 ... x(n-1) | x(n-2) ...   (the edge is not repeated)
      replicate  ... x0 x0 | x0 x1 ... x(n-1) | x(n-1) ...
      circular   ... x(n-2) x(n-1) | x0 ... x(n-1) | x0 x1 ...
    Circular padding crops first and wraps around what is left, as PyTorch.
    """
    if mode == "circular":
        start, kept = -min(lo, 0), n + min(lo, 0) + min(hi, 0)
        return start + np.arange(-max(lo, 0), kept + max(hi, 0)) % max(kept, 1)
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        i = np.abs(i)
        return np.where(i >= n, 2 * (n - 1) - i, i)
    return np.clip(i, 0, n - 1)


def _check_pad(x, pad, mode, value):
    """PyTorch's rules for ``pad``; the (before, after) pairs from the last dim backwards."""
    if not isinstance(x, Tensor):
        raise TypeError(f"pad: input must be a Tensor, got {type(x).__name__}")
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    pad = tuple(pad) if isinstance(pad, (tuple, list)) else pad
    if not isinstance(pad, tuple) or not all(isinstance(p, numbers.Integral) and not isinstance(p, bool)
                                             for p in pad):
        raise TypeError(f"pad: pad must be a tuple of ints (left, right, top, bottom, ...), got {pad!r}")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected (before, after) pairs for at most {x.ndim} dims, got {pad}")
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(pad) // 2)]
    sizes = x.shape[::-1][:len(pairs)]
    if any(n + lo + hi < 0 for n, (lo, hi) in zip(sizes, pairs)):
        raise ValueError(f"pad: padding {pad} of input {x.shape} leaves a negative size")
    if mode == "constant":
        return pairs
    if value is not None:
        raise ValueError(f"pad: mode {mode!r} takes no value (got value={value!r}); value is for mode='constant'")
    if not 1 <= len(pairs) <= 3 or x.ndim not in (len(pairs) + 1, len(pairs) + 2):
        raise ValueError(f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of a (N, C, ...) or (C, ...) input, so "
                         f"{len(pairs)} pair(s) need a {len(pairs) + 1}-D or {len(pairs) + 2}-D input, got shape "
                         f"{x.shape}")
    limit = {"reflect": "smaller than", "circular": "at most", "replicate": None}[mode]
    for n, (lo, hi) in zip(sizes, pairs):
        kept = n + min(lo, 0) + min(hi, 0)  # circular wraps around what is left after cropping
        too_big = max(lo, hi) >= n if mode == "reflect" else mode == "circular" and max(lo, hi) > kept
        if too_big or (n == 0 and mode == "replicate"):
            raise ValueError(f"pad: mode {mode!r} needs each padding {limit or 'of'} the size of its dim, got "
                             f"padding {pad} for input shape {x.shape}")
    return pairs


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: Number | None = None) -> Tensor:
    """Pad as ``torch.nn.functional.pad``: ``pad`` lists (before, after) pairs starting from the
    *last* dim, so (left, right, top, bottom) pads the width, then the height; a negative amount
    crops. 'constant' fills with ``value`` (0 when None); 'reflect', 'replicate' and 'circular'
    copy input elements (see ``_pad_source``) and pad the last 1-3 dims of a batched or unbatched
    input. The gradient of a copied element flows back to its source, summed."""
    pairs = _check_pad(x, pad, mode, value)
    widths = [(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1]
    if mode == "constant":
        grown = tuple((max(lo, 0), max(hi, 0)) for lo, hi in widths)
        if any(lo or hi for lo, hi in grown):
            x = Pad.apply(x, widths=grown, value=0 if value is None else value)
        if all(lo >= 0 and hi >= 0 for lo, hi in widths):
            return x
        return getitem(x, tuple(slice(-min(lo, 0), n + min(hi, 0)) for (lo, hi), n in zip(widths, x.shape)))
    for axis, (lo, hi) in enumerate(widths):
        if lo or hi:
            x = getitem(x, (slice(None),) * axis + (_pad_source(mode, x.shape[axis], lo, hi),))
    return x


def clone(input: Tensor) -> Tensor:
    """A copy of ``input`` with its own memory, still in the graph (gradients pass through), as PyTorch."""
    return Clone.apply(input)


def cast(x: Tensor, dtype: DTypeLike) -> Tensor:
    return Cast.apply(x, dtype=np.dtype(dtype))


def to_device(x: Tensor, device: str) -> Tensor:
    return ToDevice.apply(x, device=backend.check_device(device))
