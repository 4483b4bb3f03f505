"""Every numbered lesson runs end to end in --quick mode and writes at least one figure."""
import pathlib
import subprocess
import sys

import pytest

LESSONS = sorted(pathlib.Path(__file__).resolve().parent.parent.joinpath("lessons").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_quick(lesson, tmp_path):
    result = subprocess.run([sys.executable, str(lesson), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=lesson.parent.parent)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    figures = list(tmp_path.glob("*.png"))
    assert figures, f"{lesson.name} wrote no figure"
    assert all(f.stat().st_size > 1000 for f in figures)
    assert "figure:" in result.stdout
