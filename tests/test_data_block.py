"""The data block: splitters, labellers, the recipe and its errors, progressive resizing."""
import numpy as np
import pytest
from PIL import Image

import tinygrad_cv.data as D


def image_tree(root, layout, size=(10, 12)):
    """Write small PNGs at root/<relative path> for each path in ``layout``; return the paths."""
    rng = np.random.default_rng(0)
    paths = []
    for relative in layout:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(D.write_image(path, rng.integers(0, 256, size + (3,)).astype(np.uint8)))
    return paths


# --------------------------------------------------------------------------- split
def test_random_split_cuts_a_seeded_permutation():
    train, valid = D.RandomSplit(valid_pct=0.25, seed=3)(list(range(10)))
    order = np.random.default_rng(3).permutation(10)
    assert valid.tolist() == order[:2].tolist() and train.tolist() == order[2:].tolist()   # cut = int(0.25 * 10)
    assert D.RandomSplit(0.25, 3)(list(range(10)))[1].tolist() == valid.tolist()
    with pytest.raises(ValueError, match="valid_pct"):
        D.RandomSplit(1.5)


def test_list_split_reads_valid_txt(tmp_path):
    (tmp_path / "valid.txt").write_text("b.png\nd.png\n")
    paths = [tmp_path / name for name in ("a.png", "b.png", "c.png", "d.png")]
    train, valid = D.ListSplit(tmp_path / "valid.txt")(paths)
    assert train.tolist() == [0, 2] and valid.tolist() == [1, 3]
    with pytest.raises(ValueError, match="none of the 2 names"):
        D.ListSplit(["x.png", "y.png"])(paths)


def test_folder_split_and_folder_labels(tmp_path):
    paths = image_tree(tmp_path, ["train/cat/1.png", "train/dog/2.png", "train/dog/3.png", "valid/cat/4.png",
                                  "valid/dog/5.png"])
    recipe = D.DataRecipe(D.image_files(tmp_path), label=D.FolderLabel(), split=D.FolderSplit("valid"))
    assert recipe.vocab == ["cat", "dog"]
    assert [recipe.paths[i].name for i in recipe.valid_indices] == ["4.png", "5.png"]
    train, _ = recipe.datasets()
    assert [int(train[i]["target"]) for i in range(3)] == [0, 1, 1]
    assert D.image_files(tmp_path, recurse=False) == [] and len(paths) == 5


