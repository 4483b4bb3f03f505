"""The Learner: fitting, one-cycle and discriminative schedules, freezing, validation and predictions,
callbacks (early stopping, best-model saving, clipping), the LR finder, figures, progress output,
determinism and clear errors."""
import math
import os
import pathlib
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv.metrics import Metric, accuracy
from tinygrad_cv.optim import SGD, clip_grad_norm_
from tinygrad_cv.optim.lr_scheduler import annealing_cos
from tinygrad_cv.train import (Callback, EarlyStoppingCallback, GradientClip, Learner,
                               SaveModelCallback)
from tinygrad_cv.train.callbacks import CancelFitException
from tinygrad_cv.train.lr_finder import SuggestedLRs, minimum, slide, steep, valley
from train_fixtures import MLP, Loaders, cross_entropy, make_dls, make_learner

ROOT = pathlib.Path(__file__).resolve().parent.parent


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- fitting
def test_fit_learns_and_fills_the_epoch_table():
    learn = make_learner(metrics=[accuracy])
    before = learn.validate()
    learn.fit(3, lr=1e-2)
    rows = learn.recorder.values
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "valid_loss", "accuracy", "time"}
    assert rows[-1]["valid_loss"] < 0.5 * before["valid_loss"]
    assert rows[-1]["accuracy"] > 0.8
    assert len(learn.recorder.losses) == 3 * len(learn.dls.train)


def test_train_loss_is_the_batch_size_weighted_mean():
    learn = make_learner()
    learn.dls.train.batch_size = 50  # 180 samples: batches of 50, 50, 50, 30
    learn.fit(1, lr=1e-3)
    sizes = [50, 50, 50, 30]
    expected = sum(s * loss for s, loss in zip(sizes, learn.recorder.losses)) / 180
    assert learn.recorder.values[0]["train_loss"] == pytest.approx(expected, rel=1e-12)


def test_validate_weights_batches_by_size_and_matches_a_direct_computation():
    learn = make_learner(metrics=[accuracy])
    learn.dls.valid.batch_size = 25  # 60 samples: 25, 25, 10
    result = learn.validate()
    x, y = learn.dls.valid.x, learn.dls.valid.y
    learn.model.eval()
    logits = learn.model(tg.tensor(x))
    assert result["valid_loss"] == pytest.approx(cross_entropy(logits, tg.tensor(y)).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(logits.numpy().argmax(1) == y))


def test_same_seed_same_losses_run_after_run():
    runs = []
    for _ in range(2):
        learn = make_learner(seed=3, dropout=0.2)
        learn.fit_one_cycle(2, 1e-2)
        runs.append((learn.recorder.losses, [r["valid_loss"] for r in learn.recorder.values]))
    assert runs[0] == runs[1]
    other = make_learner(seed=4, dropout=0.2)
    other.fit_one_cycle(2, 1e-2)
    assert other.recorder.losses != runs[0][0]


# ----------------------------------------------------------------------------- schedules
def test_fit_one_cycle_follows_fastais_schedule():
    learn = make_learner()
    n_iter = len(learn.dls.train)            # 9 batches per epoch, 18 in all
    learn.fit_one_cycle(2, 1e-2, pct_start=0.25)
    lrs, moms = learn.recorder.lrs, learn.recorder.moms
    total = 2 * n_iter
    for i in (0, 2, 4, 5, 11, 17):
        pos = i / total
        if pos < 0.25:
            lr, mom = annealing_cos(1e-2 / 25, 1e-2, pos / 0.25), annealing_cos(0.95, 0.85, pos / 0.25)
        else:
            lr = annealing_cos(1e-2, 1e-2 / 1e5, (pos - 0.25) / 0.75)
            mom = annealing_cos(0.85, 0.95, (pos - 0.25) / 0.75)
        assert lrs[i] == pytest.approx(lr, rel=1e-12) and moms[i] == pytest.approx(mom, rel=1e-12)
    assert lrs[0] == pytest.approx(4e-4) and moms[0] == pytest.approx(0.95)
    assert max(lrs) <= 1e-2 and lrs[-1] < lrs[0] / 2  # the last batch is 17/18 of the way down


def test_discriminative_learning_rates_from_a_slice():
    learn = make_learner()
    seen = []

    class GroupRates(Callback):
        order = 30

        def after_step(self):
            seen.append([g["lr"] for g in self.learn.opt.param_groups])

    learn.fit(1, lr=slice(1e-4, 1e-2), cbs=[GroupRates()])
    np.testing.assert_allclose(seen[0], [1e-4, 1e-2], rtol=1e-12)
    learn.fit_one_cycle(1, slice(1e-3), pct_start=0.0, cbs=[GroupRates()])
    np.testing.assert_allclose(seen[len(learn.dls.train)], [1e-4, 1e-3], rtol=1e-12)  # fastai: hi/10, hi


def test_fit_with_sgd_cycles_its_momentum():
    learn = make_learner(opt_func=lambda params, lr: SGD(params, lr, momentum=0.9))
    learn.fit_one_cycle(1, 1e-2)
    assert learn.recorder.moms[0] == pytest.approx(0.95) and min(learn.recorder.moms) < 0.86


