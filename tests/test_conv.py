"""conv2d, conv_transpose2d and linear: forward against naive loops, gradients by gradcheck, the
adjoint identity between the two convolutions, PyTorch as an extra oracle, and the error messages."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from conftest import DEVICES
from tinygrad_cv.backend import threads
from tinygrad_cv.ops import conv_columns


# ----------------------------------------------------------------------------- naive references
def naive_conv2d(x, w, b, stride, padding, dilation, groups):
    """Direct definition, one output pixel at a time: out[n, o, y, x] = sum_{c,i,j} w[o, c, i, j] *
    xpad[n, g*Cg + c, y*s + i*d, x*s + j*d]."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    xpad = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xpad[:, :, ph:ph + h, pw:pw + wd] = x
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for oc in range(o):
        g = oc // og
        for y in range(ho):
            for xx in range(wo):
                patch = xpad[:, g * cg:(g + 1) * cg, y * sh:y * sh + dh * (kh - 1) + 1:dh,
                             xx * sw:xx * sw + dw * (kw - 1) + 1:dw]
                out[:, oc, y, xx] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return out if b is None else out + b[:, None, None]


def naive_conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups):
    """Scatter definition: every input pixel adds x * w[c, o] to the window it maps to."""
    (sh, sw), (ph, pw), (eh, ew), (dh, dw) = stride, padding, output_padding, dilation
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // groups
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + eh + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + ew + 1
    full = np.zeros((n, og * groups, ho + 2 * ph + sh + dh * kh, wo + 2 * pw + sw + dw * kw))
    for ic in range(c):
        g = ic // cg
        for y in range(h):
            for xx in range(wd):
                for i in range(kh):
                    for j in range(kw):
                        full[:, g * og:(g + 1) * og, y * sh + i * dh, xx * sw + j * dw] += \
                            x[:, ic, y, xx, None] * w[ic, :, i, j]
    out = full[:, :, ph:ph + ho, pw:pw + wo]
    return out if b is None else out + b[:, None, None]


# ----------------------------------------------------------------------------- strategies
@st.composite
def conv_cases(draw, transposed=False):
    groups = draw(st.sampled_from([1, 2]))
    c = groups * draw(st.integers(1, 2))
    o = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    if transposed:
        extra = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        out = [(n - 1) * s - 2 * p + d * (k - 1) + e + 1
               for n, s, p, d, k, e in zip(size, stride, padding, dilation, (kh, kw), extra)]
        if min(out) < 1:
            padding = (0, 0)
        return dict(n=draw(st.integers(1, 2)), c=c, o=o, size=size, kernel=(kh, kw), stride=stride,
                    padding=padding, dilation=dilation, groups=groups, output_padding=extra,
                    bias=draw(st.booleans()))
    size = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 7))
                 for k, d, p in zip((kh, kw), dilation, padding))
    return dict(n=draw(st.integers(1, 2)), c=c, o=o, size=size, kernel=(kh, kw), stride=stride, padding=padding,
                dilation=dilation, groups=groups, bias=draw(st.booleans()))


