"""Losses: forward against NumPy formulas (naive per-sample loops for the class losses), hand-worked
values, gradchecks, PyTorch as an extra oracle, and the error messages."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from conftest import DEVICES

REDUCE = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}


def tensors(*arrays, requires_grad=False):
    return [tg.Tensor(a, requires_grad=requires_grad) for a in arrays]


# ----------------------------------------------------------------------------- binary cross entropy
def naive_bce_with_logits(x, t, w=None, pos_weight=None):
    """-(pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), evaluated in float64 without tricks."""
    p = 1 / (1 + np.exp(-x))
    pw = 1 if pos_weight is None else pos_weight
    loss = -(pw * t * np.log(p) + (1 - t) * np.log(1 - p))
    return loss if w is None else loss * w


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_the_definition(reduction):
    rng = np.random.default_rng(0)
    x, t, w, pw = rng.standard_normal((4, 3)) * 3, rng.random((4, 3)), rng.random((4, 3)), rng.uniform(0.5, 3, 3)
    got = F.binary_cross_entropy_with_logits(*tensors(x, t), weight=tg.Tensor(w), reduction=reduction,
                                             pos_weight=tg.Tensor(pw))
    np.testing.assert_allclose(got.numpy(), REDUCE[reduction](naive_bce_with_logits(x, t, w, pw)), rtol=1e-10)


def test_bce_with_logits_is_stable_for_large_logits():
    x = tg.Tensor(np.array([1000.0, -1000.0, 1000.0, -1000.0], dtype=np.float32), requires_grad=True)
    t = tg.Tensor(np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32))
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0, 0, 1000, 1000])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 1, -1])


@given(seed=st.integers(0, 1000), with_pos_weight=st.booleans())
def test_bce_with_logits_gradcheck(seed, with_pos_weight):
    rng = np.random.default_rng(seed)
    inputs = tensors(rng.standard_normal((3, 4)) * 2, rng.random((3, 4)), rng.uniform(0.5, 2, 4),
                     requires_grad=True)
    if with_pos_weight:
        f = lambda x, t, pw: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="sum")
    else:
        f, inputs = (lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum")), inputs[:2]
    assert tg.gradcheck(f, inputs)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_on_probabilities_clamps_logs_at_minus_100(reduction):
    p = np.array([0.0, 1.0, 0.3, 0.9])
    t = np.array([1.0, 0.0, 0.5, 1.0])
    log_p, log_q = np.maximum(np.log(np.maximum(p, 1e-300)), -100), np.maximum(np.log(np.maximum(1 - p, 1e-300)), -100)
    expected = -(t * log_p + (1 - t) * log_q)
    np.testing.assert_allclose(expected[:2], [100, 100])
    got = F.binary_cross_entropy(*tensors(p, t), reduction=reduction)
    np.testing.assert_allclose(got.numpy(), REDUCE[reduction](expected), rtol=1e-12)


@given(seed=st.integers(0, 1000))
def test_bce_gradcheck(seed):
    rng = np.random.default_rng(seed)
    p, t = tensors(rng.uniform(0.05, 0.95, (3, 4)), rng.random((3, 4)), requires_grad=True)
    assert tg.gradcheck(lambda a, b: F.binary_cross_entropy(a, b, weight=tg.Tensor(np.arange(4.0))), [p, t])


# ----------------------------------------------------------------------------- cross entropy and nll
def naive_cross_entropy(x, target, weight, ignore_index, reduction, smoothing):
    """Loop over samples with scores moved to the last axis; PyTorch's weighted-mean denominator."""
    c = x.shape[1]
    scores = np.moveaxis(x, 1, -1).reshape(-1, c)
    target = target.reshape(-1)
    w = np.ones(c) if weight is None else weight
    losses, denominator = [], 0.0
    for s, t in zip(scores, target):
        if t == ignore_index:
            losses.append(0.0)
            continue
        logp = s - np.log(np.sum(np.exp(s)))
        losses.append(-(1 - smoothing) * w[t] * logp[t] - smoothing / c * np.sum(w * logp))
        denominator += w[t]
    losses = np.array(losses)
    if reduction == "none":
        return losses.reshape(x.shape[:1] + x.shape[2:])
    return losses.sum() / np.float64(denominator) if reduction == "mean" else losses.sum()


