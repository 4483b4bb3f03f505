"""Mixed precision: float16 forward/backward on weight copies, float32 masters and loss, GradScaler's
dynamic loss scale (skip and halve on overflow, double after growth_interval clean steps)."""
import os

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv.train import Callback, Learner, LossScaler
from train_fixtures import make_learner


def test_loss_scaler_follows_grad_scaler():
    scaler = LossScaler(init_scale=2.0 ** 16, growth_interval=3)
    for _ in range(2):
        scaler.update(found_inf=False)
    assert scaler.scale == 2.0 ** 16
    scaler.update(found_inf=False)                  # third clean step in a row: double
    assert scaler.scale == 2.0 ** 17
    scaler.update(found_inf=False)
    scaler.update(found_inf=True)                   # overflow: halve and restart the count
    assert scaler.scale == 2.0 ** 16 and scaler.clean_steps == 0 and scaler.skipped_steps == 1
    for _ in range(2):
        scaler.update(found_inf=False)
    assert scaler.scale == 2.0 ** 16                # only two clean steps since the overflow
    assert LossScaler().scale == 65536.0 and LossScaler().growth_interval == 2000


class Probe(Callback):
    """Records dtypes seen inside the batch, after MixedPrecision (order 15) has acted."""

    order = 16

    def before_fit(self):
        self.weight_dtypes, self.pred_dtypes = set(), set()
        self.loss_dtypes, self.master_dtypes = set(), set()

    def after_pred(self):
        self.weight_dtypes.add(self.learn.model.w1.dtype)
        self.pred_dtypes.add(self.learn.pred.dtype)

    def after_loss(self):
        self.loss_dtypes.add(self.learn.loss.dtype)

    def after_backward(self):
        self.master_dtypes.add(self.learn.model.w1.dtype)


class Snapshot(Callback):
    """The float32 master weights before and after each training batch (runs before MixedPrecision)."""

    order = 1

    def before_fit(self):
        self.before, self.after = [], []

    def before_batch(self):
        if self.learn.training:
            self.before.append(self.learn.model.w1.numpy())

    def after_batch(self):
        if self.learn.training:
            self.after.append(self.learn.model.w1.numpy())


def test_forward_in_fp16_masters_and_loss_in_fp32():
    learn = make_learner().to_fp16()
    probe = Probe()
    learn.fit(1, lr=1e-2, cbs=[probe])
    assert probe.weight_dtypes == {np.dtype(np.float16)}          # the forward saw float16 copies
    assert probe.pred_dtypes == probe.loss_dtypes == {np.dtype(np.float32)}
    assert probe.master_dtypes == {np.dtype(np.float32)}          # the optimiser steps the masters
    assert all(p.dtype == np.float32 for p in learn.model.parameters())
    assert all(p.dtype == np.float32 for s in learn.opt.state.values() for p in s.values()
               if isinstance(p, np.ndarray))


class InjectOverflow(Callback):
    """Turns one float16 gradient into inf at training batch ``at`` (before the scaler looks at it)."""

    order = 14

    def __init__(self, at):
        self.at = at

    def after_backward(self):
        if self.learn.training and self.learn.train_iter == self.at:
            grad = self.learn.model.w2.grad
            assert grad.dtype == np.float16
            grad.data = grad.data.copy()
            grad.data[0, 0] = np.inf


def test_an_overflow_skips_exactly_that_step_and_halves_the_scale():
    learn = make_learner().to_fp16(init_scale=2.0 ** 10)  # small enough that nothing else overflows
    snapshot = Snapshot()
    learn.fit(1, lr=1e-2, cbs=[InjectOverflow(at=4), snapshot])
    assert len(snapshot.before) == len(snapshot.after) == 9
    changed = [not np.array_equal(b, a) for b, a in zip(snapshot.before, snapshot.after)]
    assert changed == [True] * 4 + [False] + [True] * (len(changed) - 5)
    scales = learn.recorder.loss_scales
    assert scales[:4] == [2.0 ** 10] * 4 and scales[4:] == [2.0 ** 9] * (len(scales) - 4)
    assert learn.mixed_precision.scaler.skipped_steps == 1


def test_the_scale_doubles_after_growth_interval_clean_steps(tmp_path):
    learn = make_learner(path=tmp_path).to_fp16(init_scale=8.0, growth_interval=4)
    learn.fit(1, lr=1e-3)
    assert learn.recorder.loss_scales == [8.0] * 3 + [16.0] * 4 + [32.0] * 2   # 9 batches
    learn.recorder.plot_loss_scale(fname=tmp_path / "loss_scale.png")
    assert os.path.getsize(tmp_path / "loss_scale.png") > 1000


def test_fp16_training_ends_within_five_percent_of_fp32():
    losses = {}
    for precision in ("fp32", "fp16"):
        learn = make_learner(seed=2)
        if precision == "fp16":
            learn.to_fp16()
        learn.fit_one_cycle(4, 1e-2)
        losses[precision] = learn.validate()["valid_loss"]
    assert losses["fp16"] == pytest.approx(losses["fp32"], rel=0.05)
    assert losses["fp32"] < 0.5  # and both actually learned


