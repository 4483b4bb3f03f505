"""Readers of the dataset file formats, each checking what it reads and naming the file in its errors:

    csv_rows(path, columns)   a CSV with a header (Planet's ``train_v2.csv``: image_name,tags)
    read_lines(path)          one name per line (CamVid's ``codes.txt`` and ``valid.txt``)
    Coco.read(path)           a COCO instances JSON (images, annotations, categories)

Malformed content raises ``DataFormatError`` (a ValueError) naming the file and, where there is
one, the line, the annotation or the image. No pickle anywhere: CSV, text and JSON only.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from typing import Any, Mapping, NoReturn, Sequence

import numpy as np

from .coco_mask import MAX_PIXELS, checked_rle, rle_to_mask, segmentation_to_rle
from .errors import DataFormatError, is_finite_number, is_integer
from .image_io import image_size
from .transforms import BOX_SLACK


def _read_text(path, caller):
    """The whole text file, with a clear error for a missing file or bytes that are not UTF-8."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            return file.read()
    except FileNotFoundError:
        raise DataFormatError(f"{caller}: {os.fspath(path)!r} does not exist") from None
    except (UnicodeDecodeError, IsADirectoryError) as error:
        raise DataFormatError(f"{caller}: {os.fspath(path)!r} is not a UTF-8 text file ({error})") from error


class CsvRow(dict):
    """One CSV row {column: text} that remembers where it was read: ``source`` (the file) and
    ``line`` (the physical line it starts on; the header is line 1), so later checks can name it."""

    def __init__(self, fields, source, line):
        super().__init__(fields)
        self.source, self.line = source, line

    def where(self):
        return f"{self.source!r} line {self.line}"


