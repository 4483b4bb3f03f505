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


# ----------------------------------------------------------------------------- pad modes and padding_mode
NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def test_pad_modes_hand_worked():
    x = tg.Tensor(np.arange(1.0, 5.0).reshape(1, 1, 4))        # 1 2 3 4
    expected = {"reflect": [3, 2, 1, 2, 3, 4, 3], "replicate": [1, 1, 1, 2, 3, 4, 4],
                "circular": [3, 4, 1, 2, 3, 4, 1], "constant": [7, 7, 1, 2, 3, 4, 7]}
    for mode, values in expected.items():
        kwargs = dict(value=7.0) if mode == "constant" else {}
        np.testing.assert_array_equal(F.pad(x, (2, 1), mode=mode, **kwargs).numpy().ravel(), values, err_msg=mode)
    # negative amounts crop; circular crops first and wraps around what is left (PyTorch)
    np.testing.assert_array_equal(F.pad(x, (-1, 2), mode="circular").numpy().ravel(), [2, 3, 4, 2, 3])
    np.testing.assert_array_equal(F.pad(x, (-1, 2), mode="reflect").numpy().ravel(), [2, 3, 4, 3, 2])
    np.testing.assert_array_equal(F.pad(x, (1, -3)).numpy().ravel(), [0, 1])


def test_pad_gradient_sums_over_the_copies():
    x = tg.Tensor(np.zeros((1, 1, 3)), requires_grad=True)
    F.pad(x, (2, 2), mode="reflect").backward(np.arange(7.0).reshape(1, 1, 7))  # sources 2 1 0 1 2 1 0
    np.testing.assert_array_equal(x.grad.numpy().ravel(), [2 + 6, 1 + 3 + 5, 0 + 4])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_modes_of_3_dims_and_gradcheck(mode):
    x = np.random.default_rng(41).standard_normal((1, 2, 3, 4, 5))
    out = F.pad(tg.Tensor(x), (1, 2, 2, 0, 1, 1), mode=mode)
    expected = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 0), (1, 2)), mode=NUMPY_PAD_MODE[mode])
    np.testing.assert_array_equal(out.numpy(), expected)
    assert tg.gradcheck(lambda t: F.pad(t, (2, 1, 0, 2), mode=mode), [tg.Tensor(x[0, 0], requires_grad=True)])


