"""The Tensor: an array of the active backend, plus what autograd needs (``requires_grad``, ``grad``).

Arithmetic, reductions and shape methods are thin calls into ``tinygrad_cv.functional`` (imported
at the bottom of this file as ``F``), so each op is defined exactly once.
"""
import numbers

import numpy as np

from . import backend
from .random import generator

DEFAULT_DTYPE = np.float32


def _as_array(data, dtype, device):
    """Turn Python data or an array of any device into a new array on ``device``.

    Python floats become the default float32, as in PyTorch; NumPy arrays and NumPy scalars (such as
    the ``np.float64`` a 0-d float64 sum returns) keep their dtype. Only bool, integer and floating
    data can be a tensor. The result never aliases the caller's array (``torch.tensor`` copies too):
    the optimisers update parameters in place, which must not change the array they were made from."""
    if isinstance(data, Tensor):
        data = data.data
    out = _converted(data, dtype, device)
    return out.copy() if out is data else out


def _converted(data, dtype, device):
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

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        self.device = backend.check_device(device)
        self.data = _as_array(data, dtype, self.device)
        self.grad = None
        self._ctx = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def wrap(cls, array, device):
        """A tensor around an array already on ``device`` (no checks, no copy): the fast path for op results."""
        t = cls.__new__(cls)
        t.data, t.device, t.grad, t._ctx, t.requires_grad = array, device, None, None, False
        return t

    # ----------------------------------------------------------------- attributes
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def is_leaf(self):
        return self._ctx is None

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.ndim

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device == "cpu" else f", device={self.device!r}"
        return f"Tensor({backend.as_host(self.data)!r}{dev}{grad})"

    # ----------------------------------------------------------------- autograd
    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad; this one is {self.dtype}. "
                            f"Convert it first, e.g. t.float().requires_grad_()")
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, gradient=None, retain_graph=False):
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

    def detach(self):
        """The same data (shared, as PyTorch's), cut from the graph."""
        return Tensor.wrap(self.data, self.device)

    def zero_grad(self):
        self.grad = None

    # ----------------------------------------------------------------- devices and dtypes
    @property
    def xp(self):
        return backend.get_xp(self.device)

    def numpy(self):
        """A host (NumPy) copy of the data."""
        return backend.as_host(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only a one-element tensor has an item; this one has shape {self.shape}")
        return backend.as_host(self.data.reshape(())).item()  # a read back: pending device checks raise

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None):
        out = self
        if device is not None and backend.check_device(device) != self.device:
            out = F.to_device(out, device)
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = F.cast(out, dtype)
        return out

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(dtype=np.float32)

    def half(self):
        return self.to(dtype=np.float16)

    def double(self):
        return self.to(dtype=np.float64)

    def long(self):
        return self.to(dtype=np.int64)

    def int(self):
        return self.to(dtype=np.int32)

    def bool(self):
        return self.to(dtype=np.bool_)

    def type_as(self, other):
        return self.to(dtype=other.dtype)

    def astype(self, dtype):
        return self.to(dtype=dtype)

    # ----------------------------------------------------------------- Python protocols
    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of a Tensor with {self.data.size} values is ambiguous (shape "
                               f"{self.shape}); reduce it first (e.g. (t > 0).sum() > 0), or pick one element")
        return bool(self.item())

    def __float__(self): return float(self.item())
    def __int__(self): return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "biu" or self.data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an index; "
                            f"this one has dtype {self.dtype} and shape {self.shape}")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        """The data as a NumPy array (``np.asarray(t)``; host data without a copy, as PyTorch)."""
        on_host = isinstance(self.data, np.ndarray)
        if copy is False and not (on_host and (dtype is None or np.dtype(dtype) == self.dtype)):
            raise ValueError(f"__array__: copy=False, but a tensor of dtype {self.dtype} on "
                             f"{self.device!r} cannot become a NumPy array of dtype {dtype} without a copy")
        array = self.data if on_host else backend.as_host(self.data)
        if dtype is not None:
            array = array.astype(dtype, copy=False)
        return array.copy() if copy and array is self.data else array

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __contains__(self, element):
        if not isinstance(element, (Tensor, numbers.Number)):
            raise TypeError(f"Tensor.__contains__ only supports a Tensor or a number, got {type(element).__name__}")
        return bool((self == element).data.any())

    # ----------------------------------------------------------------- operators
    def __add__(self, other): return F.add(self, other)
    def __radd__(self, other): return F.add(other, self)
    def __sub__(self, other): return F.sub(self, other)
    def __rsub__(self, other): return F.sub(other, self)
    def __mul__(self, other): return F.mul(self, other)
    def __rmul__(self, other): return F.mul(other, self)
    def __truediv__(self, other): return F.div(self, other)
    def __rtruediv__(self, other): return F.div(other, self)
    def __floordiv__(self, other): return F.floor_divide(self, other)
    def __rfloordiv__(self, other): return F.floor_divide(other, self)
    def __mod__(self, other): return F.remainder(self, other)
    def __rmod__(self, other): return F.remainder(other, self)
    def __pow__(self, other): return F.pow(self, other)
    def __rpow__(self, other): return F.pow(other, self)
    def __matmul__(self, other): return F.matmul(self, other)
    def __rmatmul__(self, other): return F.matmul(other, self)
    def __neg__(self): return F.neg(self)
    def __abs__(self): return F.abs(self)

    def __pos__(self):
        if self.dtype == bool:
            raise TypeError("the unary + operator is not supported on a bool tensor (as in PyTorch)")
        return self

    def __getitem__(self, index): return F.getitem(self, index)
    def __lt__(self, other): return F.compare(self, other, "less")
    def __le__(self, other): return F.compare(self, other, "less_equal")
    def __gt__(self, other): return F.compare(self, other, "greater")
    def __ge__(self, other): return F.compare(self, other, "greater_equal")
    def __eq__(self, other): return F.compare(self, other, "equal")
    def __ne__(self, other): return F.compare(self, other, "not_equal")
    def eq(self, other): return F.eq(self, other)
    def ne(self, other): return F.ne(self, other)
    def lt(self, other): return F.lt(self, other)
    def le(self, other): return F.le(self, other)
    def gt(self, other): return F.gt(self, other)
    def ge(self, other): return F.ge(self, other)
    def isnan(self): return F.isnan(self)
    def isinf(self): return F.isinf(self)
    def isfinite(self): return F.isfinite(self)
    def logical_not(self): return F.logical_not(self)
    def clone(self): return F.clone(self)

    # ----------------------------------------------------------------- arithmetic and elementwise
    def add(self, other, *, alpha=1): return F.add(self, other, alpha=alpha)
    def sub(self, other, *, alpha=1): return F.sub(self, other, alpha=alpha)
    def mul(self, other): return F.mul(self, other)
    def div(self, other): return F.div(self, other)
    def floor_divide(self, other): return F.floor_divide(self, other)
    def remainder(self, other): return F.remainder(self, other)
    def matmul(self, other): return F.matmul(self, other)
    def neg(self): return F.neg(self)
    def exp(self): return F.exp(self)
    def expm1(self): return F.expm1(self)
    def log(self): return F.log(self)
    def log1p(self): return F.log1p(self)
    def sqrt(self): return F.sqrt(self)
    def rsqrt(self): return F.rsqrt(self)
    def reciprocal(self): return F.reciprocal(self)
    def square(self): return F.square(self)
    def sin(self): return F.sin(self)
    def cos(self): return F.cos(self)
    def abs(self): return F.abs(self)
    def sign(self): return F.sign(self)
    def floor(self): return F.floor(self)
    def ceil(self): return F.ceil(self)
    def trunc(self): return F.trunc(self)
    def round(self, *, decimals=0): return F.round(self, decimals=decimals)
    def pow(self, exponent): return F.pow(self, exponent)
    def clamp(self, min=None, max=None): return F.clamp(self, min, max)
    def clip(self, min=None, max=None): return F.clamp(self, min, max)
    def where(self, condition, other): return F.where(condition, self, other)
    def relu(self): return F.relu(self)
    def sigmoid(self): return F.sigmoid(self)
    def tanh(self): return F.tanh(self)
    def maximum(self, other): return F.maximum(self, other)
    def minimum(self, other): return F.minimum(self, other)

    # ----------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False, *, dtype=None): return F.sum(self, dim, keepdim, dtype=dtype)
    def prod(self, dim=None, keepdim=False, *, dtype=None): return F.prod(self, dim, keepdim, dtype=dtype)
    def cumsum(self, dim, *, dtype=None): return F.cumsum(self, dim, dtype=dtype)
    def mean(self, dim=None, keepdim=False, *, dtype=None): return F.mean(self, dim, keepdim, dtype=dtype)
    def amax(self, dim=None, keepdim=False): return F.amax(self, dim, keepdim)
    def amin(self, dim=None, keepdim=False): return F.amin(self, dim, keepdim)
    def max(self, dim=None, keepdim=False): return F.max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return F.min(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return F.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return F.std(self, dim, unbiased, keepdim, correction=correction)

    def any(self, dim=None, keepdim=False): return F.any(self, dim, keepdim)
    def all(self, dim=None, keepdim=False): return F.all(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return F.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return F.argmin(self, dim, keepdim)
    def softmax(self, dim, dtype=None): return F.softmax(self, dim, dtype)
    def log_softmax(self, dim, dtype=None): return F.log_softmax(self, dim, dtype)
    def logsumexp(self, dim, keepdim=False): return F.logsumexp(self, dim, keepdim)

    # ----------------------------------------------------------------- shape
    def reshape(self, *shape): return F.reshape(self, *shape)
    def view(self, *shape): return F.reshape(self, *shape)
    def flatten(self, start_dim=0, end_dim=-1): return F.flatten(self, start_dim, end_dim)
    def permute(self, *dims): return F.permute(self, *dims)
    def transpose(self, dim0, dim1): return F.transpose(self, dim0, dim1)
    def squeeze(self, dim=None): return F.squeeze(self, dim)
    def unsqueeze(self, dim): return F.unsqueeze(self, dim)
    def expand(self, *sizes): return F.expand(self, *sizes)
    def split(self, split_size_or_sections, dim=0): return F.split(self, split_size_or_sections, dim)
    def chunk(self, chunks, dim=0): return F.chunk(self, chunks, dim)
    def flip(self, *dims): return F.flip(self, *dims)
    def contiguous(self): return self

    @property
    def T(self):
        return F.permute(self, *reversed(range(self.ndim)))

    def t(self):
        """The transpose of a matrix; a 0-d or 1-d tensor is returned as it is (PyTorch's ``t``)."""
        if self.ndim > 2:
            raise RuntimeError(f"t: expects a tensor with <= 2 dimensions, but this one has {self.ndim}; "
                               f"use transpose(dim0, dim1) or permute")
        return self.T


# ----------------------------------------------------------------------- creation helpers
def tensor(data, dtype=None, device=None, requires_grad=False):
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _shape(size):
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)


def _make(host_array, dtype, device, requires_grad):
    return Tensor(host_array, dtype=dtype or DEFAULT_DTYPE, device=device, requires_grad=requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape(size)), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape(size)), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    return _make(np.full(size, fill_value), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _make(np.eye(n, m), dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    values = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None and values.dtype.kind == "f":
        dtype = DEFAULT_DTYPE
    return Tensor(values, dtype=dtype, device=device, requires_grad=requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1) from the seeded global generator."""
    return _make(generator().random(_shape(size)), dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal from the seeded global generator."""
    return _make(generator().standard_normal(_shape(size)), dtype, device, requires_grad)


def _like(fn, t, dtype, device, requires_grad):
    return fn(*t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _like(ones, t, dtype, device, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return _like(rand, t, dtype, device, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return _like(randn, t, dtype, device, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


from . import functional as F  # noqa: E402  (functional builds on Tensor, so it comes after it)
