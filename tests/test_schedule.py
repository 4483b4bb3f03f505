"""OneCycleLR (PyTorch's formulas) and fastai's one-cycle shape, against hand-computed values."""
import math

import numpy as np
import pytest

from tinygrad_cv import optim
from tinygrad_cv.nn import Parameter
from tinygrad_cv.optim.lr_scheduler import OneCycleLR, combined_cos, exponential


def sgd(lr=0.1, momentum=0.9, groups=1):
    return optim.SGD([{"params": [Parameter(np.zeros(2))]} for _ in range(groups)], lr=lr, momentum=momentum)


def trace(optimizer, scheduler, steps, key="lr"):
    """The value of ``key`` in group 0 before each step (as an optimiser step would use it)."""
    values = []
    for _ in range(steps):
        values.append(optimizer.get_momentum(optimizer.param_groups[0]) if key == "mom"
                      else optimizer.param_groups[0][key])
        scheduler.step()
    return values


def test_one_cycle_by_hand():
    # total 10, pct_start 0.3: phase 1 ends at step 0.3 * 10 - 1 = 2, phase 2 at step 9.
    # initial = 1 / 25 = 0.04, minimum = 0.04 / 1e4 = 4e-6.
    # step 1 is halfway up: 1 + (0.04 - 1) / 2 * (cos(pi / 2) + 1) = 0.52
    opt = sgd()
    lrs = trace(opt, OneCycleLR(opt, max_lr=1.0, total_steps=10), 10)
    assert lrs[0] == pytest.approx(0.04)
    assert lrs[1] == pytest.approx(0.52)
    assert lrs[2] == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(4e-6)
    # step 5.5 would be the middle of phase 2 (steps 2..9); at step 5: pct = 3/7
    assert lrs[5] == pytest.approx(4e-6 + (1 - 4e-6) / 2 * (math.cos(math.pi * 3 / 7) + 1))


def test_one_cycle_momentum_moves_against_the_rate():
    opt = sgd()
    moms = trace(opt, OneCycleLR(opt, max_lr=1.0, total_steps=10), 10, key="mom")
    assert (moms[0], moms[2], moms[9]) == pytest.approx((0.95, 0.85, 0.95))
    assert moms[1] == pytest.approx(0.90)


def test_one_cycle_drives_adams_beta1():
    opt = optim.Adam([Parameter(np.zeros(2))], betas=(0.9, 0.99))
    sched = OneCycleLR(opt, max_lr=0.01, total_steps=10)
    assert opt.param_groups[0]["betas"] == (0.95, 0.99)
    sched.step()
    sched.step()
    assert opt.param_groups[0]["betas"] == pytest.approx((0.85, 0.99))


def test_three_phase_returns_to_the_initial_rate():
    # phases end at steps 2, 2 * 0.3 * 10 - 2 = 4 and 9.
    opt = sgd()
    lrs = trace(opt, OneCycleLR(opt, max_lr=1.0, total_steps=10, three_phase=True), 10)
    assert lrs[2] == pytest.approx(1.0) and lrs[4] == pytest.approx(0.04) and lrs[9] == pytest.approx(4e-6)
    assert lrs[3] == pytest.approx(0.52)


def test_linear_and_cosine_annealing_differ_where_expected():
    # total 20: phase 1 ends at step 5; step 2 is 2/5 of the way up.
    cos_opt, lin_opt = sgd(), sgd()
    cos = trace(cos_opt, OneCycleLR(cos_opt, max_lr=1.0, total_steps=20), 3)
    lin = trace(lin_opt, OneCycleLR(lin_opt, max_lr=1.0, total_steps=20, anneal_strategy="linear"), 3)
    assert lin[2] == pytest.approx(0.04 + 0.96 * 0.4)
    assert cos[2] == pytest.approx(1 - 0.48 * (math.cos(0.4 * math.pi) + 1))


def test_epochs_times_steps_per_epoch_and_per_group_max_lr():
    opt = sgd(groups=2)
    sched = OneCycleLR(opt, max_lr=[1.0, 0.1], epochs=2, steps_per_epoch=5)
    assert sched.total_steps == 10
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.04, 0.004])


