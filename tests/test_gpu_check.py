"""What the emulator cannot prove, for a real GPU (marked ``gpu``), and the dry run of benchmarks/gpu_check.py.

The ``gpu`` tests run only under ``-m gpu`` (``python benchmarks/gpu_check.py`` runs them, on "cuda" at
full sizes); anywhere else they are skipped, and never count as coverage: every op they touch is also
tested on "cpu" and "emu" elsewhere. ``gpu_check.py --dry-run`` runs the same plan on "emu" at tiny
sizes, which is what ``make test`` does here (test_dry_run_of_the_gpu_check), so the plan keeps working
between GPU sessions. The device and sizes come from TINYGRAD_CV_GPU_CHECK_DEVICE and _SIZE.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import backend, optim
from tinygrad_cv.backend import launch

DEVICE = os.environ.get("TINYGRAD_CV_GPU_CHECK_DEVICE", "cuda")
FULL = os.environ.get("TINYGRAD_CV_GPU_CHECK_SIZE", "full") == "full"
ROOT = pathlib.Path(__file__).resolve().parent.parent
requires_device = pytest.mark.skipif(DEVICE == "cuda" and not tg.cuda_available(), reason="no CUDA device")


def on_both(make_inputs, fn, dtype=np.float32):
    """fn's outputs and input gradients on 'cpu' and on DEVICE, for the same float64-drawn inputs."""
    results = []
    for device in ("cpu", DEVICE):
        inputs = [tg.Tensor(a, dtype=dtype if a.dtype.kind == "f" else None, device=device,
                            requires_grad=grad) for a, grad in make_inputs()]
        out = fn(*inputs)
        upstream = np.random.default_rng(1).standard_normal(out.shape)
        out.backward(tg.Tensor(upstream, dtype=out.dtype, device=device))
        results.append([out.numpy()] + [t.grad.numpy() for t in inputs if t.requires_grad])
    return results


def assert_equal_on_both(results, rtol):
    for cpu, device in zip(*results):
        np.testing.assert_allclose(device.astype(np.float64), cpu.astype(np.float64), rtol=rtol, atol=rtol)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