@st.composite
def class_cases(draw):
    spatial = draw(st.sampled_from([(), (3,), (2, 3)]))
    n, c = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    x = rng.standard_normal((n, c) + spatial) * 2
    target = rng.integers(0, c, (n,) + spatial)
    target.reshape(-1)[0] = -100 if draw(st.booleans()) else target.reshape(-1)[0]
    if target.size > 1:
        target.reshape(-1)[1] = int(rng.integers(0, c))  # at least one sample is not ignored
    weight = rng.uniform(0.2, 2, c) if draw(st.booleans()) else None
    return dict(x=x, target=target, weight=weight, reduction=draw(st.sampled_from(["mean", "sum", "none"])),
                smoothing=draw(st.sampled_from([0.0, 0.1, 0.5])))


def ce(case, x):
    weight = None if case["weight"] is None else tg.Tensor(case["weight"])
    return F.cross_entropy(x, tg.Tensor(case["target"]), weight=weight, reduction=case["reduction"],
                           label_smoothing=case["smoothing"])


def nothing_to_average(case):
    """A single ignored target with reduction 'mean': 0 / 0, NaN as in PyTorch."""
    return case["target"].size == 1 and case["target"].item() == -100 and case["reduction"] == "mean"


@given(case=class_cases())
def test_cross_entropy_matches_naive_loop(case):
    expected = naive_cross_entropy(case["x"], case["target"], case["weight"], -100, case["reduction"],
                                   case["smoothing"])
    with np.errstate(invalid="ignore"):
        got = ce(case, tg.Tensor(case["x"])).numpy()
    assert np.isnan(got) if nothing_to_average(case) else not np.isnan(got).any()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@given(case=class_cases())
def test_cross_entropy_gradcheck(case):
    assume(not nothing_to_average(case))
    assert tg.gradcheck(lambda x: ce(case, x), [tg.Tensor(case["x"], requires_grad=True)])


def test_cross_entropy_hand_worked():
    # scores (0, log 3): softmax (1/4, 3/4); class 1 costs log(4/3), class 0 costs log 4
    x = tg.Tensor(np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]]), requires_grad=True)
    loss = F.cross_entropy(x, tg.Tensor(np.array([1, 0])), weight=tg.Tensor(np.array([1.0, 3.0])))
    np.testing.assert_allclose(loss.item(), (3 * np.log(4 / 3) + 1 * np.log(4)) / (3 + 1))
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.array([[3 * 0.25, 3 * (0.75 - 1)], [0.25 - 1, 0.75]]) / 4)


