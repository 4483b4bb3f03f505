"""RoIAlign and RoIPool against naive per-sample loops that transcribe torchvision's CPU kernels,
hand-worked values, gradient checks and argument errors."""
import math

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import functional as F
from conftest import DEVICES


# --------------------------------------------------------------------------- naive references
def _bilinear_taps(y, x, height, width):
    """torchvision's bilinear_interpolate as (row, col, weight) taps; [] for a sample off the map."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return [(y_low, x_low, hy * hx), (y_low, x_high, hy * lx), (y_high, x_low, ly * hx), (y_high, x_high, ly * lx)]


def _roi_align_taps(roi, out_h, out_w, height, width, scale, sampling_ratio, aligned):
    """For each output bin (ph, pw): the list of (row, col, weight / count) it averages."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (c * scale - offset for c in roi[1:])
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
    count = max(grid_h * grid_w, 1)
    taps = {}
    for ph in range(out_h):
        for pw in range(out_w):
            taps[ph, pw] = []
            for iy in range(grid_h):
                y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(grid_w):
                    x = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                    taps[ph, pw] += [(r, c, wt / count) for r, c, wt in _bilinear_taps(y, x, height, width)]
    return taps


def reference_roi_align(x, rois, out_size, scale, sampling_ratio, aligned, grad=None):
    """Forward output, and the input gradient for upstream ``grad`` (scatter to the four taps)."""
    n, c, h, w = x.shape
    out = np.zeros((len(rois), c, *out_size))
    grad_x = np.zeros_like(x, dtype=np.float64)
    for k, roi in enumerate(rois):
        b = int(roi[0])
        for (ph, pw), taps in _roi_align_taps(roi, *out_size, h, w, scale, sampling_ratio, aligned).items():
            for r, col, wt in taps:
                out[k, :, ph, pw] += wt * x[b, :, r, col]
                if grad is not None:
                    grad_x[b, :, r, col] += wt * grad[k, :, ph, pw]
    return out, grad_x


def reference_roi_pool(x, rois, out_size, scale):
    """torchvision's roi_pool loop: output and the arg-max gradient of sum(output * grad)."""
    n, c, h, w = x.shape
    out_h, out_w = out_size
    out = np.zeros((len(rois), c, out_h, out_w))
    argmax = -np.ones((len(rois), c, out_h, out_w), dtype=int)
    c_round = lambda v: math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)
    for k, roi in enumerate(rois):
        b = int(roi[0])
        x1, y1, x2, y2 = (c_round(v * scale) for v in roi[1:])
        bin_h, bin_w = max(y2 - y1 + 1, 1) / out_h, max(x2 - x1 + 1, 1) / out_w
        for ph in range(out_h):
            for pw in range(out_w):
                h0 = min(max(math.floor(ph * bin_h) + y1, 0), h)
                h1 = min(max(math.ceil((ph + 1) * bin_h) + y1, 0), h)
                w0 = min(max(math.floor(pw * bin_w) + x1, 0), w)
                w1 = min(max(math.ceil((pw + 1) * bin_w) + x1, 0), w)
                for ch in range(c):
                    best, where = (0.0, -1) if (h1 <= h0 or w1 <= w0) else (-np.inf, -1)
                    for r in range(h0, h1):
                        for col in range(w0, w1):
                            if x[b, ch, r, col] > best:
                                best, where = x[b, ch, r, col], r * w + col
                    out[k, ch, ph, pw], argmax[k, ch, ph, pw] = best, where
    return out, argmax


def _random_rois(rng, n_images, height, width, count):
    """Boxes of all kinds: inside, partly outside the map, tiny (< 1 pixel), large, degenerate."""
    rois = []
    for i in range(count):
        kind = i % 4
        if kind == 0:      # inside
            x1, y1 = rng.uniform(0, width - 2), rng.uniform(0, height - 2)
            x2, y2 = rng.uniform(x1, width), rng.uniform(y1, height)
        elif kind == 1:    # sticks out of the map
            x1, y1 = rng.uniform(-3, width / 2), rng.uniform(-3, height / 2)
            x2, y2 = x1 + rng.uniform(2, width + 3), y1 + rng.uniform(2, height + 3)
        elif kind == 2:    # tiny
            x1, y1 = rng.uniform(0, width), rng.uniform(0, height)
            x2, y2 = x1 + rng.uniform(0, 0.8), y1 + rng.uniform(0, 0.8)
        else:              # large
            x1, y1 = rng.uniform(-1, 1), rng.uniform(-1, 1)
            x2, y2 = x1 + rng.uniform(width - 1, width + 2), y1 + rng.uniform(height - 1, height + 2)
        rois.append([rng.integers(0, n_images), x1, y1, x2, y2])
    return np.array(rois)