class StopAfterFirstStep(Callback):
    def after_step(self):
        raise CancelFitException()


def test_fit_one_cycle_wd_is_the_weight_decay_of_that_fit():
    # SGD without momentum: p1 = p0 - lr (g + wd p0), and g is the same at p0 whatever wd is, so the first
    # step with wd differs from the one without by exactly -lr wd p0 (lr = lr_max / div at the start)
    sgd = lambda params, lr: SGD(params, lr)  # noqa: E731
    before = weights(make_learner(opt_func=sgd).model)
    steps = {}
    for wd in (0.0, 0.5):
        learn = make_learner(opt_func=sgd)
        learn.fit_one_cycle(1, 1e-1, wd=wd, cbs=[StopAfterFirstStep()])
        assert [g["weight_decay"] for g in learn.opt.param_groups] == [wd, wd]
        steps[wd] = weights(learn.model)
    for name, p0 in before.items():
        np.testing.assert_allclose(steps[0.5][name] - steps[0.0][name], -1e-1 / 25 * 0.5 * p0, rtol=1e-4,
                                   atol=1e-7)
    with pytest.raises(ValueError, match="fit: wd"):
        make_learner().fit(1, wd=-1.0)


def test_summary_lists_each_layer_call_with_its_output_shape_and_parameters():
    from tinygrad_cv import nn
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    model[0].requires_grad_(False)
    learn = Learner(make_dls(), model, cross_entropy, progress=False)
    model.train()
    lines = learn.summary().splitlines()
    assert lines[0] == "Sequential (Input shape: 20 x 4)"                       # batch size 20, 4 features
    rows = [line.split() for line in lines[2:5]]
    # by hand: 4 * 16 + 16 = 80 and 16 * 3 + 3 = 51 parameters; the first layer frozen
    assert rows == [["0", "(Linear)", "20", "x", "16", "80", "False"], ["1", "(ReLU)", "20", "x", "16", "0"],
                    ["2", "(Linear)", "20", "x", "3", "51", "True"]]
    assert lines[5:] == ["Total params: 131", "Total trainable params: 51", "Total non-trainable params: 80",
                         "Optimizer used: Adam", "Loss function: cross_entropy"]
    assert model.training and all(not m._forward_hooks for m in model.modules())  # mode restored, hooks gone
    assert repr(learn.summary()) == str(learn.summary())


def test_export_and_load_learner_round_trip_without_pickle(tmp_path):
    from tinygrad_cv.data.transforms import Normalize
    from tinygrad_cv.io import read_safetensors
    from tinygrad_cv.train import load_learner
    learn = make_learner(path=tmp_path)
    learn.fit(1, lr=1e-2)
    learn.dls.vocab, learn.dls.normalize = ["a", "b", "c"], Normalize([0.5, 0.25, 0.125], [0.2, 0.3, 0.4])
    path = learn.export()
    assert path == os.path.join(str(tmp_path), "export.safetensors")
    arrays, _ = read_safetensors(path)                       # a plain safetensors file: arrays and a header
    assert sorted(arrays) == sorted(weights(learn.model))
    tg.manual_seed(1)
    loaded = load_learner(path, MLP())                        # other initial weights, replaced by the exported
    for name, value in weights(loaded.model).items():
        np.testing.assert_array_equal(value, weights(learn.model)[name])
    x = tg.tensor(np.random.default_rng(0).standard_normal(4).astype(np.float32))
    np.testing.assert_array_equal(loaded.predict(x).numpy(), learn.predict(x).numpy())
    assert loaded.dls.vocab == ["a", "b", "c"] and loaded.dls.device == "cpu"
    np.testing.assert_array_equal(loaded.dls.normalize.std, [0.2, 0.3, 0.4])


def test_load_learner_refuses_another_file_or_architecture(tmp_path):
    from tinygrad_cv import nn
    from tinygrad_cv.train import load_learner
    learn = make_learner(path=tmp_path)
    path = learn.export("model.safetensors")
    with pytest.raises(ValueError, match=r"holds a train_fixtures.MLP but the model given is a .*Linear"):
        load_learner(path, nn.Linear(4, 3))
    with pytest.raises(ValueError):                           # same class, other shapes: load_state_dict refuses
        load_learner(path, MLP(n_hidden=8))
    checkpoint = learn.save("ckpt")
    with pytest.raises(ValueError, match="not one written by Learner.export"):
        load_learner(checkpoint, MLP())
    with pytest.raises(TypeError, match="load_learner: model must be an nn.Module"):
        load_learner(path, MLP)


# ----------------------------------------------------------------------------- freezing
def test_freeze_trains_only_the_head_and_unfreeze_trains_all():
    learn = make_learner()
    learn.freeze()
    before = weights(learn.model)
    learn.fit(1, lr=1e-2)
    after = weights(learn.model)
    assert np.array_equal(before["w1"], after["w1"]) and np.array_equal(before["b1"], after["b1"])
    assert not np.array_equal(before["w2"], after["w2"])
    learn.unfreeze()
    learn.fit(1, lr=1e-2)
    assert not np.array_equal(after["w1"], weights(learn.model)["w1"])


