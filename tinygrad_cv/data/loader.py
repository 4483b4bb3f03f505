"""DataLoader (samples -> batches, with background prefetch) and DataLoaders (train/valid/test
loaders plus the step that turns a batch into Tensors on the device).

Reproducibility: the order of an epoch comes from a generator seeded by (seed, epoch), and each
sample's random transform from one seeded by (seed, epoch, index). No draw depends on a global
generator (unless a sampler without its own generator draws from it) or on which worker loads the
sample, so for a given seed the batches are the same whatever ``num_workers`` is.

Workers (``num_workers`` > 0) are forked processes (spawned where the system has no fork) that send
batches back as ``.npy`` records, never pickles (see workers.py).

Samples: the library's dicts (dataset.py) collate into dicts of NumPy arrays, which ``batch_to_tensors``
turns into (x, y) Tensors on the device; PyTorch-style tuples collate into Tensors, as torch's
``default_collate`` (``for images, labels in loader`` works unchanged).
"""
from __future__ import annotations

import math
import numbers
import os
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from .. import backend
from .. import functional as F
from ..random import generator as global_generator
from ..tensor import Tensor
from .dataset import Dataset, Transform
from .errors import is_integer
from .sampler import BatchSampler, BatchSamplerLike, SamplerLike
from .transforms import Normalize
from .transforms.recipes import Floats
from .workers import WorkerPool

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LIST_KEYS = frozenset({"boxes", "labels", "instance_masks", "name"})
"""Keys whose values differ in length from sample to sample: collated as lists, not stacked."""


def default_collate(batch: Sequence[Any]) -> Any:
    """One batch from a list of samples, as ``torch.utils.data.default_collate``, with one extension.

    The library's samples (dataset.py), dicts at the top level, give a dict of NumPy arrays, the batch
    ``batch_to_tensors`` turns into Tensors on the device: values of ``LIST_KEYS`` (and strings) become
    lists, every other value is stacked with the batch as the first axis.

    Any other sample (a PyTorch-style ``image, label`` tuple, a list, an array, a number) is collated as
    PyTorch's, recursively, into CPU Tensors: Tensors and NumPy arrays (and NumPy scalars) are stacked
    keeping their dtype; Python bools, ints and floats become bool, int64 and float64 Tensors; strings
    stay a sequence of strings; a dict is collated key by key, a namedtuple field by field into its
    own type, a tuple or list position by position into a list."""
    if not isinstance(batch, (list, tuple)) or len(batch) == 0:
        raise ValueError(f"default_collate: batch must be a non-empty list of samples, got {batch!r:.80}")
    if isinstance(batch[0], dict):
        return _collate_sample_dicts(batch)
    return _collate(batch, "sample")


def _collate_sample_dicts(samples):
    keys = list(samples[0])
    for sample in samples[1:]:
        if not isinstance(sample, dict) or list(sample) != keys:
            raise ValueError(f"default_collate: samples have different keys ({keys} and "
                             f"{list(sample) if isinstance(sample, dict) else type(sample).__name__}); "
                             f"every sample of a dataset must have the same keys")
    return {key: _collate_key(key, [sample[key] for sample in samples]) for key in keys}


def _collate_key(key, values):
    if key in LIST_KEYS or isinstance(values[0], str):
        return values
    arrays = [np.asarray(value) for value in values]
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise ValueError(f"default_collate: {key!r} has shapes {sorted(shapes)} in one batch; resize every "
                         f"sample to one size (e.g. a Resize transform) or pass your own collate_fn")
    return np.stack(arrays)


def _kind(value):
    """The collate rule a value follows (None: no rule)."""
    if isinstance(value, Tensor):
        return "tensor"
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, (np.ndarray, np.generic)):
        return "array"
    for kind in (bool, int, float):                    # bool first: a bool is also an int
        if isinstance(value, kind):
            return kind.__name__
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return "namedtuple"
    if isinstance(value, (tuple, list)):
        return "sequence"
    return None


