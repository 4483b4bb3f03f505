"""PyTorch's learning-rate schedulers (StepLR ... ReduceLROnPlateau): closed-form values, hand-computed
steps, state_dict round trips and argument checks, and step-by-step equality with torch.optim.lr_scheduler
when torch is installed."""
import json
import math

import numpy as np
import pytest
from error_types import raised

import tinygrad_cv as tg
from tinygrad_cv import optim
from tinygrad_cv.nn import Parameter
from tinygrad_cv.optim import lr_scheduler
from tinygrad_cv.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, LRScheduler,
                                            MultiStepLR, OneCycleLR, ReduceLROnPlateau, SequentialLR, StepLR)

BASE_LRS = [0.1, 0.05, 0.2]
STEPS = 35


def sgd(lrs=BASE_LRS, module=None):
    """SGD with one group per rate, ours or (``module`` = torch) PyTorch's."""
    if module is None:
        return optim.SGD([{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs], lr=0.1, momentum=0.9)
    return module.optim.SGD([{"params": [module.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs],
                            lr=0.1, momentum=0.9)


def trace(opt, scheduler, steps=STEPS):
    """Per step: every group's rate as the optimiser would use it, and get_last_lr()."""
    rows = []
    for _ in range(steps):
        lrs = [group["lr"] for group in opt.param_groups]
        assert scheduler.get_last_lr() == lrs
        rows.append(lrs)
        opt.step()
        scheduler.step()
    return np.array(rows)


def closed_form(rule, steps=STEPS, lrs=BASE_LRS):
    """rule(base_lr, t) for every step t and group."""
    return np.array([[rule(base, t) for base in lrs] for t in range(steps)])


# ----------------------------------------------------------------------------- closed forms
CLOSED_FORMS = [
    ("StepLR", lambda o, m: m.StepLR(o, step_size=4, gamma=0.5), lambda b, t: b * 0.5 ** (t // 4)),
    ("StepLR default gamma", lambda o, m: m.StepLR(o, 3), lambda b, t: b * 0.1 ** (t // 3)),
    ("MultiStepLR", lambda o, m: m.MultiStepLR(o, [3, 7, 7, 20], gamma=0.3),
     lambda b, t: b * 0.3 ** sum(m <= t for m in (3, 7, 7, 20))),
    ("ExponentialLR", lambda o, m: m.ExponentialLR(o, 0.9), lambda b, t: b * 0.9 ** t),
    ("CosineAnnealingLR", lambda o, m: m.CosineAnnealingLR(o, 10, eta_min=0.001),
     lambda b, t: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * t / 10)) / 2),
    ("CosineAnnealingLR to 0", lambda o, m: m.CosineAnnealingLR(o, 7),
     lambda b, t: b * (1 + math.cos(math.pi * t / 7)) / 2),
    ("LinearLR warm-up", lambda o, m: m.LinearLR(o, 0.25, 1.0, 8), lambda b, t: b * (0.25 + 0.75 * min(t, 8) / 8)),
    ("LinearLR decay", lambda o, m: m.LinearLR(o, 1.0, 0.1, 12), lambda b, t: b * (1.0 - 0.9 * min(t, 12) / 12)),
    ("LinearLR defaults", lambda o, m: m.LinearLR(o), lambda b, t: b * (1 / 3 + 2 / 3 * min(t, 5) / 5)),
    ("LambdaLR", lambda o, m: m.LambdaLR(o, lambda e: 1 / (1 + e)), lambda b, t: b / (1 + t)),
    ("SequentialLR", lambda o, m: m.SequentialLR(o, [m.LinearLR(o, 0.1, 1.0, 5), m.CosineAnnealingLR(o, 10, 0.01),
                                                     m.StepLR(o, 3)], milestones=[5, 15]),
     lambda b, t: (b * (0.1 + 0.9 * t / 5) if t < 5 else
                   0.01 + (b - 0.01) * (1 + math.cos(math.pi * (t - 5) / 10)) / 2 if t < 15 else
                   b * 0.1 ** ((t - 15) // 3))),
]


@pytest.mark.parametrize("name,make,rule", CLOSED_FORMS, ids=[c[0] for c in CLOSED_FORMS])
def test_schedules_follow_their_closed_forms(name, make, rule):
    opt = sgd()
    np.testing.assert_allclose(trace(opt, make(opt, lr_scheduler)), closed_form(rule), rtol=1e-12, atol=1e-15)


def test_lambda_lr_takes_one_function_per_group():
    opt = sgd()
    sched = LambdaLR(opt, [lambda e: 0.95 ** e, lambda e: 1 / (e + 1), lambda e: e // 3 + 1])
    rows = trace(opt, sched, 10)
    t = np.arange(10)
    np.testing.assert_allclose(rows, np.stack([0.1 * 0.95 ** t, 0.05 / (t + 1), 0.2 * (t // 3 + 1)], 1), rtol=1e-12)


def test_step_lr_by_hand():
    # 0.1 for steps 0..2, 0.05 for 3..5, 0.025 from step 6
    opt = sgd([0.1])
    assert trace(opt, StepLR(opt, 3, gamma=0.5), 7)[:, 0].tolist() == [0.1] * 3 + [0.05] * 3 + [0.025]


def test_chainable_schedules_carry_a_change_made_from_outside():
    # as PyTorch: each step multiplies the group's current rate
    opt = sgd([0.1])
    sched = ExponentialLR(opt, 0.5)
    sched.step()
    opt.param_groups[0]["lr"] = 1.0
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.5 and sched.get_last_lr() == [0.5]


def test_construction_records_initial_lr_and_base_lrs():
    opt = sgd()
    sched = LinearLR(opt, start_factor=0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == BASE_LRS == sched.base_lrs
    assert sched.last_epoch == 0 and sched.get_last_lr() == [0.05, 0.025, 0.1]
    assert isinstance(sched, LRScheduler)
    second = StepLR(opt, 2)  # a second schedule keeps the first's initial_lr, as PyTorch
    assert second.base_lrs == BASE_LRS


# ----------------------------------------------------------------------------- ReduceLROnPlateau
def test_plateau_by_hand():
    # patience 2: three steps in a row without a new best (beyond the 0.1 relative threshold) reduce the
    # rate by 10; the cooldown of 1 then ignores one bad step.
    opt = sgd([1.0])
    sched = ReduceLROnPlateau(opt, factor=0.1, patience=2, threshold=0.1, cooldown=1)
    metrics = [10.0, 9.5, 9.2, 9.1, 9.6, 9.7, 9.8, 9.9, 5.0]
    lrs = []
    for m in metrics:
        sched.step(m)
        lrs.append(opt.param_groups[0]["lr"])
    # 9.5, 9.2, 9.1 are each within 10% of the best 10 -> bad 1, 2, 3 -> reduce at the 4th metric;
    # 9.6 falls in the cooldown (not counted), 9.7, 9.8, 9.9 are bad 1, 2, 3 -> reduce at the 8th; 5.0 is a best
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01], rel=1e-12)
    assert sched.num_bad_epochs == 0 and sched.cooldown_counter == 0
    assert sched.best == 5.0 and sched.get_last_lr() == pytest.approx([0.01])


def test_plateau_max_mode_abs_threshold_min_lr_and_eps():
    opt = sgd([1.0, 0.002])
    sched = ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=0, threshold=0.5, threshold_mode="abs",
                              min_lr=[0.3, 0.0], eps=0.0015)
    for metric, expected in [(1.0, [1.0, 0.002]), (1.4, [0.5, 0.002]), (2.0, [0.5, 0.002]), (2.1, [0.3, 0.002])]:
        sched.step(tg.tensor(metric))  # a 0-d Tensor metric, as a loss would be
        # group 1: 0.002 * 0.5 = 0.001 changes it by 0.001 <= eps, so it is kept
        assert [g["lr"] for g in opt.param_groups] == pytest.approx(expected)


# ----------------------------------------------------------------------------- state_dict
ROUND_TRIPS = [c[1] for c in CLOSED_FORMS] + [
    lambda o, m: m.OneCycleLR(o, [1.0, 0.5, 0.2], total_steps=40),
    lambda o, m: m.SequentialLR(o, [m.ExponentialLR(o, 0.8), m.MultiStepLR(o, [0, 4], 0.5)], [6]),
]


@pytest.mark.parametrize("make", ROUND_TRIPS)
def test_state_dict_round_trip_continues_identically(make):
    opt = sgd()
    sched = make(opt, lr_scheduler)
    trace(opt, sched, 9)
    state = json.loads(json.dumps(sched.state_dict()))  # plain values: as a checkpoint stores them
    other_opt = sgd([0.3, 0.3, 0.3])
    other = make(other_opt, lr_scheduler)
    other_opt.load_state_dict(opt.state_dict())
    other.load_state_dict(state)
    np.testing.assert_array_equal(trace(other_opt, other, 20), trace(opt, sched, 20))


def test_plateau_state_dict_round_trip():
    opt, other_opt = sgd(), sgd()
    sched, other = ReduceLROnPlateau(opt, patience=1), ReduceLROnPlateau(other_opt, patience=5)
    for m in (3.0, 2.0, 2.0):
        sched.step(m)
    other.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    other_opt.load_state_dict(opt.state_dict())
    assert other.patience == 1 and other.best == 2.0 and other.num_bad_epochs == 1
    for scheduler in (sched, other):
        scheduler.step(2.0)
    assert other.get_last_lr() == sched.get_last_lr() == pytest.approx([0.01, 0.005, 0.02])


def test_lambda_state_dict_saves_a_callable_objects_attributes():
    class Warmup:
        def __init__(self):
            self.scale = 1.0

        def __call__(self, epoch):
            return self.scale * (epoch + 1)

    fn, other_fn = Warmup(), Warmup()
    fn.scale = 0.5
    sched = LambdaLR(sgd([1.0]), fn)
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"scale": 0.5}]
    assert LambdaLR(sgd([1.0]), lambda e: 1.0).state_dict()["lr_lambdas"] == [None]
    LambdaLR(sgd([1.0]), other_fn).load_state_dict(state)
    assert other_fn.scale == 0.5


def test_load_state_dict_is_all_or_nothing():
    opt = sgd()
    sched = StepLR(opt, 3, gamma=0.5)
    sched.step()
    before = sched.state_dict()
    with pytest.raises(ValueError, match=r"StepLR: gamma must be a finite number in \(0.0, inf\), got -1.0"):
        sched.load_state_dict(dict(before, gamma=-1.0, last_epoch=7))
    with pytest.raises(ValueError, match=r"base_lrs must be a list of one rate per parameter group \(3\)"):
        sched.load_state_dict(dict(before, base_lrs=[0.1]))
    with pytest.raises(ValueError, match=r"StepLR.load_state_dict: expected the keys \['_last_lr', '_step_count', "
                                         r"'base_lrs', 'gamma', 'last_epoch', 'step_size'\] .*got \['gamma'\]"):
        sched.load_state_dict({"gamma": 0.5})
    assert sched.state_dict() == before
    seq = SequentialLR(opt, [ExponentialLR(opt, 0.9), StepLR(opt, 2)], [3])
    state = seq.state_dict()
    state["_schedulers"][1]["step_size"] = 0
    first_before = seq._schedulers[0].state_dict()
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive integer, got 0"):
        seq.load_state_dict(dict(state, last_epoch=9))
    assert seq.last_epoch == 0 and seq._schedulers[0].state_dict() == first_before


def test_state_dicts_hold_only_plain_values():
    opt = sgd()
    for sched in [StepLR(opt, 2), MultiStepLR(opt, [2]), ReduceLROnPlateau(opt), OneCycleLR(opt, 1.0, total_steps=5),
                  SequentialLR(opt, [LinearLR(opt), CosineAnnealingLR(opt, 4)], [3])]:
        json.dumps(sched.state_dict())


# ----------------------------------------------------------------------------- checks
def _bad_cases():
    def plateau(**kw):
        return lambda o: ReduceLROnPlateau(o, **kw)
    return [
        (lambda o: StepLR(o, 0), "StepLR: step_size must be a positive integer, got 0"),
        (lambda o: StepLR(o, 2.5), "StepLR: step_size must be a positive integer, got 2.5"),
        (lambda o: StepLR(o, 2, gamma=math.nan), r"StepLR: gamma must be a finite number .*got nan"),
        (lambda o: StepLR(o, 2, gamma=0.0), r"StepLR: gamma must be a finite number in \(0.0, inf\), got 0.0"),
        (lambda o: MultiStepLR(o, [3, -1]), r"MultiStepLR: milestones\[0\] must be a non-negative integer, got -1"),
        (lambda o: MultiStepLR(o, [2.5]), r"MultiStepLR: milestones\[0\] must be a non-negative integer, got 2.5"),
        (lambda o: ExponentialLR(o, -0.5), r"ExponentialLR: gamma must be .*got -0.5"),
        (lambda o: CosineAnnealingLR(o, 0), "CosineAnnealingLR: T_max must be a positive integer, got 0"),
        (lambda o: CosineAnnealingLR(o, 5, eta_min=-1e-3), r"CosineAnnealingLR: eta_min must be .*got -0.001"),
        (lambda o: LinearLR(o, start_factor=0.0), r"LinearLR: start_factor must be a finite number in \(0.0, 1.0\]"),
        (lambda o: LinearLR(o, end_factor=1.5), r"LinearLR: end_factor must be a finite number in \[0.0, 1.0\]"),
        (lambda o: LinearLR(o, total_iters=0), "LinearLR: total_iters must be a positive integer, got 0"),
        (lambda o: LambdaLR(o, [lambda e: 1.0]), r"LambdaLR: expected 3 lr_lambdas \(one per parameter group\), got 1"),
        (lambda o: LambdaLR(o, 0.5), "LambdaLR: lr_lambda must be a function of the epoch .*got float"),
        (lambda o: StepLR(o, 2, last_epoch=-2), "StepLR: last_epoch must be an integer >= -1, got -2"),
        (lambda o: SequentialLR(o, [], []), "SequentialLR: expects at least one scheduler, got none"),
        (lambda o: SequentialLR(o, [StepLR(o, 2), StepLR(o, 3)], []), "expects one milestone fewer than schedulers"),
        (lambda o: SequentialLR(o, [StepLR(o, 2)] * 3, [4, 4]), "milestones must be increasing"),
        (lambda o: SequentialLR(o, [StepLR(o, 2), ReduceLROnPlateau(o)], [2]), r"\[1\] is a ReduceLROnPlateau"),
        (lambda o: SequentialLR(o, [StepLR(o, 2), StepLR(sgd(), 2)], [2]), r"\[1\] \(StepLR\) drives another"),
        (lambda o: SequentialLR(o, [StepLR(o, 2), "StepLR"], [2]), r"\[1\] must be a learning-rate scheduler"),
        (lambda o: SequentialLR(o, [StepLR(o, 2)], [], last_epoch=3), "SequentialLR: last_epoch must be -1"),
        (lambda o: SequentialLR(o, [SequentialLR(o, [StepLR(o, 2)], []), StepLR(o, 2)], [3]),
         r"SequentialLR: schedulers\[0\] is a SequentialLR; nesting them is not supported"),
        (lambda o: StepLR(o.param_groups, 2), "StepLR: optimizer must be a tinygrad_cv.optim Optimizer .*got list"),
        (plateau(mode="mean"), "ReduceLROnPlateau: mode must be 'min' or 'max', got 'mean'"),
        (plateau(threshold_mode="pct"), "ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got 'pct'"),
        (plateau(factor=1.0), r"ReduceLROnPlateau: factor must be a finite number in \(0.0, 1.0\), got 1.0"),
        (plateau(factor=0.0), r"ReduceLROnPlateau: factor must be .*got 0.0"),
        (plateau(patience=-1), "ReduceLROnPlateau: patience must be a non-negative integer, got -1"),
        (plateau(cooldown=1.5), "ReduceLROnPlateau: cooldown must be a non-negative integer, got 1.5"),
        (plateau(threshold=math.inf), r"ReduceLROnPlateau: threshold must be a finite number .*got inf"),
        (plateau(min_lr=[0.0, 0.0]), r"ReduceLROnPlateau: expected 3 min_lrs \(one per parameter group\), got 2"),
        (plateau(min_lr=-1e-5), r"ReduceLROnPlateau: min_lr\[0\] must be .*got -1e-05"),
        (plateau(eps=math.nan), r"ReduceLROnPlateau: eps must be .*got nan"),
    ]


@pytest.mark.parametrize("make,message", _bad_cases())
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make(sgd())


def test_the_rates_a_schedule_writes_are_checked_by_the_optimiser_all_groups_first():
    opt = sgd()
    sched = LambdaLR(opt, [lambda e: 1.0, lambda e: 1.0, lambda e: 1.0 - e])
    sched.step()
    with pytest.raises(ValueError, match="SGD: lr must be a finite number .*got -0.2"):
        sched.step()  # group 2's rate would be 0.2 * (1 - 2)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.05, 0.0]  # step 1's rates, untouched


def test_resuming_needs_initial_lr_and_the_epoch_argument_is_refused():
    with pytest.raises(KeyError, match=r"resuming at last_epoch=3 needs 'initial_lr' .* groups \[0, 1, 2\] lack it"):
        StepLR(sgd(), 2, last_epoch=3)
    sched = StepLR(sgd(), 2)
    with pytest.raises(ValueError, match=r"StepLR.step: the epoch argument \(deprecated in PyTorch\) is not supported"):
        sched.step(5)
    with pytest.raises(ValueError, match="ReduceLROnPlateau.step: the epoch argument"):
        ReduceLROnPlateau(sgd()).step(1.0, epoch=3)


def test_names_are_where_pytorch_has_them():
    for name in ("LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "LinearLR", "ExponentialLR", "SequentialLR",
                 "CosineAnnealingLR", "ReduceLROnPlateau", "OneCycleLR"):
        assert isinstance(getattr(optim.lr_scheduler, name), type)


# ----------------------------------------------------------------------------- against torch
TORCH_CASES = CLOSED_FORMS + [
    ("LambdaLR per group", lambda o, m: m.LambdaLR(o, [lambda e: 0.95 ** e, lambda e: 1 / (e + 1),
                                                       lambda e: e // 3 + 1]), None),
    ("MultiStepLR at 0", lambda o, m: m.MultiStepLR(o, [0, 4, 4]), None),
    ("SequentialLR exp then steps", lambda o, m: m.SequentialLR(o, [m.ExponentialLR(o, 0.8),
                                                                    m.MultiStepLR(o, [0, 4], 0.5)], [6]), None),
    ("OneCycleLR", lambda o, m: m.OneCycleLR(o, [1.0, 0.5, 0.2], total_steps=40), None),
    ("CosineAnnealingLR T_max 1", lambda o, m: m.CosineAnnealingLR(o, 1, eta_min=0.01), None),
]


@pytest.mark.parametrize("name,make,rule", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_step_by_step(name, make, rule):
    torch = pytest.importorskip("torch")
    opt, peer = sgd(), sgd(module=torch)
    ours, theirs = make(opt, lr_scheduler), make(peer, torch.optim.lr_scheduler)
    np.testing.assert_allclose(trace(opt, ours), trace(peer, theirs), rtol=1e-13)
    assert [g["momentum"] for g in opt.param_groups] == pytest.approx([g["momentum"] for g in peer.param_groups],
                                                                     rel=1e-13)
    assert ours.last_epoch == theirs.last_epoch


@pytest.mark.parametrize("make", [lambda o, m: m.StepLR(o, 3, last_epoch=5), lambda o, m: m.ExponentialLR(o, 0.7, 4),
                                  lambda o, m: m.LinearLR(o, 0.2, 1.0, 6, last_epoch=2),
                                  lambda o, m: m.CosineAnnealingLR(o, 8, 0.01, last_epoch=3)])
def test_resuming_with_last_epoch_matches_torch(make):
    torch = pytest.importorskip("torch")
    opt, peer = sgd(), sgd(module=torch)
    for group, peer_group, lr in zip(opt.param_groups, peer.param_groups, [0.4, 0.3, 0.2]):
        group["initial_lr"] = peer_group["initial_lr"] = lr
    ours, theirs = make(opt, lr_scheduler), make(peer, torch.optim.lr_scheduler)
    np.testing.assert_allclose(trace(opt, ours, 20), trace(peer, theirs, 20), rtol=1e-13)


PLATEAUS = [dict(), dict(mode="max", patience=2, cooldown=2), dict(threshold=0.05, threshold_mode="abs", patience=1),
            dict(mode="max", threshold_mode="abs", threshold=0.0, patience=0, factor=0.5, min_lr=[0.02, 0.0, 0.05]),
            dict(patience=1, factor=0.5, eps=0.02)]


@pytest.mark.parametrize("kwargs", PLATEAUS)
def test_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    metrics = np.round(np.cumsum(rng.normal(0.0, 1.0, 60)) * 4) / 4  # walks with plateaus and ties
    opt, peer = sgd(), sgd(module=torch)
    ours, theirs = ReduceLROnPlateau(opt, **kwargs), torch.optim.lr_scheduler.ReduceLROnPlateau(peer, **kwargs)
    for m in metrics:
        ours.step(float(m))
        theirs.step(float(m))
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-13)
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter, ours.last_epoch) == \
            (theirs.best, theirs.num_bad_epochs, theirs.cooldown_counter, theirs.last_epoch)
    assert any(lr < base for lr, base in zip(ours.get_last_lr(), BASE_LRS))  # the walk did reduce a rate


def test_the_errors_pytorch_raises_are_raised_with_its_types():
    torch = pytest.importorskip("torch")

    cases = [lambda o, m: m.StepLR(o, 2, last_epoch=3), lambda o, m: m.ReduceLROnPlateau(o, factor=1.5),
             lambda o, m: m.ReduceLROnPlateau(o, mode="mean"), lambda o, m: m.LinearLR(o, start_factor=2.0),
             lambda o, m: m.LambdaLR(o, [lambda e: 1.0]), lambda o, m: m.SequentialLR(o, [], []),
             lambda o, m: m.SequentialLR(o, [m.StepLR(o, 2), m.ReduceLROnPlateau(o)], [2]),
             lambda o, m: m.StepLR(o.param_groups, 2)]
    for make in cases:
        mine = raised(lambda: make(sgd(), lr_scheduler))
        assert mine is not None and mine is raised(lambda: make(sgd(module=torch), torch.optim.lr_scheduler))