def test_pad_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(42)
    cases = [((2, 3, 5, 6), (1, 2, 3, 4)), ((3, 5, 6), (4, 5)), ((2, 3, 5), (4, 0)), ((2, 3, 5, 6), (-1, 2, 3, -2)),
             ((2, 2, 3, 4, 5), (1, 2, 0, 1, 2, 2)), ((2, 3, 5, 6), (5, 5, 4, 4))]
    for shape, pad in cases:
        for mode in ("constant", "reflect", "replicate", "circular"):
            if mode == "reflect" and max(pad) >= min(shape[-len(pad) // 2:]):
                continue
            x = rng.standard_normal(shape)
            ours, theirs = tg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            kwargs = dict(value=0.5) if mode == "constant" else {}
            out, ref = F.pad(ours, pad, mode, **kwargs), torch.nn.functional.pad(theirs, pad, mode, **kwargs)
            gy = rng.standard_normal(out.shape)
            out.backward(gy)
            ref.backward(torch.tensor(gy))
            np.testing.assert_array_equal(out.numpy(), ref.detach().numpy(), err_msg=f"{mode} {pad}")
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, err_msg=f"{mode} {pad}")


@pytest.mark.parametrize("shape, pad, kwargs, error, message", [
    ((3, 5, 6), (1, 2.5), {}, TypeError, r"pad: pad must be a tuple of ints"),
    ((3, 5, 6), (1,), {}, ValueError, r"pad: expected \(before, after\) pairs for at most 3 dims"),
    ((3, 5, 6), (-4, -3), {}, ValueError, r"pad: padding \(-4, -3\) of input \(3, 5, 6\) leaves a negative size"),
    ((3, 5, 6), (6, 0), dict(mode="reflect"), ValueError, r"pad: mode 'reflect' needs each padding smaller than"),
    ((3, 5, 6), (7, 0), dict(mode="circular"), ValueError, r"pad: mode 'circular' needs each padding at most"),
    ((5, 6), (1, 1, 1, 1), dict(mode="reflect"), ValueError, r"2 pair\(s\) need a 3-D or 4-D input, got shape"),
    ((1, 2, 5, 6), (1, 1), dict(mode="replicate"), ValueError, r"1 pair\(s\) need a 2-D or 3-D input"),
    ((3, 5, 6), (1, 1), dict(mode="reflect", value=0.0), ValueError, r"pad: mode 'reflect' takes no value"),
    ((3, 5, 6), (1, 1), dict(mode="wrap"), ValueError, r"pad: mode must be one of \('constant', 'reflect'"),
])
def test_pad_arguments_checked_as_pytorch(shape, pad, kwargs, error, message):
    with pytest.raises(error, match=message):
        F.pad(tg.zeros(*shape), pad, **kwargs)


def naive_conv(xpad, w, b):
    """Stride-1, no-padding cross-correlation by loops over the output pixels."""
    kh, kw = w.shape[2:]
    out = np.zeros((xpad.shape[0], w.shape[0], xpad.shape[2] - kh + 1, xpad.shape[3] - kw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = np.einsum("nchw,ochw->no", xpad[:, :, i:i + kh, j:j + kw], w) + b
    return out


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding, kernel", [(1, 3), ((2, 1), (3, 2)), ("same", (4, 3)), ("valid", 2)])
def test_conv2d_padding_mode_pads_with_the_mode(padding_mode, padding, kernel):
    """Conv2d's padding filled by padding_mode, against np.pad and a loop; 'same' puts the odd pixel
    of an even kernel at the bottom/right."""
    rng = np.random.default_rng(43)
    conv = nn.Conv2d(2, 3, kernel, padding=padding, padding_mode=padding_mode).to(dtype=np.float64)
    x = rng.standard_normal((2, 2, 5, 6))
    kh, kw = conv.kernel_size
    widths = {"same": ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2), "valid": (0, 0, 0, 0)}.get(
        padding, (conv.padding[0],) * 2 + (conv.padding[1],) * 2)
    np_mode = {"zeros": "constant", **NUMPY_PAD_MODE}[padding_mode]
    xpad = np.pad(x, ((0, 0), (0, 0), widths[:2], widths[2:]), mode=np_mode)
    expected = naive_conv(xpad, conv.weight.numpy(), conv.bias.numpy())
    np.testing.assert_allclose(conv(tg.Tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv(tg.Tensor(x[0])).numpy(), expected[0], rtol=1e-10, atol=1e-12)  # unbatched
    assert tg.gradcheck(lambda t: conv(t), [tg.Tensor(x, requires_grad=True)])


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_conv2d_padding_mode_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(44)
    x = rng.standard_normal((2, 3, 7, 8))
    for padding_mode in ("reflect", "replicate", "circular"):
        for kwargs in (dict(kernel_size=3, padding=(2, 1), dilation=(1, 2)), dict(kernel_size=(2, 4), padding="same")):
            ours = nn.Conv2d(3, 4, padding_mode=padding_mode, **kwargs).to(dtype=np.float64)
            theirs = torch.nn.Conv2d(3, 4, padding_mode=padding_mode, **kwargs).double()
            theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
            np.testing.assert_allclose(ours(tg.Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                                       rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.Conv2d(3, 4, 0), ValueError, r"Conv2d: kernel_size must be >= 1, got 0"),
    (lambda: nn.Conv2d(-3, 4, 3), ValueError, r"Conv2d: in_channels must be a positive int, got -3"),
    (lambda: nn.Conv2d(3, 0, 3), ValueError, r"Conv2d: out_channels must be a positive int, got 0"),
    (lambda: nn.Conv2d(3.0, 4, 3), TypeError, r"Conv2d: in_channels must be a positive int, got 3.0"),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), ValueError, r"Conv2d: groups must be a positive int, got 0"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError, r"Conv2d: groups=4 must divide both in_channels=4 and "
                                                      r"out_channels=6"),
    (lambda: nn.Conv2d(3, 4, 3, stride=1.5), TypeError, r"Conv2d: stride must be an int or a pair of ints"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError, r"Conv2d: padding must be >= 0"),
    (lambda: nn.Conv2d(3, 4, 3, padding="full"), ValueError, r"Conv2d: padding must be an int, a pair, 'same'"),
    (lambda: nn.Conv2d(3, 4, 3, padding="same", stride=2), ValueError, r"Conv2d: padding='same' needs stride 1"),
    (lambda: nn.Conv2d(3, 4, 3, padding_mode="wrap"), ValueError, r"Conv2d: padding_mode must be one of"),
    (lambda: nn.ConvTranspose2d(3, 4, (2, 0)), ValueError, r"ConvTranspose2d: kernel_size must be >= 1"),
    (lambda: nn.ConvTranspose2d(3, -4, 2), ValueError, r"ConvTranspose2d: out_channels must be a positive int"),
    (lambda: nn.ConvTranspose2d(3, 4, 2, output_padding=0.5), TypeError,
     r"ConvTranspose2d: output_padding must be an int or a pair of ints"),
    (lambda: nn.ConvTranspose2d(3, 4, 2, padding_mode="reflect"), ValueError,
     r"ConvTranspose2d: only padding_mode='zeros' is supported"),
])
def test_conv_modules_refuse_nonsensical_sizes(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_conv_modules_keep_their_geometry_as_pairs_and_take_unbatched_input():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=(1,))
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == ((3, 3), (2, 2), (1, 1), (1, 1))
    assert conv(tg.zeros(2, 9, 9)).shape == (3, 5, 5)
    up = nn.ConvTranspose2d(3, 2, 2, stride=2)
    assert (up.stride, up.padding, up.output_padding) == ((2, 2), (0, 0), (0, 0))
    assert up(tg.zeros(3, 4, 4)).shape == (2, 8, 8)