n, c, size = (8, 64, 56) if FULL else (2, 3, 8)
KERNEL_OPS = {  # every CUDA kernel through the op that launches it: (inputs, function)
    "im2col/col2im (conv2d)": (lambda: [(randn(n, c, size, size), True), (randn(c, c, 3, 3, seed=1) * 0.1, True)],
                               lambda x, w: F.conv2d(x, w, padding=1, stride=2)),
    "bias_relu": (lambda: [(randn(n, c, size, size), True), (randn(c, seed=1), True)], F.bias_relu),
    "max_pool2d": (lambda: [(randn(n, c, size, size), True)], lambda x: F.max_pool2d(x, 3, 2, padding=1)),
    "batch_norm statistics": (lambda: [(randn(n, c, size, size) * 3 + 1, True)],
                              lambda x: F.batch_norm(x, None, None, training=True)),
    "bce_with_logits": (lambda: [(randn(n * 64, 1000 if FULL else 7), True),
                                 ((randn(n * 64, 1000 if FULL else 7, seed=1) > 0) * 1.0, False)],
                        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none")),
    "roi_align": (lambda: [(randn(2, c, size, size + 3), True),
                           (np.array([[0, 1.0, 1.5, size - 2.0, size - 1.0], [1, 0.0, 0.0, 3.5, 5.0]]), False)],
                  lambda x, boxes: F.roi_align(x, boxes, 7, 0.5, 2, aligned=True)),
}


@pytest.mark.gpu
@requires_device
@pytest.mark.parametrize("name", list(KERNEL_OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_every_kernel_equals_cpu(name, dtype):
    make_inputs, fn = KERNEL_OPS[name]
    assert_equal_on_both(on_both(make_inputs, fn, dtype), rtol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.gpu
@requires_device
def test_the_nonfinite_check_equals_numpy():
    values = randn(11_000_000 if FULL else 1000).astype(np.float32)
    clean = backend.move(values, DEVICE)
    assert not launch.has_nonfinite([clean])
    values[-1] = np.inf
    assert launch.has_nonfinite([clean, backend.move(values, DEVICE)])


@pytest.mark.gpu
@requires_device
@pytest.mark.parametrize("mode", ["fp32", "fp16"])
def test_a_learner_epoch_equals_cpu(mode):
    from test_syncs import fit_one_epoch
    ours, _ = fit_one_epoch(DEVICE, mode)
    theirs, _ = fit_one_epoch("cpu", mode)
    for key in ("train_loss", "valid_loss"):
        assert ours.recorder.values[0][key] == pytest.approx(theirs.recorder.values[0][key], rel=1e-3)


@pytest.mark.gpu
@requires_device
def test_a_unet_training_step_equals_cpu():
    from tinygrad_cv.models import unet_resnet
    batch, side = (8, 128) if FULL else (1, 32)
    x, y = randn(batch, 3, side, side), np.random.default_rng(1).integers(0, 12, (batch, side, side))
    losses = []
    for device in ("cpu", DEVICE):
        tg.manual_seed(0)
        model = unet_resnet(12, width=32).to(device)
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for _ in range(2):
            loss = F.cross_entropy(model(tg.Tensor(x, dtype=np.float32, device=device)), tg.tensor(y, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    np.testing.assert_allclose(losses[2:], losses[:2], rtol=1e-3)


@pytest.mark.gpu
@requires_device
def test_a_mask_rcnn_training_step_equals_cpu():
    from test_mask_rcnn import empty_targets, small_config, square_and_disc
    from tinygrad_cv.models.mask_rcnn import MaskRCNN, prepare_images
    config = small_config()
    image, targets = square_and_disc()
    results = []
    for device in ("cpu", DEVICE):
        tg.manual_seed(0)
        model = MaskRCNN(config).to(device)
        images = prepare_images([image, np.full_like(image, 30)], config, device=device)
        losses = model.losses(images, [targets, empty_targets()])
        sum(losses.values()).backward()
        results.append(({k: v.item() for k, v in losses.items()}, [p.grad.numpy() for p in model.parameters()
                                                                   if p.grad is not None]))
    (cpu_losses, cpu_grads), (our_losses, our_grads) = results
    assert our_losses == pytest.approx(cpu_losses, rel=1e-4)
    for ours, theirs in zip(our_grads, cpu_grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------ past the int32 boundary
# Sizes whose element count passes 2^31 - 1 (each dimension alone is small): every kernel either writes
# every element (64-bit offsets) or its launcher refuses the sizes with an error naming them. Checked by
# values that a wrapped index would get wrong: per-plane sums of a constant image, the last channel's
# statistics, an inf in the very last element.
C_BIG, SIDE = (8193, 512) if FULL else (3, 8)            # 1 x 8193 x 512 x 512 = 2^31 + 2^18 elements
IM2COL_C, IM2COL_SIDE = (64, 2048) if FULL else (2, 8)    # cols: 64*9 x 2048^2 = 2.4e9 elements


def refused(error, *sizes):
    """A launcher's refusal: it must name the sizes (or say why 32 bits do not hold them)."""
    text = str(error)
    assert "32-bit" in text or any(str(n) in text for n in sizes), text
    return True


def ones(shape, dtype=np.float32):
    return tg.Tensor(backend.get_xp(DEVICE).ones(shape, dtype), device=DEVICE, requires_grad=True)


def plane_sums(array, planes):
    return backend.as_host(array.reshape(planes, -1).sum(axis=1, dtype=np.float64)).tolist()


def max_pool_case():
    x = ones((1, C_BIG, SIDE, SIDE))
    y = F.max_pool2d(x, 2)
    y.backward(tg.Tensor(backend.get_xp(DEVICE).ones(y.shape, np.float32), device=DEVICE))
    assert plane_sums(x.grad.data, C_BIG) == [float(SIDE * SIDE // 4)] * C_BIG


def bias_relu_case():
    x = ones((1, C_BIG, SIDE, SIDE))
    y = F.bias_relu(x, tg.zeros(C_BIG, device=DEVICE))
    assert plane_sums(y.data, C_BIG) == [float(SIDE * SIDE)] * C_BIG


def batch_norm_statistics_case():
    xp = backend.get_xp(DEVICE)
    levels = np.arange(C_BIG) % 7  # small integers: every partial sum is exact in float32
    x = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(levels, dtype=np.float32)[None, :, None, None],
                                             (1, C_BIG, SIDE, SIDE)))
    mean, var = launch.batch_norm_statistics(x)
    assert backend.as_host(mean).tolist() == levels.tolist() and not backend.as_host(var).any()


def nonfinite_case():
    xp = backend.get_xp(DEVICE)
    values = xp.zeros(C_BIG * SIDE * SIDE, np.float16)
    assert not launch.has_nonfinite([values])
    values[-1] = np.inf
    assert launch.has_nonfinite([values])


def im2col_case():
    x = backend.get_xp(DEVICE).ones((1, IM2COL_C, IM2COL_SIDE, IM2COL_SIDE), np.float16)
    cols = launch.im2col(x, 3, padding=1)
    last = cols[0, -1]  # channel C-1, tap (2, 2): the pixels with a right and a lower neighbour
    assert float(last.sum(dtype=np.float64)) == float((IM2COL_SIDE - 1) ** 2)


BOUNDARY_CASES = {"max_pool2d backward": max_pool_case, "bias_relu": bias_relu_case,
                  "batch_norm statistics": batch_norm_statistics_case, "non-finite check": nonfinite_case,
                  "im2col": im2col_case}


@pytest.mark.gpu
@requires_device
@pytest.mark.parametrize("name", list(BOUNDARY_CASES))
def test_past_the_int32_boundary_every_element_is_written_or_the_sizes_refused(name):
    try:
        BOUNDARY_CASES[name]()
    except ValueError as error:
        assert refused(error, C_BIG * SIDE * SIDE, IM2COL_C * 9 * IM2COL_SIDE ** 2)


def test_dry_run_of_the_gpu_check(tmp_path):
    """gpu_check.py --dry-run: the whole plan on emu at tiny sizes, one JSON and one PNG."""
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"] == "emu" and report["dry_run"] is True
    outcomes = {t["name"]: t["outcome"] for t in report["tests"]}
    assert len(outcomes) >= len(KERNEL_OPS) * 2 + len(BOUNDARY_CASES) + 5, outcomes
    assert set(outcomes.values()) == {"passed"}, outcomes
    assert report["bench_devices"]["ops"] and (tmp_path / "gpu_check.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
