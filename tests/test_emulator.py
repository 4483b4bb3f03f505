"""The emulator itself: CUDA semantics on the CPU (indices, barriers, half precision, flush-to-zero)
and the checks a GPU would not make (argument types, contiguity, out-of-bounds writes, data races).

Most tests compile a tiny kernel written here (the real kernels are tested in test_kernels.py);
the last ones run a whole training step of the engine on the device "emu" against "cpu".
"""
import subprocess

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import functional as F
from tinygrad_cv import nn, optim
from tinygrad_cv.backend import emulator, launch, nvrtc

i32, f32 = np.int32, np.float32


def kernel(code, name):
    return emulator.load(code, "test.cu").get_function(name)


SCALE = r'''
extern "C" __global__ void scale(const float* x, float* y, float factor, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * factor;
}
'''


# ------------------------------------------------------------------------------ execution model
def test_every_thread_of_a_3d_grid_runs_once_with_its_indices():
    code = r'''
    extern "C" __global__ void ids(int* out) {
        const int block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
        const int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
        const int flat = block * (blockDim.x * blockDim.y * blockDim.z) + thread;
        out[4 * flat + 0] += 1;  // each thread its own element: written exactly once
        out[4 * flat + 1] = blockIdx.x * 100 + blockIdx.y * 10 + blockIdx.z;
        out[4 * flat + 2] = threadIdx.x * 100 + threadIdx.y * 10 + threadIdx.z;
        out[4 * flat + 3] = gridDim.x * 1000 + blockDim.x * 100 + blockDim.y * 10 + blockDim.z;
    }'''
    grid, block = (3, 2, 2), (4, 3, 2)
    out = np.zeros((2, 2, 3, 2, 3, 4, 4), np.int32)  # (bz, by, bx, tz, ty, tx, field)
    kernel(code, "ids")(grid, block, (out,))
    bz, by, bx, tz, ty, tx = np.meshgrid(*map(np.arange, out.shape[:6]), indexing="ij")
    np.testing.assert_array_equal(out[..., 0], 1)
    np.testing.assert_array_equal(out[..., 1], bx * 100 + by * 10 + bz)
    np.testing.assert_array_equal(out[..., 2], tx * 100 + ty * 10 + tz)
    np.testing.assert_array_equal(out[..., 3], 3 * 1000 + 4 * 100 + 3 * 10 + 2)


REVERSE = r'''
#define BLOCK 64
extern "C" __global__ void reverse(const float* x, float* y) {
    __shared__ float tile[BLOCK];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    tile[t] = x[base + t];
    __syncthreads();
    y[base + t] = tile[blockDim.x - 1 - t];
}
'''


def test_syncthreads_orders_shared_memory_between_threads():
    x = np.arange(3 * 64, dtype=f32)
    y = np.full_like(x, np.nan)
    kernel(REVERSE, "reverse")((3,), (64,), (x, y))
    np.testing.assert_array_equal(y, x.reshape(3, 64)[:, ::-1].ravel())


def test_without_the_barrier_threads_read_shared_memory_too_early():
    """Thread 0 reads tile[63] before thread 63 has written it: an error, not a stale value."""
    x = np.arange(3 * 64, dtype=f32) + 1
    y = np.full_like(x, np.nan)
    with pytest.raises(RuntimeError, match=r"reverse_racy: uninitialised shared memory: thread 0 of block 0 "
                                           r"reads tile\[63\]"):
        kernel(REVERSE.replace("__syncthreads();", "").replace("reverse", "reverse_racy"), "reverse_racy")(
            (3,), (64,), (x, y))


def test_barrier_divergence_is_an_error():
    code = r'''
    extern "C" __global__ void diverge(float* y) {
        if (threadIdx.x < 16) return;
        __syncthreads();
        y[threadIdx.x] = 1.0f;
    }'''
    with pytest.raises(RuntimeError, match="barrier divergence"):
        kernel(code, "diverge")((1,), (32,), (np.zeros(32, f32),))


