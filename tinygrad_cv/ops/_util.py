"""Small helpers shared by the ops: PyTorch's type promotion, binary operands, dims, fp32 accumulation,
and the 4-D check; "an int or a pair" and the window geometry are in ``backend/window.py`` (the launcher
needs them too), re-exported here for the ops."""
from __future__ import annotations

import itertools
import numbers


import numpy as np

from .. import backend
from ..backend.window import Window, pair  # noqa: F401 (the ops import them from here)
from ..tensor import DEFAULT_DTYPE, DTypeLike, Tensor, TensorLike

_BOOL, _INT, _FLOAT = 0, 1, 2
_CATEGORY = {"b": _BOOL, "u": _INT, "i": _INT, "f": _FLOAT}


def _category(dtype):
    return _CATEGORY[dtype.kind]


def promote_types(a, b):
    """PyTorch's ``promote_types`` for bool, integer and floating dtypes: bool < any integer < any
    float; two floats give the wider; an integer with a float gives the float (int64 + float16 is
    float16, where NumPy would say float64); two integers follow NumPy (uint8 + int8 = int16)."""
    if a == b:
        return a
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    if ca == _FLOAT:
        return a if a.itemsize >= b.itemsize else b
    return np.promote_types(a, b)


def _operand_dtype(value, op):
    """(priority, dtype) of one operand: 2 for a dimensioned tensor or array, 1 for a 0-d one,
    0 for a Python or NumPy scalar (whose dtype only stands for its category: float means float32)."""
    if isinstance(value, Tensor):
        return (2 if value.data.ndim else 1), value.data.dtype
    if isinstance(value, (bool, np.bool_)):
        return 0, np.dtype(bool)
    if isinstance(value, (numbers.Integral, np.integer)):
        return 0, np.dtype(np.int64)
    if isinstance(value, (numbers.Real, np.floating)):
        return 0, np.dtype(DEFAULT_DTYPE)
    if isinstance(value, (np.ndarray, list, tuple)):
        return _operand_dtype(Tensor(value), op)
    raise TypeError(f"{op}: expected a Tensor, a NumPy array or a real number, got {type(value).__name__}")


def _combine(higher, lower):
    """Join the dtype of a higher-priority group with a lower one (PyTorch's ``combine_categories``):
    the lower group only counts when its category is above the higher group's."""
    if higher is None:
        return lower
    if lower is None or _category(higher) == _FLOAT:
        return higher
    if _category(higher) == _BOOL or _category(lower) == _FLOAT:
        return promote_types(higher, lower)
    return higher


def result_dtype(*operands, op="result_dtype"):
    """The dtype PyTorch gives an elementwise op on ``operands`` (Tensors, NumPy arrays, numbers).

    Operands are grouped by priority: dimensioned tensors, then 0-d tensors, then Python scalars.
    Each group's dtypes are promoted together; a lower group changes the result only when its
    category (bool < integer < floating) is higher: int32 tensor + int64 0-d tensor stays int32,
    float32 (n,) + float64 0-d stays float32, int tensor * 0.5 is float32, int32 + float64 0-d is float64.
    """
    groups = [None, None, None]
    for value in operands:
        priority, dtype = _operand_dtype(value, op)
        groups[priority] = dtype if groups[priority] is None else promote_types(groups[priority], dtype)
    return _combine(groups[2], _combine(groups[1], groups[0]))


def _common_dtype(a, b):
    """The dtype of the common cases without the general rule: two tensors of one dtype, or a
    floating tensor with a Python number. None when the general rule is needed."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            return a.data.dtype if a.data.dtype == b.data.dtype else None
        return a.data.dtype if a.data.dtype.kind == "f" and type(b) in (float, int) else None
    if isinstance(b, Tensor) and b.data.dtype.kind == "f" and type(a) in (float, int):
        return b.data.dtype
    return None


def as_tensor(value: TensorLike, dtype: DTypeLike, like: Tensor) -> Tensor:
    """``value`` as a Tensor of ``dtype`` on ``like``'s device (a differentiable cast for a Tensor;
    a fresh array for anything else, so that a caller's array is never aliased)."""
    if isinstance(value, Tensor):
        return value if value.data.dtype == dtype else value.to(dtype=dtype)
    return Tensor.wrap(backend.move(np.array(value, dtype=dtype), like.device), like.device)


