"""DataLoader, collate, worker processes, DataLoaders and the batch -> Tensor step."""
import multiprocessing
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import tinygrad_cv.data as D
from tinygrad_cv.data import workers
from tinygrad_cv.data.image_io import ImageReadError


def toy_dataset(n=23, size=12, fail_at=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)

    def load(i):
        if i == fail_at:
            raise ImageReadError(f"read_image: cannot read 'bad_{i}.png'")
        boxes = np.tile(np.array([[0, 0, 1 + i % 5, 2]], np.float32), (1 + i % 2, 1))   # one or two boxes
        return {"image": images[i], "mask": (images[i, ..., 0] % 4).astype(np.uint8), "target": np.int64(i % 3),
                "boxes": boxes, "labels": np.ones(len(boxes), np.int64), "name": f"item{i}"}
    return D.ItemDataset(range(n), load)


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], list):
                assert len(x[key]) == len(y[key])
                for u, v in zip(x[key], y[key]):
                    np.testing.assert_array_equal(u, v)
            else:
                np.testing.assert_array_equal(x[key], y[key])


# --------------------------------------------------------------------------- collate
def test_default_collate_stacks_fixed_keys_and_lists_variable_ones():
    ds = toy_dataset()
    batch = D.default_collate([ds[0], ds[1], ds[2]])
    assert batch["image"].shape == (3, 12, 12, 3) and batch["mask"].shape == (3, 12, 12)
    assert batch["target"].tolist() == [0, 1, 2]
    assert isinstance(batch["boxes"], list) and [len(b) for b in batch["boxes"]] == [1, 2, 1]
    assert batch["name"] == ["item0", "item1", "item2"]


def test_default_collate_errors_name_key_and_shapes():
    with pytest.raises(ValueError, match=r"'image' has shapes \[\(2, 2, 3\), \(3, 2, 3\)\]"):
        D.default_collate([{"image": np.zeros((2, 2, 3))}, {"image": np.zeros((3, 2, 3))}])
    with pytest.raises(ValueError, match="different keys"):
        D.default_collate([{"image": 1}, {"image": 1, "mask": 2}])


# --------------------------------------------------------------------------- order and reproducibility
def test_batches_cover_the_dataset_in_a_seeded_order():
    loader = D.DataLoader(toy_dataset(), batch_size=5, shuffle=True, seed=4)
    assert len(loader) == 5
    first = np.concatenate(loader.batch_indices(0))
    assert sorted(first.tolist()) == list(range(23))
    assert first.tolist() != list(range(23))
    assert first.tolist() != np.concatenate(loader.batch_indices(1)).tolist()
    again = D.DataLoader(toy_dataset(), batch_size=5, shuffle=True, seed=4)
    assert np.concatenate(again.batch_indices(0)).tolist() == first.tolist()
    dropping = D.DataLoader(toy_dataset(), batch_size=5, drop_last=True, seed=4)
    assert len(dropping) == 4 and [len(b["target"]) for b in dropping] == [5, 5, 5, 5]


def test_epochs_advance_and_one_batch_does_not():
    loader = D.DataLoader(toy_dataset(), batch_size=4, shuffle=True, seed=1, transform=D.aug_transforms(8))
    peek = loader.one_batch()
    epoch0 = list(loader)
    assert loader.epoch == 1
    np.testing.assert_array_equal(peek["image"], epoch0[0]["image"])
    epoch1 = list(loader)
    assert not np.array_equal(epoch0[0]["target"], epoch1[0]["target"]) or \
        not np.array_equal(epoch0[0]["image"], epoch1[0]["image"])


def test_same_batches_whatever_the_number_of_workers():
    transform = D.aug_transforms(10, flip_vert=True, max_lighting=0.3)
    serial = D.DataLoader(toy_dataset(), batch_size=4, shuffle=True, seed=9, transform=transform)
    parallel = D.DataLoader(toy_dataset(), batch_size=4, shuffle=True, seed=9, transform=transform, num_workers=2,
                            prefetch_factor=1)
    for _ in range(2):                                     # two epochs: the epoch is part of every seed
        assert_same_batches(list(serial), list(parallel))


