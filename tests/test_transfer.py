"""Transfer learning: Learner.fine_tune as fastai's (which parameters train in each phase, at which rates),
and the whole path from a saved body to a new task."""
import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import functional as F
from tinygrad_cv.io import save_safetensors
from tinygrad_cv.models import resnet18, resnet_small
from tinygrad_cv.train import Callback, Learner
from train_fixtures import image_dls


class Watch(Callback):
    """Per training batch: which fit it belongs to, each group's learning rate, and which parameters got
    a gradient (a frozen parameter gets none)."""

    def __init__(self):
        self.fits, self.rows = 0, []

    def before_fit(self):
        self.fits += 1

    def after_backward(self):
        names = {id(p): n for n, p in self.learn.model.named_parameters()}
        self.rows.append({"fit": self.fits, "pct": self.learn.pct_train,
                          "lrs": [g["lr"] for g in self.learn.opt.param_groups],
                          "grads": {names[id(p)] for p in self.learn.model.parameters() if p.grad is not None}})


def phase(rows, fit):
    return [r for r in rows if r["fit"] == fit]


def is_batch_norm(name):
    return ".bn" in name or name.startswith("bn1.") or ".downsample.1." in name


def fine_tuned(**options):
    tg.manual_seed(0)
    model = resnet_small(3, width=4, depths=(1, 1))
    learn = Learner(image_dls(), model, F.cross_entropy, progress=False)
    watch = Watch()
    learn.add_cbs([watch])
    learn.fine_tune(**options)
    return learn, watch


def test_fine_tune_freezes_then_unfreezes_with_fastais_rates():
    base_lr = 1e-2
    learn, watch = fine_tuned(epochs=2, base_lr=base_lr, freeze_epochs=1)
    names = [n for n, _ in learn.model.named_parameters()]
    head = {n for n in names if n.startswith("fc.")}
    first, second = phase(watch.rows, 1), phase(watch.rows, 2)
    per_epoch = len(learn.dls.train)
    assert len(first) == per_epoch and len(second) == 2 * per_epoch and watch.fits == 2

    # phase 1: the head and (train_bn) every batch-norm layer learn; convolutions are frozen
    for row in first:
        assert row["grads"] == head | {n for n in names if is_batch_norm(n)}
    assert any(n.endswith("conv1.weight") for n in names) and not any("conv" in n for n in first[0]["grads"])
    # slice(base_lr): base_lr / 10 for the body groups, base_lr for the head; one cycle with pct_start 0.99
    # from top / 25 (fit_one_cycle's default div), peaking at the last batch
    tops = np.array([base_lr / 10, base_lr / 10, base_lr])
    np.testing.assert_allclose(first[0]["lrs"], tops / 25)
    lrs = np.array([r["lrs"] for r in first])
    assert np.all(np.diff(lrs[:, -1]) > 0) and lrs[:, -1].max() < base_lr

    # phase 2: everything learns, at base_lr / 2 spread geometrically over the groups down to / lr_mult
    for row in second:
        assert row["grads"] == set(names)
    half = base_lr / 2
    tops = np.array([half / 100, half / 10, half])  # lo * (hi / lo) ** (i / 2), written out
    np.testing.assert_allclose(second[0]["lrs"], tops / 5)  # div=5.0
    lrs = np.array([r["lrs"] for r in second])
    peak = int(np.argmax(lrs[:, -1]))
    np.testing.assert_allclose(lrs.max(axis=0), tops, rtol=0.05)
    assert abs(second[peak]["pct"] - 0.3) <= 1.0 / len(second)  # pct_start=0.3
    np.testing.assert_allclose(lrs[:, 0] / lrs[:, -1], 0.01)  # the ratio holds all along


def test_fine_tune_without_a_frozen_phase_and_with_other_settings():
    learn, watch = fine_tuned(epochs=1, base_lr=4e-3, freeze_epochs=0, lr_mult=10, div=2.0)
    assert watch.fits == 1
    np.testing.assert_allclose(watch.rows[0]["lrs"], np.array([2e-4, 2e-4 * 10 ** 0.5, 2e-3]) / 2)
    with pytest.raises(ValueError, match="freeze_epochs must be an int >= 0, got -1"):
        learn.fine_tune(1, freeze_epochs=-1)


def test_a_saved_body_fine_tunes_on_a_new_task(tmp_path):
    """Pretrain on one task, save with save_safetensors, load into a model with another head (the head
    rule: an explicit num_classes replaces fc), and fine-tune: the body starts where it was saved."""
    tg.manual_seed(0)
    source = resnet18(num_classes=3, width=4, small_images=True)
    Learner(image_dls(seed=1), source, F.cross_entropy, progress=False).fit_one_cycle(1, 1e-2)
    save_safetensors(source.state_dict(), tmp_path / "pretrained.safetensors")

    target = resnet18(num_classes=2, weights=tmp_path / "pretrained.safetensors", width=4, small_images=True)
    assert target.fc.weight.shape == (2, 32)
    for name, value in source.state_dict().items():
        if not name.startswith("fc."):
            np.testing.assert_array_equal(target.state_dict()[name], value, err_msg=name)
    dls = image_dls(seed=2)
    for loader in (dls.train, dls.valid):
        loader.y = loader.y % 2
    learn = Learner(dls, target, F.cross_entropy, progress=False)
    frozen_before = target.layer1[0].conv1.weight.numpy().copy()
    watch = Watch()
    learn.add_cbs([watch])
    learn.fine_tune(1, freeze_epochs=1)
    assert "layer1.0.conv1.weight" not in phase(watch.rows, 1)[0]["grads"]
    assert not np.array_equal(target.layer1[0].conv1.weight.numpy(), frozen_before)  # trained in phase 2
    assert all(np.isfinite(r["valid_loss"]) for r in learn.recorder.values)
