"""The data block: get the items, split them, label them, transform them, make the loaders.

    rows = csv_rows(path / "train_v2.csv", columns=("image_name", "tags"))     # get
    recipe = DataRecipe(rows,
                        image=lambda row: path / "train-jpg" / f"{row['image_name']}.jpg",
                        label=TagLabels(),                                      # label
                        split=RandomSplit(valid_pct=0.2, seed=42))              # split
    dls = recipe.dataloaders(batch_size=64, size=128,                           # transform + load
                             train_tfms=aug_transforms(128, flip_vert=True))

Each step is a small object you can swap:
  split(paths) -> (train_indices, valid_indices)       RandomSplit, ListSplit, FolderSplit
  label(item, path) -> dict of target entries          FolderLabel, TagLabels, MaskLabel, CocoLabel
                       (+ ``vocab``, and optionally ``setup(items, paths)`` to learn the vocabulary)
The ready-made recipes for the three formats are at the bottom (planet_recipe, camvid_recipe,
coco_recipe).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .dataset import ItemDataset, Transform
from .errors import DataFormatError
from .image_io import IMAGE_EXTENSIONS, read_image, read_mask
from .loader import DataLoader, DataLoaders
from .readers import Coco, CsvRow, csv_rows, read_lines
from .transforms import aug_transforms, valid_transforms
from .transforms.recipes import Floats


# --------------------------------------------------------------------------- get
def image_files(folder: str | os.PathLike[str], extensions: Iterable[str] = IMAGE_EXTENSIONS,
                recurse: bool = True) -> list[Path]:
    """The image files under ``folder`` (sorted paths), chosen by extension (case-insensitive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image_files: {os.fspath(folder)!r} is not a folder")
    extensions = {e.lower() for e in extensions}
    candidates = folder.rglob("*") if recurse else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in extensions and p.is_file())


# --------------------------------------------------------------------------- split
class RandomSplit:
    """A random ``valid_pct`` of the items for validation: a permutation seeded by ``seed``, of which
    the first ``cut = int(valid_pct * n)`` items are the validation set."""

    def __init__(self, valid_pct: float = 0.2, seed: int = 42) -> None:
        if not 0 < valid_pct < 1:
            raise ValueError(f"RandomSplit: valid_pct must be between 0 and 1, got {valid_pct}")
        self.valid_pct, self.seed = valid_pct, seed

    def __call__(self, paths):
        order = np.random.default_rng(self.seed).permutation(len(paths))
        cut = int(self.valid_pct * len(paths))
        return order[cut:], order[:cut]


class ListSplit:
    """Validation = the items whose file name is listed in ``names`` (a list, or the path of a text
    file with one name per line, such as CamVid's ``valid.txt``). Listed names that match no item
    give a warning (they may be files skipped as unreadable); no match at all is an error."""

    def __init__(self, names: str | os.PathLike[str] | Iterable[str]) -> None:
        self.source = names if isinstance(names, (str, os.PathLike)) else "the given list"
        self.names = set(read_lines(names) if isinstance(names, (str, os.PathLike)) else names)

    def __call__(self, paths):
        listed = np.array([Path(p).name in self.names for p in paths], dtype=bool)
        unknown = sorted(self.names - {Path(p).name for p in paths})
        if unknown and listed.any():
            warnings.warn(f"ListSplit: {len(unknown)} of the {len(self.names)} names in {os.fspath(self.source)!r} "
                          f"are not among the items (e.g. {unknown[:3]}); the validation set has only the "
                          f"{int(listed.sum())} that are", stacklevel=2)
        if not listed.any():
            raise ValueError(f"ListSplit: none of the {len(self.names)} names in {os.fspath(self.source)!r} "
                             f"(e.g. {sorted(self.names)[:3]}) is among the {len(paths)} items "
                             f"(e.g. {[Path(p).name for p in paths[:3]]}); the validation set would be empty")
        return np.flatnonzero(~listed), np.flatnonzero(listed)


class FolderSplit:
    """Validation = the items inside a folder named ``valid_name`` (at any depth, e.g. root/valid/
    class/x.jpg); all others are for training."""

    def __init__(self, valid_name: str = "valid") -> None:
        self.valid_name = valid_name

    def __call__(self, paths):
        in_valid = np.array([self.valid_name in Path(p).parts[:-1] for p in paths], dtype=bool)
        return np.flatnonzero(~in_valid), np.flatnonzero(in_valid)


