"""nn.init (PyTorch's formulas: gains, fans, bounds, spreads) and the nn layers (default init, shapes,
forward equal to the functional op, modes, state_dict), with PyTorch as an extra oracle."""
import math

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn
from tinygrad_cv.nn import init


# ----------------------------------------------------------------------------- init
def test_calculate_gain_values():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_fans_of_linear_and_conv_weights():
    assert init.calculate_fan_in_and_fan_out(tg.zeros(7, 5)) == (5, 7)
    assert init.calculate_fan_in_and_fan_out(tg.zeros(8, 3, 3, 2)) == (18, 48)
    with pytest.raises(ValueError, match=r"at least 2 dims, got shape \(4,\)"):
        init.calculate_fan_in_and_fan_out(tg.zeros(4))


def test_uniform_initialisers_fill_their_whole_range():
    w = tg.zeros(200, 50, 3, 3)  # fan_in 450, fan_out 1800
    bounds = {
        "kaiming": (lambda t: init.kaiming_uniform_(t, nonlinearity="relu"), math.sqrt(2) * math.sqrt(3 / 450)),
        "kaiming_fan_out": (lambda t: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"),
                            math.sqrt(2) * math.sqrt(3 / 1800)),
        "xavier": (lambda t: init.xavier_uniform_(t, gain=2.0), 2 * math.sqrt(6 / (450 + 1800))),
        "uniform": (lambda t: init.uniform_(t, -0.3, 0.3), 0.3),
    }
    for name, (fill, bound) in bounds.items():
        values = fill(w).numpy()
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound * (1 + 1e-6), name
        assert np.abs(values).max() > 0.99 * bound, name            # 90000 draws reach the edge
        assert abs(values.std() - bound / math.sqrt(3)) < 0.01 * bound, name


def test_normal_initialisers_have_the_right_spread():
    w = tg.zeros(300, 100, 3)  # fan_in 300, fan_out 900
    cases = {
        "kaiming": (lambda t: init.kaiming_normal_(t, a=0.2), math.sqrt(2 / 1.04) / math.sqrt(300)),
        "xavier": (lambda t: init.xavier_normal_(t), math.sqrt(2 / 1200)),
        "normal": (lambda t: init.normal_(t, 1.0, 0.5), 0.5),
    }
    for name, (fill, std) in cases.items():
        values = fill(w).numpy()
        assert abs(values.std() - std) < 0.01 * std, name
    assert abs(w.numpy().mean() - 1.0) < 0.01


def test_init_is_in_place_seeded_and_keeps_dtype():
    w = tg.zeros(4, 5, dtype=np.float64)
    array = w.data
    tg.manual_seed(7)
    first = init.kaiming_uniform_(w).numpy()
    assert w.data is array and w.dtype == np.float64
    tg.manual_seed(7)
    np.testing.assert_array_equal(init.kaiming_uniform_(w).numpy(), first)
    np.testing.assert_array_equal(init.zeros_(w).numpy(), 0)
    np.testing.assert_array_equal(init.ones_(w).numpy(), 1)


# ----------------------------------------------------------------------------- default initialisation
@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(30, 20), 30),
    (lambda: nn.Conv2d(6, 8, 3, groups=2), 3 * 9),
    (lambda: nn.ConvTranspose2d(6, 8, (2, 3), groups=2), 4 * 6),   # PyTorch's fan_in: weight.shape[1] * k
])
def test_default_init_is_pytorchs(make, fan_in):
    bound = 1 / math.sqrt(fan_in)
    weights, biases = [], []
    for seed in range(20):
        tg.manual_seed(seed)
        layer = make()
        weights.append(layer.weight.numpy())
        biases.append(layer.bias.numpy())
    weights, biases = np.concatenate([w.ravel() for w in weights]), np.concatenate(biases)
    for values in (weights, biases):
        assert np.abs(values).max() <= bound * (1 + 1e-6)
        assert np.abs(values).max() > 0.95 * bound
        assert abs(values.std() - bound / math.sqrt(3)) < 0.08 * bound


def test_layer_shapes_and_parameters():
    assert nn.Conv2d(4, 6, (3, 5), groups=2).weight.shape == (6, 2, 3, 5)
    assert nn.ConvTranspose2d(4, 6, 2, groups=2).weight.shape == (4, 3, 2, 2)
    assert nn.Linear(3, 2, bias=False).bias is None
    names = [n for n, _ in nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    bn = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight.numpy(), 1)
    np.testing.assert_array_equal(bn.bias.numpy(), 0)
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    with pytest.raises(ValueError, match=r"Conv2d: groups=2 must divide both in_channels=3 and out_channels=4"):
        nn.Conv2d(3, 4, 3, groups=2)


