"""Mixed-precision training (Micikevicius et al., 2018), with PyTorch GradScaler's loss scaling.

Inside each batch the model runs in float16:
  - weights: float16 copies made from the float32 *master* weights at the start of the batch; the
    optimiser only ever sees (and updates) the masters;
  - normalisation layers keep float32 weights; batch norm computes its statistics in float32 and returns
    float16 (F.batch_norm does this for a float16 input), since batch statistics lose too much in float16;
  - the predictions are cast to float32, so the loss is computed in float32;
  - GEMMs and reductions accumulate in float32 (the ops do this for float16 inputs).

Small gradients underflow in float16, so the loss is multiplied by a scale S before backward and the
gradients divided by S (in float32) after it. If any gradient is then inf or NaN, the step is skipped and
S is halved (never below ``MIN_SCALE``); after ``growth_interval`` clean steps in a row S is doubled
(unless that would overflow float32).

A skipped step leaves all the training state as it was before the batch: the master weights, the
optimiser's state and the model's buffers (batch norm's running statistics and num_batches_tracked, which
the forward pass had already updated, are restored). The learning-rate schedule is not held back: the
Learner's schedules follow the number of batches (``learn.pct_train``), so a skipped step still advances
them, as with PyTorch's GradScaler, where user code calls ``scheduler.step()`` whether or not the step was
skipped. Training that skips ``max_consecutive_skips`` steps in a row, or a whole fit, warns.
"""
import math
import numbers
import warnings

import numpy as np

from ..backend import launch
from ..nn import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from ..tensor import Tensor
from .callbacks import Callback, CancelStepException


MIN_SCALE = 2.0 ** -24
"""The loss scale's floor: float16's smallest subnormal. Scaled that far down, a loss of order one already
sits at the bottom of float16's range, so halving further could only lose gradients (and would reach 0)."""