def test_cross_entropy_with_probability_targets():
    rng = np.random.default_rng(1)
    x, q = rng.standard_normal((4, 3, 2)), rng.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    expected = -(q * logp).sum(axis=1).mean()
    np.testing.assert_allclose(F.cross_entropy(*tensors(x, q)).numpy(), expected, rtol=1e-12)
    assert tg.gradcheck(lambda a: F.cross_entropy(a, tg.Tensor(q), label_smoothing=0.2),
                        [tg.Tensor(x, requires_grad=True)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_targets_with_weight_and_smoothing(reduction):
    """l_i = -sum_c w_c q_ic logp_ic with q = (1 - e) target + e / C; 'mean' divides by N (PyTorch),
    by a loop over samples."""
    rng = np.random.default_rng(35)
    x, q, w, e = rng.standard_normal((4, 3, 2)), rng.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1), \
        rng.uniform(0.5, 2, 3), 0.3
    losses = np.zeros((4, 2))
    for n in range(4):
        for p in range(2):
            logp = x[n, :, p] - np.log(np.exp(x[n, :, p]).sum())
            losses[n, p] = -sum(w[c] * ((1 - e) * q[n, c, p] + e / 3) * logp[c] for c in range(3))
    expected = {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]
    f = lambda t: F.cross_entropy(t, tg.Tensor(q), tg.Tensor(w), reduction=reduction, label_smoothing=e)
    np.testing.assert_allclose(f(tg.Tensor(x)).numpy(), expected, rtol=1e-12)
    assert tg.gradcheck(f, [tg.Tensor(x, requires_grad=True)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_targets_with_weight_and_smoothing_match_pytorch(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(36)
    x, w = rng.standard_normal((4, 3, 2)), rng.uniform(0.5, 2, 3)
    q = rng.dirichlet(np.ones(3), (4, 2)).transpose(0, 2, 1)
    ours, theirs = tg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = F.cross_entropy(ours, tg.Tensor(q), tg.Tensor(w), reduction=reduction, label_smoothing=0.3)
    ref = torch.nn.functional.cross_entropy(theirs, torch.tensor(q), torch.tensor(w), reduction=reduction,
                                            label_smoothing=0.3)
    gy = rng.standard_normal(out.shape)
    out.backward(gy)
    ref.backward(torch.tensor(gy))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-14)


@given(case=class_cases())
def test_nll_loss_matches_naive_loop_and_gradcheck(case):
    assume(not nothing_to_average(case))
    logp = case["x"] - np.log(np.exp(case["x"]).sum(axis=1, keepdims=True))
    weight = None if case["weight"] is None else tg.Tensor(case["weight"])
    f = lambda t: F.nll_loss(t, tg.Tensor(case["target"]), weight=weight, reduction=case["reduction"])
    # nll of log-probabilities is cross entropy without smoothing
    expected = naive_cross_entropy(case["x"], case["target"], case["weight"], -100, case["reduction"], 0.0)
    np.testing.assert_allclose(f(tg.Tensor(logp)).numpy(), expected, rtol=1e-10, atol=1e-12)
    assert tg.gradcheck(f, [tg.Tensor(logp, requires_grad=True)])


# ----------------------------------------------------------------------------- one sample, empty batches
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing, with_weight", [(0.0, False), (0.3, True)])
def test_one_1d_sample_with_a_0d_target(reduction, smoothing, with_weight):
    """A (C,) input and a 0-d class index are one sample: the naive loop on a batch of one, and a
    0-d loss for 'none' (PyTorch). nll_loss likewise, on log-probabilities."""
    rng = np.random.default_rng(31)
    x, target = rng.standard_normal(5), np.array(3)
    weight = rng.uniform(0.5, 2, 5) if with_weight else None
    expected = naive_cross_entropy(x[None], target[None], weight, -100, reduction, smoothing).reshape(())
    w = None if weight is None else tg.Tensor(weight)
    ce_1d = lambda t: F.cross_entropy(t, tg.Tensor(target), w, reduction=reduction, label_smoothing=smoothing)
    out = ce_1d(tg.Tensor(x))
    assert out.shape == ()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)
    assert tg.gradcheck(ce_1d, [tg.Tensor(x, requires_grad=True)])
    logp = x - np.log(np.exp(x).sum())
    nll_1d = lambda t: F.nll_loss(t, tg.Tensor(target), w, reduction=reduction)
    np.testing.assert_allclose(nll_1d(tg.Tensor(logp)).numpy(),
                               naive_cross_entropy(x[None], target[None], weight, -100, reduction, 0.0).reshape(()),
                               rtol=1e-12)
    assert tg.gradcheck(nll_1d, [tg.Tensor(logp, requires_grad=True)])


def test_one_1d_sample_with_class_probabilities():
    rng = np.random.default_rng(32)
    x, q = rng.standard_normal(4), rng.dirichlet(np.ones(4))
    logp = x - np.log(np.exp(x).sum())
    out = F.cross_entropy(tg.Tensor(x), tg.Tensor(q), reduction="none")
    assert out.shape == ()
    np.testing.assert_allclose(out.numpy(), -(q * logp).sum(), rtol=1e-12)
    assert tg.gradcheck(lambda t: F.cross_entropy(t, tg.Tensor(q), label_smoothing=0.1),
                        [tg.Tensor(x, requires_grad=True)])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("spatial", [(), (2, 3)])
def test_empty_batch_mean_is_nan_sum_is_zero_and_gradients_are_empty(device, fn, spatial):
    x = tg.Tensor(np.zeros((0, 4) + spatial), device=device, requires_grad=True)
    target = tg.Tensor(np.zeros((0,) + spatial, dtype=np.int64), device=device)
    loss = getattr(F, fn)(x, target)
    assert loss.shape == () and np.isnan(loss.item())
    loss.backward()
    assert x.grad.shape == x.shape
    assert getattr(F, fn)(x, target, reduction="sum").item() == 0
    assert getattr(F, fn)(x, target, reduction="none").shape == (0,) + spatial


def test_empty_batch_with_probability_targets():
    x = tg.Tensor(np.zeros((0, 4)), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        loss = F.cross_entropy(x, tg.Tensor(np.zeros((0, 4))))
    assert loss.shape == () and np.isnan(loss.item())
    assert F.cross_entropy(x, tg.Tensor(np.zeros((0, 4))), reduction="none").shape == (0,)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_every_target_ignored_gives_nan_with_a_zero_gradient(smoothing):
    """PyTorch: the weighted mean over no counted sample is 0/0 = NaN, and the gradient is 0."""
    x = tg.Tensor(np.random.default_rng(33).standard_normal((3, 4)), requires_grad=True)
    loss = F.cross_entropy(x, tg.Tensor(np.full(3, -100)), label_smoothing=smoothing)
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4)))