def test_the_loss_scale_survives_a_checkpoint(tmp_path):
    learn = make_learner(path=tmp_path).to_fp16(init_scale=1024.0)
    learn.fit(1, lr=1e-3, cbs=[InjectOverflow(at=0)])
    learn.save("mp")
    other = make_learner(path=tmp_path).to_fp16()
    other.load("mp")
    assert other.loss_scale == 512.0 and other.mixed_precision.scaler.skipped_steps == 1


def test_to_fp32_turns_it_off():
    learn = make_learner().to_fp16()
    learn.to_fp32()
    probe = Probe()
    learn.fit(1, lr=1e-2, cbs=[probe])
    assert probe.weight_dtypes == {np.dtype(np.float32)} and learn.loss_scale is None


def test_batch_norm_keeps_float32_weights_and_statistics_in_a_cnn():
    from tinygrad_cv import functional as F
    from train_fixtures import TinyCNN, image_dls
    seen = {}

    class Look(Callback):
        order = 16

        def after_pred(self):
            conv, bn = self.learn.model.body[0], self.learn.model.body[1]
            seen.setdefault("conv", set()).add(conv.weight.dtype)
            seen.setdefault("bn", set()).add(bn.weight.dtype)
            seen.setdefault("stats", set()).add(bn.running_mean.dtype)
            seen.setdefault("bn_out", set()).add(bn(conv(self.learn.xb[0])).dtype)

    tg.manual_seed(0)
    learn = Learner(image_dls(), TinyCNN(), F.cross_entropy, progress=False).to_fp16(init_scale=2.0 ** 8)
    learn.fit(2, lr=1e-2, cbs=[Look()])
    f16, f32 = np.dtype(np.float16), np.dtype(np.float32)
    assert seen == {"conv": {f16}, "bn": {f32}, "stats": {f32}, "bn_out": {f16}}
    assert all(p.dtype == f32 for p in learn.model.parameters())
    assert learn.recorder.values[-1]["valid_loss"] < learn.recorder.values[0]["train_loss"]


@pytest.mark.parametrize("device", ["cpu", "emu"])
@pytest.mark.parametrize("bad", [None, np.inf, -np.inf, np.nan])
def test_any_nonfinite_on_each_device(device, bad):
    """The overflow check: NumPy on the CPU, the non-finite-check kernel on 'emu' (and 'cuda')."""
    from tinygrad_cv.train.mixed_precision import any_nonfinite
    grads = [np.ones((3, 5), np.float32), np.zeros(7, np.float32)]
    if bad is not None:
        grads[1][4] = bad
    assert any_nonfinite([(device, g) for g in grads]) == (bad is not None)


# ----------------------------------------------------------------------------- skipped steps change nothing
class StateAround(Callback):
    """The whole training state (weights, buffers, optimiser state) before and after each training batch."""

    order = 1

    def before_fit(self):
        self.before, self.after = [], []

    def _state(self):
        opt = self.learn.opt.state_dict()
        return {**{f"model.{k}": v for k, v in self.learn.model.state_dict().items()},
                **{f"opt.{i}.{k}": np.array(v) for i, s in enumerate(opt["state"]) for k, v in s.items()}}

    def before_batch(self):
        if self.learn.training:
            self.before.append(self._state())

    def after_batch(self):
        if self.learn.training:
            self.after.append(self._state())


class OverflowAt(Callback):
    """Turns the first parameter's float16 gradient into inf at training batch ``at``."""

    order = 14

    def __init__(self, at):
        self.at = at

    def after_backward(self):
        if self.learn.training and self.learn.train_iter == self.at:
            grad = next(self.learn.model.parameters()).grad
            grad.data = np.full_like(grad.data, np.inf)


def _cnn_learner(scale_inputs=1.0, **fp16):
    from tinygrad_cv import functional as F
    from train_fixtures import TinyCNN, image_dls
    tg.manual_seed(0)
    dls = image_dls()
    for loader in (dls.train, dls.valid):
        loader.x = loader.x * np.float32(scale_inputs)
    opt_func = lambda params, lr: tg.optim.SGD(params, lr, momentum=0.9)  # noqa: E731 (state to compare)
    return Learner(dls, TinyCNN(), F.cross_entropy, opt_func=opt_func, progress=False).to_fp16(**fp16)


def test_a_skipped_step_leaves_weights_optimiser_state_and_batch_norm_statistics_untouched():
    learn = _cnn_learner(init_scale=2.0 ** 8)
    around = StateAround()
    learn.fit(1, lr=1e-2, cbs=[OverflowAt(at=2), around])
    assert learn.mixed_precision.scaler.skipped_steps == 1
    before, after = around.before[2], around.after[2]
    assert set(before) == set(after) and "model.body.1.running_mean" in before and "opt.0.momentum_buffer" in before
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    changed = around.after[3]["model.body.1.running_mean"] != around.before[3]["model.body.1.running_mean"]
    assert changed.any()  # a clean step still updates the statistics
    assert int(around.after[3]["model.body.1.num_batches_tracked"]) == 3  # batches 0, 1 and 3


