"""Optimisers against hand-computed steps (and torch.optim as an extra), parameter groups, state_dict,
discriminative learning rates and gradient clipping."""
import math

import numpy as np
import pytest
from error_types import raised

import tinygrad_cv as tg
from tinygrad_cv import optim
from tinygrad_cv.nn import Parameter
from tinygrad_cv.optim import clip_grad_norm_
from conftest import DEVICES


def scalar_param(value=1.0, device="cpu"):
    return Parameter(np.array([value], dtype=np.float64), device=device)


def run_steps(opt, param, grads):
    """Set each gradient by hand and step; return the parameter value after every step."""
    values = []
    for g in grads:
        param.grad = tg.Tensor(np.array([g], dtype=param.dtype), device=param.device)
        opt.step()
        values.append(float(param.numpy()[0]))
    return values


# ----------------------------------------------------------------------------- SGD by hand
def test_sgd_plain_step():
    p = Parameter(np.array([1.0, 2.0], dtype=np.float32))
    p.grad = tg.tensor(np.array([0.5, -1.0], dtype=np.float32))
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.numpy(), [0.95, 2.1], rtol=1e-6)


def test_sgd_momentum_dampening_by_hand():
    # step 1: buf = g1 = 1;                       p = 1 - 0.1 * 1 = 0.9
    # step 2: buf = 0.9 * 1 + (1 - 0.5) * 2 = 1.9;  p = 0.9 - 0.1 * 1.9 = 0.71
    p = scalar_param()
    values = run_steps(optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5), p, [1.0, 2.0])
    np.testing.assert_allclose(values, [0.9, 0.71], rtol=1e-12)


def test_sgd_nesterov_by_hand():
    # step 1: buf = 1;               d = 1 + 0.9 * 1 = 1.9;    p = 1 - 0.19 = 0.81
    # step 2: buf = 0.9 * 1 + 2 = 2.9; d = 2 + 0.9 * 2.9 = 4.61; p = 0.81 - 0.461 = 0.349
    p = scalar_param()
    values = run_steps(optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True), p, [1.0, 2.0])
    np.testing.assert_allclose(values, [0.81, 0.349], rtol=1e-12)


def test_sgd_weight_decay_by_hand():
    # d = g + wd * p = 1 + 0.1 * 1 = 1.1;  p = 1 - 0.1 * 1.1 = 0.89
    p = scalar_param()
    assert run_steps(optim.SGD([p], lr=0.1, weight_decay=0.1), p, [1.0]) == pytest.approx([0.89], rel=1e-12)


