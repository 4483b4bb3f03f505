"""Window geometry shared by the ops and the kernel launcher: PyTorch's "an int or a pair" arguments
(``pair``) and a 2-D sliding window (``Window``: kernel, stride, padding, dilation) with its output size.
It lives in the backend, the bottom layer, because the launcher (``launch.py``) takes the same
PyTorch-style arguments as the ops above it."""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple


def pair(value: Any, fn: str, name: str, minimum: int) -> tuple[int, int]:
    """An int, a pair of ints or a one-element sequence of an int (PyTorch's ``(2,)``) as a pair, each
    at least ``minimum``. Bools and floats are refused, as PyTorch refuses them."""
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)
    items = (value, value) if is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else None
    if items is not None and len(items) == 1:
        items = items * 2
    if items is None or len(items) != 2 or not all(is_int(v) for v in items):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


class Window(NamedTuple):
    """The geometry of a 2-D sliding window (a convolution's or a pooling's): ``kernel`` (kh, kw),
    ``stride`` (sh, sw), ``padding`` ((top, bottom), (left, right)) and ``dilation`` (dh, dw).
    It unpacks as ``kernel, stride, padding, dilation = window``."""
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    @classmethod
    def from_args(cls, fn, kernel_size, stride=None, padding=0, dilation=1):
        """A Window from PyTorch-style arguments, each an int or a pair: ``stride`` None means the kernel
        size (pooling's default) and an int or pair padding pads both sides of its dim alike."""
        kernel = pair(kernel_size, fn, "kernel_size", 1)
        stride = kernel if stride is None else pair(stride, fn, "stride", 1)
        ph, pw = pair(padding, fn, "padding", 0)
        return cls(kernel, stride, ((ph, ph), (pw, pw)), pair(dilation, fn, "dilation", 1))

    def output_size(self, size):
        """(Ho, Wo) of the window swept over (H, W): Ho = (H + top + bottom - dh*(kh-1) - 1) // sh + 1."""
        return tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                     for n, k, s, (lo, hi), d in zip(size, self.kernel, self.stride, self.padding, self.dilation))
