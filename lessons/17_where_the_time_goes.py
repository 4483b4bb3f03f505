# %% [markdown]
# # Lesson 17: where the time goes
#
# A training step is a few dozen ops, each run forward and backward. How fast can each one be on this
# CPU? Two numbers of the machine bound every op:
#
# - the **peak** rate of floating-point work, which only a large matrix product comes near (it reuses
#   every number it loads many times), in GFLOP/s;
# - the **memory bandwidth**, in GB/s, which caps an op that touches each number once or twice (an
#   add, a ReLU, batch norm), however little arithmetic it does.
#
# An op doing F FLOPs on B bytes has an *arithmetic intensity* I = F / B; it cannot run faster than
# min(peak, I x bandwidth). That is the **roofline** (Williams, Waterman and Patterson, 2009): a
# slanted roof for memory-bound ops, a flat one for compute-bound ones. This lesson
#   1. measures both numbers on one core of this machine;
#   2. profiles a ResNet-ish training step op by op (``tinygrad_cv.op_profile.OpProfile``) and places
#      every op on the roofline;
#   3. measures what two of the library's CPU fast paths buy, by switching them off and on.
#
#     python lessons/17_where_the_time_goes.py [--quick] [--out DIR]
#
# Everything runs on one thread (one core) so that the roofline is one core's, except section 3's
# thread-pool comparison. On a machine shared with other work every time here is noisy: the lesson takes
# the best of several repeats.

# %%
import time

import numpy as np
from threadpoolctl import threadpool_limits

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import optim
from tinygrad_cv.models import resnet_small
from tinygrad_cv.op_profile import OpProfile
from tinygrad_cv.ops import elementwise, norm
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 17: where the time goes", "17_where_the_time_goes", full_minutes=0.3)
plt = pyplot()
tg.set_num_threads(1)
blas_one_thread = threadpool_limits(limits=1, user_api="blas")
matrix, copy_mib, batch, size, repeats = (768, 64, 8, 32, 3) if args.quick else (2048, 256, 32, 64, 5)


