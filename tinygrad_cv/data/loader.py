"""DataLoader (samples -> batches, with background prefetch) and DataLoaders (train/valid/test
loaders plus the step that turns a batch into Tensors on the device).

Reproducibility: the order of an epoch comes from a generator seeded by (seed, epoch), and each
sample's random transform from one seeded by (seed, epoch, index). No draw depends on a global
generator or on which worker loads the sample, so for a given seed the batches are the same
whatever ``num_workers`` is.

Workers (``num_workers`` > 0) are forked processes that send batches back as ``.npy`` records, never
pickles (see workers.py).
"""
import math

import numpy as np

from .. import backend
from ..random import generator as global_generator
from ..tensor import Tensor
from .errors import is_integer
from .transforms import Normalize
from .workers import WorkerPool

LIST_KEYS = frozenset({"boxes", "labels", "instance_masks", "name"})
"""Keys whose values differ in length from sample to sample: collated as lists, not stacked."""


def default_collate(samples):
    """A batch dict from sample dicts: values of ``LIST_KEYS`` (and strings) become lists, every
    other value is stacked into one array with the batch as the first axis."""
    keys = list(samples[0])
    for sample in samples[1:]:
        if list(sample) != keys:
            raise ValueError(f"default_collate: samples have different keys ({keys} and {list(sample)}); "
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


def sample_rng(seed, epoch, index):
    """The generator for one sample's random transform: a function of (seed, epoch, index) only."""
    return np.random.default_rng([seed, epoch, index])


def _check_arguments(batch_size, num_workers, shuffle, drop_last, collate_fn, transform, seed, prefetch):
    """DataLoader's arguments, each of the type PyTorch's takes: a bool is not a batch size (True
    would silently mean 1), a float is not a worker count, a string is not a flag. Bad numbers and
    flags raise ValueError, as PyTorch's DataLoader and BatchSampler do; a non-callable is a TypeError."""
    for name, value, minimum in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                                 ("prefetch", prefetch, 1)):
        if not is_integer(value) or value < minimum:
            raise ValueError(f"DataLoader: {name} must be an int >= {minimum}, got {value!r} "
                            f"({type(value).__name__})")
    for name, value in (("shuffle", shuffle), ("drop_last", drop_last)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"DataLoader: {name} must be True or False, got {value!r} ({type(value).__name__})")
    for name, value in (("collate_fn", collate_fn), ("transform", transform)):
        if value is not None and not callable(value):
            raise TypeError(f"DataLoader: {name} must be callable or None, got a {type(value).__name__}")
    if seed is not None and not is_integer(seed):
        raise ValueError(f"DataLoader: seed must be an int or None, got {seed!r} ({type(seed).__name__})")


