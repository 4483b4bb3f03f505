"""Fuzzed inputs to every data reader: RLE strings and count lists, CamVid mask PNGs, Planet CSVs and
structurally mutated COCO JSON. Each reader either returns a result that is right (checked against
an independent reading of the same input) or raises the library's DataFormatError; any other
exception, or a wrong result, fails. Examples are bounded by the "ci" hypothesis profile."""
import copy
import csv
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import tinygrad_cv.data as D
from tinygrad_cv.data import coco_mask

FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


# --------------------------------------------------------------------------- RLE
def reference_decode(h, w, counts):
    """A mask from run lengths, pixel by pixel in column-major order (written independently of rle_to_mask)."""
    flat, value = [], 0
    for count in counts:
        flat += [value] * count
        value = 1 - value
    return np.array(flat, dtype=np.uint8).reshape(w, h).T


RLE_CHARS = st.text(alphabet=st.characters(min_codepoint=40, max_codepoint=120) | st.sampled_from("é\x00 "),
                    max_size=12)
SIZES = st.lists(st.integers(0, 6), min_size=2, max_size=2) | st.sampled_from([[], [3], [2.0, 2], [True, 1],
                                                                               [-1, 4], "ab", None, [10 ** 6] * 2])


@given(counts=RLE_CHARS, size=SIZES)
def test_fuzzed_compressed_rle_decodes_right_or_raises_data_format_error(counts, size):
    try:
        mask = coco_mask.rle_to_mask({"size": size, "counts": counts})
    except D.DataFormatError:
        return
    h, w = size
    runs = coco_mask.string_to_counts(counts)
    np.testing.assert_array_equal(mask, reference_decode(h, w, runs.tolist()))
    assert runs.min(initial=0) >= 0 and coco_mask.rle_to_mask(coco_mask.encode(mask)).tolist() == mask.tolist()


COUNT = st.integers(-3, 12) | st.sampled_from([1.5, 2.0, True, "3", None, [2], 2 ** 63])


@given(counts=st.lists(COUNT, max_size=8) | st.sampled_from(["", None, 7, {"a": 1}]), size=SIZES)
def test_fuzzed_uncompressed_rle_decodes_right_or_raises_data_format_error(counts, size):
    try:
        mask = coco_mask.rle_to_mask({"size": size, "counts": counts})
    except D.DataFormatError:
        return
    if isinstance(counts, str):                              # "" is an (empty) compressed string
        counts = []
    assert all(type(c) is int and c >= 0 for c in counts)    # floats, bools, negatives never pass
    np.testing.assert_array_equal(mask, reference_decode(*size, counts))


@given(mask=st.integers(1, 6).flatmap(lambda h: st.integers(1, 6).flatmap(
    lambda w: st.lists(st.integers(0, 1), min_size=h * w, max_size=h * w).map(
        lambda v: np.array(v, np.uint8).reshape(h, w)))))
def test_rle_round_trips_through_compressed_and_uncompressed_counts(mask):
    rle = coco_mask.encode(mask)
    np.testing.assert_array_equal(coco_mask.rle_to_mask(rle), mask)
    runs = coco_mask.rle_counts(rle).tolist()
    np.testing.assert_array_equal(coco_mask.rle_to_mask({"size": rle["size"], "counts": runs}), mask)


# --------------------------------------------------------------------------- CamVid masks
CODES = ["Sky", "Road", "Car"]


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    root = tmp_path_factory.mktemp("camvid")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    D.write_image(root / "images" / "a.png", np.zeros((5, 7, 3), np.uint8))
    D.write_mask(root / "labels" / "a_P.png", np.zeros((5, 7), np.uint8))
    label = D.MaskLabel(lambda image: root / "labels" / f"{image.stem}_P.png", CODES)
    return root, D.DataRecipe([root / "images" / "a.png"], label=label, split=lambda paths: ([0], [0]))


@FIXTURES
@given(mode=st.sampled_from(["P", "L", "1", "I;16", "RGB", "RGBA", "LA"]),
       size=st.sampled_from([(5, 7), (7, 5), (5, 6), (1, 1)]), top=st.integers(0, 6), seed=st.integers(0, 3),
       truncate=st.booleans())
def test_fuzzed_mask_pngs_load_right_or_raise_data_format_error(camvid, mode, size, top, seed, truncate):
    root, recipe = camvid
    values = np.random.default_rng(seed).integers(0, top + 1, size)
    image = Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.uint8))
    image = image.convert(mode) if mode not in ("L", "I;16") else image
    path = root / "labels" / "a_P.png"
    image.save(path, format="PNG")
    if truncate:
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    try:
        sample = recipe.load(0)
    except D.DataFormatError:
        return
    assert mode in ("P", "L", "1", "I;16") and size == (5, 7)
    np.testing.assert_array_equal(sample["mask"], np.asarray(image).astype(np.int64))    # the pixels written
    assert sample["mask"].max() < len(CODES)


# --------------------------------------------------------------------------- Planet CSV
NAMES = [f"t{i}" for i in range(4)]
TAG = st.sampled_from(["clear", "haze", "primary", "water", ""])
SEP = st.sampled_from([" "] * 6 + ["\t", "  ", ",", '"'])
ROW = st.tuples(st.sampled_from(NAMES + ["gone"]), st.lists(st.tuples(TAG, SEP), min_size=1, max_size=3),
                st.sampled_from([""] * 6 + ['"', ",extra"]))