def test_one_sample_and_empty_batches_match_pytorch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(34)
    w = rng.uniform(0.5, 2, 5)
    cases = [
        (rng.standard_normal(5), np.array(2), dict(weight=w, label_smoothing=0.1)),
        (rng.standard_normal(5), np.array(2), dict(reduction="none")),
        (rng.standard_normal(5), rng.dirichlet(np.ones(5)), dict(weight=w, reduction="none")),
        (rng.standard_normal((0, 5)), np.zeros(0, dtype=np.int64), dict()),
        (rng.standard_normal((0, 5, 2)), np.zeros((0, 2), dtype=np.int64), dict(reduction="sum")),
        (rng.standard_normal((3, 5)), np.full(3, -100), dict(label_smoothing=0.2)),
    ]
    for fn in ("cross_entropy", "nll_loss"):
        for x, t, kwargs in cases:
            if fn == "nll_loss" and (t.dtype.kind == "f" or "label_smoothing" in kwargs):
                continue
            ours = tg.Tensor(x, requires_grad=True)
            theirs = torch.tensor(x, requires_grad=True)
            ours_kw = {k: tg.Tensor(v) if k == "weight" else v for k, v in kwargs.items()}
            theirs_kw = {k: torch.tensor(v) if k == "weight" else v for k, v in kwargs.items()}
            out = getattr(F, fn)(ours, tg.Tensor(t), **ours_kw)
            ref = getattr(tf, fn)(theirs, torch.tensor(t), **theirs_kw)
            assert out.shape == tuple(ref.shape)
            np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
            gy = rng.standard_normal(out.shape)
            out.backward(gy)
            ref.backward(torch.tensor(gy))
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_float16_close_to_float64(device):
    rng = np.random.default_rng(2)
    x, target = rng.standard_normal((4, 5, 3, 3)) * 3, rng.integers(0, 5, (4, 3, 3))
    expected = naive_cross_entropy(x.astype(np.float16).astype(np.float64), target, None, -100, "mean", 0.1)
    got = F.cross_entropy(tg.Tensor(x.astype(np.float16), device=device), tg.Tensor(target, device=device),
                          label_smoothing=0.1)
    assert got.dtype == np.float16 and got.device == device
    np.testing.assert_allclose(float(got.item()), expected, rtol=2e-3)


# ----------------------------------------------------------------------------- dice
def test_dice_loss_hand_worked():
    # one pixel per image, two classes, equal scores: p = (1/2, 1/2) everywhere
    x = tg.Tensor(np.zeros((2, 2, 1, 1)), requires_grad=True)
    target = tg.Tensor(np.array([[[0]], [[0]]]))
    # class 0: intersection 1, sum p 1, sum y 2 -> (2 + 1)/(3 + 1); class 1: (0 + 1)/(1 + 0 + 1)
    expected = 1 - ((3 / 4) + (1 / 2)) / 2
    np.testing.assert_allclose(F.dice_loss(x, target).item(), expected)
    np.testing.assert_allclose(F.dice_loss(x, target, eps=0.0).item(), 1 - ((2 / 3) + 0) / 2)


