"""Image/mask I/O, CSV, text lists and COCO JSON: round trips, clear errors, and fuzzed broken files."""
import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import tinygrad_cv.data as D
from tinygrad_cv.data import image_io
from tinygrad_cv.data.coco_mask import encode

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8)


def save(path, image, **options):
    image.save(path, **options)
    return path


# --------------------------------------------------------------------------- images
def test_read_image_modes(tmp_path):
    np.testing.assert_array_equal(D.read_image(save(tmp_path / "rgb.png", Image.fromarray(PIXELS))), PIXELS)
    rgba = np.concatenate([PIXELS, np.full((6, 7, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(D.read_image(save(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA"))), PIXELS)
    grey = PIXELS[..., 0]
    np.testing.assert_array_equal(D.read_image(save(tmp_path / "l.png", Image.fromarray(grey, "L"))),
                                  np.repeat(grey[..., None], 3, axis=2))
    palette = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    palette.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * 759)
    np.testing.assert_array_equal(D.read_image(save(tmp_path / "p.png", palette))[1],
                                  [[70, 80, 90], [40, 50, 60]])
    jpeg = D.read_image(save(tmp_path / "x.jpg", Image.fromarray(PIXELS), quality=95))
    assert jpeg.shape == (6, 7, 3) and jpeg.dtype == np.uint8


def test_masks_read_as_class_indices(tmp_path):
    mask = RNG.integers(0, 32, (9, 8)).astype(np.uint8)
    path = D.write_mask(tmp_path / "m_P.png", mask, n_classes=32)
    with Image.open(path) as stored:
        assert stored.mode == "P"
    np.testing.assert_array_equal(D.read_mask(path), mask)                 # indices, not palette colours
    np.testing.assert_array_equal(D.read_mask(save(tmp_path / "l.png", Image.fromarray(mask, "L"))), mask)
    with pytest.raises(D.ImageReadError, match=r"rgb\.png.*mode 'RGB'"):
        D.read_mask(save(tmp_path / "rgb.png", Image.fromarray(PIXELS)))


def test_write_image_round_trip_and_atomicity(tmp_path, monkeypatch):
    path = D.write_image(tmp_path / "a.png", PIXELS)
    np.testing.assert_array_equal(D.read_image(path), PIXELS)
    before = open(path, "rb").read()

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt("interrupted mid-write")
    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        D.write_image(path, PIXELS[::-1].copy())
    assert open(path, "rb").read() == before                                # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["a.png"]                        # and no temporary is left
    with pytest.raises(TypeError, match="uint8"):
        D.write_image(tmp_path / "b.png", PIXELS.astype(np.float32))
    with pytest.raises(ValueError, match="extension"):
        D.write_image(tmp_path / "b.xyz", PIXELS)


def test_broken_images_raise_an_error_naming_the_file(tmp_path):
    good = io.BytesIO()
    Image.fromarray(np.tile(PIXELS, (8, 8, 1))).save(good, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(D.ImageReadError, match="truncated.jpg"):
        D.read_image(truncated)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(D.ImageReadError, match="text.png"):
        D.read_image(tmp_path / "text.png")
    with pytest.raises(D.ImageReadError, match="does not exist"):
        D.read_image(tmp_path / "missing.png")


def encoded(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


SAMPLE_FILES = [encoded(Image.fromarray(PIXELS), "PNG"), encoded(Image.fromarray(PIXELS), "JPEG"),
                encoded(Image.fromarray(PIXELS[..., 0], "L"), "PNG"),
                encoded(Image.fromarray(PIXELS[..., 0] % 5, "P"), "PNG")]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, len(SAMPLE_FILES) - 1), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4))
def test_fuzzed_image_files_either_read_or_raise_image_read_error(tmp_path, which, cut, flips):
    data = bytearray(SAMPLE_FILES[which][: int(cut * len(SAMPLE_FILES[which])) + 1])
    for position, xor in flips:
        data[int(position * (len(data) - 1))] ^= xor
    path = tmp_path / "fuzzed.png"
    path.write_bytes(bytes(data))
    for reader, ndim in ((D.read_image, 3), (D.read_mask, 2)):
        try:
            array = reader(path)
        except D.ImageReadError as error:
            assert "fuzzed.png" in str(error)
        else:
            assert array.ndim == ndim and array.dtype.kind in "ui"


# --------------------------------------------------------------------------- CSV and text lists
def test_csv_rows(tmp_path):
    path = tmp_path / "train_v2.csv"
    path.write_text("image_name,tags\ntrain_0,haze primary\n\ntrain_1, clear water \n")
    assert D.csv_rows(path, ("image_name", "tags")) == [{"image_name": "train_0", "tags": "haze primary"},
                                                         {"image_name": "train_1", "tags": "clear water"}]
    path.write_text("name,tags\nx,clear\n")
    with pytest.raises(ValueError, match=r"line 1 has the columns \['name', 'tags'\] but not \['image_name'\]"):
        D.csv_rows(path, ("image_name", "tags"))
    path.write_text("image_name,tags\nx,clear,extra\ny,haze\n")
    with pytest.raises(ValueError, match=r"1 rows do not have 2 fields.*lines \[2\]"):
        D.csv_rows(path)
    path.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        D.csv_rows(path)
    path.write_text("image_name,tags\n")
    with pytest.raises(ValueError, match="no rows"):
        D.csv_rows(path)
    with pytest.raises(ValueError, match="does not exist"):
        D.csv_rows(tmp_path / "nope.csv")


def test_csv_rows_remember_their_physical_lines(tmp_path):
    path = tmp_path / "train_v2.csv"
    path.write_text("image_name,tags\n\ntrain_0,clear\ntrain_1,\"haze primary\"\n")
    rows = D.csv_rows(path, ("image_name", "tags"))
    assert [row.line for row in rows] == [3, 4] and rows[1]["tags"] == "haze primary"
    assert isinstance(rows[0], D.CsvRow) and rows[0].source == os.fspath(path)


@pytest.mark.parametrize("body, line", [
    # a quote left open in the middle swallows the rows after it (the outside check's 'primarytrain_22,clear')
    ("train_0,clear\ntrain_1,\"clear primary\ntrain_22,clear\ntrain_3,haze\n", 3),
    # the same quote early, in the first row
    ("train_0,\"clear\ntrain_1,haze\n", 2),
    # a quote that is never closed on the last line
    ("train_0,clear\ntrain_1,haze\ntrain_2,\"water\n", 4),
])
def test_csv_unterminated_quote_names_the_file_and_line(tmp_path, body, line):
    path = tmp_path / "train_v2.csv"
    path.write_text("image_name,tags\n" + body)
    with pytest.raises(D.DataFormatError, match=rf"train_v2.csv' line {line}: .*quote"):
        D.csv_rows(path, ("image_name", "tags"))


def test_csv_stray_quotes_and_nul_bytes_name_the_line(tmp_path):
    path = tmp_path / "train_v2.csv"
    path.write_text('image_name,tags\ntrain_0,clear\ntrain_1,"haze"primary\n')
    with pytest.raises(D.DataFormatError, match=r"train_v2.csv' line 3: ',' expected after '\"'"):
        D.csv_rows(path, ("image_name", "tags"))
    path.write_text("image_name,tags\ntrain_0,clear\x00\n")
    with pytest.raises(D.DataFormatError, match=r"train_v2.csv' line 2: line contains NUL"):
        D.csv_rows(path, ("image_name", "tags"))


def test_csv_header_errors_name_the_expected_columns(tmp_path):
    path = tmp_path / "train_v2.csv"
    path.write_text("train_0,clear\ntrain_1,haze\n")                      # no header line
    with pytest.raises(D.DataFormatError, match=r"expects a header line with the columns \['image_name', 'tags'\]"):
        D.csv_rows(path, ("image_name", "tags"))
    path.write_text("image_name,tags,tags\nx,a,b\n")
    with pytest.raises(D.DataFormatError, match=r"line 1 repeats the columns \['tags'\]"):
        D.csv_rows(path, ("image_name", "tags"))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzzed_csv_and_lists_raise_only_data_format_errors(tmp_path, data):
    path = tmp_path / "fuzzed.csv"
    path.write_bytes(data)
    for read in (lambda p: D.csv_rows(p, ("image_name", "tags")), D.read_lines):
        try:
            read(path)
        except D.DataFormatError as error:
            assert "fuzzed.csv" in str(error)


def test_read_lines(tmp_path):
    path = tmp_path / "codes.txt"
    path.write_text("Sky\n\n Road \nVoid\n")
    assert D.read_lines(path) == ["Sky", "Road", "Void"]
    path.write_text("Sky\nRoad\nSky\n")
    with pytest.raises(ValueError, match=r"\['Sky'\] more than once"):
        D.read_lines(path)
    path.write_text("\n \n")
    with pytest.raises(ValueError, match="no names"):
        D.read_lines(path)


# --------------------------------------------------------------------------- COCO
def coco_document():
    mask = np.zeros((8, 10), np.uint8)
    mask[2:5, 3:7] = 1
    return {"images": [{"id": 7, "file_name": "a.png", "height": 8, "width": 10},
                       {"id": 9, "file_name": "b.png", "height": 8, "width": 10}],
            "categories": [{"id": 3, "name": "triangle"}, {"id": 1, "name": "square"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [3, 2, 4, 3], "area": 12,
                             "segmentation": encode(mask), "iscrowd": 0},
                            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4,
                             "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]], "iscrowd": 0},
                            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [5, 5, 2, 2], "area": 4,
                             "segmentation": [[5, 5, 7, 5, 7, 7, 5, 7]], "iscrowd": 1}]}


def test_coco_targets():
    coco = D.Coco(coco_document())
    assert coco.vocab == ["background", "square", "triangle"]
    targets = coco.targets(coco.images[0])
    np.testing.assert_array_equal(targets["boxes"], [[3, 2, 7, 5], [0, 0, 2, 2]])
    assert targets["labels"].tolist() == [2, 1]                            # crowd annotation left out
    assert targets["instance_masks"].shape == (2, 8, 10) and targets["instance_masks"][0].sum() == 12
    assert targets["instance_masks"][1].sum() == 4
    empty = coco.targets(coco.images[1])
    assert empty["boxes"].shape == (0, 4) and empty["instance_masks"].shape == (0, 8, 10)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][0].update(image_id=99), r"image_id 99, which is not among the 2 images"),
    (lambda d: d["annotations"][0].update(category_id=5), r"category_id 5, not one of the categories \[1, 3\]"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), "bbox"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [8], "counts": "x"}), "segmentation"),
    (lambda d: d["images"].append({"id": 7, "file_name": "c.png", "height": 8, "width": 10}), r"ids \[7\]"),
    (lambda d: d.pop("categories"), "'categories'"),
    (lambda d: d["images"][0].update(height=0), "height"),
])
def test_coco_errors(change, message):
    document = coco_document()
    change(document)
    with pytest.raises(ValueError, match=message):
        D.Coco(document, "instances.json")