def best_seconds(fn, repeats=repeats):
    """The fastest of ``repeats`` runs of fn(), after one warm-up run (first-touch page faults, caches)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# %% [markdown]
# ## 1. The machine: peak FLOP rate and memory bandwidth of one core
#
# A float32 matrix product of two n x n matrices does n^3 multiply-adds, 2 n^3 FLOPs, on 3 n^2 numbers:
# its intensity grows with n, so a large one measures the peak. A copy of a large array reads and writes
# each byte once and does no arithmetic: it measures the bandwidth (bytes read + bytes written, per second).

# %%
rng = np.random.default_rng(0)
a, b = (rng.standard_normal((matrix, matrix)).astype(np.float32) for _ in range(2))
peak = 2 * matrix**3 / best_seconds(lambda: a @ b) / 1e9
source = np.ones(copy_mib * 2**20 // 4, dtype=np.float32)
target = np.empty_like(source)
bandwidth = 2 * source.nbytes / best_seconds(lambda: np.copyto(target, source)) / 1e9
ridge = peak / bandwidth
print(f"one core: peak {peak:.1f} GFLOP/s ({matrix} x {matrix} float32 matmul), memory bandwidth "
      f"{bandwidth:.1f} GB/s ({copy_mib} MiB copy); an op needs {ridge:.1f} FLOPs per byte to be compute-bound")

# %% [markdown]
# ## 2. A training step, op by op
#
# The ResNet-ish model of ``benchmarks/bench_train.py`` (stem and four stages of basic blocks, batch
# norm, ReLU, global average pool, a linear layer, sigmoid binary cross-entropy, SGD with momentum).
# ``OpProfile`` times every op's forward and backward and counts its work: for the convolutions and
# matrix products the multiply-adds (2 FLOPs each), for the others one nominal FLOP per output element;
# and the bytes each reads and writes. The time outside the ops is the optimiser, the summing of
# gradients where a tensor is used twice, and Python.

# %%
tg.manual_seed(0)
model = resnet_small(17, width=32)
opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = tg.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32))
y = tg.Tensor((rng.random((batch, 17)) < 0.3).astype(np.float32))


def step():
    loss = F.binary_cross_entropy_with_logits(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


step()  # warm-up
with OpProfile() as prof:
    start = time.perf_counter()
    step()
    step_ms = 1000 * (time.perf_counter() - start)
print(f"one training step, batch {batch} at {size} x {size}: {step_ms:.0f} ms on one core")
print(prof.table(step_ms, top=10))

# %% [markdown]
# Each op (and pass) is a point: across, its intensity (FLOPs per byte); up, the rate it reached. The
# roof is min(peak, intensity x bandwidth). The convolutions sit at the right, near the flat roof: their
# gap to it is the time im2col, padding and the tiles' copies take. Batch norm and ReLU sit at the left,
# under the slanted roof: they can only go as fast as memory, so the way to speed them up is to touch
# memory fewer times (fuse passes, keep a block in cache), not to do less arithmetic. A point above the
# slanted roof is an op whose arrays were still in the cache, which is faster than memory (the quick
# run's small arrays mostly are). The ops' nominal FLOPs make their heights a rate of elements, not of
# arithmetic: read their place across (intensity) and their share of the step.

# %%
rows = [r for r in prof.rows() if r["gflops"] > 0 and r["gb"] > 0 and r["ms"] > 0.05]
fig, ax = plt.subplots(figsize=(8, 5.5))
intensity = np.logspace(-2.5, 3, 200)
ax.plot(intensity, np.minimum(peak, intensity * bandwidth), "k-", lw=2, label="roofline (one core)")
markers = {"forward": "o", "backward": "s"}
for r in rows:
    ai = r["gflops"] / r["gb"]
    ax.scatter(ai, r["gflop_s"], s=20 + 300 * r["ms"] / step_ms, marker=markers[r["pass"]], alpha=0.7)
    if r["ms"] > 0.02 * step_ms:
        ax.annotate(f"{r['op']} {r['pass'][:3]}", (ai, r["gflop_s"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set(xlabel="arithmetic intensity (FLOPs per byte)", ylabel="GFLOP/s reached",
       title=f"ResNet-ish step, batch {batch} at {size} px: ops on this core's roofline (size: share of the step)")
ax.legend(loc="lower right")
save_lesson_figure(fig, args.out, "roofline.png")

# %% [markdown]
# ## 3. What two fast paths buy
#
# Both are memory-bound ops, rewritten to go faster without changing their arithmetic (the tests check
# that the fast path's bits equal the plain one's); whether they do go faster is what this section
# measures:
#
# - **batch norm in cache-sized channel blocks**: statistics, normalisation and affine (and backward's
#   sums and its three-term gradient) each pass over the data; done one block of about 1 MiB at a time,
#   the later passes read from the core's cache instead of memory. Off: ``norm.BLOCK_BYTES`` so large that
#   one block holds every channel.
# - **ReLU on the thread pool**: a large ReLU is cut into one chunk per thread; NumPy releases the GIL in
#   its loops, so the chunks run at once. Off: ``elementwise.PARALLEL_MIN_ELEMENTS`` beyond any array.
#   This one needs two threads; the other comparisons stay on one. The two cores share one memory bus:
#   where one thread's loop already streams at the bus's speed, a second has nothing to add, so the
#   gain can be none at all.
#
# The activation is the size of the full step's largest, the stem's output (32, 32, 64, 64), 16 MiB; the
# quick run's is a quarter of it, just large enough for the thread pool (4 MiB).

# %%
act = rng.standard_normal((8 if args.quick else 32, 32, 64, 64)).astype(np.float32)
grad = rng.standard_normal(act.shape).astype(np.float32)


def forward_backward(fn):
    t = tg.Tensor(act, requires_grad=True)
    fn(t).backward(tg.Tensor(grad))


def batch_norm_step():
    forward_backward(lambda t: F.batch_norm(t, None, None, training=True))


def timed_with(module, name, value, fn):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        return 1000 * best_seconds(fn)
    finally:
        setattr(module, name, saved)


results = {"batch norm\n(1 thread)": (timed_with(norm, "BLOCK_BYTES", 2**62, batch_norm_step),
                                       timed_with(norm, "BLOCK_BYTES", norm.BLOCK_BYTES, batch_norm_step))}
tg.set_num_threads(2)
relu_step = lambda: forward_backward(F.relu)  # noqa: E731
results["ReLU\n(2 threads)"] = (timed_with(elementwise, "PARALLEL_MIN_ELEMENTS", 2**62, relu_step),
                                timed_with(elementwise, "PARALLEL_MIN_ELEMENTS", elementwise.PARALLEL_MIN_ELEMENTS,
                                           relu_step))
tg.set_num_threads(1)
for name, (plain, fast) in results.items():
    print(f"{name.splitlines()[0]:<12} forward + backward: plain {plain:.2f} ms, fast path {fast:.2f} ms "
          f"({plain / fast:.2f}x)")

fig, ax = plt.subplots(figsize=(6, 4))
positions = np.arange(len(results))
ax.bar(positions - 0.2, [p for p, _ in results.values()], 0.4, label="plain path")
ax.bar(positions + 0.2, [f for _, f in results.values()], 0.4, label="fast path")
ax.set_xticks(positions, list(results))
ax.set(ylabel="ms, forward + backward (best of the run)", title=f"activation {act.shape}, float32")
ax.legend()
save_lesson_figure(fig, args.out, "fast_paths.png")
blas_one_thread.restore_original_limits()

# %% [markdown]
# ## What to look at
#
# - The first line: this core's peak and bandwidth, and the *ridge* between them. An op with fewer FLOPs
#   per byte than that cannot keep the arithmetic units busy whatever the code does.
# - `roofline.png`: the convolutions to the right, close to the roof but not on it; the memory-bound ops to
#   the left. Their shares in the table say which gap is worth closing: on this model the convolutions
#   take most of the step, so their gap to the roof is the biggest prize; batch norm and ReLU come next.
# - `fast_paths.png`: the measured gain of each fast path in this run. A gain only shows where the
#   activation is much larger than the cache, and the thread pool's only where a second core is free (on a
#   machine busy with other work, it may show none).
#
# ## Exercises
#
# 1. Run `python benchmarks/bench_train.py --profile` for the full-size ResNet-ish and U-Net steps on
#    every core: which ops have the largest share, and does it change with the thread count?
# 2. Set `norm.BLOCK_BYTES` to 64 KiB and to 16 MiB in section 3: where is the batch-norm time lowest, and
#    how does that compare with the size of this core's L2 cache (`lscpu`)?
# 3. Place the optimiser on the roofline: SGD with momentum reads a parameter, its gradient and its
#    momentum and writes two of them, for 3 FLOPs per parameter. Where does it sit?
