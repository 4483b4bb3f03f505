"""One command for a machine with a GPU: what the emulator cannot prove, and the CPU-against-GPU timings.

It runs, on device "cuda" at full sizes (within 8 minutes on an H100/H200):
  1. the tests marked ``gpu`` (tests/test_gpu_check.py): every CUDA kernel's op equal to the CPU's, a
     Learner epoch in fp32 and in fp16 equal to the CPU's, a U-Net and a Mask R-CNN training step, and
     the kernels past the int32 boundary (1 x 8193 x 512 x 512 elements, im2col's 2.4e9 columns);
  2. benchmarks/bench_devices.py: each kernel's op and the ResNet / U-Net steps, CPU against GPU;
and writes ``gpu_check.json`` (every test's outcome and time, the timing tables) and ``gpu_check.png``.

``--dry-run`` runs the same plan on the emulator ("emu") at tiny sizes, without a GPU: ``make test``
does this (tests/test_gpu_check.py), so the plan is known to work before a GPU session starts.

    python benchmarks/gpu_check.py [--dry-run] [--out DIR]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import tinygrad_cv as tg

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUDGET_S = 8 * 60


def run_gpu_tests(device, full, timeout):
    """The ``-m gpu`` tests on ``device``: a list of {name, outcome, seconds, message}."""
    env = {**os.environ, "TINYGRAD_CV_GPU_CHECK_DEVICE": device,
           "TINYGRAD_CV_GPU_CHECK_SIZE": "full" if full else "tiny"}
    with tempfile.TemporaryDirectory() as folder:
        report = pathlib.Path(folder) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                   f"--junitxml={report}", str(ROOT / "tests" / "test_gpu_check.py")]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        print(result.stdout[-4000:], end="")
        if not report.exists():
            raise RuntimeError(f"gpu_check: pytest wrote no report (exit {result.returncode}):\n"
                               f"{result.stderr[-3000:]}")
        return [_outcome(case) for case in ET.parse(report).getroot().iter("testcase")]


def _outcome(case):
    failed = case.find("failure") if case.find("failure") is not None else case.find("error")
    skipped = case.find("skipped")
    outcome = "failed" if failed is not None else "skipped" if skipped is not None else "passed"
    detail = failed if failed is not None else skipped
    return {"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0.0)),
            "message": (detail.get("message") or "")[:500] if detail is not None else ""}


def run_bench_devices(quick, timeout):
    """bench_devices.py's tables (CPU against GPU on a GPU machine; CPU and the roofline without one)."""
    with tempfile.TemporaryDirectory() as folder:
        out = pathlib.Path(folder) / "bench.json"
        command = [sys.executable, str(ROOT / "benchmarks" / "bench_devices.py"), "--json", str(out)]
        result = subprocess.run(command + (["--quick"] if quick else []), cwd=ROOT, capture_output=True, text=True,
                                timeout=timeout)
        print(result.stdout[-4000:], end="")
        if result.returncode != 0:
            raise RuntimeError(f"gpu_check: bench_devices.py failed:\n{result.stderr[-3000:]}")
        return json.loads(out.read_text())


def plot(report, path):
    """Left: each gpu test's time, coloured by outcome. Right: CPU time / GPU time of each op (or, without a
    GPU, the CPU time)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tinygrad_cv.io import atomic_write
    tests, rows = report["tests"], report["bench_devices"]["ops"] + report["bench_devices"]["models"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, max(4, 0.28 * max(len(tests), len(rows)))))
    colours = {"passed": "tab:green", "failed": "tab:red", "skipped": "tab:grey"}
    left.barh([t["name"] for t in tests], [t["seconds"] for t in tests], color=[colours[t["outcome"]] for t in tests])
    left.set_xlabel("seconds")
    left.set_title(f"-m gpu on {report['device']} ({report['gpu'] or 'no GPU'}): "
                   f"{report['summary']['passed']} passed, {report['summary']['failed']} failed")
    left.tick_params(axis="y", labelsize=7)
    gpu = any(r["speedup"] for r in rows)
    right.barh([r["op"] for r in rows], [r["speedup"] if gpu else r["cpu_ms"] for r in rows], color="tab:blue")
    right.set_xlabel("CPU time / GPU time" if gpu else "CPU ms (no GPU: the GPU side is the roofline in the JSON)")
    right.set_xscale("log")
    right.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=90))
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the same plan on the emulator at tiny sizes")
    parser.add_argument("--out", default="out/gpu_check", help="folder for gpu_check.json and gpu_check.png")
    args = parser.parse_args()
    device = "emu" if args.dry_run else "cuda"
    if device == "cuda" and not tg.cuda_available():
        sys.exit("gpu_check: no CUDA device (cupy.is_available() is False); run it on a GPU machine, or "
                 "try the plan on the emulator with --dry-run")
    gpu_name = None
    if device == "cuda":
        import cupy
        gpu_name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    start = time.perf_counter()
    tests = run_gpu_tests(device, full=not args.dry_run, timeout=BUDGET_S)
    bench = run_bench_devices(quick=args.dry_run, timeout=max(BUDGET_S - (time.perf_counter() - start), 60))
    summary = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "skipped")}
    report = {"device": device, "gpu": gpu_name, "dry_run": args.dry_run, "summary": summary, "tests": tests,
              "bench_devices": bench, "seconds": time.perf_counter() - start}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from tinygrad_cv.io import atomic_write
    atomic_write(out / "gpu_check.json", lambda tmp: pathlib.Path(tmp).write_text(json.dumps(report, indent=1)))
    plot(report, out / "gpu_check.png")
    print(f"\n{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped on {device} "
          f"in {report['seconds']:.0f} s; wrote {out / 'gpu_check.json'} and {out / 'gpu_check.png'}")
    sys.exit(1 if summary["failed"] or not tests else 0)


if __name__ == "__main__":
    main()
