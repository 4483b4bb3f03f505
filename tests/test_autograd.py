"""The backward pass on the graph shapes vision models make, and its error messages."""
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F


def leaf(*shape, seed=0):
    return tg.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_long_chain_has_no_recursion_limit():
    x = leaf(3)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3))


def test_one_early_tensor_feeding_every_later_step():
    """y_k = y_{k-1} + x for 20,000 steps: dy/dx = number of steps + 1 (a dense skip graph)."""
    x = leaf(2)
    y = x
    for _ in range(20_000):
        y = y + x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(2, 20_001.0))


def test_shared_weight_and_skip_connection_accumulate():
    w, x = leaf(3, 3), leaf(3, seed=1)
    h = F.relu(w @ x)
    out = (w @ h + h + x).sum()            # w used twice, h used twice (a residual block)
    out.backward()
    assert tg.gradcheck(lambda w, x: (w @ F.relu(w @ x) + F.relu(w @ x) + x).sum(), [w, x])


def test_broadcast_gradients_are_summed_back():
    a, b = leaf(4, 3), leaf(3, seed=1)
    (a * b).backward(np.ones((4, 3)))
    np.testing.assert_allclose(b.grad.numpy(), a.numpy().sum(0))
    assert b.grad.shape == (3,)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = leaf(3)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 5.0))


def test_saved_arrays_are_not_corrupted_by_later_ops():
    a, b = leaf(3), leaf(3, seed=1)
    expected_b_grad = a.numpy().copy()
    y = a * b
    for op in (lambda: a + 1, lambda: F.relu(a), lambda: a.clamp(0, 1), lambda: a.exp(), lambda: a[0:2] * 5):
        op()
    y.sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), expected_b_grad)


def test_no_grad_records_nothing():
    x = leaf(3)
    with tg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    assert (x * 2).requires_grad


def test_retain_graph_allows_a_second_backward():
    x = leaf(3)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy())


def test_second_backward_through_freed_graph_is_a_clear_error():
    x = leaf(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


@pytest.mark.parametrize("op", [
    lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
    lambda x: F.avg_pool2d(x, 2),
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.cross_entropy(x.reshape(2, -1), tg.Tensor(np.array([0, 3]))),
    lambda x: F.nll_loss(x.reshape(2, -1), tg.Tensor(np.array([1, 2]))),
    lambda x: F.roi_align(x, tg.Tensor(np.array([[0, 0.0, 0.0, 2.0, 3.0]])), 2),
])
def test_backward_releases_everything_forward_kept(op):
    """No array outlives backward on the op's ctx: neither what went through ctx.save nor attributes."""
    x = leaf(2, 1, 4, 4)
    y = op(x)
    ctx = y._ctx
    assert vars(ctx)
    y.sum().backward()
    assert vars(ctx) == {"freed": True}


def test_to_device_output_is_on_the_target_and_backward_returns_to_the_source():
    x = leaf(3)
    y = x.to("emu")
    assert y.device == "emu" and y._ctx.device == "cpu"   # the op's ctx keeps the input's device
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_non_scalar_backward_needs_gradient():
    y = leaf(2, 3) * 2
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*pass gradient="):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\) but the tensor has shape \(2, 3\)"):
        y.backward(np.ones(3))


def test_backward_without_graph_is_a_clear_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.Tensor(np.ones(3)).sum().backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require grad; this one is int64"):
        tg.Tensor([1, 2, 3], requires_grad=True)


def test_mixing_devices_names_both():
    a = tg.ones(3)
    b = tg.ones(3, device="emu")
    with pytest.raises(RuntimeError, match=r"different devices \('cpu' and 'emu'\).*\.to\(device\)"):
        a + b


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not match"):
        tg.ones(2, 3) @ tg.ones(4, 5)
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) \(6 elements\)"):
        tg.ones(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match=r"cat: tensor 1 has shape \(2, 4\)"):
        F.cat([tg.ones(3, 3), tg.ones(2, 4)], dim=0)


def test_device_transfer_is_differentiable():
    x = leaf(3)
    y = (x.to("emu") * 2).to("cpu").sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(3, 2.0))
    assert x.to("emu").device == "emu"


def test_cast_is_differentiable_and_float16_stays_float16():
    x = leaf(4)
    h = x.half()
    assert h.dtype == np.float16 and (h * 0.5 + 1).dtype == np.float16
    (h * 2).float().sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), np.full(4, 2.0))


def test_float16_reductions_accumulate_in_float32():
    x = tg.full((4096,), 0.1, dtype=np.float16)
    # Summing 4096 values of 0.1 in float16 stalls at 256; accumulating in float32 gives ~409.5.
    assert abs(x.sum().item() - 409.5) < 1.0
    a = tg.full((1, 4096), 0.1, dtype=np.float16)
    assert abs((a @ tg.ones(4096, 1, dtype=np.float16)).item() - 409.5) < 1.0


def test_sigmoid_and_log_softmax_are_stable_for_large_inputs():
    x = tg.Tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]), requires_grad=True)
    s = F.sigmoid(x)
    assert np.all(np.isfinite(s.numpy()))
    np.testing.assert_allclose(s.numpy(), [0, 1.9287498479639178e-22, 0.5, 1, 1])
    ls = F.log_softmax(x, 0)
    assert np.all(np.isfinite(ls.numpy()))
    np.testing.assert_allclose(ls.numpy()[-1], 0.0)
    (ls.sum() + s.sum()).backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_import_is_light():
    code = "import sys, time; t=time.time(); import tinygrad_cv; dt=time.time()-t; " \
           "print('matplotlib' in sys.modules, 'PIL' in sys.modules, dt)"
    heavy_mpl, heavy_pil, seconds = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                   check=True).stdout.split()
    assert heavy_mpl == "False" and heavy_pil == "False"
    assert float(seconds) < 1.0