def test_sample_transform_depends_on_seed_epoch_and_index_only():
    a = D.DataLoader(toy_dataset(), batch_size=23, shuffle=True, seed=2, transform=D.aug_transforms(10))
    b = D.DataLoader(toy_dataset(), batch_size=23, shuffle=False, seed=2, transform=D.aug_transforms(10))
    batch_a, batch_b = next(iter(a)), next(iter(b))
    order = a.batch_indices(0)[0]
    np.testing.assert_array_equal(batch_a["image"], batch_b["image"][order])


def test_generator_or_global_seed_makes_loaders_reproducible():
    import tinygrad_cv as tg
    tg.manual_seed(5)
    first = D.DataLoader(toy_dataset(), shuffle=True).seed
    tg.manual_seed(5)
    assert D.DataLoader(toy_dataset(), shuffle=True).seed == first
    seeds = [D.DataLoader(toy_dataset(), generator=np.random.default_rng(3)).seed for _ in range(2)]
    assert seeds[0] == seeds[1]


# --------------------------------------------------------------------------- workers
def test_worker_errors_reach_the_caller_with_their_type_and_message():
    loader = D.DataLoader(toy_dataset(fail_at=13), batch_size=4, num_workers=2)
    with pytest.raises(ImageReadError, match="bad_13.png"):
        list(loader)
    assert multiprocessing.active_children() == []


def test_leaving_an_epoch_early_stops_the_workers():
    loader = D.DataLoader(toy_dataset(), batch_size=2, num_workers=2)
    start = time.perf_counter()
    for _ in loader:
        break
    assert time.perf_counter() - start < 10
    assert multiprocessing.active_children() == []


def test_pack_round_trips_without_pickle():
    batch = {"image": np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3), "target": np.array([1.5, 2.5]),
             "boxes": [np.zeros((0, 4), np.float32), np.ones((2, 4), np.float32)], "name": ["a", "b"],
             "pair": (np.int64(3), "x")}
    back = workers.unpack(workers.pack(batch))
    assert back.keys() == batch.keys() and back["name"] == ["a", "b"] and back["pair"][1] == "x"
    assert isinstance(back["pair"], tuple) and back["pair"][0] == 3
    assert back["image"].dtype == np.uint8 and back["boxes"][0].shape == (0, 4)
    np.testing.assert_array_equal(back["boxes"][1], batch["boxes"][1])
    with pytest.raises(TypeError, match="object array"):
        workers.pack({"thing": object()})
    import tinygrad_cv as tg
    back = workers.unpack(workers.pack([tg.tensor(np.arange(3, dtype=np.int16)), ("a", "b")]))
    assert isinstance(back[0], tg.Tensor) and back[0].dtype == np.int16 and back[0].tolist() == [0, 1, 2]
    assert back[1] == ("a", "b")
    with pytest.raises(TypeError, match="namedtuple"):
        workers.pack(__import__("collections").namedtuple("P", "x")(1))
    with pytest.raises(TypeError, match="a batch Tensor on 'emu' cannot come back"):
        workers.pack(tg.tensor([1.0], device="emu"))


# --------------------------------------------------------------------------- errors
def test_loader_arguments_are_checked():
    with pytest.raises(ValueError, match="empty"):
        D.DataLoader(D.ItemDataset([], lambda i: i))
    with pytest.raises(ValueError, match="batch_size"):
        D.DataLoader(toy_dataset(), batch_size=0)
    with pytest.raises(ValueError, match="no batch at all"):
        D.DataLoader(toy_dataset(), batch_size=30, drop_last=True)
    with pytest.raises(ValueError, match="num_workers"):
        D.DataLoader(toy_dataset(), num_workers=-1)


@pytest.mark.parametrize("argument, value, error, message", [
    ("batch_size", True, ValueError, r"batch_size must be an int >= 1, got True \(bool\)"),   # was batch size 1
    ("batch_size", 2.0, ValueError, r"batch_size must be an int >= 1, got 2.0"),
    ("num_workers", 1.5, ValueError, r"num_workers must be an int >= 0, got 1.5"),
    ("num_workers", False, ValueError, r"num_workers must be an int >= 0, got False"),
    ("shuffle", "yes", ValueError, r"shuffle must be True or False, got 'yes'"),
    ("drop_last", 1, ValueError, r"drop_last must be True or False, got 1"),
    ("collate_fn", "stack", TypeError, r"collate_fn must be callable or None, got a str"),
    ("transform", 3, TypeError, r"transform must be callable or None, got a int"),
    ("seed", 1.5, ValueError, r"seed must be an int or None, got 1.5"),
])
def test_loader_argument_types_are_checked(argument, value, error, message):
    with pytest.raises(error, match=message):
        D.DataLoader(toy_dataset(), **{argument: value})