# --------------------------------------------------------------------------- RoIAlign
def test_roi_align_hand_values_unaligned_and_aligned():
    x = tg.Tensor(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
    box = tg.Tensor([[0, 1, 1, 3, 3]], dtype=np.float32)
    unaligned = [[7.5, 8, 8.5, 9], [10, 10.5, 11, 11.5], [12.5, 13, 13.5, 14], [15, 15.5, 16, 16.5]]
    aligned = [[4.5, 5, 5.5, 6], [7, 7.5, 8, 8.5], [9.5, 10, 10.5, 11], [12, 12.5, 13, 13.5]]
    assert np.allclose(F.roi_align(x, box, 4, sampling_ratio=0).numpy()[0, 0], unaligned)
    assert np.allclose(F.roi_align(x, box, 4, sampling_ratio=0, aligned=True).numpy()[0, 0], aligned)


def test_roi_align_of_a_linear_ramp_samples_bin_centres():
    # On f(y, x) = 10 y + x, bilinear sampling is exact, so each bin's average is f at the bin centre.
    h, w = 8, 9
    ramp = 10 * np.arange(h)[:, None] + np.arange(w)[None, :]
    x = tg.Tensor(ramp[None, None].astype(np.float64))
    out = F.roi_align(x, tg.Tensor([[0, 1.0, 2.0, 5.0, 6.0]]), (2, 3), sampling_ratio=2, aligned=True).numpy()
    cy = 2.0 - 0.5 + (np.arange(2) + 0.5) * 2.0          # box rows [1.5, 5.5), 2 bins of 2
    cx = 1.0 - 0.5 + (np.arange(3) + 0.5) * (4.0 / 3)    # box cols [0.5, 4.5), 3 bins of 4/3
    assert np.allclose(out[0, 0], 10 * cy[:, None] + cx[None, :])


@pytest.mark.parametrize("centre,expected", [
    (-1.0, 1.0),            # y = -1 still counts, clamped to row 0: f(0, 1) = 1
    (-1.01, 0.0),           # y < -1: the sample contributes nothing
    (2.25, 0.75 * 21 + 0.25 * 31),  # interpolated between rows 2 and 3
    (3.5, 31.0),            # y_low = 3 = H - 1: row 3 taken whole
    (4.0, 31.0),            # y = H still counts
    (4.01, 0.0),            # y > H: nothing
])
def test_roi_align_border_rules_by_hand(centre, expected):
    # One sample per bin (sampling_ratio=1, 1x1 output) sits at the box centre; f(y, x) = 10 y + x,
    # and the box's x centre is 1, so an in-map sample reads row y at column 1.
    f = tg.Tensor((10 * np.arange(4)[:, None] + np.arange(4)[None, :])[None, None].astype(np.float64))
    box = tg.Tensor([[0, 0.0, centre - 0.5, 2.0, centre + 0.5]])
    assert F.roi_align(f, box, 1, sampling_ratio=1).item() == pytest.approx(expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio,scale", [(-1, 1.0), (0, 0.5), (2, 1.0), (3, 0.25)])
def test_roi_align_matches_the_per_sample_reference(device, aligned, sampling_ratio, scale):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 6, 7))
    rois = _random_rois(rng, 2, 6 / scale, 7 / scale, 12)
    grad = rng.standard_normal((len(rois), 3, 3, 2))
    expected, expected_grad = reference_roi_align(x, rois, (3, 2), scale, sampling_ratio, aligned, grad)
    xt = tg.Tensor(x, device=device, requires_grad=True)
    out = F.roi_align(xt, tg.Tensor(rois, device=device), (3, 2), scale, sampling_ratio, aligned)
    out.backward(grad)
    assert out.device == device and out.dtype == np.float64
    assert np.allclose(out.numpy(), expected, atol=1e-12)
    assert np.allclose(xt.grad.numpy(), expected_grad, atol=1e-12)


