"""The CPU fast paths of the elementwise ops against their plain paths, and the profiler.

Each fast path must give the plain path's result: elementwise work cut into chunks on the thread pool
gives the same bits (each element is computed by the same ufunc loop either way)."""
import contextlib

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn, op_profile, optim
from tinygrad_cv.autograd import Function
from tinygrad_cv.backend import threads
from tinygrad_cv.op_profile import OpProfile
from tinygrad_cv.ops import elementwise


@pytest.fixture
def num_threads():
    previous = threads.get_num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(previous)


def _relu_forward_backward(x, g):
    t = tg.Tensor(x, requires_grad=True)
    y = F.relu(t)
    y.backward(tg.Tensor(g))
    return y.numpy(), t.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_on_the_pool_equals_one_call_bit_for_bit(dtype, monkeypatch, num_threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 7, 11)).astype(dtype)
    x[0, 0, 0, :3] = 0  # the kink: y = 0 and no gradient, on both paths
    g = rng.standard_normal(x.shape).astype(dtype)
    num_threads(1)
    plain = _relu_forward_backward(x, g)
    monkeypatch.setattr(elementwise, "PARALLEL_MIN_ELEMENTS", 16)
    num_threads(3)
    calls = []
    real = threads.parallel_map
    monkeypatch.setattr(threads, "parallel_map", lambda fn, items, *a: calls.append(len(items)) or real(fn, items, *a))
    fast = _relu_forward_backward(x, g)
    assert calls == [3, 3]  # forward and backward each in three chunks
    for ours, theirs in zip(fast, plain):
        assert ours.dtype == dtype
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(plain[0], np.where(x > 0, x, 0))  # and the plain path is ReLU
    np.testing.assert_array_equal(plain[1], np.where(x > 0, g, 0))


def test_the_pool_is_used_only_for_large_contiguous_cpu_arrays_of_one_shape(monkeypatch, num_threads):
    class Ctx:
        device = "cpu"
    a = np.zeros((64, 64), np.float32)
    num_threads(2)
    monkeypatch.setattr(elementwise, "PARALLEL_MIN_ELEMENTS", 1024)
    assert elementwise.on_pool(Ctx, a, a)
    assert not elementwise.on_pool(Ctx, a[:, ::2], a[:, ::2])             # not contiguous
    assert not elementwise.on_pool(Ctx, a, np.zeros((1, 64), np.float32))  # broadcast
    assert not elementwise.on_pool(Ctx, a[:8])                            # small
    Ctx.device = "emu"
    assert not elementwise.on_pool(Ctx, a)                                # the GPU's work is its own
    Ctx.device = "cpu"
    num_threads(1)
    assert not elementwise.on_pool(Ctx, a)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_keeps_its_backward_state_in_ctx_save(approximate):
    """Arrays for backward go through ctx.save, which backward frees (issue 22)."""
    x = tg.Tensor(np.linspace(-3, 3, 12), requires_grad=True)
    y = F.gelu(x, approximate=approximate)
    ctx = y._ctx
    assert len(ctx.saved) == 2
    y.sum().backward()
    assert vars(ctx) == {"freed": True}  # autograd releases everything the op kept


# ----------------------------------------------------------------------------- the op profiler
def test_op_profile_counts_calls_flops_and_restores_everything():
    rng = np.random.default_rng(1)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    x = tg.Tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    apply, relu_backward = Function.__dict__["apply"], elementwise.ReLU.__dict__["backward"]
    with OpProfile() as prof:
        F.relu(conv(x)).sum().backward()
        F.relu(tg.Tensor(np.ones(3), requires_grad=True)).sum().backward()
    assert Function.__dict__["apply"] is apply and elementwise.ReLU.__dict__["backward"] is relu_backward
    stats = {(r["op"], r["pass"]): r for r in prof.rows()}
    conv_flops = 2 * (2 * 4 * 5 * 5) * (3 * 3 * 3)  # 2 per multiply-add: outputs x C_in k k
    assert stats[("Conv2d", "forward")]["calls"] == 1
    assert stats[("Conv2d", "forward")]["gflops"] * 1e9 == conv_flops
    assert stats[("Conv2d", "backward")]["gflops"] * 1e9 == conv_flops  # the input needs none: weight only
    assert stats[("ReLU", "forward")]["calls"] == 2 and stats[("ReLU", "backward")]["calls"] == 2
    assert stats[("ReLU", "forward")]["gflops"] * 1e9 == 2 * 4 * 5 * 5 + 3  # nominal: one per element
    assert all(r["ms"] >= 0 for r in prof.rows())
    text = prof.table(total_ms=1000.0, top=3)
    assert len(text.splitlines()) == 1 + 3 + 1 and "(outside the ops)" in text


def test_op_profile_times_are_exclusive_of_nested_ops(monkeypatch):
    """An op whose forward applies another op is charged only for its own part (a clock that ticks
    one second per reading: outer starts at 1, inner runs from 2 to 3, outer ends at 4)."""
    class Outer(Function):
        def forward(ctx, x):
            return F.relu(tg.Tensor(x)).data * 2

        def backward(ctx, g):
            return g

    ticks = iter(range(1, 100))
    monkeypatch.setattr(op_profile.time, "perf_counter", lambda: next(ticks))
    with OpProfile() as prof:
        Outer.apply(tg.Tensor(np.ones(3)))
    ms = {r["op"]: r["ms"] for r in prof.rows()}
    assert ms == {"Outer": 2000.0, "ReLU": 1000.0}


def test_a_training_step_under_the_profiler_gives_the_same_result():
    def run(profiled):
        tg.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        opt = optim.SGD(model.parameters(), lr=0.1)
        x = tg.Tensor(np.random.default_rng(2).standard_normal((2, 3, 6, 6)).astype(np.float32))
        with OpProfile() if profiled else contextlib.nullcontext():
            model(x).square().mean().backward()
            opt.step()
        return [p.numpy() for p in model.parameters()]
    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(a, b)