def conv_arrays(case, rng, transposed=False):
    x = rng.standard_normal((case["n"], case["c"]) + case["size"])
    wshape = ((case["c"], case["o"] // case["groups"]) if transposed else
              (case["o"], case["c"] // case["groups"])) + case["kernel"]
    w = rng.standard_normal(wshape)
    b = rng.standard_normal(case["o"]) if case["bias"] else None
    return x, w, b


def tensors(*arrays, requires_grad=False, dtype=None, device="cpu"):
    return [None if a is None else tg.Tensor(a if dtype is None else a.astype(dtype), device=device,
                                             requires_grad=requires_grad) for a in arrays]


def conv_kwargs(case):
    return dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])


def transpose_kwargs(case):
    return dict(conv_kwargs(case), output_padding=case["output_padding"])


# ----------------------------------------------------------------------------- conv2d
@given(case=conv_cases(), seed=st.integers(0, 1000))
def test_conv2d_forward_matches_naive_loop(case, seed):
    x, w, b = conv_arrays(case, np.random.default_rng(seed))
    got = F.conv2d(*tensors(x, w, b), **conv_kwargs(case)).numpy()
    expected = naive_conv2d(x, w, b, case["stride"], case["padding"], case["dilation"], case["groups"])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@given(case=conv_cases(), seed=st.integers(0, 1000))
def test_conv2d_gradcheck(case, seed):
    x, w, b = conv_arrays(case, np.random.default_rng(seed))
    inputs = tensors(x, w, b, requires_grad=True)
    assert tg.gradcheck(lambda *t: F.conv2d(*t, **conv_kwargs(case)), [t for t in inputs if t is not None])


def test_conv2d_depthwise_matches_per_channel_convolution():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((8, 1, 3, 3))  # channel multiplier 2
    got = F.conv2d(*tensors(x, w), padding=1, groups=4).numpy()
    for o in range(8):
        single = naive_conv2d(x[:, o // 2:o // 2 + 1], w[o:o + 1], None, (1, 1), (1, 1), (1, 1), 1)
        np.testing.assert_allclose(got[:, o:o + 1], single, rtol=1e-10, atol=1e-10)
    assert tg.gradcheck(lambda a, b: F.conv2d(a, b, padding=1, groups=4), tensors(x, w, requires_grad=True))


@pytest.mark.parametrize("kernel, dilation", [((3, 3), 1), ((2, 4), 1), ((3, 2), 2)])
def test_conv2d_same_and_valid_padding(kernel, dilation):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 7, 6)), rng.standard_normal((3, 2) + kernel)
    same = F.conv2d(*tensors(x, w), padding="same", dilation=dilation)
    assert same.shape == (1, 3, 7, 6)
    # 'same' pads d*(k-1) in total, the odd pixel at the end (bottom/right), as PyTorch
    totals = [dilation * (k - 1) for k in kernel]
    xpad = np.pad(x, ((0, 0), (0, 0)) + tuple((t // 2, t - t // 2) for t in totals))
    expected = naive_conv2d(xpad, w, None, (1, 1), (0, 0), (dilation, dilation), 1)
    np.testing.assert_allclose(same.numpy(), expected, rtol=1e-10, atol=1e-10)
    valid = F.conv2d(*tensors(x, w), padding="valid", dilation=dilation).numpy()
    np.testing.assert_allclose(valid, naive_conv2d(x, w, None, (1, 1), (0, 0), (dilation,) * 2, 1), atol=1e-10)


@pytest.mark.parametrize("workspace, n_threads", [(1, 1), (1, 2), (200, 2), (10**9, 1), (10**9, 3)])
def test_conv_tiles_do_not_change_the_result(workspace, n_threads, monkeypatch):
    """Tiles of one output row (workspace 1), of a few rows, or of whole batches, on one or several
    threads: the convolution, its transpose and all their gradients must not move."""
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((5, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    wt_ = rng.standard_normal((3, 2, 3, 3))
    gy, gt = rng.standard_normal((5, 4, 5, 4)), rng.standard_normal((5, 2, 18, 15))

    def run():
        xt, wt, bt, w2 = tensors(x, w, b, wt_, requires_grad=True)
        F.conv2d(xt, wt, bt, stride=2, padding=1).backward(gy)
        F.conv_transpose2d(xt, w2, stride=2, padding=1, output_padding=(1, 0)).backward(gt)
        return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy(), w2.grad.numpy()

    whole = run()
    monkeypatch.setattr(conv_columns, "WORKSPACE_BYTES", workspace)
    previous = threads.get_num_threads()
    threads.set_num_threads(n_threads)
    try:
        tiled = run()
    finally:
        threads.set_num_threads(previous)
    for a, b_ in zip(whole, tiled):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, rows, row_bytes, split", [(5, 9, 100, True), (5, 9, 100, False), (7, 3, 1, True),
                                                      (1, 40, 10**6, True), (3, 1, 10**7, False)])
@pytest.mark.parametrize("workspace", [1, 250, 10**4])
def test_conv_tiles_cover_every_sample_and_row_once(n, rows, row_bytes, split, workspace, monkeypatch):
    """The tiles partition samples x rows; a tile holds whole samples or one sample's band of rows, and
    stays within the workspace unless one row (or, without splitting, one sample) is larger."""
    monkeypatch.setattr(conv_columns, "WORKSPACE_BYTES", workspace)
    seen = np.zeros((n, rows), int)
    for samples, band in conv_columns.conv_tiles(n, rows, row_bytes, split):
        seen[samples, band] += 1
        nb, nr = samples.stop - samples.start, band.stop - band.start
        assert nr == rows or nb == 1
        smallest = row_bytes if split else row_bytes * rows
        assert nb * nr * row_bytes <= max(workspace, smallest)
    np.testing.assert_array_equal(seen, 1)


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(padding="same", dilation=2), dict(padding=(0, 3)),
                                    dict(padding=(2, 1), dilation=(1, 2), groups=2), dict(padding=3)])
def test_stride1_input_gradient_by_gather_equals_the_scatter(kwargs, monkeypatch):
    """With many input channels, stride 1's dx is a convolution with the flipped kernel; it must equal
    the general w^T @ dout + col2im route (padding=3 exceeds the kernel's reach: scatter both times)."""
    rng = np.random.default_rng(8)
    groups = kwargs.get("groups", 1)
    x, w = rng.standard_normal((2, 16 * groups, 5, 6)), rng.standard_normal((3 * groups, 16, 3, 2))
    assert w.shape[1] >= conv_columns.GATHER_MIN_CHANNELS
    gy = rng.standard_normal(F.conv2d(*tensors(x, w), **kwargs).shape)

    def dx():
        xt, wt = tensors(x, w, requires_grad=True)
        F.conv2d(xt, wt, **kwargs).backward(gy)
        return xt.grad.numpy()

    gathered = dx()
    monkeypatch.setattr(conv_columns, "GATHER_MIN_CHANNELS", 10 ** 9)
    np.testing.assert_allclose(gathered, dx(), rtol=1e-10, atol=1e-10)
    assert tg.gradcheck(lambda a, b: F.conv2d(a, b, **kwargs), tensors(x, w, requires_grad=True))


def test_conv_transpose2d_stride1_with_many_channels_matches_naive():
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 16, 3, 3)), rng.standard_normal(16)
    got = F.conv_transpose2d(*tensors(x, w, b), padding=1)
    expected = naive_conv_transpose2d(x, w, b, (1, 1), (1, 1), (0, 0), (1, 1), 1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)
    assert tg.gradcheck(lambda *t: F.conv_transpose2d(*t, padding=1), tensors(x, w, b, requires_grad=True))


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_float16_and_float32_close_to_float64(device):
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 8, 10, 9)), rng.standard_normal((6, 4, 3, 3)) * 0.2, rng.standard_normal(6)
    reference = naive_conv2d(x, w, b, (2, 1), (1, 1), (1, 1), 2)
    for dtype, tol in ((np.float32, 1e-5), (np.float16, 2e-2)):
        inputs = tensors(x, w, b, dtype=dtype, device=device)
        out = F.conv2d(*inputs, stride=(2, 1), padding=1, groups=2)
        assert out.dtype == dtype and out.device == device
        np.testing.assert_allclose(out.numpy().astype(np.float64), reference, rtol=tol, atol=tol * 4)