def test_loader_accepts_numpy_integers_and_bools():
    loader = D.DataLoader(toy_dataset(), batch_size=np.int64(4), shuffle=np.bool_(True), seed=np.int32(3))
    assert loader.batch_size == 4 and len(next(iter(loader))["image"]) == 4


# --------------------------------------------------------------------------- to Tensors
def test_batch_to_tensors_normalises_and_types():
    batch = D.default_collate([toy_dataset()[i] for i in range(3)])
    normalize = D.Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    x, y = D.batch_to_tensors(batch, "cpu", normalize)
    expected = ((batch["image"] / 255.0 - [0.5, 0.4, 0.3]) / [0.2, 0.25, 0.3]).transpose(0, 3, 1, 2)
    assert x.shape == (3, 3, 12, 12) and x.dtype == np.float32
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert y.dtype == np.int64 and y.shape == (3, 12, 12)                   # the mask wins
    del batch["mask"]
    assert D.batch_to_tensors(batch)[1].numpy().tolist() == [0, 1, 2]
    batch["target"] = np.eye(3, dtype=np.float32)
    assert D.batch_to_tensors(batch)[1].dtype == np.float32
    del batch["target"]
    detections = D.batch_to_tensors(batch)[1]
    assert len(detections) == 3 and detections[1]["boxes"].shape == (2, 4) and detections[1]["labels"].dtype == np.int64
    del batch["boxes"], batch["labels"]
    assert D.batch_to_tensors(batch)[1] is None


def test_dataloaders_measure_stats_and_deliver_tensors(tmp_path):
    ds = toy_dataset()
    train = D.DataLoader(ds, batch_size=8, shuffle=True, seed=0)
    valid = D.DataLoader(ds, batch_size=8, seed=1)
    dls = D.DataLoaders(train, valid, device="emu", vocab=["a", "b", "c"], stats_batches=2)
    images = np.concatenate([train.load_batch(b, 0)["image"] for b in train.batch_indices(0)[:2]]) / 255.0
    np.testing.assert_allclose(dls.normalize.mean, images.reshape(-1, 3).mean(0), rtol=1e-9)
    x, y = dls.one_batch()
    assert x.device == "emu" and y.device == "emu" and dls.c == 3 and len(dls.train) == 3
    assert sum(len(xb) for xb, _ in dls.valid) == 23
    cpu = dls.to("cpu")
    assert cpu.one_batch()[0].device == "cpu"
    np.testing.assert_array_equal(cpu.normalize.mean, dls.normalize.mean)
    from matplotlib.figure import Figure
    assert isinstance(dls.show_batch(max_n=4), Figure) and not (tmp_path / "batch.png").exists()
    dls.show_batch(max_n=4, fname=tmp_path / "batch.png")
    from PIL import Image
    with Image.open(tmp_path / "batch.png") as figure:
        assert figure.format == "PNG" and figure.size[0] > 100


def test_import_does_not_load_matplotlib_or_pillow():
    code = "import sys, tinygrad_cv, tinygrad_cv.data; print('matplotlib' in sys.modules, 'PIL' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- PyTorch-style samples
class Pairs:
    """``image, label`` tuples, as a PyTorch dataset returns them."""

    def __init__(self, n=10, delay=0.0):
        self.images = np.random.default_rng(1).random((n, 3, 4, 4)).astype(np.float32)
        self.delay = delay

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        time.sleep(self.delay)
        return self.images[i], i % 3


def test_tuple_samples_collate_position_by_position_into_tensors():
    import tinygrad_cv as tg
    ds = Pairs()
    images, labels = D.default_collate([ds[0], ds[1], ds[2]])
    assert isinstance(images, tg.Tensor) and images.shape == (3, 3, 4, 4) and images.dtype == np.float32
    np.testing.assert_array_equal(images.numpy(), ds.images[:3])
    assert isinstance(labels, tg.Tensor) and labels.dtype == np.int64 and labels.tolist() == [0, 1, 2]


