"""What a metric is: something that accumulates over the batches of an epoch and then has a value.

A ``Metric`` has ``reset()``, ``accumulate(pred, targ)`` (raw model outputs and targets of one batch)
and ``value``. A plain function ``f(pred, targ) -> float`` becomes one through ``AvgMetric``, which
weights each batch by its size, so the epoch's value is the mean over samples, not over batches.
"""
import abc
import functools

import numpy as np

from .. import backend
from ..tensor import Tensor


class Metric(abc.ABC):
    """Base class: subclasses define ``reset``, ``accumulate``, ``value`` and a ``name`` for tables."""

    name = "metric"

    @abc.abstractmethod
    def reset(self):
        """Forget what was accumulated (called before each epoch)."""

    @abc.abstractmethod
    def accumulate(self, pred, targ):
        """Add one batch's raw model outputs and targets."""

    @property
    @abc.abstractmethod
    def value(self):
        """The metric over everything accumulated since ``reset``."""


class AvgMetric(Metric):
    """The batch-size-weighted mean of ``func(pred, targ)`` over the epoch."""

    def __init__(self, func):
        self.func, self.name = func, function_name(func)
        self.reset()

    def reset(self):
        self.total, self.count = 0.0, 0

    def accumulate(self, pred, targ):
        n = len(targ)
        self.total += float(self.func(pred, targ)) * n
        self.count += n

    @property
    def value(self):
        return self.total / self.count if self.count else None


def as_metric(metric):
    """A ``Metric`` instance as is; a function (or functools.partial of one) wrapped in ``AvgMetric``."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, type) and issubclass(metric, Metric):
        return metric()
    if callable(metric):
        return AvgMetric(metric)
    raise TypeError(f"metrics: expected a Metric or a function f(pred, targ), got {type(metric).__name__}")


def function_name(func):
    """The name of a function, of the function inside a functools.partial, or of a callable's class."""
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__name__", type(func).__name__)


def as_array(x):
    """The array inside a Tensor (any device), or ``x`` as a NumPy array."""
    if isinstance(x, Tensor):
        return x.data
    return x if backend.is_device_array(x) else np.asarray(x)