def test_conv2d_float16_gradients_close_to_float64():
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((3, 4, 6, 6)), rng.standard_normal((5, 4, 3, 3)) * 0.2
    gy = rng.standard_normal((3, 5, 6, 6))
    grads = {}
    for dtype in (np.float64, np.float16):
        xt, wt = tensors(x, w, requires_grad=True, dtype=dtype)
        F.conv2d(xt, wt, padding=1).backward(gy.astype(dtype))
        grads[dtype] = (xt.grad.numpy().astype(np.float64), wt.grad.numpy().astype(np.float64))
    for half, full in zip(grads[np.float16], grads[np.float64]):
        np.testing.assert_allclose(half, full, rtol=2e-2, atol=2e-2 * np.abs(full).max())


# ----------------------------------------------------------------------------- conv_transpose2d
@given(case=conv_cases(transposed=True), seed=st.integers(0, 1000))
def test_conv_transpose2d_forward_matches_naive_scatter(case, seed):
    x, w, b = conv_arrays(case, np.random.default_rng(seed), transposed=True)
    got = F.conv_transpose2d(*tensors(x, w, b), **transpose_kwargs(case)).numpy()
    expected = naive_conv_transpose2d(x, w, b, case["stride"], case["padding"], case["output_padding"],
                                      case["dilation"], case["groups"])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@given(case=conv_cases(transposed=True), seed=st.integers(0, 1000))