class LossScaler:
    """The dynamic loss scale, as torch.cuda.amp.GradScaler: start at ``init_scale``; on overflow multiply
    by ``backoff_factor`` (but never below MIN_SCALE); after ``growth_interval`` consecutive clean steps
    multiply by ``growth_factor`` (only while the result is finite in float32, as GradScaler).

    The arguments are checked as GradScaler's: init_scale finite and >= MIN_SCALE, growth_factor > 1,
    backoff_factor in (0, 1), growth_interval a positive integer."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self.scale = _checked(init_scale, "init_scale", MIN_SCALE, math.inf, "a finite number >= 2**-24")
        self.growth_factor = _checked(growth_factor, "growth_factor", 1.0, math.inf, "a finite number > 1",
                                      low_open=True)
        self.backoff_factor = _checked(backoff_factor, "backoff_factor", 0.0, 1.0, "a number in (0, 1)",
                                       low_open=True, high_open=True)
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, numbers.Integral) or \
                growth_interval < 1:
            raise ValueError(f"LossScaler: growth_interval must be a positive integer, got {growth_interval!r}")
        self.growth_interval, self.clean_steps, self.skipped_steps = int(growth_interval), 0, 0
        self.consecutive_skips = 0

    def update(self, found_inf):
        if found_inf:
            self.scale = max(self.scale * self.backoff_factor, MIN_SCALE)
            self.clean_steps = 0
            self.skipped_steps += 1
            self.consecutive_skips += 1
            return
        self.consecutive_skips = 0
        self.clean_steps += 1
        if self.clean_steps == self.growth_interval:
            grown = self.scale * self.growth_factor
            if grown <= float(np.finfo(np.float32).max):
                self.scale = grown
            self.clean_steps = 0

    def state_dict(self):
        return {"scale": self.scale, "clean_steps": self.clean_steps, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state):
        scale = _checked(state["scale"], "saved scale", MIN_SCALE, math.inf, "a finite number >= 2**-24")
        self.scale, self.clean_steps = scale, int(state["clean_steps"])
        self.skipped_steps, self.consecutive_skips = int(state["skipped_steps"]), 0


def _checked(value, name, low, high, what, low_open=False, high_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"LossScaler: {name} must be {what}, got {value!r}")
    return float(value)


NORM_LAYERS = (BatchNorm1d, BatchNorm2d, LayerNorm, GroupNorm)


def is_norm_layer(module):
    """Normalisation layers (fastai's ``norm_types``): kept in float32 under mixed precision (their
    statistics need the range) and kept trainable by ``freeze``."""
    return isinstance(module, NORM_LAYERS)


def _half(x):
    return x.half() if isinstance(x, Tensor) and x.dtype == np.float32 else x


class MixedPrecision(Callback):
    """Mixed-precision training as described in the module docstring; ``learn.to_fp16()`` adds it. The
    arguments are LossScaler's. After ``max_consecutive_skips`` skipped steps in a row, and at the end of a
    fit in which every step was skipped, it warns (RuntimeWarning) with the likely cause."""

    order = 15  # before gradient clipping, which must see unscaled gradients
    max_consecutive_skips = 50
    """From the default 2**16 the scale reaches its floor after 40 halvings: 50 overflows in a row mean
    that no scale helps."""

    def __init__(self, init_scale=2.0 ** 16, growth_interval=2000, growth_factor=2.0, backoff_factor=0.5):
        self.scaler = LossScaler(init_scale, growth_factor=growth_factor, backoff_factor=backoff_factor,
                                 growth_interval=growth_interval)
        self.masters = self.quiet = None
        self.saved_buffers, self.steps_taken, self.steps_skipped = [], 0, 0

    def state_dict(self):
        return self.scaler.state_dict()

    def load_state_dict(self, state):
        self.scaler.load_state_dict(state)

    def _half_params(self):
        """The float32 parameters outside normalisation layers: those that get float16 copies."""
        keep = {id(p) for m in self.learn.model.modules() if is_norm_layer(m) for p in m.parameters()}
        return [p for p in self.learn.model.parameters() if id(p) not in keep and p.dtype == np.float32]

    def _enter_half(self):
        if self.masters is not None:
            return
        self.quiet = np.errstate(over="ignore", invalid="ignore")  # fp16 overflow is expected: the scaler
        self.quiet.__enter__()                                     # handles it
        self.masters = [(p, p.data) for p in self._half_params()]
        for p, master in self.masters:
            p.data = master.astype(np.float16)

    def _leave_half(self):
        if self.masters is None:
            return
        for p, master in self.masters:
            p.data = master
        self.masters = None
        self.quiet.__exit__(None, None, None)

    def before_fit(self):
        self.steps_taken = self.steps_skipped = 0

    def before_batch(self):
        if self.learn.training:  # what a skipped step must put back: the forward updates the buffers
            self.saved_buffers = [(b, b.data.copy()) for _, b in self.learn.model.named_buffers()]
        self._enter_half()
        self.learn.xb = [_half(x) for x in self.learn.xb]

    def after_pred(self):
        if isinstance(self.learn.pred, Tensor) and self.learn.pred.dtype == np.float16:  # not a dict of losses
            self.learn.pred = self.learn.pred.float()

    def after_loss(self):
        if self.learn.training:
            self.learn.loss_grad = self.learn.loss * self.scaler.scale

    def after_backward(self):
        """Back to the float32 masters; their gradients unscaled in float32; skip the step on overflow."""
        self._leave_half()
        inverse, grads = np.float32(1.0 / self.scaler.scale), []
        for p in self.learn.model.parameters():
            if p.grad is not None:
                p.grad.data = p.grad.data.astype(np.float32) * inverse
                grads.append((p.device, p.grad.data))
        found_inf = any_nonfinite(grads)
        self.scaler.update(found_inf)
        if not found_inf:
            self.steps_taken += 1
            return
        for buffer, saved in self.saved_buffers:
            buffer.data[...] = saved
        self.steps_skipped += 1
        if self.scaler.consecutive_skips == self.max_consecutive_skips:
            warnings.warn(f"MixedPrecision: {self.scaler.consecutive_skips} optimiser steps in a row were "
                          f"skipped for float16 overflow (loss scale now {self.scaler.scale:g}); the model "
                          f"is not training. {_LIKELY_CAUSE}", RuntimeWarning, stacklevel=2)
        raise CancelStepException()

    def after_batch(self):
        self._leave_half()

    def after_fit(self):
        self._leave_half()
        self.saved_buffers = []
        if self.steps_skipped and not self.steps_taken:
            warnings.warn(f"MixedPrecision: no optimiser step was taken in this fit: all {self.steps_skipped} "
                          f"were skipped for float16 overflow (loss scale now {self.scaler.scale:g}), so the "
                          f"weights did not change. {_LIKELY_CAUSE}", RuntimeWarning, stacklevel=2)


_LIKELY_CAUSE = ("The likely cause: inputs, weights or activations beyond float16's range (|x| > 65504), e.g. "
                 "unnormalised inputs, or a loss that is already inf or NaN; normalise the inputs, or train "
                 "in float32 (learn.to_fp32()).")


def any_nonfinite(device_arrays):
    """True when any of the (device, array) pairs holds an inf or NaN: NumPy on the CPU; on 'cuda' and
    'emu' the non-finite-check kernel, one flag for all arrays and one read back."""
    on_cpu = [a for device, a in device_arrays if device == "cpu"]
    on_gpu = [a for device, a in device_arrays if device != "cpu"]
    return any(not bool(np.isfinite(a).all()) for a in on_cpu) or (bool(on_gpu) and launch.has_nonfinite(on_gpu))