def test_layer_groups_must_cover_every_parameter():
    class Partial(MLP):
        def layer_groups(self):
            return [[self.w1], [self.w2, self.b2]]

    learn = Learner(make_dls(), Partial(), cross_entropy, progress=False)
    with pytest.raises(ValueError, match=r"leaves out parameters \['b1'\]"):
        learn.fit(1)


# ----------------------------------------------------------------------------- a dict of losses
def ce_and_l2(pred, y, model):
    """Two loss terms: the cross-entropy and a small L2 penalty on the first layer."""
    return {"ce": cross_entropy(pred, y), "l2": (model.w1 * model.w1).sum() * 0.01}


def test_a_dict_of_losses_is_summed_for_backward_and_each_term_logged(capsys):
    learn = make_learner(progress=True)
    learn.loss_func = partial(ce_and_l2, model=learn.model)
    learn.fit(2, lr=1e-2)
    reference = make_learner()                               # the same seed, the scalar sum as the loss
    reference.loss_func = lambda pred, y: sum(ce_and_l2(pred, y, reference.model).values())
    reference.fit(2, lr=1e-2)
    for key, value in weights(reference.model).items():
        np.testing.assert_allclose(weights(learn.model)[key], value, rtol=1e-6, atol=1e-7)

    recorder, n_batches = learn.recorder, len(learn.dls.train)
    assert set(recorder.term_losses) == {"ce", "l2"} and len(recorder.term_losses["ce"]) == 2 * n_batches
    np.testing.assert_allclose(np.add(recorder.term_losses["ce"], recorder.term_losses["l2"]), recorder.losses,
                               rtol=1e-6)
    row = recorder.values[1]                                 # 9 batches of 20: the plain mean of the batches
    assert row["ce"] == pytest.approx(np.mean(recorder.term_losses["ce"][n_batches:]), rel=1e-9)
    assert row["valid_loss"] == pytest.approx(row["valid_ce"] + row["valid_l2"], rel=1e-6)
    valid = learn.validate()
    learn.model.eval()
    direct = ce_and_l2(learn.model(tg.tensor(learn.dls.valid.x)), tg.tensor(learn.dls.valid.y), learn.model)
    assert valid["valid_ce"] == pytest.approx(direct["ce"].item(), rel=1e-5)
    assert valid["valid_l2"] == pytest.approx(direct["l2"].item(), rel=1e-6)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "ce", "l2", "time"] and len(lines) == 3
    figure = recorder.plot_loss()
    assert len(figure.axes) == 2 and len(figure.axes[1].lines) == 4  # each term: training, validation


