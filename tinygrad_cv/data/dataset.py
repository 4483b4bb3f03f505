"""The Dataset protocol and the one concrete dataset the data block builds.

A dataset is anything with ``len(ds)`` and ``ds[i]`` (0 <= i < len(ds)). Here every sample is a dict
of NumPy arrays, so that one set of transforms and one collate function serve every task:

    key             value                                          task
    image           (H, W, C) uint8 RGB                            always
    target          int class index, or (C,) float32 multi-hot     classification, multi-label
    mask            (H, W) integer class index per pixel           segmentation
    boxes           (K, 4) float32 [x1, y1, x2, y2] pixel edges    detection
    labels          (K,) int64 class of each box (0 = background)  detection
    instance_masks  (K, H, W) uint8 0/1, one per box               instance segmentation
    name            str, where the sample came from                (for figures and errors)

Pixel (row r, column c) covers [c, c+1) x [r, r+1), so a box [x1, y1, x2, y2] (torchvision's
names: (x1, y1) the top-left corner, (x2, y2) the bottom-right) covers the pixels x1 <= c < x2,
y1 <= r < y2.

A dataset may also return tuples (``image, label``), as PyTorch's do; ``Subset``, ``ConcatDataset`` and
``random_split`` (as ``torch.utils.data``'s) work with any dataset.
"""
from __future__ import annotations

import bisect
import math
import warnings
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from .errors import is_integer
from .sampler import random_generator


class Dataset(Protocol):
    """What the DataLoader needs of a dataset: its length and its i-th sample."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...  # a sample dict, or a PyTorch-style tuple


Transform = Callable[[Any, np.random.Generator], Any]
"""A DataLoader's ``transform``: (sample, rng) -> sample, its randomness drawn from ``rng`` only."""


class ItemDataset:
    """``items`` (file paths, CSV rows, COCO image records, ...) and a ``load`` function that turns
    one item into a sample dict. Loading happens on access, so the dataset holds no pixels."""

    def __init__(self, items: Iterable[Any], load: Callable[[Any], Any], vocab: Sequence[str] | None = None) -> None:
        self.items, self.load, self.vocab = list(items), load, vocab

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        if not -len(self.items) <= index < len(self.items):
            raise IndexError(f"ItemDataset: index {index} is out of range for {len(self.items)} items")
        return self.load(self.items[index])

    def __repr__(self) -> str:
        return f"ItemDataset({len(self.items)} items)"


class Subset:
    """The samples ``dataset[indices[i]]``: ``subset[i]``. A list of positions is passed on as one list
    of indices, ``dataset[[indices[i] for i in idx]]``, for a dataset that takes lists (as PyTorch's)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, idx: int | list[int]) -> Any:
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]  # type: ignore[index]  # a dataset of lists
        return self.dataset[self.indices[idx]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset:
    """The samples of ``datasets`` one after the other: index i is in the first dataset whose
    cumulative size exceeds i. A negative index counts from the end, as a list's."""

    def __init__(self, datasets: Iterable[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes, total = [], 0
        for dataset in self.datasets:
            total += len(dataset)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> Any:
        if not is_integer(idx):
            raise TypeError(f"ConcatDataset: index must be an int, got {idx!r} ({type(idx).__name__})")
        if idx < 0:
            if -idx > len(self):
                raise ValueError(f"ConcatDataset: absolute value of index should not exceed dataset length "
                                 f"({len(self)}), got {idx}")
            idx += len(self)
        if idx >= len(self):
            raise IndexError(f"ConcatDataset: index {idx} is out of range for {len(self)} samples")
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        return self.datasets[which][idx - (self.cumulative_sizes[which - 1] if which else 0)]


def random_split(dataset: Dataset, lengths: Sequence[int | float],
                 generator: np.random.Generator | None = None) -> list[Subset]:
    """Non-overlapping Subsets of ``dataset`` of the given ``lengths``, from one random permutation
    of its indices (drawn from ``generator``, a numpy Generator, or else the global generator).

    ``lengths`` are either counts summing to len(dataset), or fractions summing to 1: then each split
    gets floor(n * fraction) samples and the remainder goes one each to the splits in order, from the
    first (as PyTorch >= 1.13)."""
    lengths, n = list(lengths), len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1, got {fraction}")
        counts = [math.floor(n * fraction) for fraction in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this split is an empty dataset",
                              stacklevel=2)
        lengths = counts
    if not all(is_integer(length) and length >= 0 for length in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints summing to len(dataset) or fractions "
                         f"summing to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(lengths)}) does not equal the length of the "
                         f"input dataset ({n})")
    order = random_generator("random_split", generator).permutation(n).tolist()
    ends = [sum(lengths[:i + 1]) for i in range(len(lengths))]
    return [Subset(dataset, order[end - length:end]) for end, length in zip(ends, lengths)]