def test_roi_align_float32_and_float16():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 4, 9, 9))
    rois = _random_rois(rng, 1, 9, 9, 8)
    expected, _ = reference_roi_align(x, rois, (2, 2), 1.0, -1, True)
    for dtype, tol in ((np.float32, 1e-5), (np.float16, 2e-2)):
        out = F.roi_align(tg.Tensor(x.astype(dtype)), tg.Tensor(rois), 2, aligned=True)
        assert out.dtype == dtype
        assert np.allclose(out.numpy().astype(np.float64), expected, atol=tol, rtol=tol)


def test_roi_align_gradcheck_float64():
    # RoIAlign is linear in its input (the boxes are constants), so finite differences are exact
    # for any boxes, including ones partly outside the map and tiny ones.
    rng = np.random.default_rng(9)
    x = tg.Tensor(rng.standard_normal((2, 2, 5, 6)), requires_grad=True)
    rois = tg.Tensor(_random_rois(rng, 2, 5, 6, 8))
    for aligned in (False, True):
        assert tg.gradcheck(lambda t: F.roi_align(t, rois, (2, 3), 1.0, -1, aligned), [x])
    small = tg.Tensor(rng.standard_normal((1, 1, 3, 3)), requires_grad=True)
    box = tg.Tensor([[0, -0.7, 0.3, 2.2, 2.9]])
    assert tg.gradcheck(lambda t: F.roi_align(t, box, 2, 1.0, 2, True), [small], mode="jacobian")


def test_roi_align_list_of_boxes_equals_batch_index_form():
    rng = np.random.default_rng(10)
    x = tg.Tensor(rng.standard_normal((2, 3, 6, 6)))
    per_image = [tg.Tensor([[0.5, 1.0, 4.0, 5.5]]), tg.Tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 6.0, 6.0]])]
    as_rois = tg.Tensor([[0, 0.5, 1.0, 4.0, 5.5], [1, 1.0, 0.0, 3.0, 2.0], [1, 0.0, 0.0, 6.0, 6.0]])
    assert np.array_equal(F.roi_align(x, per_image, 3).numpy(), F.roi_align(x, as_rois, 3).numpy())


def test_empty_aligned_box_gives_zeros_and_zero_gradient():
    x = tg.Tensor(np.ones((1, 2, 4, 4)), requires_grad=True)
    out = F.roi_align(x, tg.Tensor([[0, 2.0, 2.0, 2.0, 2.0]]), 3, aligned=True)
    assert out.shape == (1, 2, 3, 3) and not out.numpy().any()
    out.sum().backward()
    assert x.grad is not None and not x.grad.numpy().any()


def test_no_boxes_and_input_untouched():
    data = np.random.default_rng(11).standard_normal((1, 2, 4, 4))
    x = tg.Tensor(data.copy(), requires_grad=True)
    assert F.roi_align(x, tg.Tensor(np.zeros((0, 5))), 2).shape == (0, 2, 2, 2)
    F.roi_align(x, tg.Tensor([[0, 0.0, 0.0, 3.0, 3.0]]), 2).sum().backward()
    assert np.array_equal(x.numpy(), data)


def test_roi_align_on_a_non_contiguous_input():
    rng = np.random.default_rng(12)
    base = rng.standard_normal((1, 5, 6, 2))
    strided = tg.Tensor(base.transpose(0, 3, 1, 2))            # a (1, 2, 5, 6) view with odd strides
    rois = tg.Tensor([[0, 0.5, 0.5, 4.5, 3.5]])
    expected, _ = reference_roi_align(np.ascontiguousarray(base.transpose(0, 3, 1, 2)), rois.numpy(), (2, 2),
                                      1.0, -1, False)
    assert np.allclose(F.roi_align(strided, rois, 2).numpy(), expected)