def test_new_modules_call_their_functional_op():
    rng = np.random.default_rng(45)
    x = tg.Tensor(rng.standard_normal((2, 3, 7, 6)))
    out, indices = nn.AdaptiveMaxPool2d((3, None), return_indices=True)(x)
    expected, expected_indices = F.adaptive_max_pool2d(x, (3, None), return_indices=True)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    np.testing.assert_array_equal(indices.numpy(), expected_indices.numpy())
    up = nn.Upsample(scale_factor=1.7, mode="bicubic", recompute_scale_factor=True)
    np.testing.assert_array_equal(up(x).numpy(), F.interpolate(x, scale_factor=1.7, mode="bicubic",
                                                               recompute_scale_factor=True).numpy())
    assert nn.MaxPool2d(2)(x[0]).shape == (3, 3, 3)


def test_conv_transpose2d_output_size_picks_the_output_padding():
    """Stride 2 reaches two sizes from a 4x4 input, 7 and 8 (PyTorch's forward(x, output_size))."""
    up = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1).to(dtype=np.float64)
    x = tg.Tensor(np.random.default_rng(46).standard_normal((1, 3, 4, 4)))
    for size in ((7, 8), [1, 2, 8, 7], (8, 8)):
        out = up(x, output_size=size)
        assert out.shape[2:] == tuple(size[-2:])
        extra = tuple(o - 7 for o in size[-2:])
        np.testing.assert_array_equal(out.numpy(), F.conv_transpose2d(x, up.weight, up.bias, 2, 1, extra).numpy())
    assert up(x[0], output_size=(8, 7)).shape == (2, 8, 7)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: output_size \(9, 9\) is not reachable from an input of "
                                         r"spatial size \(4, 4\): the sizes range from \(7, 7\) to \(8, 8\)"):
        up(x, output_size=(9, 9))
    for bad in ((8,), 8, (8.0, 8)):
        with pytest.raises(ValueError, match=r"ConvTranspose2d: output_size must be 2 ints \(H, W\) or 4"):
            up(x, output_size=bad)
