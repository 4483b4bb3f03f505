# %% [markdown]
# # Lesson 10: GPU kernels
#
# A GPU runs one small function, the kernel, on tens of thousands of threads at once. Most of the
# engine's ops need no kernel of their own: they are NumPy code that CuPy runs on the GPU unchanged. The
# hot ones do: im2col (a convolution's data movement) and RoIAlign (Mask R-CNN's resampling of boxes)
# are written in CUDA C++, in tinygrad_cv/backend/kernels/*.cu. This lesson reads them, runs them, and
# asks how fast they could be:
#
#   1. threads, blocks and the grid, with a kernel written here and run on the emulator;
#   2. im2col as a kernel: one thread per output pixel, a grid-stride loop, the batch on the grid's y;
#   3. RoIAlign as a kernel: one thread per output bin; its backward needs atomicAdd;
#   4. the emulator ("emu" device): the same .cu text compiled by g++ for the CPU, with the checks a
#      GPU does not make (scalar types, launch bounds, out-of-bounds writes, data races, shared memory
#      read before it is written, barriers not every thread reaches);
#   5. CPU against GPU timings when a GPU is present, and the roofline: the fastest an H100 could run
#      each kernel, from its FLOPs and the bytes it must move.
#
#     python lessons/10_gpu_kernels.py [--quick] [--out DIR]

# %%
import inspect
import math
import time
from dataclasses import dataclass

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv.backend import emulator, launch, nvrtc
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 10: GPU kernels", "10_gpu_kernels", full_minutes=0.2)
plt = pyplot()
rng = np.random.default_rng(0)


def show_source(file, start, end="}"):
    """Print the lines of kernels/<file>.cu from the one containing ``start`` to the next line that is
    exactly ``end``, numbered as in the file."""
    lines = nvrtc.read_kernel(file).splitlines()
    first = next(i for i, line in enumerate(lines) if start in line)
    last = next(i for i in range(first, len(lines)) if lines[i] == end)
    print(f"\n----- kernels/{file}.cu, lines {first + 1}-{last + 1}")
    for number in range(first, last + 1):
        print(f"{number + 1:4d} | {lines[number]}")
    print("-----")

# %% [markdown]
# ## 1. Threads, blocks, grid
#
# A launch kernel<<<grid, block>>> starts grid x block threads. Threads come in blocks (up to 1024
# threads, which share fast memory and can wait for each other); blocks form the grid. Each thread
# finds its work from its coordinates: threadIdx (inside the block), blockIdx (of the block) and
# blockDim / gridDim (the sizes). Our kernels share two helpers, in kernels/common.h:
#
#     first_index() = blockIdx.x * blockDim.x + threadIdx.x     this thread's number in the grid
#     grid_stride() = blockDim.x * gridDim.x                    how many threads there are
#
# Both are computed as long long (64 bits), and so are the kernels' loop indices and element counts:
# a GPU holds tensors of more than 2^31 - 1 elements, where a 32-bit int wraps to a negative number.
#
# A grid-stride loop `for (i = first_index(); i < n; i += grid_stride())` lets any number of threads
# cover any n: thread t takes elements t, t + T, t + 2T, ... (T threads in all). The launchers cap the
# grid (at most 4096 blocks) and the loop does the rest. Neighbouring threads take neighbouring
# elements, so a group of 32 threads (a warp, which executes together) reads 32 consecutive values
# in one memory transaction: "coalesced" access.
#
# The kernels below are ours, for this lesson. The emulator compiles CUDA source for the CPU, just as
# cupy.RawModule compiles it for a GPU, and runs every thread of the grid.