# --------------------------------------------------------------------------- label
class FolderLabel:
    """A single label per image: the name of the folder it is in. target = its index in ``vocab``."""

    def __init__(self, vocab: Sequence[str] | None = None) -> None:
        self.vocab = list(vocab) if vocab is not None else None

    def setup(self, items, paths):
        names = sorted({Path(p).parent.name for p in paths})
        if self.vocab is None:
            self.vocab = names
        unknown = sorted(set(names) - set(self.vocab))
        if unknown:
            raise ValueError(f"FolderLabel: folders {unknown[:5]} are not in the vocabulary {self.vocab[:10]}")
        self._index = {name: i for i, name in enumerate(self.vocab)}

    def __call__(self, item, path):
        return {"target": np.int64(self._index[Path(path).parent.name])}


def _where(item, path):
    """Where an item came from, for errors: its CSV file and line when it is a CSV row, else its path."""
    return f"{item.where()} (image {os.fspath(path)!r})" if isinstance(item, CsvRow) else repr(os.fspath(path))


class TagLabels:
    """Multi-label targets from tags separated by ``sep`` (a CSV column): target = a float32
    multi-hot vector over ``vocab`` (the sorted set of all tags, unless given).

    Splitting is fastai's ``label_delim=" "``: the text is split on exactly ``sep``. Unlike fastai,
    which would make one tag of "clear<TAB>primary" and a tag "" of a doubled separator, a tag with
    leading or trailing whitespace (any whitespace at all when ``sep`` is whitespace), an empty tag
    (repeated or trailing separators) and, unless ``allow_empty``, a row without any tag are errors
    naming the CSV file and line.
    """

    def __init__(self, column: str = "tags", vocab: Sequence[str] | None = None, sep: str = " ",
                 allow_empty: bool = False) -> None:
        if not isinstance(sep, str) or not sep:
            raise ValueError(f"TagLabels: sep must be a non-empty string, got {sep!r}")
        self.column, self.sep, self.allow_empty = column, sep, allow_empty
        self.vocab = list(vocab) if vocab is not None else None

    def tags(self, item):
        text = item[self.column]
        return text.split(self.sep) if text else []

    def _check(self, item, path):
        if self.column not in item:
            raise DataFormatError(f"TagLabels: {_where(item, path)} has no column {self.column!r} "
                                  f"(columns {sorted(item)}); pass TagLabels(column=...)")
        tags = self.tags(item)
        if not tags and not self.allow_empty:
            raise DataFormatError(f"TagLabels: {_where(item, path)} has no tags; every image needs at least "
                                  f"one (or pass allow_empty=True for an all-zero target)")
        odd = [tag for tag in tags if not tag or tag != tag.strip() or (self.sep.isspace() and len(tag.split()) > 1)]
        if odd:
            raise DataFormatError(f"TagLabels: {_where(item, path)} has the tags {tags} in {item[self.column]!r}; "
                                  f"{odd[0]!r} is empty or holds whitespace other than the separator "
                                  f"{self.sep!r}. Separate tags by exactly one {self.sep!r}")
        return tags

    def setup(self, items, paths):
        tags = [self._check(item, path) for item, path in zip(items, paths)]
        if self.vocab is None:
            self.vocab = sorted({tag for item_tags in tags for tag in item_tags})
        known = set(self.vocab)
        for item, path, item_tags in zip(items, paths, tags):
            unknown = [tag for tag in item_tags if tag not in known]
            if unknown:
                raise DataFormatError(f"TagLabels: {_where(item, path)} has tags {unknown} that are not in the "
                                      f"vocabulary ({len(self.vocab)} tags: {self.vocab[:8]}...); fix the "
                                      f"CSV or extend the vocabulary")
        self._index = {tag: i for i, tag in enumerate(self.vocab)}

    def __call__(self, item, path):
        target = np.zeros(len(self.vocab), dtype=np.float32)  # type: ignore[arg-type]  # setup() made it
        target[[self._index[tag] for tag in self.tags(item)]] = 1.0
        return {"target": target}


class MaskLabel:
    """Segmentation: the mask file is ``mask_of(image_path)`` and its pixel values index ``codes``
    (a list of class names, or the path of a ``codes.txt`` with one name per line)."""

    def __init__(self, mask_of: Callable[[Path], str | os.PathLike[str]],
                 codes: str | os.PathLike[str] | Sequence[str]) -> None:
        self.mask_of = mask_of
        self.vocab = read_lines(codes) if isinstance(codes, (str, os.PathLike)) else list(codes)

    def setup(self, items, paths):
        """Every image's mask file must exist: the missing ones are named before training starts."""
        masks = [os.fspath(self.mask_of(Path(p))) for p in paths]
        missing = [mask for mask in masks if not os.path.isfile(mask)]
        if missing:
            raise DataFormatError(f"MaskLabel: {len(missing)} of {len(paths)} images have no mask file, e.g. "
                                  f"{missing[:5]}; check the labels folder and mask_of")

    def __call__(self, item, path):
        mask_path = self.mask_of(Path(path))
        mask = read_mask(mask_path)
        if mask.size and (mask.max() >= len(self.vocab) or mask.min() < 0):
            bad = np.unique(mask[(mask >= len(self.vocab)) | (mask < 0)])
            raise DataFormatError(f"MaskLabel: {os.fspath(mask_path)!r} has class values {bad[:5].tolist()} but the "
                             f"codes list only {len(self.vocab)} classes (0..{len(self.vocab) - 1})")
        return {"mask": mask}


