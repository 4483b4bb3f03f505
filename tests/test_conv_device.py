"""The convolution on 'emu' (standing for 'cuda'): work shaped by the device, not by the host.

Kernel launches and array-module calls are counted per op (by wrapping the launcher's kernels and
the ``xp`` every Function receives): a convolution's forward and backward, and a small ResNet's
training step, issue the same work with 1 and with 16 host threads, and whole-batch tiles mean one
im2col launch per product. float16 GEMMs run in float16 on the device, accumulated in float32, which
a long reduction shows (a float16 running sum of it would be far off)."""
import contextlib
from collections import Counter

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import autograd, nn
from tinygrad_cv.backend import launch, threads
from tinygrad_cv.models.resnet import resnet_small
from tinygrad_cv.ops import conv_columns


# ----------------------------------------------------------------------------- counting
def _all_functions(cls=autograd.Function):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_functions(sub)


class _CountingXp:
    """The array module, with every call of one of its functions counted under the op that made it
    (and, for matmul, the operands' dtypes and shapes recorded)."""
    def __init__(self, xp, counts, stack, matmuls):
        self._xp, self._counts, self._stack, self._matmuls = xp, counts, stack, matmuls

    def __getattr__(self, name):
        attr = getattr(self._xp, name)
        if not callable(attr) or isinstance(attr, type):
            return attr  # dtypes, submodules, constants

        def counted(*args, **kwargs):
            self._counts[(self._stack[-1], name)] += 1
            if name == "matmul":
                self._matmuls.append((args[0].dtype, args[1].dtype, args[0].shape, args[1].shape))
            return attr(*args, **kwargs)
        return counted


@contextlib.contextmanager
def counting(monkeypatch):
    """Counter of (op, xp function or 'launch <kernel>') -> calls, and the list of matmuls (operand
    dtypes and shapes), for the ops run inside."""
    counts, stack, matmuls = Counter(), ["outside"], []
    real_get_xp, real_kernel = autograd.get_xp, launch._kernel
    monkeypatch.setattr(autograd, "get_xp", lambda device: _CountingXp(real_get_xp(device), counts, stack,
                                                                       matmuls))

    def counting_kernel(file, name, like, op):
        kernel = real_kernel(file, name, like, op)

        def launched(*args, **kwargs):
            counts[(stack[-1], f"launch {name}")] += 1
            return kernel(*args, **kwargs)
        return launched
    monkeypatch.setattr(launch, "_kernel", counting_kernel)

    def attributed(cls, method):
        def run(ctx, *args, **kwargs):
            stack.append(cls.__name__)
            try:
                return method(ctx, *args, **kwargs)
            finally:
                stack.pop()
        return run
    for cls in _all_functions():
        for name in ("forward", "backward"):
            if name in vars(cls):
                monkeypatch.setattr(cls, name, attributed(cls, vars(cls)[name]))
    yield counts, matmuls


@contextlib.contextmanager
def host_threads(n):
    previous = threads.get_num_threads()
    threads.set_num_threads(n)
    try:
        yield
    finally:
        threads.set_num_threads(previous)


def counts_at(n_threads, step, monkeypatch, matmuls=None):
    with host_threads(n_threads), monkeypatch.context() as patch, counting(patch) as (counts, seen):
        step()
    if matmuls is not None:
        matmuls.extend(seen)
    return counts


def launches(counts, op=None):
    return {name: c for (where, name), c in counts.items() if name.startswith("launch") and op in (None, where)}


# ----------------------------------------------------------------------------- conv fwd + bwd
CONV_CASES = [dict(kernel=3, stride=1, padding=1), dict(kernel=3, stride=2, padding=1, groups=2),
              dict(kernel=1, stride=1, padding=0), dict(kernel=1, stride=2, padding=0),
              dict(kernel=2, stride=1, padding="same", dilation=2)]


