"""Checkpoints: round trips, named arrays in a safetensors file, no pickle ever, atomic writes, loads
that are all or nothing, clear errors for another model, optimiser or a damaged file, and training resumed
from a checkpoint that continues exactly as uninterrupted training would."""
import glob
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import optim
from tinygrad_cv.nn import Module, Parameter
from tinygrad_cv.optim.lr_scheduler import OneCycleLR
from tinygrad_cv.random import generator
from tinygrad_cv.io import load_safetensors, save_safetensors
from tinygrad_cv.train import SaveModelCallback, load_checkpoint, load_state, save_checkpoint, save_state
from tinygrad_cv.train import Learner
from tinygrad_cv.train.checkpoint import META_KEY, CheckpointError
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
    path = tmp_path / "ck.safetensors"
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


def test_every_array_is_stored_under_its_own_name(tmp_path):
    model, opt, _ = trained_mlp_and_optimizer()
    path = save_checkpoint(tmp_path / "ck.safetensors", model, opt, extra={"history": np.arange(3.0)})
    from safetensors.numpy import load_file  # another reader of the same file: the format's own
    arrays = load_file(path)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(arrays[f"model/{name}"], value)
    for i, p in enumerate(model.parameters()):
        np.testing.assert_array_equal(arrays[f"opt/state/{i}/exp_avg"], opt.state[p]["exp_avg"])
    np.testing.assert_array_equal(arrays["extra/history"], np.arange(3.0))
    assert sorted(load_safetensors(path)) == sorted(arrays)


def test_restores_the_global_random_generator(tmp_path):
    model, _, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.safetensors", model)
    expected = generator().random(5)
    generator().random(100)
    load_checkpoint(tmp_path / "ck.safetensors", model)
    np.testing.assert_array_equal(generator().random(5), expected)