PYTHON_NUMBER_DTYPES = {"bool": np.bool_, "int": np.int64, "float": np.float64}
"""PyTorch's dtypes for batches of Python numbers."""


def _collate(values, where):
    """The PyTorch-style batch of ``values``, the entries at position ``where`` of every sample."""
    kinds = {_kind(value) for value in values}
    if None in kinds:
        odd = next(value for value in values if _kind(value) is None)
        raise TypeError(f"default_collate: {where} is a {type(odd).__name__}; samples must be made of Tensors, "
                        f"NumPy arrays, numbers, strings, dicts, tuples and lists (or pass your own collate_fn)")
    if len(kinds) > 1:
        raise TypeError(f"default_collate: {where} mixes {sorted(kinds)} across the samples of one batch; "
                        f"every sample must have the same structure and types")
    kind = kinds.pop()
    if kind == "string":
        return values
    if kind in PYTHON_NUMBER_DTYPES:
        return Tensor.wrap(np.array(values, dtype=PYTHON_NUMBER_DTYPES[kind]), "cpu")
    if kind in ("tensor", "array"):
        return _stack(values, where)
    if kind == "mapping":
        keys = list(values[0])
        if any(list(value) != keys for value in values[1:]):
            raise ValueError(f"default_collate: {where} has different keys across samples; every sample "
                             f"must have the same keys")
        return {key: _collate([value[key] for value in values], f"{where}[{key!r}]") for key in keys}
    if any(len(value) != len(values[0]) for value in values):
        raise ValueError(f"default_collate: {where} has lengths {sorted({len(value) for value in values})} in one "
                         f"batch; each element in list of batch should be of equal size")
    parts = [_collate(part, f"{where}[{i}]") for i, part in enumerate(zip(*values))]
    return type(values[0])(*parts) if kind == "namedtuple" else parts


def _stack(values, where):
    """Tensors or arrays stacked on a new first axis (Tensors keep their device, arrays go to the CPU)."""
    shapes = {tuple(value.shape) for value in values}
    if len(shapes) > 1:
        raise ValueError(f"default_collate: {where} has shapes {sorted(shapes)} in one batch; stack expects "
                         f"each one to be equal size (resize the samples or pass your own collate_fn)")
    if isinstance(values[0], Tensor):
        return F.stack(values)
    arrays = [np.asarray(value) for value in values]
    if any(array.dtype.kind not in "biuf" for array in arrays):
        raise TypeError(f"default_collate: {where} is an array of dtype {arrays[0].dtype}; only bool, integer "
                        f"and floating-point arrays become Tensors (strings go in lists, not arrays)")
    return Tensor.wrap(np.stack(arrays), "cpu")


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's random transform: a function of (seed, epoch, index) only."""
    return np.random.default_rng([seed, epoch, index])


def _check_arguments(batch_size, num_workers, shuffle, drop_last, collate_fn, transform, seed, prefetch_factor,
                     pin_memory, timeout, worker_init_fn, persistent_workers, multiprocessing_context):
    """DataLoader's arguments, each of the type PyTorch's takes: a bool is not a batch size (True
    would silently mean 1), a float is not a worker count, a string is not a flag. Bad numbers and
    flags raise ValueError, as PyTorch's DataLoader and BatchSampler do; a non-callable is a TypeError."""
    for name, value, minimum in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                                 ("prefetch_factor", prefetch_factor, 1)):
        if not is_integer(value) or value < minimum:
            raise ValueError(f"DataLoader: {name} must be an int >= {minimum}, got {value!r} "
                             f"({type(value).__name__})")
    for name, value in (("shuffle", shuffle), ("drop_last", drop_last), ("pin_memory", pin_memory),
                        ("persistent_workers", persistent_workers)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"DataLoader: {name} must be True or False, got {value!r} ({type(value).__name__})")
    for name, value in (("collate_fn", collate_fn), ("transform", transform), ("worker_init_fn", worker_init_fn)):
        if value is not None and not callable(value):
            raise TypeError(f"DataLoader: {name} must be callable or None, got a {type(value).__name__}")
    if seed is not None and not is_integer(seed):
        raise ValueError(f"DataLoader: seed must be an int or None, got {seed!r} ({type(seed).__name__})")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not float(timeout) >= 0:
        raise ValueError(f"DataLoader: timeout option should be non-negative seconds, got {timeout!r}")
    if multiprocessing_context not in (None, "fork"):
        raise ValueError(f"DataLoader: multiprocessing_context must be None or 'fork' (workers are forked "
                         f"processes), got {multiprocessing_context!r}")
    if persistent_workers and num_workers == 0:
        raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")


