"""Progress output: tqdm bars (count, items/s, ETA) only where a person watches, the epoch table always,
bars without a table for the LR finder, and the synthetic-data command's bar."""
import importlib
import io
import sys
import types
from functools import partial

import pytest

from tinygrad_cv.data.synthetic.__main__ import main as synthetic_main
from tinygrad_cv.metrics import accuracy
from tinygrad_cv.train import progress_bar
from tinygrad_cv.train import progress as progress_module
from tinygrad_cv.train.progress import interactive
from train_fixtures import make_learner


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def draw_every_update(monkeypatch):
    """Bars redraw on every update (tqdm waits 0.1 s between draws otherwise) and IPython is not running."""
    monkeypatch.setattr(progress_module, "text_tqdm", partial(progress_module.text_tqdm, mininterval=0))
    monkeypatch.delitem(sys.modules, "IPython", raising=False)


def test_interactive_means_a_terminal_or_ipython(monkeypatch):
    assert interactive(FakeTerminal()) and not interactive(io.StringIO())
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert interactive(io.StringIO())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not interactive(io.StringIO())                   # IPython imported, but no shell running


def test_bar_draws_count_rate_and_eta_on_a_terminal_only(monkeypatch):
    items = [3, 1, 4, 1, 5]
    terminal, log = FakeTerminal(), io.StringIO()
    assert list(progress_bar(items, desc="gen", unit="img", stream=log)) == items      # passes through
    assert log.getvalue() == ""
    assert list(progress_bar(items, desc="gen", unit="img", stream=terminal, mininterval=0)) == items
    drawn = terminal.getvalue()
    assert "gen" in drawn and "5/5" in drawn and "img/s" in drawn
    assert "<" in drawn.split("5/5")[-1]                    # tqdm's [elapsed<remaining, rate]: the ETA


def test_fit_on_a_terminal_draws_bars_and_keeps_the_table(monkeypatch):
    out, err = FakeTerminal(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    make_learner(metrics=[accuracy], progress=True).fit(2, lr=1e-2)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert [line.split()[0] for line in lines[1:]] == ["0", "1"]
    bars = err.getvalue()
    for label in ("epoch 1/2 train", "epoch 1/2 valid", "epoch 2/2 train", "epoch 2/2 valid"):
        assert label in bars
    assert "9/9" in bars and "batch/s" in bars and "loss " in bars   # 9 training batches of 240 blobs


def test_lr_find_shows_bars_but_no_table(monkeypatch, tmp_path):
    out, err = FakeTerminal(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    learn = make_learner(progress=True, path=tmp_path)
    learn.lr_find(start_lr=1e-5, end_lr=1.0, num_it=12)
    assert "train_loss" not in out.getvalue()
    assert "epoch 1/2 train" in err.getvalue()              # 12 iterations over 9 batches: 2 epochs
    learn.fit(1, lr=1e-2)                                   # the Learner's own callback is back, with its table
    assert out.getvalue().splitlines()[0].split()[:2] == ["epoch", "train_loss"]


def test_lr_find_without_progress_stays_silent(monkeypatch, tmp_path):
    out, err = FakeTerminal(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    make_learner(progress=False, path=tmp_path).lr_find(start_lr=1e-5, end_lr=1.0, num_it=12)
    assert out.getvalue() == "" and err.getvalue() == ""


def test_synthetic_command_shows_its_bar_on_a_terminal(monkeypatch, tmp_path):
    out, err = FakeTerminal(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    synthetic_main(["shapes", "--out", str(tmp_path / "shapes"), "--n", "3", "--size", "32"])
    assert "shapes" in err.getvalue() and "3/3" in err.getvalue() and "img/s" in err.getvalue()
    assert "shapes: 3 images of 32 px" in out.getvalue()


def test_mask_rcnn_detection_over_a_dataset_shows_its_bar(monkeypatch):
    mask_rcnn_evaluate = importlib.import_module("tinygrad_cv.models.mask_rcnn.evaluate")  # (the package exports
    # a function of that name)

    class CountingModel:
        config = None

        def detect(self, images, score_threshold):
            return [{"n": len(images)}] * len(images)

    monkeypatch.setattr(mask_rcnn_evaluate, "prepare_images", lambda images, config, device: images)
    out, err = FakeTerminal(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    found = mask_rcnn_evaluate.predict(CountingModel(), [{"image": i} for i in range(5)], batch_size=2)
    assert [d["n"] for d in found] == [2, 2, 2, 2, 1]
    assert "detect" in err.getvalue() and "3/3" in err.getvalue() and "batch/s" in err.getvalue()