def without_segmentation(d, index):
    del d["annotations"][index]["segmentation"]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("annotations"), r"\['annotations'\] are missing"),
    (lambda d: d.pop("images") and d.pop("categories"), r"\['images', 'categories'\] are missing"),
    (lambda d: d["annotations"][1].update(bbox=[0, 0, -2, 2]), r"id 2\) of image 7 \('a.png'\).*negative width"),
    (lambda d: d["annotations"][1].update(segmentation=[[0, 0, 2, 0]]),
     r"id 2\).*polygon 0 has 4 coordinates.*at least 6 \(3 points\)"),
    (lambda d: d["annotations"][1].update(segmentation=[[0, 0, 2, 0, 2, 2, 0]]),
     r"id 2\).*polygon 0 has 7 coordinates"),
    (lambda d: d["annotations"][1].update(segmentation=[]), r"id 2\).*empty list"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [8, 10], "counts": [10, 5, 4]}),
     r"id 1\).*runs add up to 19 pixels but size \[8, 10\] has 80"),
    (lambda d: d["annotations"][0]["segmentation"].update(counts="0Q1"), r"id 1\).*runs add up to"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [4, 4], "counts": [16]}),
     r"id 1\).*RLE size \[4, 4\] is not the image's \[8, 10\]"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [8, 10], "counts": [80.0]}), r"id 1\).*integer run"),
    (lambda d: d["images"][0].update(height=60000, width=60000), r"image 7 \('a.png'\) declares 60000x60000"),
    (lambda d: d["annotations"][1].update(bbox=[0, 0, 1e30, 2]), r"id 2\).*reaches outside the 8x10 image"),
    (lambda d: d["annotations"][1].update(bbox=[5, 5, 9, 2]), r"id 2\).*\[5, 5, 9, 2\] \[x, y, w, h\] reaches outside"),
])
def test_coco_errors_name_the_annotation(change, message):
    document = coco_document()
    change(document)
    with pytest.raises(D.DataFormatError, match=message):
        D.Coco(document, "instances.json")


