"""Checks of device data without a read back: CUDA's device-side assertions, in Python.

Testing a value that lives on a GPU (a class index out of range, a probability outside [0, 1]) at once
costs a device-to-host read, and each read stalls the GPU until all work queued before it is done. So
on "cuda" and "emu" a check's verdict stays on the device as a flag and is read back together with the
next value the host reads anyway (the Learner's loss, see ``Learner.read_loss``), or at the latest by
the next ``backend.as_host`` (``Tensor.numpy``, ``.item``, ``.tolist``); the error is raised then, as
a CUDA device-side assert is reported at the next synchronisation. On the CPU a check runs at once.
"""
import threading

import numpy as np

MAX_PENDING = 64  # a loop that never reads anything back still has its checks read every 64 of them
_local = threading.local()


def check(failed, error):
    """Raise ``error()`` if the one-element bool array ``failed`` is true: now for a host array, at the
    next read back for a device array. ``error`` builds the exception (it may read the device: an error
    path may be slow)."""
    if isinstance(failed, (np.ndarray, np.generic, bool)):
        if bool(failed):
            raise error()
        return
    pending().append((failed, error))
    if len(pending()) >= MAX_PENDING:
        from . import as_host
        as_host(failed)


def pending():
    """The checks of this thread not read back yet: (device flag, error) pairs."""
    if not hasattr(_local, "checks"):
        _local.checks = []
    return _local.checks


def take_pending():
    """The pending checks, leaving none: the caller reads their flags and calls ``raise_failed``."""
    checks, _local.checks = pending(), []
    return checks


def raise_failed(checks, values):
    """Raise the error of the first check whose read-back flag ``values[i]`` is set."""
    for (_, error), value in zip(checks, values):
        if value:
            raise error()
