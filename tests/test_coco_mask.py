"""COCO RLE: hand-worked encodings, round trips, polygons, IoU; pycocotools as an extra oracle."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinygrad_cv.data import DataFormatError
from tinygrad_cv.data import coco_mask as cm


# --------------------------------------------------------------------------- hand cases
def test_docstring_example_counts_column_major_starting_with_zeros():
    mask = np.array([[0, 1], [1, 0], [1, 0]], dtype=np.uint8)      # columns: 0 1 1 | 1 0 0
    assert cm.rle_counts(cm.encode(mask)).tolist() == [1, 3, 2]
    assert cm.encode(mask)["size"] == [3, 2]
    assert cm.encode(mask)["counts"] == "132"                       # three single-chunk numbers


def test_mask_starting_with_one_gets_an_empty_zero_run():
    mask = np.array([[1, 1], [0, 1]], dtype=bool)                   # column-major: 1 0 1 1
    assert cm.rle_counts(cm.encode(mask)).tolist() == [0, 1, 1, 2]


def test_string_worked_by_hand_with_deltas_multichunk_and_negative():
    # counts [5, 40, 3, 10] are stored as 5, 40, 3, 10 - 40 = -30 (deltas start at the 4th count).
    # 5 -> '5';  3 -> '3'
    # 40 = 0b1_01000: low chunk 8 with "more" (8 + 32 + 48 = 'X'), then 1 -> '1'
    # -30 = -32 + 2: low chunk 2 with "more" ('R'), then -1 = 0b11111 whose sign bit ends it ('O')
    assert cm.counts_to_string([5, 40, 3, 10]) == "5X13RO"
    assert cm.string_to_counts("5X13RO").tolist() == [5, 40, 3, 10]
    assert cm.string_to_counts(b"5X13RO").tolist() == [5, 40, 3, 10]


def test_uncompressed_counts_are_accepted():
    rle = {"size": [2, 29], "counts": [5, 40, 3, 10]}
    mask = cm.rle_to_mask(rle)
    flat = mask.ravel(order="F")
    assert mask.shape == (2, 29) and mask.dtype == np.uint8
    assert flat[:5].sum() == 0 and flat[5:45].all() and flat[45:48].sum() == 0 and flat[48:].all()
    assert cm.encode(mask)["counts"] == "5X13RO"
    assert cm.area(rle) == 50


def test_area_and_bbox_by_hand():
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[2:5, 3:7] = 1                                   # rows 2..4, columns 3..6
    rle = cm.encode(mask)
    assert cm.area(rle) == 12
    assert cm.to_bbox(rle).tolist() == [3, 2, 4, 3]      # [x, y, w, h]
    assert cm.to_bbox(cm.encode(np.zeros((4, 4)))).tolist() == [0, 0, 0, 0]


def test_bbox_of_a_run_wrapping_to_the_next_column_spans_the_full_height():
    mask = np.zeros((5, 3), dtype=np.uint8)
    mask[4, 0] = mask[0, 1] = 1                          # one run (pixels 4 and 5) across columns 0 and 1
    assert cm.to_bbox(cm.encode(mask)).tolist() == [0, 0, 2, 5]


def test_empty_and_full_masks():
    assert cm.rle_counts(cm.encode(np.zeros((3, 4)))).tolist() == [12]
    assert cm.rle_counts(cm.encode(np.ones((3, 4)))).tolist() == [0, 12]
    assert cm.rle_to_mask(cm.encode(np.ones((3, 4)))).all()


def test_square_polygon_covers_pixels_whose_centres_are_inside():
    rle = cm.from_polygons([[1, 1, 4, 1, 4, 4, 1, 4]], 6, 6)
    expected = np.zeros((6, 6), dtype=np.uint8)
    expected[1:4, 1:4] = 1                               # centres 1.5, 2.5, 3.5 lie inside (1, 4)
    assert (cm.rle_to_mask(rle) == expected).all()
    assert cm.from_polygons([1, 1, 4, 1, 4, 4, 1, 4], 6, 6) == rle    # a single flat polygon


def test_triangle_rows_by_hand():
    # Right triangle (0,0), (6,0), (0,6): pixel (r, c) has its centre inside when c + r + 1 < 6.
    mask = cm.rle_to_mask(cm.from_polygons([[0, 0, 6, 0, 0, 6]], 6, 6))
    r, c = np.mgrid[:6, :6]
    assert (mask == (c + r + 1 < 6)).all()


def test_polygons_are_merged_as_a_union_and_clipped_to_the_image():
    a = [0, 0, 3, 0, 3, 3, 0, 3]
    b = [2, 2, 9, 2, 9, 9, 2, 9]                         # overlaps a and leaves the 5x5 image
    union = cm.rle_to_mask(cm.from_polygons([a, b], 5, 5))
    expected = np.zeros((5, 5), dtype=np.uint8)
    expected[:3, :3] = 1
    expected[2:, 2:] = 1
    assert (union == expected).all()


def test_polygon_area_close_to_shoelace_area():
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    x, y = 30 + 20 * np.cos(angles), 25 + 15 * np.sin(angles)
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    area = cm.area(cm.from_polygons([np.stack([x, y], 1).ravel().tolist()], 50, 60))
    assert abs(area - shoelace) < 0.03 * shoelace


def test_segmentation_to_rle_accepts_all_three_forms():
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[1:3, 1:4] = 1
    compressed = cm.encode(mask)
    uncompressed = {"size": [4, 5], "counts": cm.rle_counts(compressed).tolist()}
    assert cm.segmentation_to_rle(compressed, 4, 5) is compressed
    assert cm.segmentation_to_rle(uncompressed, 4, 5) == compressed
    assert cm.segmentation_to_rle([[1, 1, 4, 1, 4, 3, 1, 3]], 4, 5) == compressed


def test_iou_boxes_and_masks_by_hand_with_crowd():
    dt, gt = np.array([[0, 0, 2, 2]]), np.array([[1, 1, 2, 2], [5, 5, 1, 1]])
    iou = cm.iou(dt, gt, [0, 0])
    assert np.allclose(iou, [[1 / 7, 0]])                        # intersection 1, union 4 + 4 - 1
    assert np.allclose(cm.iou(dt, gt, [1, 0]), [[1 / 4, 0]])     # crowd: intersection / area(dt)
    m_dt, m_gt = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    m_dt[0:2, 0:2] = 1
    m_gt[1:3, 1:3] = 1
    rle_dt, rle_gt = [cm.encode(m_dt)], [cm.encode(m_gt)]
    assert np.allclose(cm.iou(rle_dt, rle_gt, [0]), [[1 / 7]])
    assert np.allclose(cm.iou(rle_dt, rle_gt, [1]), [[1 / 4]])
    assert cm.iou([], rle_gt, [0]).shape == (0, 1)


# --------------------------------------------------------------------------- round trips
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 1)))
def test_encode_decode_round_trip(mask):
    rle = cm.encode(mask)
    assert (cm.rle_to_mask(rle) == mask).all()
    assert cm.area(rle) == mask.sum()


@given(st.lists(st.integers(0, 2 ** 31 - 1), min_size=0, max_size=30))
def test_counts_string_round_trip(counts):
    assert cm.string_to_counts(cm.counts_to_string(counts)).tolist() == counts


def test_bbox_matches_nonzero_extent_on_random_rectangles():
    rng = np.random.default_rng(1)
    for _ in range(30):
        mask = np.zeros((9, 11), dtype=np.uint8)       # at most 3 rows tall: no run wraps a column
        y0, x0 = rng.integers(0, 8), rng.integers(0, 10)
        mask[y0:y0 + rng.integers(1, 4), x0:x0 + rng.integers(1, 4)] = 1
        ys, xs = np.nonzero(mask)
        expected = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert cm.to_bbox(cm.encode(mask)).tolist() == expected


# --------------------------------------------------------------------------- errors
def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="rle_to_mask.*add up to 6.*size \\[2, 2\\]"):
        cm.rle_to_mask({"size": [2, 2], "counts": [1, 5]})
    with pytest.raises(ValueError, match="not a valid compressed RLE"):
        cm.rle_to_mask({"size": [2, 2], "counts": "1\x7f"})
    with pytest.raises(ValueError, match="encode: expected a 2-D"):
        cm.encode(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="from_polygons.*got 4"):
        cm.from_polygons([[0, 0, 1, 1]], 3, 3)
    with pytest.raises(ValueError, match="same size"):
        cm.iou([cm.encode(np.ones((2, 2)))], [cm.encode(np.ones((3, 2)))], [0])
    with pytest.raises(TypeError, match="RLE dict"):
        cm.area([1, 2])


@pytest.mark.parametrize("rle, message", [
    ({"size": [2, 2], "counts": "é"}, "non-ASCII"),
    ({"size": [2, 2], "counts": "_" * 13 + "0"}, "14 chunks"),            # would overflow int64
    ({"size": [2, 2], "counts": "4O"}, "negative run length"),            # 4, then -1: a negative run
    ({"size": [2, 2], "counts": [1.5, 2.5]}, "integer run lengths"),      # used to truncate to [1, 2]
    ({"size": [2, 2], "counts": [True, 3]}, "integer run lengths"),
    ({"size": [2, 2], "counts": [-1, 5]}, "integer run lengths >= 0"),
    ({"size": [2.0, 2], "counts": [4]}, r"'size' must be \[h, w\]"),
    ({"size": [2, 2]}, r"has no \['counts'\]"),
    ({"size": [10 ** 5, 10 ** 5], "counts": [10 ** 10]}, r"10000000000 pixels, more than MAX_PIXELS"),
    ({"size": [2, 2], "counts": [2 ** 61, 2 ** 61, 2 ** 61, 2 ** 61]}, "add up to"),   # no overflowing sum
])
def test_corrupt_rle_raises_data_format_error(rle, message):
    with pytest.raises(DataFormatError, match=message):
        cm.rle_to_mask(rle)


# --------------------------------------------------------------------------- pycocotools (extra oracle)
def _random_mask(rng, h, w):
    if rng.random() < 0.5:
        return (rng.random((h, w)) < rng.random()).astype(np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[rng.integers(0, h):rng.integers(0, h + 1), rng.integers(0, w):rng.integers(0, w + 1)] = 1
    return mask


def test_rle_agrees_with_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(2)
    for _ in range(100):
        mask = _random_mask(rng, *rng.integers(1, 50, 2))
        ours, theirs = cm.encode(mask), mask_api.encode(np.asfortranarray(mask))
        assert ours["counts"] == theirs["counts"].decode() and ours["size"] == list(theirs["size"])
        assert (cm.rle_to_mask(theirs) == mask).all()
        assert cm.area(ours) == mask_api.area(theirs)
        assert cm.to_bbox(ours).tolist() == mask_api.toBbox(theirs).tolist()


def test_polygons_agree_with_pycocotools_pixel_for_pixel():
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(3)
    for trial in range(150):
        h, w = rng.integers(5, 60, 2)
        k = rng.integers(3, 10)
        scale, shift = np.tile([1.4 * w, 1.4 * h], k), np.tile([0.2 * w, 0.2 * h], k)
        polygons = [(rng.random(2 * k) * scale - shift).round(rng.integers(0, 3)).tolist()]
        if trial % 3 == 0:
            polygons.append((rng.random(8) * np.tile([w, h], 4)).tolist())
        ours = cm.from_polygons(polygons, h, w)
        theirs = mask_api.merge(mask_api.frPyObjects(polygons, h, w))
        assert ours["counts"] == theirs["counts"].decode()


def test_iou_agrees_with_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(4)
    for _ in range(30):
        h, w = rng.integers(5, 30, 2)
        dt = [cm.encode(_random_mask(rng, h, w)) for _ in range(rng.integers(1, 6))]
        gt = [cm.encode(_random_mask(rng, h, w)) for _ in range(rng.integers(1, 6))]
        crowd = (rng.random(len(gt)) < 0.4).astype(np.uint8)
        assert np.allclose(cm.iou(dt, gt, crowd), mask_api.iou(dt, gt, list(crowd)))
        boxes_dt, boxes_gt = rng.random((5, 4)) * 10, rng.random((len(gt), 4)) * 10
        assert np.allclose(cm.iou(boxes_dt, boxes_gt, crowd), mask_api.iou(boxes_dt, boxes_gt, list(crowd)))
