"""The device array of "emu": NumPy memory that behaves like a CuPy array where host/device mistakes show.

On "emu" the data live in NumPy arrays, but the code that handles them must be code that would also
run on a GPU. So ``xp`` for "emu" is ``emu_xp``, a module-like namespace over NumPy whose arrays are
``EmuArray`` wrappers, and the mistakes CuPy turns into errors are errors here too:

- ``np.asarray(device_array)`` (``__array__``) raises ``TypeError``, as CuPy's implicit conversion does;
  ``.get()``, ``emu_xp.asnumpy`` and ``backend.as_host`` are the explicit ways to the host;
- a host NumPy array with ``ndim > 0`` mixed into a device operation (a ufunc, an ``xp`` function,
  ``x[...] = host``) raises ``TypeError``; Python and NumPy scalars (and 0-d arrays) are fine there;
- a host array passed to a kernel launch raises (``device_kernel``); Python scalars passed to a kernel
  are refused by the emulator itself, because CuPy would pass them as 64-bit values;
- results are device arrays, even 0-d ones (``x.sum()`` is a 0-d array, not a NumPy scalar);
- integer-array indices out of bounds wrap around, as CuPy's indexing does, where NumPy raises IndexError
  (a check of such indices must be an explicit one: see ``backend.deferred``).

Every synchronising read, one that makes the host wait for the device on a GPU, is counted in a
per-thread counter (``sync_count``, ``count_syncs``): ``.get()``, ``asnumpy``, ``.item()``, ``float``,
``int``, ``bool``, ``operator.index``, ``.tolist()``, printing, and the operations whose output size
depends on the data (``nonzero``, ``flatnonzero``, ``argwhere``, ``unique``, ``bincount``, indexing
with a boolean mask), which CuPy can only size by reading a count back.
"""
import functools
import operator
import threading
import types

import numpy as np

_local = threading.local()

# Functions whose output shape depends on the values: CuPy reads a size back from the device.
DATA_DEPENDENT = frozenset({"nonzero", "flatnonzero", "argwhere", "unique", "bincount"})
# The explicit host-to-device copies, the only calls that may take a host array.
TRANSFERS = frozenset({"array", "asarray", "asanyarray"})


# --------------------------------------------------------------------------------------- sync counting
def sync_count():
    """Device-to-host reads made so far by this thread."""
    return getattr(_local, "syncs", 0)


def _sync():
    _local.syncs = sync_count() + 1


class count_syncs:
    """``with count_syncs() as syncs: ...`` then ``syncs.count``: the reads made by this thread inside."""

    def __enter__(self):
        self._start, self._end = sync_count(), None
        return self

    def __exit__(self, *exc):
        self._end = sync_count()

    @property
    def count(self):
        return (sync_count() if self._end is None else self._end) - self._start


# --------------------------------------------------------------------------------------- wrapping
def _host_array_error(where, array):
    return TypeError(f"{where}: a host NumPy array (shape {array.shape}, {array.dtype}) was mixed into an "
                     f"operation on device 'emu'; CuPy raises here too (Unsupported type numpy.ndarray). "
                     f"Move it first: backend.move(array, device) or xp.asarray(array)")


def _unwrap(value, where, allow_host=False):
    """``value`` with every EmuArray replaced by its NumPy array, refusing host arrays of ndim > 0."""
    if type(value) is EmuArray:
        return value._a
    if isinstance(value, np.ndarray):
        if value.ndim > 0 and not allow_host:
            raise _host_array_error(where, value)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where, allow_host) for v in value)
    return value


def _wrap(value):
    """NumPy results as device arrays: ndarrays and NumPy scalars (as 0-d arrays, like CuPy's)."""
    if isinstance(value, np.ndarray):
        return EmuArray(value)
    if isinstance(value, np.generic):
        return EmuArray(np.asarray(value))
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple, such as unique_counts'
        return type(value)(*map(_wrap, value))
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(v) for v in value)
    return value


def _apply(function, name, args, kwargs, allow_host=False):
    args = _unwrap(args, name, allow_host)
    kwargs = {k: _unwrap(v, name, allow_host) for k, v in kwargs.items()}
    if name in DATA_DEPENDENT:
        _sync()
    return _wrap(function(*args, **kwargs))


