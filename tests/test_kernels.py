"""Every CUDA kernel, through its launcher, against an independent NumPy reference.

Run on the emulator always and on a GPU when CuPy sees one. Outputs are filled with NaN before each
launch (a kernel that skips an element cannot pass), each kernel is launched with several block
sizes and with a grid capped at 2 blocks (so the grid-stride loops wrap), float16 results are
compared with the float64 reference rounded to half (within one half-precision step), and every
backward kernel is also checked as the adjoint of its forward: <f(x), g> = <x, f*(g)>.

Seeded bugs (an off-by-one, a wrong stride, a plain add where an atomic is needed) patched into the
kernel sources make these same checks fail: see test_seeded_bug_is_caught.
"""
import math

import numpy as np
import pytest

from conftest import DEVICES
from tinygrad_cv import backend
from tinygrad_cv.backend import emulator, launch, nvrtc

KERNEL_DEVICES = [d for d in DEVICES if getattr(d, "values", (d,))[0] != "cpu"]  # emu, and cuda if present
DTYPES = [np.float16, np.float32, np.float64]
F64 = np.float64
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
# (threads per block, cap on blocks along x): typical, odd-sized, and a grid too small for the data
CONFIGS = [(256, 4096), (96, 4096), (32, 2)]


@pytest.fixture(params=CONFIGS, ids=[f"block{b}-maxgrid{g}" for b, g in CONFIGS])
def block(request, monkeypatch):
    threads, max_blocks = request.param
    monkeypatch.setattr(launch, "MAX_BLOCKS", max_blocks)
    return threads


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def on(array, device):
    return backend.move(array, "cuda") if device == "cuda" else array


def nan_array(shape, dtype, device):
    return on(np.full(shape, np.nan, dtype), device)


def assert_close(got, reference, dtype, tolerance=None):
    """float16: within one half step of the float64 reference rounded to half; else relative tolerance."""
    got = backend.as_host(got).astype(F64)
    if dtype == np.float16:
        rounded = reference.astype(np.float16)
        step = np.spacing(np.abs(rounded)).astype(F64)
        error = np.abs(got - rounded.astype(F64))
        assert np.all(error <= step), f"float16 result off by {np.max(error / step):.2f} half steps"
    else:
        tol = tolerance if tolerance is not None and dtype == np.float32 else TOLERANCE[dtype]
        np.testing.assert_allclose(got, reference, rtol=tol, atol=tol)


# =========================================================================================== im2col, col2im
CONV_CASES = [  # input shape, kernel, stride, padding, dilation
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 9, 8), (3, 2), (2, 3), (1, 0), (1, 1)),
    ((2, 1, 9, 9), (3, 3), (1, 2), (2, 2), (2, 2)),
    ((3, 4, 5, 5), (1, 1), (1, 1), (0, 0), (1, 1)),
]


def out_size(shape, k, s, p, d):
    return tuple((shape[2 + a] + 2 * p[a] - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a in range(2))


def window_slices(k, s, p, d, size):
    """For each kernel offset (i, j): the slices of the padded input that it sees over all outputs."""
    ho, wo = size
    for i in range(k[0]):
        for j in range(k[1]):
            yield (i, j), (slice(i * d[0], i * d[0] + s[0] * (ho - 1) + 1, s[0]),
                           slice(j * d[1], j * d[1] + s[1] * (wo - 1) + 1, s[1]))


def im2col_reference(x, k, s, p, d):
    n, c = x.shape[:2]
    size = out_size(x.shape, k, s, p, d)
    padded = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    rows = [padded[:, :, hs, ws] for _, (hs, ws) in window_slices(k, s, p, d, size)]
    return np.stack(rows, axis=2).reshape(n, c * k[0] * k[1], size[0] * size[1])


def col2im_reference(cols, shape, k, s, p, d):
    """Scatter-add every column entry onto the padded input (im2col's transpose), then crop."""
    n, c, h, w = shape
    size = out_size(shape, k, s, p, d)
    blocks = cols.reshape(n, c, k[0], k[1], *size)
    padded = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]))
    for (i, j), (hs, ws) in window_slices(k, s, p, d, size):
        padded[:, :, hs, ws] += blocks[:, :, i, j]
    return padded[:, :, p[0]:p[0] + h, p[1]:p[1] + w]