def conv_step(case, device="emu", transposed=False, seed=0):
    """Forward and backward of one conv2d (or conv_transpose2d) of a batch of 6; returns every result."""
    rng = np.random.default_rng(seed)
    groups, k = case.get("groups", 1), case["kernel"]
    kwargs = {key: v for key, v in case.items() if key != "kernel"}
    x = tg.Tensor(rng.standard_normal((6, 4, 9, 8)), device=device, requires_grad=True)
    shape = (4, 6 // groups, k, k) if transposed else (6, 4 // groups, k, k)
    w = tg.Tensor(rng.standard_normal(shape), device=device, requires_grad=True)
    b = tg.Tensor(rng.standard_normal(6), device=device, requires_grad=True)
    out = (F.conv_transpose2d if transposed else F.conv2d)(x, w, b, **kwargs)
    out.backward(tg.Tensor(rng.standard_normal(out.shape), device=device))
    return [t.numpy() for t in (out, x.grad, w.grad, b.grad)]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_launches_and_array_calls_do_not_depend_on_host_threads(case, monkeypatch):
    one, many = (counts_at(n, lambda: conv_step(case), monkeypatch) for n in (1, 16))
    assert one == many
    assert sum(one.values()) > 0


@pytest.mark.parametrize("case", [c for c in CONV_CASES if c["kernel"] == 3 and c.get("groups") is None] +
                         [dict(kernel=3, stride=2, padding=1)])
def test_whole_batch_tiles_launch_each_kernel_once_per_product(case, monkeypatch):
    """Forward: one im2col; weight gradient: one im2col; input gradient: one col2im (batch of 6)."""
    counts = counts_at(16, lambda: conv_step(case), monkeypatch)
    assert launches(counts, "Conv2d") == {"launch im2col": 2, "launch col2im": 1}
    assert counts[("Conv2d", "matmul")] == 3  # one batched GEMM per product


def test_pointwise_convolution_launches_no_column_kernel(monkeypatch):
    """A 1x1 stride-1 unpadded convolution's columns are x itself: no im2col, no col2im."""
    counts = counts_at(16, lambda: conv_step(dict(kernel=1, stride=1, padding=0)), monkeypatch)
    assert launches(counts, "Conv2d") == {}
    assert counts[("Conv2d", "matmul")] == 3


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("case", CONV_CASES[:3])
def test_emu_equals_cpu_for_whole_batch_and_budgeted_tiles(case, transposed, monkeypatch):
    """One tile of the whole batch, or (with a tiny device budget) one sample per tile: the same results
    as the CPU's tiling."""
    cpu = conv_step(case, "cpu", transposed)
    whole = conv_step(case, "emu", transposed)
    monkeypatch.setattr(conv_columns, "DEVICE_WORKSPACE_BYTES", 1)
    one_by_one = conv_step(case, "emu", transposed)
    for a, b, c in zip(cpu, whole, one_by_one):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("budget", [conv_columns.DEVICE_WORKSPACE_BYTES, 1])
def test_more_output_channels_than_pixels_weight_gradient_on_emu(budget, monkeypatch):
    """A late layer (12 output channels, 3x3 pixels): the device's weight gradient is one merged GEMM per
    tile instead of per-sample partial sums; it equals the CPU's, whole-batch or one sample per tile."""
    monkeypatch.setattr(conv_columns, "DEVICE_WORKSPACE_BYTES", budget)
    rng = np.random.default_rng(9)
    x, w, gy = rng.standard_normal((5, 4, 3, 3)), rng.standard_normal((12, 4, 3, 3)), rng.standard_normal((5, 12, 3, 3))
    grads = {}
    for device in ("cpu", "emu"):
        xt, wt = (tg.Tensor(a, device=device, requires_grad=True) for a in (x, w))
        F.conv2d(xt, wt, padding=1).backward(tg.Tensor(gy, device=device))
        grads[device] = xt.grad.numpy(), wt.grad.numpy()
    for a, b in zip(grads["cpu"], grads["emu"]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)

    def step():
        xt, wt = (tg.Tensor(a, device="emu", requires_grad=True) for a in (x, w))
        F.conv2d(xt, wt, padding=1).backward(tg.Tensor(gy, device="emu"))
    matmuls = []
    counts = counts_at(1, step, monkeypatch, matmuls)
    tiles = 1 if budget > 1 else 5
    assert launches(counts, "Conv2d") == {"launch im2col": 2 * tiles, "launch col2im": tiles}
    assert counts[("Conv2d", "matmul")] == 3 * tiles
    weight_gemms = [m for m in matmuls if len(m[2]) == len(m[3]) == 4]  # cols (1, G, K, T) @ dout^T (1, G, T, O)
    assert len(weight_gemms) == tiles and all(m[2][0] == 1 and m[2][3] == 9 * 5 // tiles for m in weight_gemms)


@pytest.mark.parametrize("n, bytes_per_sample, budget", [(7, 10, 10**9), (7, 10, 25), (7, 10, 1), (1, 10**9, 5),
                                                        (0, 10, 100)])
def test_device_tiles_are_whole_samples_within_the_budget(n, bytes_per_sample, budget, monkeypatch):
    monkeypatch.setattr(conv_columns, "DEVICE_WORKSPACE_BYTES", budget)
    tiles = conv_columns.device_tiles(n, 5, bytes_per_sample)
    seen = np.zeros(n, int)
    for samples, rows in tiles:
        seen[samples] += 1
        assert rows == slice(0, 5)
        assert (samples.stop - samples.start) * bytes_per_sample <= max(budget, bytes_per_sample)
    np.testing.assert_array_equal(seen, 1)
    assert len(tiles) == (0 if n == 0 else -(-n // max(1, budget // bytes_per_sample)))


# ----------------------------------------------------------------------------- a training step
def resnet_step(device="emu"):
    """One SGD step of a small ResNet on a batch of 4 (conv, batch norm, ReLU, pooling, linear, loss)."""
    tg.manual_seed(0)
    model = resnet_small(num_classes=5, width=4, depths=(1, 1)).to(device)
    optimizer = tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(1)
    x = tg.Tensor(rng.standard_normal((4, 3, 12, 12)).astype(np.float32), device=device)
    y = tg.Tensor(rng.integers(0, 5, 4), device=device)
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_resnet_step_issues_the_same_work_with_1_and_16_host_threads(monkeypatch):
    """Every op of the step (a Function): convolutions, batch norm (one channel slice on a device),
    ReLU, pooling, linear and the loss."""
    one, many = (counts_at(n, resnet_step, monkeypatch) for n in (1, 16))
    assert one == many
    conv_launches = launches(one, "Conv2d")
    assert conv_launches["launch im2col"] > 0 and conv_launches["launch col2im"] > 0


# ----------------------------------------------------------------------------- float16 on the device
def test_float16_gemms_stay_float16_on_emu_and_are_cast_on_the_cpu(monkeypatch):
    """On the device the GEMMs get float16 operands (cuBLAS accumulates them in fp32), three for the
    whole batch; on the CPU float32 ones (NumPy has no fp16 BLAS), three per tile (tiles follow the CPU
    thread count)."""
    rng = np.random.default_rng(5)
    arrays = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((3, 4, 3, 3))
    for device, expected in (("emu", np.float16), ("cpu", np.float32)):
        with monkeypatch.context() as patch, counting(patch) as (_, matmuls):
            x, w = (tg.Tensor(a.astype(np.float16), device=device, requires_grad=True) for a in arrays)
            out = F.conv2d(x, w, padding=1)
            out.backward(tg.Tensor(np.ones(out.shape, np.float16), device=device))
        tiles = 1 if device == "emu" else len(matmuls) // 3
        assert tiles >= 1 and len(matmuls) == 3 * tiles
        assert {m[:2] for m in matmuls} == {(np.dtype(expected),) * 2}
        assert x.grad.dtype == w.grad.dtype == np.float16


@pytest.mark.parametrize("device", ["cpu", "emu"])
def test_float16_weight_gradient_of_a_long_reduction_is_accumulated_in_float32(device):
    """dw of a 1x1 convolution sums x * dout over 2 x 64 x 64 = 8192 pixels: within float16's rounding
    of the exact sum, where a float16 running sum of the same products is off by far more (it stops
    growing once the sum's spacing exceeds the terms)."""
    rng = np.random.default_rng(6)
    x = rng.uniform(0.5, 1.5, (2, 1, 64, 64)).astype(np.float16)
    dout = rng.uniform(0.5, 1.5, (2, 1, 64, 64)).astype(np.float16)
    xt = tg.Tensor(x, device=device, requires_grad=True)
    wt = tg.Tensor(np.ones((1, 1, 1, 1), np.float16), device=device, requires_grad=True)
    F.conv2d(xt, wt).backward(tg.Tensor(dout, device=device))
    products = (x.astype(np.float64) * dout.astype(np.float64)).ravel()
    exact = products.sum()
    got = float(wt.grad.numpy().ravel()[0])
    tolerance = 2 * 2.0 ** -11 * exact  # the float16 result's rounding, and that of per-sample partials
    assert abs(got - exact) <= tolerance
    running = np.add.accumulate(products.astype(np.float16), dtype=np.float16)[-1]
    assert abs(float(running) - exact) > 20 * tolerance


def test_float16_gradients_on_emu_close_to_float64():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3)) * 0.2
    gy = rng.standard_normal((3, 6, 4, 3))
    grads = {}
    for dtype, device in ((np.float64, "cpu"), (np.float16, "emu")):
        xt, wt = (tg.Tensor(a.astype(dtype), device=device, requires_grad=True) for a in (x, w))
        F.conv2d(xt, wt, stride=2, padding=1, groups=2).backward(tg.Tensor(gy.astype(dtype), device=device))
        grads[dtype] = (xt.grad.numpy().astype(np.float64), wt.grad.numpy().astype(np.float64))
    for half, full in zip(grads[np.float16], grads[np.float64]):
        np.testing.assert_allclose(half, full, rtol=2e-2, atol=2e-2 * np.abs(full).max())


def test_nn_conv_module_on_emu_matches_the_cpu():
    """The module path (nn.Conv2d with bias) on emu gives the CPU's output."""
    tg.manual_seed(3)
    layer = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    x = np.random.default_rng(8).standard_normal((4, 3, 10, 10)).astype(np.float32)
    cpu = layer(tg.Tensor(x)).numpy()
    emu = layer.to("emu")(tg.Tensor(x, device="emu")).numpy()
    np.testing.assert_allclose(emu, cpu, rtol=1e-5, atol=1e-5)
