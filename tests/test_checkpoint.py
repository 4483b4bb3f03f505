"""Checkpoints: round trips, no pickle ever, atomic writes, clear errors for another model, and training
resumed from a checkpoint that continues exactly as uninterrupted training would."""
import glob
import os
import pickle

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import optim
from tinygrad_cv.nn import Module, Parameter
from tinygrad_cv.optim.lr_scheduler import OneCycleLR
from tinygrad_cv.random import generator
from tinygrad_cv.train import SaveModelCallback, load_checkpoint, load_state, save_checkpoint, save_state
from tinygrad_cv.train import Learner
from train_fixtures import MLP, blobs, cross_entropy, make_learner


def trained_mlp_and_optimizer(steps=3):
    tg.manual_seed(0)
    model = MLP()
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    sched = OneCycleLR(opt, max_lr=1e-2, total_steps=10)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = tg.randn(*p.shape)
        opt.step()
        sched.step()
    return model, opt, sched


def test_round_trip_restores_model_optimiser_schedule_epoch_and_extra(tmp_path):
    model, opt, sched = trained_mlp_and_optimizer()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt, sched, epoch=7, extra={"note": "hello", "scale": 2.0 ** 16,
                                                              "history": np.arange(3.0)})
    tg.manual_seed(99)
    other = MLP()
    other_opt = optim.AdamW(other.parameters(), lr=1.0)
    other_sched = OneCycleLR(other_opt, max_lr=1e-2, total_steps=10)
    info = load_checkpoint(path, other, other_opt, other_sched)
    assert info["epoch"] == 7 and info["extra"]["note"] == "hello" and info["extra"]["scale"] == 65536.0
    np.testing.assert_array_equal(info["extra"]["history"], [0.0, 1.0, 2.0])
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert other_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert other_opt.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    for p, q in zip(model.parameters(), other.parameters()):
        np.testing.assert_array_equal(opt.state[p]["exp_avg_sq"], other_opt.state[q]["exp_avg_sq"])
        assert opt.state[p]["step"] == other_opt.state[q]["step"] == 3
    assert other_sched.last_epoch == sched.last_epoch == 3


def test_the_file_is_plain_npz_with_json_metadata(tmp_path):
    model, opt, _ = trained_mlp_and_optimizer()
    path = save_checkpoint(tmp_path / "ck.npz", model, opt)
    with np.load(path, allow_pickle=False) as archive:
        meta = archive["__checkpoint__"]
        assert meta.shape == () and meta.dtype.kind == "U"
        assert all(archive[name].dtype != object for name in archive.files)


def test_restores_the_global_random_generator(tmp_path):
    model, _, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.npz", model)
    expected = generator().random(5)
    generator().random(100)
    load_checkpoint(tmp_path / "ck.npz", model)
    np.testing.assert_array_equal(generator().random(5), expected)


class Exploit:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_can_never_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = Exploit(str(marker))
    with open(path, "wb") as f:
        np.savez(f, __checkpoint__=np.array('{"format": "tinygrad_cv-checkpoint-1", "tree": '
                                            '{"model": {"w": {"$array": "a0"}}}}'), a0=payload)
    pickle.dumps(payload)  # the payload is a real pickle bomb...
    with pytest.raises(ValueError, match="allow_pickle"):
        load_state(path)
    assert not marker.exists()  # ...that never went off


def test_unstorable_values_are_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="cannot store a set at /extra"):
        save_state(tmp_path / "x.npz", {"extra": {1, 2}})
    with pytest.raises(TypeError, match="object array"):
        save_state(tmp_path / "x.npz", {"a": np.array([{}], dtype=object)})
    assert not (tmp_path / "x.npz").exists()


def test_an_npz_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "plain.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match="not a tinygrad_cv checkpoint"):
        load_state(tmp_path / "plain.npz")


class Wider(Module):
    def __init__(self):
        super().__init__()
        self.w1 = Parameter(tg.zeros(4, 32))
        self.extra = Parameter(tg.zeros(2))


def test_a_checkpoint_of_another_model_lists_the_problems(tmp_path):
    model, _, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.npz", model)
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck.npz", Wider())
    message = str(error.value)
    assert "w1: checkpoint (4, 16) vs model (4, 32)" in message
    assert "missing keys: ['extra']" in message and "'w2'" in message and "'b1'" in message