class CocoLabel:
    """Instances from a COCO file: boxes, labels (1..K, 0 = background) and instance masks."""

    def __init__(self, coco: Coco) -> None:
        self.coco = coco if isinstance(coco, Coco) else Coco.read(coco)
        self.vocab = self.coco.vocab

    def __call__(self, record, path):
        self.coco.check_image_size(record, path)
        return self.coco.targets(record)


# --------------------------------------------------------------------------- the recipe
def _missing_files_error(paths, caller, items=None):
    """Every image file must exist: the missing ones are named (with their CSV lines), before any
    training starts."""
    missing = [i for i, p in enumerate(paths) if not os.path.isfile(p)]
    if missing:
        named = [_where(items[i] if items is not None else None, paths[i]) for i in missing[:5]]
        raise DataFormatError(f"{caller}: {len(missing)} of {len(paths)} image files do not exist, e.g. "
                              f"[{', '.join(named)}]; check the folder and the file names in the CSV or JSON")


def _repeated_files_error(items, paths, caller):
    """An image listed twice could land in both the training and the validation set (a silent leak),
    and its two rows may even disagree on its labels: refused, naming the rows."""
    seen: dict[str, int] = {}
    repeats = []
    for i, path in enumerate(paths):
        key = os.path.normcase(os.path.abspath(path))
        if key in seen:
            repeats.append((seen[key], i))
        else:
            seen[key] = i
    if repeats:
        named = [f"{_where(items[a], paths[a])} and {_where(items[b], paths[b])}" for a, b in repeats[:5]]
        raise DataFormatError(f"{caller}: {len(repeats)} items repeat an image listed before, e.g. "
                              f"{'; '.join(named)}; an image listed twice can fall into both the training "
                              f"and the validation set. Remove the repeated rows")