@pytest.mark.parametrize("op", [F.roi_align, F.roi_pool])
def test_bad_boxes_raise_clear_errors(op):
    x = tg.Tensor(np.zeros((2, 1, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"x2 < x1 or y2 < y1"):
        op(x, tg.Tensor([[0, 3.0, 0.0, 1.0, 2.0]]), 2)
    with pytest.raises(ValueError, match="NaN"):
        op(x, tg.Tensor([[0, np.nan, 0.0, 1.0, 2.0]]), 2)
    with pytest.raises(ValueError, match=r"batch indices must be integers in \[0, 2\)"):
        op(x, tg.Tensor([[2, 0.0, 0.0, 1.0, 2.0]]), 2)
    with pytest.raises(ValueError, match=r"Tensor\[K, 5\].*got shape \(1, 4\)"):
        op(x, tg.Tensor([[0.0, 0.0, 1.0, 2.0]]), 2)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have shape \(L, 4\)"):
        op(x, [tg.Tensor([[0, 0.0, 0.0, 1.0, 2.0]])], 2)
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, H, W\)"):
        op(tg.Tensor(np.zeros((1, 4, 4))), tg.Tensor([[0, 0.0, 0.0, 1.0, 2.0]]), 2)
    with pytest.raises(ValueError, match="output_size"):
        op(x, tg.Tensor([[0, 0.0, 0.0, 1.0, 2.0]]), 0)


@pytest.mark.parametrize("op", [F.roi_align, F.roi_pool])
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(spatial_scale=-1), ValueError, r"spatial_scale must be a finite positive number .* got -1"),
    (dict(spatial_scale=0.0), ValueError, r"spatial_scale must be a finite positive number"),
    (dict(spatial_scale=float("nan")), ValueError, r"spatial_scale must be a finite positive number"),
    (dict(spatial_scale="1/16"), ValueError, r"spatial_scale must be a finite positive number"),
    (dict(output_size=(2, 0)), ValueError, r"output_size must be >= 1, got \(2, 0\)"),
    (dict(output_size=1.5), TypeError, r"output_size must be an int or a pair of ints, got 1.5"),
    (dict(output_size=(2, 2, 2)), TypeError, r"output_size must be an int or a pair of ints, got \(2, 2, 2\)"),
])
def test_bad_scalar_arguments_are_refused_by_name(op, kwargs, error, message):
    x = tg.Tensor(np.zeros((1, 1, 4, 4)))
    kwargs = dict(dict(output_size=2), **kwargs)
    with pytest.raises(error, match=f"{op.__name__}: {message}"):
        op(x, tg.Tensor([[0, 0.0, 0.0, 1.0, 2.0]]), **kwargs)


def test_roi_align_sampling_ratio_must_be_an_int_and_any_nonpositive_one_is_adaptive():
    """torchvision takes every sampling_ratio <= 0 as adaptive (ceil(roi / output) samples per bin)."""
    x = tg.Tensor(np.random.default_rng(5).standard_normal((1, 2, 8, 8)))
    rois = tg.Tensor([[0, 0.5, 1.0, 6.5, 7.0]])
    adaptive, _ = reference_roi_align(x.numpy(), rois.numpy(), (2, 2), 1.0, -1, False)
    for ratio in (-5, 0, -1):   # the reference computes its coordinates in float32
        np.testing.assert_allclose(F.roi_align(x, rois, 2, sampling_ratio=ratio).numpy(), adaptive, rtol=1e-6)
    assert not np.allclose(F.roi_align(x, rois, 2, sampling_ratio=1).numpy(), adaptive, rtol=1e-6)
    for ratio in (1.5, 2.0, True):
        with pytest.raises(TypeError, match=r"roi_align: sampling_ratio must be an int \(any value <= 0 means "
                                            r"adaptive"):
            F.roi_align(x, rois, 2, sampling_ratio=ratio)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", [F.roi_align, F.roi_pool])
def test_no_boxes_give_an_empty_result(op, device):
    x = tg.Tensor(np.zeros((1, 3, 4, 4)), device=device, requires_grad=True)
    out = op(x, tg.Tensor(np.zeros((0, 5)), device=device), (2, 3))
    assert out.shape == (0, 3, 2, 3)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(x.shape))