def test_half_arithmetic_rounds_after_every_operation():
    code = r'''
    extern "C" __global__ void half_ops(const __half* a, const __half* b, __half* out, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        const __half s = a[i] + b[i];
        out[4 * i + 0] = s;
        out[4 * i + 1] = s * a[i];           // rounds s first, then the product
        out[4 * i + 2] = (a[i] - b[i]) / b[i];
        out[4 * i + 3] = __float2half(__half2float(a[i]) * 3.0f + 1e-4f);
    }'''
    rng = np.random.default_rng(0)
    a = rng.uniform(-8, 8, 200).astype(np.float16)
    b = rng.uniform(0.5, 4, 200).astype(np.float16)
    out = np.full((200, 4), np.nan, np.float16)
    kernel(code, "half_ops")((2,), (128,), (a, b, out, i32(200)))
    s = a + b  # NumPy's float16 operations also round to half after each one
    np.testing.assert_array_equal(out[:, 0], s)
    np.testing.assert_array_equal(out[:, 1], s * a)
    np.testing.assert_array_equal(out[:, 2], (a - b) / b)
    np.testing.assert_array_equal(out[:, 3], (a.astype(f32) * f32(3) + f32(1e-4)).astype(np.float16))
    # rounding once at the end instead differs somewhere: the test can tell the two apart
    assert not np.array_equal(out[:, 1], ((a.astype(f32) + b.astype(f32)) * a.astype(f32)).astype(np.float16))


def test_float_to_half_rounds_to_nearest_even():
    code = r'''
    extern "C" __global__ void to_half(const float* x, __half* y, int n) {
        int i = threadIdx.x;
        if (i < n) y[i] = __float2half(x[i]);
    }'''
    x = np.array([1 + 2**-11, 1 + 3 * 2**-11, 65520.0, 65519.0, 2**-25, 2**-24 * 1.5, -0.0], f32)
    y = np.full(x.shape, np.nan, np.float16)
    kernel(code, "to_half")((1,), (32,), (x, y, i32(x.size)))
    with np.errstate(over="ignore"):  # 65520 rounds to inf, on purpose
        expected = x.astype(np.float16)
    np.testing.assert_array_equal(y.view(np.uint16), expected.view(np.uint16))
    assert y[0] == 1 and y[1] == 1 + 2**-9 and np.isinf(y[2]) and y[3] == 65504


def test_float_denormals_are_flushed_like_ftz():
    x = np.array([2e-38, 1e-39, 3.0], f32)  # 2e-38 is normal, half of it and 1e-39 are denormal
    y = np.full_like(x, np.nan)
    kernel(SCALE, "scale")((1,), (32,), (x, y, f32(0.5), i32(3)))
    np.testing.assert_array_equal(y, [0.0, 0.0, 1.5])
    assert x[0] * f32(0.5) > 0, "the flush must not leak into NumPy after the launch"


def test_denormals_are_flushed_inside_fibers_too():
    """Fibers start through setcontext, which restores the floating-point control word it was created with."""
    code = r'''
    extern "C" __global__ void halve_after_barrier(const float* x, float* y) {
        __shared__ float tile[32];
        tile[threadIdx.x] = x[threadIdx.x];
        __syncthreads();
        y[threadIdx.x] = tile[threadIdx.x] * 0.5f;
    }'''
    x = np.full(32, 2e-38, f32)
    y = np.full_like(x, np.nan)
    kernel(code, "halve_after_barrier")((2,), (32,), (x, y))
    np.testing.assert_array_equal(y, 0)


# ------------------------------------------------------------------------------ argument checks
def test_scalars_need_their_exact_c_type():
    x, y = np.ones(4, f32), np.zeros(4, f32)
    scale = kernel(SCALE, "scale")
    with pytest.raises(TypeError, match=r"factor is a C float, so pass np.float32\(value\); got float 2.0"):
        scale((1,), (32,), (x, y, 2.0, i32(4)))
    with pytest.raises(TypeError, match=r"n is a C int, so pass np.int32"):
        scale((1,), (32,), (x, y, f32(2), 4))
    with pytest.raises(TypeError, match="np.float64"):
        scale((1,), (32,), (x, y, np.float64(2), i32(4)))
    scale((1,), (32,), (x, y, f32(2), i32(4)))
    np.testing.assert_array_equal(y, 2)


def test_arrays_need_the_signature_dtype_and_contiguity():
    scale = kernel(SCALE, "scale")
    with pytest.raises(TypeError, match=r"x \(const float\* x\) needs dtype float32, got float64"):
        scale((1,), (32,), (np.ones(4), np.zeros(4, f32), f32(1), i32(4)))
    with pytest.raises(ValueError, match="not C-contiguous"):
        scale((1,), (32,), (np.ones(8, f32)[::2], np.zeros(4, f32), f32(1), i32(4)))
    with pytest.raises(TypeError, match="must be a NumPy array"):
        scale((1,), (32,), ([1.0] * 4, np.zeros(4, f32), f32(1), i32(4)))
    shared = np.ones(4, f32)
    with pytest.raises(ValueError, match="share memory"):
        scale((1,), (32,), (shared, shared, f32(1), i32(4)))
    with pytest.raises(TypeError, match="takes 4 arguments"):
        scale((1,), (32,), (shared, np.zeros(4, f32), f32(1)))