def test_collate_dtypes_and_nesting_as_pytorch():
    import tinygrad_cv as tg
    Point = __import__("collections").namedtuple("Point", "x y")
    samples = [(1.5, True, np.float16(i), "s%d" % i, {"k": [i, 2 * i]}, Point(i, 0.5), tg.tensor([i, i + 1]))
               for i in range(2)]
    floats, bools, halves, names, nested, point, stacked = D.default_collate(samples)
    assert floats.dtype == np.float64 and floats.tolist() == [1.5, 1.5]       # Python floats: float64
    assert bools.dtype == np.bool_ and halves.dtype == np.float16 and halves.tolist() == [0.0, 1.0]
    assert names == ("s0", "s1")                                                  # a sequence of strings
    assert isinstance(nested, dict) and [t.tolist() for t in nested["k"]] == [[0, 1], [0, 2]]
    assert isinstance(point, Point) and point.x.tolist() == [0, 1] and point.y.dtype == np.float64
    assert stacked.tolist() == [[0, 1], [1, 2]] and stacked.dtype == tg.tensor([1]).dtype
    assert [t.tolist() for t in D.default_collate([[1, 2], [3, 4]])] == [[1, 3], [2, 4]]


def test_collate_matches_torch_default_collate():
    pytest.importorskip("torch")
    from torch.utils.data import default_collate
    samples = [(np.arange(6, dtype=np.uint8).reshape(2, 3) + i, i, 0.25 * i, np.int32(i), "a", {"m": [i, 1.5]})
               for i in range(3)]
    ours, theirs = D.default_collate(samples), default_collate(samples)
    assert type(ours) is type(theirs) and len(ours) == len(theirs)
    for k in (0, 1, 2, 3):
        assert str(ours[k].dtype) == str(theirs[k].dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours[k].numpy(), theirs[k].numpy())
    assert list(ours[4]) == list(theirs[4])
    for a, b in zip(ours[5]["m"], theirs[5]["m"]):
        assert str(a.dtype) == str(b.dtype).replace("torch.", "") and a.tolist() == b.tolist()


@pytest.mark.parametrize("samples, error, message", [
    ([(1, None), (2, None)], TypeError, r"sample\[1\] is a NoneType; samples must be made of Tensors, NumPy arrays"),
    ([object(), object()], TypeError, "sample is a object"),
    ([(1, 2), (1,)], ValueError, r"sample has lengths \[1, 2\] in one batch"),
    ([(np.zeros(2),), (np.zeros(3),)], ValueError, r"sample\[0\] has shapes \[\(2,\), \(3,\)\]"),
    ([(1,), (1.5,)], TypeError, r"sample\[0\] mixes \['float', 'int'\]"),
    ([(np.array(["a"]),), (np.array(["b"]),)], TypeError, "array of dtype <U1"),
    ([({"a": 1},), ({"b": 1},)], ValueError, "different keys"),
])
def test_collate_refuses_what_it_cannot_batch(samples, error, message):
    with pytest.raises(error, match=message):
        D.default_collate(samples)


def test_a_pytorch_tutorial_loop_runs_over_a_tuple_dataset():
    import tinygrad_cv as tg
    import tinygrad_cv.functional as F
    import tinygrad_cv.nn as nn
    tg.manual_seed(0)
    model = nn.Linear(48, 3)
    loader = D.DataLoader(Pairs(), batch_size=4, shuffle=True, seed=0)
    seen = []
    for inputs, labels in loader:
        loss = F.cross_entropy(model(inputs.reshape(len(inputs), -1)), labels)
        loss.backward()
        seen += labels.tolist()
    assert sorted(seen) == sorted(i % 3 for i in range(10))
    assert model.weight.grad is not None and model.weight.grad.shape == (3, 48)


def test_tuple_batches_come_back_from_workers_as_tensors():
    import tinygrad_cv as tg
    serial = list(D.DataLoader(Pairs(), batch_size=3, shuffle=True, seed=2))
    parallel = list(D.DataLoader(Pairs(), batch_size=3, shuffle=True, seed=2, num_workers=2))
    for (xs, ys), (xp, yp) in zip(serial, parallel, strict=True):
        assert isinstance(xp, tg.Tensor) and xp.dtype == np.float32 and yp.dtype == np.int64
        np.testing.assert_array_equal(xs.numpy(), xp.numpy())
        np.testing.assert_array_equal(ys.numpy(), yp.numpy())


