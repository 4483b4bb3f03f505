"""DataLoader(pin_memory=True): batches copied into page-locked host memory (backend.pinned_copy, from
cupyx.empty_pinned) when CuPy has a GPU, and left alone without one. The GPU is faked: a stand-in
``cupyx`` module records every buffer it hands out, and ``backend.cuda_available`` is made to say True."""
import sys
import types
from collections import namedtuple

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import backend
from tinygrad_cv.data import DataLoader
from tinygrad_cv.data.loader import pin_batch

Pair = namedtuple("Pair", ["image", "label"])


class FakeCupyx(types.ModuleType):
    """cupyx with only empty_pinned: plain NumPy buffers, each one remembered."""

    def __init__(self):
        super().__init__("cupyx")
        self.buffers = []

    def empty_pinned(self, shape, dtype=np.float64):
        buffer = np.empty(shape, dtype=dtype)
        self.buffers.append(buffer)
        return buffer

    def is_pinned(self, array):
        """Whether ``array`` is (a view of) a buffer this module handed out."""
        return any(array is b or array.base is b for b in self.buffers)


class TupleData:
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return np.full((2, 3), i, dtype=np.float32), i


class DictData:
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return {"image": np.full((4, 4, 3), i, dtype=np.uint8), "target": np.array(i % 2), "name": f"img{i}"}


@pytest.fixture
def fake_gpu(monkeypatch):
    cupyx = FakeCupyx()
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setattr(backend, "cuda_available", lambda: True)
    return cupyx


def _batches(dataset, **kwargs):
    return list(DataLoader(dataset, batch_size=4, seed=0, **kwargs))


def test_tuple_batches_are_copied_into_pinned_buffers(fake_gpu):
    plain = _batches(TupleData())
    pinned = _batches(TupleData(), pin_memory=True)
    assert len(pinned) == len(plain) == 2
    for (x, y), (px, py) in zip(plain, pinned):
        assert isinstance(px, tg.Tensor) and isinstance(py, tg.Tensor)
        assert fake_gpu.is_pinned(px.data) and fake_gpu.is_pinned(py.data)
        assert px.data is not x.data
        assert px.dtype == x.dtype == np.float32 and py.dtype == y.dtype == np.int64
        np.testing.assert_array_equal(px.numpy(), x.numpy())
        np.testing.assert_array_equal(py.numpy(), [0, 1, 2, 3] if py.shape == (4,) else [4, 5])
    assert len(fake_gpu.buffers) == 4  # two tensors in each of two batches


def test_dict_batches_keep_their_keys_and_strings(fake_gpu):
    loader = DataLoader(DictData(), batch_size=3, seed=0, pin_memory=True)
    batch = loader.one_batch()
    assert list(batch) == ["image", "target", "name"] and batch["name"] == ["img0", "img1", "img2"]
    assert fake_gpu.is_pinned(batch["image"]) and fake_gpu.is_pinned(batch["target"])
    expected = np.stack([np.full((4, 4, 3), i, dtype=np.uint8) for i in range(3)])
    np.testing.assert_array_equal(batch["image"], expected)
    assert batch["image"].dtype == np.uint8
    x, y = tg.data.batch_to_tensors(batch)  # the pinned batch goes on to tensors as any other
    np.testing.assert_allclose(x.numpy(), expected.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    assert y.tolist() == [0, 1, 0]


def test_worker_batches_are_pinned_in_the_main_process(fake_gpu):
    batches = _batches(TupleData(), pin_memory=True, num_workers=1)
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5]]
    assert all(fake_gpu.is_pinned(part.data) for batch in batches for part in batch)


def test_containers_keep_their_types(fake_gpu):
    cupyx = fake_gpu
    batch = {"pair": Pair(np.arange(3), [np.ones(2), "tag"]), "n": 7, "t": (np.zeros(1, dtype=np.int8),)}
    out = pin_batch(batch, backend.pinned_copy)
    assert isinstance(out["pair"], Pair) and isinstance(out["pair"].label, list) and isinstance(out["t"], tuple)
    assert out["n"] == 7 and out["pair"].label[1] == "tag"
    assert cupyx.is_pinned(out["pair"].image) and cupyx.is_pinned(out["pair"].label[0])
    assert out["t"][0].dtype == np.int8 and len(cupyx.buffers) == 3
    np.testing.assert_array_equal(out["pair"].image, [0, 1, 2])


def test_without_a_gpu_pin_memory_changes_nothing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pinned memory was asked for without a GPU")
    cupyx = FakeCupyx()
    cupyx.empty_pinned = refuse
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    plain, pinned = _batches(TupleData()), _batches(TupleData(), pin_memory=True)
    for (x, y), (px, py) in zip(plain, pinned):
        np.testing.assert_array_equal(px.numpy(), x.numpy())
        np.testing.assert_array_equal(py.numpy(), y.numpy())