def test_conv_transpose2d_gradcheck(case, seed):
    x, w, b = conv_arrays(case, np.random.default_rng(seed), transposed=True)
    inputs = [t for t in tensors(x, w, b, requires_grad=True) if t is not None]
    assert tg.gradcheck(lambda *t: F.conv_transpose2d(*t, **transpose_kwargs(case)), inputs)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv_transpose2d_gradcheck_strides_with_output_padding(stride):
    rng = np.random.default_rng(stride)
    x, w, b = rng.standard_normal((2, 4, 3, 4)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(6)
    for extra in range(stride):
        f = lambda a, c, d: F.conv_transpose2d(a, c, d, stride=stride, padding=1, output_padding=extra, groups=2)
        out = f(*tensors(x, w, b))
        assert out.shape == (2, 6, (3 - 1) * stride - 2 + 3 + extra, (4 - 1) * stride - 2 + 3 + extra)
        assert tg.gradcheck(f, tensors(x, w, b, requires_grad=True))


@given(case=conv_cases(), seed=st.integers(0, 1000))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(case, seed):
    """<conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for the same weight and geometry."""
    rng = np.random.default_rng(seed)
    x, w, _ = conv_arrays(case, rng)
    y = F.conv2d(*tensors(x, w), **conv_kwargs(case))
    probe = rng.standard_normal(y.shape)
    h, wd = case["size"]
    # output_padding (< stride) recovers the rows/columns that the stride dropped
    extra = [(n + 2 * p - d * (k - 1) - 1) % s
             for n, p, d, k, s in zip((h, wd), case["padding"], case["dilation"], case["kernel"], case["stride"])]
    back = F.conv_transpose2d(*tensors(probe, w), output_padding=tuple(extra), **conv_kwargs(case))
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(y.numpy() * probe), np.sum(x * back.numpy()), rtol=1e-10, atol=1e-9)


# ----------------------------------------------------------------------------- linear
def test_linear_matches_numpy_and_gradcheck():
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((4, 3, 5)), rng.standard_normal((2, 5)), rng.standard_normal(2)
    np.testing.assert_allclose(F.linear(*tensors(x, w, b)).numpy(), x @ w.T + b, rtol=1e-12)
    np.testing.assert_allclose(F.linear(*tensors(x, w)).numpy(), x @ w.T, rtol=1e-12)
    assert tg.gradcheck(F.linear, tensors(x, w, b, requires_grad=True))


# ----------------------------------------------------------------------------- PyTorch as an extra oracle
@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1), dict(padding="same", dilation=2),
                                    dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1), groups=3)])
def test_conv2d_matches_pytorch(kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((2, 6, 9, 8)), rng.standard_normal((9, 6 // kwargs.get("groups", 1), 3, 2)), \
        rng.standard_normal(9)
    assert_matches_torch(torch, F.conv2d, torch.nn.functional.conv2d, (x, w, b), rng, kwargs)


def test_conv_transpose2d_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 4, 5, 3)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(6)
    kwargs = dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), groups=2, dilation=(1, 2))
    assert_matches_torch(torch, F.conv_transpose2d, torch.nn.functional.conv_transpose2d, (x, w, b), rng, kwargs)


def assert_matches_torch(torch, ours_fn, torch_fn, arrays, rng, kwargs):
    """Same float64 output and input gradients as PyTorch for a random upstream gradient."""
    ours = tensors(*arrays, requires_grad=True)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours_fn(*ours, **kwargs), torch_fn(*theirs, **kwargs)
    gy = rng.standard_normal(out.shape)
    out.backward(gy)
    ref.backward(torch.tensor(gy))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- errors
