"""Autograd overhead: forward+backward cost per op on tiny tensors (ours and PyTorch's, when torch is
importable, side by side), and backward time on chain and skip-connection graphs of 10k and 100k nodes.

    python benchmarks/bench_autograd.py [--json PATH] [--quick] [--cpu-time]

--cpu-time times the per-op table with the process's CPU time instead of the wall clock: on a shared,
busy machine the wall clock also counts the time this process waits for a core (we saw the same code
measure 26 and 52 us per add within minutes under a load of 7 on 2 cores; its CPU time, 24-27 us).
"""
import argparse
import json
import time

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F

try:
    import torch
except ImportError:
    torch = None


def best_of(fn, repeats, number, clock=time.perf_counter):
    """Best mean seconds per call over ``repeats`` timings of ``number`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        for _ in range(number):
            fn()
        best = min(best, (clock() - start) / number)
    return best


OPS = {
    "add": (lambda lib, a, b: a + b),
    "mul": (lambda lib, a, b: a * b),
    "matmul": (lambda lib, a, b: a @ b),
    "exp": (lambda lib, a, b: a.exp()),
    "relu": (lambda lib, a, b: lib.relu(a)),
    "sigmoid": (lambda lib, a, b: lib.sigmoid(a)),
    "sum(dim)": (lambda lib, a, b: a.sum(1)),
    "softmax": (lambda lib, a, b: lib.softmax(a, 1)),
    "getitem": (lambda lib, a, b: a[1:3]),
    "reshape": (lambda lib, a, b: a.reshape(16)),
}


def per_op_table(number, clock=time.perf_counter):
    rows = []
    a_np, b_np = np.random.rand(4, 4).astype(np.float32), np.random.rand(4, 4).astype(np.float32)
    for name, op in OPS.items():
        a, b = tg.Tensor(a_np, requires_grad=True), tg.Tensor(b_np, requires_grad=True)
        ours = best_of(lambda: op(F, a, b).sum().backward(), 5, number, clock)
        row = {"op": name, "ours_us": ours * 1e6}
        if torch is not None:
            ta = torch.tensor(a_np, requires_grad=True)
            tb = torch.tensor(b_np, requires_grad=True)
            theirs = best_of(lambda: op(torch, ta, tb).sum().backward(), 5, number, clock)
            row.update(torch_us=theirs * 1e6, ratio=ours / theirs)
        rows.append(row)
    return rows


def chain(n):
    x = tg.Tensor(np.ones(4), requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0001
    return y.sum()


def skip(n):
    """Every step adds the first tensor again: one early node with n consumers."""
    x = tg.Tensor(np.ones(4), requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 0.5 + x
    return y.sum()


def graph_table(sizes):
    rows = []
    for name, build in (("chain", chain), ("skip", skip)):
        for n in sizes:
            start = time.perf_counter()
            root = build(n)
            built = time.perf_counter() - start
            start = time.perf_counter()
            root.backward()
            rows.append({"graph": name, "nodes": n, "build_s": built, "backward_s": time.perf_counter() - start})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller graphs")
    parser.add_argument("--cpu-time", action="store_true", help="time the per-op table in process CPU time")
    args = parser.parse_args()
    number = 50 if args.quick else 500
    sizes = (1_000, 10_000) if args.quick else (10_000, 100_000)

    ops = per_op_table(number, time.process_time if args.cpu_time else time.perf_counter)
    print(f"forward+backward of one op on a 4x4 float32 tensor (us per call{', CPU time' if args.cpu_time else ''})"
          f"{'' if torch else '; torch absent'}")
    print(f"{'op':<10}{'ours':>10}" + (f"{'torch':>10}{'ratio':>8}" if torch else ""))
    for r in ops:
        print(f"{r['op']:<10}{r['ours_us']:>10.1f}" + (f"{r['torch_us']:>10.1f}{r['ratio']:>8.2f}" if torch else ""))

    graphs = graph_table(sizes)
    print("\nbackward on long graphs (seconds)")
    print(f"{'graph':<8}{'nodes':>9}{'build':>9}{'backward':>10}")
    for r in graphs:
        print(f"{r['graph']:<8}{r['nodes']:>9}{r['build_s']:>9.3f}{r['backward_s']:>10.3f}")
    for name in ("chain", "skip"):
        small, large = [r["backward_s"] for r in graphs if r["graph"] == name]
        print(f"{name}: backward({sizes[1]}) / backward({sizes[0]}) = {large / small:.1f} "
              f"(linear would be {sizes[1] / sizes[0]:.0f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ops": ops, "graphs": graphs}, f, indent=1)


if __name__ == "__main__":
    main()
