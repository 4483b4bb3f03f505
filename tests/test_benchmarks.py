"""The benchmarks keep running: each --quick run exits cleanly and writes its JSON results."""
import json
import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("name", ["bench_autograd", "bench_ops", "bench_data", "bench_train"])
def test_benchmark_quick_run_writes_json(name, tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--json", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=BENCHMARKS.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), f"{name} printed no table"
    assert json.loads(out.read_text())


@pytest.mark.slow
def test_bench_train_profile_prints_and_writes_the_per_op_table(tmp_path):
    out = tmp_path / "profile.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "bench_train.py"), "--profile", "--quick", "--top", "3",
                             "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=BENCHMARKS.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    profile = json.loads(out.read_text())["profile"]
    assert set(profile) == {"resnet", "unet"}
    for kind, r in profile.items():
        assert {"Conv2d", "BatchNorm", "ReLU"} <= {row["op"] for row in r["ops"]}, kind
        assert sum(row["ms"] for row in r["ops"]) <= r["step_ms"]  # the ops' times are part of the step
    assert result.stdout.count("(outside the ops)") == 2