def check_im2col(device, case=CONV_CASES[0], dtype=np.float32, block=launch.DEFAULT_BLOCK):
    shape, k, s, p, d = case
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    expected = im2col_reference(x.astype(F64), k, s, p, d).astype(dtype)
    cols = launch.im2col(on(x, device), k, s, p, d, out=nan_array(expected.shape, dtype, device), block=block)
    np.testing.assert_array_equal(backend.as_host(cols), expected)  # pure data movement: exact


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col(case, dtype, device, block):
    check_im2col(device, case, dtype, block)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_col2im(case, dtype, device, block, rng):
    shape, k, s, p, d = case
    size = out_size(shape, k, s, p, d)
    cols = rng.standard_normal((shape[0], shape[1] * k[0] * k[1], size[0] * size[1])).astype(dtype)
    x = launch.col2im(on(cols, device), shape, k, s, p, d, out=nan_array(shape, dtype, device), block=block)
    assert_close(x, col2im_reference(cols.astype(F64), shape, k, s, p, d), dtype)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_col2im_is_the_adjoint_of_im2col(case, device, rng):
    shape, k, s, p, d = case
    x = rng.standard_normal(shape)
    cols = launch.im2col(on(x, device), k, s, p, d)
    g = rng.standard_normal(cols.shape)
    back = launch.col2im(on(g, device), shape, k, s, p, d)
    lhs = np.vdot(backend.as_host(cols), g)
    rhs = np.vdot(x, backend.as_host(back))
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + 1)


def test_col2im_rejects_mismatched_cols():
    with pytest.raises(ValueError, match=r"col2im: cols has shape \(1, 9, 16\) .* needs \(1, 9, 9\)"):
        launch.col2im(np.zeros((1, 9, 16)), (1, 1, 5, 5), 3)


# =========================================================================================== max pooling
POOL_CASES = [  # input shape, kernel, stride, padding, dilation
    ((2, 3, 7, 6), (3, 3), (2, 2), (1, 1), (1, 1)),
    ((1, 2, 8, 9), (2, 3), (2, 1), (1, 1), (1, 1)),
    ((2, 2, 9, 9), (3, 3), (1, 1), (1, 1), (2, 2)),
    ((1, 1, 4, 4), (2, 2), (2, 2), (0, 0), (1, 1)),
]


def max_pool_reference(x, k, s, p, d):
    """(values, argmax as h*W + w): windows stacked from the -inf-padded input, np.argmax picks the first."""
    n, c, h, w = x.shape
    size = out_size(x.shape, k, s, p, d)
    padded = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=-np.inf)
    windows = np.stack([padded[:, :, hs, ws] for _, (hs, ws) in window_slices(k, s, p, d, size)], axis=2)
    winner = windows.argmax(axis=2)
    values = np.take_along_axis(windows, winner[:, :, None], axis=2)[:, :, 0]
    i, j = np.divmod(winner, k[1])
    oh, ow = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
    return values, (oh * s[0] - p[0] + i * d[0]) * w + (ow * s[1] - p[1] + j * d[1])


def distinct_values(shape, dtype, rng):
    """A permutation of multiples of 0.25: no ties, and exact in float16."""
    n = math.prod(shape)
    return ((rng.permutation(n) - n / 2) * 0.25).reshape(shape).astype(dtype)