def _records(text, source):
    """(first physical line, fields) of each non-blank CSV record. A quote that is never closed, or
    a quoted field running over several lines (an unclosed quote that swallowed the lines after
    it), is an error naming the line where the record starts."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader, None)
        except csv.Error as error:
            hint = ("a quote opened there is never closed" if "end of data" in str(error) else
                    "a quoted field must end at its comma")
            raise DataFormatError(f"csv_rows: {source!r} line {start}: {error}; {hint}. Fix that line") from error
        if record is None:
            return records
        if any("\x00" in field for field in record):
            raise DataFormatError(f"csv_rows: {source!r} line {start}: line contains NUL; the file is corrupt or "
                                  f"not text there. Fix that line")
        if any("\n" in field or "\r" in field for field in record):
            raise DataFormatError(f"csv_rows: {source!r} line {start}: a quoted field runs on to line "
                                  f"{reader.line_num}; a quote opened on line {start} is not closed on that "
                                  f"line. Close or remove it (fields may not span lines)")
        if record:
            records.append((start, record))


def csv_rows(path: str | os.PathLike[str], columns: Sequence[str] = ()) -> list[CsvRow]:
    """The rows of a CSV file with a header line, as ``CsvRow`` dicts {column: text} (fields stripped).

    Every name in ``columns`` must be in the header; every row must have as many fields as the
    header. An empty file, a header without rows, repeated column names, a quote left open and a
    quoted field spanning lines are errors naming the file and the line.
    """
    source = os.fspath(path)
    records = _records(_read_text(path, "csv_rows"), source)
    expected = ",".join(columns) or "image_name,tags"
    if not records:
        raise DataFormatError(f"csv_rows: {source!r} is empty; expected a header line such as {expected}")
    (header_line, header), records = records[0], records[1:]
    header = [name.strip() for name in header]
    missing = [name for name in columns if name not in header]
    if missing:
        raise DataFormatError(f"csv_rows: {source!r} line {header_line} has the columns {header} but not "
                              f"{missing}; the reader expects a header line with the columns {list(columns)} "
                              f"(e.g. {expected}). Add or fix the header, or pass the right column names")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataFormatError(f"csv_rows: {source!r} line {header_line} repeats the columns {repeated}; "
                              f"column names must be unique")
    bad = [line for line, record in records if len(record) != len(header)]
    if bad:
        raise DataFormatError(f"csv_rows: {source!r}: {len(bad)} rows do not have {len(header)} fields like "
                              f"the header (first at lines {bad[:5]})")
    if not records:
        raise DataFormatError(f"csv_rows: {source!r} has a header but no rows")
    return [CsvRow(zip(header, (field.strip() for field in record)), source, line) for line, record in records]


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """The non-blank lines of a text file, stripped (a ``codes.txt`` or ``valid.txt``).
    An empty list is an error; so are repeated names."""
    names = [line.strip() for line in _read_text(path, "read_lines").splitlines() if line.strip()]
    if not names:
        raise DataFormatError(f"read_lines: {os.fspath(path)!r} has no names (one per line expected)")
    repeated = sorted({name for name in names if names.count(name) > 1}) if len(set(names)) < len(names) else []
    if repeated:
        raise DataFormatError(f"read_lines: {os.fspath(path)!r} lists {repeated[:5]} more than once")
    return names


# --------------------------------------------------------------------------- COCO instances
MAX_SIDE = 65535
"""The largest image side a COCO record may declare (a guard against absurd sizes in broken files);
the declared area may not pass ``coco_mask.MAX_PIXELS`` either."""


def _polygons_problem(segmentation):
    """Why ``segmentation`` is not a list of COCO polygons, or None when it is one."""
    if not segmentation:
        return "it is an empty list; give at least one polygon, or leave out 'segmentation'"
    for k, polygon in enumerate(segmentation):
        if not isinstance(polygon, list) or not all(map(is_finite_number, polygon)):
            return f"polygon {k} is not a list of finite numbers [x1, y1, x2, y2, ...]"
        if len(polygon) % 2 or len(polygon) < 6:
            return (f"polygon {k} has {len(polygon)} coordinates; a polygon needs an even number of them, "
                    f"at least 6 (3 points)")
    return None


class Coco:
    """A checked COCO instances file: ``images`` (records with id, file_name, height, width),
    ``categories`` (sorted by id) and ``annotations_of(image_id)``.

    Class indices: category k of the sorted categories gets label k + 1; label 0 is the background,
    so ``vocab`` is ["background", name of category 1, ...]. Crowd annotations (iscrowd 1) are
    kept in the file but not in the training targets.

    Masks are all or nothing, decided per annotation as pycocotools' ``annToRLE`` needs them: when
    no annotation has a 'segmentation' the file is boxes-only (``has_masks`` False, targets without
    instance masks); when some have one, every annotation must have one, and one without is an
    error naming it and its image (it would otherwise be a box with no mask, or turn off all masks).
    Every annotation is checked when the file is read: its image and category exist, its bbox has
    w, h >= 0 and lies inside the image (up to BOX_SLACK), its polygons have >= 3 points, its RLE
    has the image's size and runs summing to h * w.
    """

    def __init__(self, data: Mapping[str, Any], source: str | os.PathLike[str] = "<memory>") -> None:
        self.source = os.fspath(source)
        if not isinstance(data, dict):
            raise DataFormatError(self._where(f"the file must be a JSON object with the lists 'images', "
                                              f"'annotations' and 'categories', got a {type(data).__name__}"))
        missing = [key for key in ("images", "annotations", "categories") if not isinstance(data.get(key), list)]
        if missing:
            raise DataFormatError(self._where(f"{missing} are missing or not lists (keys found: "
                                              f"{sorted(map(str, data))[:8]}); a COCO instances file needs "
                                              f"the lists 'images', 'annotations' and 'categories'"))
        self.images = [self._check_image(i, record) for i, record in enumerate(data["images"])]
        self.categories = sorted((self._check_category(i, c) for i, c in enumerate(data["categories"])),
                                 key=lambda c: c["id"])
        self._unique("images", [record["id"] for record in self.images])
        self._unique("categories", [category["id"] for category in self.categories])
        if not self.images:
            raise DataFormatError(self._where("'images' is empty"))
        self.label_of = {category["id"]: k + 1 for k, category in enumerate(self.categories)}
        self.vocab = ["background"] + [category["name"] for category in self.categories]
        images = {record["id"]: record for record in self.images}
        annotations = [self._check_annotation(i, a, images) for i, a in enumerate(data["annotations"])]
        self.has_masks = self._masks_all_or_nothing(annotations, images)
        self._annotations = defaultdict(list)
        for annotation in annotations:
            self._annotations[annotation["image_id"]].append(annotation)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Coco:
        try:
            data = json.loads(_read_text(path, "Coco.read"))
        except (json.JSONDecodeError, RecursionError) as error:
            raise DataFormatError(f"Coco.read: {os.fspath(path)!r} is not valid JSON ({error})") from error
        return cls(data, path)

    def annotations_of(self, image_id):
        return self._annotations.get(image_id, [])

    def _where(self, message):
        return f"Coco: {self.source!r}: {message}"

    def _unique(self, what, ids):
        if len(set(ids)) < len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise DataFormatError(self._where(f"{what} repeat the ids {repeated[:5]}; ids must be unique"))

    def _check_image(self, i, record):
        if not (isinstance(record, dict) and is_integer(record.get("id")) and isinstance(record.get("file_name"), str)
                and all(is_integer(record.get(k)) and 0 < record[k] <= MAX_SIDE for k in ("height", "width"))):
            raise DataFormatError(self._where(f"images[{i}] = {str(record)[:80]} needs an integer 'id', a "
                                              f"'file_name' and integer 'height' and 'width' in 1..{MAX_SIDE}"))
        if record["height"] * record["width"] > MAX_PIXELS:
            raise DataFormatError(self._where(f"image {record['id']} ({record['file_name']!r}) declares "
                                              f"{record['height']}x{record['width']} = "
                                              f"{record['height'] * record['width']} pixels, more than "
                                              f"MAX_PIXELS = {MAX_PIXELS}; the size is corrupt"))
        return record

    def _check_category(self, i, category):
        if not (isinstance(category, dict) and is_integer(category.get("id"))
                and isinstance(category.get("name"), str)):
            raise DataFormatError(self._where(f"categories[{i}] = {str(category)[:80]} needs an integer 'id' "
                                              f"and a 'name'"))
        return category

    def _check_annotation(self, i, annotation, images):
        if not isinstance(annotation, dict):
            raise DataFormatError(self._where(f"annotations[{i}] is a {type(annotation).__name__}, not an object"))
        name = f"annotations[{i}] (id {annotation.get('id')})"
        def fail(problem: str) -> NoReturn:
            raise DataFormatError(self._where(f"{name}: {problem}"))
        for key in ("image_id", "category_id"):
            if not is_integer(annotation.get(key)):
                fail(f"{key!r} must be an integer, got {str(annotation.get(key))[:40]}")
        if annotation["image_id"] not in images:
            fail(f"it is for image_id {annotation['image_id']}, which is not among the {len(images)} images")
        name += f" of image {annotation['image_id']} ({images[annotation['image_id']]['file_name']!r})"
        if annotation["category_id"] not in self.label_of:
            fail(f"it has category_id {annotation['category_id']}, not one of the categories "
                 f"{sorted(self.label_of)[:20]}")
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(is_finite_number, bbox))):
            fail(f"'bbox' must be [x, y, w, h], four finite numbers, got {str(bbox)[:60]}")
        if bbox[2] < 0 or bbox[3] < 0:
            fail(f"'bbox' {bbox} has a negative width or height; COCO boxes are [x, y, w, h] with w, h >= 0")
        record = images[annotation["image_id"]]
        if not (min(bbox[0], bbox[1]) >= -BOX_SLACK and bbox[0] + bbox[2] <= record["width"] + BOX_SLACK
                and bbox[1] + bbox[3] <= record["height"] + BOX_SLACK):
            fail(f"'bbox' {bbox} [x, y, w, h] reaches outside the {record['height']}x{record['width']} image "
                 f"(by more than {BOX_SLACK} px); was it made for another image size?")
        if annotation.get("iscrowd", 0) not in (0, 1) or not is_integer(annotation.get("iscrowd", 0)):
            fail(f"'iscrowd' must be 0 or 1, got {str(annotation.get('iscrowd'))[:20]}")
        if "segmentation" in annotation:
            problem = self._segmentation_problem(annotation["segmentation"], images[annotation["image_id"]])
            if problem:
                fail(f"'segmentation' {str(annotation['segmentation'])[:50]}: {problem}")
        return annotation

    def _segmentation_problem(self, segmentation, record):
        """Why a segmentation is not polygons or an RLE of its image's size, or None."""
        if isinstance(segmentation, list):
            return _polygons_problem(segmentation)
        if not isinstance(segmentation, dict):
            return "it must be a list of polygons [x1, y1, x2, y2, ...] or an RLE {'size': [h, w], 'counts': ...}"
        try:
            size, _ = checked_rle(segmentation)
        except (DataFormatError, TypeError) as error:
            return str(error)
        if size != [record["height"], record["width"]]:
            return f"its RLE size {size} is not the image's [{record['height']}, {record['width']}]"
        return None

    def _masks_all_or_nothing(self, annotations, images):
        """True when every annotation has a segmentation, False when none has; mixed is an error."""
        without = [a for a in annotations if "segmentation" not in a]
        if len(without) in (0, len(annotations)):
            return not without
        first = without[0]
        raise DataFormatError(self._where(
            f"{len(without)} of {len(annotations)} annotations have no 'segmentation' (e.g. annotation id "
            f"{first.get('id')} of image {first['image_id']}, {images[first['image_id']]['file_name']!r}), "
            f"while the others have masks; give every annotation a segmentation, or remove them all "
            f"for a boxes-only data set"))

    def check_image_size(self, record, path):
        """The image file's real size (read from its header, without decoding) must be the record's
        declared height and width, so masks are never decoded at a size the image does not have."""
        height, width = image_size(path)
        if (height, width) != (record["height"], record["width"]):
            raise DataFormatError(self._where(f"image {record['id']} declares {record['height']}x{record['width']} "
                                              f"(height x width) but its file {os.fspath(path)!r} is "
                                              f"{height}x{width}; fix 'height' and 'width' in the JSON"))

    def targets(self, record):
        """The detection targets of one image record: boxes [x1, y1, x2, y2] (float32), labels
        (int64, 1..K) and, when the file has masks, instance masks (K, H, W) uint8."""
        annotations = [a for a in self.annotations_of(record["id"]) if not a.get("iscrowd", 0)]
        x, y, w, h = np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(-1, 4).T
        targets = {"boxes": np.stack([x, y, x + w, y + h], axis=1),
                   "labels": np.array([self.label_of[a["category_id"]] for a in annotations], dtype=np.int64)}
        if self.has_masks:
            masks = [self._mask(a, record) for a in annotations]
            targets["instance_masks"] = (np.stack(masks) if masks else
                                         np.zeros((0, record["height"], record["width"]), dtype=np.uint8))
        return targets

    def _mask(self, annotation, record):
        """The (H, W) uint8 mask of an annotation (its size and runs were checked on reading; a
        polygon far outside the image is refused here)."""
        height, width = record["height"], record["width"]
        segmentation = annotation["segmentation"]
        where = f"annotation {annotation.get('id')} of {record['file_name']!r}"
        if isinstance(segmentation, list):
            xy = np.concatenate([np.asarray(p, dtype=np.float64) for p in segmentation]).reshape(-1, 2)
            if np.any(np.abs(xy - [width / 2, height / 2]) > [1.5 * width, 1.5 * height]):
                raise DataFormatError(self._where(f"{where}: a polygon point lies more than an image size "
                                                  f"outside the {width}x{height} image"))
        try:
            return rle_to_mask(segmentation_to_rle(segmentation, height, width))
        except (ValueError, TypeError) as error:
            raise DataFormatError(self._where(f"{where}: cannot decode its segmentation ({error})")) from error
