"""Readers of the dataset file formats, each checking what it reads and naming the file in its errors:

    csv_rows(path, columns)   a CSV with a header (Planet's ``train_v2.csv``: image_name,tags)
    read_lines(path)          one name per line (CamVid's ``codes.txt`` and ``valid.txt``)
    Coco.read(path)           a COCO instances JSON (images, annotations, categories)

No pickle anywhere: CSV, text and JSON only.
"""
import csv
import json
import math
import numbers
import os
from collections import defaultdict

import numpy as np

from .coco_mask import decode, segmentation_to_rle


def _read_text(path, caller):
    """The whole text file, with a clear error for a missing file or bytes that are not UTF-8."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            return file.read()
    except FileNotFoundError:
        raise ValueError(f"{caller}: {os.fspath(path)!r} does not exist") from None
    except (UnicodeDecodeError, IsADirectoryError) as error:
        raise ValueError(f"{caller}: {os.fspath(path)!r} is not a UTF-8 text file ({error})") from error


def csv_rows(path, columns=()):
    """The rows of a CSV file with a header line, as dicts {column: text}.

    Every name in ``columns`` must be in the header; every row must have as many fields as the
    header. An empty file, or one with a header but no rows, is an error.
    """
    lines = _read_text(path, "csv_rows").splitlines()
    try:
        reader = csv.reader(lines)
        header = next(reader, None)
        records = [(reader.line_num, record) for record in reader if record]
    except csv.Error as error:
        raise ValueError(f"csv_rows: {os.fspath(path)!r} is not a valid CSV file ({error})") from error
    if not header:
        raise ValueError(f"csv_rows: {os.fspath(path)!r} is empty; expected a header line such as "
                         f"{','.join(columns) or 'image_name,tags'}")
    header = [name.strip() for name in header]
    missing = [name for name in columns if name not in header]
    if missing:
        raise ValueError(f"csv_rows: {os.fspath(path)!r} has columns {header} but not {missing}; "
                         f"check the file or pass the right column names")
    bad = [line for line, record in records if len(record) != len(header)]
    if bad:
        raise ValueError(f"csv_rows: {os.fspath(path)!r}: {len(bad)} rows do not have {len(header)} fields "
                         f"like the header (first at lines {bad[:5]})")
    if not records:
        raise ValueError(f"csv_rows: {os.fspath(path)!r} has a header but no rows")
    return [dict(zip(header, (field.strip() for field in record))) for _, record in records]


def read_lines(path):
    """The non-blank lines of a text file, stripped (a ``codes.txt`` or ``valid.txt``).
    An empty list is an error; so are repeated names."""
    names = [line.strip() for line in _read_text(path, "read_lines").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"read_lines: {os.fspath(path)!r} has no names (one per line expected)")
    repeated = sorted({name for name in names if names.count(name) > 1}) if len(set(names)) < len(names) else []
    if repeated:
        raise ValueError(f"read_lines: {os.fspath(path)!r} lists {repeated[:5]} more than once")
    return names


# --------------------------------------------------------------------------- COCO instances
def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    """A JSON number that fits a float (not a bool, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


MAX_SIDE = 65535
"""The largest image side a COCO record may declare (a guard against absurd sizes in broken files)."""


def _is_polygons(segmentation):
    return (isinstance(segmentation, list) and len(segmentation) > 0
            and all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(map(_is_number, p))
                    for p in segmentation))


def _is_rle(segmentation):
    return (isinstance(segmentation, dict) and isinstance(segmentation.get("size"), list)
            and len(segmentation["size"]) == 2 and all(map(_is_int, segmentation["size"]))
            and (isinstance(segmentation.get("counts"), str)
                 or (isinstance(segmentation.get("counts"), list) and all(map(_is_int, segmentation["counts"])))))


