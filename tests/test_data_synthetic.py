"""Synthetic datasets: real formats that the readers load back, tag and class statistics,
determinism, atomic and resumable writes, the command line."""
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import tinygrad_cv.data as D
from tinygrad_cv.data import synthetic
from tinygrad_cv.data.coco_mask import rle_to_mask, to_bbox
from tinygrad_cv.data.synthetic import camvid, planet, shapes

WEATHER = {"clear", "partly_cloudy", "cloudy", "haze"}


# --------------------------------------------------------------------------- planet
def test_planet_tiles_have_one_weather_tag_and_real_set_frequencies():
    tags = [planet.draw_tile(np.random.default_rng([11, i]), 48)[1] for i in range(200)]
    assert all(len(WEATHER & set(t)) == 1 for t in tags)
    assert all(t == ["cloudy"] for t in tags if "cloudy" in t)                # overcast: nothing else visible
    counts = Counter(tag for t in tags for tag in t)
    assert counts["primary"] > 150 and counts["clear"] > 110                  # the common ones
    assert counts["primary"] > counts["agriculture"] > counts["habitation"] > counts["conventional_mine"]
    assert set(counts) <= set(synthetic.PLANET_TAGS) and len(synthetic.PLANET_TAGS) == 17


def test_planet_tags_are_drawn_where_they_are_claimed(monkeypatch):
    """Each land tag changes the pixels: the same tile drawn with and without it differs."""
    for tag in planet.PAINTERS:
        images = []
        for land in (["primary"], ["primary", tag]):
            monkeypatch.setattr(planet, "sample_tags", lambda rng, land=land: ("clear", list(land)))
            image, tags = planet.draw_tile(np.random.default_rng(3), 64)
            images.append(image.astype(int))
            assert set(tags) == {"clear", *land}
        assert np.mean(np.abs(images[1] - images[0]).max(axis=2) > 30) > 0.002, tag


def test_make_planet_writes_the_kaggle_layout_and_is_deterministic(tmp_path):
    first = synthetic.make_planet(tmp_path / "a", n=12, size=40, seed=5)
    second = synthetic.make_planet(tmp_path / "b", n=12, size=40, seed=5)
    assert (first / "train_v2.csv").read_text() == (second / "train_v2.csv").read_text()
    for i in (0, 11):
        np.testing.assert_array_equal(D.read_image(first / "train-jpg" / f"train_{i}.jpg"),
                                      D.read_image(second / "train-jpg" / f"train_{i}.jpg"))
    rows = D.csv_rows(first / "train_v2.csv", ("image_name", "tags"))
    assert [r["image_name"] for r in rows] == [f"train_{i}" for i in range(12)]
    recipe = D.planet_recipe(first, valid_pct=0.25)
    x, y = recipe.dataloaders(batch_size=3, size=32).one_batch()
    assert x.shape == (3, 3, 32, 32) and y.shape == (3, len(recipe.vocab))
    assert D.read_image(first / "train-jpg" / "train_3.jpg").shape == (40, 40, 3)


def test_an_interrupted_run_leaves_no_partial_files_and_a_rerun_completes(tmp_path, monkeypatch):
    calls = []
    real_write = planet.write_image

    def failing_write(path, image, **options):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt("stopped")
        return real_write(path, image, **options)
    monkeypatch.setattr(planet, "write_image", failing_write)
    with pytest.raises(KeyboardInterrupt):
        synthetic.make_planet(tmp_path, n=6, size=32, seed=1)
    assert not (tmp_path / "synthetic.json").exists() and not (tmp_path / "train_v2.csv").exists()
    assert sorted(os.listdir(tmp_path / "train-jpg")) == ["train_0.jpg", "train_1.jpg", "train_2.jpg"]
    monkeypatch.setattr(planet, "write_image", real_write)
    synthetic.make_planet(tmp_path, n=6, size=32, seed=1)
    assert len(D.csv_rows(tmp_path / "train_v2.csv")) == 6
    stamp = os.stat(tmp_path / "train_v2.csv").st_mtime_ns
    synthetic.make_planet(tmp_path, n=6, size=32, seed=1)                    # already there: nothing rewritten
    assert os.stat(tmp_path / "train_v2.csv").st_mtime_ns == stamp
    synthetic.make_planet(tmp_path, n=4, size=32, seed=1)                    # a smaller set replaces it
    assert sorted(os.listdir(tmp_path / "train-jpg")) == [f"train_{i}.jpg" for i in range(4)]
    assert not any(name.endswith(".tmp") for _, _, files in os.walk(tmp_path) for name in files)