def _x(*shape):
    return tg.zeros(*shape)


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(_x(1, 3, 5, 5), _x(8, 4, 3, 3)),
     r"conv2d: input has 3 channels but weight expects 4 \(weight shape \(8, 4, 3, 3\), groups=1\)"),
    (lambda: F.conv2d(_x(1, 6, 5, 5), _x(8, 2, 3, 3), groups=4),
     r"conv2d: groups=4 must divide the input's channels.*\(1, 6, 5, 5\).*\(8, 2, 3, 3\)"),
    (lambda: F.conv2d(_x(1, 3, 4, 4), _x(2, 3, 5, 5), padding=0),
     r"conv2d: the kernel 5x5 .* is larger than the padded input 4x4"),
    (lambda: F.conv2d(_x(1, 3, 4, 4), _x(2, 3, 3, 3), stride=0), r"conv2d: stride must be >= 1, got 0"),
    (lambda: F.conv2d(_x(1, 3, 4, 4), _x(2, 3, 3, 3), padding=-1), r"conv2d: padding must be >= 0"),
    (lambda: F.conv2d(_x(1, 3, 4, 4), _x(2, 3, 3, 3), stride=2, padding="same"),
     r"conv2d: padding='same' needs stride 1"),
    (lambda: F.conv2d(_x(1, 3, 4, 4), _x(2, 3, 3, 3), _x(3)), r"conv2d: bias must have shape \(2,\).*got \(3,\)"),
    (lambda: F.conv2d(_x(4, 4), _x(2, 3, 3, 3)), r"conv2d: input must be 4-D .* or 3-D .* got shape \(4, 4\)"),
    (lambda: F.conv_transpose2d(_x(1, 4, 3, 3), _x(4, 2, 3, 3), stride=2, output_padding=2),
     r"conv_transpose2d: output_padding \(2, 2\) must be smaller than stride \(2, 2\)"),
    (lambda: F.conv_transpose2d(_x(1, 3, 3, 3), _x(4, 2, 3, 3)),
     r"conv_transpose2d: input has 3 channels but weight expects 4"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_dtype_mismatch_is_a_type_error():
    with pytest.raises(TypeError, match=r"conv2d: input and weight must have the same floating dtype, got "
                                        r"float64 and float32"):
        F.conv2d(tg.zeros(1, 1, 3, 3, dtype=np.float64), tg.zeros(1, 1, 3, 3))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (6, 5)])
def test_bias_relu_equals_the_unfused_ops_with_their_gradients(device, shape):
    """bias_relu against relu(x + b) on the CPU: the value and both gradients, on every device (on
    'emu' through the kernels of activation.cu)."""
    rng = np.random.default_rng(11)
    x = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.2, 2.0, size=shape)
    b, g = rng.uniform(-0.1, 0.1, size=shape[1]), rng.standard_normal(shape)
    xf, bf = (tg.Tensor(a, device=device, requires_grad=True) for a in (x, b))
    fused = F.bias_relu(xf, bf)
    fused.backward(tg.Tensor(g, device=device))
    xu, bu = (tg.Tensor(a, requires_grad=True) for a in (x, b))
    unfused = F.relu(xu + bu.reshape((1, -1) + (1,) * (len(shape) - 2)))
    unfused.backward(tg.Tensor(g))
    for a, b_ in ((fused, unfused), (xf.grad, xu.grad), (bf.grad, bu.grad)):
        np.testing.assert_allclose(a.numpy(), b_.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, b_shape, b_dtype, error, message", [
    ((2, 3, 4), (4,), "float64", ValueError, r"bias_relu: input must be \(N, C, \.\.\.\) and bias \(C,\), got "
                                             r"input \(2, 3, 4\) and bias \(4,\)"),
    ((3,), (3,), "float64", ValueError, r"input must be \(N, C, \.\.\.\)"),
    ((2, 3), (3,), "float32", TypeError, "bias_relu: bias dtype float32 differs from the input's float64"),
])
def test_bias_relu_rejects_a_bias_that_does_not_fit(x_shape, b_shape, b_dtype, error, message):
    x, b = tg.zeros(*x_shape, dtype="float64"), tg.zeros(*b_shape, dtype=b_dtype)
    with pytest.raises(error, match=message):
        F.bias_relu(x, b)