def test_batch_to_tensors_moves_a_pair_batch():
    x, y = D.batch_to_tensors(D.default_collate([Pairs()[0], Pairs()[1]]), "emu")
    assert x.device == "emu" and y.device == "emu" and y.tolist() == [0, 1]
    np.testing.assert_array_equal(x.numpy(), Pairs().images[:2])
    with pytest.raises(ValueError, match="normalize applies to the library's dict batches"):
        D.batch_to_tensors((x, y), "cpu", D.Normalize([0.5], [0.2]))
    with pytest.raises(TypeError, match=r"must be a pair \(inputs, targets\) of Tensors"):
        D.batch_to_tensors([x, y, y])


def test_dataloaders_deliver_pair_batches_unnormalised():
    ds = Pairs()
    dls = D.DataLoaders(D.DataLoader(ds, batch_size=4, shuffle=True, seed=0), D.DataLoader(ds, batch_size=5),
                        device="emu")
    assert dls.normalize is None
    x, y = next(iter(dls.valid))
    assert x.device == "emu" and y.tolist() == [0, 1, 2, 0, 1]
    np.testing.assert_array_equal(x.numpy(), ds.images[:5])
    assert dls.to("cpu").one_batch("valid")[0].device == "cpu"


# --------------------------------------------------------------------------- PyTorch's worker options
def test_worker_init_fn_runs_once_per_worker_and_persistent_workers_stay(tmp_path):
    def mark(worker_id):
        (tmp_path / f"{os.getpid()}-{worker_id}").touch()
    expected = list(D.DataLoader(Pairs(), batch_size=2, seed=3))
    for persistent, starts in ((False, 4), (True, 2)):
        for f in tmp_path.iterdir():
            f.unlink()
        loader = D.DataLoader(Pairs(), batch_size=2, seed=3, num_workers=2, worker_init_fn=mark,
                              persistent_workers=persistent)
        for _ in range(2):
            for (xe, ye), (xg, yg) in zip(expected, loader, strict=True):
                np.testing.assert_array_equal(xe.numpy(), xg.numpy())
        names = sorted(f.name for f in tmp_path.iterdir())
        assert len(names) == starts and sorted({n.split("-")[1] for n in names}) == ["0", "1"]
        del loader
    assert multiprocessing.active_children() == []


def test_persistent_workers_survive_an_epoch_left_early():
    loader = D.DataLoader(Pairs(), batch_size=2, num_workers=2, persistent_workers=True, prefetch_factor=2, seed=0)
    for _ in loader:
        break
    first = [y.tolist() for _, y in loader]                  # the answers left over are not this epoch's
    assert first == [[0, 1], [2, 0], [1, 2], [0, 1], [2, 0]]
    pids = [p.pid for p in loader._pool.processes]
    list(loader)
    assert [p.pid for p in loader._pool.processes] == pids


def test_a_failing_worker_init_fn_reaches_the_caller():
    def fail(worker_id):
        raise ValueError(f"no GPU for worker {worker_id}")
    with pytest.raises(ValueError, match="no GPU for worker 0"):
        list(D.DataLoader(Pairs(), num_workers=1, worker_init_fn=fail))


def test_timeout_names_the_seconds():
    loader = D.DataLoader(Pairs(n=4, delay=3.0), batch_size=2, num_workers=1, timeout=0.2)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.2 seconds"):
        list(loader)
    assert time.perf_counter() - start < 3 and multiprocessing.active_children() == []


@pytest.mark.parametrize("options, message", [
    ({"prefetch_factor": 2}, "prefetch_factor option could only be specified in multiprocessing"),
    ({"num_workers": 1, "prefetch_factor": 0}, r"prefetch_factor must be an int >= 1, got 0"),
    ({"persistent_workers": True}, "persistent_workers option needs num_workers > 0"),
    ({"timeout": -1}, "timeout option should be non-negative"),
    ({"pin_memory": "yes"}, "pin_memory must be True or False"),
    ({"multiprocessing_context": "spawn"}, "multiprocessing_context must be None or 'fork'"),
])
def test_worker_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        D.DataLoader(Pairs(), **options)