# ----------------------------------------------------------------------------- Adam by hand
def adam_reference(p, grads, lr, beta1, beta2, eps, wd=0.0, decoupled=False):
    """Scalar Adam written out from the paper's formulas, step by step."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(p)
    return out


def test_adam_first_steps_by_hand():
    # step 1 normalises the gradient: m_hat = g, v_hat = g^2, so p = 1 - 0.1 * sign(2) = 0.9.
    # step 2 (g = -1): m = 0.9 * 0.2 - 0.1 = 0.08, v = 0.999 * 0.004 + 0.001 = 0.004996,
    #   m_hat = 0.08 / 0.19, v_hat = 0.004996 / 0.001999, p = 0.9 - 0.1 * m_hat / sqrt(v_hat) = 0.873366...
    p = scalar_param()
    values = run_steps(optim.Adam([p], lr=0.1), p, [2.0, -1.0])
    second = 0.9 - 0.1 * (0.08 / 0.19) / math.sqrt(0.004996 / 0.001999)
    np.testing.assert_allclose(values, [0.9, second], rtol=1e-7)
    assert second == pytest.approx(0.873366, abs=1e-6)


def test_adam_and_adamw_weight_decay_differ_as_published():
    # Adam puts the L2 term in the gradient, which step 1 normalises away: p = 0.9.
    # AdamW decays the weight first: p = 1 * (1 - 0.1 * 0.1) - 0.1 = 0.89.
    p, q = scalar_param(), scalar_param()
    assert run_steps(optim.Adam([p], lr=0.1, weight_decay=0.1), p, [2.0]) == pytest.approx([0.9], abs=1e-7)
    assert run_steps(optim.AdamW([q], lr=0.1, weight_decay=0.1), q, [2.0]) == pytest.approx([0.89], abs=1e-7)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_many_steps_match_scalar_reference(decoupled):
    grads = [0.3, -1.2, 0.7, 2.0, -0.1, 0.05]
    cls = optim.AdamW if decoupled else optim.Adam
    p = scalar_param(0.5)
    values = run_steps(cls([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.2), p, grads)
    expected = adam_reference(0.5, grads, 0.01, 0.8, 0.95, 1e-6, wd=0.2, decoupled=decoupled)
    np.testing.assert_allclose(values, expected, rtol=1e-10)


def test_adamw_default_weight_decay_is_pytorchs():
    p = scalar_param()
    assert optim.AdamW([p]).param_groups[0]["weight_decay"] == 1e-2
    assert optim.Adam([p]).param_groups[0]["weight_decay"] == 0


# ----------------------------------------------------------------------------- RMSprop and Adagrad by hand
def rmsprop_reference(p, grads, lr, alpha, eps, wd=0.0, momentum=0.0, centered=False):
    """Scalar RMSprop written out from its definition, step by step."""
    v = m = b = 0.0
    out = []
    for g in grads:
        g = g + wd * p
        v = alpha * v + (1 - alpha) * g ** 2
        m = alpha * m + (1 - alpha) * g
        rms = math.sqrt(v - m ** 2 if centered else v) + eps
        b = momentum * b + g / rms
        p = p - lr * (b if momentum else g / rms)
        out.append(p)
    return out


def adagrad_reference(p, grads, lr, lr_decay, eps, wd=0.0, initial=0.0):
    total, out = initial, []
    for t, g in enumerate(grads, start=1):
        g = g + wd * p
        total += g * g
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (math.sqrt(total) + eps)
        out.append(p)
    return out


def test_rmsprop_first_step_by_hand():
    # v = (1 - 0.99) * 2^2 = 0.04, sqrt(v) = 0.2: p = 1 - 0.01 * 2 / (0.2 + 1e-8)
    p = scalar_param()
    values = run_steps(optim.RMSprop([p]), p, [2.0])
    assert values == pytest.approx([1 - 0.01 * 2 / (0.2 + 1e-8)], rel=1e-12)


def test_rmsprop_centered_first_step_by_hand():
    # v = 0.1 * 4 = 0.4, m = 0.1 * 2 = 0.2: sqrt(0.4 - 0.04) = 0.6; p = 1 - 0.1 * 2 / 0.6 = 2/3
    p = scalar_param()
    values = run_steps(optim.RMSprop([p], lr=0.1, alpha=0.9, eps=1e-12, centered=True), p, [2.0])
    assert values == pytest.approx([2 / 3], rel=1e-10)


@pytest.mark.parametrize("kwargs", [dict(), dict(momentum=0.7, weight_decay=0.1), dict(centered=True),
                                    dict(centered=True, momentum=0.3, alpha=0.8, eps=1e-4)])
def test_rmsprop_many_steps_match_scalar_reference(kwargs):
    grads = list(np.random.default_rng(3).standard_normal(20))
    p = scalar_param(0.5)
    ours = run_steps(optim.RMSprop([p], lr=0.01, **kwargs), p, grads)
    ref = rmsprop_reference(0.5, grads, 0.01, kwargs.get("alpha", 0.99), kwargs.get("eps", 1e-8),
                            kwargs.get("weight_decay", 0.0), kwargs.get("momentum", 0.0), kwargs.get("centered", False))
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_adagrad_first_steps_by_hand():
    # step 1: s = 4, p = 1 - 0.1 * 2 / 2 = 0.9; step 2 (lr_decay 0.5): s = 4 + 1 = 5,
    #   p = 0.9 - 0.1 / 1.5 * 1 / sqrt(5)
    p = scalar_param()
    values = run_steps(optim.Adagrad([p], lr=0.1, lr_decay=0.5, eps=1e-300), p, [2.0, 1.0])
    np.testing.assert_allclose(values, [0.9, 0.9 - 0.1 / 1.5 / math.sqrt(5)], rtol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(), dict(lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.2)])
def test_adagrad_many_steps_match_scalar_reference(kwargs):
    grads = list(np.random.default_rng(4).standard_normal(20))
    p = scalar_param(0.5)
    ours = run_steps(optim.Adagrad([p], lr=0.1, **kwargs), p, grads)
    ref = adagrad_reference(0.5, grads, 0.1, kwargs.get("lr_decay", 0.0), 1e-10, kwargs.get("weight_decay", 0.0),
                            kwargs.get("initial_accumulator_value", 0.0))
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_rmsprop_and_adagrad_defaults_are_pytorchs():
    rms, ada = optim.RMSprop([scalar_param()]), optim.Adagrad([scalar_param()])
    assert {k: v for k, v in rms.param_groups[0].items() if k != "params"} == dict(
        lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)
    assert {k: v for k, v in ada.param_groups[0].items() if k != "params"} == dict(
        lr=0.01, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10)
    assert optim.SGD([scalar_param()]).param_groups[0]["lr"] == 1e-3


def test_rmsprop_state_keys_follow_its_configuration():
    p, q = scalar_param(), scalar_param()
    plain = _stepped(optim.RMSprop([p]), [p]).state_dict()["state"][0]
    full = _stepped(optim.RMSprop([q], momentum=0.5, centered=True), [q]).state_dict()["state"][0]
    assert sorted(plain) == ["square_avg", "step"]
    assert sorted(full) == ["grad_avg", "momentum_buffer", "square_avg", "step"]
    bad = dict(full, exp_avg=full["square_avg"])
    with pytest.raises(ValueError, match=r"RMSprop keeps \['square_avg', 'step'\] \(and, by configuration, "
                                         r"\['grad_avg', 'momentum_buffer'\]\) per parameter"):
        optim.RMSprop([scalar_param()]).load_state_dict({"state": [bad], "param_groups": [
            {**_stepped(optim.RMSprop([r := scalar_param()]), [r]).state_dict()["param_groups"][0]}]})


# ----------------------------------------------------------------------------- zero_grad and closures
def test_zero_grad_sets_none_by_default_and_zeros_when_asked():
    a, b, c = scalar_param(), scalar_param(), scalar_param()
    opt = optim.SGD([a, b, c], lr=0.1)
    held = np.array([3.0])
    a.grad, b.grad = tg.tensor(np.array([2.0])), tg.Tensor.wrap(held, "cpu")
    grad_object = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is grad_object and a.grad.numpy().tolist() == [0.0] and b.grad.numpy().tolist() == [0.0]
    assert c.grad is None and held.tolist() == [3.0]  # a caller's array is not written
    assert a.grad.dtype == np.float64
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_zero_grad_to_zeros_then_backward_accumulates_from_zero():
    w = Parameter(np.array([1.0, 2.0]))
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    opt.zero_grad(set_to_none=False)
    (w * 3.0).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])


def test_step_runs_the_closure_first_and_returns_its_loss():
    w = Parameter(np.array([1.0, -2.0]))
    opt = optim.SGD([w], lr=0.1)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        calls.append(w.numpy().tolist())
        return loss

    loss = opt.step(closure)
    assert calls == [[1.0, -2.0]] and float(loss.item()) == 5.0
    np.testing.assert_allclose(w.numpy(), [1.0 - 0.2, -2.0 + 0.4], rtol=1e-12)  # grad 2w
    assert opt.step() is None
    with pytest.raises(TypeError, match="SGD.step: closure must be a function that returns the loss, got a float"):
        opt.step(1.0)


def test_closure_matches_torch():
    torch = pytest.importorskip("torch")
    w, t = Parameter(np.array([1.0, -2.0])), torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt, peer = optim.Adagrad([w], lr=0.5), torch.optim.Adagrad([t], lr=0.5)

    def closure(param, optimizer):
        def run():
            optimizer.zero_grad()
            loss = (param * param * param).sum()
            loss.backward()
            return loss
        return run

    for _ in range(3):
        ours, theirs = opt.step(closure(w, opt)), peer.step(closure(t, peer))
        assert float(ours.item()) == pytest.approx(float(theirs.item()), rel=1e-12)
    np.testing.assert_allclose(w.numpy(), t.detach().numpy(), rtol=1e-12)
    peer.zero_grad(set_to_none=False)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.numpy(), t.grad.numpy())


# ----------------------------------------------------------------------------- against torch.optim
TORCH_CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.85, 0.99), eps=1e-7, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.05, momentum=0.8)),
    ("RMSprop", dict(lr=0.02, centered=True)),
    ("RMSprop", dict(lr=0.02, centered=True, momentum=0.5, weight_decay=0.01)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.3, eps=1e-6)),
]


@pytest.mark.parametrize("name,kwargs", TORCH_CASES)
def test_matches_torch_optim(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    init = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    grads = [[rng.standard_normal(a.shape) for a in init] for _ in range(20)]
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt, peer = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    for step_grads in grads:
        for p, t, g in zip(ours, theirs, step_grads):
            p.grad, t.grad = tg.tensor(g), torch.tensor(g)
        opt.step()
        peer.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- behaviour
@pytest.mark.parametrize("device", DEVICES)
def test_step_is_in_place_and_builds_no_graph(device):
    p = Parameter(np.ones((2, 3), dtype=np.float32), device=device)
    buffer = p.data
    p.grad = tg.ones(2, 3, device=device)
    optim.Adam([p], lr=0.1).step()
    assert p.data is buffer and p.is_leaf and p.requires_grad and p.dtype == np.float32
    np.testing.assert_allclose(p.numpy(), np.full((2, 3), 0.9), rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make,reference", [
    (lambda ps: optim.RMSprop(ps, lr=0.1, momentum=0.5, centered=True),
     lambda grads: rmsprop_reference(1.0, grads, 0.1, 0.99, 1e-8, momentum=0.5, centered=True)),
    (lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5),
     lambda grads: adagrad_reference(1.0, grads, 0.1, 0.1, 1e-10, initial=0.5)),
])
def test_rmsprop_and_adagrad_step_float32_in_place_on_every_device(device, make, reference):
    p = Parameter(np.ones((2, 3), dtype=np.float32), device=device)
    buffer, opt = p.data, make([p])
    for g in (1.0, -0.5, 2.0):
        p.grad = tg.full((2, 3), g, dtype=np.float32, device=device)
        opt.step()
    assert p.data is buffer and p.dtype == np.float32
    np.testing.assert_allclose(p.numpy(), np.full((2, 3), reference([1.0, -0.5, 2.0])[-1]), rtol=1e-5)
    assert all(v.dtype == np.float32 for v in opt.state_dict()["state"][0].values() if isinstance(v, np.ndarray))


def test_parameters_without_grad_are_left_alone():
    a, b = scalar_param(1.0), scalar_param(2.0)
    a.grad = tg.tensor(np.array([1.0]))
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    opt.step()
    assert b.numpy()[0] == 2.0 and b not in opt.state and a.numpy()[0] == 0.5


def test_parameter_groups_have_their_own_learning_rates():
    a, b = scalar_param(), scalar_param()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    a.grad = b.grad = tg.tensor(np.array([1.0]))
    opt.step()
    assert (a.numpy()[0], b.numpy()[0]) == pytest.approx((0.9, 0.99))


def test_zero_grad_clears_every_group():
    a, b = scalar_param(), scalar_param()
    opt = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    a.grad = b.grad = tg.tensor(np.array([1.0]))
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_set_hyper_drives_momentum_and_beta1():
    p, q = scalar_param(), scalar_param()
    sgd, adam = optim.SGD([p], lr=0.1, momentum=0.5), optim.Adam([q])
    sgd.set_hyper("mom", 0.8)
    adam.set_hyper("mom", 0.7)
    assert sgd.param_groups[0]["momentum"] == 0.8
    assert adam.param_groups[0]["betas"] == (0.7, 0.999)
    sgd.set_hyper("lr", [0.3])
    assert sgd.param_groups[0]["lr"] == 0.3
    with pytest.raises(ValueError, match="2 values but the optimiser has 1"):
        sgd.set_hyper("lr", [0.1, 0.2])


def _only_plain_values(obj):
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _only_plain_values(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_only_plain_values(v) for v in obj)
    return isinstance(obj, (np.ndarray, int, float, str, bool, type(None)))


@pytest.mark.parametrize("cls,kwargs", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.AdamW, dict(lr=0.1)),
                                        (optim.RMSprop, dict(lr=0.1, momentum=0.5, centered=True)),
                                        (optim.RMSprop, dict(lr=0.1)),
                                        (optim.Adagrad, dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5))])
def test_state_dict_round_trip_continues_identically(cls, kwargs):
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal((2, 2)) for _ in range(5)]

    def fresh():
        p = Parameter(np.eye(2))
        return p, cls([{"params": [p], "lr": kwargs["lr"]}], **kwargs)

    p, opt = fresh()
    for g in grads[:2]:
        p.grad = tg.tensor(g)
        opt.step()
    state = opt.state_dict()
    assert _only_plain_values(state)
    q, other = fresh()
    q.data = p.data.copy()
    other.load_state_dict(state)
    for g in grads[2:]:
        p.grad, q.grad = tg.tensor(g), tg.tensor(g)
        opt.step()
        other.step()
    np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_load_state_dict_rejects_other_shapes_and_groups():
    p = Parameter(np.ones((2, 2)))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = tg.ones(2, 2, dtype=np.float64)
    opt.step()
    with pytest.raises(ValueError, match=r"momentum_buffer \(2, 2\) vs \(3,\)"):
        optim.SGD([Parameter(np.ones(3))], lr=0.1).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match=r"groups of sizes \[1\] but this one has \[2\]"):
        optim.SGD([Parameter(np.ones(3)), Parameter(np.ones(2))], lr=0.1).load_state_dict(opt.state_dict())


@pytest.mark.parametrize("make,message", [
    (lambda: optim.SGD([], lr=0.1), "SGD: optimizer got an empty parameter list"),
    (lambda: optim.Adam(iter(())), "Adam: optimizer got an empty parameter list"),
    (lambda: optim.Adam([scalar_param()], lr=-1e-3), r"lr must be a finite number in \[0.0, inf\), got -0.001"),
    (lambda: optim.SGD([scalar_param()], lr=0.1, nesterov=True), "nesterov needs momentum > 0"),
    (lambda: optim.Adam([scalar_param()], betas=(0.9, 1.0)),
     r"betas\[1\] must be a finite number in \[0.0, 1.0\), got 1.0"),
    (lambda: optim.SGD([np.ones(3)], lr=0.1), "floating-point Tensors, got ndarray"),
])
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("make,message", [
    (lambda p: optim.Adam([p], lr=math.inf), r"Adam: lr must be a finite number in \[0.0, inf\), got inf"),
    (lambda p: optim.SGD([p], lr=math.nan), r"SGD: lr must be a finite number .*got nan"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=math.nan), r"SGD: momentum must be .*got nan"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=1.0), r"momentum must be a finite number in \[0.0, 1.0\)"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=-0.5), r"momentum must be .*got -0.5"),
    (lambda p: optim.SGD([p], lr=0.1, dampening=math.inf), r"SGD: dampening must be a finite number"),
    (lambda p: optim.SGD([p], lr=0.1, momentum=0.9, nesterov="yes"), r"nesterov must be True or False"),
    (lambda p: optim.SGD([p], lr=0.1, weight_decay=-1e-4), r"weight_decay must be .*got -0.0001"),
    (lambda p: optim.Adam([p], weight_decay=math.nan), r"Adam: weight_decay must be .*got nan"),
    (lambda p: optim.Adam([p], eps=0.0), r"Adam: eps must be a finite number in \(0.0, inf\), got 0.0"),
    (lambda p: optim.AdamW([p], betas=(math.nan, 0.99)), r"AdamW: betas\[0\] must be .*got nan"),
    (lambda p: optim.Adam([p], betas=(0.9,)), r"betas must be a pair"),
    (lambda p: optim.SGD([{"params": [p], "lr": -1.0}], lr=0.1), r"lr must be .*got -1.0"),
    (lambda p: optim.RMSprop([p], lr=-0.1), r"RMSprop: lr must be a finite number in \[0.0, inf\), got -0.1"),
    (lambda p: optim.RMSprop([p], alpha=1.0), r"RMSprop: alpha must be a finite number in \[0.0, 1.0\), got 1.0"),
    (lambda p: optim.RMSprop([p], alpha=-0.1), r"RMSprop: alpha must be .*got -0.1"),
    (lambda p: optim.RMSprop([p], momentum=math.nan), r"RMSprop: momentum must be .*got nan"),
    (lambda p: optim.RMSprop([p], eps=0.0), r"RMSprop: eps must be a finite number in \(0.0, inf\), got 0.0"),
    (lambda p: optim.RMSprop([p], weight_decay=-1.0), r"RMSprop: weight_decay must be .*got -1.0"),
    (lambda p: optim.RMSprop([p], centered=1), r"RMSprop: centered must be True or False, got 1"),
    (lambda p: optim.Adagrad([p], lr_decay=-0.1), r"Adagrad: lr_decay must be a finite number in \[0.0, inf\)"),
    (lambda p: optim.Adagrad([p], initial_accumulator_value=-1.0),
     r"Adagrad: initial_accumulator_value must be .*got -1.0"),
    (lambda p: optim.Adagrad([p], eps=0.0), r"Adagrad: eps must be a finite number in \(0.0, inf\), got 0.0"),
    (lambda p: optim.Adagrad([p], lr=math.inf), r"Adagrad: lr must be .*got inf"),
])
def test_impossible_hyper_parameters_are_refused_at_construction(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make(scalar_param())


def test_a_zero_learning_rate_is_allowed_as_in_pytorch():
    p = scalar_param(2.0)
    assert run_steps(optim.SGD([p], lr=0.0, momentum=0.9), p, [1.0, 1.0]) == [2.0, 2.0]


def test_set_hyper_checks_each_value_and_keeps_the_old_one_on_error():
    sgd, adam = optim.SGD([scalar_param()], lr=0.1, momentum=0.5), optim.Adam([scalar_param()])
    with pytest.raises(ValueError, match="SGD: lr must be a finite number .*got nan"):
        sgd.set_hyper("lr", math.nan)
    with pytest.raises(ValueError, match=r"Adam: betas\[0\] must be .*got 1.5"):
        adam.set_hyper("mom", 1.5)
    with pytest.raises(ValueError, match=r"set_hyper\('lrr'\): unknown hyper-parameter"):
        sgd.set_hyper("lrr", 0.1)
    assert sgd.param_groups[0]["lr"] == 0.1 and adam.param_groups[0]["betas"] == (0.9, 0.999)
    assert "lrr" not in sgd.param_groups[0]
    two = optim.SGD([{"params": [scalar_param()]}, {"params": [scalar_param()]}], lr=0.1)
    with pytest.raises(ValueError, match="got -0.2"):
        two.set_hyper("lr", [0.3, -0.2])
    assert [g["lr"] for g in two.param_groups] == [0.1, 0.1]  # all or nothing


def test_param_group_entries_set_directly_are_checked():
    opt = optim.SGD([scalar_param()], lr=0.1, momentum=0.9, nesterov=True)
    group = opt.param_groups[0]
    assert isinstance(group, dict)
    with pytest.raises(ValueError, match="SGD: lr must be .*got nan"):
        group["lr"] = math.nan
    with pytest.raises(ValueError, match="nesterov needs momentum > 0"):
        group.update(momentum=0.0)
    with pytest.raises(ValueError, match="momentum must be .*got 2"):
        group.update({"momentum": 2})
    assert group.setdefault("momentum", 0.5) == 0.9
    assert group["lr"] == 0.1 and group["momentum"] == 0.9
    group["lr"] = 0.05
    group["initial_lr"] = 0.01  # a schedule's own entries are not the optimiser's to check
    assert group["lr"] == 0.05


@pytest.mark.parametrize("params,message", [
    (lambda: tg.nn.Linear(2, 2), r"SGD: params must be an iterable .*got a Linear; pass model.parameters\(\)"),
    (lambda: scalar_param(), r"params must be an iterable .*got a Parameter"),
    (lambda: 3.0, r"params must be an iterable .*got a float"),
    (lambda: {"params": [scalar_param()]}, r"got a dict; pass model.parameters\(\) \(or \[tensor\], or \[\{'params'"),
])
def test_params_that_are_not_an_iterable_of_tensors_are_refused(params, message):
    with pytest.raises(TypeError, match=message):
        optim.SGD(params(), lr=0.1)


def test_an_exhausted_generator_is_an_empty_parameter_list():
    model = tg.nn.Linear(2, 2)
    params = model.parameters()
    optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list.*only once"):
        optim.SGD(params, lr=0.1)


def test_a_parameter_given_twice_in_one_group_is_rejected():
    p = scalar_param()
    with pytest.raises(ValueError, match="appears twice"):
        optim.Adam([p, p])


def _stepped(opt, params):
    for p in params:
        p.grad = tg.ones(*p.shape, dtype=p.dtype)
    opt.step()
    return opt


def test_load_state_dict_refuses_another_optimisers_state_and_changes_nothing():
    sgd_state = _stepped(optim.SGD([p := Parameter(np.ones(2))], lr=0.1, momentum=0.9), [p]).state_dict()
    q = Parameter(np.ones(2))
    adam = _stepped(optim.Adam([q], lr=0.01), [q])
    before = adam.state_dict()
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: the saved parameter groups lack \['betas', "
                                         r"'eps'\].*another kind of optimiser"):
        adam.load_state_dict(sgd_state)
    after = adam.state_dict()
    assert after["param_groups"] == before["param_groups"]
    np.testing.assert_array_equal(after["state"][0]["exp_avg"], before["state"][0]["exp_avg"])
    _stepped(adam, [q])  # still steps (today's failure was a KeyError: 'step' here)
    adam_state = adam.state_dict()
    r = Parameter(np.ones(2))
    with pytest.raises(ValueError, match=r"lack \['dampening', 'momentum', 'nesterov'\]"):
        optim.SGD([r], lr=0.1, momentum=0.9).load_state_dict(adam_state)


def test_load_state_dict_checks_the_per_parameter_state_keys():
    p = Parameter(np.ones(2))
    state = _stepped(optim.Adam([p]), [p]).state_dict()
    del state["state"][0]["exp_avg_sq"]
    q = Parameter(np.ones(2))
    with pytest.raises(ValueError, match=r"Adam keeps \['exp_avg', 'exp_avg_sq', 'step'\] per parameter, but "
                                         r"the saved state has parameter 0: \['exp_avg', 'step'\]"):
        optim.Adam([q]).load_state_dict(state)


def test_load_state_dict_checks_saved_values_all_or_nothing():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    state = _stepped(optim.SGD([p], lr=0.1, momentum=0.9), [p]).state_dict()
    state["param_groups"][0]["lr"] = math.nan
    target = optim.SGD([q], lr=0.5, momentum=0.8)
    with pytest.raises(ValueError, match="SGD: lr must be .*got nan"):
        target.load_state_dict(state)
    assert target.param_groups[0]["lr"] == 0.5 and target.state == {}
    with pytest.raises(TypeError, match=r"expected a dict with 'state' and 'param_groups'.*got a list"):
        target.load_state_dict([])


def test_a_gradient_of_another_shape_is_an_error_not_a_broadcast():
    p = Parameter(np.ones(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = tg.tensor(np.array([1.0]))
    with pytest.raises(ValueError, match=r"SGD.step: a parameter of shape \(3,\) has a gradient of shape \(1,\)"):
        opt.step()
    np.testing.assert_array_equal(p.numpy(), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("max_norm", [-1.0, 0.0, math.nan, math.inf])
def test_clip_grad_norm_refuses_a_max_norm_that_is_not_positive(max_norm):
    p = Parameter(np.ones(2))
    p.grad = tg.tensor(np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match=r"clip_grad_norm_: max_norm must be a finite number > 0"):
        clip_grad_norm_([p], max_norm)
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 4.0])  # a negative one used to flip the sign


@pytest.mark.parametrize("call,message", [
    (lambda: optim.lr_range(slice(-1e-3, 1e-2), 3), r"even_mults: start must be a finite number > 0, got -0.001"),
    (lambda: optim.lr_range(slice(0, 1e-2), 3), r"even_mults: start must be .*got 0"),
    (lambda: optim.lr_range(slice(None, math.nan), 2), r"lr_range: hi must be .*got nan"),
    (lambda: optim.lr_range(-1e-3, 2), r"lr_range: the learning rate must be .*got -0.001"),
    (lambda: optim.even_mults(1e-3, 1e-2, 0), r"even_mults: n must be a positive integer, got 0"),
])
def test_discriminative_rates_refuse_non_positive_rates(call, message):
    with pytest.raises(ValueError, match=message):  # (stop / start) ** x of a negative start is complex
        call()


def test_the_errors_pytorch_raises_are_raised_with_its_types():
    torch = pytest.importorskip("torch")

    ours, theirs = (lambda: Parameter(np.ones(2))), (lambda: torch.zeros(2, requires_grad=True))
    cases = [("SGD", lambda p: {"params": p, "lr": 0.1}), ("SGD", lambda p: {"params": [], "lr": 0.1}),
             ("SGD", lambda p: {"params": [p], "lr": -0.1}), ("SGD", lambda p: {"params": [p], "lr": 0.0}),
             ("SGD", lambda p: {"params": [p], "lr": 0.1, "momentum": -0.5}),
             ("SGD", lambda p: {"params": [p], "lr": 0.1, "nesterov": True}),
             ("Adam", lambda p: {"params": [p], "betas": (0.9, 1.0)}),
             ("Adam", lambda p: {"params": [p], "weight_decay": -1.0}),
             ("Adam", lambda p: {"params": [p], "lr": math.nan}),
             ("RMSprop", lambda p: {"params": [p], "alpha": -0.5}),
             ("RMSprop", lambda p: {"params": [p], "momentum": -0.5}),
             ("RMSprop", lambda p: {"params": [p], "eps": -1.0}),
             ("Adagrad", lambda p: {"params": [p], "lr_decay": -0.5}),
             ("Adagrad", lambda p: {"params": [p], "initial_accumulator_value": -1.0}),
             ("Adagrad", lambda p: {"params": [p], "weight_decay": -1.0})]
    for cls, kwargs in cases:
        mine = raised(lambda: getattr(optim, cls)(**kwargs(ours())))
        peer = raised(lambda: getattr(torch.optim, cls)(**kwargs(theirs())))
        assert mine is peer, (cls, kwargs(ours()))


def test_a_parameter_in_two_groups_is_rejected():
    p = scalar_param()
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


# ----------------------------------------------------------------------------- discriminative learning rates
def test_even_mults_is_geometric():
    np.testing.assert_allclose(optim.even_mults(1e-5, 1e-3, 3), [1e-5, 1e-4, 1e-3], rtol=1e-12)
    np.testing.assert_allclose(optim.even_mults(1e-4, 1e-2, 1), [1e-2])


def test_lr_range_follows_fastai():
    np.testing.assert_allclose(optim.lr_range(slice(1e-6, 1e-3), 4), [1e-6, 1e-5, 1e-4, 1e-3], rtol=1e-12)
    np.testing.assert_allclose(optim.lr_range(slice(1e-3), 3), [1e-4, 1e-4, 1e-3], rtol=1e-12)
    np.testing.assert_allclose(optim.lr_range(3e-3, 2), [3e-3, 3e-3])


# ----------------------------------------------------------------------------- gradient clipping
def test_clip_grad_norm_scales_to_max_norm_and_returns_total():
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(1))
    a.grad, b.grad = tg.tensor(np.array([3.0, 4.0])), tg.tensor(np.array([12.0]))
    total = optim.clip_grad_norm_([a, b], max_norm=6.5)  # sqrt(9 + 16 + 144) = 13
    assert total.item() == pytest.approx(13.0)
    coef = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(a.grad.numpy(), [3 * coef, 4 * coef], rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), [12 * coef], rtol=1e-12)


def test_clip_grad_norm_leaves_small_gradients_and_supports_inf_norm():
    a = Parameter(np.zeros(3))
    a.grad = tg.tensor(np.array([1.0, -5.0, 2.0]))
    assert optim.clip_grad_norm_([a], max_norm=100).item() == pytest.approx(math.sqrt(30))
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, -5.0, 2.0])
    assert optim.clip_grad_norm_([a], max_norm=1, norm_type="inf").item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), np.array([1.0, -5.0, 2.0]) / (5 + 1e-6), rtol=1e-12)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal((4, 3)) * 3, rng.standard_normal(7)]
    ours = [Parameter(np.zeros(g.shape)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = tg.tensor(g), torch.tensor(g)
    total = optim.clip_grad_norm_(ours, max_norm=2.0, norm_type=3)
    peer = torch.nn.utils.clip_grad_norm_(theirs, max_norm=2.0, norm_type=3)
    assert total.item() == pytest.approx(peer.item(), rel=1e-6)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-6)


def test_momentum_of_an_optimiser_without_one_is_refused():
    """Adagrad has no momentum-like hyper-parameter: get/set_momentum say so (set once wrote group[None])."""
    p = Parameter(np.ones(2, dtype=np.float32))
    opt = optim.Adagrad([p])
    group = opt.param_groups[0]
    before = dict(group)
    for call in (lambda: opt.get_momentum(group), lambda: opt.set_momentum(group, 0.9)):
        with pytest.raises(TypeError, match="Adagrad has no hyper-parameter that plays momentum's role"):
            call()
    assert dict(group) == before
    sgd = optim.SGD([p], momentum=0.5)
    sgd.set_momentum(sgd.param_groups[0], 0.8)
    assert sgd.get_momentum(sgd.param_groups[0]) == 0.8