# ----------------------------------------------------------------------------- unbatched, empty and odd arguments
@pytest.mark.parametrize("device", DEVICES)
def test_unbatched_input_is_one_sample_with_its_gradients(device):
    """A (C, H, W) input gives (O, Ho, Wo), equal to the naive loop on a batch of one, and the input
    gradient is 3-D too; on 'emu' through the im2col/col2im kernels."""
    rng = np.random.default_rng(21)
    x, w, b = rng.standard_normal((3, 6, 5)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    wt = rng.standard_normal((3, 2, 2, 3))
    xs, ws, bs, wts = tensors(x, w, b, wt, requires_grad=True, device=device)
    out = F.conv2d(xs, ws, bs, stride=(2,), padding=(1,))
    expected = naive_conv2d(x[None], w, b, (2, 2), (1, 1), (1, 1), 1)[0]
    assert out.shape == expected.shape == (4, 3, 3)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    up = F.conv_transpose2d(xs, wts, stride=2, output_padding=(1,))
    np.testing.assert_allclose(up.numpy(), naive_conv_transpose2d(x[None], wt, None, (2, 2), (0, 0), (1, 1),
                                                                   (1, 1), 1)[0], rtol=1e-10, atol=1e-10)
    (out.sum() + up.sum()).backward()
    assert xs.grad.shape == x.shape and ws.grad.shape == w.shape
    batched = tensors(x[None], w, b, wt, requires_grad=True)
    (F.conv2d(*batched[:3], stride=2, padding=1).sum() + F.conv_transpose2d(batched[0], batched[3], stride=2,
                                                                           output_padding=1).sum()).backward()
    for ours, theirs in zip((xs, ws, bs, wts), batched):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy().reshape(ours.shape), rtol=1e-10)


def test_unbatched_gradcheck():
    rng = np.random.default_rng(22)
    x, w = tensors(rng.standard_normal((2, 5, 4)), rng.standard_normal((3, 2, 2, 2)), requires_grad=True)
    assert tg.gradcheck(lambda a, b: F.conv2d(a, b, padding="same", dilation=(2,)), [x, w])
    assert tg.gradcheck(lambda a, b: F.conv_transpose2d(a, b[:2], stride=(2, 1)), [x, w])


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_unbatched_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(23)
    x, w = rng.standard_normal((3, 7, 6)), rng.standard_normal((4, 3, 2, 3))
    assert_matches_torch(torch, F.conv2d, torch.nn.functional.conv2d, (x, w), rng,
                         dict(padding="same", stride=(1,)))
    assert_matches_torch(torch, F.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                         (rng.standard_normal((4, 3, 2)), w), rng, dict(stride=(2,), output_padding=(1,)))


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch_gives_empty_outputs_and_zero_parameter_gradients(device):
    """PyTorch's answer for N = 0: an empty output of the right shape; dx empty, dw and db zero."""
    rng = np.random.default_rng(24)
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    for conv, x_shape, out_shape in ((F.conv2d, (0, 3, 6, 6), (0, 4, 4, 4)),
                                     (F.conv_transpose2d, (0, 4, 5, 5), (0, 3, 11, 11))):
        xs, ws, bs = tensors(np.zeros(x_shape), w, b[:3] if conv is F.conv_transpose2d else b,
                             requires_grad=True, device=device)
        out = conv(xs, ws, bs, stride=2) if conv is F.conv_transpose2d else conv(xs, ws, bs, padding=0)
        assert out.shape == out_shape
        out.sum().backward()
        assert xs.grad.shape == x_shape
        np.testing.assert_array_equal(ws.grad.numpy(), np.zeros(w.shape))
        np.testing.assert_array_equal(bs.grad.numpy(), np.zeros(bs.shape))


def test_one_element_tuples_mean_the_same_value_for_both_dims():
    rng = np.random.default_rng(25)
    x, w = tensors(rng.standard_normal((1, 2, 7, 7)), rng.standard_normal((3, 2, 3, 3)))
    np.testing.assert_array_equal(F.conv2d(x, w, stride=(2,), padding=[1], dilation=(2,)).numpy(),
                                  F.conv2d(x, w, stride=2, padding=1, dilation=2).numpy())