def broadcast_shape(op, *shapes):
    """The broadcast of ``shapes`` (NumPy's rule: from the last dim, sizes match or are 1), or a
    ValueError naming ``op`` and the shapes."""
    out = []
    for sizes in itertools.zip_longest(*(reversed(s) for s in shapes), fillvalue=1):
        size = 1
        for n in sizes:
            if n != 1:
                if size not in (1, n):
                    listed = " and ".join(dict.fromkeys(str(tuple(s)) for s in shapes))
                    raise ValueError(f"{op}: shapes {listed} cannot be broadcast together; every dim must "
                                     f"match or be 1, counting from the last")
                size = n
        out.append(size)
    return tuple(reversed(out))


def binary_operands(op: str, a: TensorLike, b: TensorLike, dtype: DTypeLike = None) -> tuple[Tensor, Tensor]:
    """Both operands of a binary elementwise op as tensors of one dtype (``result_dtype`` unless
    ``dtype`` is given) on one device, after checking that their shapes broadcast. Two tensors of one
    dtype, the commonest case, return as they are without the general rule's calls."""
    if dtype is None and isinstance(a, Tensor) and isinstance(b, Tensor) and a.data.dtype == b.data.dtype:
        if a.data.shape != b.data.shape and a.data.ndim and b.data.ndim:
            broadcast_shape(op, a.data.shape, b.data.shape)
        return a, b
    dtype = dtype or _common_dtype(a, b)
    if dtype is None:
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            raise TypeError(f"{op}: at least one operand must be a Tensor, got {type(a).__name__} and "
                            f"{type(b).__name__}")
        dtype = result_dtype(a, b, op=op)
    like = a if isinstance(a, Tensor) else b  # one of them is a Tensor (checked above or by _common_dtype)
    a, b = as_tensor(a, dtype, like), as_tensor(b, dtype, like)  # type: ignore[arg-type]
    if a.data.shape != b.data.shape and a.data.ndim and b.data.ndim:
        broadcast_shape(op, a.data.shape, b.data.shape)
    return a, b


def require_floating(x: Tensor, op: str) -> None:
    """Refuse a non-floating tensor, as PyTorch does for mean, var, std, softmax and log_softmax."""
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be a floating-point tensor, got {x.dtype}; convert it first, "
                        f"e.g. x.float()")


def to_floating(x: Tensor) -> Tensor:
    """Integer and bool tensors as the default float dtype (PyTorch's rule for exp, log, sqrt, ...)."""
    return x if x.dtype.kind == "f" else x.to(dtype=DEFAULT_DTYPE)


def normalize_dim(dim, ndim, op):
    """A dim (or tuple of dims, or None for all) as a sorted tuple of non-negative axes.

    A 0-d tensor accepts dim 0 and -1 as PyTorch does; they name no axis, so the tuple is empty."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    out = []
    for d in dims:
        if not isinstance(d, numbers.Integral) or isinstance(d, bool):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {d!r}")
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % max(ndim, 1))
    return tuple(sorted(set(out))) if ndim else ()


def matmul_arrays(xp, a, b):
    """a @ b. On the CPU, float16 operands are multiplied in float32 (NumPy has no fp16 BLAS and its
    float16 matmul is very slow) and rounded back; cuBLAS already accumulates fp16 GEMMs in fp32."""
    if xp is np and (a.dtype == np.float16 or b.dtype == np.float16):
        out_dtype = np.result_type(a.dtype, b.dtype)
        return xp.matmul(a.astype(np.float32), b.astype(np.float32)).astype(out_dtype)
    return xp.matmul(a, b)


# --------------------------------------------------------------------------- "an int or a pair", windows
def check_4d(fn, name, t):
    """Refuse anything but a 4-D Tensor, naming ``fn`` and the argument."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor, got {type(t).__name__}")
    if t.ndim != 4:
        raise ValueError(f"{fn}: {name} must be 4-D (N, C, H, W for input; out, in/groups, kh, kw for "
                         f"weight), got shape {t.shape}")


