"""interpolate (every mode, 1-D and 2-D) and pixel_shuffle: hand-worked values, exactness on affine
images, per-pixel references of PyTorch's coordinate rules, gradchecks, PyTorch as an extra oracle,
and the error messages."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from adaptive_reference import naive_adaptive_avg_pool
from conftest import DEVICES


def naive_bilinear(x, out_size, align_corners, scale_factors=(None, None)):
    """Per output pixel, in Python floats: the source coordinate, its two neighbours and the weights."""
    def source(dst, n_in, n_out, factor):
        if align_corners:
            return dst * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        scale = 1 / factor if factor else n_in / n_out
        return max((dst + 0.5) * scale - 0.5, 0.0)

    h, w = x.shape[2:]
    out = np.zeros(x.shape[:2] + tuple(out_size))
    for oy in range(out_size[0]):
        sy = source(oy, h, out_size[0], scale_factors[0])
        y0 = min(int(math.floor(sy)), h - 1)
        y1, ly = min(y0 + 1, h - 1), sy - y0
        for ox in range(out_size[1]):
            sx = source(ox, w, out_size[1], scale_factors[1])
            x0 = min(int(math.floor(sx)), w - 1)
            x1, lx = min(x0 + 1, w - 1), sx - x0
            out[:, :, oy, ox] = ((1 - ly) * ((1 - lx) * x[:, :, y0, x0] + lx * x[:, :, y0, x1]) +
                                 ly * ((1 - lx) * x[:, :, y1, x0] + lx * x[:, :, y1, x1]))
    return out


# ----------------------------------------------------------------------------- nearest
def test_nearest_hand_worked():
    x = tg.Tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=2).numpy(),
                                  [[[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]]])
    # 2 -> 3 columns: src = floor(dst * 2/3) = 0, 0, 1
    np.testing.assert_array_equal(F.interpolate(x, size=(2, 3)).numpy(), [[[[1, 1, 2], [3, 3, 4]]]])
    # downsampling 4 -> 2 picks every other pixel
    y = tg.Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(F.interpolate(y, size=2).numpy(), [[[[0, 2], [8, 10]]]])


def test_nearest_scale_factor_sets_the_coordinate_scale():
    """The coordinate scale is 1 / scale_factor, not in / out, unless recompute_scale_factor."""
    x = tg.Tensor(np.arange(4.0).reshape(1, 1, 1, 4))  # 6 outputs, src = floor(dst / 1.5)
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=(1, 1.5)).numpy().ravel(), [0, 0, 1, 2, 2, 3])
    z = tg.Tensor(np.arange(7.0).reshape(1, 1, 1, 7))
    # 7 * 0.4 = 2.8 -> 2 outputs; src = floor(dst / 0.4) = 0, 2 but floor(dst * 7/2) = 0, 3
    np.testing.assert_array_equal(F.interpolate(z, scale_factor=(1, 0.4)).numpy().ravel(), [0, 2])
    np.testing.assert_array_equal(F.interpolate(z, scale_factor=(1, 0.4), recompute_scale_factor=True)
                                  .numpy().ravel(), [0, 3])


def test_nearest_gradient_sums_the_copies():
    x = tg.Tensor(np.zeros((1, 1, 2, 2)), requires_grad=True)
    out = F.interpolate(x, scale_factor=2)
    out.backward(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0 + 1 + 4 + 5, 2 + 3 + 6 + 7],
                                                     [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]]])


# ----------------------------------------------------------------------------- bilinear
def test_bilinear_hand_worked():
    x = tg.Tensor(np.array([[[[0.0, 1.0]]]]))
    np.testing.assert_allclose(F.interpolate(x, size=(1, 4), mode="bilinear").numpy().ravel(), [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(F.interpolate(x, size=(1, 4), mode="bilinear", align_corners=True).numpy().ravel(),
                               [0, 1 / 3, 2 / 3, 1])


def test_bilinear_align_corners_reproduces_an_affine_image():
    rows, cols = np.meshgrid(np.arange(5.0), np.arange(7.0), indexing="ij")
    image = (2 * rows - 3 * cols + 1)[None, None]
    out = F.interpolate(tg.Tensor(image), size=(9, 4), mode="bilinear", align_corners=True).numpy()
    r, c = np.meshgrid(np.linspace(0, 4, 9), np.linspace(0, 6, 4), indexing="ij")
    np.testing.assert_allclose(out[0, 0], 2 * r - 3 * c + 1, atol=1e-12)


@given(h=st.integers(1, 6), w=st.integers(1, 6), oh=st.integers(1, 9), ow=st.integers(1, 9),
       align=st.booleans(), seed=st.integers(0, 1000))
def test_bilinear_matches_per_pixel_reference(h, w, oh, ow, align, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, h, w))
    out = F.interpolate(tg.Tensor(x), size=(oh, ow), mode="bilinear", align_corners=align)
    np.testing.assert_allclose(out.numpy(), naive_bilinear(x, (oh, ow), align), rtol=1e-6, atol=1e-6)


def test_bilinear_with_scale_factor_uses_its_inverse_as_the_scale():
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 6))
    out = F.interpolate(tg.Tensor(x), scale_factor=(1.7, 0.75), mode="bilinear")
    assert out.shape == (1, 2, 8, 4)
    np.testing.assert_allclose(out.numpy(), naive_bilinear(x, (8, 4), False, (1.7, 0.75)), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- gradients and dtypes
@given(h=st.integers(1, 5), w=st.integers(1, 5), oh=st.integers(1, 7), ow=st.integers(1, 7),
       mode=st.sampled_from(["nearest", "bilinear-false", "bilinear-true"]), seed=st.integers(0, 1000))
def test_interpolate_gradcheck(h, w, oh, ow, mode, seed):
    x = tg.Tensor(np.random.default_rng(seed).standard_normal((2, 2, h, w)), requires_grad=True)
    name, _, align = mode.partition("-")
    kwargs = dict(mode=name, align_corners=None if name == "nearest" else align == "true")
    assert tg.gradcheck(lambda t: F.interpolate(t, size=(oh, ow), **kwargs), [x])


@pytest.mark.parametrize("device", DEVICES)
def test_interpolate_float16_close_to_float64(device):
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4))
    reference = naive_bilinear(x.astype(np.float16).astype(np.float64), (10, 8), False)
    out = F.interpolate(tg.Tensor(x.astype(np.float16), device=device), scale_factor=2, mode="bilinear")
    assert out.dtype == np.float16 and out.device == device
    np.testing.assert_allclose(out.numpy().astype(np.float64), reference, rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("kwargs", [dict(scale_factor=2, mode="nearest"), dict(size=(7, 3), mode="nearest"),
                                    dict(scale_factor=(2.3, 0.6), mode="bilinear"),
                                    dict(size=(11, 5), mode="bilinear", align_corners=True),
                                    dict(scale_factor=3, mode="bilinear", align_corners=False)])
def test_interpolate_matches_pytorch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
        ours, theirs = tg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        out, ref = F.interpolate(ours, **kwargs), torch.nn.functional.interpolate(theirs, **kwargs)
        gy = rng.standard_normal(out.shape).astype(dtype)
        out.backward(gy)
        ref.backward(torch.tensor(gy))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- nearest-exact, bicubic, area, 1-D
def cubic(d, a=-0.75):
    """Keys' cubic convolution kernel, written from its two pieces."""
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0