# %%
LESSON_KERNELS = r"""
#include "common.h"

// Records which thread (and block) handled each element of a grid-stride loop.
extern "C" __global__ void who_works(int* thread_of, int* block_of, int n) {
    for (int i = first_index(); i < n; i += grid_stride()) {
        thread_of[i] = first_index();
        block_of[i] = blockIdx.x;
    }
}

// Sums x into total[0]. Wrong on a GPU: `+=` is load, add, store, and two threads that load the same
// old total both store their own sum: one of the two additions is lost.
extern "C" __global__ void sum_racy(const float* x, float* total, int n) {
    for (int i = first_index(); i < n; i += grid_stride()) total[0] += x[i];
}

// The same sum with atomicAdd: the hardware does load-add-store as one indivisible step.
extern "C" __global__ void sum_atomic(const float* x, float* total, int n) {
    for (int i = first_index(); i < n; i += grid_stride()) atomicAdd(total, x[i]);
}

// y[i] = i * step, with an off-by-one bug: `<=` writes y[n], one element past the end.
extern "C" __global__ void ramp_off_by_one(float* y, float step, int n) {
    for (int i = first_index(); i <= n; i += grid_stride()) y[i] = i * step;
}

// Reverses each block's values through shared memory, but without the __syncthreads() that must sit
// between the writes and the reads: thread 0 reads tile[7] before thread 7 has written it.
extern "C" __global__ void reverse_no_barrier(const float* x, float* y) {
    __shared__ float tile[8];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    tile[t] = x[base + t];
    y[base + t] = tile[blockDim.x - 1 - t];
}
"""
lesson_module = emulator.load(LESSON_KERNELS, "lesson10.cu")
n, grid, block = 40, 3, 4
thread_of, block_of = np.zeros(n, np.int32), np.zeros(n, np.int32)
lesson_module.get_function("who_works")((grid,), (block,), (thread_of, block_of, np.int32(n)))
print(f"who_works with {grid} blocks of {block} threads over {n} elements:\n  thread of each element: "
      f"{thread_of.tolist()}")
assert (thread_of == np.arange(n) % (grid * block)).all()   # element i goes to thread i mod T

fig, ax = plt.subplots(figsize=(11, 1.8))
ax.imshow(thread_of[None], cmap="tab20", aspect="auto", vmin=0, vmax=19)
for i in range(n):
    ax.text(i, -0.15, str(thread_of[i]), ha="center", va="center", fontsize=8)
    ax.text(i, 0.25, f"b{block_of[i]}", ha="center", va="center", fontsize=7)
ax.set_yticks([])
ax.set_xlabel("element index i (label: global thread number, and its block b)")
ax.set_title(f"grid-stride loop: {grid} blocks x {block} threads = {grid * block} threads cover {n} elements")
save_lesson_figure(fig, args.out, "grid_stride_loop.png")

# %% [markdown]
# ## 2. im2col as a kernel
#
# A convolution is one matrix product once every KH x KW window of the input has been copied into a
# column: cols (C*KH*KW, HO*WO) per image, and out = weight (O, C*KH*KW) @ cols. im2col is that copy.
# In the kernel, one thread handles one output position (c, oh, ow) and writes its KH*KW window down
# the column: consecutive threads take consecutive ow, so their writes (cols[.., ow + 1]) and, with
# stride 1, their reads (x[.., h, w + 1]) are neighbours: coalesced. Positions outside the image (the
# padding) get 0, so no padded copy of x is ever made. The batch is the grid's second dimension: image
# n = blockIdx.y.

# %%
show_source("im2col", "// One thread per (c, oh, ow)")

# The launcher (Python) allocates the output and picks the launch configuration from the shapes. Every
# scalar goes in with the exact C type of the kernel's parameter (np.int32 for an int, np.int64 for a
# long long), because CuPy passes a Python int as a 64-bit integer and an int parameter would read
# garbage.
print(inspect.getsource(launch.im2col))

