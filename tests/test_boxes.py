"""Box utilities: IoU against loops, NMS against a pairwise greedy reference, the box coder,
anchors by hand, clipping and filtering."""
import math

import numpy as np
import pytest

import tinygrad_cv as tg
from conftest import DEVICES
from tinygrad_cv import backend
from tinygrad_cv.ops import boxes as B


def _random_boxes(rng, n, size=20.0):
    corner = rng.uniform(0, size, (n, 2))
    return np.concatenate([corner, corner + rng.uniform(0.5, size / 2, (n, 2))], axis=1)


def _iou_loop(a, b):
    out = np.zeros((len(a), len(b)))
    for i, (ax1, ay1, ax2, ay2) in enumerate(a):
        for j, (bx1, by1, bx2, by2) in enumerate(b):
            iw, ih = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - iw * ih
            out[i, j] = iw * ih / union if union > 0 else 0.0
    return out


def _nms_loop(boxes, scores, threshold):
    """The textbook pairwise greedy NMS."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(_iou_loop(boxes[i:i + 1], boxes[j:j + 1])[0, 0] <= threshold for j in keep):
            keep.append(i)
    return keep


# --------------------------------------------------------------------------- areas and IoU
def test_box_area_and_iou_by_hand():
    a = np.array([[0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
    assert B.box_area(b).tolist() == [4, 4, 4, 0]
    assert np.allclose(B.box_iou(a, b), [[1 / 7, 0, 1, 0]])      # touching edges: IoU 0
    assert B.box_iou(b[3:], b[3:]).tolist() == [[0.0]]            # empty union: 0, not NaN


def test_box_iou_matches_a_loop():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 7), _random_boxes(rng, 5)
    assert np.allclose(B.box_iou(a, b), _iou_loop(a, b))


def test_mask_iou_matches_a_loop():
    rng = np.random.default_rng(1)
    m1, m2 = rng.random((4, 6, 7)) < 0.4, rng.random((3, 6, 7)) < 0.4
    m2[0] = False
    expected = [[(x & y).sum() / (x | y).sum() for y in m2] for x in m1]
    assert np.allclose(B.mask_iou(m1, m2), expected)
    assert B.mask_iou(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))).tolist() == [[0.0]]


def test_tensors_in_tensors_out():
    boxes = tg.Tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    iou = B.box_iou(boxes, boxes)
    assert isinstance(iou, tg.Tensor) and iou.shape == (2, 2) and not iou.requires_grad
    keep = B.nms(boxes, tg.Tensor([0.2, 0.9]), 0.1)
    assert isinstance(keep, tg.Tensor) and keep.tolist() == [1]


# --------------------------------------------------------------------------- NMS
def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) suppresses 0 (IoU 90/100) and 1 (IoU 72/118 = 0.61); box 2 is far away
    assert B.nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert B.nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]   # nothing above 0.95: sorted by score
    assert B.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_nms_threshold_is_strict():
    boxes = np.array([[0, 0, 2, 1.0], [1, 0, 3, 1.0]])         # IoU exactly 1/3
    assert B.nms(boxes, np.array([1.0, 0.5]), 1 / 3).tolist() == [0, 1]
    assert B.nms(boxes, np.array([1.0, 0.5]), 0.33).tolist() == [0]


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7])
def test_nms_matches_pairwise_greedy(threshold):
    rng = np.random.default_rng(2)
    for _ in range(10):
        boxes = _random_boxes(rng, 40)
        scores = rng.random(40).round(1)                          # ties included
        assert B.nms(boxes, scores, threshold).tolist() == _nms_loop(boxes, scores, threshold)


def test_batched_nms_is_nms_per_category():
    rng = np.random.default_rng(3)
    boxes, scores, labels = _random_boxes(rng, 60), rng.random(60), rng.integers(0, 4, 60)
    keep = B.batched_nms(boxes, scores, labels, 0.4).tolist()
    expected = []
    for c in range(4):
        members = np.flatnonzero(labels == c)
        expected += members[_nms_loop(boxes[members], scores[members], 0.4)].tolist()
    assert keep == sorted(expected, key=lambda i: -scores[i])
    assert B.batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).tolist() == []


def test_batched_nms_with_negative_coordinates_keeps_categories_apart():
    boxes = np.array([[-50.0, -50, -10, -10], [-50.0, -50, -10, -10]])
    assert sorted(B.batched_nms(boxes, np.array([0.9, 0.8]), np.array([0, 1]), 0.5).tolist()) == [0, 1]


@pytest.mark.parametrize("device", DEVICES)
def test_padded_nms_keeps_the_first_boxes_of_nms_per_group_in_each_row(device):
    rng = np.random.default_rng(6)
    boxes = np.stack([_random_boxes(rng, 50) for _ in range(3)])
    scores = rng.random((3, 50)).round(1)                             # ties included
    groups, valid = rng.integers(0, 3, (3, 50)), rng.random((3, 50)) < 0.8
    valid[2] = False                                                   # a row without any box
    for n in (1, 7, 50):
        indices, kept = B.padded_nms(*(backend.move(a, device) for a in (boxes, scores, valid, groups)), 0.4, n)
        indices, kept = backend.as_host(indices), backend.as_host(kept)
        assert indices.shape == kept.shape == (3, n)
        for b in range(3):
            expected = []
            for g in range(3):
                members = np.flatnonzero(valid[b] & (groups[b] == g))
                expected += members[_nms_loop(boxes[b, members], scores[b, members], 0.4)].tolist()
            expected = sorted(expected, key=lambda i: (-scores[b, i], i))[:n]
            assert indices[b, kept[b]].tolist() == expected
            assert kept[b, :len(expected)].all() and not kept[b, len(expected):].any()
            assert (indices[b, ~kept[b]] == 0).all()


# --------------------------------------------------------------------------- box coder
def test_encode_by_hand():
    anchor = np.array([[0.0, 0.0, 10.0, 20.0]])                 # centre (5, 10), size 10 x 20
    gt = np.array([[2.0, 4.0, 22.0, 24.0]])                     # centre (12, 14), size 20 x 20
    expected = [0.7 / 0.1, 0.2 / 0.1, math.log(2) / 0.2, 0.0]
    assert np.allclose(B.encode_boxes(anchor, gt), [expected])
    assert np.allclose(B.encode_boxes(anchor, gt, std=(1, 1, 1, 1)), [[0.7, 0.2, math.log(2), 0]])


def test_decode_inverts_encode():
    rng = np.random.default_rng(4)
    anchors, gt = _random_boxes(rng, 50), _random_boxes(rng, 50)
    assert np.allclose(B.decode_boxes(anchors, B.encode_boxes(anchors, gt)), gt)
    deltas = rng.normal(size=(50, 4))                            # small enough never to be clamped
    assert np.allclose(B.encode_boxes(anchors, B.decode_boxes(anchors, deltas)), deltas)


def test_decode_clamps_log_size():
    anchor = np.array([[0.0, 0.0, 16.0, 16.0]])
    huge = B.decode_boxes(anchor, np.array([[0.0, 0.0, 100.0, 100.0]]))
    assert np.allclose(huge, [[8 - 500, 8 - 500, 8 + 500, 8 + 500]])    # 16 * 1000/16 = 1000 wide
    assert np.isfinite(huge).all()


def test_box_coder_float32_stays_float32():
    anchors = _random_boxes(np.random.default_rng(5), 4).astype(np.float32)
    assert B.encode_boxes(anchors, anchors).dtype == np.float32
    assert B.decode_boxes(anchors, np.zeros((4, 4), np.float32)).dtype == np.float32


# --------------------------------------------------------------------------- anchors, clipping
def test_generate_anchors_by_hand():
    levels = B.generate_anchors([8, 16], [0.5, 1, 2], [(2, 3), (1, 1)], [4, 8])
    assert [a.shape for a in levels] == [(2 * 3 * 3, 4), (3, 4)]
    first = levels[0]
    # cell (row 0, col 0) centre (2, 2): ratio 0.5 -> w = 8 * sqrt(.5), h = 8 / sqrt(.5)
    w, h = 8 * math.sqrt(0.5), 8 / math.sqrt(0.5)
    assert np.allclose(first[0], [2 - w / 2, 2 - h / 2, 2 + w / 2, 2 + h / 2])
    assert np.allclose(first[1], [-2, -2, 6, 6])                 # ratio 1: an 8 x 8 square
    # order: row, then column, then ratio -> index 3 is (row 0, col 1, ratio 0.5), centre (6, 2)
    assert np.allclose(first[3], [6 - w / 2, 2 - h / 2, 6 + w / 2, 2 + h / 2])
    assert np.allclose(first[9 + 1], [-2, 2, 6, 10])              # row 1, col 0, ratio 1: centre (2, 6)
    areas = B.box_area(levels[1])
    assert np.allclose(areas, 256)                               # area scale^2 whatever the ratio
    widths = levels[1][:, 2] - levels[1][:, 0]
    heights = levels[1][:, 3] - levels[1][:, 1]
    assert np.allclose(widths / heights, [0.5, 1, 2])             # ratio = width / height
    with pytest.raises(ValueError, match="one scale, feature shape and stride per level"):
        B.generate_anchors([8], [1], [(2, 2), (1, 1)], [4, 8])


def test_clip_and_remove_small():
    boxes = np.array([[-3.0, 2, 12, 30], [1, 1, 1.5, 9], [2, 2, 6, 6]])
    assert B.clip_boxes(boxes, 20, 10).tolist() == [[0, 2, 10, 20], [1, 1, 1.5, 9], [2, 2, 6, 6]]
    assert B.remove_small_boxes(boxes, 1.0).tolist() == [0, 2]
    assert B.remove_small_boxes(boxes, 4.0).tolist() == [0, 2]
    assert B.remove_small_boxes(boxes, 4.5).tolist() == [0]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"box_iou: boxes2 must have shape \(N, 4\).*\(3, 5\)"):
        B.box_iou(np.zeros((2, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"nms: scores must have shape \(2,\)"):
        B.nms(np.zeros((2, 4)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="mask_iou"):
        B.mask_iou(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))


def test_mask_iou_with_an_empty_stack_is_an_empty_matrix():
    masks = np.zeros((2, 5, 6), dtype=bool)
    assert B.mask_iou(masks[:0], masks).shape == (0, 2)
    assert B.mask_iou(masks, masks[:0]).shape == (2, 0)
