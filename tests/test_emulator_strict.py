"""The emulator's strict checks (issue 19.4): shared memory, barriers and denormals as on a GPU.

- ``__shared__`` memory is fresh in every block (0xFF bytes), never what an earlier block or launch
  left; reading an element no thread of the block has written is an error;
- a shared element written by two threads, or written by one and read by another, with no
  ``__syncthreads()`` between them is a race (the fibers of a block run one after another between
  barriers, so the emulator sees every order the GPU does not promise);
- a ``__syncthreads()`` that only some threads of a block reach is an error;
- -ftz=true (which CuPy passes to NVRTC) flushes fp32 denormals only: fp64 and fp16 keep theirs.

The last part seeds the bugs of the issue into ``batchnorm.cu``'s reduction and shows each is caught.
"""
import numpy as np
import pytest

from tinygrad_cv.backend import emulator, launch, nvrtc

f32, f64, i32 = np.float32, np.float64, np.int32


# Every kernel of these tests, in one source: one g++ compile for the file, not one per test.
STRICT = r'''
extern "C" __global__ void first_block_fills(const float* x, float* y) {
    __shared__ float tile[32];
    if (blockIdx.x == 0) tile[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    y[blockIdx.x * blockDim.x + threadIdx.x] = tile[threadIdx.x];
}

extern "C" __global__ void fill_or_read(float* y, int fill) {
    __shared__ float tile[8];
    if (fill) tile[threadIdx.x] = 1.0f;
    __syncthreads();
    y[threadIdx.x] = tile[threadIdx.x];
}

extern "C" __global__ void rotate(const int* x, int* y) {
    __shared__ int tile[16];
    const int t = threadIdx.x;
    tile[t] = x[blockIdx.x * 16 + t] * 2;
    __syncthreads();
    y[blockIdx.x * 16 + t] = tile[(t + 1) % 16];
}

extern "C" __global__ void overrun(float* y) {
    __shared__ float tile[16];
    tile[threadIdx.x] = 1.0f;
    __syncthreads();
    y[threadIdx.x] = tile[threadIdx.x];
}

extern "C" __global__ void last_wins(float* y) {
    __shared__ float slot[1];
    slot[0] = threadIdx.x;
    __syncthreads();
    y[threadIdx.x] = slot[0];
}

extern "C" __global__ void read_left(const float* x, float* y) {
    __shared__ float tile[8];
    const int t = threadIdx.x;
    tile[t] = x[t];
    y[t] = tile[t > 0 ? t - 1 : 0];  // missing __syncthreads() before this read
}

extern "C" __global__ void shift(const float* x, float* y) {
    __shared__ float tile[8];
    const int t = threadIdx.x;
    tile[t] = x[t];
    __syncthreads();
    const float right = tile[(t + 1) % 8];
    tile[t] = right;  // thread 1 overwrites tile[1], which thread 0 has read: a race
    __syncthreads();
    y[t] = tile[t];
}

extern "C" __global__ void accumulate(float* y) {
    __shared__ float acc[8];
    const int t = threadIdx.x;
    acc[t] = 0;
    for (int i = 0; i < 4; ++i) acc[t] += i;
    acc[t] *= 2;
    y[t] = acc[t];
}

extern "C" __global__ void split_barrier(float* y) {
    __shared__ float tile[32];
    tile[threadIdx.x] = threadIdx.x;
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    y[threadIdx.x] = tile[31 - threadIdx.x];
}

extern "C" __global__ void some_wait(float* y) {
    if (threadIdx.x % 2 == 0) __syncthreads();
    y[threadIdx.x] = 1.0f;
}

extern "C" __global__ void rounds(float* y) {
    __shared__ float tile[8];
    const int t = threadIdx.x;
    tile[t] = t;
    for (int round = 0; round < 3; ++round) {
        __syncthreads();
        const float v = tile[(t + 1) % 8];
        __syncthreads();
        tile[t] = v;
    }
    __syncthreads();
    y[t] = tile[t];
}

extern "C" __global__ void halve64(const double* x, double* y) { y[threadIdx.x] = x[threadIdx.x] * 0.5; }

extern "C" __global__ void shift_fixed(const float* x, float* y) {
    __shared__ float tile[8];
    const int t = threadIdx.x;
    tile[t] = x[t];
    __syncthreads();
    const float right = tile[(t + 1) % 8];
    __syncthreads();
    tile[t] = right;  // every thread has read its right neighbour before anyone overwrites it
    __syncthreads();
    y[t] = tile[t];
}
'''


def kernel(name):
    return emulator.load(STRICT, "strict.cu").get_function(name)


def line_of(text, after):
    """The line number in STRICT of the first ``text`` after the line holding ``after``."""
    lines = STRICT.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i in range(start, len(lines)) if text in lines[i]) + 1