class DataLoader:
    """Batches of ``dataset`` samples, each passed through ``transform(sample, rng)`` and then
    ``collate_fn``; with ``num_workers`` > 0, worker processes prepare the next batches in the
    background.

    Each ``for batch in loader`` is one epoch; the epoch number advances at the start of each one
    (``set_epoch`` sets it). ``seed`` (or one integer drawn from ``generator``, or else from the
    global generator of ``tinygrad_cv.random``) fixes the shuffles and the transforms.

    ``sampler`` (e.g. a DistributedSampler), an iterable of dataset indices with a ``len``, gives the order
    instead of ``shuffle`` (the two exclude each other, as in PyTorch); if it has ``set_epoch``, the loader
    calls it with the epoch at the start of each one (PyTorch leaves that call to the user).
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, collate_fn=None, seed=None,
                 generator=None, num_workers=0, transform=None, prefetch=2, sampler=None):
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty (len 0); check the folder, CSV or split "
                             "that produced it")
        _check_arguments(batch_size=batch_size, num_workers=num_workers, shuffle=shuffle, drop_last=drop_last,
                         collate_fn=collate_fn, transform=transform, seed=seed, prefetch=prefetch)
        if drop_last and batch_size > len(dataset):
            raise ValueError(f"DataLoader: drop_last=True with batch_size {batch_size} and only {len(dataset)} "
                             f"samples gives no batch at all; lower batch_size or set drop_last=False")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle; the sampler gives "
                             "the order (e.g. DistributedSampler(dataset, shuffle=True)), so pass shuffle=False")
        if seed is None:
            seed = int((generator or global_generator()).integers(2 ** 63))
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.collate_fn = collate_fn or default_collate
        self.seed, self.num_workers, self.transform = int(seed), int(num_workers), transform
        self.prefetch, self.epoch, self.sampler = int(prefetch), 0, sampler

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def batch_indices(self, epoch):
        """The sample indices of every batch of ``epoch``, in order."""
        n = len(self.dataset)
        if self.sampler is not None:
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(epoch)
            order = np.fromiter(self.sampler, dtype=np.int64)
        elif self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            order = np.arange(n)
        return [order[start:start + self.batch_size] for start in range(0, len(self) * self.batch_size,
                                                                         self.batch_size)]

    def load_sample(self, index, epoch):
        """Sample ``index`` after its random transform for ``epoch``."""
        sample = self.dataset[int(index)]
        if self.transform is not None:
            sample = self.transform(sample, sample_rng(self.seed, epoch, int(index)))
        return sample

    def load_batch(self, indices, epoch):
        return self.collate_fn([self.load_sample(index, epoch) for index in indices])

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        batches = self.batch_indices(epoch)
        if self.num_workers == 0:
            return (self.load_batch(indices, epoch) for indices in batches)
        return self._prefetched(batches, epoch)

    def _prefetched(self, batches, epoch):
        """Keep ``prefetch`` batches per worker in flight; hand them out in order."""
        pool = WorkerPool(self, self.num_workers)
        ahead = self.num_workers * self.prefetch
        try:
            for b in range(min(ahead, len(batches))):
                pool.request(b % self.num_workers, batches[b], epoch)
            for b in range(len(batches)):
                batch = pool.receive(b % self.num_workers)
                if b + ahead < len(batches):
                    pool.request((b + ahead) % self.num_workers, batches[b + ahead], epoch)
                yield batch
        finally:
            pool.close()

    def one_batch(self):
        """The first batch of the current epoch, without advancing the epoch."""
        return self.load_batch(self.batch_indices(self.epoch)[0], self.epoch)

    def __repr__(self):
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"num_workers={self.num_workers}, seed={self.seed})")


def batch_to_tensors(batch, device="cpu", normalize=None):
    """(x, y) Tensors on ``device`` from a collated batch.

    x: the images as float32 (N, C, H, W), normalised by ``normalize`` (or scaled to [0, 1]).
    y: the mask (int64 (N, H, W)) for segmentation, else the target (int64 (N,) class indices or
    float32 (N, C) multi-hot), else for detection a list with one dict per image of Tensors
    {"boxes": (K, 4) float32, "labels": (K,) int64, "instance_masks": (K, H, W) uint8 (if any)};
    None when the batch has no target (a test set).
    """
    xp = backend.get_xp(device)
    images = backend.move(np.asarray(batch["image"]), device)
    x = (normalize or Normalize([0.0] * images.shape[-1], [1.0] * images.shape[-1]))(images, xp)
    return Tensor(x, device=device), _targets(batch, device)


def _targets(batch, device):
    def tensor(values, dtype):
        return Tensor(np.asarray(values).astype(dtype, copy=False), device=device)
    if "mask" in batch:
        return tensor(batch["mask"], np.int64)
    if "target" in batch:
        target = np.asarray(batch["target"])
        return tensor(target, np.int64 if target.dtype.kind in "iub" else np.float32)
    if "boxes" in batch:
        keys = [("boxes", np.float32), ("labels", np.int64), ("instance_masks", np.uint8)]
        return [{key: tensor(batch[key][i], dtype) for key, dtype in keys if key in batch}
                for i in range(len(batch["boxes"]))]
    return None


class DeviceLoader:
    """A DataLoader whose batches come out as (x, y) Tensors on the device (see batch_to_tensors)."""

    def __init__(self, loader, device="cpu", normalize=None):
        self.loader, self.device, self.normalize = loader, backend.check_device(device), normalize

    @property
    def dataset(self):
        return self.loader.dataset

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield batch_to_tensors(batch, self.device, self.normalize)

    def one_batch(self):
        return batch_to_tensors(self.loader.one_batch(), self.device, self.normalize)


class DataLoaders:
    """The train and valid loaders (and optionally a test loader) of one task, as fastai's
    DataBunch: ``dls.train`` / ``dls.valid`` / ``dls.test`` yield (x, y) Tensors on ``device``.

    ``stats`` = (mean, std) per channel in [0, 1] units normalises the images; when it is None, the
    statistics are measured on ``stats_batches`` batches of the training loader.
    """

    def __init__(self, train, valid, test=None, device="cpu", stats=None, vocab=None, stats_batches=4):
        if stats is None:
            batches = train.batch_indices(0)[:stats_batches]
            normalize = Normalize.from_images(train.load_batch(indices, 0)["image"] for indices in batches)
        else:
            normalize = Normalize(*stats)
        self.loaders = {"train": train, "valid": valid, "test": test}
        self.device, self.normalize = backend.check_device(device), normalize
        self.vocab = vocab if vocab is not None else getattr(train.dataset, "vocab", None)
        self.train, self.valid = DeviceLoader(train, device, normalize), DeviceLoader(valid, device, normalize)
        self.test = DeviceLoader(test, device, normalize) if test is not None else None

    @property
    def c(self):
        """The number of classes (the length of the vocabulary)."""
        return len(self.vocab) if self.vocab is not None else None

    def one_batch(self, split="train"):
        """The first (x, y) batch of a split's current epoch, as Tensors on the device."""
        return getattr(self, split).one_batch()

    def to(self, device):
        """The same loaders, delivering their batches on another device."""
        return DataLoaders(self.loaders["train"], self.loaders["valid"], self.loaders["test"], device,
                           (self.normalize.mean, self.normalize.std), self.vocab)

    def show_batch(self, path, split="train", n=9, ncols=3):
        """Draw ``n`` samples of a batch (images with their tags, masks overlaid, boxes) as a grid
        figure saved to the PNG ``path``; returns the path."""
        from .show import show_batch
        return show_batch(self.loaders[split].one_batch(), path, vocab=self.vocab, n=n, ncols=ncols)

    def __repr__(self):
        sizes = {name: len(loader.dataset) for name, loader in self.loaders.items() if loader is not None}
        return f"DataLoaders({sizes}, device={self.device!r}, {self.normalize!r})"