def naive_bicubic(x, out_size, align_corners, scale_factors=(None, None)):
    """Per output pixel, in Python floats: 4 x 4 taps around floor(src), indices clamped to the border."""
    def taps(dst, n_in, n_out, factor):
        if align_corners:
            src = dst * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = (dst + 0.5) * (1 / factor if factor else n_in / n_out) - 0.5
        base = math.floor(src)
        return [(min(max(base + k, 0), n_in - 1), cubic(src - (base + k))) for k in (-1, 0, 1, 2)]

    h, w = x.shape[2:]
    out = np.zeros(x.shape[:2] + tuple(out_size))
    for oy in range(out_size[0]):
        for ox in range(out_size[1]):
            for r, wr in taps(oy, h, out_size[0], scale_factors[0]):
                for c, wc in taps(ox, w, out_size[1], scale_factors[1]):
                    out[:, :, oy, ox] += wr * wc * x[:, :, r, c]
    return out


def naive_nearest_exact(x, out_size):
    h, w = x.shape[2:]
    rows = [min(math.floor((o + 0.5) * h / out_size[0]), h - 1) for o in range(out_size[0])]
    cols = [min(math.floor((o + 0.5) * w / out_size[1]), w - 1) for o in range(out_size[1])]
    return x[:, :, rows][:, :, :, cols]