def test_coco_masks_are_all_or_nothing():
    document = coco_document()
    without_segmentation(document, 1)
    with pytest.raises(D.DataFormatError, match=r"1 of 3 annotations have no 'segmentation' \(e.g. annotation id 2 "
                                                r"of image 7, 'a.png'\)"):
        D.Coco(document, "instances.json")
    for index in (0, 2):                                          # none has one: a boxes-only data set
        without_segmentation(document, index)
    coco = D.Coco(document)
    targets = coco.targets(coco.images[0])
    assert not coco.has_masks and "instance_masks" not in targets and targets["boxes"].shape == (2, 4)


def test_coco_declared_size_is_checked_against_the_image_header(tmp_path, monkeypatch):
    from PIL import ImageFile
    D.write_image(tmp_path / "a.png", np.zeros((8, 10, 3), np.uint8))
    document = coco_document()
    document["images"][0].update(height=4000, width=5000)
    document["annotations"] = document["annotations"][1:]         # polygons only: they fit any size
    label = D.CocoLabel(D.Coco(document, "instances.json"))
    record = label.coco.images[0]
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(D.DataFormatError, match=r"image 7 declares 4000x5000 .*a.png' is 8x10"):
        label(record, tmp_path / "a.png")
    assert decoded == []                                          # the header alone was read