def _device_function(function, name):
    @functools.wraps(function)
    def call(*args, **kwargs):
        return _apply(function, name, args, kwargs, allow_host=name in TRANSFERS)
    return call


class _Ufunc:
    """A NumPy ufunc on device arrays (``xp.add(a, b)``, ``xp.add.at(...)``, ``xp.maximum.reduce``)."""

    def __init__(self, ufunc):
        self._ufunc, self.__name__ = ufunc, ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _apply(self._ufunc, self.__name__, args, kwargs)

    def __getattr__(self, method):
        value = getattr(self._ufunc, method)
        return _device_function(value, f"{self.__name__}.{method}") if callable(value) else value


class _Namespace(types.SimpleNamespace):
    """A module-like view of a NumPy module: its functions on device arrays, its types and constants as is."""

    def __init__(self, module):
        super().__init__(_module=module, __name__=f"tinygrad_cv.emu.{module.__name__}")

    def __getattr__(self, name):
        if name == "ndarray":
            return EmuArray
        value = getattr(self._module, name)
        if isinstance(value, types.ModuleType):
            value = _Namespace(value)
        elif isinstance(value, np.ufunc):
            value = _Ufunc(value)
        elif callable(value) and not isinstance(value, type):
            value = _device_function(value, name)
        setattr(self, name, value)
        return value

    def asnumpy(self, array):
        """A host copy of a device array (a synchronising read)."""
        return array.get() if type(array) is EmuArray else np.array(array, copy=True)

    def __repr__(self):
        return f"<emu array module over {self._module.__name__}>"


emu_xp = _Namespace(np)


# --------------------------------------------------------------------------------------- the array
def _operator(ufunc, reflected=False):
    def method(self, other):
        if not isinstance(other, (EmuArray, np.ndarray, np.generic, int, float, bool, complex)):
            return NotImplemented
        return _apply(ufunc, ufunc.__name__, (other, self) if reflected else (self, other), {})
    return method


def _inplace(ufunc):
    def method(self, other):
        _apply(ufunc, ufunc.__name__, (self, other), {"out": (self,)})
        return self
    return method


def _unary(ufunc):
    def method(self):
        return _apply(ufunc, ufunc.__name__, (self,), {})
    return method


