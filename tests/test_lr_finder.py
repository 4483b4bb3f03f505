"""The LR finder's suggestion functions, with fastai v2's signature f(lrs, losses, num_it) -> (lr, (lr, loss)):
by hand on small curves, against fastai's formulas written with torch tensors (as fastai runs them), and
through lr_find (a fastai-style function of the user's works unchanged; the old form is refused)."""
from functools import partial

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv.train.lr_finder import minimum, slide, steep, valley
from train_fixtures import make_learner

# A synthetic finder curve: flat, a long fall, a short bump, a lower minimum, then divergence.
LRS = np.geomspace(1e-5, 1.0, 11)                       # 1e-5, 10**-4.5, ..., 1: half a decade apart
LOSSES = np.array([2.3, 2.3, 2.2, 1.9, 1.3, 0.9, 1.0, 0.7, 0.8, 1.5, 4.0])


def test_suggestions_by_hand_on_a_synthetic_curve():
    lrs, losses = tg.tensor(LRS), tg.tensor(LOSSES)
    # minimum: the lowest loss 0.7 is at index 7 (lr 10**-1.5); the suggestion is a tenth of it, the
    # point that rate and its loss
    lr, point = minimum(lrs, losses, 100)
    assert lr == pytest.approx(10 ** -2.5) and point == (pytest.approx(10 ** -1.5), pytest.approx(0.7))
    # steep: the loss changes per half decade are 0, -.1, -.3, -.6, -.4, +.1, -.3, +.1, +.7, +2.5; the
    # steepest fall, -0.6, starts at index 3 (lr 10**-3.5)
    lr, point = steep(lrs, losses, 100)
    assert lr == pytest.approx(10 ** -3.5) and point == (pytest.approx(10 ** -3.5), pytest.approx(1.9))
    # valley: the longest decreasing subsequence 2.3 > 2.2 > 1.9 > 1.3 > 0.9 > 0.7 (6 points) first ends at
    # index 7, where the start is fixed at 7 - 6 = 1 (fastai's way); sections = 6 / 3 = 2, so the
    # index is 1 + 2 + 1 = 4 (lr 10**-3)
    lr, point = valley(lrs, losses, 100)
    assert lr == pytest.approx(1e-3) and point == (pytest.approx(1e-3), pytest.approx(1.3))


def test_slide_by_hand():
    # np.gradient of [0, 0, 0, 1, 3, 6] is [0, 0, .5, 1.5, 2.5, 3]; windows of 2 from the end: |3 - 1.5|,
    # |2.5 - 0| and |1.5 - 0| exceed 0.6, |0.5 - 0| does not: the last window that did starts at index 1
    lrs = np.geomspace(1e-4, 1.0, 6)                   # 1e-4, 10**-3.2, ..., 1
    losses = np.array([0.0, 0.0, 0.0, 1.0, 3.0, 6.0])
    lr, point = slide(lrs, losses, 6, lr_diff=2, thresh=0.6)
    assert lr == pytest.approx(lrs[1]) and point == (pytest.approx(lrs[1]), pytest.approx(0.0))
    # times adjust_value 10: 10**-2.2, a quarter of the way in log10(lr) from point 2 (10**-2.4, loss 0) to
    # point 3 (10**-1.6, loss 1), so the point's loss is 0.25
    lr, point = slide(lrs, losses, 6, lr_diff=2, thresh=0.6, adjust_value=10.0)
    assert lr == pytest.approx(10 * lrs[1]) and point[1] == pytest.approx(0.25)
    assert slide(lrs, losses, 6, lr_diff=2, thresh=10.0)[0] == pytest.approx(lrs[3])   # the first window is flat
    with pytest.raises(ValueError, match="slide: the curve has 6 points but the window lr_diff=15"):
        slide(lrs, losses, 6)


def test_suggestions_on_a_curve_that_falls_all_along():
    lrs, losses = np.geomspace(1e-6, 1e-1, 6), np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    # valley: the decreasing run is all 6 points, ending at 5, so it starts at 5 - 6 = -1 (fastai's quirk);
    # sections = 6 / 3 = 2, index = -1 + 2 + 1 = 2
    assert valley(lrs, losses, 10) == (pytest.approx(1e-4), (pytest.approx(1e-4), 3.0))
    # steep: slopes per decade -1, -1, -1, -1, -0.5: the first of the steepest
    assert steep(lrs, losses, 10) == (pytest.approx(1e-6), (pytest.approx(1e-6), 5.0))
    # minimum: the last point; a tenth of its rate
    assert minimum(lrs, losses, 10) == (pytest.approx(1e-2), (pytest.approx(1e-1), 0.5))