# --------------------------------------------------------------------------- camvid
def test_camvid_layout_codes_and_classes(tmp_path):
    out = synthetic.make_camvid(tmp_path, n=10, size=64, seed=2)
    codes = D.read_lines(out / "codes.txt")
    assert len(codes) == 32 and "Void" in codes and codes == list(synthetic.CAMVID_CODES)
    valid = D.read_lines(out / "valid.txt")
    assert valid == ["synth_00008.png", "synth_00009.png"]
    recipe = D.camvid_recipe(out)
    train, valid_ds = recipe.datasets()
    assert len(train) == 8 and len(valid_ds) == 2
    sample = train[0]
    assert sample["image"].shape == (48, 64, 3) and sample["mask"].shape == (48, 64)
    present = set(np.unique(np.concatenate([train[i]["mask"].ravel() for i in range(8)])).tolist())
    assert present <= {codes.index(name) for name in camvid.USED_CLASSES}
    assert {codes.index(n) for n in ("Sky", "Building", "Road", "Sidewalk")} <= present


def test_camvid_class_shares_are_street_like():
    labels = np.stack([camvid.draw_scene(np.random.default_rng([4, i]), 64)[1] for i in range(30)])
    share = np.bincount(labels.ravel(), minlength=32) / labels.size
    assert share[camvid.C["Road"]] > 0.1 and share[camvid.C["Building"]] > 0.1 and share[camvid.C["Sky"]] > 0.03
    assert 0.001 < share[camvid.C["Void"]] < 0.08
    assert np.count_nonzero(share) <= len(camvid.USED_CLASSES)
    assert all((labels == camvid.C[name]).any() for name in camvid.USED_CLASSES)   # every used class shows up


# --------------------------------------------------------------------------- shapes
def test_shapes_coco_file_loads_and_masks_resolve_occlusion(tmp_path):
    out = synthetic.make_shapes(tmp_path, n=12, size=64, seed=3)
    document = json.loads((out / "annotations" / "instances.json").read_text())
    assert [c["name"] for c in document["categories"]] == ["square", "circle", "triangle"]
    coco = D.Coco.read(out / "annotations" / "instances.json")
    per_image = Counter(a["image_id"] for a in document["annotations"])
    assert all(1 <= per_image[record["id"]] <= 4 for record in coco.images)
    for annotation in document["annotations"]:
        mask = rle_to_mask(annotation["segmentation"])
        assert annotation["iscrowd"] == 0 and annotation["category_id"] in (1, 2, 3)
        assert annotation["area"] == mask.sum() > 0
        assert annotation["bbox"] == to_bbox(annotation["segmentation"]).tolist()
    for record in coco.images:
        masks = coco.targets(record)["instance_masks"]
        assert masks.sum(axis=0).max() == 1                              # each pixel belongs to one instance
    recipe = D.coco_recipe(out / "annotations" / "instances.json", out / "images", valid_pct=0.25)
    dls = recipe.dataloaders(batch_size=2, size=48, train_tfms=D.aug_transforms(48, pad_mode="zeros"))
    x, y = dls.one_batch()
    assert x.shape == (2, 3, 48, 48) and recipe.vocab == ["background", "square", "circle", "triangle"]
    assert all(t["instance_masks"].shape[1:] == (48, 48) for t in y)


def test_shapes_keep_two_thirds_of_each_shape_visible():
    overlapped = 0
    for i in range(25):
        image, instances, owner = shapes.draw_shapes(np.random.default_rng([8, i]), 64)
        assert image.shape == (64, 64, 3)
        assert len(instances) in range(1, 5)  # draw_shapes places one to four shapes
        for k, instance in enumerate(instances, start=1):
            visible = int((owner == k).sum())
            assert instance["category"] in (1, 2, 3) and instance["area"] >= visible
            assert visible >= (2 / 3) * instance["area"] - 1e-9
            overlapped += visible < instance["area"]
    assert overlapped > 0                                                 # occlusions do happen


# --------------------------------------------------------------------------- command line
def test_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinygrad_cv.data.synthetic", "shapes", "--out", str(tmp_path),
                             "--n", "3", "--size", "32", "--seed", "1"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "shapes: 3 images of 32 px" in result.stdout
    assert sorted(os.listdir(tmp_path / "images")) == [f"shapes_{i:05d}.png" for i in range(3)]
    bad = subprocess.run([sys.executable, "-m", "tinygrad_cv.data.synthetic", "planet", "--out", str(tmp_path),
                          "--n", "0"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--n >= 1" in bad.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")      # raised inside pycocotools under NumPy 2
def test_pycocotools_loads_the_shapes_file(tmp_path):
    """An extra, independent check when pycocotools is installed: its COCO loader reads our file and
    its own RLE decoder gives the masks our reader gives."""
    coco_api = pytest.importorskip("pycocotools.coco")
    out = synthetic.make_shapes(tmp_path, n=4, size=48, seed=6)
    theirs = coco_api.COCO(str(out / "annotations" / "instances.json"))
    ours = D.Coco.read(out / "annotations" / "instances.json")
    assert sorted(theirs.getImgIds()) == [record["id"] for record in ours.images]
    for record in ours.images:
        annotations = theirs.loadAnns(theirs.getAnnIds(imgIds=record["id"]))
        masks = np.stack([theirs.annToMask(a) for a in annotations])
        np.testing.assert_array_equal(masks, ours.targets(record)["instance_masks"])