class DataRecipe:
    """The items of a dataset, how to find each one's image, how to label them and how to split
    them; ``datasets()`` and ``dataloaders()`` turn the recipe into data.

    items: a list of anything (image paths, CSV rows, COCO image records).
    image: item -> image path (by default the item is the path).
    label: a labeller (see the module docstring), or None for unlabelled images.
    split: paths -> (train_indices, valid_indices).
    skip_bad_files: load every sample once and drop (with a warning counting them) the ones whose
    files cannot be read; otherwise the first bad file raises an error naming it, when loaded.
    """

    def __init__(self, items: Iterable[Any], label: Any = None, split: Callable[[list[Path]], tuple[Any,
                 Any]] | None = None, image: Callable[[Any], Any] | None = None, skip_bad_files: bool = False) -> None:
        self.items = list(items)
        if not self.items:
            raise ValueError("DataRecipe: no items; the folder, CSV or JSON gave nothing to load")
        self.image, self.label = image or (lambda item: item), label
        self.paths = [Path(self.image(item)) for item in self.items]
        _missing_files_error(self.paths, "DataRecipe", self.items)
        _repeated_files_error(self.items, self.paths, "DataRecipe")
        if hasattr(label, "setup"):
            label.setup(self.items, self.paths)
        self.skipped = self._skip_bad_files() if skip_bad_files else []
        train, valid = (split or RandomSplit())(self.paths)
        if len(train) == 0 or len(valid) == 0:
            raise ValueError(f"DataRecipe: the split leaves {len(train)} training and {len(valid)} validation "
                             f"items out of {len(self.items)}; both sets need at least one item")
        self.train_indices, self.valid_indices = np.asarray(train), np.asarray(valid)

    @property
    def vocab(self) -> list[str] | None:
        return getattr(self.label, "vocab", None)

    def load(self, index: int) -> dict[str, Any]:
        """The sample of item ``index``: its image, its labels and its name."""
        path = self.paths[index]
        sample: dict[str, Any] = {"image": read_image(path)}
        if self.label is not None:
            sample.update(self.label(self.items[index], path))
        for key in ("mask", "instance_masks"):
            if key in sample and sample[key].shape[-2:] != sample["image"].shape[:2]:
                raise DataFormatError(f"DataRecipe: {os.fspath(path)!r} is {sample['image'].shape[0]}x"
                                 f"{sample['image'].shape[1]} but its {key} is "
                                 f"{sample[key].shape[-2]}x{sample[key].shape[-1]}")
        sample["name"] = path.stem
        return sample

    def _skip_bad_files(self):
        """Load every sample once; drop the ones whose files cannot be read or are invalid, and warn
        with their count. Returns [(path, reason), ...] of the skipped items."""
        bad = {}
        for index in range(len(self.items)):
            try:
                self.load(index)
            except ValueError as error:                  # ImageReadError is a ValueError
                bad[index] = str(error)
        skipped = [(self.paths[index], reason) for index, reason in bad.items()]
        if bad:
            warnings.warn(f"DataRecipe: skipped {len(bad)} of {len(self.items)} items whose files could not "
                          f"be read, e.g. {skipped[0][1]}", stacklevel=3)
            self.items = [item for i, item in enumerate(self.items) if i not in bad]
            self.paths = [path for i, path in enumerate(self.paths) if i not in bad]
            if not self.items:
                raise ValueError("DataRecipe: every item was skipped as unreadable; nothing is left to load")
        return skipped

    def datasets(self) -> tuple[ItemDataset, ItemDataset]:
        """(train, valid) datasets of samples."""
        return (ItemDataset(self.train_indices, self.load, self.vocab),
                ItemDataset(self.valid_indices, self.load, self.vocab))

    def test_dataset(self, paths: Iterable[str | os.PathLike[str]]) -> ItemDataset:
        """Unlabelled images (a test set), loaded the same way."""
        paths = [Path(p) for p in paths]
        _missing_files_error(paths, "DataRecipe.test_dataset")
        return ItemDataset(paths, lambda path: {"image": read_image(path), "name": path.stem}, self.vocab)

    def dataloaders(self, batch_size: int = 64, size: int | tuple[int, int] | None = None,
                    train_tfms: Transform | None = None, valid_tfms: Transform | None = None, num_workers: int = 0,
                    seed: int = 0, device: str = "cpu", stats: tuple[Floats, Floats] | None = None,
                    test_paths: Iterable[str | os.PathLike[str]] | None = None) -> DataLoaders:
        """DataLoaders with ``train_tfms`` (default: ``aug_transforms(size)``) on the shuffled training
        set and ``valid_tfms`` (default: resize to ``size`` only) on the validation and test sets."""
        train_ds, valid_ds = self.datasets()
        train_tfms = train_tfms if train_tfms is not None else aug_transforms(size)
        valid_tfms = valid_tfms if valid_tfms is not None else valid_transforms(size)
        common: dict[str, Any] = {"batch_size": batch_size, "num_workers": num_workers}
        train = DataLoader(train_ds, shuffle=True, drop_last=True, seed=seed, transform=train_tfms, **common)
        valid = DataLoader(valid_ds, seed=seed + 1, transform=valid_tfms, **common)
        test = (DataLoader(self.test_dataset(test_paths), seed=seed + 2, transform=valid_tfms, **common)
                if test_paths is not None else None)
        return DataLoaders(train, valid, test, device=device, stats=stats, vocab=self.vocab)

    def __repr__(self) -> str:
        return (f"DataRecipe({len(self.items)} items: {len(self.train_indices)} train, "
                f"{len(self.valid_indices)} valid, vocab of {len(self.vocab) if self.vocab else 0})")


# --------------------------------------------------------------------------- the three formats
def planet_recipe(path: str | os.PathLike[str], valid_pct: float = 0.2, seed: int = 42,
                  csv_name: str = "train_v2.csv", image_folder: str = "train-jpg", extension: str = ".jpg",
                  **options: Any) -> DataRecipe:
    """Planet (Kaggle "Understanding the Amazon from Space"): ``train_v2.csv`` (image_name,tags) and
    the images in ``train-jpg/``; multi-label, random split."""
    path = Path(path)
    rows = csv_rows(path / csv_name, columns=("image_name", "tags"))
    return DataRecipe(rows, image=lambda row: path / image_folder / f"{row['image_name']}{extension}",
                      label=TagLabels("tags"), split=RandomSplit(valid_pct, seed), **options)


def camvid_recipe(path: str | os.PathLike[str], **options: Any) -> DataRecipe:
    """CamVid: ``images/``, ``labels/{stem}_P.png`` (a class index per pixel), ``codes.txt`` (class
    names) and ``valid.txt`` (validation image names)."""
    path = Path(path)
    label = MaskLabel(lambda image: path / "labels" / f"{image.stem}_P.png", path / "codes.txt")
    return DataRecipe(image_files(path / "images"), label=label, split=ListSplit(path / "valid.txt"), **options)


def coco_recipe(json_path: str | os.PathLike[str], image_folder: str | os.PathLike[str], valid_pct: float = 0.2,
                seed: int = 42, **options: Any) -> DataRecipe:
    """COCO instances: the JSON's images (in ``image_folder``) with boxes, labels and masks."""
    coco = Coco.read(json_path)
    return DataRecipe(coco.images, image=lambda record: Path(image_folder) / record["file_name"],
                      label=CocoLabel(coco), split=RandomSplit(valid_pct, seed), **options)
