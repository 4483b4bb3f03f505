"""Small helpers shared by the ops: lifting Python scalars to tensors, normalising dims, fp32 accumulation."""
import numbers

import numpy as np

from ..tensor import DEFAULT_DTYPE, Tensor


def lift(value, like):
    """``value`` as a Tensor on ``like``'s device; Python numbers take ``like``'s dtype when it is a float."""
    if isinstance(value, Tensor):
        return value
    if not isinstance(value, (numbers.Number, np.generic, np.ndarray, list, tuple)) and \
            not hasattr(value, "__array__"):
        raise TypeError(f"expected a Tensor or a number, got {type(value).__name__}")
    dtype = like.dtype
    if dtype.kind != "f" and np.asarray(value).dtype.kind == "f":
        dtype = DEFAULT_DTYPE
    return Tensor(np.asarray(value, dtype=dtype), device=like.device)


def lift_pair(a, b):
    """Both operands as tensors, each scalar taking the other operand's dtype and device."""
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError("at least one operand must be a Tensor")
        a = lift(a, b)
    return a, lift(b, a)


def normalize_dim(dim, ndim, op):
    """A dim (or tuple of dims, or None for all) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"{op}: dim {d} is out of range for a tensor with {ndim} dimensions")
        out.append(d % max(ndim, 1))
    return tuple(sorted(set(out)))


def accumulate_dtype(dtype):
    """Reductions and matrix products of float16 accumulate in float32."""
    return np.float32 if dtype == np.float16 else None


def matmul_arrays(xp, a, b):
    """a @ b. On the CPU, float16 operands are multiplied in float32 (NumPy has no fp16 BLAS and its
    float16 matmul is very slow) and rounded back; cuBLAS already accumulates fp16 GEMMs in fp32."""
    if xp is np and (a.dtype == np.float16 or b.dtype == np.float16):
        out_dtype = np.result_type(a.dtype, b.dtype)
        return xp.matmul(a.astype(np.float32), b.astype(np.float32)).astype(out_dtype)
    return xp.matmul(a, b)