class EmuArray:
    """A device array of "emu": a NumPy array ``_a`` seen only through CuPy's rules (see the module)."""

    __slots__ = ("_a",)

    def __init__(self, array):
        self._a = array

    # ------------------------------------------------------------- NumPy protocols
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (device 'emu', as on CuPy). "
                        "Use .get(), or backend.as_host(array), to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:
            kwargs["out"] = tuple(kwargs["out"])
        return _apply(getattr(ufunc, method), ufunc.__name__, inputs, kwargs)

    def __array_function__(self, function, types, args, kwargs):
        return _apply(function, function.__name__, args, kwargs)

    # ------------------------------------------------------------- attributes and methods
    def __getattr__(self, name):
        if name == "_a" or (name.startswith("__") and name not in ("__copy__", "__deepcopy__")):
            raise AttributeError(name)  # no __array_interface__ etc.: NumPy must not read the memory
        value = getattr(self._a, name)
        if callable(value):
            return _device_function(value, f"ndarray.{name}")
        return _wrap(value) if isinstance(value, np.ndarray) else value

    @property
    def shape(self):
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key):
        key = _unwrap(key, "ndarray.__getitem__", allow_host=True)
        if any(getattr(k, "dtype", None) == np.bool_ and np.ndim(k) > 0
               for k in (key if isinstance(key, tuple) else (key,))):
            _sync()  # a boolean mask: the output size is read back from the device
        return _wrap(self._a[_wrapped_indices(key, self.shape)])

    def __setitem__(self, key, value):
        key = _wrapped_indices(_unwrap(key, "ndarray.__setitem__", allow_host=True), self.shape)
        self._a[key] = _unwrap(value, "ndarray.__setitem__")

    # ------------------------------------------------------------- synchronising reads
    def get(self):
        """A host (NumPy) copy: the explicit device-to-host read."""
        _sync()
        return self._a.copy()

    def item(self, *args):
        _sync()
        return self._a.item(*args)

    def tolist(self):
        _sync()
        return self._a.tolist()

    def tobytes(self, order="C"):
        _sync()
        return self._a.tobytes(order)

    def __bool__(self):
        _sync()
        return bool(self._a)

    def __float__(self):
        _sync()
        return float(self._a)

    def __int__(self):
        _sync()
        return int(self._a)

    def __index__(self):
        _sync()
        return operator.index(self._a)

    def __repr__(self):
        _sync()
        return repr(self._a)

    def __str__(self):
        _sync()
        return str(self._a)

    def __format__(self, spec):
        _sync()
        return format(self._a, spec)

    # ------------------------------------------------------------- operators
    __add__, __radd__, __iadd__ = _operator(np.add), _operator(np.add, True), _inplace(np.add)
    __sub__, __rsub__, __isub__ = _operator(np.subtract), _operator(np.subtract, True), _inplace(np.subtract)
    __mul__, __rmul__, __imul__ = _operator(np.multiply), _operator(np.multiply, True), _inplace(np.multiply)
    __truediv__, __rtruediv__ = _operator(np.true_divide), _operator(np.true_divide, True)
    __itruediv__ = _inplace(np.true_divide)
    __floordiv__, __rfloordiv__ = _operator(np.floor_divide), _operator(np.floor_divide, True)
    __ifloordiv__ = _inplace(np.floor_divide)
    __mod__, __rmod__, __imod__ = _operator(np.remainder), _operator(np.remainder, True), _inplace(np.remainder)
    __pow__, __rpow__, __ipow__ = _operator(np.power), _operator(np.power, True), _inplace(np.power)
    __matmul__, __rmatmul__ = _operator(np.matmul), _operator(np.matmul, True)
    __and__, __rand__, __iand__ = _operator(np.bitwise_and), _operator(np.bitwise_and, True), \
        _inplace(np.bitwise_and)
    __or__, __ror__, __ior__ = _operator(np.bitwise_or), _operator(np.bitwise_or, True), _inplace(np.bitwise_or)
    __xor__, __rxor__, __ixor__ = _operator(np.bitwise_xor), _operator(np.bitwise_xor, True), \
        _inplace(np.bitwise_xor)
    __lshift__, __rshift__ = _operator(np.left_shift), _operator(np.right_shift)
    __eq__, __ne__ = _operator(np.equal), _operator(np.not_equal)
    __lt__, __le__ = _operator(np.less), _operator(np.less_equal)
    __gt__, __ge__ = _operator(np.greater), _operator(np.greater_equal)
    __neg__, __pos__, __abs__, __invert__ = _unary(np.negative), _unary(np.positive), _unary(np.absolute), \
        _unary(np.invert)
    __hash__ = None


def _wrapped_indices(key, shape):
    """Integer-array indices taken modulo the axis length, as CuPy's gather and scatter do (they wrap out-of-bounds
    indices around where NumPy raises IndexError), for keys made only of ints and integer arrays."""
    parts = key if isinstance(key, tuple) else (key,)
    if len(parts) > len(shape) or not all(isinstance(k, (int, np.integer)) or
                                          (isinstance(k, np.ndarray) and k.dtype.kind in "iu") for k in parts):
        return key
    if not any(isinstance(k, np.ndarray) for k in parts):
        return key
    wrapped = tuple(k % n if isinstance(k, np.ndarray) else k for k, n in zip(parts, shape))
    return wrapped if isinstance(key, tuple) else wrapped[0]


def device_kernel(kernel):
    """A kernel launch (``kernel(grid, block, args)``) that takes device arrays, as a CuPy RawKernel does:
    EmuArrays are handed to the emulator as their NumPy memory, and a host array among device arrays
    raises. (Launches made only with NumPy arrays, as the kernel tests make them, pass through.)"""
    @functools.wraps(kernel)
    def launch(grid, block, args, **options):
        args = tuple(args)
        if any(type(a) is EmuArray for a in args):
            for a in args:
                if isinstance(a, np.ndarray) and a.ndim > 0:
                    raise _host_array_error(f"{getattr(kernel, 'name', 'kernel')} (kernel launch)", a)
            args = tuple(a._a if type(a) is EmuArray else a for a in args)
        return kernel(grid, block, args, **options)
    return launch