def test_training_that_always_overflows_keeps_batch_norm_finite_and_says_so():
    learn = _cnn_learner(scale_inputs=1e6)  # beyond float16's range (65504): every forward overflows
    learn.mixed_precision.max_consecutive_skips = 3
    initial = {k: v.copy() for k, v in learn.model.state_dict().items()}
    with pytest.warns(RuntimeWarning) as record:
        learn.fit(1, lr=1e-2)
    messages = [str(w.message) for w in record]
    assert any("3 optimiser steps in a row were skipped for float16 overflow" in m for m in messages)
    assert any("no optimiser step was taken in this fit: all 5 were skipped" in m and "65504" in m
               for m in messages)
    for key, value in learn.model.state_dict().items():
        np.testing.assert_array_equal(value, initial[key], err_msg=key)  # no NaN statistics either
    assert learn.opt.state == {}


def test_a_fit_that_takes_steps_does_not_warn():
    import warnings
    learn = make_learner().to_fp16(init_scale=2.0 ** 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        learn.fit(1, lr=1e-2)


def test_the_scale_has_a_floor_and_never_grows_to_infinity():
    from tinygrad_cv.train.mixed_precision import MIN_SCALE
    scaler = LossScaler()
    for _ in range(1100):  # 2**16 halved 1100 times would reach 0.0 and 1 / scale ZeroDivisionError
        scaler.update(found_inf=True)
    assert scaler.scale == MIN_SCALE == 2.0 ** -24 and scaler.skipped_steps == 1100
    scaler.update(found_inf=False)
    assert scaler.consecutive_skips == 0
    top = LossScaler(init_scale=2.0 ** 127, growth_interval=1)
    top.update(found_inf=False)  # 2**128 is inf in float32
    assert top.scale == 2.0 ** 127


def test_a_fit_at_the_floor_does_not_divide_by_zero():
    learn = _cnn_learner(scale_inputs=1e6, init_scale=2.0 ** -23)
    learn.mixed_precision.max_consecutive_skips = 10 ** 6
    with pytest.warns(RuntimeWarning, match="no optimiser step"):
        learn.fit(1, lr=1e-2)
    assert learn.loss_scale == 2.0 ** -24


@pytest.mark.parametrize("kwargs,message", [
    (dict(init_scale=np.inf), r"init_scale must be a finite number >= 2\*\*-24, got inf"),
    (dict(init_scale=np.nan), r"init_scale must be .*got nan"),
    (dict(init_scale=0.0), r"init_scale must be .*got 0.0"),
    (dict(init_scale=-1.0), r"init_scale must be .*got -1.0"),
    (dict(growth_factor=1.0), r"growth_factor must be a finite number > 1, got 1.0"),
    (dict(growth_factor=np.inf), r"growth_factor must be .*got inf"),
    (dict(backoff_factor=1.0), r"backoff_factor must be a number in \(0, 1\), got 1.0"),
    (dict(backoff_factor=0.0), r"backoff_factor must be .*got 0.0"),
    (dict(growth_interval=0), r"growth_interval must be a positive integer, got 0"),
    (dict(growth_interval=2.5), r"growth_interval must be a positive integer, got 2.5"),
])
def test_to_fp16_checks_the_scaler_settings(kwargs, message):
    learn = make_learner()
    with pytest.raises(ValueError, match=message):
        learn.to_fp16(**kwargs)
    assert learn.mixed_precision is None
    learn.to_fp16(init_scale=2.0 ** 10)
    with pytest.raises(ValueError, match=message):
        learn.to_fp16(**kwargs)
    assert learn.loss_scale == 2.0 ** 10  # a refused change keeps the settings in use


def test_every_norm_layer_keeps_float32_weights_and_trains():
    """BatchNorm1d, LayerNorm and GroupNorm, like BatchNorm2d, stay float32 under fp16 training."""
    from tinygrad_cv import nn
    from train_fixtures import cross_entropy, make_dls

    class NormMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8),
                                      nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 8))
            self.group_norm, self.head = nn.GroupNorm(2, 8), nn.Linear(8, 3)

        def forward(self, x):
            h = self.body(x)
            return self.head(self.group_norm(h.reshape(h.shape[0], 8, 1)).reshape(h.shape[0], 8))

    tg.manual_seed(0)
    model = NormMLP()
    seen = set()

    class Look(Callback):
        order = 16

        def after_pred(self):
            seen.update(p.dtype for m in (model.body[1], model.body[4], model.group_norm) for p in m.parameters())
            seen.add(("linear", model.body[0].weight.dtype))

    learn = Learner(make_dls(), model, cross_entropy, progress=False).to_fp16(init_scale=2.0 ** 8)
    learn.fit(2, lr=1e-2, cbs=[Look()])
    assert seen == {np.dtype(np.float32), ("linear", np.dtype(np.float16))}
    assert learn.recorder.values[-1]["valid_loss"] < learn.recorder.values[0]["train_loss"]