def test_pytorch_defaults_and_argument_order():
    import inspect
    names = list(inspect.signature(D.DataLoader).parameters)
    assert names[:13] == ["dataset", "batch_size", "shuffle", "sampler", "batch_sampler", "num_workers",
                          "collate_fn", "pin_memory", "drop_last", "timeout", "worker_init_fn",
                          "multiprocessing_context", "generator"]
    loader = D.DataLoader(Pairs(), 5, None, None, None, 0, None, True)            # positionally, as PyTorch
    assert loader.batch_size == 5 and loader.shuffle is False and loader.pin_memory is True
    assert [y.tolist() for _, y in loader] == [[0, 1, 2, 0, 1], [2, 0, 1, 2, 0]]
    with pytest.raises(TypeError, match="worker_init_fn must be callable"):
        D.DataLoader(Pairs(), worker_init_fn=3)


def test_signature_matches_torch():
    torch = pytest.importorskip("torch")
    import inspect
    ours = inspect.signature(D.DataLoader).parameters
    theirs = inspect.signature(torch.utils.data.DataLoader).parameters
    shared = [name for name in theirs if name in ours]
    assert shared == [name for name in ours if name in theirs]               # the same order
    assert all(ours[name].default == theirs[name].default for name in shared)
    assert {name for name in theirs if name not in ours} == {"pin_memory_device", "in_order"}


def test_the_learner_trains_on_a_tuple_dataset(tmp_path):
    import tinygrad_cv.functional as F
    import tinygrad_cv.nn as nn
    from tinygrad_cv.train.learner import Learner
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((40, 4)).astype(np.float32)
    ds = [(x, int(x[0] > 0)) for x in xs]
    dls = D.DataLoaders(D.DataLoader(ds, batch_size=8, shuffle=True, seed=0), D.DataLoader(ds, batch_size=8))
    learn = Learner(dls, nn.Sequential(nn.Linear(4, 2)), F.cross_entropy, lr=0.1, path=tmp_path)
    learn.fit(3)
    losses = [row["valid_loss"] for row in learn.recorder.values]
    assert losses[-1] < losses[0]


# --------------------------------------------------------------------------- without fork (Windows)
class Squares:
    """A module-level (so picklable) dataset: sample i is {"x": [i, i*i] as float32, "name": "s<i>", "start": how
    the process that made it was started ("spawn" in a spawned worker)}."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"x": np.array([i, i * i], np.float32), "name": f"s{i}",
                "start": str(multiprocessing.get_start_method(allow_none=True))}


def no_fork(monkeypatch):
    """Simulate a system without fork (Windows): only spawn is offered."""
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])


def test_start_method_is_fork_where_it_exists_else_spawn(monkeypatch):
    assert workers.start_method() == ("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["fork", "spawn", "forkserver"])
    assert workers.start_method() == "fork"
    no_fork(monkeypatch)
    assert workers.start_method() == "spawn"


def test_spawned_workers_give_the_same_batches(monkeypatch):
    no_fork(monkeypatch)
    seen = []
    real_context = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda method=None: seen.append(method) or real_context(method))
    serial = list(D.DataLoader(Squares(), batch_size=3, shuffle=True, seed=4))
    spawned = list(D.DataLoader(Squares(), batch_size=3, shuffle=True, seed=4, num_workers=2))
    assert seen == ["spawn"]                               # the pool asked for spawned processes, once
    assert {start for b in spawned for start in b["start"]} == {"spawn"}     # and each batch came from one
    assert len(spawned) == 3 and [b["name"] for b in spawned] == [b["name"] for b in serial]
    for a, b in zip(serial, spawned):
        np.testing.assert_array_equal(a["x"], b["x"])
    assert sorted(n for b in spawned for n in b["name"]) == sorted(f"s{i}" for i in range(7))


def test_spawned_workers_refuse_an_unpicklable_dataset_clearly(monkeypatch):
    no_fork(monkeypatch)
    dataset = D.ItemDataset(range(4), lambda i: {"x": np.float32(i)})     # a lambda cannot be pickled
    with pytest.raises(TypeError, match=r"DataLoader workers: this system has no fork.*num_workers=0"):
        list(D.DataLoader(dataset, batch_size=2, num_workers=1))
