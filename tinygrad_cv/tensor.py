"""The Tensor: an array of the active backend, plus what autograd needs (``requires_grad``, ``grad``).

Arithmetic, reductions and shape methods are thin calls into ``tinygrad_cv.functional`` (imported
at the bottom of this file as ``F``), so each op is defined exactly once.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, TypeAlias, Union, overload

import numpy as np
import numpy.typing as npt

from . import backend
from .random import generator

DEFAULT_DTYPE = np.float32

# The types the public API takes (names PyTorch's stubs use where there is one).
Number = Union[bool, int, float]
TensorLike = Union["Tensor", npt.ArrayLike]  # an operand: a Tensor, a NumPy array or scalar, a number, a list
DTypeLike = Optional[npt.DTypeLike]  # np.float32, "float32", tg.float32, np.dtype(...); None: the default
Device = Optional[str]  # "cpu", "cuda", "emu" (None: the default device)
Dims = Union[int, Sequence[int], None]  # one dim, several, or None for all
ShapeLike = Union[int, Sequence[int]]
Pair = Union[int, tuple[int, int]]  # a size, stride, padding or dilation for both spatial dims
_int: TypeAlias = int  # inside Tensor, int, bool and float name its methods
_bool: TypeAlias = bool
_float: TypeAlias = float

if TYPE_CHECKING:
    from .autograd import Function
    from .ops.reduce import MaxResult, MinResult


def _as_array(data: Any, dtype: DTypeLike, device: str) -> Any:
    """Turn Python data or an array of any device into a new array on ``device``.

    Python floats become the default float32, as in PyTorch; NumPy arrays and NumPy scalars (such as
    the ``np.float64`` a 0-d float64 sum returns) keep their dtype. Only bool, integer and floating
    data can be a tensor. The result never aliases the caller's array (``torch.tensor`` copies too):
    the optimisers update parameters in place, which must not change the array they were made from."""
    if isinstance(data, Tensor):
        data = data.data
    out = _converted(data, dtype, device)
    return out.copy() if out is data else out


def _converted(data: Any, dtype: DTypeLike, device: str) -> Any:
    if backend.is_device_array(data):
        array = backend.move(data, device)
    else:
        array = np.asarray(data)
        if dtype is None and array.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
            dtype = DEFAULT_DTYPE
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: data of dtype {array.dtype} ({type(data).__name__}) cannot be a tensor; "
                        f"only bool, integer and floating-point numbers can")
    return backend.move(array, device)


class Tensor:
    """An n-dimensional array that can record the operations applied to it for ``backward``."""

    __hash__ = object.__hash__  # == is elementwise, so identity hashing must be restored
    __array_priority__ = 1000  # ndarray * Tensor calls Tensor.__rmul__ (a Tensor), not NumPy's own mul
    data: Any  # the backend's array: numpy.ndarray, or cupy.ndarray on "cuda"
    device: str
    grad: Tensor | None
    requires_grad: _bool
    _ctx: Function | None  # the op that made this tensor (None for a leaf)

    def __init__(self, data: Any, dtype: DTypeLike = None, device: Device = None,
                 requires_grad: _bool = False) -> None:
        self.device = backend.check_device(device)
        self.data = _as_array(data, dtype, self.device)
        self.grad = None
        self._ctx = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def wrap(cls, array: Any, device: str) -> Tensor:
        """A tensor around an array already on ``device`` (no checks, no copy): the fast path for op results."""
        t = cls.__new__(cls)
        t.data, t.device, t.grad, t._ctx, t.requires_grad = array, device, None, None, False
        return t

    # ----------------------------------------------------------------- attributes
    @property
    def shape(self) -> tuple[_int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def ndim(self) -> _int:
        return self.data.ndim

    @property
    def is_leaf(self) -> _bool:
        return self._ctx is None

    @overload
    def size(self, dim: None = None) -> tuple[_int, ...]: ...
    @overload
    def size(self, dim: _int) -> _int: ...

    def size(self, dim: _int | None = None) -> tuple[_int, ...] | _int:
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> _int:
        return int(self.data.size)

    def dim(self) -> _int:
        return self.ndim

    def __len__(self) -> _int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device == "cpu" else f", device={self.device!r}"
        return f"Tensor({backend.as_host(self.data)!r}{dev}{grad})"

    # ----------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad: _bool = True) -> Tensor:
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad; this one is {self.dtype}. "
                            f"Convert it first, e.g. t.float().requires_grad_()")
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, gradient: TensorLike | None = None, retain_graph: _bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``, weighted by ``gradient``."""
        from .autograd import backward
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: gradient can be implicit only for a scalar output, but this "
                                   f"tensor has shape {self.shape}; pass gradient= with that shape, "
                                   f"or reduce it first (e.g. .sum())")
            grad = self.xp.ones_like(self.data)
        else:
            grad = _as_array(gradient, self.dtype, self.device)
            if grad.shape != self.shape:
                raise ValueError(f"backward: gradient has shape {grad.shape} but the tensor has shape "
                                 f"{self.shape}; they must match")
        backward(self, grad, retain_graph=retain_graph)

    def detach(self) -> Tensor:
        """The same data (shared, as PyTorch's), cut from the graph."""
        return Tensor.wrap(self.data, self.device)

    def zero_grad(self) -> None:
        self.grad = None

    # ----------------------------------------------------------------- devices and dtypes
    @property
    def xp(self) -> Any:
        return backend.get_xp(self.device)

    def numpy(self) -> npt.NDArray[Any]:
        """A host (NumPy) copy of the data."""
        return backend.as_host(self.data)

    def item(self) -> Number:
        if self.data.size != 1:
            raise ValueError(f"item(): only a one-element tensor has an item; this one has shape {self.shape}")
        return backend.as_host(self.data.reshape(())).item()  # a read back: pending device checks raise

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, device: Device = None, dtype: DTypeLike = None) -> Tensor:
        out = self
        if device is not None and backend.check_device(device) != self.device:
            out = F.to_device(out, device)
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = F.cast(out, dtype)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def float(self) -> Tensor:
        return self.to(dtype=np.float32)

    def half(self) -> Tensor:
        return self.to(dtype=np.float16)

    def double(self) -> Tensor:
        return self.to(dtype=np.float64)

    def long(self) -> Tensor:
        return self.to(dtype=np.int64)

    def int(self) -> Tensor:
        return self.to(dtype=np.int32)

    def bool(self) -> Tensor:
        return self.to(dtype=np.bool_)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(dtype=other.dtype)

    def astype(self, dtype: DTypeLike) -> Tensor:
        return self.to(dtype=dtype)

    # ----------------------------------------------------------------- Python protocols
    def __bool__(self) -> _bool:
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of a Tensor with {self.data.size} values is ambiguous (shape "
                               f"{self.shape}); reduce it first (e.g. (t > 0).sum() > 0), or pick one element")
        return bool(self.item())

    def __float__(self) -> _float: return float(self.item())
    def __int__(self) -> _int: return int(self.item())

    def __index__(self) -> _int:
        if self.dtype.kind not in "biu" or self.data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index; "
                            f"this one has dtype {self.dtype} and shape {self.shape}")
        return int(self.item())

    def __array__(self, dtype: DTypeLike = None, copy: _bool | None = None) -> npt.NDArray[Any]:
        """The data as a NumPy array (``np.asarray(t)``; host data without a copy, as PyTorch)."""
        on_host = isinstance(self.data, np.ndarray)
        if copy is False and not (on_host and (dtype is None or np.dtype(dtype) == self.dtype)):
            raise ValueError(f"__array__: copy=False, but a tensor of dtype {self.dtype} on "
                             f"{self.device!r} cannot become a NumPy array of dtype {dtype} without a copy")
        array = self.data if on_host else backend.as_host(self.data)
        if dtype is not None:
            array = array.astype(dtype, copy=False)
        return array.copy() if copy and array is self.data else array

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __contains__(self, element: Any) -> _bool:
        if not isinstance(element, (Tensor, numbers.Number)):
            raise TypeError(f"Tensor.__contains__ only supports a Tensor or a number, got {type(element).__name__}")
        return bool(F.eq(self, element).data.any())  # type: ignore[arg-type]  # numbers.Number is no ArrayLike

    # ----------------------------------------------------------------- operators
    def __add__(self, other: TensorLike) -> Tensor: return F.add(self, other)
    def __radd__(self, other: TensorLike) -> Tensor: return F.add(other, self)
    def __sub__(self, other: TensorLike) -> Tensor: return F.sub(self, other)
    def __rsub__(self, other: TensorLike) -> Tensor: return F.sub(other, self)
    def __mul__(self, other: TensorLike) -> Tensor: return F.mul(self, other)
    def __rmul__(self, other: TensorLike) -> Tensor: return F.mul(other, self)
    def __truediv__(self, other: TensorLike) -> Tensor: return F.div(self, other)
    def __rtruediv__(self, other: TensorLike) -> Tensor: return F.div(other, self)
    def __floordiv__(self, other: TensorLike) -> Tensor: return F.floor_divide(self, other)
    def __rfloordiv__(self, other: TensorLike) -> Tensor: return F.floor_divide(other, self)
    def __mod__(self, other: TensorLike) -> Tensor: return F.remainder(self, other)
    def __rmod__(self, other: TensorLike) -> Tensor: return F.remainder(other, self)
    def __pow__(self, other: TensorLike) -> Tensor: return F.pow(self, other)
    def __rpow__(self, other: TensorLike) -> Tensor: return F.pow(other, self)
    def __matmul__(self, other: Tensor) -> Tensor: return F.matmul(self, other)
    def __rmatmul__(self, other: Tensor) -> Tensor: return F.matmul(other, self)
    def __neg__(self) -> Tensor: return F.neg(self)
    def __abs__(self) -> Tensor: return F.abs(self)

    def __pos__(self) -> Tensor:
        if self.dtype == bool:
            raise TypeError("the unary + operator is not supported on a bool tensor (as in PyTorch)")
        return self

    def __getitem__(self, index: Any) -> Tensor: return F.getitem(self, index)
    def __lt__(self, other: TensorLike) -> Tensor: return F.compare(self, other, "less")
    def __le__(self, other: TensorLike) -> Tensor: return F.compare(self, other, "less_equal")
    def __gt__(self, other: TensorLike) -> Tensor: return F.compare(self, other, "greater")
    def __ge__(self, other: TensorLike) -> Tensor: return F.compare(self, other, "greater_equal")
    def __eq__(self, other: TensorLike) -> Tensor: return F.compare(self, other, "equal")  # type: ignore[override]
    def __ne__(self, other: TensorLike) -> Tensor: return F.compare(self, other, "not_equal")  # type: ignore[override]
    def eq(self, other: TensorLike) -> Tensor: return F.eq(self, other)
    def ne(self, other: TensorLike) -> Tensor: return F.ne(self, other)
    def lt(self, other: TensorLike) -> Tensor: return F.lt(self, other)
    def le(self, other: TensorLike) -> Tensor: return F.le(self, other)
    def gt(self, other: TensorLike) -> Tensor: return F.gt(self, other)
    def ge(self, other: TensorLike) -> Tensor: return F.ge(self, other)
    def isnan(self) -> Tensor: return F.isnan(self)
    def isinf(self) -> Tensor: return F.isinf(self)
    def isfinite(self) -> Tensor: return F.isfinite(self)
    def logical_not(self) -> Tensor: return F.logical_not(self)
    def clone(self) -> Tensor: return F.clone(self)

    # ----------------------------------------------------------------- arithmetic and elementwise
    def add(self, other: TensorLike, *, alpha: Number = 1) -> Tensor: return F.add(self, other, alpha=alpha)
    def sub(self, other: TensorLike, *, alpha: Number = 1) -> Tensor: return F.sub(self, other, alpha=alpha)
    def mul(self, other: TensorLike) -> Tensor: return F.mul(self, other)
    def div(self, other: TensorLike) -> Tensor: return F.div(self, other)
    def floor_divide(self, other: TensorLike) -> Tensor: return F.floor_divide(self, other)
    def remainder(self, other: TensorLike) -> Tensor: return F.remainder(self, other)
    def matmul(self, other: Tensor) -> Tensor: return F.matmul(self, other)
    def neg(self) -> Tensor: return F.neg(self)
    def exp(self) -> Tensor: return F.exp(self)
    def expm1(self) -> Tensor: return F.expm1(self)
    def log(self) -> Tensor: return F.log(self)
    def log1p(self) -> Tensor: return F.log1p(self)
    def sqrt(self) -> Tensor: return F.sqrt(self)
    def rsqrt(self) -> Tensor: return F.rsqrt(self)
    def reciprocal(self) -> Tensor: return F.reciprocal(self)
    def square(self) -> Tensor: return F.square(self)
    def sin(self) -> Tensor: return F.sin(self)
    def cos(self) -> Tensor: return F.cos(self)
    def abs(self) -> Tensor: return F.abs(self)
    def sign(self) -> Tensor: return F.sign(self)
    def floor(self) -> Tensor: return F.floor(self)
    def ceil(self) -> Tensor: return F.ceil(self)
    def trunc(self) -> Tensor: return F.trunc(self)
    def round(self, *, decimals: _int = 0) -> Tensor: return F.round(self, decimals=decimals)
    def pow(self, exponent: TensorLike) -> Tensor: return F.pow(self, exponent)
    def clamp(self, min: TensorLike | None = None, max: TensorLike | None = None) -> Tensor:
        return F.clamp(self, min, max)

    def clip(self, min: TensorLike | None = None, max: TensorLike | None = None) -> Tensor:
        return F.clamp(self, min, max)

    def where(self, condition: Tensor, other: TensorLike) -> Tensor: return F.where(condition, self, other)
    def relu(self) -> Tensor: return F.relu(self)
    def sigmoid(self) -> Tensor: return F.sigmoid(self)
    def tanh(self) -> Tensor: return F.tanh(self)
    def maximum(self, other: TensorLike) -> Tensor: return F.maximum(self, other)
    def minimum(self, other: TensorLike) -> Tensor: return F.minimum(self, other)

    # ----------------------------------------------------------------- reductions
    def sum(self, dim: Dims = None, keepdim: _bool = False, *, dtype: DTypeLike = None) -> Tensor:
        return F.sum(self, dim, keepdim, dtype=dtype)

    def prod(self, dim: _int | None = None, keepdim: _bool = False, *, dtype: DTypeLike = None) -> Tensor:
        return F.prod(self, dim, keepdim, dtype=dtype)

    def cumsum(self, dim: _int, *, dtype: DTypeLike = None) -> Tensor: return F.cumsum(self, dim, dtype=dtype)
    def mean(self, dim: Dims = None, keepdim: _bool = False, *, dtype: DTypeLike = None) -> Tensor:
        return F.mean(self, dim, keepdim, dtype=dtype)

    def amax(self, dim: Dims = None, keepdim: _bool = False) -> Tensor: return F.amax(self, dim, keepdim)
    def amin(self, dim: Dims = None, keepdim: _bool = False) -> Tensor: return F.amin(self, dim, keepdim)

    @overload
    def max(self) -> Tensor: ...
    @overload
    def max(self, dim: _int, keepdim: _bool = False) -> MaxResult: ...
    @overload
    def max(self, dim: Tensor) -> Tensor: ...
    def max(self, dim: _int | Tensor | None = None, keepdim: _bool = False) -> Tensor | MaxResult:
        return F.max(self, dim, keepdim)

    @overload
    def min(self) -> Tensor: ...
    @overload
    def min(self, dim: _int, keepdim: _bool = False) -> MinResult: ...
    @overload
    def min(self, dim: Tensor) -> Tensor: ...
    def min(self, dim: _int | Tensor | None = None, keepdim: _bool = False) -> Tensor | MinResult:
        return F.min(self, dim, keepdim)

    def var(self, dim: Dims | _bool = None, unbiased: _bool | None = None, keepdim: _bool = False,
            *, correction: Number | None = None) -> Tensor:
        return F.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim: Dims | _bool = None, unbiased: _bool | None = None, keepdim: _bool = False,
            *, correction: Number | None = None) -> Tensor:
        return F.std(self, dim, unbiased, keepdim, correction=correction)

    def any(self, dim: Dims = None, keepdim: _bool = False) -> Tensor: return F.any(self, dim, keepdim)
    def all(self, dim: Dims = None, keepdim: _bool = False) -> Tensor: return F.all(self, dim, keepdim)
    def argmax(self, dim: _int | None = None, keepdim: _bool = False) -> Tensor: return F.argmax(self, dim, keepdim)
    def argmin(self, dim: _int | None = None, keepdim: _bool = False) -> Tensor: return F.argmin(self, dim, keepdim)
    def softmax(self, dim: _int, dtype: DTypeLike = None) -> Tensor: return F.softmax(self, dim, dtype)
    def log_softmax(self, dim: _int, dtype: DTypeLike = None) -> Tensor: return F.log_softmax(self, dim, dtype)
    def logsumexp(self, dim: Dims, keepdim: _bool = False) -> Tensor: return F.logsumexp(self, dim, keepdim)

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape: ShapeLike) -> Tensor: return F.reshape(self, *shape)
    def view(self, *shape: ShapeLike) -> Tensor: return F.reshape(self, *shape)
    def flatten(self, start_dim: _int = 0, end_dim: _int = -1) -> Tensor: return F.flatten(self, start_dim, end_dim)
    def permute(self, *dims: ShapeLike) -> Tensor: return F.permute(self, *dims)
    def transpose(self, dim0: _int, dim1: _int) -> Tensor: return F.transpose(self, dim0, dim1)
    def squeeze(self, dim: Dims = None) -> Tensor: return F.squeeze(self, dim)
    def unsqueeze(self, dim: _int) -> Tensor: return F.unsqueeze(self, dim)
    def expand(self, *sizes: ShapeLike) -> Tensor: return F.expand(self, *sizes)
    def split(self, split_size_or_sections: _int | Sequence[_int],
              dim: _int = 0) -> tuple[Tensor, ...]: return F.split(self, split_size_or_sections, dim)
    def chunk(self, chunks: _int, dim: _int = 0) -> tuple[Tensor, ...]: return F.chunk(self, chunks, dim)
    def flip(self, *dims: ShapeLike) -> Tensor: return F.flip(self, *dims)
    def contiguous(self) -> Tensor: return self

    @property
    def T(self) -> Tensor:
        return F.permute(self, *reversed(range(self.ndim)))

    def t(self) -> Tensor:
        """The transpose of a matrix; a 0-d or 1-d tensor is returned as it is (PyTorch's ``t``)."""
        if self.ndim > 2:
            raise RuntimeError(f"t: expects a tensor with <= 2 dimensions, but this one has {self.ndim}; "
                               f"use transpose(dim0, dim1) or permute")
        return self.T


