"""batch_norm and dropout: the batch-norm formula and its running statistics checked by hand, train
and eval behaviour (functional and BatchNorm2d/Dropout modules), gradchecks, PyTorch as an extra
oracle, and the error messages."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from conftest import DEVICES
from tinygrad_cv import nn


def reference_batch_norm(x, mean, var, w, b, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)


def batch_axes(x):
    return (0,) + tuple(range(2, x.ndim))


shapes = st.sampled_from([(4, 3), (2, 3, 4), (2, 3, 3, 2), (3, 2, 1, 5)])


# ----------------------------------------------------------------------------- batch norm: forward
@given(shape=shapes, seed=st.integers(0, 1000))
def test_training_normalises_with_batch_statistics(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3 + 2
    w, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    out = F.batch_norm(tg.Tensor(x), None, None, tg.Tensor(w), tg.Tensor(b), training=True, eps=1e-3)
    axes = batch_axes(x)
    expected = reference_batch_norm(x, x.mean(axis=axes), x.var(axis=axes), w, b, 1e-3)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_running_statistics_update_by_hand():
    # one channel, values 1, 2, 3, 6: mean 3, biased var 3.5, unbiased var 14/3
    x = tg.Tensor(np.array([[[1.0, 2.0]], [[3.0, 6.0]]]))          # (N=2, C=1, L=2)
    running_mean, running_var = tg.Tensor(np.array([1.0])), tg.Tensor(np.array([2.0]))
    mean_array = running_mean.data
    out = F.batch_norm(x, running_mean, running_var, training=True, momentum=0.25, eps=0.0)
    np.testing.assert_allclose(running_mean.numpy(), [0.75 * 1.0 + 0.25 * 3.0])
    np.testing.assert_allclose(running_var.numpy(), [0.75 * 2.0 + 0.25 * 14 / 3])
    assert running_mean.data is mean_array, "the running statistics are updated in place"
    assert not running_mean.requires_grad and running_mean.grad is None
    np.testing.assert_allclose(out.numpy().reshape(-1), (np.array([1, 2, 3, 6]) - 3) / np.sqrt(3.5))


def test_evaluation_uses_running_statistics_and_leaves_them_alone():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 2, 2))
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = tg.Tensor(mean.copy()), tg.Tensor(var.copy())
    out = F.batch_norm(tg.Tensor(x), rm, rv, tg.Tensor(w), tg.Tensor(b), training=False, eps=1e-5)
    np.testing.assert_allclose(out.numpy(), reference_batch_norm(x, mean, var, w, b, 1e-5), rtol=1e-12)
    np.testing.assert_array_equal(rm.numpy(), mean)
    np.testing.assert_array_equal(rv.numpy(), var)


@pytest.mark.parametrize("device", DEVICES)
def test_float16_and_float32_inputs_close_to_float64(device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 4, 5, 5)) * 2 + 5
    reference = reference_batch_norm(x, x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)), np.ones(4), np.zeros(4), 1e-5)
    for dtype, tol in ((np.float32, 1e-5), (np.float16, 1e-2)):
        out = F.batch_norm(tg.Tensor(x.astype(dtype), device=device), None, None, training=True)
        assert out.dtype == dtype and out.device == device
        np.testing.assert_allclose(out.numpy().astype(np.float64), reference, rtol=tol, atol=tol * 3)


# ----------------------------------------------------------------------------- batch norm: gradients
@given(shape=shapes, training=st.booleans(), seed=st.integers(0, 1000))
def test_batch_norm_gradcheck(shape, training, seed):
    rng = np.random.default_rng(seed)
    x = tg.Tensor(rng.standard_normal(shape) * 2 + 1, requires_grad=True)
    w = tg.Tensor(rng.standard_normal(shape[1]), requires_grad=True)
    b = tg.Tensor(rng.standard_normal(shape[1]), requires_grad=True)
    rm, rv = tg.Tensor(rng.standard_normal(shape[1])), tg.Tensor(rng.uniform(0.5, 2, shape[1]))
    f = lambda x_, w_, b_: F.batch_norm(x_, None if training else rm, None if training else rv, w_, b_,
                                        training=training, eps=1e-3)
    assert tg.gradcheck(f, [x, w, b])


def test_gradient_without_affine_parameters():
    x = tg.Tensor(np.random.default_rng(3).standard_normal((4, 2, 3)), requires_grad=True)
    assert tg.gradcheck(lambda t: F.batch_norm(t, None, None, training=True), [x])


def test_batch_norm_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 5, 2)) * 2 + 1
    w, b, rm, rv = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    for training in (True, False):
        ours = [tg.Tensor(a, requires_grad=True) for a in (x, w, b)]
        stats = [tg.Tensor(rm.copy()), tg.Tensor(rv.copy())]
        theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        tstats = [torch.tensor(rm.copy()), torch.tensor(rv.copy())]
        out = F.batch_norm(ours[0], *stats, ours[1], ours[2], training, 0.2, 1e-4)
        ref = torch.nn.functional.batch_norm(theirs[0], *tstats, theirs[1], theirs[2], training, 0.2, 1e-4)
        gy = rng.standard_normal(out.shape)
        out.backward(gy)
        ref.backward(torch.tensor(gy))
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
        for a, t in list(zip(ours, theirs)):
            np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)
        for a, t in zip(stats, tstats):
            np.testing.assert_allclose(a.numpy(), t.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------- BatchNorm2d module
def test_batchnorm2d_train_then_eval():
    rng = np.random.default_rng(5)
    bn = nn.BatchNorm2d(3, momentum=0.5)
    assert [name for name, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    batches = [rng.standard_normal((4, 3, 2, 2)) * 2 + 1 for _ in range(2)]
    mean, var = np.zeros(3), np.ones(3)
    for x in batches:
        bn(tg.Tensor(x.astype(np.float32)))
        mean = 0.5 * mean + 0.5 * x.mean(axis=(0, 2, 3))
        var = 0.5 * var + 0.5 * x.var(axis=(0, 2, 3), ddof=1)
    assert bn.num_batches_tracked.item() == 2
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-5)
    bn.eval()
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    expected = reference_batch_norm(x, mean, var, np.ones(3), np.zeros(3), 1e-5)
    np.testing.assert_allclose(bn(tg.Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert bn.num_batches_tracked.item() == 2


def test_batchnorm2d_momentum_none_is_a_cumulative_average():
    rng = np.random.default_rng(6)
    bn = nn.BatchNorm2d(2, momentum=None)
    batches = [rng.standard_normal((3, 2, 2, 2)).astype(np.float32) + i for i in range(3)]
    for x in batches:
        bn(tg.Tensor(x))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(axis=(0, 2, 3)) for x in batches], axis=0),
                               rtol=1e-5, atol=1e-6)


def test_batchnorm2d_without_running_stats_always_uses_the_batch():
    bn = nn.BatchNorm2d(2, affine=False, track_running_stats=False).eval()
    assert list(bn.named_buffers()) == [] and list(bn.parameters()) == []
    x = np.random.default_rng(7).standard_normal((3, 2, 2, 2)).astype(np.float32)
    expected = reference_batch_norm(x, x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)), np.ones(2), np.zeros(2), 1e-5)
    np.testing.assert_allclose(bn(tg.Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- dropout
def test_dropout_training_zeroes_about_p_and_scales_the_rest():
    x = tg.ones(200, 500, requires_grad=True)
    out = F.dropout(x, 0.3, training=True)
    values = out.numpy()
    kept = values != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01          # 100000 Bernoulli draws: std of the mean ~0.0015
    np.testing.assert_allclose(values[kept], 1 / 0.7, rtol=1e-6)
    out.backward(np.full((200, 500), 2.0, dtype=np.float32))
    np.testing.assert_allclose(x.grad.numpy(), 2 * values)


def test_dropout_is_seeded_by_manual_seed():
    x = tg.ones(50, 50)
    tg.manual_seed(123)
    first = F.dropout(x, 0.5).numpy()
    tg.manual_seed(123)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), first)
    assert not np.array_equal(F.dropout(x, 0.5).numpy(), first)


def test_dropout_evaluation_and_edge_probabilities():
    x = tg.randn(10, 10)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((10, 10)))
    layer = nn.Dropout(0.5)
    assert layer.eval()(x) is x
    assert (layer.train()(x).numpy() == 0).any()


def test_dropout_gradcheck_with_a_fixed_mask():
    x = tg.Tensor(np.random.default_rng(8).standard_normal((4, 5)), requires_grad=True)

    def f(t):
        tg.manual_seed(9)  # the same mask for every evaluation
        return F.dropout(t, 0.4)
    assert tg.gradcheck(f, [x])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, message", [
    (lambda: F.batch_norm(tg.zeros(4, 3, 2, 2), tg.zeros(4), tg.ones(4)),
     r"batch_norm: running_mean must be a Tensor of shape \(3,\) for an input of shape \(4, 3, 2, 2\), got \(4,\)"),
    (lambda: F.batch_norm(tg.zeros(4, 3), None, None, tg.ones(2), training=True),
     r"batch_norm: weight must be a Tensor of shape \(3,\)"),
    (lambda: F.batch_norm(tg.zeros(1, 3), None, None, training=True),
     r"batch_norm: expected more than 1 value per channel when training, got input shape \(1, 3\)"),
    (lambda: F.batch_norm(tg.zeros(4, 3), None, None, training=False),
     r"batch_norm: running_mean and running_var are needed in evaluation mode"),
    (lambda: nn.BatchNorm2d(3)(tg.zeros(4, 3)), r"BatchNorm2d: expected a 4-D input \(N, C, H, W\), got shape"),
    (lambda: F.dropout(tg.zeros(2), 1.5), r"dropout: p must be a probability between 0 and 1, got 1.5"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
