"""Files: atomic writes, figures, and named arrays in the safetensors format.

    atomic_write(path, write)          write(tmp) to a temporary file beside ``path``, then rename it over
    atomic_write_bytes(path, data)     the same for bytes already in memory
    save_figure(figure, fname)         a matplotlib figure as the PNG ``fname``, atomically
    save_safetensors(state, path)      a dict of named arrays (or Tensors) to a .safetensors file, atomically
    load_safetensors(path)             the dict back, as fresh host NumPy arrays

safetensors (the format of the Hugging Face hub, torchvision exports and timm) is a JSON header naming
each array with its dtype, shape and byte range, followed by the raw bytes: any tool can list the names
without loading the data, and reading it can never run code (unlike a pickle). We use the ``safetensors``
package's NumPy API.

Temporary files are named ``.<name>.<host>.<pid>-<thread>.tmp`` beside the target. A writer that dies
mid-write (SIGKILL, power cut) cannot remove its own; ``atomic_write(..., durable=True)`` (used for weights
and checkpoints, the files large enough to matter) removes, in the target's folder, the temporary files
of writers on this host whose process no longer exists.
"""
import os
import re
import socket
import threading
from pathlib import Path

import numpy as np

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)-(?P<tid>\d+)\.tmp$")
# The dtypes a safetensors file can hold (NumPy has no bfloat16).
_DTYPES = {np.dtype(t) for t in ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64",
                                 "int64", "float16", "float32", "float64")}


def temp_path(path):
    """The temporary name this process and thread write ``path`` under before renaming it."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.{_HOST}.{os.getpid()}-{threading.get_ident()}.tmp")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder):
    """Remove the temporary files in ``folder`` left by dead writers on this host; return their paths.
    A file of a live process (or of another host, whose processes we cannot see) is kept."""
    removed = []
    for entry in os.scandir(folder or "."):
        match = _TEMP.match(entry.name)
        if match and match["host"] == _HOST and not _alive(int(match["pid"])):
            try:
                os.remove(entry.path)
                removed.append(entry.path)
            except FileNotFoundError:  # another process cleaned it first
                pass
    return removed


def atomic_write(path, write, durable=False):
    """Run ``write(tmp_path)`` and then rename ``tmp_path`` onto ``path``; return ``path`` as a Path.

    The rename is atomic on one file system, so a reader sees either the old file or the complete new
    one. The temporary file is removed if anything fails. With ``durable``, the data is flushed to the
    disk (fsync) before the rename, so a power cut cannot leave a renamed but empty file, and stale
    temporary files of dead writers in that folder are removed first (see the module docstring)."""
    path = os.fspath(path)
    tmp = temp_path(path)
    if durable:
        remove_stale_temps(os.path.dirname(path))
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return Path(path)


def atomic_write_bytes(path, data, durable=False):
    """Write the bytes ``data`` to ``path`` with ``atomic_write``; return ``path`` as a Path."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), durable=durable)


def save_figure(figure, fname):
    """Write a matplotlib ``figure`` as the PNG ``fname`` (100 dpi, cropped to its contents) with
    ``atomic_write``, creating the folder; return ``fname`` as a Path."""
    fname = os.fspath(fname)
    os.makedirs(os.path.dirname(os.path.abspath(fname)), exist_ok=True)
    return atomic_write(fname, lambda tmp: figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))


def to_host_array(value, where):
    """A fresh contiguous host NumPy copy of an array, a Tensor or a device array, for storing."""
    from . import backend
    from .tensor import Tensor
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not backend.is_device_array(value):
        raise TypeError(f"{where}: expected an array or a Tensor, got {type(value).__name__}")
    array = backend.as_host(value)
    if array.dtype not in _DTYPES:
        raise TypeError(f"{where}: dtype {array.dtype} cannot be stored in a safetensors file; the dtypes are "
                        f"bool, (u)int8-64 and float16/32/64 (store strings and objects elsewhere)")
    return array if array.flags.c_contiguous else array.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)


def save_safetensors(state_dict, path, metadata=None):
    """Write ``state_dict`` ({name: array or Tensor}) to the safetensors file ``path``, atomically (a
    temporary file in the same folder, fsync, rename; the temporary file is removed on any failure).
    ``metadata`` is an optional {str: str} stored in the header. Returns ``path`` as a Path."""
    from safetensors.numpy import save
    where = f"save_safetensors({os.fspath(path)!r})"
    if not isinstance(state_dict, dict):
        raise TypeError(f"{where}: expected a dict of named arrays, got {type(state_dict).__name__}")
    bad = [k for k in state_dict if not isinstance(k, str)]
    if bad:
        raise TypeError(f"{where}: names must be strings, got {bad[:3]}")
    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError(f"{where}: metadata must map strings to strings")
    arrays = {name: to_host_array(value, f"{where}: {name!r}") for name, value in state_dict.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return atomic_write_bytes(path, save(arrays, metadata=metadata), durable=True)


def read_safetensors(path):
    """(dict of arrays, header metadata dict or {}) from the safetensors file ``path``. The arrays are
    fresh, writable host NumPy arrays. A file that is empty, truncated, not safetensors, or whose header
    disagrees with its contents raises ValueError naming the file."""
    from safetensors import SafetensorError, safe_open
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_safetensors: {path!r} does not exist or is not a file")
    try:
        with safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            arrays = {name: np.array(f.get_tensor(name)) for name in f.keys()}
    except SafetensorError as error:
        size = os.path.getsize(path)
        raise ValueError(f"load_safetensors: {path!r} ({size} bytes) is not a valid safetensors file ({error}); "
                         f"it may be truncated, empty or of another format. Re-save or re-download it") from None
    return arrays, metadata


def load_safetensors(path):
    """{name: NumPy array} from the safetensors file ``path`` (see ``read_safetensors``)."""
    return read_safetensors(path)[0]