def test_launch_configuration_is_checked():
    scale = kernel(SCALE, "scale")
    args = (np.ones(4, f32), np.zeros(4, f32), f32(1), i32(4))
    with pytest.raises(ValueError, match="at most 1024"):
        scale((1,), (2048,), args)
    with pytest.raises(ValueError, match="exceeds the limits"):
        scale((1, 70000), (32,), args)
    with pytest.raises(ValueError, match="dynamic shared memory"):
        scale((1,), (32,), args, shared_mem=256)
    bounded = SCALE.replace("__global__ void scale", "__global__ void __launch_bounds__(64) bounded")
    with pytest.raises(ValueError, match="at most 64"):
        kernel(bounded, "bounded")((1,), (128,), args)


# ------------------------------------------------------------------------------ memory checks
OFF_BY_ONE = r'''
extern "C" __global__ void shifted(const float* x, float* y, int n, int shift) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i + shift] = x[i];
}
extern "C" __global__ void scales_one_too_many(const float* x, float* y, float f, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) y[i] = f * x[i];
}
extern "C" __global__ void reads_past(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i + 1];
}
'''


@pytest.mark.parametrize("shift, where", [(1, "past its end"), (-1, "before its start")])
def test_out_of_bounds_writes_are_caught(shift, where):
    x, y = np.ones(10, f32), np.zeros(10, f32)
    with pytest.raises(RuntimeError, match=f"out-of-bounds write to argument y .*{where}"):
        kernel(OFF_BY_ONE, "shifted")((1,), (32,), (x, y, i32(10), i32(shift)))
    np.testing.assert_array_equal(y, 0)  # a failed launch does not copy its results back


def test_a_write_of_poison_copied_from_another_guard_is_caught():
    """x[n] is x's guard (NaN bits 0xFFFFFFFF) and f * NaN keeps those bits: y's guard must differ."""
    x, y = np.ones(64, f32), np.zeros(64, f32)
    with pytest.raises(RuntimeError, match="out-of-bounds write to argument y .*past its end"):
        kernel(OFF_BY_ONE, "scales_one_too_many")((2,), (64,), (x, y, f32(2.0), i32(64)))


def test_out_of_bounds_reads_see_nan():
    x, y = np.arange(10, dtype=f32), np.zeros(10, f32)
    kernel(OFF_BY_ONE, "reads_past")((1,), (32,), (x, y, i32(10)))
    np.testing.assert_array_equal(y[:9], x[1:])
    assert np.isnan(y[9])


SUMS = r'''
extern "C" __global__ void plain_sum(const float* x, float* total, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) *total += x[i];
}
extern "C" __global__ void atomic_sum(const float* x, float* total, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(total, x[i]);
}
extern "C" __global__ void flag_any_negative(const float* x, int* flag, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && x[i] < 0) *flag = 1;
}
'''


def test_a_plain_add_from_many_threads_is_a_data_race():
    x = np.arange(1, 65, dtype=f32)
    with pytest.raises(RuntimeError, match=r"data race: byte \d+ of writable argument #0 .* thread 0 and "
                                           "then by thread 1"):
        kernel(SUMS, "plain_sum")((2,), (32,), (x, np.zeros(1, f32), i32(64)))


def test_the_race_check_can_be_skipped_and_then_sees_nothing():
    x, total = np.arange(1, 65, dtype=f32), np.zeros(1, f32)
    kernel(SUMS, "plain_sum")((2,), (32,), (x, total, i32(64)), check_races=False)
    assert total[0] == x.sum()  # serial emulation hides the race: that is why the check exists


def test_atomics_and_identical_stores_are_not_races():
    x = np.arange(1, 65, dtype=f32) * np.where(np.arange(64) % 3, 1, -1).astype(f32)
    total, flag = np.zeros(1, f32), np.zeros(1, np.int32)
    kernel(SUMS, "atomic_sum")((2,), (32,), (x, total, i32(64)), check_races=True)
    kernel(SUMS, "flag_any_negative")((2,), (32,), (x, flag, i32(64)), check_races=True)
    assert total[0] == x.sum() and flag[0] == 1


