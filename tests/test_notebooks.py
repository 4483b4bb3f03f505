"""Every numbered lesson opens as a notebook: jupytext reads the percent-format script, nbclient runs it in
an IPython kernel (whose command line carries the kernel's own ``-f`` argument) with TINYGRAD_CV_QUICK=1,
and the notebook must run without error and show at least one figure inline."""
import os
import pathlib

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = sorted(ROOT.joinpath("lessons").glob("[0-9][0-9]_*.py"))


def inline_images(notebook):
    """How many image/png outputs the executed notebook's cells hold."""
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", []))


def test_every_lesson_is_a_percent_script():
    assert LESSONS, "no lessons found"
    for lesson in LESSONS:
        notebook = jupytext.read(lesson, fmt="py:percent")
        kinds = {cell.cell_type for cell in notebook.cells}
        assert kinds == {"markdown", "code"}, f"{lesson.name}: cells of kinds {kinds}"
        assert notebook.cells[0].cell_type == "markdown", f"{lesson.name} must open with its narrative"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_as_a_notebook(lesson, tmp_path, monkeypatch):
    notebook = jupytext.read(lesson, fmt="py:percent")
    # The kernel inherits this environment: the quick mode, the lessons' helpers and the package on the
    # path, and one BLAS thread (the machine is shared). It runs in tmp_path, so the figures land there.
    monkeypatch.setenv("TINYGRAD_CV_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "lessons"), str(ROOT)]))
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                      # raises CellExecutionError, with the traceback, on any error
    assert inline_images(notebook) >= 1, f"{lesson.name} showed no figure inline"
    assert list(tmp_path.rglob("*.png")), f"{lesson.name} saved no figure"
    first = next((output["text"] for cell in notebook.cells if cell.cell_type == "code"
                  for output in cell.get("outputs", []) if output.get("name") == "stdout"), "")
    assert first.startswith("SMOKE RUN"), f"{lesson.name}: the first output must say it is a smoke run: {first[:80]!r}"