def test_the_progress_line_shows_each_smoothed_loss_term(monkeypatch):
    import io
    from tinygrad_cv.train import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr(progress, "text_tqdm", partial(progress.text_tqdm, mininterval=0))
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    out, err = Terminal(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    learn = make_learner(progress=True)
    learn.loss_func = partial(ce_and_l2, model=learn.model)
    learn.fit(1, lr=1e-2)
    recorder = learn.recorder
    last = (f"loss {recorder.smooth_losses[-1]:.4f} ce {recorder.smooth_term_losses['ce'][-1]:.4f} "
            f"l2 {recorder.smooth_term_losses['l2'][-1]:.4f}")
    assert last in err.getvalue()


class SelfScoring(MLP):
    """A model that computes its own loss when given targets, as torchvision's detection models."""

    def forward(self, x, y=None):
        logits = super().forward(x)
        return logits if y is None else {"ce": cross_entropy(logits, y)}


def test_loss_func_none_trains_on_the_models_own_losses_and_scores_its_predictions():
    tg.manual_seed(0)
    learn = Learner(make_dls(), SelfScoring(), None, metrics=[accuracy], progress=False)
    learn.fit(2, lr=1e-2)
    reference = make_learner()
    reference.fit(2, lr=1e-2)
    np.testing.assert_allclose(learn.recorder.losses, reference.recorder.losses, rtol=1e-6)
    result = learn.validate()
    learn.model.eval()
    logits = learn.model(tg.tensor(learn.dls.valid.x))
    assert result["accuracy"] == pytest.approx(np.mean(logits.numpy().argmax(1) == learn.dls.valid.y))
    assert result["valid_loss"] == pytest.approx(cross_entropy(logits, tg.tensor(learn.dls.valid.y)).item(),
                                                 rel=1e-5)


@pytest.mark.parametrize("losses, error, message", [
    (lambda p, y: {"ce": cross_entropy(p, y), "bad": 1.0}, TypeError, r"term 'bad' returned a float"),
    (lambda p, y: {"ce": cross_entropy(p, y), "vec": p.sum(1)}, ValueError, r"term 'vec' returned a Tensor of shape"),
    (lambda p, y: {}, ValueError, "one or more loss terms"),
    (lambda p, y: {"constant": tg.tensor(np.float32(1.0))}, ValueError, r"sum of its loss terms\) returned a Tensor "
                                                                         r"that does not depend"),
])
def test_bad_loss_dicts_are_named(losses, error, message):
    learn = make_learner()
    learn.loss_func = losses
    with pytest.raises(error, match=message):
        learn.fit(1)


def test_loss_terms_must_not_change_between_batches():
    learn = make_learner()
    calls = []

    def changing(pred, y):
        calls.append(1)
        return {"ce" if len(calls) == 1 else "other": cross_entropy(pred, y)}
    learn.loss_func = changing
    with pytest.raises(ValueError, match=r"the loss terms \['other'\], but earlier batches had \['ce'\]"):
        learn.fit(1)


def test_named_stages_need_a_model_that_names_them():
    learn = make_learner()
    with pytest.raises(TypeError, match="freeze_to: MLP names no training stages"):
        learn.freeze_to("heads")


# ----------------------------------------------------------------------------- callbacks
class Scripted(Metric):
    """A metric whose value at epoch e is scores[e] (to script improvements)."""

    name = "scripted"

    def __init__(self, scores):
        self.scores, self.epoch = scores, -1

    def reset(self):
        self.epoch += 1

    def accumulate(self, pred, targ):
        pass

    @property
    def value(self):
        return self.scores[self.epoch]


def test_early_stopping_waits_patience_epochs():
    # best at epoch 1 (0.5); epochs 2 and 3 improve by less than min_delta=0.05 -> stop after epoch 3
    learn = make_learner(metrics=[Scripted([0.1, 0.5, 0.52, 0.54, 0.9, 0.9])])
    learn.fit(6, lr=1e-3, cbs=[EarlyStoppingCallback(monitor="scripted", min_delta=0.05, patience=2)])
    assert [r["epoch"] for r in learn.recorder.values] == [0, 1, 2, 3]


def test_early_stopping_on_a_missing_column_is_a_clear_error():
    with pytest.raises(ValueError, match="monitor='f2' is not a column"):
        make_learner().fit(1, cbs=[EarlyStoppingCallback(monitor="f2")])


def test_save_model_callback_keeps_and_restores_the_best(tmp_path):
    snapshots = []

    class Snapshot(Callback):
        def after_epoch(self):
            snapshots.append(weights(self.learn.model))

    learn = make_learner(metrics=[Scripted([0.2, 0.9, 0.3, 0.4])], path=tmp_path)
    learn.fit(4, lr=1e-2, cbs=[Snapshot(), SaveModelCallback(monitor="scripted", fname="best")])
    assert (tmp_path / "models" / "best.safetensors").exists()
    for name, value in weights(learn.model).items():
        np.testing.assert_array_equal(value, snapshots[1][name])


def test_gradient_clip_bounds_the_norm_before_the_step():
    norms = []

    class Norm(Callback):
        order = 25  # after GradientClip (20)

        def after_backward(self):
            norms.append(clip_grad_norm_(self.learn.model.parameters(), max_norm=1e9).item())

    make_learner().fit(1, lr=1.0, cbs=[GradientClip(max_norm=0.1), Norm()])
    assert max(norms) <= 0.1 + 1e-6


# ----------------------------------------------------------------------------- predictions and figures
def test_get_preds_and_predict_agree_with_the_model():
    learn = make_learner()
    learn.fit(1, lr=1e-2)
    preds, targs = learn.get_preds(act=lambda t: t.softmax(1))
    learn.model.eval()
    direct = learn.model(tg.tensor(learn.dls.valid.x)).softmax(1).numpy()
    np.testing.assert_allclose(preds.numpy(), direct, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(targs.numpy(), learn.dls.valid.y)
    one = learn.predict(learn.dls.valid.x[7], act=lambda t: t.softmax(1))
    np.testing.assert_allclose(one.numpy(), direct[7], rtol=1e-5, atol=1e-7)


def test_recorder_figures_are_returned_and_written_only_with_a_fname(tmp_path):
    from matplotlib.figure import Figure
    learn = make_learner(metrics=[accuracy], path=tmp_path)
    learn.fit_one_cycle(2, 1e-2)
    rec = learn.recorder
    plots = [rec.plot_loss, rec.plot_sched, rec.plot_metrics, rec.plot_losses, rec.plot_lr]
    assert all(isinstance(plot(), Figure) for plot in plots) and list(tmp_path.iterdir()) == []
    for i, plot in enumerate(plots):
        assert isinstance(plot(fname=tmp_path / f"{i}.png"), Figure)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.png" for i in range(len(plots))]
    assert all(os.path.getsize(p) > 1000 for p in tmp_path.iterdir())
    assert rec.plot_lr == rec.plot_sched                    # fastai v1's name for the same method
    loss_lines = rec.plot_loss(skip_start=2).axes[0].get_lines()
    np.testing.assert_array_equal(loss_lines[0].get_ydata(), rec.smooth_losses[2:])
    assert [line.get_label() for line in loss_lines] == ["train (smoothed)", "valid"]
    assert len(rec.plot_loss(with_valid=False).axes[0].get_lines()) == 1


def test_a_returned_figure_shows_as_a_png_in_ipython():
    learn = make_learner()
    learn.fit(1, lr=1e-3)
    png = learn.recorder.plot_sched()._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


# ----------------------------------------------------------------------------- LR finder
def test_lr_find_sweeps_exponentially_and_restores_weights_and_optimiser(tmp_path):
    learn = make_learner(path=tmp_path)
    learn.fit(1, lr=1e-3)
    model_before, opt_before = weights(learn.model), learn.opt.state_dict()
    suggestions = learn.lr_find(start_lr=1e-5, end_lr=1.0, num_it=30)
    finder = learn.lr_finder
    for i, lr in enumerate(finder.lrs):
        assert lr == pytest.approx(1e-5 * (1.0 / 1e-5) ** (i / 30), rel=1e-12)
    for name, value in weights(learn.model).items():
        np.testing.assert_array_equal(value, model_before[name])
    opt_after = learn.opt.state_dict()
    assert opt_after["param_groups"] == opt_before["param_groups"]
    for saved, now in zip(opt_before["state"], opt_after["state"]):
        for key in saved:
            np.testing.assert_array_equal(np.asarray(saved[key]), np.asarray(now[key]))
    assert all(1e-5 <= s <= 1.0 for s in suggestions)
    assert list(tmp_path.iterdir()) == []                 # no fname: nothing written
    learn.lr_find(start_lr=1e-5, end_lr=1.0, num_it=30, fname=tmp_path / "lr_find.png")
    assert os.path.getsize(tmp_path / "lr_find.png") > 1000


def test_lr_find_stops_when_the_loss_explodes(tmp_path):
    learn = make_learner(path=tmp_path)
    learn.lr_find(start_lr=1e-3, end_lr=1e5, num_it=100)
    finder = learn.lr_finder
    assert len(finder.losses) < 100
    assert not finder.losses[-1] <= 4 * finder.best      # the stopping point, NaN included
    assert all(loss <= 4 * finder.best for loss in finder.losses[:-1])


def test_lr_find_without_stop_div_runs_all_num_it_batches(tmp_path):
    learn = make_learner(path=tmp_path)
    learn.lr_find(start_lr=1e-3, end_lr=1e5, num_it=100, stop_div=False, show_plot=False)
    assert len(learn.lr_finder.losses) == 100 and learn.lr_finder.diverged   # diverged, and went on


def test_lr_find_returns_one_named_rate_per_suggest_func(tmp_path):
    learn = make_learner(path=tmp_path)
    funcs = (minimum, partial(slide, lr_diff=5), valley)
    suggestions = learn.lr_find(start_lr=1e-5, end_lr=1.0, num_it=30, suggest_funcs=funcs, show_plot=False)
    assert suggestions._fields == ("minimum", "slide", "valley")
    lrs, losses = learn.lr_finder.curve()
    assert list(suggestions) == [f(lrs, losses, 30)[0] for f in funcs]
    assert type(learn.lr_find(num_it=30, show_plot=False)) is SuggestedLRs      # default: valley, steep, minimum
    del learn.lr_finder
    with pytest.raises(TypeError, match="suggest_funcs must be a non-empty tuple of functions"):
        learn.lr_find(num_it=30, suggest_funcs=valley)
    with pytest.raises(ValueError, match="distinct names"):
        learn.lr_find(num_it=30, suggest_funcs=(valley, partial(valley)))
    assert not hasattr(learn, "lr_finder")                                     # refused before the sweep


def test_lr_find_shows_its_plot_only_with_show_plot(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from tinygrad_cv.train import learner as learner_module
    shown = []
    monkeypatch.setattr(learner_module, "show_inline", shown.append)
    learn = make_learner(path=tmp_path)
    learn.lr_find(num_it=30, show_plot=False)
    assert shown == []
    learn.lr_find(num_it=30)
    assert len(shown) == 1 and isinstance(shown[0], Figure)
    labels = [line.get_label().split(":")[0] for line in shown[0].axes[0].get_lines()]
    assert labels[1:] == ["valley", "steep", "minimum"] and list(tmp_path.iterdir()) == []


def test_show_inline_displays_only_in_a_running_ipython(monkeypatch):
    import sys
    import types

    from tinygrad_cv.data.show import show_inline
    shown, ipython, display = [], types.ModuleType("IPython"), types.ModuleType("IPython.display")
    ipython.get_ipython, display.display = lambda: None, shown.append
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    show_inline("figure")
    assert shown == []                                   # IPython imported but not running: a script
    ipython.get_ipython = lambda: object()
    show_inline("figure")
    assert shown == ["figure"]


def test_lr_finder_smoothing_is_debiased(tmp_path):
    learn = make_learner(path=tmp_path)
    learn.lr_find(start_lr=1e-6, end_lr=1e-5, num_it=12)
    raw = learn.recorder.losses
    average, smoothed = 0.0, []
    for t, loss in enumerate(raw, start=1):
        average = 0.98 * average + 0.02 * loss
        smoothed.append(average / (1 - 0.98 ** t))
    np.testing.assert_allclose(learn.lr_finder.losses, smoothed, rtol=1e-12)
    assert smoothed[0] == pytest.approx(raw[0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_it=5), r"num_it must be an integer >= 10, got 5"),
    (dict(num_it=2), r"num_it must be an integer >= 10, got 2"),
    (dict(num_it=20.5), r"num_it must be an integer >= 10, got 20.5"),
    (dict(end_lr=math.inf), "need finite 0 < start_lr < end_lr"),
    (dict(start_lr=1.0, end_lr=0.1), "need finite 0 < start_lr < end_lr"),
])
def test_lr_find_checks_its_arguments(tmp_path, kwargs, message):
    learn = make_learner(path=tmp_path)
    with pytest.raises(ValueError, match=message):
        learn.lr_find(**kwargs)


def test_lr_find_that_stops_early_without_diverging_says_not_enough_iterations(tmp_path):
    class StopAfter(Callback):
        order = 56

        def after_batch(self):
            if self.learn.training and self.learn.train_iter + 1 >= 6:
                raise CancelFitException()

    learn = make_learner(path=tmp_path, cbs=[StopAfter()])
    with pytest.raises(ValueError, match=r"not enough iterations to suggest a rate: only 0 usable points \(of 6 "
                                         r"batches; 4 needed\).*without diverging"):
        learn.lr_find(start_lr=1e-6, end_lr=1e-4, num_it=50)
    assert not learn.lr_finder.diverged


def test_lr_find_on_a_curve_that_does_not_diverge(tmp_path):
    # a gentle sweep (1e-4 .. 1e-2 over 20 batches) never diverges; the suggestions come from the curve
    # trimmed to points 2 .. 14 (the first 20 // 10 and the last 5 dropped)
    learn = make_learner(path=tmp_path)
    suggestions = learn.lr_find(start_lr=1e-4, end_lr=1e-2, num_it=20)
    finder = learn.lr_finder
    assert not finder.diverged and len(finder.losses) == 20
    lrs, losses = np.array(finder.lrs[2:-5]), np.array(finder.losses[2:-5])
    assert suggestions == (valley(lrs, losses, 20)[0], steep(lrs, losses, 20)[0], minimum(lrs, losses, 20)[0])
    assert all(1e-5 <= s <= 1e-2 for s in suggestions)


# ----------------------------------------------------------------------------- progress output
def test_table_prints_one_line_per_epoch(capsys):
    learn = make_learner(metrics=[accuracy], progress=True)
    learn.fit(2, lr=1e-2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert [line.split()[0] for line in lines[1:]] == ["0", "1"] and "\r" not in "".join(lines)


# ----------------------------------------------------------------------------- errors
def test_nan_loss_stops_with_epoch_and_batch():
    calls = []

    def poisoned(pred, y):
        calls.append(1)
        loss = cross_entropy(pred, y)
        # epoch 0 makes 9 training and 3 validation calls; call 15 is batch 2 of epoch 1
        return loss * float("nan") if len(calls) == 15 else loss

    tg.manual_seed(0)
    learn = Learner(make_dls(), MLP(), poisoned, progress=False)
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1 \(of 3\), batch 2 \(of 9\)"):
        learn.fit(3, lr=1e-3)


@pytest.mark.parametrize("make,message", [
    (lambda: Learner(object(), MLP(), cross_entropy), "dls must have .train and .valid"),
    (lambda: Learner(make_dls(), lambda x: x, cross_entropy), "model must be an nn.Module"),
    (lambda: make_learner().fit(1, lr=0), "positive finite number, a slice"),
    (lambda: make_learner().fit(1, lr=-1e-3), "positive finite number, a slice"),
    (lambda: make_learner().fit(1, lr=slice(-1e-3, 1e-2)), "positive finite number, a slice"),
    (lambda: make_learner().fit(0), "n_epoch >= 1"),
    (lambda: make_learner().fit(-1), "n_epoch >= 1 .*got n_epoch=-1"),
    (lambda: make_learner().fit(None), "fit: n_epoch must be an int, got None"),
    (lambda: make_learner().fit(2.5), "fit: n_epoch must be an int, got 2.5"),
    (lambda: make_learner().fit(2, start_epoch=2), "0 <= start_epoch < n_epoch"),
    (lambda: make_learner().fit(1, lr=math.inf), "positive finite number, a slice.*got inf"),
    (lambda: make_learner().fit(1, lr=math.nan), "positive finite number, a slice.*got nan"),
    (lambda: make_learner().fit_one_cycle(1, [1e-3, 1e-2, 1e-1]),
     r"fit_one_cycle: got 3 learning rates \[0.001, 0.01, 0.1\] but the model has 2 layer groups"),
    (lambda: make_learner().fit(1, lr=[1e-3]), "fit: got 1 learning rates"),
    (lambda: make_learner().fit_one_cycle(1, [1e-3, -1e-2]), "fit_one_cycle: the learning rate must be"),
    (lambda: make_learner().fit_one_cycle(1, 1e-3, pct_start=1.5), r"pct_start must be .*\[0.0, 1.0\]"),
    (lambda: make_learner().fit_one_cycle(1, 1e-3, div=0), "fit_one_cycle: div must be"),
    (lambda: make_learner().fit_one_cycle(1, 1e-3, moms=(0.95, 1.2, 0.95)), r"moms\[1\] must be"),
    (lambda: make_learner().fit_one_cycle(1, 1e-3, moms=0.9), "moms must be three momenta"),
    (lambda: make_learner(cbs=[GradientClip]), r"callbacks must be Callback instances.*pass GradientClip\(\)"),
    (lambda: make_learner().fit(1, cbs=[print]), r"callbacks must be Callback instances, got <built-in"),
    (lambda: make_learner().freeze_to(2), r"freeze_to: n must be an integer in \[-2, 1\] .*got 2"),
    (lambda: make_learner().freeze_to(-3), r"freeze_to: n must be .*got -3"),
    (lambda: GradientClip(max_norm=-1.0), r"GradientClip: max_norm must be .*got -1.0"),
    (lambda: EarlyStoppingCallback(patience=0), r"patience must be a positive integer .*got 0"),
    (lambda: EarlyStoppingCallback(min_delta=math.nan), r"EarlyStoppingCallback: min_delta must be a finite"),
    (lambda: make_learner(metrics=[accuracy, accuracy]), "repeat"),
    (lambda: Learner(Loaders([(tg.zeros(2, 4),)], []), MLP(), cross_entropy, progress=False).fit(1),
     r"a batch must be a tuple \(x, ..., y\)"),
])
def test_bad_input_raises_clear_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_one_learning_rate_per_layer_group_as_a_list():
    learn = make_learner()
    learn.fit(1, lr=[1e-3, 1e-2])
    assert [g["lr"] for g in learn.opt.param_groups] == [1e-3, 1e-2]
    learn.fit_one_cycle(1, np.array([2e-3, 2e-2]))  # 9 batches; the recorder follows the last group
    top = 2e-2
    expected = [annealing_cos(top / 25, top, (i / 9) / 0.25) if i / 9 < 0.25 else
                annealing_cos(top, top / 1e5, (i / 9 - 0.25) / 0.75) for i in range(9)]
    np.testing.assert_allclose(learn.recorder.lrs, expected, rtol=1e-12)
    assert learn.opt.param_groups[0]["lr"] == pytest.approx(expected[-1] / 10, rel=1e-12)


@pytest.mark.parametrize("loss_func,error,message", [
    (lambda pred, y: 1.0, TypeError, r"loss_func <lambda> returned a float \(1.0\); it must return a scalar"),
    (lambda pred, y: (pred * 0).sum(1), ValueError, r"returned a Tensor of shape \(20,\).*one floating-point"),
    (lambda pred, y: tg.tensor(float(cross_entropy(pred, y).item())), ValueError,
     "does not depend on any trainable parameter"),
])
def test_a_loss_function_that_returns_no_scalar_loss_is_named(loss_func, error, message):
    tg.manual_seed(0)
    learn = Learner(make_dls(), MLP(), loss_func, progress=False)
    with pytest.raises(error, match=message):
        learn.fit(1)


def test_fit_with_every_parameter_frozen_says_to_unfreeze():
    learn = make_learner()
    learn.model.requires_grad_(False)
    with pytest.raises(ValueError, match=r"fit: no parameter of MLP requires grad.*learn.unfreeze\(\)"):
        learn.fit(1)
    learn.freeze()  # the head trains again
    learn.fit(1)


def test_a_model_without_parameters_is_refused():
    class Identity(tg.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=r"Learner: the model \(Identity\) has no parameters"):
        Learner(make_dls(), Identity(), cross_entropy)


def test_a_metric_that_is_nan_warns_and_names_itself():
    def broken(pred, y):
        return math.nan

    learn = make_learner(metrics=[accuracy, broken])
    with pytest.warns(RuntimeWarning, match=r"metric 'broken' is NaN at epoch 0"):
        learn.fit(1, lr=1e-3)
    assert math.isnan(learn.recorder.values[0]["broken"]) and learn.recorder.values[0]["accuracy"] > 0


def test_figures_before_training_and_predictions_of_an_empty_loader_say_what_is_missing(tmp_path):
    learn = make_learner(path=tmp_path)
    for plot, what in ((learn.recorder.plot_losses, "training loss"), (learn.recorder.plot_lr, "learning rate"),
                       (learn.recorder.plot_metrics, "epoch")):
        with pytest.raises(ValueError, match=f"Recorder: no {what} recorded yet; train first"):
            plot()
    learn.fit(1, lr=1e-3)
    with pytest.raises(ValueError, match=r"no loss scale .*learn.to_fp16\(\)"):
        learn.recorder.plot_loss_scale()
    with pytest.raises(ValueError, match="get_preds: the loader has no batches"):
        learn.get_preds(dl=[])


def test_importing_the_training_package_does_not_import_plotting():
    code = ("import sys, tinygrad_cv.train, tinygrad_cv.metrics; "
            "print(any(m.startswith(('matplotlib', 'PIL')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


def test_no_bad_value_reaches_the_table_as_nan():
    learn = make_learner(metrics=[accuracy])
    learn.fit(1, lr=1e-2)
    assert all(math.isfinite(v) for k, v in learn.recorder.values[0].items() if k != "epoch")


def test_predictions_as_targets_turns_predictions_into_the_targets_form():
    from tinygrad_cv.train.show import predictions_as_targets as as_targets
    scores = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.9]])
    np.testing.assert_array_equal(as_targets(np.array([1, 0]), scores, 0.5), [1, 2])                  # classes
    np.testing.assert_array_equal(as_targets(np.zeros((2, 3)), scores, 0.5), [[0, 1, 0], [1, 0, 1]])  # tags
    masks = np.zeros((1, 2, 1, 2))
    masks[0, 1, 0, 1] = 1.0                                               # class 1 at pixel (0, 1)
    np.testing.assert_array_equal(as_targets(np.zeros((1, 1, 2)), masks, 0.5), [[[0, 1]]])