def test_stepping_past_total_steps_is_an_error():
    opt = sgd()
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=4)
    for _ in range(4):
        sched.step()
    with pytest.raises(ValueError, match="tried to step 5 times.*total_steps=4"):
        sched.step()


@pytest.mark.parametrize("kwargs,message", [
    (dict(max_lr=1.0), "give total_steps"),
    (dict(max_lr=1.0, total_steps=0), "positive integer"),
    (dict(max_lr=1.0, total_steps=5, pct_start=1.5), r"pct_start must be a finite number in \[0.0, 1.0\], got 1.5"),
    (dict(max_lr=1.0, total_steps=5, anneal_strategy="exp"), "anneal_strategy"),
    (dict(max_lr=[1.0, 2.0], total_steps=5), "2 values but the optimiser has 1"),
    (dict(max_lr=-0.1, total_steps=5), r"max_lr must be a finite number in \(0.0, inf\), got -0.1"),
    (dict(max_lr=math.nan, total_steps=5), r"max_lr must be .*got nan"),
    (dict(max_lr=1.0, total_steps=5, div_factor=0.0), r"div_factor must be .*got 0.0"),
    (dict(max_lr=1.0, total_steps=5, final_div_factor=-1e4), r"final_div_factor must be .*got -10000.0"),
    (dict(max_lr=1.0, total_steps=2.5), "total_steps must be a positive integer, got 2.5"),
    (dict(max_lr=1.0, epochs=0, steps_per_epoch=3), "epochs must be a positive integer, got 0"),
    (dict(max_lr=1.0, epochs=2, steps_per_epoch=1.5), "steps_per_epoch must be a positive integer, got 1.5"),
    (dict(max_lr=1.0, total_steps=5, pct_start=math.nan), r"pct_start must be .*got nan"),
    (dict(max_lr=1.0, total_steps=10, pct_start=1.0), "pct_start=1.0 with total_steps=10 gives a phase that spans"),
    (dict(max_lr=1.0, total_steps=10, pct_start=0.1), "pct_start=0.1 with total_steps=10 gives a phase"),
    (dict(max_lr=1.0, total_steps=10, pct_start=0.6, three_phase=True), "pct_start=0.6 .* gives a phase"),
    (dict(max_lr=1.0, total_steps=5, base_momentum=1.2), r"base_momentum must be .*\[0.0, 1.0\), got 1.2"),
    (dict(max_lr=1.0, total_steps=5, max_momentum=math.inf), r"max_momentum must be .*got inf"),
])
def test_bad_schedule_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OneCycleLR(sgd(), **kwargs)


def test_pct_start_zero_skips_the_warm_up():
    # (pct_start = 1 is refused: the fall would span steps total_steps-1 .. total_steps-1 and its annealing
    # divide by zero, a ZeroDivisionError at the last step in PyTorch.) With pct_start = 0 the warm-up
    # never comes and the fall runs from step -1: lr at step k = anneal(max_lr, min_lr, (k + 1) / total_steps).
    low = 1.0 / 25 / 1e4
    opt = sgd()
    values = trace(opt, OneCycleLR(opt, max_lr=1.0, total_steps=4, pct_start=0.0, anneal_strategy="linear"), 4)
    np.testing.assert_allclose(values, [1.0 + (low - 1.0) * (k + 1) / 4 for k in range(4)], rtol=1e-12)


def test_the_value_after_the_last_step_stays_at_the_final_rate():
    opt = sgd()
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="linear")
    for _ in range(5):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 25 / 1e4, rel=1e-12)


def test_load_state_dict_checks_the_step_and_changes_nothing_on_error():
    sched = OneCycleLR(sgd(), max_lr=1.0, total_steps=10)
    for bad in (11, -2, 2.5, None):
        state = dict(sched.state_dict(), last_epoch=bad, pct_start=0.4)
        with pytest.raises(ValueError, match=rf"last_epoch must be an integer in \[-1, 10\], got {bad}"):
            sched.load_state_dict(state)
    assert sched.last_epoch == 0 and sched.pct_start == 0.3
    with pytest.raises(ValueError, match=r"expected the keys \['_last_lr', .*got \['last_epoch', 'total_steps'\]"):
        sched.load_state_dict({"last_epoch": 3, "total_steps": 10})


