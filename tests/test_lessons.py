"""Lessons as scripts. Every numbered lesson's quick mode already runs in test_notebooks.py (as a notebook);
here a few run as plain scripts (``python lessons/NN.py --quick``), the proof script train_small_cnn.py
(not a numbered lesson) runs, and the shared command line is checked."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lessons"))
import lesson_utils  # noqa: E402

SCRIPTS = [ROOT / "lessons" / name for name in ("01_tensors_autograd.py", "03_nonlinearity.py",
                                                  "06_planet_multilabel.py", "train_small_cnn.py")]


def run(script, *args, env=None):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=env)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_runs_quick(script, tmp_path):
    result = run(script, "--quick", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    figures = list(tmp_path.glob("*.png"))
    assert figures, f"{script.name} wrote no figure"
    assert all(f.stat().st_size > 1000 for f in figures)
    assert "figure:" in result.stdout
    assert result.stdout.startswith("SMOKE RUN"), result.stdout[:200]


def test_quick_mode_comes_from_the_environment(tmp_path):
    import os
    env = dict(os.environ, TINYGRAD_CV_QUICK="1")
    result = run(ROOT / "lessons" / "01_tensors_autograd.py", "--out", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("SMOKE RUN")


def test_a_script_rejects_unknown_arguments(tmp_path):
    result = run(ROOT / "lessons" / "01_tensors_autograd.py", "-f", "kernel.json", "--out", str(tmp_path))
    assert result.returncode == 2 and "unrecognized arguments: -f" in result.stderr


@pytest.mark.parametrize("value, quick", [("1", True), ("0", False), ("", False)])
def test_quick_from_env(monkeypatch, value, quick):
    monkeypatch.setenv("TINYGRAD_CV_QUICK", value)
    assert lesson_utils.quick_from_env() is quick


def test_quick_from_env_rejects_other_values(monkeypatch):
    monkeypatch.setenv("TINYGRAD_CV_QUICK", "yes")
    with pytest.raises(ValueError, match="TINYGRAD_CV_QUICK must be 0 or 1, got 'yes'"):
        lesson_utils.quick_from_env()


def test_not_in_a_notebook_here():
    assert lesson_utils.in_notebook() is False
