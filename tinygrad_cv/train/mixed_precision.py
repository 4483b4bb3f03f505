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
S is halved; after ``growth_interval`` clean steps in a row S is doubled.
"""
import numpy as np

from ..backend import launch
from ..nn import BatchNorm2d
from ..tensor import Tensor
from .callbacks import Callback, CancelStepException


class LossScaler:
    """The dynamic loss scale, as torch.cuda.amp.GradScaler: start at ``init_scale``; on overflow multiply
    by ``backoff_factor``; after ``growth_interval`` consecutive clean steps multiply by ``growth_factor``."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        if not init_scale > 0 or int(growth_interval) < 1:
            raise ValueError(f"LossScaler: need init_scale > 0 and growth_interval >= 1, got {init_scale} "
                             f"and {growth_interval}")
        self.scale, self.growth_factor, self.backoff_factor = float(init_scale), growth_factor, backoff_factor
        self.growth_interval, self.clean_steps, self.skipped_steps = int(growth_interval), 0, 0

    def update(self, found_inf):
        if found_inf:
            self.scale *= self.backoff_factor
            self.clean_steps = 0
            self.skipped_steps += 1
            return
        self.clean_steps += 1
        if self.clean_steps == self.growth_interval:
            self.scale *= self.growth_factor
            self.clean_steps = 0

    def state_dict(self):
        return {"scale": self.scale, "clean_steps": self.clean_steps, "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state):
        self.scale, self.clean_steps = float(state["scale"]), int(state["clean_steps"])
        self.skipped_steps = int(state["skipped_steps"])


def is_norm_layer(module):
    """Batch-norm layers: trained in float32 under mixed precision, and kept trainable by ``freeze``."""
    return isinstance(module, BatchNorm2d)


def _half(x):
    return x.half() if isinstance(x, Tensor) and x.dtype == np.float32 else x


class MixedPrecision(Callback):
    """Mixed-precision training as described in the module docstring; ``learn.to_fp16()`` adds it."""

    order = 15  # before gradient clipping, which must see unscaled gradients

    def __init__(self, init_scale=2.0 ** 16, growth_interval=2000):
        self.scaler = LossScaler(init_scale, growth_interval=growth_interval)
        self.masters = self.quiet = None

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

    def before_batch(self):
        self._enter_half()
        self.learn.xb = [_half(x) for x in self.learn.xb]

    def after_pred(self):
        if self.learn.pred.dtype == np.float16:
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
        if found_inf:
            raise CancelStepException()

    def after_batch(self):
        self._leave_half()

    def after_fit(self):
        self._leave_half()


def any_nonfinite(device_arrays):
    """True when any of the (device, array) pairs holds an inf or NaN: NumPy on the CPU; on 'cuda' and
    'emu' the non-finite-check kernel, one flag for all arrays and one read back."""
    on_cpu = [a for device, a in device_arrays if device == "cpu"]
    on_gpu = [a for device, a in device_arrays if device != "cpu"]
    return any(not bool(np.isfinite(a).all()) for a in on_cpu) or (bool(on_gpu) and launch.has_nonfinite(on_gpu))