def test_state_dict_resumes_the_schedule():
    opt = sgd()
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=10)
    for _ in range(4):
        sched.step()
    other_opt = sgd()
    other = OneCycleLR(other_opt, max_lr=1.0, total_steps=10)
    other_opt.load_state_dict(opt.state_dict())
    other.load_state_dict(sched.state_dict())
    assert trace(other_opt, other, 6) == trace(opt, sched, 6)


@pytest.mark.parametrize("kwargs", [dict(), dict(three_phase=True),
                                    dict(anneal_strategy="linear", pct_start=0.45),
                                    dict(div_factor=10, final_div_factor=100, base_momentum=0.8)])
def test_matches_torch_one_cycle(kwargs):
    torch = pytest.importorskip("torch")
    opt = sgd()
    sched = OneCycleLR(opt, max_lr=0.5, total_steps=23, **kwargs)
    peer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    peer_sched = torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.5, total_steps=23, **kwargs)
    ours = trace(opt, sched, 23)
    theirs = []
    for _ in range(23):
        theirs.append(peer.param_groups[0]["lr"])
        peer.step()
        peer_sched.step()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# ----------------------------------------------------------------------------- fastai's shape
def test_combined_cos_by_hand():
    # warm-up 1 -> 10 over the first quarter, then 10 -> 0.001; at pos 1/8 the warm-up is half done:
    # 1 + (10 - 1) * (1 - cos(pi / 2)) / 2 = 5.5
    schedule = combined_cos(0.25, 1.0, 10.0, 0.001)
    assert schedule(0.0) == pytest.approx(1.0)
    assert schedule(0.125) == pytest.approx(5.5)
    assert schedule(0.25) == pytest.approx(10.0)
    assert schedule(0.625) == pytest.approx((10 + 0.001) / 2)
    assert schedule(1.0) == pytest.approx(0.001)


def test_combined_cos_accepts_one_value_per_group():
    schedule = combined_cos(0.5, np.array([1.0, 2.0]), np.array([3.0, 6.0]), np.array([0.0, 0.0]))
    np.testing.assert_allclose(schedule(0.5), [3.0, 6.0])


def test_exponential_sweep():
    schedule = exponential(1e-7, 10.0)
    assert schedule(0.0) == pytest.approx(1e-7) and schedule(1.0) == pytest.approx(10.0)
    assert schedule(0.5) == pytest.approx(1e-3)


def test_resuming_with_last_epoch_continues_the_cycle():
    # the optimiser's groups keep the schedule's entries (initial_lr, max_lr, ...); last_epoch=4 resumes at 5
    opt = sgd()
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=12)
    for _ in range(5):
        sched.step()
    other_opt = sgd()
    other_opt.load_state_dict(opt.state_dict())
    resumed = OneCycleLR(other_opt, max_lr=1.0, total_steps=12, last_epoch=4)
    assert resumed.last_epoch == 5
    assert trace(other_opt, resumed, 6) == trace(opt, sched, 6)
    assert trace(other_opt, resumed, 1, key="mom") == trace(opt, sched, 1, key="mom")


def test_matches_torch_when_resumed_with_last_epoch():
    torch = pytest.importorskip("torch")
    opt = sgd()
    peer = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9)
    entries = dict(initial_lr=0.02, max_lr=0.5, min_lr=2e-6, max_momentum=0.95, base_momentum=0.85)
    opt.param_groups[0].update(entries)
    peer.param_groups[0].update(entries)
    schedules = [(opt, OneCycleLR(opt, max_lr=0.5, total_steps=20, last_epoch=6)),
                 (peer, torch.optim.lr_scheduler.OneCycleLR(peer, max_lr=0.5, total_steps=20, last_epoch=6))]
    ours, theirs = [], []
    for (optimizer, scheduler), values in zip(schedules, (ours, theirs)):
        for _ in range(13):
            values.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"]))
            optimizer.step()
            scheduler.step()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