def _fastai_formulas(torch):
    """fastai v2's four rules as it states them, on torch tensors (independent of our NumPy code)."""
    def valley(lrs, losses, num_it):
        n, best_end, best_start = len(losses), 0, 0
        run = [1] * n
        for i in range(1, n):
            for j in range(i):
                if losses[i] < losses[j] and run[i] < run[j] + 1:
                    run[i] = run[j] + 1
                if run[best_end] < run[i]:
                    best_end, best_start = i, i - run[i]
        third = (best_end - best_start) / 3
        k = best_start + int(third) + int(third / 2)
        return float(lrs[k]), (float(lrs[k]), float(losses[k]))

    def near(lrs, losses, lr):
        return float(losses[int(torch.argmin((lrs - lr).abs()))])

    def minimum(lrs, losses, num_it):
        lowest = lrs[losses.argmin()].item()
        return lowest / 10, (lowest, near(lrs, losses, lowest))

    def steep(lrs, losses, num_it):
        slope = (losses[1:] - losses[:-1]) / (lrs[1:].log() - lrs[:-1].log())
        lr = lrs[slope.argmin()].item()
        return lr, (lr, near(lrs, losses, lr))

    def slide(lrs, losses, num_it, lr_diff=15, thresh=0.005, adjust_value=1.0):
        grad = np.gradient(losses.numpy())
        right, left = -1, -1 - lr_diff
        chosen = lrs[left]
        while left >= -len(losses) and abs(grad[right] - grad[left]) > thresh:
            chosen = lrs[left]
            right, left = right - 1, left - 1
        lr = float(chosen) * adjust_value
        return lr, (lr, float(np.interp(np.log10(lr), np.log10(lrs.numpy()), losses.numpy())))

    return {"valley": valley, "steep": steep, "minimum": minimum, "slide": slide}


def test_suggestions_equal_fastais_formulas_on_torch_tensors():
    torch = pytest.importorskip("torch")
    theirs = _fastai_formulas(torch)
    rng = np.random.default_rng(0)
    ours = {"valley": valley, "steep": steep, "minimum": minimum, "slide": slide}
    for trial in range(20):
        n = int(rng.integers(20, 90))
        lrs = np.geomspace(1e-7, 10.0, n)
        losses = 2.0 + np.cumsum(rng.normal(-0.02, 0.05, n)) + np.where(np.arange(n) > 0.8 * n, 1.0, 0.0)
        for name, f in ours.items():
            extra = {"lr_diff": 5, "thresh": 0.01} if name == "slide" else {}
            mine = f(tg.tensor(lrs), tg.tensor(losses), n, **extra)
            ref = theirs[name](torch.tensor(lrs), torch.tensor(losses), n, **extra)
            np.testing.assert_allclose([mine[0], *mine[1]], [ref[0], *ref[1]], rtol=1e-12, err_msg=name)


def test_lr_find_runs_a_users_fastai_style_function_unchanged(tmp_path):
    """A suggestion written against fastai's tensors (.log(), .argmin(), .item(), indexing) runs as it is."""
    def halfway(lrs, losses, num_it):
        mid = lrs[losses.argmin()].item() ** 0.5 * lrs[0].item() ** 0.5    # log-midway to the minimum
        return mid, (mid, losses[losses.argmin()])
    learn = make_learner(path=tmp_path)
    suggestions = learn.lr_find(start_lr=1e-5, end_lr=1.0, num_it=30, show_plot=False,
                                suggest_funcs=(valley, halfway, partial(slide, lr_diff=5)))
    assert suggestions._fields == ("valley", "halfway", "slide")
    lrs, losses = learn.lr_finder.curve()
    assert suggestions.halfway == pytest.approx(np.sqrt(lrs[np.argmin(losses)] * lrs[0]), rel=1e-12)
    assert suggestions.valley == valley(lrs, losses, 30)[0]
    assert suggestions.slide == slide(lrs, losses, 30, lr_diff=5)[0]


def test_lr_find_refuses_the_old_two_argument_form_before_the_sweep(tmp_path):
    learn = make_learner(path=tmp_path)

    def old(lrs, losses):
        return float(lrs[0]), 0
    with pytest.raises(TypeError, match=r"suggest function old\(lrs, losses\) cannot be called as "
                                        r"old\(lrs, losses, num_it\), fastai v2's signature"):
        learn.lr_find(num_it=30, suggest_funcs=(valley, old))
    assert not hasattr(learn, "lr_finder")                 # refused before any training

    def old_result(lrs, losses, num_it=None):              # takes three arguments, returns the old (lr, index)
        return float(lrs[0]), 0
    with pytest.raises(TypeError, match=r"suggest function old_result returned \([0-9.e-]+, 0\); a suggestion "
                                        r"function returns \(lr, \(lr, loss\)\)"):
        learn.lr_find(start_lr=1e-5, num_it=30, suggest_funcs=(old_result,), show_plot=False)
