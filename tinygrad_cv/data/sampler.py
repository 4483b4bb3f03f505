"""Samplers, as ``torch.utils.data``'s: iterables of dataset indices with a ``len``, which a DataLoader
walks to build its batches.

    SequentialSampler      0, 1, ..., n - 1
    RandomSampler          a permutation (or draws with replacement) of the indices
    SubsetRandomSampler    a permutation of given indices
    WeightedRandomSampler  indices drawn with probability proportional to their weights
    BatchSampler           another sampler's indices in lists of batch_size
    DistributedSampler     each rank's share of the indices, the same lists as PyTorch's

The random ones draw from a ``numpy.random.Generator`` (``generator``, or else one seeded from the global
generator of ``tinygrad_cv.random`` at each ``iter``, as PyTorch seeds from its global one), so their
streams are not torch's; only DistributedSampler reproduces torch's lists exactly:

PyTorch shuffles with ``torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))``. That is
not ``np.random.RandomState(seed).permutation(n)`` (a different walk over the same generator), but it can
be reproduced with NumPy exactly: torch's CPU generator is a 32-bit Mersenne Twister (MT19937) seeded
like NumPy's legacy one with the seed's low 32 bits, and for n < 2^32 / 20 its randperm is the forward
Fisher-Yates shuffle ``for i in 0..n-2: swap(r[i], r[i + u_i % (n - i)])`` with u_i its i-th raw 32-bit
output. Above that size torch switches to another algorithm, so ``shuffle=True`` refuses such datasets.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterator, Protocol, Sequence, Sized

import numpy as np
import numpy.typing as npt

from .. import distributed as dist
from ..random import generator as global_generator
from .errors import is_integer

TORCH_RANDPERM_SMALL_N = (2 ** 32 - 1) // 20
"""torch's randperm uses the Fisher-Yates walk below for n < this bound."""


class SamplerLike(Protocol):
    """What a DataLoader takes as ``sampler``: the indices of an epoch (ints), and how many there are."""

    def __iter__(self) -> Iterator[int]: ...

    def __len__(self) -> int: ...


class BatchSamplerLike(Protocol):
    """What a DataLoader takes as ``batch_sampler``: the index lists of an epoch's batches, and how many."""

    def __iter__(self) -> Iterator[Sequence[int]]: ...

    def __len__(self) -> int: ...


def torch_randperm(n: int, seed: int) -> list[int]:
    """``torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()`` on the CPU, in NumPy."""
    if n >= TORCH_RANDPERM_SMALL_N:
        raise ValueError(f"torch_randperm: n={n} is beyond {TORCH_RANDPERM_SMALL_N}, where torch's randperm "
                         f"uses another algorithm that this reproduction does not follow")
    raw = np.random.RandomState(seed & 0xFFFFFFFF).randint(0, 2 ** 32, size=max(n - 1, 0), dtype=np.uint32)
    order = list(range(n))
    for i, u in enumerate(raw.tolist()):
        j = i + u % (n - i)
        order[i], order[j] = order[j], order[i]
    return order


def _positive_int(caller, name, value):
    if not is_integer(value) or value <= 0:
        raise ValueError(f"{caller}: {name} should be a positive integer value, got {value!r} "
                         f"({type(value).__name__})")
    return int(value)


def _bool(caller, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{caller}: {name} should be a boolean value (True or False), got {value!r} "
                         f"({type(value).__name__})")
    return bool(value)


def random_generator(caller: str, generator: np.random.Generator | None) -> np.random.Generator:
    """``generator`` itself, or a fresh one seeded from the global generator (a new stream each call)."""
    if generator is None:
        return np.random.default_rng(int(global_generator().integers(2 ** 63)))
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{caller}: generator must be a numpy.random.Generator (np.random.default_rng(seed)) "
                        f"or None, got a {type(generator).__name__}")
    return generator


