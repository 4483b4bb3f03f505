"""The Dataset protocol and the one concrete dataset the data block builds.

A dataset is anything with ``len(ds)`` and ``ds[i]`` (0 <= i < len(ds)). Here every sample is a dict
of NumPy arrays, so that one set of transforms and one collate function serve every task:

    key             value                                          task
    image           (H, W, C) uint8 RGB                            always
    target          int class index, or (C,) float32 multi-hot     classification, multi-label
    mask            (H, W) integer class index per pixel           segmentation
    boxes           (K, 4) float32 [x0, y0, x1, y1] pixel edges    detection
    labels          (K,) int64 class of each box (0 = background)  detection
    instance_masks  (K, H, W) uint8 0/1, one per box               instance segmentation
    name            str, where the sample came from                (for figures and errors)

Pixel (row r, column c) covers [c, c+1) x [r, r+1), so a box [x0, y0, x1, y1] covers the pixels
x0 <= c < x1, y0 <= r < y1.
"""
from typing import Protocol


class Dataset(Protocol):
    """What the DataLoader needs of a dataset: its length and its i-th sample."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict: ...


class ItemDataset:
    """``items`` (file paths, CSV rows, COCO image records, ...) and a ``load`` function that turns
    one item into a sample dict. Loading happens on access, so the dataset holds no pixels."""

    def __init__(self, items, load, vocab=None):
        self.items, self.load, self.vocab = list(items), load, vocab

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        if not -len(self.items) <= index < len(self.items):
            raise IndexError(f"ItemDataset: index {index} is out of range for {len(self.items)} items")
        return self.load(self.items[index])

    def __repr__(self):
        return f"ItemDataset({len(self.items)} items)"