def test_loading_an_optimiser_that_was_not_saved_is_a_clear_error(tmp_path):
    model, opt, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.npz", model)
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "ck.npz", model, opt)


def test_a_crash_mid_save_leaves_the_last_good_file(tmp_path, monkeypatch):
    model, opt, _ = trained_mlp_and_optimizer()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt, epoch=1)
    good = path.read_bytes()

    def crash(fd):  # the archive is written, but the machine "dies" before it reaches the disk
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(path, model, opt, epoch=2)
    assert path.read_bytes() == good
    assert glob.glob(str(tmp_path / "*")) == [str(path)]  # no temporary file left behind
    monkeypatch.undo()
    assert load_checkpoint(path, model, opt)["epoch"] == 1


def test_a_plain_training_loop_resumes_exactly(tmp_path):
    """SGD + OneCycleLR + noise from the global generator: 6 steps in one go equal 3 + checkpoint + 3."""
    def fresh():
        model = MLP()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, opt, OneCycleLR(opt, max_lr=0.1, total_steps=6)

    def step(model, opt, sched):
        x = tg.randn(8, 4)
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        return loss.item()

    tg.manual_seed(1)
    straight = fresh()
    expected = [step(*straight) for _ in range(6)]
    tg.manual_seed(1)
    first = fresh()
    losses = [step(*first) for _ in range(3)]
    save_checkpoint(tmp_path / "half.npz", first[0], first[1], first[2], epoch=2)
    tg.manual_seed(123)  # a different process, a different seed: the checkpoint must carry everything
    second = fresh()
    load_checkpoint(tmp_path / "half.npz", *second)
    losses += [step(*second) for _ in range(3)]
    assert losses == expected


def test_learner_resumes_exactly_from_a_saved_epoch(tmp_path):
    straight = make_learner(seed=5, dropout=0.3, path=tmp_path)
    straight.fit_one_cycle(4, 1e-2, cbs=[SaveModelCallback(fname="ck", every_epoch=True)])
    per_epoch = len(straight.dls.train)

    resumed = make_learner(seed=77, dropout=0.3, path=tmp_path)  # other init, other generator state
    resumed.load("ck_1")
    assert resumed.epoch == 1
    resumed.fit_one_cycle(4, 1e-2, start_epoch=resumed.epoch + 1)
    assert resumed.recorder.losses == straight.recorder.losses[2 * per_epoch:]
    valid_losses = [r["valid_loss"] for r in straight.recorder.values]
    assert [r["valid_loss"] for r in resumed.recorder.values] == valid_losses[2:]
    for name, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value)


def data_block_loaders(seed):
    """The project's DataLoaders over in-memory 2x2 one-channel 'images' (their shuffles count epochs)."""
    from tinygrad_cv.data.loader import DataLoader, DataLoaders
    x, y = blobs(120)
    images = np.clip(x * 30 + 128, 0, 255).astype(np.uint8).reshape(-1, 2, 2, 1)
    samples = [{"image": image, "target": int(t)} for image, t in zip(images, y)]
    return DataLoaders(DataLoader(samples[:90], batch_size=15, shuffle=True, seed=seed),
                       DataLoader(samples[90:], batch_size=15, seed=seed), stats=([0.5], [0.25]))


class FlatMLP(MLP):
    def forward(self, x):
        return super().forward(x.reshape(len(x), -1))


def test_learner_resumes_exactly_with_the_data_loaders_epoch_counters(tmp_path):
    tg.manual_seed(0)
    straight = Learner(data_block_loaders(seed=11), FlatMLP(), cross_entropy, path=tmp_path, progress=False)
    straight.fit_one_cycle(3, 1e-2, cbs=[SaveModelCallback(fname="ck", every_epoch=True)])
    tg.manual_seed(1)
    resumed = Learner(data_block_loaders(seed=11), FlatMLP(), cross_entropy, path=tmp_path, progress=False)
    resumed.load("ck_0")
    resumed.fit_one_cycle(3, 1e-2, start_epoch=1)
    assert resumed.recorder.losses == straight.recorder.losses[len(straight.dls.train):]