class SequentialSampler:
    """The indices 0, 1, ..., len(data_source) - 1, in order."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler:
    """``num_samples`` (default len(data_source)) random indices of ``data_source``, each ``iter`` anew.

    Without ``replacement``: a permutation of all n indices, then another, ..., cut to num_samples
    (so each index appears floor(num_samples / n) or one more times). With it: independent uniform draws."""

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: np.random.Generator | None = None) -> None:
        self.data_source = data_source
        self.replacement = _bool("RandomSampler", "replacement", replacement)
        self._num_samples = num_samples
        _positive_int("RandomSampler", "num_samples", self.num_samples)      # also refuses an empty data_source
        random_generator("RandomSampler", generator)
        self.generator = generator

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, rng = len(self.data_source), random_generator("RandomSampler", self.generator)
        if self.replacement:
            return iter(rng.integers(0, n, self.num_samples).tolist())
        rounds = [rng.permutation(n) for _ in range(math.ceil(self.num_samples / n))]
        return iter(np.concatenate(rounds)[:self.num_samples].tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler:
    """The given ``indices`` in a random order, a new one each ``iter``."""

    def __init__(self, indices: Sequence[int], generator: np.random.Generator | None = None) -> None:
        self.indices = indices
        random_generator("SubsetRandomSampler", generator)
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        order = random_generator("SubsetRandomSampler", self.generator).permutation(len(self.indices))
        return iter([self.indices[i] for i in order.tolist()])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler:
    """``num_samples`` indices in 0 .. len(weights) - 1, index i drawn with probability weights[i] / sum.

    Without ``replacement`` each draw is taken among the indices not drawn yet, with their weights
    renormalised (as ``torch.multinomial``), so num_samples must not exceed the number of positive weights."""

    def __init__(self, weights: Sequence[float] | npt.NDArray[Any], num_samples: int, replacement: bool = True,
                 generator: np.random.Generator | None = None) -> None:
        self.num_samples = _positive_int("WeightedRandomSampler", "num_samples", num_samples)
        self.replacement = _bool("WeightedRandomSampler", "replacement", replacement)
        weights = np.array(weights, dtype=np.float64)
        if weights.ndim != 1 or len(weights) == 0:
            raise ValueError(f"WeightedRandomSampler: weights should be a non-empty 1-d sequence, got shape "
                             f"{weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and not all zero, got "
                             f"{weights.tolist()[:8]}{' ...' if len(weights) > 8 else ''}")
        if not self.replacement and self.num_samples > np.count_nonzero(weights):
            raise ValueError(f"WeightedRandomSampler: cannot draw num_samples={self.num_samples} without "
                             f"replacement from {np.count_nonzero(weights)} positive weights; lower num_samples "
                             f"or set replacement=True")
        random_generator("WeightedRandomSampler", generator)
        self.weights, self.generator = weights, generator

    def __iter__(self) -> Iterator[int]:
        rng = random_generator("WeightedRandomSampler", self.generator)
        drawn = rng.choice(len(self.weights), self.num_samples, replace=self.replacement,
                           p=self.weights / self.weights.sum())
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler:
    """The indices of ``sampler`` (any iterable of indices) in lists of ``batch_size``; the last, shorter
    list is dropped when ``drop_last``."""

    def __init__(self, sampler: SamplerLike | Sequence[int], batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = _positive_int("BatchSampler", "batch_size", batch_size)
        self.drop_last = _bool("BatchSampler", "drop_last", drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


def _check_int(name, value, low):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"DistributedSampler: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class DistributedSampler:
    """The indices of ``dataset`` that rank ``rank`` of ``num_replicas`` trains on, as PyTorch's.

    Each epoch: all indices (shuffled by seed + epoch when ``shuffle``), then made a multiple of
    num_replicas (without ``drop_last``: padded by repeating the first indices; with it: the tail cut
    off), then every num_replicas-th index from position ``rank``. Every rank gets ``len(self)`` indices
    and the ranks' lists together cover the epoch. ``num_replicas`` and ``rank`` default to the world's
    (``tinygrad_cv.distributed``). ``set_epoch(e)`` changes the shuffle (a DataLoader given this sampler
    calls it with its own epoch count at the start of each epoch)."""

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        num_replicas = dist.world_size() if num_replicas is None else _check_int("num_replicas", num_replicas, 1)
        rank = dist.rank() if rank is None else rank
        if not isinstance(rank, numbers.Integral) or isinstance(rank, bool) or not 0 <= int(rank) < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in 0 .. {num_replicas - 1}, got {rank!r}")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), _check_int("seed", seed, 0), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.shuffle and n >= TORCH_RANDPERM_SMALL_N:
            raise ValueError(f"DistributedSampler: shuffle=True follows torch's randperm only below "
                             f"{TORCH_RANDPERM_SMALL_N} samples, got {n}")
        if self.drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = _check_int("epoch", epoch, 0)

    def indices(self) -> list[int]:
        """This rank's indices for the current epoch, as a list of ints."""
        n = len(self.dataset)
        order = torch_randperm(n, self.seed + self.epoch) if self.shuffle else list(range(n))
        if self.drop_last:
            order = order[:self.total_size]
        else:
            padding = self.total_size - n
            order += (order * math.ceil(padding / n))[:padding] if n else []
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler({len(self.dataset)} samples, rank {self.rank} of {self.num_replicas}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
