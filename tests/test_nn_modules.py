"""The torch.nn side of issue 16: loss modules, activations, BatchNorm1d, LayerNorm, GroupNorm, ModuleDict,
ParameterList, Module.to's forms, traversal arguments, load_state_dict's report, forward hooks and
zero_grad. Each is checked against a NumPy or hand-computed reference, and against PyTorch when it is
importable (the comparison tests at the end)."""
import math

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import nn


def rng(seed=0):
    return np.random.default_rng(seed)


def t64(a, requires_grad=False):
    return tg.Tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# ----------------------------------------------------------------------------- NumPy references
def np_log_softmax(x, axis=1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def np_cross_entropy(x, t, weight, ignore_index, smoothing):
    """Mean over the kept samples of -(1 - s) w[t] log p[t] - s/C sum_c w[c] log p[c], divided by sum w[t]."""
    logp, c = np_log_softmax(x), x.shape[1]
    total, norm = 0.0, 0.0
    for i, ti in enumerate(t):
        if ti == ignore_index:
            continue
        total += -(1 - smoothing) * weight[ti] * logp[i, ti] - smoothing / c * (weight * logp[i]).sum()
        norm += weight[ti]
    return total / norm


# ----------------------------------------------------------------------------- loss modules
def test_cross_entropy_loss_keeps_weight_ignore_index_and_smoothing():
    x, t = rng().standard_normal((6, 4)), np.array([0, 3, 1, -1, 2, 3])
    w = np.array([0.5, 1.0, 2.0, 1.5])
    loss = nn.CrossEntropyLoss(weight=t64(w), ignore_index=-1, label_smoothing=0.2)
    np.testing.assert_allclose(loss(t64(x), tg.tensor(t)).item(), np_cross_entropy(x, t, w, -1, 0.2), rtol=1e-12)
    assert list(loss.state_dict()) == ["weight"]  # a buffer, as in PyTorch


def test_nll_loss_sum_and_none():
    logp, t = np_log_softmax(rng(1).standard_normal((5, 3))), np.array([2, 0, 1, 1, 0])
    picked = -logp[np.arange(5), t]
    np.testing.assert_allclose(nn.NLLLoss(reduction="none")(t64(logp), tg.tensor(t)).numpy(), picked, rtol=1e-12)
    np.testing.assert_allclose(nn.NLLLoss(reduction="sum")(t64(logp), tg.tensor(t)).item(), picked.sum(),
                               rtol=1e-12)


def test_binary_losses_against_their_formulas():
    x, y = rng(2).standard_normal((4, 3)), (rng(3).random((4, 3)) > 0.5).astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    pw = np.array([1.0, 2.0, 0.5])
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(nn.BCELoss()(t64(p), t64(y)).item(), bce.mean(), rtol=1e-12)
    with_pos = -(pw * y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(nn.BCEWithLogitsLoss(pos_weight=t64(pw))(t64(x), t64(y)).item(), with_pos.mean(),
                               rtol=1e-12)
    w = rng(4).random((4, 3))
    np.testing.assert_allclose(nn.BCEWithLogitsLoss(weight=t64(w), reduction="sum")(t64(x), t64(y)).item(),
                               (w * bce).sum(), rtol=1e-12)


def test_regression_losses_by_hand():
    a, b = t64([0.0, 1.0, -2.0, 0.5]), t64([0.5, 1.0, 1.0, 0.0])   # differences -0.5, 0, -3, 0.5
    assert nn.MSELoss()(a, b).item() == pytest.approx((0.25 + 0 + 9 + 0.25) / 4)
    assert nn.L1Loss(reduction="sum")(a, b).item() == pytest.approx(4.0)
    # beta 1: |d| < 1 -> 0.5 d^2, else |d| - 0.5: 0.125, 0, 2.5, 0.125
    assert nn.SmoothL1Loss()(a, b).item() == pytest.approx(2.75 / 4)
    # beta 4: every |d| < 4 -> 0.5 d^2 / 4: 0.03125, 0, 1.125, 0.03125
    np.testing.assert_allclose(nn.SmoothL1Loss(reduction="none", beta=4.0)(a, b).numpy(),
                               [0.03125, 0.0, 1.125, 0.03125])


def test_loss_modules_refuse_bad_reductions_and_the_deprecated_arguments():
    with pytest.raises(ValueError, match="MSELoss: reduction must be one of"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="CrossEntropyLoss: size_average and reduce are deprecated"):
        nn.CrossEntropyLoss(size_average=False)
    with pytest.raises(ValueError, match="L1Loss: size_average and reduce"):
        nn.L1Loss(reduce=False)


def test_loss_module_weight_moves_with_to():
    loss = nn.CrossEntropyLoss(weight=tg.tensor(np.array([1.0, 2.0], dtype=np.float32)))
    loss.double()
    assert loss.weight.dtype == np.float64


# ----------------------------------------------------------------------------- activations
def test_activation_modules_against_numpy():
    x = rng(5).standard_normal((3, 4)) * 2
    erf = np.vectorize(math.erf)
    cases = [(nn.Tanh(), np.tanh(x)), (nn.SiLU(), x / (1 + np.exp(-x))),
             (nn.GELU(), 0.5 * x * (1 + erf(x / math.sqrt(2)))),
             (nn.GELU(approximate="tanh"), 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
             (nn.Softmax(dim=0), np.exp(x) / np.exp(x).sum(axis=0)),
             (nn.LogSoftmax(dim=1), np_log_softmax(x, 1))]
    for module, expected in cases:
        np.testing.assert_allclose(module(t64(x)).numpy(), expected, rtol=1e-12, atol=1e-14, err_msg=repr(module))


def test_gelu_at_hand_computed_points():
    # Phi(0) = 0.5, Phi(1) = 0.841344746..., Phi(-2) = 0.022750131...
    got = nn.GELU()(t64([0.0, 1.0, -2.0])).numpy()
    np.testing.assert_allclose(got, [0.0, 0.8413447460685429, -2 * 0.022750131948179195], rtol=1e-12)


def test_activation_modules_gradcheck():
    x = t64(rng(6).standard_normal((3, 4)), requires_grad=True)
    for module in (nn.Tanh(), nn.SiLU(), nn.GELU(), nn.GELU(approximate="tanh"), nn.Softmax(1), nn.LogSoftmax(0)):
        assert tg.gradcheck(module, [x]), repr(module)


def test_softmax_without_dim_and_gelu_with_an_unknown_form_raise():
    with pytest.raises(ValueError, match="Softmax: dim is None"):
        nn.Softmax()(t64([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        nn.GELU(approximate="erf")(t64([1.0]))


def test_inplace_is_accepted_and_leaves_the_input_alone():
    x = t64([-1.0, 2.0, -3.0])
    before = x.numpy().copy()
    for module in (nn.ReLU(inplace=True), nn.LeakyReLU(0.2, inplace=True), nn.SiLU(inplace=True),
                   nn.Dropout(0.5, inplace=True).eval()):
        module(x)
        np.testing.assert_array_equal(x.numpy(), before)
    np.testing.assert_array_equal(nn.ReLU(True)(x).numpy(), [0.0, 2.0, 0.0])
    np.testing.assert_allclose(nn.LeakyReLU(0.2, True)(x).numpy(), [-0.2, 2.0, -0.6])


# ----------------------------------------------------------------------------- normalisation layers
def test_batchnorm1d_on_2d_and_3d_inputs():
    for shape in ((8, 3), (4, 3, 5)):
        x = rng(7).standard_normal(shape) * 2 + 1
        bn = nn.BatchNorm1d(3).double()
        axes = (0,) if len(shape) == 2 else (0, 2)
        mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        np.testing.assert_allclose(bn(t64(x)).numpy(), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-12)
        m = x.size // 3
        np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean.ravel(), rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var.ravel() * m / (m - 1), rtol=1e-12)
        bn.eval()
        rm, rv = bn.running_mean.numpy().reshape((1, 3) + (1,) * (len(shape) - 2)), bn.running_var.numpy()
        rv = rv.reshape(rm.shape)
        np.testing.assert_allclose(bn(t64(x)).numpy(), (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-10)
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected a 2-D or 3-D input \(N, C\) or \(N, C, L\)"):
        nn.BatchNorm1d(3)(tg.zeros(2, 3, 4, 4))


def test_layer_norm_module_parameters_and_values():
    ln = nn.LayerNorm((2, 3)).double()
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"] and ln.weight.shape == (2, 3)
    assert nn.LayerNorm(4, bias=False).bias is None and nn.LayerNorm(4, elementwise_affine=False).weight is None
    ln.weight.data[...] = rng(8).standard_normal((2, 3))
    ln.bias.data[...] = rng(9).standard_normal((2, 3))
    x = rng(10).standard_normal((4, 2, 3))
    flat = x.reshape(4, 6)
    norm = ((flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(ln(t64(x)).numpy(), norm * ln.weight.numpy() + ln.bias.numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="layer_norm: input's last dims must be normalized_shape"):
        ln(t64(np.zeros((4, 3, 2))))


def test_group_norm_module_by_hand():
    # one sample, 4 channels of 1 value in 2 groups: [1, 3] has mean 2 and variance 1, so it becomes
    # [-1, 1] / sqrt(1 + eps); [2, 2] becomes [0, 0]
    gn = nn.GroupNorm(2, 4, eps=0.25).double()
    np.testing.assert_allclose(gn(t64([[[1.0], [3.0], [2.0], [2.0]]])).numpy()[0, :, 0],
                               [-1 / math.sqrt(1.25), 1 / math.sqrt(1.25), 0.0, 0.0], rtol=1e-12)
    assert tg.gradcheck(lambda x: nn.GroupNorm(2, 4).double()(x), [t64(rng(11).standard_normal((2, 4, 3)), True)])
    with pytest.raises(ValueError, match="GroupNorm: num_channels must be divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match=r"GroupNorm: expected an input \(N, 4, \*\)"):
        gn(t64(np.zeros((2, 3, 5))))


# ----------------------------------------------------------------------------- containers
def test_module_dict_registers_and_removes_by_key():
    d = nn.ModuleDict({"a": nn.Linear(2, 3)})
    d["b"] = nn.Linear(3, 1)
    d.update([("c", nn.ReLU())])
    assert list(d) == ["a", "b", "c"] and "b" in d and len(d) == 3
    assert list(d.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert isinstance(d.pop("a"), nn.Linear) and list(d.keys()) == ["b", "c"]
    assert [n for n, _ in d.named_parameters()] == ["b.weight", "b.bias"]
    with pytest.raises(TypeError, match="ModuleDict: entry 'x' is a int, not an nn.Module"):
        d["x"] = 3
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []


def test_parameter_list_wraps_tensors_and_registers_them():
    pl = nn.ParameterList([nn.Parameter(np.zeros(2)), tg.ones(3)])
    pl.append(tg.zeros(1))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in pl)
    pl[-1] = tg.ones(4)
    assert pl[2].shape == (4,) and len(pl) == 3
    with pytest.raises(TypeError, match="ParameterList: entries must be Parameters or Tensors"):
        pl.append(np.zeros(2))


# ----------------------------------------------------------------------------- Module.to and casts
def test_to_accepts_device_dtype_both_and_a_tensor():
    layer = nn.Linear(2, 2)
    layer(tg.ones(1, 2)).sum().backward()
    weight = layer.weight
    assert layer.to(np.float64) is layer and layer.weight is weight and weight.dtype == np.float64
    assert weight.grad.dtype == np.float64              # the gradient moves with its parameter
    layer.to("cpu", np.float16)
    assert weight.dtype == np.float16 and weight.device == "cpu"
    layer.to(tg.zeros(1, dtype=np.float32))
    assert weight.dtype == np.float32
    layer.to(dtype="float64", non_blocking=True)
    assert weight.dtype == np.float64
    with pytest.raises(TypeError, match="Linear.to: only floating-point dtypes"):
        layer.to(np.int32)
    with pytest.raises(TypeError, match="Linear.to: 'gpu' is neither a device"):
        layer.to("gpu")


def test_a_failed_move_changes_nothing(monkeypatch):
    from tinygrad_cv.nn import module as module_py
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    real, calls = module_py._moved, []

    def fails_on_the_third(t, device, dtype):
        calls.append(t)
        if len(calls) == 3:
            raise RuntimeError("simulated device failure")
        return real(t, device, dtype)

    monkeypatch.setattr(module_py, "_moved", fails_on_the_third)
    with pytest.raises(RuntimeError, match="simulated"):
        model.double()
    assert len(calls) == 3 and all(p.dtype == np.float32 for p in model.parameters())


def test_half_float_double_cast_floating_tensors_only():
    bn = nn.BatchNorm2d(2)
    for method, dtype in (("half", np.float16), ("double", np.float64), ("float", np.float32)):
        assert getattr(bn, method)() is bn
        assert bn.weight.dtype == bn.running_var.dtype == dtype
        assert bn.num_batches_tracked.dtype == np.int64
    assert bn.cpu() is bn and bn.weight.device == "cpu"
    with pytest.raises(ValueError, match="BatchNorm2d.cuda: only one GPU is known"):
        bn.cuda(1)


# ----------------------------------------------------------------------------- traversal
class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = self.a                                    # the same module under two names
        self.seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        self.scale = nn.Parameter(np.ones(1))


def test_traversal_arguments():
    m = Shared()
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert len(list(m.parameters(recurse=False))) == 1
    assert [n for n, _ in m.named_parameters(prefix="net")] == ["net.scale", "net.a.weight", "net.a.bias",
                                                                   "net.seq.0.weight", "net.seq.0.bias"]
    assert len(list(m.named_parameters(remove_duplicate=False))) == 7
    assert [n for n, _ in m.named_modules()] == ["", "a", "seq", "seq.0", "seq.1"]
    assert [n for n, _ in m.named_modules(remove_duplicate=False)] == ["", "a", "b", "seq", "seq.0", "seq.1"]
    assert [n for n, _ in m.named_children()] == ["a", "b", "seq"] and len(list(m.children())) == 3
    assert len(list(m.modules())) == 5
    bn = nn.Sequential(nn.BatchNorm1d(2))
    assert [n for n, _ in bn.named_buffers()] == ["0.running_mean", "0.running_var", "0.num_batches_tracked"]
    assert list(bn.buffers(recurse=False)) == []


# ----------------------------------------------------------------------------- load_state_dict's report
def test_load_state_dict_reports_missing_and_unexpected():
    layer = nn.Linear(2, 2)
    result = layer.load_state_dict(layer.state_dict())
    assert result == ([], []) and result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"                  # as PyTorch prints it
    bias = layer.bias.numpy().copy()
    state = {"weight": np.full((2, 2), 3.0), "extra": np.zeros(1)}
    result = layer.load_state_dict(state, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    assert repr(result) == "IncompatibleKeys(missing_keys=['bias'], unexpected_keys=['extra'])"
    np.testing.assert_array_equal(layer.weight.numpy(), np.full((2, 2), 3.0))
    np.testing.assert_array_equal(layer.bias.numpy(), bias)
    state["weight"][...] = 0                            # copied, not kept
    assert layer.weight.numpy()[0, 0] == 3.0
    with pytest.raises(ValueError, match="missing keys"):
        layer.load_state_dict(state)


def test_an_old_batch_norm_checkpoint_without_num_batches_tracked_loads_strictly():
    bn = nn.BatchNorm1d(2)
    bn(tg.tensor(rng(21).standard_normal((4, 2)).astype(np.float32)))
    state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    state["running_mean"] = np.array([5.0, 6.0])
    assert bn.load_state_dict(state) == ([], [])
    assert bn.num_batches_tracked.item() == 1
    np.testing.assert_array_equal(bn.running_mean.numpy(), [5.0, 6.0])
    with pytest.raises(ValueError, match=r"missing keys: \['running_var'\]"):
        bn.load_state_dict({k: v for k, v in state.items() if k != "running_var"})


# ----------------------------------------------------------------------------- hooks
def test_forward_pre_hook_and_hook_replace_args_and_output_until_removed():
    layer = nn.Linear(2, 1)
    seen = []
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    post = layer.register_forward_hook(lambda m, args, out: seen.append((m, args[0].numpy(), out.numpy())))
    x = t64([[1.0, 2.0]]).float()
    out = layer(x)
    assert seen[0][0] is layer
    np.testing.assert_array_equal(seen[0][1], [[2.0, 4.0]])          # the hook saw the replaced args
    np.testing.assert_allclose(out.numpy()[0], layer.weight.numpy() @ [2.0, 4.0] + layer.bias.numpy(), rtol=1e-6)
    pre.remove()
    post.remove()
    pre.remove()                                                     # twice is harmless
    np.testing.assert_allclose(layer(x).numpy()[0], layer.weight.numpy() @ [1.0, 2.0] + layer.bias.numpy(),
                               rtol=1e-6)
    assert len(seen) == 1
    with layer.register_forward_hook(lambda m, args, out: out * 0 + 7):
        assert layer(x).item() == 7.0
    assert layer(x).item() != 7.0
    single = layer.register_forward_pre_hook(lambda m, args: args[0] * 0)  # a non-tuple is wrapped
    np.testing.assert_allclose(layer(x).numpy(), layer.bias.numpy()[None])
    single.remove()
    with pytest.raises(TypeError, match="register_forward_hook: hook must be callable"):
        layer.register_forward_hook(3)


# ----------------------------------------------------------------------------- zero_grad
def test_module_zero_grad_to_none_or_zeros_in_place():
    layer = nn.Linear(2, 2)
    layer(tg.ones(1, 2)).sum().backward()
    grad = layer.weight.grad
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad is grad and not grad.numpy().any()
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_a_tutorial_step_with_the_loss_module():
    """A PyTorch tutorial's inner loop, with the modules of this issue: the loss falls."""
    g = rng(12)
    x, y = g.standard_normal((32, 4)).astype(np.float32), g.integers(0, 3, 32)
    model = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 3))
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(60):
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(tg.tensor(x)), tg.tensor(y))
        loss.backward()
        for p in model.parameters():
            p.data -= 0.3 * p.grad.data
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


# ----------------------------------------------------------------------------- PyTorch as an extra oracle
def _both(ours, theirs, *arrays, target=None):
    """Forward and backward of our module and PyTorch's on the same float64 inputs and upstream gradient."""
    torch = pytest.importorskip("torch")
    ts = [t64(a, requires_grad=True) for a in arrays]
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    extra_ours = () if target is None else (tg.tensor(target),)
    extra_theirs = () if target is None else (torch.tensor(target),)
    out, ref = ours(*ts, *extra_ours), theirs(*tt, *extra_theirs)
    up = rng(99).standard_normal(ref.shape)
    out.backward(t64(up))
    ref.backward(torch.tensor(up))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ts, tt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_loss_modules_match_pytorch():
    torch = pytest.importorskip("torch")
    tn = torch.nn
    x, t = rng(13).standard_normal((6, 4)), np.array([0, 3, 1, 2, 2, 3])
    w = rng(14).random(4) + 0.5
    for reduction in ("mean", "sum", "none"):
        _both(nn.CrossEntropyLoss(t64(w), ignore_index=2, reduction=reduction, label_smoothing=0.1),
              tn.CrossEntropyLoss(torch.tensor(w), ignore_index=2, reduction=reduction, label_smoothing=0.1),
              x, target=t)
        _both(nn.NLLLoss(t64(w), reduction=reduction), tn.NLLLoss(torch.tensor(w), reduction=reduction),
              np_log_softmax(x), target=t)
    a, b = rng(15).standard_normal((3, 5)), rng(16).random((3, 5))
    pw = rng(17).random(5) + 0.5
    _both(nn.BCEWithLogitsLoss(pos_weight=t64(pw)), tn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw)), a, b)
    _both(nn.BCELoss(weight=t64(b)), tn.BCELoss(weight=torch.tensor(b)), 1 / (1 + np.exp(-a)), b)
    for ours, theirs in ((nn.MSELoss(), tn.MSELoss()), (nn.L1Loss(reduction="sum"), tn.L1Loss(reduction="sum")),
                         (nn.SmoothL1Loss(beta=0.5), tn.SmoothL1Loss(beta=0.5))):
        _both(ours, theirs, a, b)


def test_activations_and_norms_match_pytorch():
    torch = pytest.importorskip("torch")
    tn = torch.nn
    x = rng(18).standard_normal((4, 6, 5)) * 2
    pairs = [(nn.Tanh(), tn.Tanh()), (nn.SiLU(), tn.SiLU()), (nn.GELU(), tn.GELU()),
             (nn.GELU("tanh"), tn.GELU("tanh")), (nn.Softmax(1), tn.Softmax(1)), (nn.LogSoftmax(-1), tn.LogSoftmax(-1)),
             (nn.ReLU(inplace=True), tn.ReLU()), (nn.BatchNorm1d(6), tn.BatchNorm1d(6)),
             (nn.LayerNorm((6, 5)), tn.LayerNorm((6, 5))), (nn.LayerNorm(5, bias=False), tn.LayerNorm(5, bias=False)),
             (nn.GroupNorm(3, 6), tn.GroupNorm(3, 6)),
             (nn.GroupNorm(2, 6, affine=False), tn.GroupNorm(2, 6, affine=False))]
    for ours, theirs in pairs:
        ours.double()
        theirs.double()
        for p in ours.parameters():                         # non-trivial affine parameters, shared by both
            p.data[...] = rng(19).standard_normal(p.shape)
        theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
        _both(ours, theirs, x)
        if isinstance(ours, nn.BatchNorm1d):
            for name in ("running_mean", "running_var"):
                np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-10)
            _both(ours, theirs, x[:, :, 0])                   # (N, C) as well


def test_containers_and_traversal_match_pytorch_names():
    torch = pytest.importorskip("torch")
    tn = torch.nn
    ours = nn.ModuleDict({"enc": nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)), "head": nn.Linear(3, 1)})
    theirs = tn.ModuleDict({"enc": tn.Sequential(tn.Linear(2, 3), tn.BatchNorm1d(3)), "head": tn.Linear(3, 1)})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_parameters(prefix="m")] == [n for n, _ in theirs.named_parameters(prefix="m")]
    pl, tpl = nn.ParameterList([tg.ones(2), tg.ones(3)]), tn.ParameterList([torch.ones(2), torch.ones(3)])
    assert list(pl.state_dict()) == list(tpl.state_dict())
    missing, unexpected = ours.load_state_dict({"head.weight": np.zeros((1, 3)), "x": np.zeros(1)}, strict=False)
    tm, tu = theirs.load_state_dict({"head.weight": torch.zeros(1, 3), "x": torch.zeros(1)}, strict=False)
    assert (missing, unexpected) == (tm, tu)


def test_hooks_match_pytorch():
    torch = pytest.importorskip("torch")
    x = rng(20).standard_normal((2, 3))
    ours, theirs = nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    for m in (ours, theirs):
        m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
        m.register_forward_hook(lambda mod, args, out: out * args[0].sum())
    np.testing.assert_allclose(ours(t64(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)