# --------------------------------------------------------------------------- RoIPool
def test_roi_pool_hand_values():
    x = tg.Tensor(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
    # box (1, 1, 3, 3) covers cells 1..3 (3 cells, bins of 1.5): bins span rows/cols {1, 2} and {2, 3}
    out = F.roi_pool(x, tg.Tensor([[0, 1, 1, 3, 3]], dtype=np.float32), 2)
    assert out.numpy()[0, 0].tolist() == [[12, 13], [17, 18]]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_roi_pool_matches_the_reference_forward_and_backward(device, scale):
    rng = np.random.default_rng(13)
    x = rng.permutation(2 * 3 * 6 * 7).reshape(2, 3, 6, 7).astype(np.float64)   # distinct values: no ties
    rois = _random_rois(rng, 2, 6 / scale, 7 / scale, 12)
    expected, argmax = reference_roi_pool(x, rois, (3, 2), scale)
    xt = tg.Tensor(x, device=device, requires_grad=True)
    out = F.roi_pool(xt, tg.Tensor(rois, device=device), (3, 2), scale)
    assert np.array_equal(out.numpy(), expected)
    grad = rng.standard_normal(out.shape)
    out.backward(grad)
    expected_grad = np.zeros((2, 3, 6 * 7))
    for (k, ch, ph, pw), where in np.ndenumerate(argmax):
        if where >= 0:
            expected_grad[int(rois[k, 0]), ch, where] += grad[k, ch, ph, pw]
    assert np.allclose(xt.grad.numpy(), expected_grad.reshape(x.shape))


def test_roi_pool_gradcheck_and_empty_bins():
    rng = np.random.default_rng(14)
    x = tg.Tensor(rng.permutation(2 * 5 * 5).reshape(1, 2, 5, 5) / 7.0, requires_grad=True)
    rois = tg.Tensor([[0, 0.4, 0.6, 3.7, 4.2], [0, 3.0, 3.0, 9.0, 9.0]])
    assert tg.gradcheck(lambda t: F.roi_pool(t, rois, 3), [x])
    outside = F.roi_pool(x, tg.Tensor([[0, 7.0, 7.0, 9.0, 9.0]]), 2)     # entirely off the map
    assert not outside.numpy().any()


def test_roi_align_in_small_groups_of_rois_gives_the_same(monkeypatch):
    from tinygrad_cv.ops import roi
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 3, 6, 7))
    rois = tg.Tensor(_random_rois(rng, 2, 6, 7, 9))
    grad = rng.standard_normal((9, 3, 2, 2))
    results = []
    for limit in (roi._MAX_INTERMEDIATE, 2 * 3 * 7):              # the second: one ROI per product
        monkeypatch.setattr(roi, "_MAX_INTERMEDIATE", limit)
        xt = tg.Tensor(x, requires_grad=True)
        out = F.roi_align(xt, rois, 2, aligned=True)
        out.backward(grad)
        results.append((out.numpy(), xt.grad.numpy()))
    assert np.allclose(results[0][0], results[1][0]) and np.allclose(results[0][1], results[1][1])


# --------------------------------------------------------------------------- multi-scale RoIAlign
def _hand_level(roi, k_min, k_max, canonical_scale, canonical_level):
    """Lin et al.'s eq. 1 for one box, by hand: k0 + log2(sqrt(w h) / 224), floored and clamped."""
    side = math.sqrt((roi[3] - roi[1]) * (roi[4] - roi[2]))
    k = k_min if side == 0 else math.floor(canonical_level + math.log2(side / canonical_scale) + 1e-6)
    return min(max(k, k_min), k_max) - k_min


