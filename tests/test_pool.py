"""max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d: forward against per-window loops, gradients
(gradcheck, and hand-worked ties), PyTorch as an extra oracle, and the error messages."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from adaptive_reference import adaptive_bins, naive_adaptive_avg_pool
from conftest import DEVICES


# ----------------------------------------------------------------------------- naive references
def out_len(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling output length, written with floats."""
    span = (n + 2 * p - d * (k - 1) - 1) / s
    o = (math.ceil(span) if ceil_mode else math.floor(span)) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def windows(x, kernel, stride, padding, dilation, ceil_mode):
    """Yield (y, x, rows, cols) with the in-bounds input rows/cols of every window."""
    h, w = x.shape[2:]
    ho = out_len(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    wo = out_len(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    for oy in range(ho):
        for ox in range(wo):
            rows = [oy * stride[0] - padding[0] + i * dilation[0] for i in range(kernel[0])]
            cols = [ox * stride[1] - padding[1] + j * dilation[1] for j in range(kernel[1])]
            yield oy, ox, [r for r in rows if 0 <= r < h], [c for c in cols if 0 <= c < w], (ho, wo)


def naive_max_pool(x, kernel, stride, padding, dilation, ceil_mode):
    out, idx = None, None
    for oy, ox, rows, cols, size in windows(x, kernel, stride, padding, dilation, ceil_mode):
        if out is None:
            out, idx = np.zeros(x.shape[:2] + size), np.zeros(x.shape[:2] + size, dtype=np.int64)
        patch = x[:, :, rows][:, :, :, cols].reshape(x.shape[0], x.shape[1], -1)
        best = patch.argmax(axis=2)                       # first maximum in row-major order
        out[:, :, oy, ox] = patch.max(axis=2)
        idx[:, :, oy, ox] = np.array(rows)[best // len(cols)] * x.shape[3] + np.array(cols)[best % len(cols)]
    return out, idx


def naive_avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    h, w = x.shape[2:]
    out = None
    for oy, ox, rows, cols, size in windows(x, kernel, stride, padding, (1, 1), ceil_mode):
        if out is None:
            out = np.zeros(x.shape[:2] + size)
        total = x[:, :, rows][:, :, :, cols].sum(axis=(2, 3))
        if divisor_override:
            divisor = divisor_override
        elif count_include_pad:  # the window clipped to the padded input
            r0, c0 = oy * stride[0] - padding[0], ox * stride[1] - padding[1]
            divisor = (min(r0 + kernel[0], h + padding[0]) - r0) * (min(c0 + kernel[1], w + padding[1]) - c0)
        else:
            divisor = len(rows) * len(cols)
        out[:, :, oy, ox] = total / divisor
    return out


# ----------------------------------------------------------------------------- strategies
@st.composite
def pool_cases(draw, with_dilation=True):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, (d * (k - 1) + 1) // 2)) for k, d in zip(kernel, dilation))
    size = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 7)) for k, d, p in zip(kernel, dilation, padding))
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation, size=size,
                ceil_mode=draw(st.booleans()))