def run_max_pool(x, case, device, block):
    _, k, s, p, d = case
    shape = x.shape[:2] + out_size(x.shape, k, s, p, d)
    out = (nan_array(shape, x.dtype, device), on(np.full(shape, -7, np.int32), device))
    y, argmax = launch.max_pool2d(on(x, device), k, s, p, d, out=out, block=block)
    return backend.as_host(y), backend.as_host(argmax)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_forward(case, dtype, device, block, rng):
    x = distinct_values(case[0], dtype, rng)
    y, argmax = run_max_pool(x, case, device, block)
    values, winners = max_pool_reference(x.astype(F64), *case[1:])
    np.testing.assert_array_equal(y, values.astype(dtype))
    np.testing.assert_array_equal(argmax, winners)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_max_pool2d_ties_pick_the_first_and_nan_wins(device):
    case = POOL_CASES[0]
    x = np.ones(case[0], np.float32)
    x[0, 0, 2, 3] = np.nan
    y, argmax = run_max_pool(x, case, device, 64)
    values, winners = max_pool_reference(x.astype(F64), *case[1:])
    np.testing.assert_array_equal(y, values.astype(np.float32))
    np.testing.assert_array_equal(argmax, winners)
    assert np.isnan(y).sum() == 2  # row 2 lies in window row 1 (rows 1-3); column 3 in columns 1-3 and 3-5


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_backward(case, dtype, device, block, rng):
    shape, k, s, p, d = case
    _, winners = max_pool_reference(distinct_values(shape, F64, rng), k, s, p, d)
    gy = rng.standard_normal(winners.shape).astype(dtype)
    gx = launch.max_pool2d_backward(on(gy, device), on(winners.astype(np.int32), device), shape, k, s, p, d,
                                    out=nan_array(shape, dtype, device), block=block)
    expected = np.zeros((shape[0] * shape[1], shape[2] * shape[3]))
    planes = np.arange(shape[0] * shape[1])[:, None]
    np.add.at(expected, (planes, winners.reshape(len(planes), -1)), gy.astype(F64).reshape(len(planes), -1))
    assert_close(gx, expected.reshape(shape), dtype)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d_backward_is_the_adjoint_of_the_gather(case, device, rng):
    """Given the arg-max, the forward is the linear map x -> x[argmax]; backward must be its transpose."""
    x = distinct_values(case[0], F64, rng)
    _, argmax = run_max_pool(x, case, device, 128)
    gathered = np.take_along_axis(x.reshape(*x.shape[:2], -1), argmax.reshape(*argmax.shape[:2], -1), axis=2)
    g = rng.standard_normal(argmax.shape)
    gx = launch.max_pool2d_backward(on(g, device), on(argmax, device), x.shape, *case[1:])
    lhs, rhs = np.vdot(gathered.ravel(), g), np.vdot(x, backend.as_host(gx))
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + 1)


# =========================================================================================== bias + ReLU
@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (5, 4), (1, 6, 7)])
def test_bias_relu_forward_and_backward(shape, dtype, device, block, rng):
    x = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    bias_b = bias.reshape((-1,) + (1,) * (len(shape) - 2))
    y = launch.bias_relu(on(x, device), on(bias, device), out=nan_array(shape, dtype, device), block=block)
    # x + b rounded once to dtype, then clamped: exactly what the kernel computes in its wider type
    expected = np.maximum((x.astype(F64) + bias_b).astype(dtype), 0)
    np.testing.assert_array_equal(backend.as_host(y), expected)
    gy = rng.standard_normal(shape).astype(dtype)
    gx = launch.bias_relu_backward(on(gy, device), y, out=nan_array(shape, dtype, device), block=block)
    np.testing.assert_array_equal(backend.as_host(gx), np.where(expected > 0, gy, 0).astype(dtype))


