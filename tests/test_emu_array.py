"""The device array of "emu" behaves like CuPy's where host/device mistakes show, and counts its reads."""
import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import backend, nn
from tinygrad_cv.backend import EmuArray, count_syncs, emu_xp, launch, sync_count


@pytest.fixture
def x():
    return backend.move(np.arange(12, dtype=np.float32).reshape(3, 4), "emu")


def test_emu_xp_is_the_array_module_of_emu_tensors():
    t = tg.randn(2, 3, device="emu")
    assert backend.get_xp("emu") is emu_xp and t.xp is emu_xp
    assert type(t.data) is EmuArray and backend.device_of_array(t.data) == "emu"
    assert isinstance(emu_xp.zeros(3), emu_xp.ndarray)


def test_implicit_conversion_to_numpy_raises_as_on_cupy(x):
    for convert in (np.asarray, np.array, lambda a: np.add(np.ones(4), a)):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed|host NumPy"):
            convert(x)
    np.testing.assert_array_equal(x.get(), np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(backend.as_host(x), emu_xp.asnumpy(x))


@pytest.mark.parametrize("mix", [
    lambda a, h: a + h,
    lambda a, h: h * a,
    lambda a, h: emu_xp.maximum(a, h),
    lambda a, h: np.maximum(a, h),
    lambda a, h: emu_xp.concatenate([a, h]),
    lambda a, h: emu_xp.where(a > 3, a, h),
    lambda a, h: a.__setitem__(slice(None), h),
], ids=["add", "rmul", "xp-ufunc", "np-ufunc", "xp-function", "where", "setitem"])
def test_a_host_array_mixed_into_a_device_op_raises(x, mix):
    with pytest.raises(TypeError, match=r"host NumPy array \(shape \(3, 4\), float32\).*device 'emu'"):
        mix(x, np.ones((3, 4), np.float32))


def test_scalars_and_0d_host_arrays_mix_in_and_results_stay_on_the_device(x):
    out = [x * 2, 2.0 + x, x - np.float32(1), x / np.array(2.0, np.float32), x.sum(), x[1, 2], x.max(axis=0),
           emu_xp.exp(x), x.T, x.reshape(-1)[::2]]
    assert all(type(a) is EmuArray for a in out)
    assert out[4].shape == () and out[4].dtype == np.float32  # a 0-d array, as CuPy's reductions
    np.testing.assert_array_equal(out[0].get(), np.arange(12).reshape(3, 4) * 2)
    assert out[5].item() == 6.0 and out[4].item() == 66.0


def test_moving_to_emu_copies_so_a_callers_array_is_never_aliased():
    host = np.zeros(3)
    device = backend.move(host, "emu")
    device += 1
    assert host.tolist() == [0, 0, 0] and device.get().tolist() == [1, 1, 1]
    assert backend.move(device, "emu") is device


def test_a_host_array_passed_to_a_kernel_with_device_arrays_raises(x):
    image = backend.move(np.ones((1, 1, 4, 4), np.float32), "emu")
    with pytest.raises(TypeError, match="im2col_f32 \\(kernel launch\\).*host NumPy array"):
        launch.im2col(image, 3, padding=1, out=np.empty((1, 9, 16), np.float32))
    cols = launch.im2col(image, 3, padding=1)
    assert type(cols) is EmuArray and cols.get()[0, 4].tolist() == [1.0] * 16  # centre tap: the image


def test_python_scalars_passed_to_a_kernel_raise():
    """CuPy would pass a Python int as a 64-bit integer whatever the parameter's type: the emulator refuses it."""
    kernel = launch._kernel("nonfinite", "nonfinite_check", np.zeros(1, np.float32), "test")
    flag = emu_xp.zeros(1, np.int32)
    with pytest.raises(TypeError, match="is a C long long, so pass np.int64"):
        kernel((1,), (32,), (emu_xp.zeros(4, np.float32), 4, flag))


@pytest.mark.parametrize("read", [
    lambda a: a.get(), lambda a: a.item(0), lambda a: float(a[0, 0]), lambda a: int(a[0, 1]),
    lambda a: bool(a[0, 1]), lambda a: a.tolist(), lambda a: repr(a), lambda a: str(a), lambda a: f"{a[0, 0]:.2f}",
    lambda a: emu_xp.asnumpy(a), lambda a: backend.as_host(a), lambda a: backend.move(a, "cpu"),
    lambda a: emu_xp.nonzero(a), lambda a: emu_xp.flatnonzero(a), lambda a: emu_xp.unique(a), lambda a: a[a > 3],
    lambda a: [0, 1, 2][a[0, 1].astype(np.int64)],
], ids=["get", "item", "float", "int", "bool", "tolist", "repr", "str", "format", "asnumpy", "as_host",
        "move-cpu", "nonzero", "flatnonzero", "unique", "mask-index", "index"])
def test_each_synchronising_read_counts_once(x, read):
    before = sync_count()
    read(x)
    assert sync_count() - before == 1


def test_device_work_does_not_count(x):
    with count_syncs() as syncs:
        y = emu_xp.where(x > 3, x * 2, 0) + x.sum(axis=1, keepdims=True)
        y[0] = y.max()
        emu_xp.add.at(y, (emu_xp.asarray([0, 0]), emu_xp.asarray([1, 1])), 1.0)
        assert syncs.count == 0
    assert syncs.count == 0
    reference = np.where(x.get() > 3, x.get() * 2, 0) + x.get().sum(axis=1, keepdims=True)
    reference[0] = reference.max()
    reference[0, 1] += 2
    np.testing.assert_array_equal(y.get(), reference)


def test_count_syncs_is_per_thread(x):
    import threading
    with count_syncs() as syncs:
        worker = threading.Thread(target=lambda: [x.get() for _ in range(3)])
        worker.start()
        worker.join()
        x.get()
    assert syncs.count == 1


def test_an_emu_model_step_matches_cpu():
    """A small conv net on emu (kernels, EmuArrays) gives the CPU's loss and gradients."""
    tg.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = tg.randn(2, 2, 5, 5)
    results = []
    for device in ("cpu", "emu"):
        model = conv.to(device)
        for p in model.parameters():
            p.grad = None
        loss = F.max_pool2d(F.relu(model(x.to(device))), 2).mean()
        loss.backward()
        results.append((loss.item(), model.weight.grad.numpy()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "emu"])
def test_a_bad_class_index_raises_at_once_on_cpu_and_at_the_next_read_on_a_device(device):
    logits, target = tg.randn(2, 3, device=device), tg.tensor([0, 5], device=device)
    if device == "cpu":
        with pytest.raises(ValueError, match="class index 5, outside"):
            F.cross_entropy(logits, target)
        return
    with count_syncs() as syncs:
        loss = F.cross_entropy(logits, target)  # a device-side check: no read yet
    assert syncs.count == 0
    with pytest.raises(ValueError, match="class index 5, outside"):
        loss.item()
    assert backend.deferred.pending() == []
    assert np.isfinite(F.cross_entropy(logits, tg.tensor([0, 2], device=device)).item())


def test_binary_cross_entropy_checks_its_range_on_the_device_until_the_next_read():
    probabilities, target = tg.tensor([0.5, 1.5], device="emu"), tg.tensor([0.0, 1.0], device="emu")
    with count_syncs() as syncs, np.errstate(invalid="ignore"):  # the device computes log(1 - 1.5) = NaN
        loss = F.binary_cross_entropy(probabilities, target)
    assert syncs.count == 0
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\].*\[0\.5, 1\.5\]"):
        loss.numpy()
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        F.binary_cross_entropy(probabilities.cpu(), target.cpu())  # on the CPU: at once


def test_unread_device_checks_are_read_every_max_pending():
    logits, target = tg.randn(2, 3, device="emu"), tg.tensor([0, 1], device="emu")
    backend.deferred.take_pending()
    with count_syncs() as syncs:
        for _ in range(backend.deferred.MAX_PENDING - 1):
            F.cross_entropy(logits, target)
        assert syncs.count == 0 and len(backend.deferred.pending()) == backend.deferred.MAX_PENDING - 1
        F.cross_entropy(logits, target)
    assert syncs.count == 2 and backend.deferred.pending() == []  # the flags in one read, then the value


def test_out_of_bounds_integer_indices_wrap_around_as_on_cupy(x):
    flat = x.reshape(-1)
    assert flat[emu_xp.asarray([13, -1])].get().tolist() == [1.0, 11.0]
    assert x[emu_xp.asarray([4]), emu_xp.asarray([5])].get().tolist() == [5.0]
    flat[emu_xp.asarray([12])] = -1.0
    assert flat[0].item() == -1.0
    with pytest.raises(IndexError):
        x[3]  # a plain int out of range still raises, as on CuPy
