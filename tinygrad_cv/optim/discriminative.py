"""Discriminative learning rates: smaller steps for early layer groups, larger for the head (fastai)."""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import numpy.typing as npt


def even_mults(start: float, stop: float, n: int) -> npt.NDArray[np.float64]:
    """``n`` numbers from ``start`` to ``stop``, evenly spaced in log: start (stop/start)^(i/(n-1))."""
    start, stop = _positive(start, "start", "even_mults"), _positive(stop, "stop", "even_mults")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"even_mults: n must be a positive integer, got {n!r}")
    if n == 1:
        return np.array([stop])
    step = (stop / start) ** (1 / (n - 1))
    return np.array([start * step ** i for i in range(n)])


def lr_range(lr: float | slice, n_groups: int) -> npt.NDArray[np.float64]:
    """Learning rates for ``n_groups`` layer groups from a number or a slice, as fastai's ``lr_range``
    (every rate finite and > 0):

    number            -> the same rate for every group
    slice(lo, hi)     -> even_mults(lo, hi, n_groups)
    slice(None, hi)   -> hi / 10 for every group but the last, hi for the last
    """
    if not isinstance(lr, slice):
        return np.full(n_groups, _positive(lr, "the learning rate", "lr_range"))
    if lr.stop is None or lr.step is not None:
        raise ValueError(f"lr_range: a learning-rate slice is slice(lo, hi) or slice(hi), got {lr}")
    if lr.start is not None:
        return even_mults(lr.start, lr.stop, n_groups)
    hi = _positive(lr.stop, "hi", "lr_range")
    return np.array([hi / 10] * (n_groups - 1) + [hi])


def _positive(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < math.inf:
        raise ValueError(f"{where}: {name} must be a finite number > 0, got {value!r}")
    return float(value)