def test_bicubic_hand_worked():
    """2 -> 4 pixels: src = -0.25, 0.25, 0.75, 1.25; at src 0.25 the taps -1, 0, 1, 2 (clamped to
    0, 0, 1, 1) weigh W(1.25), W(0.25), W(0.75), W(1.75)."""
    x = tg.Tensor(np.array([[[[0.0, 1.0]]]]))
    out = F.interpolate(x, size=(1, 4), mode="bicubic").numpy().ravel()
    w = [cubic(1.25), cubic(0.25), cubic(0.75), cubic(1.75)]
    np.testing.assert_allclose(out[1], w[2] + w[3], rtol=1e-12)
    np.testing.assert_allclose(out[2], 1 - out[1], rtol=1e-12)       # mirror symmetry of the taps
    assert out[0] < 0 < out[1]                                        # the cubic overshoots at the edge
    np.testing.assert_allclose(F.interpolate(x, size=(1, 3), mode="bicubic", align_corners=True).numpy().ravel(),
                               [0, 0.5, 1], atol=1e-12)


@given(h=st.integers(1, 5), w=st.integers(1, 5), oh=st.integers(1, 8), ow=st.integers(1, 8),
       align=st.booleans(), seed=st.integers(0, 1000))
def test_bicubic_matches_per_pixel_reference(h, w, oh, ow, align, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, h, w))
    out = F.interpolate(tg.Tensor(x), size=(oh, ow), mode="bicubic", align_corners=align)
    np.testing.assert_allclose(out.numpy(), naive_bicubic(x, (oh, ow), align), rtol=1e-10, atol=1e-12)


def test_bicubic_scale_factor_sets_the_coordinate_scale_unless_recomputed():
    x = np.random.default_rng(5).standard_normal((1, 2, 4, 5))
    out = F.interpolate(tg.Tensor(x), scale_factor=(1.7, 0.7), mode="bicubic")
    assert out.shape == (1, 2, 6, 3)
    np.testing.assert_allclose(out.numpy(), naive_bicubic(x, (6, 3), False, (1.7, 0.7)), rtol=1e-10, atol=1e-12)
    recomputed = F.interpolate(tg.Tensor(x), scale_factor=(1.7, 0.7), mode="bicubic", recompute_scale_factor=True)
    np.testing.assert_allclose(recomputed.numpy(), naive_bicubic(x, (6, 3), False), rtol=1e-10, atol=1e-12)
    assert not np.allclose(recomputed.numpy(), out.numpy())


@given(h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 9), ow=st.integers(1, 9),
       seed=st.integers(0, 1000))
def test_nearest_exact_and_area_match_per_pixel_references(h, w, oh, ow, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, h, w))
    np.testing.assert_array_equal(F.interpolate(tg.Tensor(x), size=(oh, ow), mode="nearest-exact").numpy(),
                                  naive_nearest_exact(x, (oh, ow)))
    np.testing.assert_allclose(F.interpolate(tg.Tensor(x), size=(oh, ow), mode="area").numpy(),
                               naive_adaptive_avg_pool(x, (oh, ow)), rtol=1e-12, atol=1e-14)


def test_nearest_exact_hand_worked():
    # 3 -> 2: nearest takes floor(o * 1.5) = 0, 1; nearest-exact floor((o + 0.5) * 1.5) = 0, 2
    x = tg.Tensor(np.array([[[[1.0, 2.0, 3.0]]]]))
    np.testing.assert_array_equal(F.interpolate(x, size=(1, 2), mode="nearest-exact").numpy().ravel(), [1, 3])
    np.testing.assert_array_equal(F.interpolate(x, size=(1, 2), mode="nearest").numpy().ravel(), [1, 2])


@pytest.mark.parametrize("mode, align", [("nearest", None), ("nearest-exact", None), ("linear", False),
                                         ("linear", True), ("area", None)])