@pytest.mark.parametrize("task", ["classes", "tags", "masks"])
def test_show_results_draws_each_kind_of_target(tmp_path, task):
    from tinygrad_cv.train.show import show_results
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 8))
    y, pred = {"classes": (rng.integers(0, 3, 4), rng.random((4, 3))),
               "tags": ((rng.random((4, 3)) > 0.5).astype(np.float32), rng.random((4, 3))),
               "masks": (rng.integers(0, 3, (4, 8, 8)), rng.random((4, 3, 8, 8)))}[task]
    figure = show_results(x, y, pred, tmp_path / "results.png", max_n=3, vocab=["sky", "road", "car"])
    assert os.path.getsize(tmp_path / "results.png") > 1000
    assert len([ax for ax in figure.axes if ax.images]) == (6 if task == "masks" else 3)


def test_learner_show_results_uses_a_validation_batch(tmp_path):
    learn = make_learner(path=tmp_path)
    learn.dls.valid.x = learn.dls.valid.x.reshape(-1, 1, 2, 2)    # 4 features seen as 1x2x2 images

    class Flat(MLP):
        def forward(self, x):
            return super().forward(x.reshape(len(x), -1))

    tg.manual_seed(0)
    learn.model = Flat()
    assert len([ax for ax in learn.show_results().axes if ax.images]) == 9       # fastai's max_n=9
    learn.show_results(max_n=4, fname=tmp_path / "results.png")
    assert os.path.getsize(tmp_path / "results.png") > 1000