# --------------------------------------------------------------------------- label
def planet_folder(tmp_path, rows):
    names = [row.split(",")[0] for row in rows]
    image_tree(tmp_path / "train-jpg", [f"{name}.jpg" for name in names])
    (tmp_path / "train_v2.csv").write_text("image_name,tags\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_planet_csv_in_a_few_lines(tmp_path):
    path = planet_folder(tmp_path, ["t0,clear primary", "t1,haze primary water", "t2,cloudy", "t3,clear road",
                                    "t4,clear primary", "t5,partly_cloudy primary"])
    recipe = D.planet_recipe(path, valid_pct=0.34, seed=0)
    assert recipe.vocab == ["clear", "cloudy", "haze", "partly_cloudy", "primary", "road", "water"]
    train, valid = recipe.datasets()
    assert len(train) == 4 and len(valid) == 2
    samples = {sample["name"]: sample for ds in (train, valid) for sample in (ds[i] for i in range(len(ds)))}
    assert samples["t1"]["target"].tolist() == [0, 0, 1, 0, 1, 0, 1]


def test_unknown_tags_and_missing_files_are_reported(tmp_path):
    path = planet_folder(tmp_path, ["t0,clear primary", "t1,haze primary"])
    rows = D.csv_rows(path / "train_v2.csv")
    with pytest.raises(ValueError, match=r"line 3 \(image '.*t1.jpg'\) has tags \['haze'\] that are not in the"):
        D.DataRecipe(rows, image=lambda r: path / "train-jpg" / f"{r['image_name']}.jpg",
                     label=D.TagLabels(vocab=["clear", "primary"]))
    rows += [{"image_name": f"gone{i}", "tags": "clear"} for i in range(7)]
    with pytest.raises(ValueError, match=r"7 of 9 image files do not exist, e.g. \[.*gone0.jpg"):
        D.DataRecipe(rows, image=lambda r: path / "train-jpg" / f"{r['image_name']}.jpg", label=D.TagLabels())


def test_mask_values_outside_the_codes_name_file_and_value(tmp_path):
    paths = image_tree(tmp_path / "images", ["a.png", "b.png"])
    (tmp_path / "labels").mkdir()
    for path, top in zip(paths, (3, 9)):
        D.write_mask(tmp_path / "labels" / f"{path.stem}_P.png", np.full((10, 12), top, np.uint8))
    (tmp_path / "codes.txt").write_text("\n".join(f"class{i}" for i in range(5)))
    (tmp_path / "valid.txt").write_text("a.png\n")
    recipe = D.camvid_recipe(tmp_path)
    train, valid = recipe.datasets()
    assert valid[0]["mask"].max() == 3 and valid[0]["mask"].shape == (10, 12)
    with pytest.raises(ValueError, match=r"b_P.png' has class values \[9\] but the codes list only 5 classes"):
        train[0]


# --------------------------------------------------------------------------- the recipe
def test_empty_items_and_empty_validation_are_errors(tmp_path):
    with pytest.raises(ValueError, match="no items"):
        D.DataRecipe([])
    paths = image_tree(tmp_path, ["a.png", "b.png"])
    with pytest.raises(ValueError, match="leaves 2 training and 0 validation"):
        D.DataRecipe(paths, split=D.RandomSplit(valid_pct=0.2))


def test_repeated_rows_are_refused_naming_their_lines(tmp_path):
    path = planet_folder(tmp_path, ["t0,clear", "t1,haze", "t2,clear", "t1,haze", "t3,water"])
    with pytest.raises(D.DataFormatError, match=r"1 items repeat.*train_v2.csv' line 3 \(image '.*t1.jpg'\) and "
                                                r".*train_v2.csv' line 5 "):
        D.planet_recipe(path, valid_pct=0.4)


@pytest.mark.parametrize("tags, message", [
    ("clear\tprimary", r"line 3 .*'clear\\tprimary' is empty or holds whitespace"),   # tab: never one tag
    ("clear  primary", r"line 3 .*'' is empty"),                                      # doubled separator
    ("", r"line 3 .*has no tags"),
])
def test_tags_split_on_single_spaces_only(tmp_path, tags, message):
    path = planet_folder(tmp_path, ["t0,clear", f"t1,{tags}", "t2,haze primary"])
    with pytest.raises(D.DataFormatError, match=message):
        D.planet_recipe(path, valid_pct=0.4)


def test_empty_tags_allowed_on_request(tmp_path):
    path = planet_folder(tmp_path, ["t0,clear", "t1,", "t2,haze primary"])
    rows = D.csv_rows(path / "train_v2.csv")
    recipe = D.DataRecipe(rows, image=lambda r: path / "train-jpg" / f"{r['image_name']}.jpg",
                          label=D.TagLabels(allow_empty=True), split=D.RandomSplit(0.4))
    assert recipe.vocab == ["clear", "haze", "primary"]
    assert recipe.label(rows[1], recipe.paths[1])["target"].tolist() == [0, 0, 0]
    assert recipe.label(rows[2], recipe.paths[2])["target"].tolist() == [0, 1, 1]


def test_missing_image_is_named_with_its_csv_line(tmp_path):
    path = planet_folder(tmp_path, ["t0,clear", "t1,haze", "t2,clear"])
    (path / "train-jpg" / "t1.jpg").unlink()
    with pytest.raises(D.DataFormatError, match=r"1 of 3 image files do not exist.*train_v2.csv' line 3 "
                                                r"\(image '.*t1.jpg'\)"):
        D.planet_recipe(path, valid_pct=0.4)


def test_camvid_mask_errors_are_data_format_errors(tmp_path):
    image_tree(tmp_path / "images", ["a.png"], size=(6, 8))
    (tmp_path / "labels").mkdir()
    (tmp_path / "codes.txt").write_text("Sky\nRoad\n")
    (tmp_path / "valid.txt").write_text("a.png\n")
    label = D.MaskLabel(lambda image: tmp_path / "labels" / f"{image.stem}_P.png", tmp_path / "codes.txt")
    mask = tmp_path / "labels" / "a_P.png"
    D.write_mask(mask, np.full((6, 8), 2, np.uint8))
    with pytest.raises(D.DataFormatError, match=r"a_P.png' has class values \[2\] but the codes list only 2"):
        label({}, tmp_path / "images" / "a.png")
    D.write_mask(mask, np.ones((3, 8), np.uint8))
    recipe = D.DataRecipe(D.image_files(tmp_path / "images"), label=label, split=lambda paths: ([0], [0]))
    with pytest.raises(D.DataFormatError, match=r"a.png' is 6x8 but its mask is 3x8"):
        recipe.load(0)
    Image.fromarray(np.full((6, 8), -1, np.int32), mode="I").save(tmp_path / "labels" / "a_P.tif")
    tif = D.MaskLabel(lambda image: tmp_path / "labels" / f"{image.stem}_P.tif", ["Sky", "Road"])
    with pytest.raises(D.DataFormatError, match=r"a_P.tif' has class values \[-1\]"):
        tif({}, tmp_path / "images" / "a.png")
    mask.unlink()
    with pytest.raises(D.DataFormatError, match=r"MaskLabel: 1 of 1 images have no mask file, e.g. \['.*a_P.png'\]"):
        D.DataRecipe(D.image_files(tmp_path / "images"), label=label, split=lambda paths: ([0], [0]))


def test_list_split_warns_about_names_matching_no_item(tmp_path):
    paths = [tmp_path / name for name in ("a.png", "b.png", "c.png")]
    with pytest.warns(UserWarning, match=r"1 of the 2 names in 'the given list' are not among the items \(e.g. "
                                         r"\['gone.png'\]\)"):
        train, valid = D.ListSplit(["b.png", "gone.png"])(paths)
    assert train.tolist() == [0, 2] and valid.tolist() == [1]


def test_skip_bad_files_drops_and_counts_them(tmp_path):
    paths = image_tree(tmp_path, [f"{i}.png" for i in range(6)])
    paths[2].write_bytes(paths[2].read_bytes()[:40])                        # truncated
    paths[4].write_text("garbage")
    recipe = D.DataRecipe(paths, split=D.RandomSplit(0.5))
    with pytest.raises(D.ImageReadError, match=r"2\.png"):
        [recipe.load(i) for i in range(6)]
    with pytest.warns(UserWarning, match="skipped 2 of 6 items"):
        recipe = D.DataRecipe(paths, split=D.RandomSplit(0.5), skip_bad_files=True)
    assert len(recipe.items) == 4 and [p.name for p, _ in recipe.skipped] == ["2.png", "4.png"]


def test_dataloaders_and_progressive_resizing(tmp_path):
    paths = image_tree(tmp_path, [f"{c}/{i}.png" for c in ("a", "b") for i in range(5)], size=(20, 24))
    recipe = D.DataRecipe(paths, label=D.FolderLabel(), split=D.RandomSplit(0.2, seed=1))
    small = recipe.dataloaders(batch_size=4, size=8, seed=0)
    x, y = small.one_batch()
    assert x.shape == (4, 3, 8, 8) and y.dtype == np.int64 and small.c == 2
    xv, _ = next(iter(small.valid))
    assert xv.shape == (2, 3, 8, 8)
    larger = recipe.dataloaders(batch_size=4, size=(12, 16), seed=0, stats=(small.normalize.mean, small.normalize.std))
    assert larger.one_batch()[0].shape == (4, 3, 12, 16)
    test = recipe.dataloaders(batch_size=4, size=8, test_paths=paths[:3]).test
    xt, yt = next(iter(test))
    assert xt.shape == (3, 3, 8, 8) and yt is None