def test_dice_loss_is_zero_for_a_confident_correct_prediction_and_gradcheck():
    target = np.random.default_rng(3).integers(0, 3, (2, 4, 4))
    perfect = np.moveaxis(np.eye(3)[target], -1, 1) * 50.0
    assert F.dice_loss(tg.Tensor(perfect), tg.Tensor(target)).item() < 1e-6
    x = tg.Tensor(np.random.default_rng(4).standard_normal((2, 3, 4, 4)), requires_grad=True)
    assert tg.gradcheck(lambda t: F.dice_loss(t, tg.Tensor(target)), [x])


# ----------------------------------------------------------------------------- regression losses
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
def test_regression_losses_match_numpy(reduction, beta):
    rng = np.random.default_rng(5)
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    d = x - t
    huber = np.where(np.abs(d) < beta, 0.5 * d ** 2 / max(beta, 1e-300), np.abs(d) - 0.5 * beta)
    np.testing.assert_allclose(F.mse_loss(*tensors(x, t), reduction=reduction).numpy(), REDUCE[reduction](d ** 2))
    np.testing.assert_allclose(F.l1_loss(*tensors(x, t), reduction=reduction).numpy(), REDUCE[reduction](np.abs(d)))
    np.testing.assert_allclose(F.smooth_l1_loss(*tensors(x, t), reduction=reduction, beta=beta).numpy(),
                               REDUCE[reduction](huber), rtol=1e-12)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss"])
def test_regression_losses_gradcheck(name):
    rng = np.random.default_rng(6)
    x = rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.2, 2, (3, 4))  # away from the kinks at d = 0, +-1
    t = np.zeros((3, 4))
    assert tg.gradcheck(lambda a, b: getattr(F, name)(a, b), tensors(x, t, requires_grad=True))