HEADER = st.sampled_from(["image_name,tags"] * 6 + ["name,tags", "image_name", ""])


@pytest.fixture(scope="module")
def planet(tmp_path_factory):
    root = tmp_path_factory.mktemp("planet")
    (root / "train-jpg").mkdir()
    for name in NAMES:
        D.write_image(root / "train-jpg" / f"{name}.jpg", np.zeros((4, 4, 3), np.uint8))
    return root


@FIXTURES
@given(header=HEADER, rows=st.lists(ROW, min_size=1, max_size=4), newline=st.sampled_from(["\n", "\r\n"]))
def test_fuzzed_planet_csv_reads_right_or_raises_data_format_error(planet, header, rows, newline):
    lines = [header] + [name + "," + "".join(tag + sep for tag, sep in tags).rstrip(" ") + tail
                        for name, tags, tail in rows]
    text = newline.join(lines) + newline
    (planet / "train_v2.csv").write_text(text, newline="")
    try:
        items = D.csv_rows(planet / "train_v2.csv", ("image_name", "tags"))
        recipe = D.DataRecipe(items, image=lambda row: planet / "train-jpg" / f"{row['image_name']}.jpg",
                              label=D.TagLabels(), split=lambda paths: ([0], [0]))
    except D.DataFormatError as error:
        assert "train_v2.csv" in str(error) or "train-jpg" in str(error)
        return
    # it loaded: every row is an existing image, listed once, its tags separated by single spaces
    records = [record for record in csv.reader(text.splitlines()) if record][1:]
    expected = {name: tags.strip().split(" ") for name, tags in records}
    assert len(expected) == len(records) == len(recipe.items) and "gone" not in expected
    for index, item in enumerate(recipe.items):
        target = recipe.label(item, recipe.paths[index])["target"]
        assert np.array(recipe.vocab)[target == 1].tolist() == sorted(set(expected[item["image_name"]]))


# --------------------------------------------------------------------------- COCO JSON
def coco_document():
    square = np.zeros((6, 8), np.uint8)
    square[1:4, 2:6] = 1
    return {"images": [{"id": 1, "file_name": "a.png", "height": 6, "width": 8},
                       {"id": 2, "file_name": "b.png", "height": 6, "width": 8}],
            "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "circle"}],
            "annotations": [{"id": 10, "image_id": 1, "category_id": 1, "bbox": [2, 1, 4, 3], "area": 12,
                             "segmentation": coco_mask.encode(square), "iscrowd": 0},
                            {"id": 11, "image_id": 2, "category_id": 2, "bbox": [0, 0, 3, 3], "area": 9,
                             "segmentation": [[0, 0, 3, 0, 3, 3, 0, 3]], "iscrowd": 0},
                            {"id": 12, "image_id": 2, "category_id": 1, "bbox": [4, 2, 2, 2], "area": 4,
                             "segmentation": {"size": [6, 8], "counts": [28, 2, 4, 2, 12]}, "iscrowd": 1}]}


def nodes(document, path=()):
    """Every (path, value) inside a JSON document."""
    yield path, document
    children = document.items() if isinstance(document, dict) else enumerate(document) \
        if isinstance(document, list) else ()
    for key, value in children:
        yield from nodes(value, path + (key,))


LEAF = st.none() | st.booleans() | st.integers(-3, 10 ** 6) | st.floats(allow_nan=True) | st.text(max_size=4)
VALUE = st.recursive(LEAF, lambda children: st.lists(children, max_size=3) | st.dictionaries(
    st.sampled_from(["id", "size", "counts", "height", "bbox", "x"]), children, max_size=3), max_leaves=8)
PATHS = [path for path, _ in nodes(coco_document())]


@st.composite
def mutated_coco(draw):
    """The valid document after 1 to 3 structural mutations: a node deleted, replaced by arbitrary JSON,
    duplicated inside its list, or swapped for another node of the document."""
    document = coco_document()
    for _ in range(draw(st.integers(1, 3))):
        here = [path for path, _ in nodes(document) if path]
        path = draw(st.sampled_from(here))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "replace", "duplicate", "swap"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(VALUE)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        elif action == "swap":
            parent[path[-1]] = copy.deepcopy(dict(nodes(coco_document()))[draw(st.sampled_from(PATHS))])
    return document


@given(document=mutated_coco())
def test_fuzzed_coco_json_reads_right_or_raises_data_format_error(document):
    try:
        coco = D.Coco(json.loads(json.dumps(document)), "instances.json")
        targets = [coco.targets(record) for record in coco.images]
    except D.DataFormatError as error:
        assert "instances.json" in str(error)
        return
    annotations = document["annotations"]
    for record, target in zip(coco.images, targets):
        mine = [a for a in annotations if a["image_id"] == record["id"] and not a.get("iscrowd", 0)]
        assert len(target["boxes"]) == len(target["labels"]) == len(mine)
        if coco.has_masks:
            assert target["instance_masks"].shape == (len(mine), record["height"], record["width"])
        else:
            assert all("segmentation" not in a for a in annotations)
