"""Callbacks: code that runs at fixed points of the training loop, so the loop itself stays short.

The Learner calls ``cb.<event>()`` on every callback, in increasing ``order``, at these events:

    before_fit
      before_epoch
        before_train
          before_batch  after_pred  after_loss  after_backward  after_step  after_batch   (per batch)
        after_train
        before_validate
          before_batch  after_pred  after_loss  after_batch                             (per batch)
        after_validate
      after_epoch
    after_fit                                  (always, even when training stops with an error)

A callback reads and writes the Learner's state through ``self.learn`` (learn.model, learn.opt,
learn.xb, learn.yb, learn.pred, learn.loss, learn.epoch, learn.iter, learn.training, ...), and steers
the loop by raising one of the Cancel exceptions below.
"""
from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ..optim import clip_grad_norm_
from ..optim.optimizer import check_number

if TYPE_CHECKING:
    from .learner import Learner


class CancelStepException(Exception):
    """Skip this batch's optimiser step (the gradients are still cleared)."""


class CancelValidException(Exception):
    """Skip this epoch's validation."""


class CancelFitException(Exception):
    """Stop training now (after_fit still runs)."""


class Callback:
    """Base class; override the events you need. ``order`` sorts callbacks (smaller runs first)."""

    order = 0
    learn: Learner = None  # type: ignore[assignment]  # None until a Learner adds the callback

    @property
    def name(self) -> str:
        """'early_stopping' for EarlyStoppingCallback: the snake-case class name without 'Callback'."""
        base = type(self).__name__.removesuffix("Callback")
        return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(base))

    def before_fit(self) -> None: pass
    def before_epoch(self) -> None: pass
    def before_train(self) -> None: pass
    def before_batch(self) -> None: pass
    def after_pred(self) -> None: pass
    def after_loss(self) -> None: pass
    def after_backward(self) -> None: pass
    def after_step(self) -> None: pass
    def after_batch(self) -> None: pass
    def after_train(self) -> None: pass
    def before_validate(self) -> None: pass
    def after_validate(self) -> None: pass
    def after_epoch(self) -> None: pass
    def after_fit(self) -> None: pass


class ParamScheduler(Callback):
    """Set optimiser hyper-parameters before each training batch from schedules of training progress:
    ``scheds`` maps a name ('lr', 'mom', ...) to f(pos) with pos = learn.pct_train in [0, 1)."""

    order = 10

    def __init__(self, scheds: Mapping[str, Callable[[float], Any]]) -> None:
        self.scheds = scheds

    def before_batch(self) -> None:
        if self.learn.training:
            for name, schedule in self.scheds.items():
                self.learn.opt.set_hyper(name, schedule(self.learn.pct_train))


class GradientClip(Callback):
    """Clip the gradients' global norm to ``max_norm`` after backward (after mixed precision unscales)."""

    order = 20

    def __init__(self, max_norm: float = 1.0, norm_type: float = 2.0) -> None:
        check_number(max_norm, "GradientClip: max_norm", low=0.0, low_open=True)
        self.max_norm, self.norm_type = max_norm, norm_type

    def after_backward(self) -> None:
        clip_grad_norm_(self.learn.model.parameters(), self.max_norm, self.norm_type)


class TrackerCallback(Callback):
    """Follows one value of the epoch table (``monitor``: 'valid_loss', 'train_loss' or a metric name) and
    sets ``new_best`` when it improves by more than ``min_delta``. Losses improve downwards, metrics
    upwards, unless ``comp`` (np.less or np.greater) says otherwise."""
    best: Any  # the best monitored value so far (None before the first fit)

    order = 60

    def __init__(self, monitor: str = "valid_loss", comp: Callable[[Any, Any], Any] | None = None,
                 min_delta: float = 0.0) -> None:
        check_number(min_delta, f"{type(self).__name__}: min_delta")
        if comp is not None and not callable(comp):
            raise TypeError(f"{type(self).__name__}: comp must be np.less, np.greater or another comparison, "
                            f"got {comp!r}")
        self.monitor = monitor
        self.comp = comp or (np.less if "loss" in monitor else np.greater)
        self.min_delta = -abs(min_delta) if self.comp is np.less else abs(min_delta)
        self.best, self.new_best = None, False

    def before_fit(self) -> None:
        self.best = np.inf if self.comp is np.less else -np.inf
        names = self.learn.column_names()
        if self.monitor not in names:
            raise ValueError(f"{type(self).__name__}: monitor={self.monitor!r} is not a column of the epoch "
                             f"table; choose one of {names[1:-1]}")

    def after_epoch(self) -> None:
        value = self.learn.epoch_values[self.monitor]
        self.new_best = value is not None and bool(self.comp(value - self.min_delta, self.best))
        if self.new_best:
            self.best = value


class EarlyStoppingCallback(TrackerCallback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""
    patience: int

    def __init__(self, monitor: str = "valid_loss", comp: Callable[[Any, Any], Any] | None = None,
                 min_delta: float = 0.0, patience: int = 1) -> None:
        super().__init__(monitor, comp, min_delta)
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
            raise ValueError(f"EarlyStoppingCallback: patience must be a positive integer (epochs without "
                             f"improvement before stopping), got {patience!r}")
        self.patience = patience

    def before_fit(self) -> None:
        super().before_fit()
        self.wait = 0

    def after_epoch(self) -> None:
        super().after_epoch()
        self.wait = 0 if self.new_best else self.wait + 1
        if self.wait >= self.patience:
            print(f"No improvement of {self.monitor} since epoch {self.learn.epoch - self.wait}: "
                  f"early stopping after epoch {self.learn.epoch}")
            raise CancelFitException()


class SaveModelCallback(TrackerCallback):
    """Save a checkpoint (``learn.save(fname)``) whenever ``monitor`` improves, and load the best one at
    the end of training. With ``every_epoch``, save ``{fname}_{epoch}`` after every epoch instead (for
    resuming) and load nothing at the end."""
    saved: str | os.PathLike[str] | None

    order = TrackerCallback.order + 1

    def __init__(self, monitor: str = "valid_loss", comp: Callable[[Any, Any], Any] | None = None,
                 min_delta: float = 0.0, fname: str = "model", every_epoch: bool = False) -> None:
        super().__init__(monitor, comp, min_delta)
        self.fname, self.every_epoch = fname, every_epoch
        self.saved = None

    def after_epoch(self) -> None:
        super().after_epoch()
        if self.every_epoch:
            self.learn.save(f"{self.fname}_{self.learn.epoch}")
        elif self.new_best:
            self.saved = self.learn.save(self.fname)

    def after_fit(self) -> None:
        if self.saved is not None:
            self.learn.load(self.fname, restore_rng=False)
