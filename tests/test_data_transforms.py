"""Joint transforms: samplers against naive loops, exact symmetries, image/mask/box alignment."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cv.data import transforms as T


# --------------------------------------------------------------------------- naive references
def reference_index(i, n, pad_mode):
    """Integer pixel index i mapped into the image the textbook way (None: read a zero)."""
    if pad_mode == "border":
        return min(max(i, 0), n - 1)
    if pad_mode == "zeros":
        return i if 0 <= i < n else None
    i = i % (2 * n)                                   # mirror about the outer pixel edges
    return i if i < n else 2 * n - 1 - i


def reference_bilinear(image, u, v, pad_mode):
    out = np.zeros(u.shape + image.shape[2:])
    for r in range(u.shape[0]):
        for c in range(u.shape[1]):
            x0, y0 = math.floor(u[r, c]), math.floor(v[r, c])
            fx, fy = u[r, c] - x0, v[r, c] - y0
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    row = reference_index(y0 + dy, image.shape[0], pad_mode)
                    col = reference_index(x0 + dx, image.shape[1], pad_mode)
                    if row is not None and col is not None:
                        out[r, c] += wy * wx * image[row, col]
    return out


def reference_nearest(image, u, v, pad_mode, fill):
    out = np.full(u.shape, fill, dtype=image.dtype)
    for r in range(u.shape[0]):
        for c in range(u.shape[1]):
            row = reference_index(math.floor(v[r, c] + 0.5), image.shape[0], pad_mode)
            col = reference_index(math.floor(u[r, c] + 0.5), image.shape[1], pad_mode)
            if row is not None and col is not None:
                out[r, c] = image[row, col]
    return out


def coords(rng, shape, low, high):
    return (rng.uniform(low, high, shape).astype(np.float32) for _ in range(2))


@pytest.mark.parametrize("pad_mode", T.PAD_MODES)
@given(seed=st.integers(0, 2 ** 16), height=st.integers(1, 6), width=st.integers(1, 6))
def test_bilinear_matches_naive_loop(pad_mode, seed, height, width):
    rng = np.random.default_rng(seed)
    image = rng.random((height, width, 3)).astype(np.float32)
    u, v = coords(rng, (4, 5), -2.5 * max(height, width), 2.5 * max(height, width))
    np.testing.assert_allclose(T.sample_bilinear(image, u, v, pad_mode),
                               reference_bilinear(image, u.astype(float), v.astype(float), pad_mode),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pad_mode", T.PAD_MODES)
@given(seed=st.integers(0, 2 ** 16), height=st.integers(1, 6), width=st.integers(1, 6))
def test_nearest_matches_naive_loop(pad_mode, seed, height, width):
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, 9, (height, width)).astype(np.uint8)
    u, v = coords(rng, (4, 5), -2.2 * max(height, width), 2.2 * max(height, width))
    u += 0.013                                        # keep away from exact .5 ties
    np.testing.assert_array_equal(T.sample_nearest(mask, u, v, pad_mode, fill=255),
                                  reference_nearest(mask, u, v, pad_mode, 255))


def test_uint8_image_rounds_to_nearest():
    image = np.array([[[0], [255]]], dtype=np.uint8)
    out = T.sample_bilinear(image, np.array([[0.25, 0.5]], np.float32), np.zeros((1, 2), np.float32))
    assert out.dtype == np.uint8 and out[0, :, 0].tolist() == [64, 128]   # 63.75 -> 64, 127.5 -> 128


# --------------------------------------------------------------------------- exact symmetries
def asymmetric_sample(height=5, width=5):
    rng = np.random.default_rng(1)
    return {"image": rng.integers(0, 256, (height, width, 3)).astype(np.uint8),
            "mask": rng.integers(0, 7, (height, width)).astype(np.uint8),
            "boxes": np.array([[0, 1, 2, 4]], np.float32), "labels": np.array([3])}


def test_identity_warp_is_exact_and_free():
    sample = asymmetric_sample()
    assert T.warp_sample(sample, np.eye(3), (5, 5)) is sample
    out = T.Compose([T.Flip(p=1.0), T.Flip(p=1.0)])(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["image"], sample["image"])


def test_horizontal_flip_mirrors_image_mask_and_boxes():
    sample = asymmetric_sample()
    out = T.Flip(p=1.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["image"], sample["image"][:, ::-1])
    np.testing.assert_array_equal(out["mask"], sample["mask"][:, ::-1])
    np.testing.assert_allclose(out["boxes"], [[5 - 2, 1, 5 - 0, 4]], atol=1e-5)
    vertical = T.Flip(p=1.0, vertical=True)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(vertical["mask"], sample["mask"][::-1])


def test_dihedral_group_has_eight_distinct_elements_closed_under_composition():
    matrices = [m.round(12) for m in T.DIHEDRAL]
    keys = {m.tobytes() for m in matrices}
    assert len(keys) == 8
    assert all((a @ b).round(12).tobytes() in keys for a in matrices for b in matrices)


def test_dihedral_images_are_the_eight_rotations_and_reflections():
    image = asymmetric_sample(4, 4)["image"]
    expected = {np.rot90(m, k).tobytes() for m in (image, image[:, ::-1]) for k in range(4)}
    got = {T.warp_sample({"image": image}, m, (4, 4))["image"].tobytes() for m in T.DIHEDRAL}
    assert got == expected and len(got) == 8


def test_quarter_turn_matrix_is_numpy_rot90():
    sample = asymmetric_sample(6, 6)
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])     # output (x, y) reads input (-y, x)
    out = T.warp_sample(sample, turn, (6, 6))
    np.testing.assert_array_equal(out["image"], np.rot90(sample["image"], 1))
    np.testing.assert_array_equal(out["mask"], np.rot90(sample["mask"], 1))


class FixedRng:
    """Stands in for a Generator: random() says "apply", uniform() returns the given value."""

    def __init__(self, value):
        self.value = value

    def random(self):
        return 0.0

    def uniform(self, low, high, size=None):
        return self.value


def test_rotation_preserves_angles_on_non_square_images():
    matrix = T.Rotate(30.0, p=1.0).matrix(FixedRng(30.0), 40, 100)
    linear = T.pixel_matrix(matrix, (40, 100), (40, 100))[:2, :2]
    np.testing.assert_allclose(linear @ linear.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(math.degrees(math.atan2(linear[1, 0], linear[0, 0])), 30.0)


def test_homography_maps_the_four_points():
    rng = np.random.default_rng(0)
    source = T.Perspective.CORNERS
    target = source + rng.uniform(-0.3, 0.3, (4, 2))
    h = T.homography(source, target)
    mapped = h @ np.c_[source, np.ones(4)].T
    np.testing.assert_allclose((mapped[:2] / mapped[2]).T, target, atol=1e-12)


def test_random_crop_is_an_exact_window():
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    out = T.RandomCrop((4, 5))({"image": image}, np.random.default_rng(3))["image"]
    windows = [image[r:r + 4, c:c + 5] for r in range(7) for c in range(8)]
    assert any(np.array_equal(out, w) for w in windows)


# --------------------------------------------------------------------------- alignment
def painted_boxes(rng, size=40, k=3):
    """A mask painted from k known boxes (label i + 1 inside box i, disjoint columns)."""
    mask = np.zeros((size, size), np.uint8)
    boxes = []
    for i in range(k):
        x1 = 2 + i * (size // k)
        x2 = x1 + int(rng.integers(3, size // k - 2))
        y1 = int(rng.integers(1, size // 2))
        y2 = y1 + int(rng.integers(3, size // 2))
        mask[y1:y2, x1:x2] = i + 1
        boxes.append([x1, y1, x2, y2])
    image = np.stack([mask * 60, mask * 30, 255 - mask * 50], -1).astype(np.uint8)
    return {"image": image, "mask": mask, "boxes": np.array(boxes, np.float32), "labels": np.arange(1, k + 1)}


@given(seed=st.integers(0, 2 ** 20))
def test_transformed_boxes_still_bound_their_mask(seed):
    rng = np.random.default_rng(seed)
    sample = painted_boxes(rng)
    pipeline = T.aug_transforms(32, flip_vert=True, max_rotate=30, max_zoom=1.3, max_warp=0.15, max_lighting=0,
                                p_affine=1.0, pad_mode="zeros")
    out = pipeline(sample, rng)
    assert out["image"].shape == (32, 32, 3) and out["mask"].shape == (32, 32)
    rows, cols = np.mgrid[0:32, 0:32] + 0.5                   # pixel centres
    for box, label in zip(out["boxes"], out["labels"]):
        inside = out["mask"] == label
        assert np.all(cols[inside] >= box[0] - 1e-3) and np.all(cols[inside] <= box[2] + 1e-3)
        assert np.all(rows[inside] >= box[1] - 1e-3) and np.all(rows[inside] <= box[3] + 1e-3)
    for lost in set(np.unique(out["mask"]).tolist()) - {0} - set(out["labels"].tolist()):
        rows_lost, cols_lost = np.nonzero(out["mask"] == lost)   # a box dropped as < 1 px: a 1-pixel sliver
        assert len(set(rows_lost)) == 1 or len(set(cols_lost)) == 1


@given(seed=st.integers(0, 2 ** 20))
def test_image_and_mask_move_together(seed):
    rng = np.random.default_rng(seed)
    sample = painted_boxes(rng)
    out = T.aug_transforms(40, max_rotate=20, max_warp=0.2, max_lighting=0, p_affine=1.0)(sample, rng)
    decoded = np.round(out["image"][..., 0] / 60.0)           # the image encodes the mask in its red channel
    interior = out["mask"] == np.roll(out["mask"], 1, 0)
    interior &= (out["mask"] == np.roll(out["mask"], 1, 1)) & (out["mask"] == np.roll(out["mask"], -1, 0))
    interior &= out["mask"] == np.roll(out["mask"], -1, 1)
    assert np.mean(decoded[interior] == out["mask"][interior]) > 0.99


def test_instance_masks_give_tight_boxes_and_drop_objects_that_leave():
    masks = np.zeros((2, 20, 20), np.uint8)
    masks[0, 2:6, 3:9] = 1
    masks[1, 12:18, 14:19] = 1
    sample = {"image": np.zeros((20, 20, 3), np.uint8), "instance_masks": masks,
              "boxes": np.array([[3, 2, 9, 6], [14, 12, 19, 18]], np.float32), "labels": np.array([1, 2])}
    crop = np.array([[0.5, 0, -0.5], [0, 0.5, -0.5], [0, 0, 1.0]])   # the top-left quarter, doubled
    out = T.warp_sample(sample, crop, (20, 20), pad_mode="zeros")
    assert out["labels"].tolist() == [1] and out["instance_masks"].shape == (1, 20, 20)
    np.testing.assert_array_equal(out["boxes"], T.boxes_from_masks(out["instance_masks"]))
    np.testing.assert_array_equal(out["boxes"][0], [6, 4, 18, 12])


def test_boxes_from_masks():
    masks = np.zeros((2, 5, 6), np.uint8)
    masks[0, 1:3, 2:5] = 1
    np.testing.assert_array_equal(T.boxes_from_masks(masks), [[2, 1, 5, 3], [0, 0, 0, 0]])


# --------------------------------------------------------------------------- pixel steps and recipes
def test_lighting_changes_image_only_and_keeps_order():
    sample = asymmetric_sample()
    out = T.Lighting(0.3, 0.3, p=1.0)(sample, np.random.default_rng(5))
    assert out["mask"] is sample["mask"] and not np.array_equal(out["image"], sample["image"])
    order = np.argsort(sample["image"].ravel(), kind="stable")
    assert np.all(np.diff(out["image"].ravel()[order].astype(int)) >= 0)   # a monotone map of the levels
    unchanged = T.Lighting(0.0, 0.0, p=1.0)(sample, np.random.default_rng(5))
    np.testing.assert_array_equal(unchanged["image"], sample["image"])


def test_same_rng_seed_same_augmentation():
    sample = painted_boxes(np.random.default_rng(0))
    pipeline = T.aug_transforms(24, flip_vert=True)
    a, b = (pipeline(sample, np.random.default_rng([7, 1, 2])) for _ in range(2))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_valid_transforms_only_resize():
    sample = asymmetric_sample(8, 8)
    out = T.valid_transforms(4)(sample, np.random.default_rng(0))
    assert out["image"].shape == (4, 4, 3)
    np.testing.assert_array_equal(out["image"], T.valid_transforms(4)(sample, np.random.default_rng(99))["image"])
    np.testing.assert_allclose(out["boxes"], sample["boxes"] / 2, atol=1e-5)


def test_normalize_matches_numpy_and_inverts():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 6, 5, 3)).astype(np.uint8)
    normalize = T.Normalize.from_images([images[:2], images[2:]])
    pixels = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(normalize.mean, pixels.mean(0), rtol=1e-10)
    np.testing.assert_allclose(normalize.std, pixels.std(0), rtol=1e-8)
    x = normalize(images)
    assert x.shape == (4, 3, 6, 5) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, ((images / 255.0 - pixels.mean(0)) / pixels.std(0)).transpose(0, 3, 1, 2),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(normalize.denormalize(x), images)


def test_normalize_takes_float_images_as_already_in_unit_range():
    images = np.array([[[[0, 51, 255]], [[102, 204, 153]]]], np.uint8)          # (1, 2, 1, 3)
    normalize = T.Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    # by hand: channel 0 (0/255 - .5)/.5 = -1 and (102/255 - .5)/.5 = -0.2; channel 1 (51/255 - .25)/.25 =
    # -0.2 and (204/255 - .25)/.25 = 2.2; channel 2 (255/255)/2 = 0.5 and (153/255)/2 = 0.3
    expected = np.array([[[[-1.0], [-0.2]], [[-0.2], [2.2]], [[0.5], [0.3]]]])
    np.testing.assert_allclose(normalize(images), expected, rtol=0, atol=1e-6)
    for dtype in (np.float32, np.float64):                  # the same pixels as floats in [0, 1]: the same result
        np.testing.assert_allclose(normalize(images.astype(dtype) / 255), expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"Normalize: float images must lie in \[0, 1\], got values in \[0, 255\]"):
        normalize(images.astype(np.float32))                # 0..255 stored as float: ambiguous, refused
    with pytest.raises(TypeError, match="Normalize: expected uint8 images .* got uint16"):
        normalize(images.astype(np.uint16))
    with pytest.raises(ValueError, match=r"Normalize: mean must be in \[0, 1\] units .* got \[123.7, 116.3, 103.5\]"):
        T.Normalize([123.7, 116.3, 103.5], [58.4, 57.1, 57.4])          # 0..255 statistics
    with pytest.raises(ValueError, match="one positive std per mean"):
        T.Normalize([0.5, 0.5, 0.5], [0.2, float("nan"), 0.2])
    stats = T.Normalize.from_images([images.astype(np.float32) / 255])
    np.testing.assert_allclose(stats.mean, T.Normalize.from_images([images]).mean, rtol=1e-6)


def test_normalize_matches_torchvision_on_floats():
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision.transforms")
    images = np.random.default_rng(1).random((2, 4, 5, 3), dtype=np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = tv.Normalize(mean, std)(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(T.Normalize(mean, std)(images), expected, rtol=1e-5, atol=1e-5)


def joint_sample():
    image = np.zeros((8, 8, 3), np.uint8)
    masks = np.zeros((1, 8, 8), np.uint8)
    masks[0, 2:5, 1:4] = 1
    return {"image": image, "mask": np.zeros((8, 8), np.uint8), "instance_masks": masks,
            "boxes": np.array([[1, 2, 4, 5]], np.float32), "labels": np.array([1])}


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(mask=np.zeros((6, 8), np.uint8)),
     r"Resize: the image is 8x8 but its mask has shape \(6, 8\)"),
    (lambda s: s.update(instance_masks=np.zeros((1, 8, 4), np.uint8)),
     r"Resize: the image is 8x8 but its instance_masks has shape \(1, 8, 4\)"),
    (lambda s: s.update(boxes=np.array([[1, 2, 16, 5]], np.float32)),
     r"Resize: the box \[1.0, 2.0, 16.0, 5.0\] is not"),
    (lambda s: s.update(boxes=np.array([[4, 2, 3, 5]], np.float32)), r"Resize: the box \[4.0, 2.0, 3.0, 5.0\] is not"),
    (lambda s: s.update(labels=np.array([1, 2])), r"Resize: 1 boxes but 2 labels"),
    (lambda s: s.update(boxes=np.zeros((1, 3), np.float32)), r"Resize: boxes must be a \(K, 4\) array"),
])
def test_joint_transforms_refuse_parts_of_another_size(change, message):
    sample = joint_sample()
    assert T.Compose([T.Resize(4)])(sample, np.random.default_rng(0))["mask"].shape == (4, 4)
    change(sample)
    with pytest.raises(ValueError, match=message):
        T.Compose([T.Resize(4)])(sample, np.random.default_rng(0))
    with pytest.raises(ValueError, match=message.replace("Resize", "Flip")):
        T.Flip(p=1.0)(sample, np.random.default_rng(0))


def test_joint_check_runs_again_after_a_pixel_step():
    def crop_image_only(sample, rng):                       # a user step that breaks the pairing
        return {**sample, "image": sample["image"][:6]}
    with pytest.raises(ValueError, match=r"Zoom: the image is 6x8 but its mask"):
        T.Compose([T.Resize(8), crop_image_only, T.Zoom(p=1.0)])(joint_sample(), np.random.default_rng(0))


@pytest.mark.parametrize("make, message", [
    (lambda: T.RandomCrop(0), r"RandomCrop: size must be >= 1, got 0"),
    (lambda: T.Flip(p=2), r"Flip: p must be a probability in \[0, 1\], got 2"),
    (lambda: T.Rotate(p=-0.1), r"Rotate: p must be a probability"),
    (lambda: T.Rotate(max_degrees=-5), r"Rotate: max_degrees must be >= 0, got -5"),
    (lambda: T.Zoom(p=True), r"Zoom: p must be a probability in \[0, 1\], got True"),
    (lambda: T.Perspective(p=1.5), r"Perspective: p must be"),
    (lambda: T.Lighting(p="always"), r"Lighting: p must be"),
])
def test_transform_arguments_of_the_wrong_kind_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make, message", [
    (lambda: T.Resize(True), r"Resize: size must be an int or a pair of ints, got True"),   # was 1x1
    (lambda: T.Resize(4.5), r"Resize: size must be an int or a pair of ints, got 4.5"),
    (lambda: T.Resize((4, 2.5)), r"Resize: size must be an int or a pair of ints, got \(4, 2.5\)"),
    (lambda: T.RandomCrop("8"), r"RandomCrop: size must be an int or a pair of ints, got '8'"),
])
def test_sizes_of_the_wrong_type_are_type_errors(make, message):
    """As torchvision's Resize, and as every int-or-pair argument of the library (ops/_util.pair)."""
    with pytest.raises(TypeError, match=message):
        make()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pad_mode"):
        T.Compose([], pad_mode="wrap")
    with pytest.raises(ValueError, match="Resize: size"):
        T.Resize((0, 4))
    with pytest.raises(ValueError, match="Normalize"):
        T.Normalize([0.5, 0.5], [0.2])
    with pytest.raises(ValueError, match="Perspective: magnitude"):
        T.Perspective(0.7)
    with pytest.raises(TypeError, match="uint8"):
        T.Lighting(p=1.0)({"image": np.zeros((2, 2, 3), np.float32)}, np.random.default_rng(0))
