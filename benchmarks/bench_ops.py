"""Vision ops on the CPU, ours and PyTorch's (when torch is importable) side by side, float32.

conv2d forward and forward+backward (input, weight and bias gradients) at N=16, stride 1,
padding k//2, over (Cin, Cout, H, W, k) shapes from a U-Net/ResNet; then batch_norm (training),
max_pool2d 2x2, bilinear interpolate (x2) and cross_entropy at U-Net sizes, forward+backward.

Timings are the best of several rounds, ours and PyTorch's timed apart (see ``best_times``).
Both run on the same number of threads: --threads, else tinygrad_cv's count (``tg.get_num_threads()``:
TINYGRAD_CV_NUM_THREADS, else every core this process may use).

    python benchmarks/bench_ops.py [--threads N] [--json PATH] [--quick] [--rounds R] [--only PREFIX]
"""
import argparse
import json
import math
import time

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F

try:
    import torch
except ImportError:
    torch = None

CONV_SHAPES = [(3, 32, 128, 128, 3), (32, 32, 64, 64, 3), (64, 64, 32, 32, 3), (128, 128, 16, 16, 3),
               (64, 128, 32, 32, 1)]
TARGET_WORST, TARGET_GEOMEAN = 1.5, 1.2  # issue 21, at 2 threads


def best_times(fns, rounds, passes=3, settle=0.5):
    """Best seconds per call of each function over ``passes`` passes of ``rounds`` calls each.

    Within a pass the functions are timed one after the other, not interleaved, each after a pause
    of ``settle`` seconds: a library's idle threads keep spinning for a while after its last call (OpenMP in
    PyTorch, OpenBLAS's pthreads under NumPy) and would slow the other library down. Several passes
    give each library more than one window of the (shared, fluctuating) machine.
    """
    best = [math.inf] * len(fns)
    for _ in range(passes):
        for i, fn in enumerate(fns):
            time.sleep(settle)
            fn()
            for _ in range(rounds):
                start = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------- cases
def forward_only(ours, theirs):
    """Forward passes without graph recording."""
    def run_ours():
        with tg.no_grad():
            ours()

    def run_theirs():
        with torch.no_grad():
            theirs()
    return run_ours, run_theirs


def forward_backward(ours, theirs, our_leaves, their_leaves, upstream):
    """Forward, then backward from a fixed random upstream gradient; leaf gradients are cleared first."""
    their_upstream = torch.tensor(upstream) if torch is not None else None

    def run_ours():
        for t in our_leaves:
            t.grad = None
        ours().backward(upstream)

    def run_theirs():
        for t in their_leaves:
            t.grad = None
        theirs().backward(their_upstream)
    return run_ours, run_theirs