# ----------------------------------------------------------------------- creation helpers
def tensor(data: Any, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _shape(size: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)


def _make(host_array: npt.NDArray[Any], dtype: DTypeLike, device: Device, requires_grad: bool) -> Tensor:
    return Tensor(host_array, dtype=dtype or DEFAULT_DTYPE, device=device, requires_grad=requires_grad)


def zeros(*size: ShapeLike, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    return _make(np.zeros(_shape(size)), dtype, device, requires_grad)


def ones(*size: ShapeLike, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    return _make(np.ones(_shape(size)), dtype, device, requires_grad)


def full(size: ShapeLike, fill_value: Number, dtype: DTypeLike = None, device: Device = None,
         requires_grad: bool = False) -> Tensor:
    shape = (size,) if isinstance(size, (int, numbers.Integral)) else tuple(size)
    return _make(np.full(shape, fill_value), dtype, device, requires_grad)


def eye(n: int, m: int | None = None, dtype: DTypeLike = None, device: Device = None,
        requires_grad: bool = False) -> Tensor:
    return _make(np.eye(n, m), dtype, device, requires_grad)


def arange(start: Number, end: Number | None = None, step: Number = 1, dtype: DTypeLike = None,
           device: Device = None, requires_grad: bool = False) -> Tensor:
    values = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None and values.dtype.kind == "f":
        dtype = DEFAULT_DTYPE
    return Tensor(values, dtype=dtype, device=device, requires_grad=requires_grad)


def rand(*size: ShapeLike, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1) from the seeded global generator."""
    return _make(generator().random(_shape(size)), dtype, device, requires_grad)


def randn(*size: ShapeLike, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    """Standard normal from the seeded global generator."""
    return _make(generator().standard_normal(_shape(size)), dtype, device, requires_grad)


def _like(fn: Callable[..., Tensor], t: Tensor, dtype: DTypeLike, device: Device, requires_grad: bool) -> Tensor:
    return fn(*t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t: Tensor, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    return _like(ones, t, dtype, device, requires_grad)


def rand_like(t: Tensor, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    return _like(rand, t, dtype, device, requires_grad)


def randn_like(t: Tensor, dtype: DTypeLike = None, device: Device = None, requires_grad: bool = False) -> Tensor:
    return _like(randn, t, dtype, device, requires_grad)


def full_like(t: Tensor, fill_value: Number, dtype: DTypeLike = None, device: Device = None,
              requires_grad: bool = False) -> Tensor:
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


from . import functional as F  # noqa: E402  (functional builds on Tensor, so it comes after it)