def test_coco_reads_files_and_checks_mask_sizes(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco_document()))
    coco = D.Coco.read(path)
    assert len(coco.images) == 2
    document = coco_document()
    document["annotations"][0]["segmentation"] = encode(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"RLE size \[4, 4\] is not the image's \[8, 10\]"):
        D.Coco(document).targets(document["images"][0])
    path.write_text("{not json")
    with pytest.raises(ValueError, match="instances.json.*not valid JSON"):
        D.Coco.read(path)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats() | st.text(max_size=5),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children,
                                                                                       max_size=5), max_leaves=20)


def mutated_documents():
    """A valid document with one field somewhere replaced by arbitrary JSON."""
    paths = [("images", 0, "id"), ("images", 0, "height"), ("annotations", 0, "bbox"),
             ("annotations", 0, "segmentation"), ("annotations", 1, "segmentation"), ("annotations", 0, "image_id"),
             ("categories", 0, "id"), ("annotations", 0), ("images",), ("annotations", 1, "iscrowd")]
    return st.tuples(st.sampled_from(paths), JSON)


@given(mutation=mutated_documents())
def test_fuzzed_coco_documents_raise_only_data_format_errors(mutation):
    path, value = mutation
    document = coco_document()
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        coco = D.Coco(document)
        for record in coco.images:
            coco.targets(record)
    except D.DataFormatError:
        pass


def test_class_colors_are_distinct():
    colors = image_io.class_colors(32)
    assert colors.shape == (32, 3) and colors.dtype == np.uint8
    assert len({tuple(c) for c in colors}) == 32