# ----------------------------------------------------------------------------- forward = functional op
def test_layers_call_their_functional_op():
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((2, 4, 8, 8)).astype(np.float32))
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    np.testing.assert_array_equal(conv(x).numpy(), F.conv2d(x, conv.weight, conv.bias, 2, 1, 1, 2).numpy())
    up = nn.ConvTranspose2d(4, 2, 2, stride=2)
    np.testing.assert_array_equal(up(x).numpy(), F.conv_transpose2d(x, up.weight, up.bias, 2).numpy())
    linear = nn.Linear(8, 3)
    np.testing.assert_allclose(linear(x).numpy(), x.numpy() @ linear.weight.numpy().T + linear.bias.numpy(),
                               rtol=1e-5, atol=1e-6)
    pairs = [
        (nn.MaxPool2d(3, 2, 1), F.max_pool2d(x, 3, 2, 1)),
        (nn.MaxPool2d(2, ceil_mode=True), F.max_pool2d(x, 2, ceil_mode=True)),
        (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
         F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
        (nn.AdaptiveAvgPool2d((2, 3)), F.adaptive_avg_pool2d(x, (2, 3))),
        (nn.Upsample(scale_factor=2, mode="bilinear"), F.interpolate(x, scale_factor=2, mode="bilinear")),
        (nn.ReLU(), F.relu(x)), (nn.LeakyReLU(0.2), F.leaky_relu(x, 0.2)), (nn.Sigmoid(), F.sigmoid(x)),
        (nn.Flatten(), F.reshape(x, 2, -1)), (nn.Identity(3, key=1), x),
    ]
    for layer, expected in pairs:
        np.testing.assert_array_equal(layer(x).numpy(), expected.numpy(), err_msg=repr(layer))


def test_functional_layers_check_their_arguments():
    with pytest.raises(TypeError, match=r"MaxPool2d: missing required argument\(s\) \['kernel_size'\]"):
        nn.MaxPool2d()
    with pytest.raises(TypeError, match=r"AvgPool2d: unexpected arguments"):
        nn.AvgPool2d(2, dilation=2)
    assert repr(nn.MaxPool2d(2)) == ("MaxPool2d(kernel_size=2, stride=None, padding=0, dilation=1, "
                                     "return_indices=False, ceil_mode=False)")


def test_training_step_through_a_small_network_reduces_the_loss():
    rng = np.random.default_rng(1)
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.ConvTranspose2d(4, 2, 2, stride=2))
    x = tg.Tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32))
    block_max = F.interpolate(F.max_pool2d(x, 2), scale_factor=2).numpy()[:, 0]   # learnable through the pool
    target = tg.Tensor((block_max > 0.5).astype(np.int64))
    losses = []
    for _ in range(20):
        model.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.5 * p.grad.data
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------- PyTorch as an extra oracle
def test_network_matches_pytorch_with_the_same_weights():
    torch = pytest.importorskip("torch")
    tn = torch.nn
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.LeakyReLU(0.1), nn.MaxPool2d(2),
                         nn.ConvTranspose2d(4, 4, 2, stride=2), nn.Upsample(scale_factor=0.5, mode="bilinear"),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    theirs = tn.Sequential(tn.Conv2d(3, 4, 3, padding=1), tn.BatchNorm2d(4), tn.LeakyReLU(0.1), tn.MaxPool2d(2),
                           tn.ConvTranspose2d(4, 4, 2, stride=2), tn.Upsample(scale_factor=0.5, mode="bilinear"),
                           tn.AdaptiveAvgPool2d(1), tn.Flatten(), tn.Linear(4, 2)).double()
    ours.to(dtype=np.float64)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8))
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        np.testing.assert_allclose(ours(tg.Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours[1].running_var.numpy(), theirs[1].running_var.numpy(), rtol=1e-12)


def test_calling_a_module_without_forward_names_it_and_says_what_to_do():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(2, 2)

    for module, name in ((Holder(), "Holder"), (nn.ModuleList([nn.ReLU()]), "ModuleList")):
        with pytest.raises(TypeError, match=f"{name} has no forward method, so it cannot be called; define "
                                            r"forward\(self, \.\.\.\)"):
            module(tg.zeros(1, 2))