# ------------------------------------------------------------------------------ parsing and caching
def test_parse_kernels_reads_signatures():
    code = '''// extern "C" __global__ void commented_out(int n)
    extern "C" __global__ void __launch_bounds__(128, 2)
    k(const __half* __restrict__ x, double *y, unsigned int n, long long m) {}'''
    (sig,) = emulator.parse_kernels(code)
    assert sig.name == "k" and sig.max_threads == 128
    assert [str(p) for p in sig.params] == ["const __half* x", "double* y", "unsigned int n", "long long m"]
    assert [p.dtype for p in sig.params] == [np.float16, np.float64, np.uint32, np.int64]
    with pytest.raises(ValueError, match="does not support"):
        emulator.parse_kernels('extern "C" __global__ void bad(char* c) {}')


def test_modules_are_cached_by_source_hash(monkeypatch):
    code = SCALE.replace("scale", "cached_scale")
    emulator.EmuModule(code, "cached.cu")
    libraries = set(nvrtc.cache_dir("emu").glob("*.so"))

    def no_compiler(*args, **kwargs):
        raise AssertionError("g++ ran although the library was cached")
    monkeypatch.setattr(subprocess, "run", no_compiler)
    x, y = np.ones(3, f32), np.zeros(3, f32)
    emulator.EmuModule(code, "cached.cu").get_function("cached_scale")((1,), (4,), (x, y, f32(3), i32(3)))
    np.testing.assert_array_equal(y, 3)
    assert set(nvrtc.cache_dir("emu").glob("*.so")) == libraries


def test_compile_errors_show_the_kernel_file_and_line():
    with pytest.raises(RuntimeError, match=r"broken.cu:3"):
        emulator.EmuModule('extern "C" __global__ void k(int* x) {\n\n  undefined_call(x);\n}', "broken.cu")


# ------------------------------------------------------------------------------ the engine on "emu"
HOT_STEPS = ("im2col", "col2im", "max_pool2d", "max_pool2d_backward", "batch_norm_statistics",
             "bce_with_logits", "bce_with_logits_backward", "roi_align", "roi_align_backward")


def training_step(device, dtype):
    """One SGD step of a small detector-like net: conv, batch norm, ReLU, max-pool, conv, RoIAlign,
    BCE with logits. Returns the loss, the gradients, and the parameters and buffers after the step."""
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 4, 3, padding=1)).to(device=device, dtype=dtype)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((2, 3, 12, 12)), dtype=dtype, device=device)
    boxes = tg.Tensor([[0, 1.0, 2.0, 9.5, 10.0], [1, 0.0, 0.0, 12.0, 12.0], [1, 3.3, 1.2, 7.7, 8.8]],
                      dtype=dtype, device=device)
    target = tg.Tensor(rng.random((3, 4)) > 0.5, dtype=dtype, device=device)
    features = model(x)  # (2, 4, 6, 6)
    pooled = F.roi_align(features, boxes, 2, spatial_scale=0.5, sampling_ratio=2, aligned=True)
    loss = F.binary_cross_entropy_with_logits(pooled.mean((2, 3)), target)
    optimizer.zero_grad()
    loss.backward()
    grads = [p.grad.numpy() for p in model.parameters()]
    optimizer.step()
    state = [t.numpy() for t in model.parameters()] + [t.numpy() for _, t in model.named_buffers()]
    return loss.item(), grads, state


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the calls of each launcher that the ops dispatch to."""
    calls = dict.fromkeys(HOT_STEPS, 0)
    for name in HOT_STEPS:
        def counted(*args, _launch=getattr(launch, name), _name=name, **kwargs):
            calls[_name] += 1
            return _launch(*args, **kwargs)
        monkeypatch.setattr(launch, name, counted)
    return calls


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-4), (np.float64, 1e-10)])
def test_a_training_step_on_emu_matches_cpu(dtype, tol, kernel_calls):
    cpu = training_step("cpu", dtype)
    assert set(kernel_calls.values()) == {0}, "the cpu device must not launch CUDA kernels"
    emu = training_step("emu", dtype)
    assert all(kernel_calls.values()), f"some hot steps did not run their CUDA kernel on emu: {kernel_calls}"
    assert emu[0] == pytest.approx(cpu[0], rel=tol)
    for got, expected in zip(emu[1] + emu[2], cpu[1] + cpu[2]):
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