def make_leaves(rng, shapes, scale=1.0):
    arrays = [(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]
    ours = [tg.Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays] if torch is not None else []
    return arrays, ours, theirs


def conv_cases(n, shapes, rng):
    cases = []
    for cin, cout, h, w, k in shapes:
        _, ours, theirs = make_leaves(rng, [(n, cin, h, w), (cout, cin, k, k), (cout,)], 0.5)
        ours_fn = lambda o=ours, k=k: F.conv2d(*o, padding=k // 2)
        theirs_fn = (lambda t=theirs, k=k: torch.nn.functional.conv2d(*t, padding=k // 2)) if torch else None
        flops = 2 * n * cout * cin * k * k * h * w
        name = f"conv2d {cin:>3}->{cout:<3} {h}x{w} k{k}"
        upstream = rng.standard_normal((n, cout, h, w)).astype(np.float32)
        cases.append((name, "fwd", flops, *forward_only(ours_fn, theirs_fn)))
        cases.append((name, "fwd+bwd", 3 * flops, *forward_backward(ours_fn, theirs_fn, ours, theirs, upstream)))
    return cases


def unet_cases(n, channels, size, classes, rng):
    tf = torch.nn.functional if torch is not None else None
    cases = []
    (x_np, _, _), x, tx = make_leaves(rng, [(n, channels, size, size), (channels,), (channels,)], 1.0)
    mean, var = np.zeros(channels, np.float32), np.ones(channels, np.float32)
    stats = [tg.Tensor(mean.copy()), tg.Tensor(var.copy())]
    tstats = [torch.tensor(mean.copy()), torch.tensor(var.copy())] if torch else []
    ours = lambda: F.batch_norm(x[0], *stats, x[1], x[2], training=True)
    theirs = lambda: tf.batch_norm(tx[0], *tstats, tx[1], tx[2], training=True)
    upstream = rng.standard_normal(x_np.shape).astype(np.float32)
    cases.append((f"batch_norm {channels}ch {size}x{size}", "fwd+bwd", None,
                  *forward_backward(ours, theirs, x, tx, upstream)))

    pooled = rng.standard_normal((n, channels, size // 2, size // 2)).astype(np.float32)
    cases.append((f"max_pool2d 2x2 {channels}ch {size}x{size}", "fwd+bwd", None,
                  *forward_backward(lambda: F.max_pool2d(x[0], 2), lambda: tf.max_pool2d(tx[0], 2),
                                    x[:1], tx[:1], pooled)))

    _, small, tsmall = make_leaves(rng, [(n, channels, size // 2, size // 2)])
    ours = lambda: F.interpolate(small[0], scale_factor=2, mode="bilinear")
    theirs = lambda: tf.interpolate(tsmall[0], scale_factor=2, mode="bilinear")
    cases.append((f"interpolate bilinear x2 {channels}ch ->{size}x{size}", "fwd+bwd", None,
                  *forward_backward(ours, theirs, small, tsmall, upstream)))

    _, scores, tscores = make_leaves(rng, [(n, classes, size, size)])
    target = rng.integers(0, classes, (n, size, size))
    ours = lambda: F.cross_entropy(scores[0], tg.Tensor(target))
    theirs = lambda: tf.cross_entropy(tscores[0], torch.tensor(target))
    cases.append((f"cross_entropy {classes} classes {size}x{size}", "fwd+bwd", None,
                  *forward_backward(ours, theirs, scores, tscores, np.float32(1.0))))
    return cases


# --------------------------------------------------------------------------- report
def measure(cases, rounds, settle):
    rows = []
    for name, kind, flops, ours, theirs in cases:
        times = best_times([ours] + ([theirs] if torch is not None else []), rounds, settle=settle)
        row = {"op": name, "pass": kind, "ours_ms": times[0] * 1e3}
        if flops:
            row["ours_gflops"] = flops / times[0] / 1e9
        if torch is not None:
            row.update(torch_ms=times[1] * 1e3, ratio=times[0] / times[1])
            if flops:
                row["torch_gflops"] = flops / times[1] / 1e9
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row):
    text = f"{row['op']:<42}{row['pass']:<9}{row['ours_ms']:>9.2f}"
    text += f"{row['ours_gflops']:>8.0f}" if "ours_gflops" in row else " " * 8
    if "torch_ms" in row:
        text += f"{row['torch_ms']:>10.2f}"
        text += f"{row['torch_gflops']:>8.0f}" if "torch_gflops" in row else " " * 8
        text += f"{row['ratio']:>8.2f}"
    return text


def conv_summary(rows):
    ratios = [r["ratio"] for r in rows if r["op"].startswith("conv2d") and r["pass"] == "fwd+bwd"]
    if not ratios:
        return {}
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"\nconv2d fwd+bwd, ours / torch: worst {max(ratios):.2f} (target <= {TARGET_WORST}), "
          f"geometric mean {geomean:.2f} (target <= {TARGET_GEOMEAN})")
    return {"conv_fwd_bwd_worst_ratio": max(ratios), "conv_fwd_bwd_geomean_ratio": geomean}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--rounds", type=int, default=None, help="timed calls per pass (3 passes; best is kept)")
    parser.add_argument("--only", help="run only the cases whose name starts with this, e.g. conv2d")
    parser.add_argument("--threads", type=int, help="threads of both libraries (default: tg.get_num_threads())")
    args = parser.parse_args()
    threads = args.threads or tg.get_num_threads()
    tg.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    if args.quick:
        rounds = args.rounds or 1
        shapes = [(c, o, h // 8, w // 8, k) for c, o, h, w, k in CONV_SHAPES]
        cases = conv_cases(2, shapes, rng) + unet_cases(2, 8, 16, 12, rng)
    else:
        rounds = args.rounds or 3
        cases = conv_cases(16, CONV_SHAPES, rng) + unet_cases(8, 64, 128, 12, rng)
    cases = [case for case in cases if args.only is None or case[0].startswith(args.only)]

    print(f"float32, {threads} threads, best of 3 x {rounds} calls{'' if torch else '; torch absent'}")
    header = f"{'op':<42}{'pass':<9}{'ours ms':>9}{'GF/s':>8}"
    print(header + (f"{'torch ms':>10}{'GF/s':>8}{'ratio':>8}" if torch else ""))
    rows = measure(cases, rounds, settle=0.0 if args.quick else 0.5)
    summary = conv_summary(rows) if torch is not None else {}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": threads, "rounds": rounds, "quick": args.quick, "rows": rows, **summary}, f,
                      indent=1)


if __name__ == "__main__":
    main()