def _pyramid(rng, n_images, channels, image_size, strides, device="cpu", dtype=np.float64):
    return [tg.Tensor(rng.standard_normal((n_images, channels, image_size // s, image_size // s)).astype(dtype),
                      device=device, requires_grad=True) for s in strides]


def test_roi_levels_follow_the_fpn_rule_by_hand():
    # sides 224 -> canonical level 4; each halving one level finer; clamped to the levels present (2..5)
    rois = np.array([[0, 0, 0, 224, 224], [0, 10, 10, 122, 122], [0, 0, 0, 111.9, 112], [0, 0, 0, 56, 56],
                     [0, 0, 0, 8, 8], [0, 0, 0, 448, 448], [0, 0, 0, 2000, 3000], [0, 3, 3, 3, 9],
                     [0, 0, 0, 224, 56]])
    levels = tg.ops.roi.roi_levels(np, rois, 2, 5)
    assert levels.tolist() == [2, 1, 0, 0, 0, 3, 3, 0, 1]
    assert levels.tolist() == [_hand_level(r, 2, 5, 224, 4) for r in rois]
    assert tg.ops.roi.roi_levels(np, rois[:4], 3, 6, canonical_scale=56, canonical_level=3).tolist() == [2, 1, 0, 0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("aligned", [False, True])
def test_multi_scale_roi_align_pools_each_box_from_its_level(device, aligned):
    rng = np.random.default_rng(20)
    strides, image = (4, 8, 16), 64
    features = _pyramid(rng, 2, 3, image, strides, device)
    rois = _random_rois(rng, 2, image, image, 16)
    rois[:4, 3:] = rois[:4, 1:3] + [[40, 50], [20, 20], [5, 9], [60, 64]]   # boxes for the coarser levels too
    grad = rng.standard_normal((len(rois), 3, 3, 2))
    out = F.multi_scale_roi_align(features, tg.Tensor(rois, device=device), (3, 2), [1 / s for s in strides],
                                  sampling_ratio=2, canonical_scale=32, canonical_level=3, aligned=aligned)
    out.backward(grad)
    levels = [_hand_level(r, 2, 4, 32, 3) for r in rois]
    assert set(levels) == {0, 1, 2}                                # every level is used
    expected_grads = [np.zeros(f.shape) for f in features]
    for k, (roi, level) in enumerate(zip(rois, levels)):
        x = features[level].numpy()
        expected, grad_x = reference_roi_align(x, roi[None], (3, 2), 1 / strides[level], 2, aligned, grad[k:k + 1])
        assert np.allclose(out.numpy()[k], expected[0], atol=1e-12)
        expected_grads[level] += grad_x
    assert out.device == device and out.dtype == np.float64
    for f, expected_grad in zip(features, expected_grads):
        assert np.allclose(f.grad.numpy(), expected_grad, atol=1e-12)


def test_multi_scale_roi_align_matches_torchvision():
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    rng = np.random.default_rng(21)
    image, strides = 128, (4, 8, 16, 32)
    arrays = [rng.standard_normal((2, 4, image // s, image // s)).astype(np.float32) for s in strides]
    xy = rng.uniform(-10, 120, (12, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 130, (12, 2))], 1).astype(np.float32)
    per_image = [boxes[:7], boxes[7:]]
    # torchvision infers the scales from feature size / image size: 2^round(log2(32 / 128)) = 1/4, ...
    pool = torchvision.ops.MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], (7, 5), 2, canonical_scale=56,
                                              canonical_level=3)
    torch_features = {f"p{i + 2}": torch.tensor(a, requires_grad=True) for i, a in enumerate(arrays)}
    expected = pool(torch_features, [torch.tensor(b) for b in per_image], [(image, image)] * 2)
    grad = rng.standard_normal(expected.shape).astype(np.float32)
    expected.backward(torch.tensor(grad))
    features = [tg.Tensor(a, requires_grad=True) for a in arrays]
    out = F.multi_scale_roi_align(features, per_image, (7, 5), [1 / s for s in strides], 2, 56, 3)
    out.backward(grad)
    assert out.shape == (12, 4, 7, 5)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), atol=1e-5, rtol=1e-5)
    for f, name in zip(features, torch_features):
        np.testing.assert_allclose(f.grad.numpy(), torch_features[name].grad.numpy(), atol=1e-5, rtol=1e-5)


def test_multi_scale_roi_align_gradcheck_float64():
    rng = np.random.default_rng(22)
    features = _pyramid(rng, 2, 2, 32, (4, 8, 16))
    rois = tg.Tensor([[0, 1.0, 2.0, 7.0, 6.5], [1, -3.0, -2.0, 31.0, 33.0], [0, 5.0, 5.0, 20.0, 19.0],
                      [1, 10.0, 0.5, 12.0, 3.0], [1, 0.0, 0.0, 16.0, 16.0]])
    assert sorted(set(tg.ops.roi.roi_levels(np, rois.numpy(), 2, 4, 16, 3).tolist())) == [0, 1, 2]
    assert tg.gradcheck(lambda *fs: F.multi_scale_roi_align(list(fs), rois, 2, [1 / 4, 1 / 8, 1 / 16],
                                                            canonical_scale=16, canonical_level=3), features)


def test_multi_scale_roi_align_keeps_the_order_of_the_boxes_and_takes_empty_images():
    rng = np.random.default_rng(23)
    features = _pyramid(rng, 3, 2, 32, (4, 8))
    big, small, mid = [0.0, 0.0, 30.0, 31.0], [2.0, 3.0, 6.0, 7.0], [4.0, 4.0, 20.0, 22.0]
    per_image = [tg.Tensor([big, small]), tg.Tensor(np.zeros((0, 4))), tg.Tensor([mid])]
    out = F.multi_scale_roi_align(features, per_image, 3, [1 / 4, 1 / 8], canonical_scale=16, canonical_level=3)
    rows = [F.roi_align(features[1], tg.Tensor([[0] + big]), 3, 1 / 8, 2), F.roi_align(features[0], tg.Tensor(
        [[0] + small]), 3, 1 / 4, 2), F.roi_align(features[1], tg.Tensor([[2] + mid]), 3, 1 / 8, 2)]
    np.testing.assert_array_equal(out.numpy(), np.concatenate([r.numpy() for r in rows]))
    nothing = F.multi_scale_roi_align(features, [np.zeros((0, 4))] * 3, 3, [1 / 4, 1 / 8])
    assert nothing.shape == (0, 2, 3, 3)
    nothing.sum().backward()
    assert all(not f.grad.numpy().any() for f in features)


def test_multi_scale_roi_align_refuses_bad_arguments_by_name():
    features = [tg.Tensor(np.zeros((1, 2, 8, 8))), tg.Tensor(np.zeros((1, 2, 4, 4)))]
    boxes = [np.array([[0.0, 0.0, 4.0, 4.0]])]
    cases = [
        (dict(spatial_scales=[1 / 4]), r"one scale per feature level \(2\)"),
        (dict(spatial_scales=[1 / 4, 1 / 6]), r"powers of 2"),
        (dict(spatial_scales=[1 / 8, 1 / 4]), r"halve from each level to the next, finest first"),
        (dict(spatial_scales=[1 / 4, 1 / 16]), r"halve from each level to the next"),
        (dict(spatial_scales=[-0.25, 1 / 8]), r"spatial_scale must be a finite positive number"),
        (dict(boxes=[np.zeros((1, 5))]), r"boxes\[0\] must have shape \(L, 4\)"),
        (dict(boxes=tg.Tensor(np.zeros((1, 4)))), r"Tensor\[K, 5\]"),
        (dict(boxes=[np.zeros((1, 4))] * 2), r"batch indices must be integers in \[0, 1\)"),
        (dict(features=features[:1] + [tg.Tensor(np.zeros((1, 3, 4, 4)))]), r"features\[1\] is \(1, 3, 4, 4\)"),
        (dict(canonical_scale=0), r"canonical_scale must be a finite positive number"),
        (dict(output_size=0), r"output_size must be >= 1, got 0"),
    ]
    for change, message in cases:
        args = dict(dict(features=features, boxes=boxes, output_size=2, spatial_scales=[1 / 4, 1 / 8]), **change)
        with pytest.raises(ValueError, match=f"multi_scale_roi_align: .*{message}"):
            F.multi_scale_roi_align(**args)
    for change, message in [(dict(features=features[0]), r"features must be a non-empty list"),
                            (dict(sampling_ratio=2.0), r"sampling_ratio must be an int"),
                            (dict(canonical_level=4.5), r"canonical_level must be an int")]:
        args = dict(dict(features=features, boxes=boxes, output_size=2, spatial_scales=[1 / 4, 1 / 8]), **change)
        with pytest.raises(TypeError, match=f"multi_scale_roi_align: {message}"):
            F.multi_scale_roi_align(**args)
