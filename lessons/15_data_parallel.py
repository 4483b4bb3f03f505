# %% [markdown]
# # Lesson 15: data-parallel training
#
# One process trains on a batch of 2B samples. Two processes ("ranks") can share that work: each holds a
# full copy of the model and computes the gradient on its own B samples; then the ranks *average* their
# gradients and every rank takes the same optimiser step, so the copies never drift apart. The averaging
# is one collective operation, the **all-reduce**. This lesson
#   1. builds an all-reduce by hand (the ring algorithm) and counts the bytes it moves;
#   2. checks the equivalence: 2 ranks with batch B end with the parameters of 1 process with batch 2B;
#   3. measures the scaling on this machine (samples per second, 1 rank against 2);
#   4. measures message times and estimates where communication would dominate for a ResNet on N machines.
#
# The ranks are started by MPI's launcher, `mpiexec -n 2 python script.py`; `tinygrad_cv.distributed`
# joins them. This lesson runs as one plain process and launches `mpiexec -n 2` itself for parts 2-4 (when
# MPI is installed: `pip install 'tinygrad_cv[distributed]'`).
#
#     python lessons/15_data_parallel.py [--quick] [--out DIR]

# %%
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per rank: the ranks are the parallelism

import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import tinygrad_cv as tg  # noqa: E402
import tinygrad_cv.functional as F  # noqa: E402
from tinygrad_cv import distributed as dist  # noqa: E402
from tinygrad_cv import nn, optim  # noqa: E402
from lesson_utils import LESSONS_DIR, parse_args, pyplot, save_lesson_figure  # noqa: E402

args = parse_args("Lesson 15: data-parallel training", "15_data_parallel",
                  configure=lambda p: p.add_argument("--part", default=None, help="(used by the launched ranks)"))
ROOT = os.path.dirname(LESSONS_DIR)  # a notebook has no __file__


# %% [markdown]
# ## The pieces every rank runs
#
# A small float64 CNN and a fixed stream of batches. Rank r of N trains on the r-th N-th of each batch; the
# gradients are averaged (`dist.average_gradients`, which packs them into a few flat buckets, one message
# each) before SGD with momentum steps.

# %%
def make_model():
    tg.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


def batch(step, n, size=16):
    rng = np.random.default_rng(step)
    return rng.standard_normal((n, 3, size, size)), rng.integers(0, 4, n)