# Running it on NumPy arrays runs it on the emulator. The reference is written differently on purpose:
# pad, then a Python loop over the kernel offsets (i, j), each a strided slice of the padded image.
x = rng.standard_normal((2, 3, 7, 9)).astype(np.float32)
kernel, stride, padding = 3, 2, 1
cols = launch.im2col(x, kernel, stride, padding)
padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
ho, wo = (7 + 2 * padding - kernel) // stride + 1, (9 + 2 * padding - kernel) // stride + 1
reference = np.stack([padded[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
                      for i in range(kernel) for j in range(kernel)], axis=2)   # (N, C, KH*KW, HO, WO)
assert np.array_equal(cols, reference.reshape(2, 3 * kernel * kernel, ho * wo))
print(f"im2col kernel on the emulator: cols {cols.shape}, identical to the NumPy reference")

# The whole convolution on the device "emu" (im2col and col2im by the kernel, the GEMM by NumPy)
# against the device "cpu" (im2col as a strided view): forward and backward agree.
weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
upstream = rng.standard_normal((2, 4, ho, wo)).astype(np.float32)
results = {}
for device in ("cpu", "emu"):
    xt = tg.Tensor(x, device=device, requires_grad=True)
    wt = tg.Tensor(weight, device=device, requires_grad=True)
    out = F.conv2d(xt, wt, stride=stride, padding=padding)
    out.backward(upstream)
    results[device] = (out.numpy(), xt.grad.numpy(), wt.grad.numpy())
differences = [np.abs(a - b).max() for a, b in zip(results["cpu"], results["emu"])]
print("conv2d, emu against cpu: max |difference| of output, dx, dw =", ", ".join(f"{d:.1e}" for d in differences))
assert max(differences) < 1e-4

# %% [markdown]
# ## 3. RoIAlign as a kernel
#
# For each box and each of its PH x PW bins, RoIAlign averages a few bilinear samples of the feature
# map. One thread per output element (k, c, ph, pw): the thread works out where its bin's samples lie,
# reads the four neighbours of each sample and blends them. Threads of neighbouring pw read nearby
# pixels of the same channel plane.

# %%
show_source("roi_align", "// One thread per output element (k, c, ph, pw)")

# The backward pass runs the same loop and sends each share of the gradient to the four pixels the
# sample was read from. Bins overlap (a sample near a bin's edge, neighbouring boxes over one object),
# so two threads may add to the same pixel at the same moment: the adds must be atomicAdd, or some are
# lost (section 4 shows the emulator catching exactly that).
show_source("roi_align", "// One thread per element of gy")

features = rng.standard_normal((2, 4, 12, 16)).astype(np.float32)
corners = np.sort(rng.uniform(0, 20, (6, 2, 2)), axis=1).reshape(6, 4)   # (x1, y1), (x2, y2): min, max
boxes = np.concatenate([rng.integers(0, 2, (6, 1)), corners], axis=1).astype(np.float32)
results = {}
for device in ("cpu", "emu"):
    ft = tg.Tensor(features, device=device, requires_grad=True)
    out = F.roi_align(ft, tg.Tensor(boxes, device=device), 3, spatial_scale=0.75, sampling_ratio=2, aligned=True)
    out.backward(np.linspace(-1, 1, out.numel()).reshape(out.shape).astype(np.float32))
    results[device] = (out.numpy(), ft.grad.numpy())
differences = [np.abs(a - b).max() for a, b in zip(results["cpu"], results["emu"])]
# The CPU path is a different algorithm: per box, two small interpolation matrices, out = A_y X A_x^T.
print(f"roi_align, emu kernel against the cpu matrix form: max |difference| forward {differences[0]:.1e}, "
      f"backward {differences[1]:.1e}")
assert max(differences) < 1e-4

# %% [markdown]
# ## 4. What the emulator catches
#
# On a GPU these mistakes crash much later, or give slightly wrong numbers with no error at all. The
# emulator checks each launch and says what went wrong.

# %%
values = np.arange(64, dtype=np.float32)


def try_launch(what, kernel, grid, block, launch_args):
    try:
        kernel(grid, block, launch_args)
        print(f"{what}: no error")
    except (TypeError, ValueError, RuntimeError) as error:
        print(f"{what}:\n    {type(error).__name__}: {error}")


total = np.zeros(1, np.float32)
lesson_module.get_function("sum_atomic")((2,), (8,), (values, total, np.int32(64)))
print(f"sum with atomicAdd: {total[0]} (exact: {values.sum()})")
try_launch("sum with += (a data race)", lesson_module.get_function("sum_racy"), (2,), (8,),
           (values, np.zeros(1, np.float32), np.int32(64)))
try_launch("off-by-one loop bound (an out-of-bounds write)", lesson_module.get_function("ramp_off_by_one"),
           (2,), (8,), (np.zeros(64, np.float32), np.float32(0.5), np.int32(64)))
try_launch("a Python float for a C float", lesson_module.get_function("ramp_off_by_one"), (2,), (8,),
           (np.zeros(64, np.float32), 0.5, np.int32(63)))
# Shared memory starts undefined in every block (on the emulator: fresh in each block, and every read of
# an element no thread of the block has written is an error, as is a race between two barriers).
try_launch("a block reversal without its __syncthreads()", lesson_module.get_function("reverse_no_barrier"),
           (2,), (8,), (values[:16], np.zeros(16, np.float32)))

# The real RoIAlign kernel, called by hand as the launcher would: its __launch_bounds__(256, 4) promises
# the compiler at most 256 threads per block (so it may give each thread 64 registers); a launch with
# 512 threads would be refused by the GPU. And a float64 array where the kernel reads float32.
roi_forward = emulator.load(nvrtc.read_kernel("roi_align"), "roi_align.cu").get_function("roi_align_forward_f32")
y = np.zeros((6, 4, 3, 3), np.float32)
sizes = [np.int32(v) for v in (4, 12, 16, 6, 3, 3)]                     # C, H, W, K, PH, PW
good_args = (features, boxes, y, *sizes, np.float32(0.75), np.int32(2), np.int32(1))
try_launch("roi_align_forward_f32 with 512 threads per block", roi_forward, (1,), (512,), good_args)
try_launch("roi_align_forward_f32 with float64 boxes", roi_forward, (1,), (256,),
           (features, boxes.astype(np.float64), *good_args[2:]))
try_launch("roi_align_forward_f32, correct launch", roi_forward, (1,), (256,), good_args)
assert np.allclose(y, results["cpu"][0], atol=1e-5)

# %% [markdown]
# ## 5. How fast? CPU against GPU, and the roofline
#
# Two limits bound any kernel: the arithmetic (FLOPs / peak FLOP/s) and the memory traffic (bytes /
# bandwidth). Its time is at least the larger of the two:   time >= max(FLOPs / peak, bytes / bandwidth).
# The ratio FLOPs / bytes is the arithmetic intensity. Below the "ridge" intensity (peak / bandwidth) a
# kernel is memory-bound: a faster ALU would not help. The bytes counted are the least a kernel must
# move: each input read once, each output written once. (A bound, not a prediction: real kernels reach
# perhaps 50-90% of it.)

# %%
H100 = {"bandwidth": 3.35e12, "fp32": 67e12, "fp16 tensor cores": 990e12}   # H100 SXM: B/s, FLOP/s
print(f"\nH100 SXM: {H100['bandwidth'] / 1e12:.2f} TB/s; {H100['fp32'] / 1e12:.0f} TFLOP/s fp32 (ridge at "
      f"{H100['fp32'] / H100['bandwidth']:.0f} FLOP/B), {H100['fp16 tensor cores'] / 1e12:.0f} TFLOP/s fp16 "
      f"on tensor cores (ridge at {H100['fp16 tensor cores'] / H100['bandwidth']:.0f} FLOP/B)")


@dataclass
class KernelCost:
    op: str            # the op and shape it serves
    kernel: str
    flops: float
    nbytes: float
    peak: str = "fp32"

    @property
    def intensity(self):
        return self.flops / self.nbytes

    @property
    def attainable(self):
        """The roofline: min(peak, intensity x bandwidth) FLOP/s."""
        return min(H100[self.peak], self.intensity * H100["bandwidth"])

    @property
    def h100_us(self):
        return max(self.flops / H100[self.peak], self.nbytes / H100["bandwidth"]) * 1e6

    @property
    def bound(self):
        return "compute" if self.flops / H100[self.peak] > self.nbytes / H100["bandwidth"] else "memory"


def conv_costs(n, c, h, w):
    """A 3x3, padding-1 convolution from c to c channels: im2col, then the GEMM on the columns (fp32 on the
    CUDA cores, or fp16 on the tensor cores); or cuDNN's implicit GEMM, which builds the columns in on-chip
    memory and never writes them to DRAM."""
    op = f"conv2d 3x3 {(n, c, h, w)}"
    x_size, cols_size, w_size, out_size = n * c * h * w, n * c * 9 * h * w, c * c * 9, n * c * h * w
    flops = 2 * c * cols_size                          # a multiply and an add per weight per column entry
    gemm_elements = w_size + cols_size + out_size
    return [KernelCost(op, "im2col", 0, 4 * (x_size + cols_size)),
            KernelCost(op, "GEMM on cols", flops, 4 * gemm_elements),
            KernelCost(op, "GEMM on cols, fp16", flops, 2 * gemm_elements, peak="fp16 tensor cores"),
            KernelCost(op, "implicit GEMM", flops, 4 * (x_size + w_size + out_size))]


def roi_costs(k, out=7, ratio=2):
    """RoIAlign on ``roi_features`` with k boxes: about 10 FLOPs per bilinear sample (its weights and three
    blends), ratio^2 samples per bin; the feature map (or its gradient) moved once, the bins once."""
    op = f"roi_align 7x7, {k} boxes"
    feature_size, bins = math.prod(roi_features), k * roi_features[1] * out * out
    nbytes = 4 * (feature_size + bins + 5 * k)
    return [KernelCost(op, "roi_align forward", 10 * ratio * ratio * bins, nbytes),
            KernelCost(op, "roi_align backward", 10 * ratio * ratio * bins, nbytes)]


def best_ms(fn, device, repeats):
    """Best of ``repeats`` wall times of ``fn`` in ms, after a warm-up call; waits for the GPU to finish (a
    launch returns before the kernel has run)."""
    def synchronize():
        if device == "cuda":
            import cupy
            cupy.cuda.Device().synchronize()
    fn()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def conv_forward_ms(shape, device, repeats):
    xt = tg.Tensor(rng.standard_normal(shape), dtype=tg.float32, device=device)
    wt = tg.Tensor(rng.standard_normal((shape[1], shape[1], 3, 3)) * 0.05, dtype=tg.float32, device=device)
    return best_ms(lambda: F.conv2d(xt, wt, padding=1), device, repeats)


def roi_forward_ms(k, device, repeats):
    n, _, h, w = roi_features
    corner = rng.uniform(0, 1, (k, 2, 2)) * [w * 16, h * 16]          # boxes in image pixels (stride 16)
    box_rows = np.concatenate([rng.integers(0, n, (k, 1)), corner.min(1), corner.max(1)], axis=1)
    ft = tg.Tensor(rng.standard_normal(roi_features), dtype=tg.float32, device=device)
    bt = tg.Tensor(box_rows, dtype=tg.float32, device=device)
    return best_ms(lambda: F.roi_align(ft, bt, 7, 1 / 16, 2, aligned=True), device, repeats)


# ResNet stages (3x3 convolutions keep the FLOPs constant: half the size, twice the channels) and a
# stride-16 feature level with a few numbers of boxes. --quick: small and timed once, just to run.
batch, repeats = (1, 1) if args.quick else (8, 3)
conv_shapes = [(batch, 64, 56, 56), (batch, 128, 28, 28), (batch, 256, 14, 14)]
roi_features = (2, 256, 50, 68)
roi_boxes = (64,) if args.quick else (128, 512, 2000)
devices = ["cpu", "cuda"] if tg.cuda_available() else ["cpu"]
if devices == ["cpu"]:
    print("no GPU here (tg.cuda_available() is False): CPU times only, against the H100 roofline bound")

costs, measured = [], {}   # measured: op -> {device: forward ms of the whole op}
for shape in conv_shapes:
    costs += conv_costs(*shape)
    measured[costs[-1].op] = {device: conv_forward_ms(shape, device, repeats) for device in devices}
for k in roi_boxes:
    costs += roi_costs(k)
    measured[costs[-1].op] = {device: roi_forward_ms(k, device, repeats) for device in devices}

print(f"\n{'op':34s} {'kernel':19s} {'GFLOP':>7s} {'MB':>8s} {'FLOP/B':>7s} {'H100 us':>8s}  bound")
for c in costs:
    print(f"{c.op:34s} {c.kernel:19s} {c.flops / 1e9:7.3f} {c.nbytes / 1e6:8.2f} {c.intensity:7.2f} "
          f"{c.h100_us:8.1f}  {c.bound}")

# The measured forward of each whole op against the H100 bound of the kernels it runs (im2col and the
# fp32 GEMM for conv2d; the forward kernel for roi_align).
print()
for op, times in measured.items():
    bound_ms = sum(c.h100_us for c in costs if c.op == op
                   and c.kernel in ("im2col", "GEMM on cols", "roi_align forward")) / 1e3
    print(f"{op:34s} H100 bound {bound_ms:6.3f} ms; measured "
          + ", ".join(f"{device} {ms:8.2f} ms ({ms / bound_ms:,.0f}x the bound)" for device, ms in times.items()))

# What the table says. im2col does no arithmetic: it only moves memory, and it writes 9 times its input
# (a 3x3 window per pixel). The GEMM must read those columns back, which keeps its intensity a little
# above the fp32 ridge, and far below the tensor cores' ridge: in fp16 on tensor cores, the GEMM on
# columns is memory-bound. The implicit GEMM moves a fraction of the bytes, so its intensity is several
# times higher. RoIAlign does a few FLOPs per byte: memory-bound at every box count.

# The roofline figure: the attainable FLOP/s, min(peak, intensity x bandwidth), is a slanted memory roof
# meeting a flat compute roof at the ridge; each kernel sits on the roof at its intensity.
fig, ax = plt.subplots(figsize=(8, 5))
intensity = np.logspace(-2, 3.5, 200)
for peak, style in (("fp32", "-"), ("fp16 tensor cores", "--")):
    ax.loglog(intensity, np.minimum(H100[peak], intensity * H100["bandwidth"]), style, color="black",
              label=f"H100 roof, {peak}")
markers = {"GEMM on cols": "o", "GEMM on cols, fp16": "D", "implicit GEMM": "s", "roi_align forward": "^",
           "roi_align backward": "v"}
for kernel, marker in markers.items():
    points = [(c.intensity, c.attainable) for c in costs if c.kernel == kernel]
    ax.loglog(*zip(*points), marker, ms=8, alpha=0.7, label=kernel)
ax.annotate("im2col: 0 FLOP/B\n(a pure copy: memory-bound)", xy=(1.2e-2, 1.5e11), fontsize=9)
ax.set(xlabel="arithmetic intensity (FLOP / byte)", ylabel="attainable FLOP/s", ylim=(1e10, 3e15),
       title="roofline of an H100 SXM, our kernels at their shapes")
ax.legend(fontsize="small", loc="lower right")
save_lesson_figure(fig, args.out, "roofline.png")


# %% [markdown]
# ## What to look at
#
# - `grid_stride_loop.png`: which thread handles which element, in a grid-stride loop.
# - `roofline.png`: each kernel under the memory roof or the compute roof, by its arithmetic intensity.
# - The printed emulator checks: the errors it catches before a GPU would.
#
# ## Exercises (change one line)
#
# 1. In the roofline section, add a box count to `roi_boxes`: one more RoIAlign size is measured.
# 2. Run on a machine with a CUDA GPU and CuPy: the timings then compare the CPU with the real device
#    instead of the roofline's predictions alone.