# ----------------------------------------------------------------------------- PyTorch as an extra oracle
def test_losses_match_pytorch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(7)
    x, cls = rng.standard_normal((3, 4, 2, 2)), rng.integers(0, 4, (3, 2, 2))
    cls[0, 0, 0] = 2
    cls[1, 1, 1] = -100
    w = rng.uniform(0.5, 2, 4)
    probs, t = rng.uniform(0.05, 0.95, (3, 4)), rng.random((3, 4))
    cases = [
        (lambda a: F.cross_entropy(a, tg.Tensor(cls), tg.Tensor(w), label_smoothing=0.2),
         lambda a: tf.cross_entropy(a, torch.tensor(cls), torch.tensor(w), label_smoothing=0.2), x),
        (lambda a: F.cross_entropy(a, tg.Tensor(cls), reduction="none"),
         lambda a: tf.cross_entropy(a, torch.tensor(cls), reduction="none"), x),
        (lambda a: F.binary_cross_entropy_with_logits(a, tg.Tensor(t), pos_weight=tg.Tensor(w)),
         lambda a: tf.binary_cross_entropy_with_logits(a, torch.tensor(t), pos_weight=torch.tensor(w)), x[:, :, 0, 0]),
        (lambda a: F.binary_cross_entropy(a, tg.Tensor(t)),
         lambda a: tf.binary_cross_entropy(a, torch.tensor(t)), probs),
        (lambda a: F.smooth_l1_loss(a, tg.Tensor(t), beta=0.5),
         lambda a: tf.smooth_l1_loss(a, torch.tensor(t), beta=0.5), probs),
    ]
    for ours, theirs, array in cases:
        a, b = tg.Tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)
        out, ref = ours(a), theirs(b)
        gy = rng.standard_normal(out.shape)
        out.backward(gy)
        ref.backward(torch.tensor(gy))
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- errors
def _scores(*shape):
    return tg.zeros(*shape)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.cross_entropy(_scores(4, 3), tg.Tensor(np.zeros(5, dtype=np.int64))), ValueError,
     r"cross_entropy: target shape \(5,\) does not match input shape \(4, 3\); expected \(4,\)"),
    (lambda: F.cross_entropy(_scores(4, 3), tg.Tensor(np.zeros(4, dtype=np.float32))), TypeError,
     r"cross_entropy: target must hold integer class indices \(int64\) of shape \(4,\), got dtype float32"),
    (lambda: F.cross_entropy(_scores(4, 3), tg.Tensor(np.array([0, 1, 3, 2]))), ValueError,
     r"cross_entropy: target holds class index 3, outside \[0, 3\) for input of shape \(4, 3\) \(ignore_index=-100\)"),
    (lambda: F.nll_loss(_scores(2, 3, 4), tg.Tensor(np.array([[0, 1, 2, -1], [0, 0, 0, 0]]))), ValueError,
     r"nll_loss: target holds class index -1, outside \[0, 3\)"),
    (lambda: F.cross_entropy(_scores(4, 3), tg.Tensor(np.zeros(4, dtype=np.int64)), weight=tg.ones(2)), ValueError,
     r"cross_entropy: weight must be a Tensor of shape \(3,\), one per class, got \(2,\)"),
    (lambda: F.cross_entropy(_scores(4, 3), tg.Tensor(np.zeros(4, dtype=np.int64)), reduction="avg"), ValueError,
     r"cross_entropy: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"),
    (lambda: F.binary_cross_entropy(tg.Tensor(np.array([0.5, 1.5], dtype=np.float32)), tg.zeros(2)), ValueError,
     r"binary_cross_entropy: input must hold probabilities in \[0, 1\], but its values span \[0.5, 1.5\]"),
    (lambda: F.binary_cross_entropy_with_logits(_scores(4, 3), tg.zeros(4)), ValueError,
     r"binary_cross_entropy_with_logits: target shape \(4,\) must equal input shape \(4, 3\)"),
    (lambda: F.mse_loss(_scores(4, 3), tg.zeros(3, 4)), ValueError,
     r"mse_loss: target shape \(3, 4\) must equal input shape \(4, 3\)"),
    (lambda: F.dice_loss(_scores(2, 3, 4, 4), tg.Tensor(np.full((2, 4, 4), 3))), ValueError,
     r"dice_loss: target holds class index 3, outside \[0, 3\)"),
    (lambda: F.binary_cross_entropy_with_logits(_scores(4, 3), tg.zeros(4, 3), weight=tg.ones(4)), ValueError,
     r"binary_cross_entropy_with_logits: weight of shape \(4,\) does not broadcast to the input's shape \(4, 3\)"),
    (lambda: F.binary_cross_entropy_with_logits(_scores(4, 3), tg.zeros(4, 3), pos_weight=tg.ones(4)), ValueError,
     r"binary_cross_entropy_with_logits: pos_weight of shape \(4,\) does not broadcast"),
    (lambda: F.binary_cross_entropy(tg.zeros(4, 3), tg.zeros(4, 3), weight=tg.ones(3, 3)), ValueError,
     r"binary_cross_entropy: weight of shape \(3, 3\) does not broadcast to the input's shape \(4, 3\)"),
    (lambda: F.cross_entropy(_scores(4, 3), tg.zeros(4, 3), ignore_index=0), ValueError,
     r"cross_entropy: ignore_index=0 applies to class-index targets only"),
    (lambda: F.cross_entropy(_scores(3), tg.Tensor(np.zeros(2, dtype=np.int64))), ValueError,
     r"cross_entropy: a 1-D input \(3,\) is one sample and needs a 0-d class index as target, got target shape"),
    (lambda: F.nll_loss(_scores(3), tg.Tensor(np.array(3))), ValueError,
     r"nll_loss: target holds class index 3, outside \[0, 3\)"),
    (lambda: F.nll_loss(tg.zeros(()), tg.Tensor(np.array(0))), ValueError,
     r"nll_loss: input must be a Tensor of scores \(N, C\) or \(N, C, d1, ...\), or \(C,\) for one sample"),
    (lambda: F.dice_loss(_scores(3), tg.Tensor(np.array(0))), ValueError, r"dice_loss: input must be a Tensor"),
    (lambda: F.nll_loss(_scores(4, 3), tg.Tensor(np.zeros(4, dtype=np.int64)), reduction="mean "), ValueError,
     r"nll_loss: reduction must be one of"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "soft_cross_entropy"])