def run_expecting(name, grid, block, args, message):
    with pytest.raises(RuntimeError, match=message):
        kernel(name)(grid, block, args)


# ------------------------------------------------------------------------------ shared memory per block


def test_shared_memory_is_fresh_in_every_block():
    """Block 1 reads the tile block 0 filled: on a GPU it is another block's memory (garbage)."""
    x, y = np.arange(32, dtype=f32), np.zeros(64, f32)
    kernel("first_block_fills")((1,), (32,), (x, y[:32]))  # one block: correct
    np.testing.assert_array_equal(y[:32], x)
    run_expecting("first_block_fills", (2,), (32,), (x, y),
                  r"uninitialised shared memory: thread 0 of block 1 reads tile\[0\]")


def test_shared_memory_is_fresh_in_every_launch():
    """The second launch's only block reads what the first launch wrote: stale, so an error."""
    y = np.zeros(8, f32)
    kernel("fill_or_read")((1,), (8,), (y, i32(1)))
    np.testing.assert_array_equal(y, 1)
    run_expecting("fill_or_read", (1,), (8,), (y, i32(0)), r"uninitialised shared memory")


def test_shared_memory_within_a_block_is_shared_by_its_threads():
    """Each thread writes its element, the barrier opens, each reads its neighbour's: no error."""
    x, y = np.arange(48, dtype=i32), np.zeros(48, i32)
    kernel("rotate")((3,), (16,), (x, y))
    np.testing.assert_array_equal(y, np.roll(x.reshape(3, 16) * 2, -1, axis=1).ravel())


def test_an_out_of_bounds_shared_index_is_an_error():
    kernel("overrun")((1,), (16,), (np.zeros(16, f32),))
    run_expecting("overrun", (1,), (17,), (np.zeros(17, f32),),
                  r"out-of-bounds shared memory: thread 16 of block 0 indexes tile\[16\], which has 16 elements")


def test_only_one_dimensional_shared_arrays_are_supported():
    code = 'extern "C" __global__ void tiled(float* y) { __shared__ float tile[4][4]; y[0] = 0; }'
    with pytest.raises(ValueError, match=r"tiled.cu: only one-dimensional static shared arrays"):
        emulator.EmuModule(code, "tiled.cu")


# ------------------------------------------------------------------------------ races on shared memory
def test_two_threads_writing_one_shared_element_between_barriers_race():
    run_expecting("last_wins", (1,), (4,), (np.zeros(4, f32),),
                  r"shared-memory race: threads 0 and 1 of block 0 both write slot\[0\]")


def test_a_read_of_an_element_another_thread_wrote_since_the_barrier_races():
    run_expecting("read_left", (1,), (8,), (np.ones(8, f32), np.zeros(8, f32)),
                  r"shared-memory race: thread 1 of block 0 reads tile\[0\], which thread 0 wrote")


def test_a_write_of_an_element_another_thread_read_since_the_barrier_races():
    """A shift in place needs a second barrier between the reads and the writes."""
    x, y = np.arange(8, dtype=f32), np.zeros(8, f32)
    kernel("shift_fixed")((1,), (8,), (x, y))
    np.testing.assert_array_equal(y, np.roll(x, -1))
    run_expecting("shift", (1,), (8,), (x, y),
                  r"shared-memory race: thread 1 of block 0 writes tile\[1\], which thread 0 read")


def test_a_thread_may_reread_and_rewrite_its_own_element():
    y = np.zeros(8, f32)
    kernel("accumulate")((2,), (8,), (y,))
    np.testing.assert_array_equal(y, 12)


# ------------------------------------------------------------------------------ barriers
def test_a_barrier_in_a_divergent_branch_is_an_error():
    first = line_of("__syncthreads();", after="void split_barrier")
    second = line_of("__syncthreads();", after="} else {")
    assert second == first + 2
    run_expecting("split_barrier", (1,), (32,), (np.zeros(32, f32),),
                  rf"barrier divergence: in block 0, thread 0 waits at the __syncthreads\(\) of line {first} "
                  rf"and thread 16 at the one of line {second}")


def test_a_barrier_some_threads_skip_is_an_error():
    run_expecting("some_wait", (1,), (8,), (np.zeros(8, f32),), r"barrier divergence: some threads")


def test_a_barrier_in_a_loop_every_thread_runs_alike_is_fine():
    y = np.zeros(8, f32)
    kernel("rounds")((2,), (8,), (y,))
    np.testing.assert_array_equal(y, (np.arange(8) + 3) % 8)


# ------------------------------------------------------------------------------ denormals
def test_the_gpu_build_flushes_fp32_denormals():
    """What the emulator models: the compile checks pass -ftz=true, as CuPy's RawModule does."""
    assert nvrtc.FTZ_OPTION == "-ftz=true"
    assert nvrtc.FTZ_OPTION in nvrtc.nvrtc_options("80")