# =========================================================================================== BCE with logits
def bce_inputs(dtype, rng, n=300):
    x = np.concatenate([rng.uniform(-6, 6, n - 4), [-30, 30, 0.0, 1e-3]]).astype(dtype)
    hard = rng.random(n) > 0.5
    target = np.where(rng.random(n) > 0.3, hard, rng.random(n)).astype(dtype)
    return x, target


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_forward(dtype, device, block, rng):
    x, t = bce_inputs(dtype, rng)
    out = nan_array(x.shape, dtype, device)
    loss = launch.bce_with_logits(on(x, device), on(t, device), out=out, block=block)
    x64, t64 = x.astype(F64), t.astype(F64)
    assert_close(loss, np.logaddexp(0, x64) - x64 * t64, dtype)  # softplus(x) - x t


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("upstream", ["per-element", "single"])
def test_bce_with_logits_backward(upstream, dtype, device, block, rng):
    x, t = bce_inputs(dtype, rng)
    gy = rng.standard_normal(x.shape if upstream == "per-element" else (1,)).astype(dtype)
    scale = 1 / x.size if upstream == "single" else 1.0
    gx = launch.bce_with_logits_backward(on(x, device), on(t, device), on(gy, device), scale,
                                         out=nan_array(x.shape, dtype, device), block=block)
    sigmoid = 0.5 * (1 + np.tanh(x.astype(F64) / 2))
    assert_close(gx, (sigmoid - t.astype(F64)) * gy.astype(F64) * scale, dtype)


# =========================================================================================== RoIAlign
ROI_INPUT = (2, 3, 7, 8)
ROI_BOXES = np.array([
    [0, 1.3, 2.1, 9.7, 11.4],     # inside
    [1, -3.2, -1.7, 6.6, 5.9],    # partly above and left of the image
    [0, 10.3, 8.2, 19.1, 15.7],   # partly below and right of it
    [1, 4.4, 4.4, 4.9, 5.3],      # smaller than a pixel
    [0, 0.0, 0.0, 15.9, 13.9],    # the whole image
])
ROI_CASES = [  # output size, spatial scale, sampling ratio, aligned
    ((2, 3), 0.5, 2, False),
    ((2, 3), 0.5, -1, True),
    ((3, 2), 1.0, 0, False),
]


def roi_align_matrix(input_shape, boxes, output_size, scale, ratio, aligned):
    """M[k, ph, pw, n, h, w]: the weight of input pixel (n, h, w) in output bin (k, ph, pw), transcribed
    from torchvision's definition with Python scalars. y = M x and gx = M^T gy, per channel."""
    n_images, _, height, width = input_shape
    pooled_h, pooled_w = output_size
    m = np.zeros((len(boxes), pooled_h, pooled_w, n_images, height, width))
    offset = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(boxes.tolist()):
        start_x, start_y = x1 * scale - offset, y1 * scale - offset
        roi_w, roi_h = x2 * scale - offset - start_x, y2 * scale - offset - start_y
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        grid_h = ratio if ratio > 0 else math.ceil(roi_h / pooled_h)
        grid_w = ratio if ratio > 0 else math.ceil(roi_w / pooled_w)
        count = max(grid_h * grid_w, 1)
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                for iy in range(grid_h):
                    for ix in range(grid_w):
                        y = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        x = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        for (yy, xx), weight in bilinear_weights(y, x, height, width):
                            m[k, ph, pw, int(b), yy, xx] += weight / count
    return m


def bilinear_weights(y, x, height, width):
    if y < -1 or y > height or x < -1 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    if y0 >= height - 1:
        y0, y = height - 1, float(height - 1)
    if x0 >= width - 1:
        x0, x = width - 1, float(width - 1)
    ly, lx = y - y0, x - x0
    return [((y0, x0), (1 - ly) * (1 - lx)), ((y0, x1), (1 - ly) * lx),
            ((y1, x0), ly * (1 - lx)), ((y1, x1), ly * lx)]


def roi_boxes(dtype):
    return ROI_BOXES.astype(np.float64 if dtype == np.float64 else np.float32)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ROI_CASES)