def _check_batch_sampler(batch_sampler, batch_size, shuffle, sampler, drop_last):
    if batch_size != 1 or shuffle or sampler is not None or drop_last:
        raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                         "sampler, and drop_last; the batch sampler gives the batches, so leave those at their "
                         "defaults")
    if not hasattr(batch_sampler, "__iter__") or not hasattr(batch_sampler, "__len__"):
        raise TypeError(f"DataLoader: batch_sampler must be an iterable of index lists with a len (e.g. a "
                        f"BatchSampler), got a {type(batch_sampler).__name__}")


def _set_epoch(sampler, epoch):
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


class DataLoader:
    """Batches of ``dataset`` samples, each passed through ``transform(sample, rng)`` and then
    ``collate_fn`` (default_collate); with ``num_workers`` > 0, worker processes prepare the next
    batches in the background. The arguments are PyTorch's, in its order, plus ``seed`` and ``transform``.

    Each ``for batch in loader`` is one epoch; the epoch number advances at the start of each one
    (``set_epoch`` sets it). ``seed`` (or one integer drawn from ``generator``, a numpy Generator, or
    else from the global generator of ``tinygrad_cv.random``) fixes the shuffles and the transforms.

    The order: ``shuffle`` (a permutation seeded by (seed, epoch)), or ``sampler`` (e.g. a
    DistributedSampler or RandomSampler: an iterable of indices with a ``len``, exclusive with shuffle),
    cut into lists of ``batch_size``; or ``batch_sampler``, which gives the lists itself (exclusive with
    batch_size, shuffle, sampler and drop_last; ``self.batch_size`` is then None, as PyTorch's). PyTorch's
    unbatched mode, ``batch_size=None`` without a batch sampler, is not supported and raises. A sampler
    with ``set_epoch`` is told the epoch at the start of each one (PyTorch leaves that call to the user);
    one without it (RandomSampler) draws anew at each pass, ``one_batch`` included.

    Workers: ``prefetch_factor`` batches per worker are kept in flight (default 2; PyTorch's rule: only
    with num_workers > 0); ``worker_init_fn(worker_id)`` runs in each worker when it starts;
    ``persistent_workers`` keeps the workers from one epoch to the next; ``timeout`` > 0 is how many
    seconds to wait for a worker's batch before a RuntimeError. ``pin_memory=True``, when CuPy has a GPU,
    hands out each batch with its host arrays copied into page-locked memory (``pin_batch``), from which
    the copy to the GPU (``batch_to_tensors``, ``Tensor.to``) is faster, as PyTorch's; without a GPU it
    does nothing, as PyTorch's.
    """
    batch_size: int | None  # None with a batch_sampler
    _pool: WorkerPool | None

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool | None = None,
                 sampler: SamplerLike | None = None, batch_sampler: BatchSamplerLike | None = None,
                 num_workers: int = 0, collate_fn: Callable[[list[Any]], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Callable[[int], None] | None = None,
                 multiprocessing_context: str | None = None, generator: np.random.Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False, seed: int | None = None,
                 transform: Transform | None = None) -> None:
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty (len 0); check the folder, CSV or split "
                             "that produced it")
        if prefetch_factor is not None and num_workers == 0:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing; "
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None")
        shuffle = False if shuffle is None else shuffle
        prefetch_factor = 2 if prefetch_factor is None else prefetch_factor
        _check_arguments(batch_size=batch_size, num_workers=num_workers, shuffle=shuffle, drop_last=drop_last,
                         collate_fn=collate_fn, transform=transform, seed=seed, prefetch_factor=prefetch_factor,
                         pin_memory=pin_memory, timeout=timeout, worker_init_fn=worker_init_fn,
                         persistent_workers=persistent_workers, multiprocessing_context=multiprocessing_context)
        if batch_sampler is not None:
            _check_batch_sampler(batch_sampler, batch_size, shuffle, sampler, drop_last)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle; the sampler gives "
                             "the order (e.g. DistributedSampler(dataset, shuffle=True)), so pass shuffle=False")
        n = len(dataset) if sampler is None else len(sampler)
        if drop_last and batch_size > n:
            raise ValueError(f"DataLoader: drop_last=True with batch_size {batch_size} and only {n} "
                             f"samples gives no batch at all; lower batch_size or set drop_last=False")
        if seed is None:
            seed = int((generator or global_generator()).integers(2 ** 63))
        self.dataset, self.shuffle, self.drop_last = dataset, bool(shuffle), bool(drop_last)
        self.batch_size = None if batch_sampler is not None else int(batch_size)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.collate_fn = collate_fn or default_collate
        self.seed, self.num_workers, self.transform = int(seed), int(num_workers), transform
        self.prefetch_factor, self.timeout, self.worker_init_fn = int(prefetch_factor), timeout, worker_init_fn
        self.pin_memory, self.persistent_workers = bool(pin_memory), bool(persistent_workers)
        self.epoch, self._pool = 0, None

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)  # type: ignore[operator]  # int here

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batch_indices(self, epoch: int) -> list[list[int]]:
        """The sample indices of every batch of ``epoch``, in order (lists of ints)."""
        if self.batch_sampler is not None:
            _set_epoch(self.batch_sampler, epoch)
            _set_epoch(getattr(self.batch_sampler, "sampler", None), epoch)
            return [[int(index) for index in batch] for batch in self.batch_sampler]
        if self.sampler is not None:
            _set_epoch(self.sampler, epoch)
            order = self.sampler
        elif self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset)).tolist()
        else:
            order = range(len(self.dataset))
        return [[int(index) for index in batch] for batch in BatchSampler(order, self.batch_size,  # type: ignore[arg-type]  # int
                                                                          self.drop_last)]

    def load_sample(self, index: int, epoch: int) -> Any:
        """Sample ``index`` after its random transform for ``epoch``."""
        sample = self.dataset[int(index)]
        if self.transform is not None:
            sample = self.transform(sample, sample_rng(self.seed, epoch, int(index)))
        return sample

    def load_batch(self, indices: Sequence[int], epoch: int) -> Any:
        return self.collate_fn([self.load_sample(index, epoch) for index in indices])

    def __iter__(self) -> Iterator[Any]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        batches = self.batch_indices(epoch)
        if self.num_workers == 0:
            return (self._delivered(self.load_batch(indices, epoch)) for indices in batches)
        return self._prefetched(batches, epoch)

    def _delivered(self, batch):
        """The batch as the loader hands it out: pinned with ``pin_memory`` when there is a GPU."""
        if not (self.pin_memory and backend.cuda_available()):
            return batch
        return pin_batch(batch, backend.pinned_copy)

    def _workers(self):
        """The worker pool of this epoch: the persistent one if it is alive, else a new one."""
        if self._pool is not None:
            try:
                self._pool.drain()                      # answers still due from an epoch left early
                return self._pool
            except RuntimeError:                        # a worker died or stalled: start afresh
                self._pool.close()
                self._pool = None
        pool = WorkerPool(self, self.num_workers, self.timeout)
        if self.persistent_workers:
            self._pool = pool
            weakref.finalize(self, pool.close)
        return pool

    def _prefetched(self, batches, epoch):
        """Keep ``prefetch_factor`` batches per worker in flight; hand them out in order."""
        pool, failed = self._workers(), True
        ahead = self.num_workers * self.prefetch_factor
        try:
            for b in range(min(ahead, len(batches))):
                pool.request(b % self.num_workers, batches[b], epoch)
            for b in range(len(batches)):
                batch = pool.receive(b % self.num_workers)
                if b + ahead < len(batches):
                    pool.request((b + ahead) % self.num_workers, batches[b + ahead], epoch)
                yield self._delivered(batch)
            failed = False
        except GeneratorExit:                          # the epoch was left early: not a failure
            failed = False
            raise
        finally:
            if failed or not self.persistent_workers:
                pool.close()
                self._pool = None

    def one_batch(self) -> Any:
        """The first batch of the current epoch, without advancing the epoch."""
        return self._delivered(self.load_batch(self.batch_indices(self.epoch)[0], self.epoch))

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"num_workers={self.num_workers}, seed={self.seed})")