def distinct_values(rng, shape):
    """A random permutation: no ties, so the arg-max (and the finite-difference gradient) is unique."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape)


# ----------------------------------------------------------------------------- max pooling
@given(case=pool_cases(), seed=st.integers(0, 1000))
def test_max_pool_forward_and_indices_match_naive(case, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3) + case["size"])
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    out, indices = F.max_pool2d(tg.Tensor(x), *args, return_indices=True)
    expected, expected_indices = naive_max_pool(x, *args)
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(indices.numpy(), expected_indices)
    assert indices.dtype == np.int64


@given(case=pool_cases(), seed=st.integers(0, 1000))
def test_max_pool_gradcheck(case, seed):
    x = distinct_values(np.random.default_rng(seed), (2, 2) + case["size"])
    args = (case["kernel"], case["stride"], case["padding"], case["dilation"], case["ceil_mode"])
    assert tg.gradcheck(lambda t: F.max_pool2d(t, *args), [tg.Tensor(x, requires_grad=True)])


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = tg.Tensor(np.array([[[[1.0, 3.0, 3.0, 0.0],
                              [3.0, 2.0, 0.0, 5.0]]]]), requires_grad=True)
    out = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(out.numpy(), [[[[3.0, 5.0]]]])
    out.backward(np.array([[[[10.0, 20.0]]]]))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 10.0, 0.0, 0.0],
                                                     [0.0, 0.0, 0.0, 20.0]]]])


def test_max_pool_overlapping_windows_add_their_gradients():
    x = tg.Tensor(np.array([[[[0.0, 9.0, 1.0]]]]), requires_grad=True)
    out = F.max_pool2d(x, (1, 2), stride=1)   # both windows pick the middle pixel
    out.backward(np.array([[[[2.0, 3.0]]]]))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 5.0, 0.0]]]])


def test_max_pool_propagates_nan():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan
    out = F.max_pool2d(tg.Tensor(x), 2).numpy()
    assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 1:, 1:]).any()


@pytest.mark.parametrize("device", DEVICES)
def test_max_pool_float16_on_every_device(device):
    x = distinct_values(np.random.default_rng(0), (2, 3, 6, 7))
    out = F.max_pool2d(tg.Tensor(x.astype(np.float16), device=device), 3, 2, 1)
    assert out.dtype == np.float16 and out.device == device
    expected, _ = naive_max_pool(x.astype(np.float16).astype(np.float64), (3, 3), (2, 2), (1, 1), (1, 1), False)
    np.testing.assert_array_equal(out.numpy().astype(np.float64), expected)


# ----------------------------------------------------------------------------- average pooling
@given(case=pool_cases(with_dilation=False), include_pad=st.booleans(), seed=st.integers(0, 1000))
def test_avg_pool_forward_matches_naive(case, include_pad, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3) + case["size"])
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"], include_pad)
    np.testing.assert_allclose(F.avg_pool2d(tg.Tensor(x), *args).numpy(), naive_avg_pool(x, *args), rtol=1e-12)


@given(case=pool_cases(with_dilation=False), include_pad=st.booleans(), seed=st.integers(0, 1000))
def test_avg_pool_gradcheck(case, include_pad, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2) + case["size"])
    args = (case["kernel"], case["stride"], case["padding"], case["ceil_mode"], include_pad)
    assert tg.gradcheck(lambda t: F.avg_pool2d(t, *args), [tg.Tensor(x, requires_grad=True)])


def test_avg_pool_defaults_count_the_padding_and_floor_the_size():
    x = tg.Tensor(np.ones((1, 1, 3, 3)))
    out = F.avg_pool2d(x, 2, padding=1).numpy()   # 2x2 windows, each with 1 or 2 or 4 real ones
    np.testing.assert_allclose(out, [[[[0.25, 0.5], [0.5, 1.0]]]])
    np.testing.assert_allclose(F.avg_pool2d(x, 2, padding=1, count_include_pad=False).numpy(), np.ones((1, 1, 2, 2)))
    np.testing.assert_allclose(F.avg_pool2d(x, 2, divisor_override=3).numpy(), [[[[4 / 3]]]])


# ----------------------------------------------------------------------------- adaptive pooling
@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 9), ow=st.integers(1, 9),
       seed=st.integers(0, 1000))
def test_adaptive_avg_pool_matches_naive_bins(h, w, oh, ow, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w))
    out = F.adaptive_avg_pool2d(tg.Tensor(x), (oh, ow))
    np.testing.assert_allclose(out.numpy(), naive_adaptive_avg_pool(x, (oh, ow)), rtol=1e-12, atol=1e-14)


@given(h=st.integers(1, 6), w=st.integers(1, 6), oh=st.integers(1, 5), ow=st.integers(1, 5),
       seed=st.integers(0, 1000))
def test_adaptive_avg_pool_gradcheck(h, w, oh, ow, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, h, w))
    assert tg.gradcheck(lambda t: F.adaptive_avg_pool2d(t, (oh, ow)), [tg.Tensor(x, requires_grad=True)])


def test_adaptive_avg_pool_global_and_none_sizes():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    np.testing.assert_allclose(F.adaptive_avg_pool2d(tg.Tensor(x), 1).numpy(), x.mean(axis=(2, 3), keepdims=True))
    assert F.adaptive_avg_pool2d(tg.Tensor(x), (2, None)).shape == (2, 3, 2, 4)


def naive_adaptive_max_pool(x, out_size):
    """The max and the flat index h*W + w of the first maximum of each adaptive bin, by loops."""
    w = x.shape[3]
    out, idx = np.zeros(x.shape[:2] + out_size), np.zeros(x.shape[:2] + out_size, dtype=np.int64)
    for i, (r0, r1) in enumerate(adaptive_bins(x.shape[2], out_size[0])):
        for j, (c0, c1) in enumerate(adaptive_bins(w, out_size[1])):
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    cells = [(x[n, c, r, q], r * w + q) for r in range(r0, r1) for q in range(c0, c1)]
                    out[n, c, i, j], idx[n, c, i, j] = max(cells, key=lambda vi: (vi[0], -vi[1]))
    return out, idx


@given(h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 8), ow=st.integers(1, 8),
       seed=st.integers(0, 1000))
def test_adaptive_max_pool_matches_naive_bins_and_gradcheck(h, w, oh, ow, seed):
    x = distinct_values(np.random.default_rng(seed), (2, 2, h, w))
    out, indices = F.adaptive_max_pool2d(tg.Tensor(x), (oh, ow), return_indices=True)
    expected, expected_indices = naive_adaptive_max_pool(x, (oh, ow))
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(indices.numpy(), expected_indices)
    assert tg.gradcheck(lambda t: F.adaptive_max_pool2d(t, (oh, ow)), [tg.Tensor(x, requires_grad=True)])


def test_adaptive_max_pool_ties_go_to_the_first_maximum_and_overlaps_add():
    x = tg.Tensor(np.array([[[[1.0, 4.0, 4.0]]]]), requires_grad=True)
    out = F.adaptive_max_pool2d(x, (1, 2))        # bins [0, 2) and [1, 3): both pick column 1
    np.testing.assert_array_equal(out.numpy(), [[[[4.0, 4.0]]]])
    out.backward(np.array([[[[2.0, 3.0]]]]))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0.0, 5.0, 0.0]]]])


# ----------------------------------------------------------------------------- unbatched (C, H, W) inputs
UNBATCHED_CASES = [
    (lambda t: F.max_pool2d(t, 3, stride=2, padding=1, ceil_mode=True),
     lambda a: naive_max_pool(a, (3, 3), (2, 2), (1, 1), (1, 1), True)[0]),
    (lambda t: F.avg_pool2d(t, (2,), stride=(1,), padding=(1,), count_include_pad=False, ceil_mode=True),
     lambda a: naive_avg_pool(a, (2, 2), (1, 1), (1, 1), True, False)),
    (lambda t: F.avg_pool2d(t, (3, 2), stride=2, padding=1, divisor_override=5),
     lambda a: naive_avg_pool(a, (3, 2), (2, 2), (1, 1), False, True, divisor_override=5)),
    (lambda t: F.adaptive_avg_pool2d(t, (3, None)), lambda a: naive_adaptive_avg_pool(a, (3, a.shape[3]))),
    (lambda t: F.adaptive_max_pool2d(t, (2, 4)), lambda a: naive_adaptive_max_pool(a, (2, 4))[0]),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", range(len(UNBATCHED_CASES)))
def test_unbatched_input_is_one_sample_with_its_gradient(device, case):
    """A (C, H, W) input gives the 3-D result of the per-window loop on a batch of one, and a 3-D
    gradient equal to the batched one; on 'emu' max pooling runs the kernels of pool.cu."""
    op, naive = UNBATCHED_CASES[case]
    rng = np.random.default_rng(case)
    x = distinct_values(rng, (3, 7, 6))
    xs, xb = tg.Tensor(x, device=device, requires_grad=True), tg.Tensor(x[None], requires_grad=True)
    out = op(xs)
    expected = naive(x[None])[0]
    assert out.shape == expected.shape and out.device == device
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)
    gy = rng.standard_normal(expected.shape)
    out.backward(tg.Tensor(gy, device=device))
    op(xb).backward(gy[None])
    assert xs.grad.shape == x.shape
    np.testing.assert_allclose(xs.grad.numpy(), xb.grad.numpy()[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", range(len(UNBATCHED_CASES)))
def test_unbatched_gradcheck(case):
    op = UNBATCHED_CASES[case][0]
    x = distinct_values(np.random.default_rng(case), (2, 6, 5))
    assert tg.gradcheck(op, [tg.Tensor(x, requires_grad=True)])


def test_unbatched_return_indices_are_3d():
    x = distinct_values(np.random.default_rng(3), (2, 6, 5))
    for op in (lambda t: F.max_pool2d(t, 2, return_indices=True), lambda t: F.adaptive_max_pool2d(t, 2, True)):
        (out, indices), (_, batched) = op(tg.Tensor(x)), op(tg.Tensor(x[None]))
        assert out.shape == indices.shape and indices.ndim == 3 and indices.dtype == np.int64
        np.testing.assert_array_equal(indices.numpy(), batched.numpy()[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn, kwargs", [("max_pool2d", dict(kernel_size=2)), ("avg_pool2d", dict(kernel_size=2)),
                                        ("adaptive_avg_pool2d", dict(output_size=3)),
                                        ("adaptive_max_pool2d", dict(output_size=3))])
def test_empty_batch_gives_an_empty_result_and_gradient(device, fn, kwargs):
    x = tg.Tensor(np.zeros((0, 3, 4, 4)), device=device, requires_grad=True)
    out = getattr(F, fn)(x, **kwargs)
    assert out.shape == ((0, 3, 2, 2) if "kernel_size" in kwargs else (0, 3, 3, 3))
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_avg_pool_divisor_override_gradcheck():
    x = np.random.default_rng(4).standard_normal((2, 2, 5, 6))
    assert tg.gradcheck(lambda t: F.avg_pool2d(t, (3,), 2, 1, True, False, divisor_override=-4),
                        [tg.Tensor(x, requires_grad=True)])


# ----------------------------------------------------------------------------- PyTorch as an extra oracle
@pytest.mark.parametrize("name, kwargs", [
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1))),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)),
    ("avg_pool2d", dict(kernel_size=(3, 2), stride=2, padding=1, count_include_pad=False)),
    ("adaptive_avg_pool2d", dict(output_size=(3, 5))),
    ("adaptive_avg_pool2d", dict(output_size=(4, None))),
    ("adaptive_max_pool2d", dict(output_size=(4, 3))),
    ("avg_pool2d", dict(kernel_size=(3,), stride=(2,), padding=(1,), ceil_mode=True, divisor_override=-2)),
    ("max_pool2d", dict(kernel_size=(2,), stride=(1,), padding=(1,), ceil_mode=True)),
])
@pytest.mark.parametrize("unbatched", [False, True])
def test_pooling_matches_pytorch(name, kwargs, unbatched):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = distinct_values(rng, (3, 9, 10) if unbatched else (2, 3, 9, 10))
    ours, theirs = tg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = getattr(F, name)(ours, **kwargs), getattr(torch.nn.functional, name)(theirs, **kwargs)
    gy = rng.standard_normal(out.shape)
    out.backward(gy)
    ref.backward(torch.tensor(gy))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, message", [
    (lambda x: F.max_pool2d(x, 3, padding=2), r"max_pool2d: padding \(2, 2\) must be at most half the effective "
                                              r"kernel size \(kernel \(3, 3\)"),
    (lambda x: F.max_pool2d(x, 7), r"max_pool2d: the kernel \(7, 7\) .* larger than the padded input "
                                   r"\(input shape \(1, 2, 5, 5\)"),
    (lambda x: F.max_pool2d(x, 2, stride=0), r"max_pool2d: stride must be >= 1, got 0"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), r"avg_pool2d: divisor_override must be non-zero"),
    (lambda x: F.avg_pool2d(x[0, 0], 2), r"avg_pool2d: input must be 4-D .* or 3-D .* got shape \(5, 5\)"),
    (lambda x: F.adaptive_avg_pool2d(x, (0, 2)), r"adaptive_avg_pool2d: output_size must be >= 1, got \(0, 2\)"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(tg.zeros(1, 2, 5, 5))


@pytest.mark.parametrize("call, message", [
    (lambda x: F.max_pool2d(x, 1.5), r"max_pool2d: kernel_size must be an int or a pair of ints, got 1.5"),
    (lambda x: F.max_pool2d(x, 2, stride=True), r"max_pool2d: stride must be an int or a pair of ints, got True"),
    (lambda x: F.avg_pool2d(x, 2, padding=(0, 0, 0)), r"avg_pool2d: padding must be an int or a pair of ints"),
    (lambda x: F.max_pool2d(x, 2, dilation=1.0), r"max_pool2d: dilation must be an int or a pair of ints"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=1.5), r"avg_pool2d: divisor_override must be an int"),
])
def test_int_or_pair_arguments_refuse_other_types_by_name(call, message):
    with pytest.raises(TypeError, match=message):
        call(tg.zeros(1, 2, 5, 5))


@pytest.mark.parametrize("fn", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("size, error, message", [
    ((0, 2), ValueError, r"output_size must be >= 1, got \(0, 2\)"),
    ((3,), ValueError, r"output_size must be an int or a pair \(None keeps the input's size\), got \(3,\)"),
    ((2, 2, 2), ValueError, r"output_size must be an int or a pair \(None keeps the input's size\)"),
    (2.5, TypeError, r"output_size must be an int or a pair of ints, got 2.5"),
    ("2", TypeError, r"output_size must be an int or a pair of ints, got '2'"),
])
def test_adaptive_output_size_is_checked(fn, size, error, message):
    """Wrong types are TypeErrors and wrong values ValueErrors, as PyTorch's (which refuses (3,) here too)."""
    with pytest.raises(error, match=rf"{fn}: {message}"):
        getattr(F, fn)(tg.zeros(1, 2, 5, 5), size)