def test_roi_align_forward(case, dtype, device, block, rng):
    size, scale, ratio, aligned = case
    x = rng.standard_normal(ROI_INPUT).astype(dtype)
    boxes = roi_boxes(dtype)
    y = launch.roi_align(on(x, device), on(boxes, device), size, scale, ratio, aligned,
                         out=nan_array((len(boxes), ROI_INPUT[1]) + size, dtype, device), block=block)
    m = roi_align_matrix(ROI_INPUT, boxes.astype(F64), size, scale, ratio, aligned)
    assert_close(y, np.einsum("kpqnhw,nchw->kcpq", m, x.astype(F64)), dtype)


def check_roi_align_backward(device, case=ROI_CASES[0], dtype=np.float32, block=launch.DEFAULT_BLOCK):
    size, scale, ratio, aligned = case
    boxes = roi_boxes(dtype)
    gy = np.random.default_rng(2).standard_normal((len(boxes), ROI_INPUT[1]) + size).astype(dtype)
    gx = launch.roi_align_backward(on(gy, device), on(boxes, device), ROI_INPUT, scale, ratio, aligned,
                                   block=block)
    assert gx.dtype == dtype
    m = roi_align_matrix(ROI_INPUT, boxes.astype(F64), size, scale, ratio, aligned)
    assert_close(gx, np.einsum("kpqnhw,kcpq->nchw", m, gy.astype(F64)), dtype)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ROI_CASES)
def test_roi_align_backward(case, dtype, device, block):
    check_roi_align_backward(device, case, dtype, block)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("case", ROI_CASES)
def test_roi_align_backward_is_the_adjoint_of_forward(case, device, rng):
    size, scale, ratio, aligned = case
    x = rng.standard_normal(ROI_INPUT)
    boxes = on(roi_boxes(F64), device)
    y = backend.as_host(launch.roi_align(on(x, device), boxes, size, scale, ratio, aligned))
    g = rng.standard_normal(y.shape)
    gx = backend.as_host(launch.roi_align_backward(on(g, device), boxes, ROI_INPUT, scale, ratio, aligned))
    lhs, rhs = np.vdot(y, g), np.vdot(x, gx)
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + 1)


def test_roi_align_never_launches_more_threads_than_its_launch_bounds():
    boxes = np.array([[0, 0, 0, 3, 3]], np.float32)
    y = launch.roi_align(np.ones((1, 1, 4, 4), np.float32), boxes, 2, block=1024)
    np.testing.assert_allclose(y, 1)