class Exploit:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_can_never_run_code(tmp_path):
    """A pickle bomb under a checkpoint's name is refused as "not safetensors": the format has no way to
    hold a pickle, and nothing is unpickled."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    payload = np.empty(1, dtype=object)
    payload[0] = Exploit(str(marker))
    with open(path, "wb") as f:
        np.savez(f, a0=payload)
    pickle.dumps(payload)  # the payload is a real pickle bomb...
    with pytest.raises(CheckpointError, match="evil.safetensors.*not a valid safetensors"):
        load_state(path)
    assert not marker.exists()  # ...that never went off


def test_unstorable_values_are_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="cannot store a set at /extra"):
        save_state(tmp_path / "x.safetensors", {"extra": {1, 2}})
    with pytest.raises(TypeError, match="/a.*dtype object cannot be stored"):
        save_state(tmp_path / "x.safetensors", {"a": np.array([{}], dtype=object)})
    with pytest.raises(TypeError, match="/extra/s.*dtype <U"):
        save_state(tmp_path / "x.safetensors", {"extra": {"s": np.array(["text"])}})
    assert not (tmp_path / "x.safetensors").exists()


def test_a_weight_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    save_safetensors({"weights": np.ones(3)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="plain.safetensors.*not a tinygrad_cv checkpoint"):
        load_state(tmp_path / "plain.safetensors")


class Wider(Module):
    def __init__(self):
        super().__init__()
        self.w1 = Parameter(tg.zeros(4, 32))
        self.extra = Parameter(tg.zeros(2))


def test_a_checkpoint_of_another_model_lists_the_problems(tmp_path):
    model, _, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.safetensors", model)
    with pytest.raises(ValueError) as error:
        load_checkpoint(tmp_path / "ck.safetensors", Wider())
    message = str(error.value)
    assert "w1: checkpoint (4, 16) vs model (4, 32)" in message
    assert "missing keys: ['extra']" in message and "'w2'" in message and "'b1'" in message


def test_loading_an_optimiser_that_was_not_saved_is_a_clear_error(tmp_path):
    model, opt, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.safetensors", model)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "ck.safetensors", model, opt)


def test_a_crash_mid_save_leaves_the_last_good_file(tmp_path, monkeypatch):
    model, opt, _ = trained_mlp_and_optimizer()
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model, opt, epoch=1)
    good = path.read_bytes()

    def crash(fd):  # the archive is written, but the machine "dies" before it reaches the disk
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(path, model, opt, epoch=2)
    assert path.read_bytes() == good
    assert glob.glob(str(tmp_path / "*")) + glob.glob(str(tmp_path / ".*")) == [str(path)]  # no temporary file
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
    save_checkpoint(tmp_path / "half.safetensors", first[0], first[1], first[2], epoch=2)
    tg.manual_seed(123)  # a different process, a different seed: the checkpoint must carry everything
    second = fresh()
    load_checkpoint(tmp_path / "half.safetensors", *second)
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


# --------------------------------------------------------------------------- issue 14's cases
def test_loading_is_all_or_nothing(tmp_path):
    """The model part fits but the optimiser part does not (other group sizes): nothing may change."""
    model, opt, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.safetensors", model, opt)
    tg.manual_seed(5)
    other = MLP()
    params = list(other.parameters())
    other_opt = optim.AdamW([{"params": params[:1]}, {"params": params[1:]}], lr=1.0)
    before = {k: v.copy() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"groups of sizes \[4\], this one \[1, 3\].*Nothing was changed"):
        load_checkpoint(tmp_path / "ck.safetensors", other, other_opt)
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert other_opt.state == {} and other_opt.param_groups[0]["lr"] == 1.0


def test_a_failure_midway_puts_everything_back(tmp_path, monkeypatch):
    model, opt, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.safetensors", model, opt)
    tg.manual_seed(6)
    other = MLP()
    other_opt = optim.AdamW(other.parameters(), lr=1.0)
    before = {k: v.copy() for k, v in other.state_dict().items()}
    real = optim.AdamW.load_state_dict
    calls = []

    def fails_the_first_time(self, state):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk went away")
        return real(self, state)

    monkeypatch.setattr(optim.AdamW, "load_state_dict", fails_the_first_time)
    with pytest.raises(RuntimeError, match="disk went away"):
        load_checkpoint(tmp_path / "ck.safetensors", other, other_opt)
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_extra_dicts_that_look_like_the_internal_encoding_come_back_as_dicts(tmp_path):
    model, _, _ = trained_mlp_and_optimizer()
    extra = {"$array": "a0", "nested": {"$array": "model/w1"}, "$$x": [1, {"$y": None}], "arr": np.ones(2)}
    save_checkpoint(tmp_path / "ck.safetensors", model, extra=extra)
    back = load_checkpoint(tmp_path / "ck.safetensors", model)["extra"]
    assert back["$array"] == "a0" and back["nested"] == {"$array": "model/w1"}
    assert back["$$x"] == [1, {"$y": None}]
    np.testing.assert_array_equal(back["arr"], np.ones(2))


def test_a_killed_save_leaves_no_temporary_file_after_the_next_save(tmp_path):
    """A process is SIGKILLed in the middle of save_checkpoint (while it flushes to disk); the next save in
    that folder removes its multi-MB temporary file."""
    script = ("import os, sys, time\nimport numpy as np\nimport tinygrad_cv as tg\n"
              "from tinygrad_cv.nn import Module, Parameter\nfrom tinygrad_cv.train import save_checkpoint\n"
              "class Big(Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.w = Parameter(tg.zeros(1000, 1000))\n"
              "def hang(fd):\n    print('writing', flush=True)\n    time.sleep(60)\n"
              "os.fsync = hang\nsave_checkpoint(sys.argv[1], Big())\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(tg.__file__)))
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "ck.safetensors")],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": root})
    assert child.stdout.readline().strip() == "writing"
    child.kill()
    child.wait()
    child.stdout.close()
    (left,) = os.listdir(tmp_path)
    assert left.startswith(".ck.safetensors.") and left.endswith(".tmp")
    assert os.path.getsize(tmp_path / left) > 4_000_000
    model, _, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "ck.safetensors", model)
    assert os.listdir(tmp_path) == ["ck.safetensors"]


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_file_is_an_error_naming_it(tmp_path, damage):
    model, opt, _ = trained_mlp_and_optimizer()
    path = save_checkpoint(tmp_path / "ck.safetensors", model, opt)
    path.write_bytes(b"" if damage == "empty" else path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="ck.safetensors.*not a valid safetensors"):
        load_checkpoint(path, model, opt)


def write_tree(path, tree, arrays):
    save_safetensors(arrays, path, metadata={META_KEY: json.dumps({"format": "tinygrad_cv-checkpoint-2",
                                                                   "tree": tree})})


@pytest.mark.parametrize("case", ["no_sections", "dangling_array", "model_not_arrays", "unused_array", "not_json"])
def test_a_malformed_tree_is_a_clear_error_not_a_key_error(tmp_path, case):
    model, _, _ = trained_mlp_and_optimizer()
    good = {k: {"$array": f"model/{k}"} for k in model.state_dict()}
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "bad.safetensors"
    sections = {"epoch": 1, "rng": None, "extra": None, "opt": None, "opt_type": None, "scheduler": None,
                "scheduler_type": None}
    if case == "no_sections":
        write_tree(path, {"weights": good}, arrays)
    elif case == "dangling_array":
        write_tree(path, {"model": {**good, "w1": {"$array": "model/gone"}}, **sections}, arrays)
    elif case == "model_not_arrays":
        write_tree(path, {"model": [1, 2], **sections}, {})
    elif case == "unused_array":
        write_tree(path, {"model": good, **sections}, {**arrays, "stray": np.ones(1)})
    else:
        save_safetensors(arrays, path, metadata={META_KEY: "{not json"})
    with pytest.raises(CheckpointError, match="bad.safetensors.*malformed checkpoint"):
        load_checkpoint(path, model, restore_rng=False)


def test_a_learner_saved_with_sgd_refuses_to_load_into_adam(tmp_path):
    saved = make_learner(seed=1, path=tmp_path, opt_func=optim.SGD)
    saved.fit(1, lr=0.1)
    saved.save("sgd")
    adam = make_learner(seed=2, path=tmp_path)  # opt_func=Adam
    adam.fit(1, lr=1e-3)
    weights_before = {k: v.copy() for k, v in adam.model.state_dict().items()}
    hypers_before = [dict(g, params=None) for g in adam.opt.param_groups]
    with pytest.raises(CheckpointError, match="state of a SGD optimiser, but this optimiser is a Adam"):
        adam.load("sgd")
    assert [dict(g, params=None) for g in adam.opt.param_groups] == hypers_before
    for name, value in adam.model.state_dict().items():
        np.testing.assert_array_equal(value, weights_before[name], err_msg=name)
    adam.load("sgd", with_opt=False)  # the model alone is fine
    for name, value in saved.model.state_dict().items():
        np.testing.assert_array_equal(adam.model.state_dict()[name], value, err_msg=name)
    assert "momentum" not in adam.opt.param_groups[0]