@pytest.mark.parametrize("op, arg, value", [
    ("conv2d", "stride", 1.5), ("conv2d", "stride", True), ("conv2d", "padding", (1, 2, 3)),
    ("conv2d", "dilation", "2"), ("conv2d", "padding", None), ("conv2d", "stride", (1.0, 1)),
    ("conv_transpose2d", "stride", 1.5), ("conv_transpose2d", "padding", 0.5),
    ("conv_transpose2d", "output_padding", 0.5), ("conv_transpose2d", "dilation", (1, 2, 1)),
])
def test_int_or_pair_arguments_refuse_other_types_by_name(op, arg, value):
    x, w = (_x(1, 3, 5, 5), _x(4, 3, 3, 3)) if op == "conv2d" else (_x(1, 4, 5, 5), _x(4, 3, 3, 3))
    with pytest.raises(TypeError, match=rf"{op}: {arg} must be an int or a pair of ints, got"):
        getattr(F, op)(x, w, **{arg: value})


@pytest.mark.parametrize("groups", [0, True, 1.0])
def test_groups_must_be_a_positive_int(groups):
    with pytest.raises(ValueError, match=rf"conv2d: groups must be a positive int, got {groups!r}"):
        F.conv2d(_x(1, 2, 5, 5), _x(2, 2, 3, 3), groups=groups)


def test_input_that_is_neither_3d_nor_4d_is_refused():
    for shape in ((5, 5), (1, 1, 3, 5, 5)):
        with pytest.raises(ValueError, match=r"conv2d: input must be 4-D \(N, C, H, W\) or 3-D \(C, H, W\)"):
            F.conv2d(_x(*shape), _x(2, 3, 3, 3))


def test_linear_bias_that_does_not_fit_names_linear_and_both_shapes():
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(4,\).*weight \(4, 3\), got \(5,\)"):
        F.linear(_x(2, 3), _x(4, 3), _x(5))
    with pytest.raises(TypeError, match="linear: bias must be a Tensor, got ndarray"):
        F.linear(_x(2, 3), _x(4, 3), np.zeros(4))


@pytest.mark.parametrize("device", ["cpu", "emu"])
@pytest.mark.parametrize("transposed", [False, True])
def test_pointwise_fast_path_equals_the_im2col_path(device, transposed, monkeypatch):
    """A 1x1 stride-1 unpadded convolution reads x as its columns and writes dx from the GEMM; with the
    fast path turned off it goes through im2col/col2im: the results and gradients must agree."""
    rng = np.random.default_rng(10)
    x, w, b = rng.standard_normal((3, 6, 5, 7)), rng.standard_normal((6, 3, 1, 1)), rng.standard_normal(6)
    gy = rng.standard_normal((3, 6, 5, 7))
    op = F.conv_transpose2d if transposed else F.conv2d

    def run():
        xt, wt, bt = tensors(x, w, b, requires_grad=True, device=device)
        out = op(xt, wt, bt, groups=2)
        out.backward(tg.Tensor(gy, device=device))
        return out.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()

    fast = run()
    monkeypatch.setattr(conv_columns, "is_pointwise", lambda window: False)
    for a, b_ in zip(fast, run()):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding=1, groups=2), dict(padding=0),
                                    dict(stride=2), dict(padding=(2, 1), dilation=2)])
@pytest.mark.parametrize("kernel", [3, 1])
def test_merged_tiles_equal_one_gemm_per_sample(kwargs, kernel, monkeypatch):
    """Tiles of several small images run one GEMM over all their pixels (merged) or one GEMM per sample:
    the convolution, its gradients and a transposed convolution must agree."""
    rng = np.random.default_rng(11)
    groups = kwargs.get("groups", 1)
    x, w = rng.standard_normal((5, 4, 7, 6)), rng.standard_normal((6, 4 // groups, kernel, kernel))
    b = rng.standard_normal(6)
    gy = rng.standard_normal(F.conv2d(*tensors(x, w), **kwargs).shape)

    def run():
        xt, wt, bt = tensors(x, w, b, requires_grad=True)
        out = F.conv2d(xt, wt, bt, **kwargs)
        out.backward(gy)
        transposed = F.conv_transpose2d(tg.Tensor(gy), tg.Tensor(w), **kwargs)
        return out.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy(), transposed.numpy()

    monkeypatch.setattr(conv_columns, "MERGE_BELOW_PIXELS", 10 ** 9)
    merged = run()
    monkeypatch.setattr(conv_columns, "MERGE_BELOW_PIXELS", 0)
    for a, b_ in zip(merged, run()):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)
