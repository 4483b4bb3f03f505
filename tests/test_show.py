"""Figures of results: images are drawn in their true colours (the loader's normalisation undone, nothing
stretched per image), tags at the caller's threshold, and a legend of class colours on mask figures."""
import os
import pathlib

import numpy as np
import pytest

from tinygrad_cv.data import Normalize
from tinygrad_cv.train.show import predictions_as_targets, displayable, show_results


def test_displayable_undoes_the_loaders_normalisation():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 5, 4, 3)).astype(np.uint8)
    images[0] = 40                                  # a flat dark image must stay flat and dark
    normalize = Normalize([0.3, 0.4, 0.5], [0.2, 0.25, 0.3])
    shown = displayable(normalize(images), normalize.mean, normalize.std)
    assert shown.dtype == np.uint8 and shown.shape == images.shape
    assert np.abs(shown.astype(int) - images.astype(int)).max() <= 1


def test_displayable_without_statistics_takes_unit_range_and_clips():
    x = np.array([-0.5, 0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 1, 5)
    assert displayable(x)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_displayable_needs_one_statistic_per_channel():
    with pytest.raises(ValueError, match="one mean and one std per channel"):
        displayable(np.zeros((1, 3, 2, 2)), mean=[0.5], std=[0.2, 0.2, 0.2])


def test_decode_uses_the_callers_threshold():
    probs = np.array([[0.1, 0.25, 0.6]])
    assert predictions_as_targets(np.zeros((1, 3)), probs, 0.2).tolist() == [[0, 1, 1]]
    assert predictions_as_targets(np.zeros((1, 3)), probs, 0.5).tolist() == [[0, 0, 1]]


def test_show_results_writes_a_mask_figure_with_a_legend(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    legends = []
    original = Figure.legend
    monkeypatch.setattr(Figure, "legend", lambda self, *a, **k: legends.append(k["handles"]) or original(self, *a, **k))
    y = np.zeros((2, 4, 4), np.int64)
    y[:, :2] = 2
    pred = np.zeros((2, 3, 4, 4))
    pred[:, 1] = 1.0                                # predicts class 1 everywhere
    figure = show_results(np.zeros((2, 3, 4, 4)), y, pred, tmp_path / "r.png", max_n=2, vocab=["sky", "road", "car"])
    assert (tmp_path / "r.png").stat().st_size > 1000 and isinstance(figure, Figure)
    assert [h.get_label() for h in legends[0]] == ["sky", "road", "car"]


def test_lr_finder_marks_each_suggestion_at_its_legends_rate(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from tinygrad_cv.train.lr_finder import LRFinder, minimum
    finder = LRFinder(num_it=60)
    finder.lrs = list(np.geomspace(1e-6, 1.0, 60))
    finder.losses = list(2.0 - np.sin(np.linspace(0, 3, 60)))          # lowest near index 30
    marks = []
    original = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, *a, **k: marks.append((a, k)) or original(self, *a, **k))
    finder.plot(fname=tmp_path / "lr_find.png")
    labelled = {k["label"].split(":")[0]: float(np.ravel(a[0])[0]) for a, k in marks if "label" in k}
    lowest = minimum(*finder.curve(), finder.num_it)[0]
    assert labelled["minimum"] == pytest.approx(lowest)                 # a tenth of the lowest point's rate
    assert set(labelled) == {"valley", "steep", "minimum"}


def test_a_returned_figure_shows_inline_in_a_notebook_without_pyplot(monkeypatch):
    # the PNG itself is checked without a kernel in test_learner.py; here a real IPython kernel shows it
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = pathlib.Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root / "tests"), str(root)]))
    code = ("import sys\n"
            "from train_fixtures import make_learner\n"
            "learn = make_learner()\n"
            "learn.fit(1, lr=1e-3)\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n"
            "learn.recorder.plot_sched()")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    outputs = notebook.cells[0].outputs
    assert [o["output_type"] for o in outputs] == ["execute_result"] and "image/png" in outputs[0]["data"]