def test_regression_losses_compute_in_the_wider_float_dtype(name):
    """float32 input with a float64 target (or the reverse) gives a float64 loss, as PyTorch's; the
    input's gradient keeps the input's dtype; an integer target takes the input's dtype."""
    loss = (lambda x, t: F.cross_entropy(x, t)) if name == "soft_cross_entropy" else getattr(F, name)
    rng = np.random.default_rng(0)
    x32 = tg.Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    t64 = tg.Tensor(rng.dirichlet(np.ones(3), 4))
    out = loss(x32, t64)
    out.backward()
    assert out.dtype == np.float64 and x32.grad.dtype == np.float32
    assert loss(x32.detach().double(), t64.float()).dtype == np.float64
    if name != "soft_cross_entropy":
        assert loss(x32, tg.tensor(rng.integers(0, 2, (4, 3)))).dtype == np.float32


def test_regression_loss_dtypes_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((4, 3)), rng.dirichlet(np.ones(3), 4)
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "cross_entropy"):
        for xd, td in ((np.float32, np.float64), (np.float64, np.float32)):
            ours = getattr(F, name)(tg.tensor(x.astype(xd)), tg.tensor(t.astype(td)))
            theirs = getattr(torch.nn.functional, name)(torch.tensor(x.astype(xd)), torch.tensor(t.astype(td)))
            assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), (name, xd, td)
            np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)


def test_bce_with_logits_computes_in_the_targets_float_dtype_and_bce_refuses_a_mix():
    """PyTorch's rules: binary_cross_entropy_with_logits takes the target's dtype when both are floating
    (whichever is wider); the input's gradient keeps the input's dtype; binary_cross_entropy refuses
    floating dtypes that differ."""
    rng = np.random.default_rng(2)
    logits, target = rng.standard_normal((4, 3)), rng.random((4, 3))
    for x_dtype, t_dtype in ((np.float32, np.float64), (np.float64, np.float32), (np.float16, np.float32)):
        x = tg.Tensor(logits.astype(x_dtype), requires_grad=True)
        t = tg.Tensor(target.astype(t_dtype))
        loss = F.binary_cross_entropy_with_logits(x, t)
        loss.backward()
        assert loss.dtype == t_dtype and x.grad.dtype == x_dtype
        x_t = logits.astype(x_dtype).astype(t_dtype).astype(np.float64)     # the input as the target's dtype
        t_64 = target.astype(t_dtype).astype(np.float64)
        expected = np.mean(np.logaddexp(0, x_t) - x_t * t_64)
        np.testing.assert_allclose(loss.item(), expected, rtol=1e-5 if t_dtype == np.float32 else 1e-12)
    probabilities = tg.Tensor(rng.random((4, 3)).astype(np.float32))
    with pytest.raises(TypeError, match=r"binary_cross_entropy: target dtype float64 must equal the input's "
                                        r"dtype float32"):
        F.binary_cross_entropy(probabilities, tg.Tensor(target))


def test_bce_dtypes_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((4, 3)), rng.random((4, 3))
    for xd, td in ((np.float32, np.float64), (np.float64, np.float32), (np.float16, np.float32)):
        ours = F.binary_cross_entropy_with_logits(tg.tensor(x.astype(xd)), tg.tensor(t.astype(td)))
        theirs = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x.astype(xd)),
                                                                      torch.tensor(t.astype(td)))
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), (xd, td)
        # PyTorch evaluates log-sigmoid in the input's dtype: float16 logits give float16 accuracy there
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-3 if xd == np.float16 else 1e-6)
        p = 1 / (1 + np.exp(-x))
        with pytest.raises(RuntimeError):
            torch.nn.functional.binary_cross_entropy(torch.tensor(p.astype(xd)), torch.tensor(t.astype(td)))
        with pytest.raises(TypeError):
            F.binary_cross_entropy(tg.tensor(p.astype(xd)), tg.tensor(t.astype(td)))