def train(steps, global_batch, dtype=np.float64, size=16):
    """``steps`` SGD steps on this rank's share of each global batch; returns (model, seconds)."""
    model = make_model().to(dtype=dtype)
    dist.broadcast_parameters(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    r, n = dist.rank(), dist.world_size()
    dist.barrier()
    start = time.perf_counter()
    for step in range(steps):
        x, y = batch(step, global_batch, size)
        share = slice(r * global_batch // n, (r + 1) * global_batch // n)
        F.cross_entropy(model(tg.Tensor(x[share].astype(dtype))), tg.Tensor(y[share])).backward()
        dist.average_gradients(model)
        opt.step()
        opt.zero_grad()
    dist.barrier()
    return model, time.perf_counter() - start


def flat(model):
    return np.concatenate([p.numpy().ravel() for p in model.parameters()])


STEPS, GLOBAL_BATCH = (3, 8) if args.quick else (5, 16)
TIMED_STEPS, TIMED_BATCH = (4, 32) if args.quick else (20, 64)
SIZES = [2 ** k for k in range(4, 23, 3 if args.quick else 2)]  # message sizes in float32 values


def part(name):
    """What one rank of ``mpiexec -n N ... --part NAME`` computes; rank 0 saves it."""
    if name == "equivalence":
        result = {"params": flat(train(STEPS, GLOBAL_BATCH)[0])}
    elif name == "scaling":
        tg.set_num_threads(1)
        train(1, TIMED_BATCH, np.float32, 32)  # warm up
        result = {"seconds": train(TIMED_STEPS, TIMED_BATCH, np.float32, 32)[1]}
    else:
        result = {"sizes": np.array(SIZES), "seconds": np.array([message_time(n) for n in SIZES])}
    if dist.rank() == 0:
        np.savez(os.path.join(args.out, f"{name}_{dist.world_size()}.npz"), **result)


def message_time(n, repeats=5):
    """The median time of an all-reduce of ``n`` float32 values."""
    x, times = np.ones(n, dtype=np.float32), []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


if args.part is not None:  # we are one of the launched ranks
    part(args.part)
    sys.exit(0)

plt = pyplot()


# %% [markdown]
# ## 1. What an all-reduce is
#
# Each of N ranks holds a vector g_r; afterwards every rank holds the sum g_0 + ... + g_{N-1}. Sending
# every vector to one rank and the sum back costs that rank 2(N-1) vectors. The **ring all-reduce**
# splits each vector into N chunks and passes chunks around a ring:
#   - reduce-scatter: N-1 rounds; in each, every rank sends one chunk to its right neighbour, which adds
#     it to its own; afterwards rank r holds the complete sum of chunk (r+1) mod N;
#   - all-gather: N-1 more rounds passing the finished chunks on.
# Each rank sends (and receives) 2(N-1) chunks of 1/N of the vector: **2(N-1)/N of the gradient bytes**,
# almost twice the gradient whatever N is. The time per step is then about 2(N-1)/N * bytes / bandwidth
# plus 2(N-1) message latencies.

# %%
def ring_all_reduce(vectors):
    """The ring algorithm, simulated: returns (the vectors afterwards, values sent per rank)."""
    n = len(vectors)
    chunks = [np.array_split(v.astype(np.float64), n) for v in vectors]
    sent = [0] * n
    for step in range(n - 1):  # reduce-scatter
        outgoing = [(r, (r - step) % n, chunks[r][(r - step) % n].copy()) for r in range(n)]
        for r, c, data in outgoing:
            chunks[(r + 1) % n][c] += data
            sent[r] += data.size
    for step in range(n - 1):  # all-gather: rank r owns the finished chunk (r + 1) mod n
        outgoing = [(r, (r + 1 - step) % n, chunks[r][(r + 1 - step) % n].copy()) for r in range(n)]
        for r, c, data in outgoing:
            chunks[(r + 1) % n][c] = data
            sent[r] += data.size
    return [np.concatenate(c) for c in chunks], sent


rng = np.random.default_rng(0)
ranks_tried = [2, 3, 4, 8, 16]
fractions = []
for n in ranks_tried:
    vectors = [rng.standard_normal(960) for _ in range(n)]
    reduced, sent = ring_all_reduce(vectors)
    total = np.sum(vectors, axis=0)
    assert all(np.allclose(v, total) for v in reduced)
    fractions.append(max(sent) / 960)
    print(f"N={n:2d}: every rank holds the sum; each sent {max(sent)} of 960 values = "
          f"{max(sent) / 960:.3f} (2(N-1)/N = {2 * (n - 1) / n:.3f})")
    assert max(sent) == 2 * (n - 1) * 960 // n

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(ranks_tried, fractions, "o-", label="ring: 2(N-1)/N (measured in the simulation)")
ax.plot(ranks_tried, [2 * (n - 1) for n in ranks_tried], "s--", label="to one rank and back: 2(N-1) at the root")
ax.set(xlabel="ranks N", ylabel="gradients' worth of data sent by the busiest rank", yscale="log",
       title="The ring all-reduce sends under 2 gradients per rank")
ax.legend()
save_lesson_figure(fig, args.out, "ring_all_reduce_bytes.png")


# %% [markdown]
# ## 2. The equivalence
#
# With a loss that is the mean over the batch, the mean of the two ranks' gradients (each over B samples)
# is the gradient over all 2B. So after every step the parameters should equal those of one process with
# the whole batch, up to float64 round-off (the sums are added in another order). We train one process
# here, then launch two ranks.

# %%
def launch(n, name):
    """Run part ``name`` of this lesson as ``n`` ranks; returns what rank 0 saved, or None without MPI."""
    try:
        script = os.path.join(LESSONS_DIR, "15_data_parallel.py")
        argv, extra = dist.mpiexec_command(n, [sys.executable, script, "--part", name,
                                               "--out", args.out] + (["--quick"] if args.quick else []))
    except FileNotFoundError as error:
        print(f"(skipped: {error})")
        return None
    env = {**os.environ, **extra, "OPENBLAS_NUM_THREADS": "1", "TINYGRAD_CV_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "lessons"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"mpiexec -n {n} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    with np.load(os.path.join(args.out, f"{name}_{n}.npz"), allow_pickle=False) as saved:
        return dict(saved)


def have_mpi():
    try:
        import mpi4py  # noqa: F401
        dist.mpiexec_command(1, ["true"])
        return True
    except (ImportError, FileNotFoundError) as error:
        print(f"MPI is not available ({error}); parts 2-4 show the single-process side only. "
              f"Install it with pip install 'tinygrad_cv[distributed]'.")
        return False


one = flat(train(STEPS, GLOBAL_BATCH)[0])
mpi = have_mpi()
two = launch(2, "equivalence") if mpi else None
fig, ax = plt.subplots(figsize=(6, 4))
if two is not None:
    difference = np.abs(two["params"] - one) / np.maximum(np.abs(one), 1e-300)
    print(f"{STEPS} steps, batch {GLOBAL_BATCH} in one process against {GLOBAL_BATCH // 2} on each of 2 ranks: "
          f"largest relative difference of the {one.size} parameters {difference.max():.2e}")
    assert np.allclose(two["params"], one, rtol=1e-10, atol=0)
    ax.hist(np.log10(np.maximum(difference, 1e-18)), bins=30)
    ax.set(xlabel="log10 relative difference (0 difference drawn at -18)", ylabel="parameters",
           title="2 ranks x batch B against 1 process x batch 2B: round-off only")
else:
    ax.text(0.5, 0.5, "MPI not installed:\nno 2-rank run", ha="center", va="center")
save_lesson_figure(fig, args.out, "two_ranks_equal_one.png")


# %% [markdown]
# ## 3. Scaling on this machine
#
# One rank with one thread against two ranks with one thread each, the same global batch: samples per
# second. This machine has 2 cores, and while this lesson was written it was **shared with other
# engineers' jobs**, so the numbers move from run to run; the ideal is a factor 2, minus the time the
# ranks spend averaging gradients and waiting for each other.

# %%
scaling = {n: launch(n, "scaling") for n in (1, 2)} if mpi else {}
fig, ax = plt.subplots(figsize=(5, 4))
if scaling:
    rates = {n: TIMED_STEPS * TIMED_BATCH / float(scaling[n]["seconds"]) for n in scaling}
    for n, rate in rates.items():
        print(f"{n} rank(s), 1 thread each: {rate:7.1f} samples/s")
    print(f"speed-up {rates[2] / rates[1]:.2f}x (ideal 2; a shared machine measures less)")
    ax.bar([f"{n} rank" + ("s" if n > 1 else "") for n in rates], list(rates.values()))
    ax.set(ylabel="samples per second", title=f"Data parallel on this (shared) machine: {rates[2] / rates[1]:.2f}x")
else:
    ax.text(0.5, 0.5, "MPI not installed", ha="center", va="center")
save_lesson_figure(fig, args.out, "scaling.png")


# %% [markdown]
# ## 4. When does communication dominate?
#
# We time all-reduces of growing messages on 2 ranks and fit t = alpha + bytes / bandwidth (latency alpha).
# Then for a ResNet-50 (25.6 M parameters: 102 MB of float32 gradients; about 3 x 4.1 GFLOP per 224 px image
# for forward and backward) on N machines with a ring all-reduce:
#     communication per step = 2(N-1) alpha + 2(N-1)/N * 102 MB / bandwidth,
#     computation per step   = B * 12.3 GFLOP / (the machine's FLOP/s), B images per machine.
# Our bandwidth is shared memory inside one machine; between machines it is the network's, so we also draw
# a 10 Gbit/s Ethernet (1.25 GB/s, an assumed figure, not a measurement). The FLOP rate is measured here
# with one float32 matrix product.

# %%
messages = launch(2, "messages") if mpi else None
n_bytes = np.array(SIZES) * 4.0
if messages is not None:
    seconds = messages["seconds"]
    alpha, bandwidth = float(seconds[0]), float(n_bytes[-1] / seconds[-1])  # the smallest and the largest
    for size, t in zip(n_bytes, seconds):
        print(f"all-reduce of {size / 1e6:9.4f} MB on 2 ranks: {t * 1e6:9.1f} us")
    print(f"latency (the {n_bytes[0]:.0f}-byte message) {alpha * 1e6:.1f} us, bandwidth (the "
          f"{n_bytes[-1] / 1e6:.0f} MB one) {bandwidth / 1e9:.2f} GB/s: shared memory, on a shared machine")
else:
    alpha, bandwidth = 5e-6, 5e9
    print(f"(no MPI: assuming latency {alpha * 1e6:.0f} us and {bandwidth / 1e9:.0f} GB/s instead of measuring)")
a = np.ones((512, 512), dtype=np.float32)
start = time.perf_counter()
for _ in range(5):
    a @ a
flops = 5 * 2 * 512 ** 3 / (time.perf_counter() - start)
print(f"this machine, one thread: {flops / 1e9:.1f} GFLOP/s in a 512x512 float32 product")

gradient_bytes, flop_per_image, per_machine_batch = 25.6e6 * 4, 3 * 4.1e9, 32
machines = np.arange(2, 65)
cpu, gpu = per_machine_batch * flop_per_image / flops, per_machine_batch * flop_per_image / 100e12
fig, ax = plt.subplots(figsize=(7, 4))
ax.axhline(cpu, color="k", label=f"compute here, batch {per_machine_batch} per machine ({cpu:.1f} s)")
ax.axhline(gpu, color="tab:red", ls=":", label=f"compute on a 100 TFLOP/s GPU ({gpu * 1e3:.0f} ms)")
for name, bw, lat in [("measured shared memory", bandwidth, alpha), ("10 Gbit/s Ethernet (assumed)", 1.25e9, 50e-6)]:
    comm = 2 * (machines - 1) * lat + 2 * (machines - 1) / machines * gradient_bytes / bw
    ax.plot(machines, comm, label=f"ring all-reduce, {name}")
    for where, compute in (("this CPU", cpu), ("a GPU", gpu)):
        over = machines[comm > compute]
        verdict = f"dominates from N = {over[0]}" if over.size else "stays below the compute up to N = 64"
        print(f"ResNet-50, {name}, compute on {where}: the all-reduce ({comm[0] * 1e3:.0f} ms at N = 2, "
              f"{comm[-1] * 1e3:.0f} ms at N = 64) {verdict}")
ax.set(xlabel="machines N", ylabel="seconds per step", yscale="log",
       title="ResNet-50: the all-reduce approaches 2 gradients per step; fast compute exposes it")
ax.legend(fontsize="small")
save_lesson_figure(fig, args.out, "communication_vs_compute.png")

# %% [markdown]
# The ring's traffic per machine hardly grows with N, so on CPUs the computation hides it; a GPU computes
# a batch in milliseconds, and then a 10 Gbit/s network's 2 x 102 MB per step takes longer than the step
# itself: that is why GPU clusters use fast interconnects (NVLink, InfiniBand), overlap the all-reduce of
# early buckets with the backward pass of later layers, and send gradients in float16.