def test_fp32_denormals_are_flushed_fp64_and_fp16_ones_kept():
    tiny = {np.float32: 1e-40, np.float64: 1e-310, np.float16: 2**-20}  # each a denormal of its type
    for dtype, value in tiny.items():
        assert 0 < value < np.finfo(dtype).tiny
        x = np.array([[value, 2 * value]], dtype)
        y = launch.bias_relu(x.reshape(1, 2, 1), np.zeros(2, dtype)).ravel()
        expected = [0, 0] if dtype == np.float32 else x.ravel()
        np.testing.assert_array_equal(y, np.asarray(expected, dtype))


def test_double_arithmetic_produces_denormals():
    x = np.array([4e-308, 3.0], f64)
    y = np.zeros(2, f64)
    kernel("halve64")((1,), (2,), (x, y))
    assert y[0] == x[0] * 0.5 > 0 and y[1] == 1.5  # 2e-308 is below the smallest normal 2.2e-308


def test_a_kernel_mixing_float_and_double_is_refused():
    code = 'extern "C" __global__ void mixed(const float* x, double* y) { y[0] = x[0]; }'
    with pytest.raises(ValueError, match="emulator: kernel mixed takes both double and float"):
        emulator.EmuModule(code, "mixed.cu")


# ------------------------------------------------------------------------------ seeded bugs in batchnorm.cu
def check_batch_norm_statistics(block=256):
    rng = np.random.default_rng(0)
    x = (5 + rng.standard_normal((4, 3, 6, 5))).astype(f32)
    mean, var = launch.batch_norm_statistics(x, block=block)
    np.testing.assert_allclose(mean, x.astype(f64).mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(var, x.astype(f64).var(axis=(0, 2, 3)), rtol=1e-4)


REDUCTION = '''        if (tid < half) {
            partial_sum[tid] += partial_sum[tid + half];
            partial_sumsq[tid] += partial_sumsq[tid + half];
        }
        __syncthreads();'''
SEEDED_BUGS = {
    # (original text, buggy text, occurrence to replace (1-based), the error)
    "no-barrier-after-the-stores": ("__syncthreads();", "", 1, r"uninitialised shared memory: thread 0 of block "
                                    r"0 reads partial_sum\[128\]"),
    # thread 0 runs every round at once, reading partial_sum[1] before thread 1 adds into it
    "no-barrier-in-the-loop": ("__syncthreads();", "", 2, r"shared-memory race: thread 1 of block 0 writes "
                               r"partial_sum\[1\], which thread 0 read"),
    # thread 128 reads past the block's 256 partial sums (and would overwrite one thread 0 has read)
    "no-tid-guard": ("if (tid < half) {", "{", 1, r"uninitialised shared memory: thread 128 of block 0 reads "
                     r"partial_sum\[256\]"),
    "read-before-write": ("partial_sum[tid] = s;", "partial_sum[tid] += s;", 1,
                          r"uninitialised shared memory: thread 0 of block 0 reads partial_sum\[0\]"),
    "barrier-in-the-branch": (REDUCTION, REDUCTION.replace("        }\n        __syncthreads();",
                                                           "            __syncthreads();\n        }"), 1,
                              r"barrier divergence: some threads of a block returned"),
    "barrier-in-both-branches": (REDUCTION, REDUCTION.replace("        }\n        __syncthreads();",
                                                              "            __syncthreads();\n        } else {\n"
                                                              "            __syncthreads();\n        }"), 1,
                                 r"barrier divergence: in block 0, thread 0 waits at the __syncthreads\(\) of "
                                 r"line \d+ and thread 128 at the one of line \d+"),
}


def replace_occurrence(text, old, new, occurrence):
    parts = text.split(old)
    assert len(parts) > occurrence, f"batchnorm.cu has fewer than {occurrence} copies of {old!r}"
    return old.join(parts[:occurrence]) + new + old.join(parts[occurrence:])


@pytest.mark.parametrize("bug", SEEDED_BUGS)
def test_seeded_batchnorm_bug_is_caught(bug, monkeypatch):
    original, buggy_text, occurrence, message = SEEDED_BUGS[bug]
    source = nvrtc.read_kernel("batchnorm")
    check_batch_norm_statistics()  # the real kernel passes
    buggy = emulator.EmuModule(replace_occurrence(source, original, buggy_text, occurrence),
                               f"batchnorm_{bug.replace('-', '_')}.cu")
    monkeypatch.setattr(launch, "_module", lambda f, device: buggy)
    with pytest.raises(RuntimeError, match=message):
        check_batch_norm_statistics()