def test_1d_resize_of_3d_input(mode, align):
    """A 3-D input is (N, C, L), resized along L: the same as the 2-D resize of (N, C, 1, L) to (1, size)."""
    x = np.random.default_rng(6).standard_normal((2, 3, 7))
    as_2d = "bilinear" if mode == "linear" else mode
    for kwargs in (dict(size=11), dict(size=[3]), dict(scale_factor=1.6), dict(scale_factor=(0.5,))):
        out = F.interpolate(tg.Tensor(x), mode=mode, align_corners=align, **kwargs)
        size2d = kwargs.get("size", 0)
        size2d = dict(size=(1, size2d if isinstance(size2d, int) else size2d[0])) if "size" in kwargs else \
            dict(scale_factor=(1, np.ravel(kwargs["scale_factor"])[0]))
        expected = F.interpolate(tg.Tensor(x[:, :, None]), mode=as_2d, align_corners=align, **size2d).numpy()[:, :, 0]
        assert out.shape == expected.shape and out.ndim == 3
        np.testing.assert_array_equal(out.numpy(), expected)
    assert tg.gradcheck(lambda t: F.interpolate(t, size=5, mode=mode, align_corners=align),
                        [tg.Tensor(x, requires_grad=True)])


def test_1d_linear_hand_worked():
    x = tg.Tensor(np.array([[[0.0, 1.0]]]))
    np.testing.assert_allclose(F.interpolate(x, size=4, mode="linear").numpy().ravel(), [0, 0.25, 0.75, 1])


@given(h=st.integers(1, 5), w=st.integers(1, 5), oh=st.integers(1, 7), ow=st.integers(1, 7),
       mode=st.sampled_from(["nearest-exact", "bicubic-false", "bicubic-true", "area"]), seed=st.integers(0, 1000))
def test_new_modes_gradcheck(h, w, oh, ow, mode, seed):
    x = tg.Tensor(np.random.default_rng(seed).standard_normal((2, 2, h, w)), requires_grad=True)
    name, _, align = mode.partition("-")
    kwargs = dict(mode=mode) if name != "bicubic" else dict(mode=name, align_corners=align == "true")
    assert tg.gradcheck(lambda t: F.interpolate(t, size=(oh, ow), **kwargs), [x])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["nearest-exact", "bicubic", "area"])
def test_new_modes_on_every_device(device, mode):
    x = np.random.default_rng(7).standard_normal((2, 3, 5, 4))
    expected = {"nearest-exact": naive_nearest_exact, "area": naive_adaptive_avg_pool,
                "bicubic": lambda a, s: naive_bicubic(a, s, False)}[mode](x, (7, 3))
    ours = tg.Tensor(x, device=device, requires_grad=True)
    out = F.interpolate(ours, size=(7, 3), mode=mode)
    assert out.device == device
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert ours.grad.shape == x.shape


