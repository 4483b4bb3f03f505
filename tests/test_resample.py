"""interpolate and pixel_shuffle: hand-worked values, exactness on affine images, a per-pixel reference
of PyTorch's coordinate rules, gradchecks, PyTorch as an extra oracle, and the error messages."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
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
