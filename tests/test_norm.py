"""batch_norm and dropout: the batch-norm formula and its running statistics checked by hand, train
and eval behaviour (functional and BatchNorm2d/Dropout modules), gradchecks, PyTorch as an extra
oracle, and the error messages."""
import collections

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from conftest import DEVICES
from tinygrad_cv import autograd, backend, nn
from tinygrad_cv.backend import emulator, threads
from tinygrad_cv.ops import norm


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


# ----------------------------------------------------------------------------- batch norm: the work's shape
def _batch_norm_step(dtype, training, device="cpu", shape=(6, 10, 7, 9)):
    """Forward and backward of one batch norm: the output, the running statistics and the gradients."""
    rng = np.random.default_rng(7)
    x = tg.Tensor((rng.standard_normal(shape) * 3 + 2).astype(dtype), device=device, requires_grad=True)
    w, b = (tg.Tensor(rng.standard_normal(shape[1]).astype(dtype), device=device, requires_grad=True)
            for _ in range(2))
    rm = tg.Tensor(rng.standard_normal(shape[1]).astype(np.float32), device=device)
    rv = tg.Tensor(rng.uniform(0.5, 2, shape[1]).astype(np.float32), device=device)
    y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3)
    y.backward(tg.Tensor(rng.standard_normal(shape).astype(dtype), device=device))
    return [t.numpy() for t in (y, rm, rv, x.grad, w.grad, b.grad)]


@pytest.fixture
def num_threads():
    previous = threads.get_num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_cache_sized_channel_blocks_equal_one_slice_bit_for_bit(dtype, training, monkeypatch, num_threads):
    """The CPU's fast path (channels in cache-sized blocks on the thread pool) against the plain path
    (one slice of every channel, as on cuda): the same bits, since each channel's arithmetic is the
    same whichever block holds it."""
    num_threads(1)
    monkeypatch.setattr(norm, "channel_blocks", lambda xv, device: [slice(None)])
    plain = _batch_norm_step(dtype, training)
    monkeypatch.undo()
    monkeypatch.setattr(norm, "BLOCK_BYTES", 1)  # one channel per block
    num_threads(3)
    blocks = norm.channel_blocks(np.empty((6, 10, 63), dtype), "cpu")
    assert len(blocks) == 10 and [b.start for b in blocks] == list(range(10))
    for ours, theirs in zip(_batch_norm_step(dtype, training), plain):
        np.testing.assert_array_equal(ours, theirs)


def test_cpu_channel_blocks_cover_every_channel_once(num_threads):
    num_threads(2)
    for shape in ((32, 32, 4096), (32, 256, 64), (2, 7, 3), (1, 1, 1)):
        blocks = norm.channel_blocks(np.empty(shape, np.float32), "cpu")
        covered = [c for b in blocks for c in range(shape[1])[b]]
        assert covered == list(range(shape[1])) and len(blocks) >= min(2, shape[1])
    assert norm.channel_blocks(np.empty((32, 32, 4096), np.float32), "emu") == [slice(None)]


class _CountingXp:
    """An array module (emu's), counting the calls of its functions (the array calls an op makes
    through ctx.xp)."""
    def __init__(self, counts, xp):
        self._counts, self._xp = counts, xp

    def __getattr__(self, name):
        value = getattr(self._xp, name)
        if not callable(value) or isinstance(value, type):
            return value

        def counted(*args, **kwargs):
            self._counts[name] += 1
            return value(*args, **kwargs)
        return counted


def _emu_work(monkeypatch, n_threads, training):
    """{name: count} of the emulator's kernel launches and the xp calls of one batch-norm forward and
    backward on 'emu' with ``n_threads`` host threads."""
    counts = collections.Counter()
    launch = emulator.EmuKernel.__call__

    def counting_launch(self, *args, **kwargs):
        counts["kernel launches"] += 1
        return launch(self, *args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(emulator.EmuKernel, "__call__", counting_launch)
        emu_xp = backend.get_xp("emu")
        m.setattr(autograd, "get_xp", lambda device: _CountingXp(counts, emu_xp) if device == "emu" else np)
        threads.set_num_threads(n_threads)
        _batch_norm_step(np.float32, training, device="emu", shape=(4, 32, 3, 3))
    return counts


@pytest.mark.parametrize("training", [True, False])
def test_emu_batch_norm_work_does_not_depend_on_host_threads(training, monkeypatch, num_threads):
    """On 'cuda' and 'emu' batch norm is one slice of every channel (issue 19): the kernel launches
    and array calls of a forward and backward are the same at 1 and at 16 host threads."""
    one, sixteen = _emu_work(monkeypatch, 1, training), _emu_work(monkeypatch, 16, training)
    assert one == sixteen
    assert one["kernel launches"] == (1 if training else 0) and one["multiply"] >= 2


def test_batch_norm_keeps_its_backward_state_in_ctx_save():
    """Everything backward needs goes through ctx.save, so backward frees it (issue 22)."""
    x = tg.Tensor(np.random.default_rng(8).standard_normal((4, 3, 2, 2)), requires_grad=True)
    for training in (True, False):
        y = F.batch_norm(x, tg.zeros(3, dtype=np.float64), tg.ones(3, dtype=np.float64), training=training)
        ctx = y._ctx
        y.sum().backward()
        assert vars(ctx) == {"freed": True}  # autograd releases everything the op kept


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
