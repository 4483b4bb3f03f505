"""The backend seam: the one place that decides which array module (``xp``) holds a tensor's data.

Devices:
  "cpu"  - NumPy arrays.
  "cuda" - CuPy arrays; only when ``cupy.is_available()`` (``import cupy`` alone also succeeds
           on machines without a GPU, so it proves nothing).
  "emu"  - NumPy memory behind a CuPy-like device array (``emu_array.EmuArray``, whose array module is
           ``emu_xp``), with the hot CUDA kernels run on the CPU by the emulator: host/device mistakes
           raise as on CuPy, and device-to-host reads are counted (``sync_count``, ``count_syncs``).

Ops never import numpy or cupy themselves: they receive ``xp`` from here (through ``Function``).
"""
import numpy as np

from . import deferred
from .emu_array import EmuArray, count_syncs, emu_xp, sync_count  # noqa: F401  (the backend's API)

DEVICES = ("cpu", "cuda", "emu")
_cupy_module = None


def cuda_available():
    """True only when CuPy imports *and* sees a CUDA device."""
    try:
        import cupy
        return bool(cupy.is_available())
    except Exception:
        return False


def _cupy():
    global _cupy_module
    if _cupy_module is None:
        if not cuda_available():
            raise RuntimeError("device 'cuda' needs CuPy and a CUDA GPU; none was found "
                               "(cupy.is_available() is False). Use device='cpu' or device='emu'.")
        import cupy
        _cupy_module = cupy
    return _cupy_module


def nccl():
    """CuPy's NCCL bindings (``cupy.cuda.nccl``) and its current-stream getter, for the distributed
    module's GPU collectives; the backend stays the one place that imports CuPy."""
    cupy = _cupy()
    from cupy.cuda import nccl as nccl_module
    return nccl_module, cupy.cuda.get_current_stream


def check_device(device):
    """Validate a device name and return it (None means 'cpu')."""
    device = "cpu" if device is None else str(device)
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return device


def get_xp(device):
    """The array module for a device: numpy for 'cpu', emu_xp for 'emu', cupy for 'cuda'."""
    return _cupy() if device == "cuda" else emu_xp if device == "emu" else np


def is_device_array(x):
    """True for an ndarray of NumPy, an EmuArray, or (if loaded) a CuPy array."""
    return isinstance(x, (np.ndarray, EmuArray)) or (_cupy_module is not None and isinstance(x, _cupy_module.ndarray))


def device_of_array(x):
    """'cuda' for a CuPy array, 'emu' for an EmuArray, else 'cpu'."""
    if type(x) is EmuArray:
        return "emu"
    return "cuda" if _cupy_module is not None and isinstance(x, _cupy_module.ndarray) else "cpu"


def array_module(x):
    """The array module of an array: cupy for a CuPy array, emu_xp for an EmuArray, numpy for anything else."""
    return get_xp(device_of_array(x))


def as_host(x):
    """A host NumPy copy of ``x``: an array of any device, a Tensor (through ``__array__``), a list or a
    number. Never an alias of the caller's array. For a device array it is a synchronising read, and the
    device-side checks waiting in ``deferred`` are reported first."""
    device = device_of_array(x)
    if device != "cpu":
        checks = deferred.take_pending()  # device-side checks are reported at the next read
        if checks:
            xp = get_xp(device)
            deferred.raise_failed(checks, as_host(xp.stack([xp.asarray(f).reshape(()) for f, _ in checks])))
        return _cupy_module.asnumpy(x) if device == "cuda" else x.get()
    return np.array(x, copy=True)


def acc_dtype(dtype):
    """The dtype that sums and products of ``dtype`` accumulate in: float32 for float16 (which has too few
    bits to hold a long sum), the dtype itself for every other; always a ``numpy.dtype``, never None."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def move(x, device):
    """The array ``x`` on ``device`` (no copy when it is already there; a host array moved to a device
    is copied, as ``cupy.asarray`` copies it)."""
    if device == "cuda":
        return _cupy().asarray(as_host(x) if type(x) is EmuArray else x)
    source = device_of_array(x)
    if device == "emu":
        return x if source == "emu" else EmuArray(as_host(x) if source == "cuda" else np.array(x, copy=True))
    return np.asarray(x) if source == "cpu" else as_host(x)


def pinned_copy(x):
    """A copy of the host NumPy array ``x`` in page-locked (pinned) host memory, from which a GPU copies
    asynchronously (``cupyx.empty_pinned``; PyTorch's ``pin_memory``). Needs CuPy."""
    import cupyx
    pinned = cupyx.empty_pinned(x.shape, dtype=x.dtype)
    pinned[...] = x
    return pinned


def add_at(xp, target, index, values):
    """target[index] += values, with repeated indices accumulating (NumPy's ``add.at``)."""
    if xp is np or xp is emu_xp:
        xp.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)
    return target