@pytest.mark.parametrize("kwargs, shape", [
    (dict(size=(9, 4), mode="bicubic"), (2, 3, 6, 5)),
    (dict(scale_factor=(1.7, 0.6), mode="bicubic", align_corners=True), (2, 3, 6, 5)),
    (dict(scale_factor=2.5, mode="bicubic", recompute_scale_factor=True), (2, 3, 6, 5)),
    (dict(scale_factor=1.7, mode="nearest-exact"), (2, 3, 6, 5)),
    (dict(size=(4, 3), mode="area"), (2, 3, 6, 5)),
    (dict(scale_factor=(0.6, 1.5), mode="area"), (2, 3, 6, 5)),
    (dict(size=9, mode="linear", align_corners=True), (2, 3, 6)),
    (dict(scale_factor=1.5, mode="linear"), (2, 3, 6)),
    (dict(size=4, mode="nearest"), (2, 3, 6)),
    (dict(scale_factor=0.7, mode="area"), (2, 3, 6)),
])
def test_new_modes_match_pytorch(kwargs, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(shape).astype(dtype)
        ours, theirs = tg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        out, ref = F.interpolate(ours, **kwargs), torch.nn.functional.interpolate(theirs, **kwargs)
        gy = rng.standard_normal(out.shape).astype(dtype)
        out.backward(gy)
        ref.backward(torch.tensor(gy))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert out.shape == tuple(ref.shape)
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- pixel shuffle
def test_pixel_shuffle_matches_its_definition_and_gradcheck():
    r = 2
    x = np.random.default_rng(4).standard_normal((2, 3 * r * r, 3, 2))
    out = F.pixel_shuffle(tg.Tensor(x), r).numpy()
    assert out.shape == (2, 3, 6, 4)
    for c in range(3):
        for i in range(r):
            for j in range(r):
                np.testing.assert_array_equal(out[:, c, i::r, j::r], x[:, c * r * r + i * r + j])
    assert tg.gradcheck(lambda t: F.pixel_shuffle(t, r), [tg.Tensor(x, requires_grad=True)])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, message", [
    (lambda x: F.interpolate(x), r"interpolate: give exactly one of size and scale_factor"),
    (lambda x: F.interpolate(x, size=4, scale_factor=2), r"interpolate: give exactly one of size and scale_factor"),
    (lambda x: F.interpolate(x, size=4, mode="trilinear"), r"interpolate: mode 'trilinear' does not apply to a 4-D"),
    (lambda x: F.interpolate(x, size=4, align_corners=True), r"interpolate: align_corners can only be set"),
    (lambda x: F.interpolate(x, scale_factor=0.1), r"interpolate: scale_factor 0.1 makes the input .* empty"),
    (lambda x: F.interpolate(x, size=(0, 2)), r"interpolate: size must be a positive int or a sequence of 2"),
    (lambda x: F.pixel_shuffle(x, 2), r"pixel_shuffle: the 3 input channels .* must be divisible by "
                                      r"upscale_factor\*\*2 = 4"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(tg.zeros(1, 3, 4, 4))


@pytest.mark.parametrize("shape, kwargs, message", [
    ((1, 3, 4, 4), dict(scale_factor=float("nan")), r"scale_factor must be a finite positive number .* got nan"),
    ((1, 3, 4, 4), dict(scale_factor=float("inf")), r"scale_factor must be a finite positive number .* got inf"),
    ((1, 3, 4, 4), dict(scale_factor=(2, -1)), r"scale_factor must be a finite positive number"),
    ((1, 3, 4, 4), dict(scale_factor=0), r"scale_factor must be a finite positive number"),
    ((1, 3, 4, 4), dict(size=4, recompute_scale_factor=True), r"recompute_scale_factor is meaningless with an "
                                                              r"explicit size"),
    ((1, 3, 4, 4), dict(size=4, mode="area", align_corners=False), r"align_corners can only be set"),
    ((1, 3, 4, 4), dict(size=4, mode="nearest-exact", align_corners=True), r"align_corners can only be set"),
    ((1, 3, 4, 4), dict(size=4, mode="bilinear", antialias=True), r"antialias=True is not implemented"),
    ((1, 3, 4, 4), dict(size=4, mode="linear"), r"mode 'linear' does not apply to a 4-D input"),
    ((1, 3, 4), dict(size=4, mode="bilinear"), r"mode 'bilinear' does not apply to a 3-D input"),
    ((1, 3, 4), dict(size=4, mode="bicubic"), r"mode 'bicubic' does not apply to a 3-D input"),
    ((1, 3, 4), dict(size=(4, 4)), r"size must have one entry per spatial dim of the input \(1\)"),
    ((1, 3, 4, 4), dict(size=(5,)), r"size must have one entry per spatial dim of the input \(2\)"),
    ((1, 3, 4, 4), dict(scale_factor=(2, 2, 2)), r"scale_factor must have one entry per spatial dim"),
    ((1, 3, 4, 4), dict(size=2.5), r"size must be a positive int"),
    ((3, 4), dict(size=4), r"input must be 3-D \(N, C, L\) for a 1-D resize or 4-D"),
    ((1, 1, 3, 4, 4), dict(size=4), r"input must be 3-D \(N, C, L\) for a 1-D resize or 4-D"),
])
def test_interpolate_arguments_checked_as_pytorch(shape, kwargs, message):
    with pytest.raises(ValueError, match="interpolate: " + message):
        F.interpolate(tg.zeros(*shape), **kwargs)