# =========================================================================================== non-finite check
@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 777, 5000])
def test_has_nonfinite(size, dtype, device, block, rng):
    info = np.finfo(dtype)
    finite = rng.standard_normal(size).astype(dtype)
    finite[0], finite[-1] = info.max, info.smallest_subnormal  # extreme but finite
    assert not launch.has_nonfinite([on(finite, device)], block=block)
    for position in {0, size // 2, size - 1}:
        for bad in (np.inf, -np.inf, np.nan):
            broken = finite.copy()
            broken[position] = bad
            arrays = [on(finite, device), on(broken.reshape(1, -1), device)]
            assert launch.has_nonfinite(arrays, block=block) == (not np.isfinite(broken).all())


# =========================================================================================== NMS
def nms_rows_reference(boxes, groups, valid, threshold):
    """Box by box in row order: kept unless a kept earlier box of its group overlaps it by IoU > threshold."""
    keep = np.zeros(valid.shape, dtype=np.int32)
    for b in range(len(boxes)):
        kept = []
        for i in range(boxes.shape[1]):
            a = boxes[b, i].astype(np.float64)
            def iou(j):
                o = boxes[b, j].astype(np.float64)
                w = max(0.0, min(a[2], o[2]) - max(a[0], o[0]))
                h = max(0.0, min(a[3], o[3]) - max(a[1], o[1]))
                union = (a[2] - a[0]) * (a[3] - a[1]) + (o[2] - o[0]) * (o[3] - o[1]) - w * h
                return w * h / union if union > 0 else 0.0
            if valid[b, i] and not any(groups[b, j] == groups[b, i] and iou(j) > threshold for j in kept):
                kept.append(i)
        keep[b, kept] = 1
    return keep


def check_nms_rows(device, dtype=np.float64, block=launch.DEFAULT_BLOCK, m=70):
    rng = np.random.default_rng(5)
    corners = rng.integers(0, 24, (3, m, 2)).astype(np.float64)
    boxes = np.concatenate([corners, corners + rng.integers(1, 12, (3, m, 2))], axis=2).astype(dtype)
    groups, valid = rng.integers(0, 2, (3, m)).astype(np.int32), rng.random((3, m)) < 0.9
    for threshold in (0.3, 0.7):
        keep = launch.nms_rows(on(boxes, device), on(groups, device), on(valid, device), threshold, block=block)
        np.testing.assert_array_equal(backend.as_host(keep), nms_rows_reference(boxes, groups, valid, threshold))


@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_rows(dtype, device, block):
    check_nms_rows(device, dtype, block, m=70 if block != 32 else 300)   # 300 boxes: more than a block holds


def test_nms_rows_takes_empty_rows_and_refuses_mismatched_shapes():
    empty = launch.nms_rows(np.zeros((2, 0, 4)), np.zeros((2, 0), np.int32), np.zeros((2, 0), bool), 0.5)
    assert empty.shape == (2, 0) and empty.dtype == np.int32
    with pytest.raises(ValueError, match=r"nms_rows: boxes must be \(B, M, 4\) with groups and valid \(B, M\)"):
        launch.nms_rows(np.zeros((2, 5, 4)), np.zeros((2, 4), np.int32), np.ones((2, 5), bool), 0.5)


# =========================================================================================== batch-norm stats
@pytest.mark.parametrize("device", KERNEL_DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (2, 5, 1, 1), (3, 2, 33)])
@pytest.mark.parametrize("threads", [32, 256, 1024])
def test_batch_norm_statistics(threads, shape, dtype, device, rng):
    x = (100 + 3 * rng.standard_normal(shape)).astype(dtype)  # mean far from 0: the shifted sums matter
    mean, var = launch.batch_norm_statistics(on(x, device), block=threads)
    axes = (0,) + tuple(range(2, len(shape)))
    x64 = x.astype(F64)
    assert mean.dtype == (F64 if dtype == F64 else np.float32)
    tol = 1e-12 if dtype == F64 else 1e-5
    np.testing.assert_allclose(backend.as_host(mean), x64.mean(axis=axes), rtol=tol)
    np.testing.assert_allclose(backend.as_host(var), x64.var(axis=axes), rtol=tol, atol=tol)


def test_batch_norm_statistics_needs_a_power_of_two_block():
    with pytest.raises(ValueError, match="power of two"):
        launch.batch_norm_statistics(np.ones((2, 3, 4), np.float32), block=96)


# =========================================================================================== launcher checks
def test_unsupported_dtype_is_refused():
    with pytest.raises(TypeError, match="im2col: the CUDA kernels take float16, float32 or float64 arrays, "
                                        "got int64"):
        launch.im2col(np.ones((1, 1, 3, 3), np.int64), 2)


@pytest.mark.parametrize("device", KERNEL_DEVICES)
def test_launchers_accept_non_contiguous_inputs(device, rng):
    """Kernels see only a pointer: the launchers must hand them contiguous copies of strided views."""
    x = rng.standard_normal((2, 3, 7, 6))
    view = on(np.flip(x, axis=(2, 3)).copy(), device)[:, :, ::-1, ::-1]  # x's values, negative strides
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(backend.as_host(launch.im2col(view, 3, 1, 1)),
                                  backend.as_host(launch.im2col(on(x, device), 3, 1, 1)))
    bias = on(rng.standard_normal(6), device)
    transposed = on(x, device).transpose(0, 3, 2, 1)  # (N, C=6, 7, 3), not contiguous
    expected = np.maximum(x.transpose(0, 3, 2, 1) + backend.as_host(bias)[:, None, None], 0)
    np.testing.assert_array_equal(backend.as_host(launch.bias_relu(transposed, bias)), expected)