def test_predict_normalises_a_raw_image_like_the_loaders():
    class Normalizing(Loaders):
        @staticmethod
        def normalize(images):  # (N, H, W, C) uint8 -> (N, C, H, W) float32, as data.Normalize
            return (images.transpose(0, 3, 1, 2).astype(np.float32) - 128) / 64

    class Flat(MLP):
        def forward(self, x):
            return super().forward(x.reshape(len(x), -1))

    tg.manual_seed(0)
    dls = make_dls()
    learn = Learner(Normalizing(dls.train, dls.valid), Flat(), cross_entropy, progress=False)
    image = np.array([[[10], [200]], [[128], [255]]], dtype=np.uint8)
    expected = learn.model(tg.tensor(((image.astype(np.float32) - 128) / 64).reshape(1, 4)))[0]
    np.testing.assert_allclose(learn.predict(image).numpy(), expected.numpy(), rtol=1e-6)


def test_freeze_keeps_batch_norm_trainable_unless_told_otherwise():
    from tinygrad_cv import functional as F
    from train_fixtures import TinyCNN, image_dls
    for train_bn in (True, False):
        tg.manual_seed(0)
        learn = Learner(image_dls(), TinyCNN(), F.cross_entropy, train_bn=train_bn, progress=False)
        learn.freeze()
        before = weights(learn.model)
        learn.fit(1, lr=1e-2)
        after = weights(learn.model)
        assert np.array_equal(before["body.0.weight"], after["body.0.weight"])       # frozen conv
        assert not np.array_equal(before["head.2.weight"], after["head.2.weight"])   # trained head
        assert np.array_equal(before["body.1.weight"], after["body.1.weight"]) != train_bn


def test_the_small_cnn_lesson_runs_quick(tmp_path):
    lesson = ROOT / "lessons" / "train_small_cnn.py"
    result = subprocess.run([sys.executable, str(lesson), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    for name in ("lr_find.png", "losses.png", "lr_schedule.png", "metrics.png", "results.png"):
        assert os.path.getsize(tmp_path / name) > 1000, name
        assert f"figure: {tmp_path / name}" in result.stdout
    table = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"])]
    assert [row[0] for row in table] == ["0", "1", "2"]


def test_a_learner_without_loss_func_says_so_at_the_first_labelled_batch(tmp_path):
    """load_learner's loss_func defaults to None; fitting or validating then names the missing loss_func
    (it was "'NoneType' object is not callable")."""
    learn = Learner(make_dls(), MLP(), None, path=tmp_path, progress=False)
    for run in (lambda: learn.fit(1, lr=1e-2), learn.validate):
        with pytest.raises(TypeError, match=r"Learner: loss_func is None, so the model must compute its own losses"):
            run()
