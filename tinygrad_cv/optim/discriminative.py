"""Discriminative learning rates: smaller steps for early layer groups, larger for the head (fastai)."""
import numpy as np


def even_mults(start, stop, n):
    """``n`` numbers from ``start`` to ``stop``, evenly spaced in log: start (stop/start)^(i/(n-1))."""
    if n == 1:
        return np.array([float(stop)])
    step = (stop / start) ** (1 / (n - 1))
    return np.array([start * step ** i for i in range(n)])


def lr_range(lr, n_groups):
    """Learning rates for ``n_groups`` layer groups from a number or a slice, as fastai's ``lr_range``:

    number            -> the same rate for every group
    slice(lo, hi)     -> even_mults(lo, hi, n_groups)
    slice(None, hi)   -> hi / 10 for every group but the last, hi for the last
    """
    if not isinstance(lr, slice):
        return np.full(n_groups, float(lr))
    if lr.stop is None or lr.step is not None:
        raise ValueError(f"lr_range: a learning-rate slice is slice(lo, hi) or slice(hi), got {lr}")
    if lr.start:
        return even_mults(float(lr.start), float(lr.stop), n_groups)
    return np.array([lr.stop / 10] * (n_groups - 1) + [float(lr.stop)])