class Coco:
    """A checked COCO instances file: ``images`` (records with id, file_name, height, width),
    ``categories`` (sorted by id) and ``annotations_of(image_id)``.

    Class indices: category k of the sorted categories gets label k + 1; label 0 is the background,
    so ``vocab`` is ["background", name of category 1, ...]. Crowd annotations (iscrowd 1) are
    kept in the file but not in the training targets.
    """

    def __init__(self, data, source="<memory>"):
        self.source = os.fspath(source)
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in
                                                 ("images", "annotations", "categories")):
            raise ValueError(self._where("the file must be a JSON object with the lists 'images', "
                                         "'annotations' and 'categories'"))
        self.images = [self._check_image(i, record) for i, record in enumerate(data["images"])]
        self.categories = sorted((self._check_category(i, c) for i, c in enumerate(data["categories"])),
                                 key=lambda c: c["id"])
        self._unique("images", [record["id"] for record in self.images])
        self._unique("categories", [category["id"] for category in self.categories])
        if not self.images:
            raise ValueError(self._where("'images' is empty"))
        self.label_of = {category["id"]: k + 1 for k, category in enumerate(self.categories)}
        self.vocab = ["background"] + [category["name"] for category in self.categories]
        image_ids = {record["id"] for record in self.images}
        self._annotations = defaultdict(list)
        for i, annotation in enumerate(data["annotations"]):
            annotation = self._check_annotation(i, annotation, image_ids)
            self._annotations[annotation["image_id"]].append(annotation)
        self.has_masks = all(a.get("segmentation") is not None for a in data["annotations"])

    @classmethod
    def read(cls, path):
        try:
            data = json.loads(_read_text(path, "Coco.read"))
        except json.JSONDecodeError as error:
            raise ValueError(f"Coco.read: {os.fspath(path)!r} is not valid JSON ({error})") from error
        return cls(data, path)

    def annotations_of(self, image_id):
        return self._annotations.get(image_id, [])

    def _where(self, message):
        return f"Coco: {self.source!r}: {message}"

    def _unique(self, what, ids):
        if len(set(ids)) < len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(self._where(f"{what} repeat the ids {repeated[:5]}; ids must be unique"))

    def _check_image(self, i, record):
        if not (isinstance(record, dict) and _is_int(record.get("id")) and isinstance(record.get("file_name"), str)
                and all(_is_int(record.get(k)) and 0 < record[k] <= MAX_SIDE for k in ("height", "width"))):
            raise ValueError(self._where(f"images[{i}] = {str(record)[:80]} needs an integer 'id', a "
                                         f"'file_name' and integer 'height' and 'width' in 1..{MAX_SIDE}"))
        return record

    def _check_category(self, i, category):
        if not (isinstance(category, dict) and _is_int(category.get("id")) and isinstance(category.get("name"), str)):
            raise ValueError(self._where(f"categories[{i}] = {str(category)[:80]} needs an integer 'id' "
                                         f"and a 'name'"))
        return category

    def _check_annotation(self, i, annotation, image_ids):
        if not isinstance(annotation, dict):
            raise ValueError(self._where(f"annotations[{i}] is a {type(annotation).__name__}, not an object"))
        bbox, segmentation = annotation.get("bbox"), annotation.get("segmentation")
        if not (_is_int(annotation.get("image_id")) and _is_int(annotation.get("category_id"))
                and isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))
                and bbox[2] >= 0 and bbox[3] >= 0 and annotation.get("iscrowd", 0) in (0, 1)):
            raise ValueError(self._where(f"annotations[{i}] = {str(annotation)[:100]} needs integer "
                                         f"'image_id' and 'category_id', 'bbox' [x, y, w, h] with w, h >= 0, "
                                         f"and 'iscrowd' 0 or 1"))
        if annotation["image_id"] not in image_ids:
            raise ValueError(self._where(f"annotations[{i}] (id {annotation.get('id')}) is for image_id "
                                         f"{annotation['image_id']}, which is not among the {len(image_ids)} images"))
        if annotation["category_id"] not in self.label_of:
            raise ValueError(self._where(f"annotations[{i}] (id {annotation.get('id')}) has category_id "
                                         f"{annotation['category_id']}, not one of the categories "
                                         f"{sorted(self.label_of)}"))
        if segmentation is not None and not (_is_polygons(segmentation) or _is_rle(segmentation)):
            raise ValueError(self._where(f"annotations[{i}] (id {annotation.get('id')}): 'segmentation' must be "
                                         f"a list of polygons [x0, y0, x1, y1, ...] or an RLE "
                                         f"{{'size': [h, w], 'counts': ...}}, got {str(segmentation)[:60]}"))
        return annotation

    def targets(self, record):
        """The detection targets of one image record: boxes [x0, y0, x1, y1] (float32), labels
        (int64, 1..K) and, when every annotation has a segmentation, instance masks (K, H, W) uint8."""
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
        """The (H, W) uint8 mask of an annotation, after checking that it fits its image (so a broken
        file cannot ask for an absurd allocation)."""
        height, width = record["height"], record["width"]
        segmentation = annotation["segmentation"]
        where = f"annotation {annotation.get('id')} of {record['file_name']!r}"
        if isinstance(segmentation, dict) and segmentation["size"] != [height, width]:
            raise ValueError(self._where(f"{where}: its RLE size {segmentation['size']} is not the image's "
                                         f"[{height}, {width}]"))
        if isinstance(segmentation, list):
            xy = np.concatenate([np.asarray(p, dtype=np.float64) for p in segmentation]).reshape(-1, 2)
            if np.any(np.abs(xy - [width / 2, height / 2]) > [1.5 * width, 1.5 * height]):
                raise ValueError(self._where(f"{where}: a polygon point lies more than an image size "
                                             f"outside the {width}x{height} image"))
        try:
            return decode(segmentation_to_rle(segmentation, height, width))
        except (ValueError, TypeError) as error:
            raise ValueError(self._where(f"{where}: cannot decode its segmentation ({error})")) from error