def pin_batch(batch: Any, pinned_copy: Callable[[np.ndarray], np.ndarray]) -> Any:
    """``batch`` with every host NumPy array in it (CPU Tensors' arrays included) replaced by
    ``pinned_copy(array)``, its copy in page-locked host memory (``backend.pinned_copy``), as PyTorch's
    ``pin_memory``; dicts, lists, tuples and namedtuples are rebuilt around the copies, anything else
    (strings, numbers) is kept as it is."""
    if isinstance(batch, np.ndarray):
        return pinned_copy(batch)
    if isinstance(batch, Tensor):
        if not isinstance(batch.data, np.ndarray):
            return batch
        return Tensor.wrap(pinned_copy(batch.data), batch.device)
    if isinstance(batch, Mapping):
        return {key: pin_batch(value, pinned_copy) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(pin_batch(value, pinned_copy) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(pin_batch(value, pinned_copy) for value in batch)
    return batch


def batch_to_tensors(batch: Any, device: str = "cpu", normalize: Normalize | None = None) -> tuple[Any, Any]:
    """(x, y) Tensors on ``device`` from a collated batch.

    x: the images as float32 (N, C, H, W), normalised by ``normalize`` (or scaled to [0, 1]).
    y: the mask (int64 (N, H, W)) for segmentation, else the target (int64 (N,) class indices or
    float32 (N, C) multi-hot), else for detection a list with one dict per image of Tensors
    {"boxes": (K, 4) float32, "labels": (K,) int64, "instance_masks": (K, H, W) uint8 (if any),
    "image_id": () int64 (if any)};
    None when the batch has no target (a test set).

    A PyTorch-style batch, a pair (inputs, targets) of Tensors as default_collate makes of tuple
    samples, is moved to ``device`` as it is: its inputs are whatever the dataset made them, so
    ``normalize`` (for the library's channels-last uint8 images) must be None for it.
    """
    if isinstance(batch, (list, tuple)):
        return _pair_to_device(batch, device, normalize)
    xp = backend.get_xp(device)
    images = backend.move(np.asarray(batch["image"]), device)
    x = (normalize or Normalize([0.0] * images.shape[-1], [1.0] * images.shape[-1]))(images, xp)
    return Tensor(x, device=device), _targets(batch, device)


def _pair_to_device(batch, device, normalize):
    if len(batch) != 2 or not all(isinstance(part, Tensor) for part in batch):
        raise TypeError(f"batch_to_tensors: a list or tuple batch must be a pair (inputs, targets) of Tensors, got "
                        f"{[type(part).__name__ for part in batch]}; return (input, target) from the dataset")
    if normalize is not None:
        raise ValueError("batch_to_tensors: normalize applies to the library's dict batches (their 'image' "
                         "arrays); a (inputs, targets) batch is moved as it is, so normalise in the dataset and "
                         "pass normalize=None")
    return tuple(part.to(device) for part in batch)


def _targets(batch, device):
    def tensor(values, dtype):
        return Tensor(np.asarray(values).astype(dtype, copy=False), device=device)
    if "mask" in batch:
        return tensor(batch["mask"], np.int64)
    if "target" in batch:
        target = np.asarray(batch["target"])
        return tensor(target, np.int64 if target.dtype.kind in "iub" else np.float32)
    if "boxes" in batch:
        keys = [("boxes", np.float32), ("labels", np.int64), ("instance_masks", np.uint8), ("image_id", np.int64)]
        return [{key: tensor(batch[key][i], dtype) for key, dtype in keys if key in batch}
                for i in range(len(batch["boxes"]))]
    return None


class DeviceLoader:
    """A DataLoader whose batches come out as (x, y) Tensors on the device (see batch_to_tensors)."""

    def __init__(self, loader: DataLoader, device: str = "cpu", normalize: Normalize | None = None) -> None:
        self.loader, self.device, self.normalize = loader, backend.check_device(device), normalize

    @property
    def dataset(self) -> Dataset:
        return self.loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for batch in self.loader:
            yield batch_to_tensors(batch, self.device, self.normalize)

    def one_batch(self) -> tuple[Any, Any]:
        return batch_to_tensors(self.loader.one_batch(), self.device, self.normalize)


class DataLoaders:
    """The train and valid loaders (and optionally a test loader) of one task, as fastai's
    DataBunch: ``dls.train`` / ``dls.valid`` / ``dls.test`` yield (x, y) Tensors on ``device``.

    ``stats`` = (mean, std) per channel in [0, 1] units normalises the images; when it is None, the
    statistics are measured on ``stats_batches`` batches of the training loader. Loaders of PyTorch-style
    (inputs, targets) batches are not normalised (``normalize`` is None): their batches go to the
    device as the dataset made them.
    """
    loaders: dict[str, Any]  # "train" and "valid": DataLoader; "test": DataLoader or None

    def __init__(self, train: DataLoader, valid: DataLoader, test: DataLoader | None = None, device: str = "cpu",
                 stats: tuple[Floats, Floats] | None = None, vocab: Sequence[str] | None = None,
                 stats_batches: int = 4) -> None:
        if stats is None:
            batches = [train.load_batch(indices, 0) for indices in train.batch_indices(0)[:stats_batches]]
            dicts = isinstance(batches[0], dict)
            normalize = Normalize.from_images(batch["image"] for batch in batches) if dicts else None
        else:
            normalize = Normalize(*stats)
        self.loaders = {"train": train, "valid": valid, "test": test}
        self.device, self.normalize = backend.check_device(device), normalize
        self.vocab = vocab if vocab is not None else getattr(train.dataset, "vocab", None)
        self.train, self.valid = DeviceLoader(train, device, normalize), DeviceLoader(valid, device, normalize)
        self.test = DeviceLoader(test, device, normalize) if test is not None else None

    @property
    def c(self) -> int | None:
        """The number of classes (the length of the vocabulary)."""
        return len(self.vocab) if self.vocab is not None else None

    def one_batch(self, split: str = "train") -> tuple[Any, Any]:
        """The first (x, y) batch of a split's current epoch, as Tensors on the device."""
        return getattr(self, split).one_batch()

    def to(self, device: str) -> DataLoaders:
        """The same loaders, delivering their batches on another device."""
        stats = None if self.normalize is None else (self.normalize.mean, self.normalize.std)
        return DataLoaders(self.loaders["train"], self.loaders["valid"], self.loaders["test"], device, stats,
                           self.vocab)

    def show_batch(self, max_n: int = 9, fname: str | os.PathLike[str] | None = None, split: str = "train",
                   ncols: int = 3) -> Figure:
        """A grid Figure of up to ``max_n`` samples of a batch (images with their tags, masks overlaid,
        boxes), as fastai's; also written as the PNG ``fname`` when given."""
        from .show import show_batch
        return show_batch(self.loaders[split].one_batch(), fname, vocab=self.vocab, max_n=max_n, ncols=ncols)

    def __repr__(self) -> str:
        sizes = {name: len(loader.dataset) for name, loader in self.loaders.items() if loader is not None}
        return f"DataLoaders({sizes}, device={self.device!r}, {self.normalize!r})"