def test_sizes_beyond_int32_are_refused():
    with pytest.raises(ValueError, match="does not fit in a 32-bit int"):
        launch._ints(2**31, op="im2col")


# =========================================================================================== seeded bugs
SEEDED_BUGS = [
    # (kernel file, original text, buggy text, check that must now fail, what the failure is)
    # off-by-one: reads one column past the row (the next row's first pixel, or NaN guard bytes)
    ("im2col", "w >= 0 && w < W", "w >= 0 && w <= W", check_im2col, AssertionError),
    # wrong stride down the column: values land in the wrong rows (or two threads write one element)
    ("im2col", "out += plane;", "out += WO;", check_im2col, (AssertionError, RuntimeError)),
    # a plain add where several threads add to one pixel: the emulator's race check
    ("roi_align", "atomicAdd(plane + row_lo + sx.lo, share_lo * (1 - sx.frac));",
     "plane[row_lo + sx.lo] += share_lo * (1 - sx.frac);", check_roi_align_backward, RuntimeError),
    # no barrier between NMS steps: a thread decides box i before the others have struck it out
    ("nms", "        __syncthreads();\n", "", check_nms_rows, AssertionError),
]


@pytest.mark.parametrize("file, original, bug, check, failure", SEEDED_BUGS,
                         ids=["off-by-one", "wrong-stride", "missing-atomic", "nms-without-barrier"])
def test_seeded_bug_is_caught(file, original, bug, check, failure, monkeypatch):
    source = nvrtc.read_kernel(file)
    assert source.count(original) == 1, f"the seeded bug no longer matches {file}.cu; update SEEDED_BUGS"
    monkeypatch.setattr(emulator, "RACE_CHECK_BUDGET", float("inf"))
    check("emu")  # the real kernel passes the check
    buggy = emulator.EmuModule(source.replace(original, bug), f"{file}_seeded_bug.cu")
    real_module = launch._module
    monkeypatch.setattr(launch, "_module", lambda f, device: buggy if f == file else real_module(f, device))
    with pytest.raises(failure):
        check("emu")


def test_a_missing_atomic_is_reported_as_a_data_race(monkeypatch):
    source = nvrtc.read_kernel("roi_align").replace(*SEEDED_BUGS[2][1:3])
    buggy = emulator.EmuModule(source, "roi_align_seeded_bug.cu")
    monkeypatch.setattr(launch, "_module", lambda f, device: buggy)
    with pytest.raises(RuntimeError, match="roi_align_backward_f32: data race"):
        check_roi_align_backward("emu")


# =========================================================================================== the benchmark
def test_bench_devices_quick_reports_every_kernel(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_devices.py"
    out = tmp_path / "devices.json"
    subprocess.run([sys.executable, str(script), "--quick", "--json", str(out)], check=True,
                   capture_output=True)
    report = json.loads(out.read_text())
    kernels = {k.name.rsplit("_", 1)[0] for f in nvrtc.kernel_names()
               for k in emulator.parse_kernels(nvrtc.read_kernel(f))}
    assert kernels <= {r["kernel"].split()[0] for r in report["roofline"]}
    assert all((r["cuda_ms"] is None) == (report["gpu"] is None) and r["cpu_ms"] > 0 for r in report["ops"])
    # bias + ReLU forward on (2, 16, 56, 56) float32 moves x and y (4 bytes each) and the 16 biases
    row = next(r for r in report["roofline"]
               if r["kernel"] == "bias_relu_forward" and r["dtype"] == "float32")
    moved = 4 * (2 * 2 * 16 * 56 * 56 + 16)
    assert row["mbytes"] == pytest.approx(moved / 1e6)
    assert row["h100_us"] == pytest.approx(moved / 3.35e12 * 1e6)
