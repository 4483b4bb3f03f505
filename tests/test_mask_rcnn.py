"""The small Mask R-CNN: anchors, targets, sampling, proposals, heads (with gradient checks in
float64), losses, mask pasting, the whole model on tiny images, evaluation and bad input (training, by
the Learner: test_mask_rcnn_learner.py).

References are independent: naive per-image / per-anchor loops, hand-worked values, np.interp.
"""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
from conftest import DEVICES
from tinygrad_cv.data import coco_mask
from tinygrad_cv.models.mask_rcnn import MaskRCNN, MaskRCNNConfig, paste_masks, prepare_images
from tinygrad_cv.models.mask_rcnn.heads import BoxHead, MaskHead
from tinygrad_cv.models.mask_rcnn.inference import select_detections
from tinygrad_cv.models.mask_rcnn.losses import box_head_losses, mask_loss, rpn_losses
from tinygrad_cv.models.mask_rcnn.rpn import RPNHead, make_anchors, propose
from tinygrad_cv.models.mask_rcnn.targets import (anchor_targets, collate_ground_truth, mask_targets,
                                                  rank_within_classes, roi_targets, sample_balanced)
from tinygrad_cv.models.mask_rcnn import load_coco_instances, score_detections
from tinygrad_cv.ops.boxes import box_iou, clip_boxes, decode_boxes, encode_boxes

SMALL = dict(image_size=32, backbone_widths=(8, 8), backbone_depths=(1, 1), anchor_scales=(8, 16),
             rpn_channels=8, box_head_units=16, mask_head_channels=8, rpn_pre_nms_top_n=100,
             rpn_post_nms_train=40, rpn_post_nms_test=20, rois_per_image=16)


def small_config(**changes):
    return MaskRCNNConfig(num_classes=3, **{**SMALL, **changes})


def square_and_disc(size=32, square=(4, 6, 16, 18), disc=(22, 20, 6)):
    """An image with a square (class 1) and a disc (class 2), and its targets."""
    yy, xx = np.mgrid[:size, :size] + 0.5
    x1, y1, x2, y2 = square
    square_mask = (xx > x1) & (xx < x2) & (yy > y1) & (yy < y2)
    cx, cy, r = disc
    disc_mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    image = np.full((size, size, 3), 30, dtype=np.uint8)
    image[square_mask] = (220, 40, 40)
    image[disc_mask] = (40, 220, 40)
    masks = np.stack([square_mask, disc_mask]).astype(np.uint8)
    return image, {"boxes": np.array([list(square), [cx - r, cy - r, cx + r, cy + r]], dtype=np.float64),
                   "labels": np.array([1, 2]), "instance_masks": masks}


def empty_targets(size=32):
    return {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, dtype=np.int64),
            "instance_masks": np.zeros((0, size, size), dtype=np.uint8)}


# --------------------------------------------------------------------------- config and anchors
def test_config_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="num_classes"):
        MaskRCNNConfig(num_classes=1)
    with pytest.raises(ValueError, match="multiple of the backbone's stride"):
        MaskRCNNConfig(image_size=100)
    assert MaskRCNNConfig().backbone_stride == 8 and MaskRCNNConfig().feature_size == 16


def test_anchors_follow_the_head_layout_row_column_scale_ratio():
    config = small_config(anchor_ratios=(0.5, 2.0))
    anchors = make_anchors(config)
    size, stride = config.feature_size, config.backbone_stride
    expected = []
    for row in range(size):
        for col in range(size):
            for scale in config.anchor_scales:
                for ratio in config.anchor_ratios:
                    w, h = scale * np.sqrt(ratio), scale / np.sqrt(ratio)
                    cx, cy = (col + 0.5) * stride, (row + 0.5) * stride
                    expected.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    np.testing.assert_allclose(anchors, expected)


def test_rpn_head_outputs_match_the_anchor_order():
    head = RPNHead(4, 6, anchors_per_cell=3)
    features = tg.randn(2, 4, 5, 7)
    logits, deltas = head(features)
    hidden = tg.functional.relu(head.conv(features))
    raw_logits, raw_deltas = head.objectness(hidden).numpy(), head.deltas(hidden).numpy()
    assert logits.shape == (2, 5 * 7 * 3) and deltas.shape == (2, 5 * 7 * 3, 4)
    for n, row, col, a in [(0, 0, 0, 0), (1, 4, 6, 2), (0, 2, 3, 1), (1, 3, 0, 2)]:
        index = (row * 7 + col) * 3 + a
        assert logits.numpy()[n, index] == pytest.approx(raw_logits[n, a, row, col])
        np.testing.assert_allclose(deltas.numpy()[n, index], raw_deltas[n, 4 * a:4 * a + 4, row, col],
                                   rtol=1e-6)


# --------------------------------------------------------------------------- sampling helpers
@given(st.lists(st.lists(st.tuples(st.integers(0, 3), st.floats(-5, 5)), min_size=6, max_size=6),
                min_size=1, max_size=5))
def test_rank_within_classes_counts_smaller_keys_of_the_same_class_in_the_row(rows):
    classes = np.array([[c for c, _ in row] for row in rows])
    keys = np.array([[k for _, k in row] for row in rows])
    rank = rank_within_classes(classes, keys, 4)
    for b in range(len(rows)):
        for i in range(6):
            same = classes[b] == classes[b, i]
            before = same & ((keys[b] < keys[b, i]) | ((keys[b] == keys[b, i]) & (np.arange(6) < i)))
            assert rank[b, i] == before.sum()


@given(st.lists(st.lists(st.integers(-1, 1), min_size=20, max_size=20), min_size=1, max_size=3),
       st.integers(1, 12), st.sampled_from([0.25, 0.5, 1.0]))
def test_sample_balanced_caps_positives_and_fills_with_negatives(rows, per_row, fraction):
    labels = np.array(rows)
    chosen = sample_balanced(labels, per_row, fraction, np.random.default_rng(0).random(labels.shape))
    assert not chosen[labels == -1].any()
    for b in range(len(rows)):
        n_pos, n_neg = (labels[b] == 1).sum(), (labels[b] == 0).sum()
        pos = (chosen[b] & (labels[b] == 1)).sum()
        assert pos == min(n_pos, int(per_row * fraction))
        assert (chosen[b] & (labels[b] == 0)).sum() == min(n_neg, per_row - pos)


def test_sample_balanced_is_random_among_candidates():
    labels = np.zeros((1, 100), dtype=np.int64)
    picks = [np.flatnonzero(sample_balanced(labels, 10, 0.5, np.random.default_rng(seed).random((1, 100))))
             for seed in range(3)]
    assert all(len(p) == 10 for p in picks)
    assert not np.array_equal(picks[0], picks[1])


# --------------------------------------------------------------------------- RPN targets
def _rpn_labels_by_loops(anchors, boxes_per_image, config):
    """Per image and per anchor, the rules written out (before sampling)."""
    labels = []
    for boxes in boxes_per_image:
        iou = box_iou(anchors, boxes) if len(boxes) else np.zeros((len(anchors), 0))
        row = []
        for a in range(len(anchors)):
            best = iou[a].max() if len(boxes) else 0.0
            is_best_of_some_box = any(iou[a, g] == iou[:, g].max() and iou[a, g] > 0
                                      for g in range(len(boxes)))
            if best >= config.rpn_positive_iou or is_best_of_some_box:
                row.append(1)
            elif best < config.rpn_negative_iou:
                row.append(0)
            else:
                row.append(-1)
        labels.append(row)
    return np.array(labels)


def test_anchor_targets_match_the_rules_per_image():
    config = small_config(rpn_anchors_per_image=10 ** 6, rpn_positive_fraction=1.0)   # no subsampling
    anchors = make_anchors(config)
    _, targets = square_and_disc()
    shifted = {**targets, "boxes": targets["boxes"][::-1] + 3,
               "instance_masks": targets["instance_masks"][::-1]}
    gt = collate_ground_truth([targets, empty_targets(), shifted], 32, 3)
    labels, box_targets = anchor_targets(anchors, gt, 3, config, np.random.default_rng(0))
    per_image = [gt.boxes[gt.image == i] for i in range(3)]
    np.testing.assert_array_equal(labels, _rpn_labels_by_loops(anchors, per_image, config))
    assert (labels[1] == 0).all()                              # no objects: every anchor is background
    for i in (0, 2):
        positive = np.flatnonzero(labels[i] == 1)
        assert positive.size >= 2
        matched = per_image[i][box_iou(anchors[positive], per_image[i]).argmax(axis=1)]
        np.testing.assert_allclose(box_targets[i, positive], encode_boxes(anchors[positive], matched))
        assert (box_targets[i, labels[i] != 1] == 0).all()


def test_anchor_targets_sample_a_fixed_number_with_at_most_half_positive():
    config = small_config(rpn_anchors_per_image=20)
    image, targets = square_and_disc()
    gt = collate_ground_truth([targets, targets], 32, 3)
    labels, _ = anchor_targets(make_anchors(config), gt, 2, config, np.random.default_rng(1))
    assert ((labels >= 0).sum(axis=1) == 20).all()
    assert ((labels == 1).sum(axis=1) <= 10).all() and ((labels == 1).sum(axis=1) > 0).all()


# --------------------------------------------------------------------------- ROI targets
def padded(rows_per_image):
    """Proposals as ``propose`` gives them: boxes (N, P, 4) and valid (N, P), P the longest list."""
    width = max(len(r) for r in rows_per_image)
    boxes, valid = np.zeros((len(rows_per_image), width, 4)), np.zeros((len(rows_per_image), width), dtype=bool)
    for i, rows in enumerate(rows_per_image):
        boxes[i, :len(rows)], valid[i, :len(rows)] = rows, True
    return boxes, valid


def test_roi_targets_add_the_ground_truth_and_label_by_iou():
    config = small_config(rois_per_image=1000, roi_positive_fraction=1.0)
    _, targets = square_and_disc()
    gt = collate_ground_truth([targets, empty_targets()], 32, 3)
    boxes, valid = padded([[[4, 6, 16, 19],      # IoU 0.92 with the square -> class 1
                            [4, 6, 10, 18],      # IoU 0.5 exactly -> positive
                            [20, 20, 30, 30]],   # overlaps the disc a little -> background
                           [[4, 6, 16, 18]]])    # the square's box, but in the empty image -> background
    rois = roi_targets(boxes, valid, gt, config, np.random.default_rng(0))
    assert rois.per_image == 5 and rois.rois.shape == (10, 5)          # 3 proposals + 2 ground-truth slots
    assert rois.valid.sum() == 6 and (rois.rois[~rois.valid, 1:] == [0, 0, 1, 1]).all()
    got = {tuple(r): (label, m) for r, label, m in
           zip(rois.rois[rois.valid].tolist(), rois.labels[rois.valid], rois.matched[rois.valid])}
    assert len(got) == 6                                    # 4 proposals + 2 ground-truth boxes
    assert got[(0, 4, 6, 16, 19)][0] == 1 and got[(0, 4, 6, 10, 18)][0] == 1
    assert got[(0, 20, 20, 30, 30)][0] == 0 and got[(1, 4, 6, 16, 18)][0] == 0
    assert got[(0, 16, 14, 28, 26)] == (2, 1)             # the disc's own box
    positive = rois.labels > 0
    np.testing.assert_array_equal(positive, rois.positive)
    assert positive.reshape(2, 5)[:, :rois.mask_slots].sum() == positive.sum()    # positives come first
    np.testing.assert_allclose(rois.box_targets[positive],
                               encode_boxes(rois.rois[positive, 1:], gt.boxes[rois.matched[positive]]))
    assert (rois.box_targets[~positive] == 0).all()


def test_roi_targets_keep_a_third_positive():
    config = small_config(rois_per_image=9, roi_positive_fraction=0.34)
    _, targets = square_and_disc()
    gt = collate_ground_truth([targets], 32, 3)
    rng = np.random.default_rng(0)
    near_objects = gt.boxes[np.arange(40) % 2] + rng.uniform(-1, 1, (40, 4))
    top_right_corner = np.array([20, 0, 28, 8]) + rng.uniform(0, 3, (40, 1))      # no object there
    boxes, valid = padded([np.concatenate([near_objects, top_right_corner])])
    rois = roi_targets(boxes, valid, gt, config, rng)
    assert len(rois.labels) == 9 and rois.valid.all() and (rois.labels > 0).sum() == 3
    assert (rois.labels[:3] > 0).all() and rois.mask_slots == 3


def test_roi_targets_are_the_same_on_a_device():
    config = small_config(rois_per_image=8)
    _, targets = square_and_disc()
    batch = [targets, empty_targets(), targets]
    gt = collate_ground_truth(batch, 32, 3)
    rng = np.random.default_rng(3)
    boxes = np.sort(rng.uniform(0, 32, (3, 12, 2, 2)), axis=2).transpose(0, 1, 3, 2).reshape(3, 12, 4)
    valid = rng.random((3, 12)) < 0.7
    on_cpu = roi_targets(boxes, valid, gt, config, np.random.default_rng(0))
    with tg.backend.count_syncs() as syncs:
        on_emu = roi_targets(tg.backend.move(boxes, "emu"), tg.backend.move(valid, "emu"),
                             collate_ground_truth(batch, 32, 3, "emu"), config, np.random.default_rng(0))
    assert syncs.count == 0
    for field in ("rois", "labels", "box_targets", "matched", "valid", "positive"):
        np.testing.assert_array_equal(tg.backend.as_host(getattr(on_emu, field)), getattr(on_cpu, field))


def test_mask_targets_crop_and_resize_the_instance_mask():
    mask = np.zeros((1, 16, 16), dtype=np.uint8)
    mask[0, 4:12, 4:12] = 1
    rois = np.array([[0, 0, 0, 16, 16], [0, 4, 4, 12, 12], [0, 4, 4, 20, 12]], dtype=np.float64)
    crops = mask_targets(mask, np.zeros(3, dtype=np.int64), rois, 4)
    assert crops.dtype == np.float32 and crops.shape == (3, 4, 4)
    np.testing.assert_array_equal(crops[0], [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(crops[1], np.ones((4, 4)))
    np.testing.assert_array_equal(crops[2], [[1, 1, 0, 0]] * 4)   # the right half of the ROI is empty


# --------------------------------------------------------------------------- proposals and detections
def test_propose_keeps_top_boxes_per_image_without_overlap():
    config = small_config(rpn_pre_nms_top_n=30, rpn_post_nms_train=7)
    anchors = make_anchors(config)
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, len(anchors)))
    deltas = rng.standard_normal((2, len(anchors), 4)) * 0.1
    proposals, valid = propose(anchors, logits, deltas, config, 7)
    assert proposals.shape == (2, 7, 4) and valid.shape == (2, 7)
    for i in range(2):
        boxes = proposals[i, valid[i]]
        assert 0 < len(boxes) <= 7 and valid[i, :len(boxes)].all()         # the valid slots come first
        iou = box_iou(boxes, boxes)
        assert (iou[~np.eye(len(boxes), dtype=bool)] <= config.rpn_nms_threshold).all()
        assert boxes.min() >= 0 and boxes.max() <= 32
        top = np.argsort(-logits[i])[:30]          # every proposal comes from the 30 best anchors
        candidates = clip_boxes(decode_boxes(anchors[top], deltas[i, top]), 32, 32)
        assert all(np.isclose(candidates, b).all(axis=1).any() for b in boxes)
        first = candidates[np.argmax(logits[i, top])]      # the best anchor's box always survives
        np.testing.assert_allclose(boxes[0], first)


def test_select_detections_runs_nms_per_class_and_per_image():
    config = small_config(max_detections=2, detection_nms_threshold=0.5)
    rois = np.array([[0, 2, 2, 12, 12], [0, 3, 3, 12, 12], [0, 2, 2, 12, 12], [1, 2, 2, 12, 12],
                     [0, 20, 20, 30, 30]], dtype=np.float64)
    probs = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7], [0.2, 0.8, 0.0], [0.96, 0.02, 0.02]])
    found = select_detections(rois, probs, np.zeros((5, 3, 4)), config, score_threshold=0.05)
    got = sorted(zip(found.image.tolist(), found.labels.tolist(), np.round(found.scores, 3).tolist()))
    # image 0: the 0.8 square overlaps the 0.9 square (same class) and goes; the circle of the same box
    # stays (another class); the last ROI's scores are under the threshold
    assert got == [(0, 1, 0.9), (0, 2, 0.7), (1, 1, 0.8)]
    np.testing.assert_allclose(found.boxes[found.image == 1], [[2, 2, 12, 12]])


def test_heads_losses_and_detection_take_zero_rois():
    features = tg.randn(2, 3, 6, 6, requires_grad=True)
    none, no_labels = np.zeros((0, 5)), np.zeros(0, dtype=np.int64)
    box_head = BoxHead(3, 3, pool_size=2, units=5, spatial_scale=0.5, sampling_ratio=2)
    mask_head = MaskHead(3, 3, pool_size=3, channels=4, spatial_scale=0.5, sampling_ratio=2)
    class_logits, deltas = box_head(features, none)
    assert class_logits.shape == (0, 3) and deltas.shape == (0, 3, 4)
    classification, box = box_head_losses(class_logits, deltas, no_labels, np.zeros((0, 4)), np.zeros(0, bool), 1.0)
    assert classification.item() == 0 and box.item() == 0
    assert mask_head(features, none).shape == (0, 3, 6, 6)
    found = select_detections(none, np.zeros((0, 3)), np.zeros((0, 3, 4)), small_config(), 0.05)
    assert found.boxes.shape == (0, 4) and found.labels.shape == (0,)


# --------------------------------------------------------------------------- pasting masks
def _paste_by_loops(mask, box, height, width):
    """Bilinear resize with np.interp, row by row then column by column, over the box's pixels."""
    size = mask.shape[0]
    x1, y1, x2, y2 = box
    out = np.zeros((height, width))
    ys = [y for y in range(height) if y1 <= y + 0.5 < y2]
    xs = [x for x in range(width) if x1 <= x + 0.5 < x2]
    if not ys or not xs:
        return out
    u_rows = [(y + 0.5 - y1) / (y2 - y1) * size - 0.5 for y in ys]
    u_cols = [(x + 0.5 - x1) / (x2 - x1) * size - 0.5 for x in xs]
    by_rows = np.stack([np.interp(u_rows, np.arange(size), mask[:, j]) for j in range(size)], axis=1)
    for i, y in enumerate(ys):
        out[y, xs] = np.interp(u_cols, np.arange(size), by_rows[i])
    return out


def test_paste_masks_is_a_bilinear_resize_into_the_box():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 6, 6))
    boxes = np.array([[2.3, 1.7, 11.2, 9.9], [0, 0, 16, 12], [-3, 5, 6, 20], [10.5, 10.5, 11.2, 11.4]])
    pasted = paste_masks(masks, boxes, 12, 16)
    for d in range(4):
        np.testing.assert_allclose(pasted[d], _paste_by_loops(masks[d], boxes[d], 12, 16), atol=1e-12)


def test_mask_target_pasted_back_recovers_the_instance():
    _, targets = square_and_disc()
    boxes = targets["boxes"]
    crops = mask_targets(targets["instance_masks"], np.arange(2), np.column_stack([np.zeros(2), boxes]), 28)
    pasted = paste_masks(crops, boxes, 32, 32) > 0.5
    truth = targets["instance_masks"].astype(bool)
    iou = (pasted & truth).sum(axis=(1, 2)) / (pasted | truth).sum(axis=(1, 2))
    assert iou.min() > 0.95


# --------------------------------------------------------------------------- losses
def test_losses_match_numpy_and_are_zero_without_positives():
    rng = np.random.default_rng(0)
    logits = tg.tensor(rng.standard_normal((2, 5)), requires_grad=True)
    deltas = tg.tensor(rng.standard_normal((2, 5, 4)))
    labels = np.array([[1, 0, -1, 0, -1], [-1, -1, 0, 1, 1]])
    targets = rng.standard_normal((2, 5, 4))
    objectness, box = rpn_losses(logits, deltas, labels, targets, beta=0.5)
    x, t = logits.numpy()[labels >= 0], (labels[labels >= 0] == 1)
    bce = np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))
    d = np.abs(deltas.numpy()[labels == 1] - targets[labels == 1])
    assert objectness.item() == pytest.approx(bce)
    assert box.item() == pytest.approx(np.mean(np.where(d < 0.5, 0.5 * d * d / 0.5, d - 0.25)))
    objectness, box = rpn_losses(logits, deltas, np.where(labels == 1, 0, labels), targets, beta=0.5)
    assert box.item() == 0 and np.isfinite(objectness.item())

    class_logits = tg.tensor(rng.standard_normal((4, 3)))
    head_deltas = tg.tensor(rng.standard_normal((4, 3, 4)))
    roi_labels, roi_targets_ = np.array([2, 0, 1, 0]), rng.standard_normal((4, 4))
    valid = np.array([True, True, True, False])                      # the last slot is empty: no loss
    classification, head_box = box_head_losses(class_logits, head_deltas, roi_labels, roi_targets_, valid, beta=1.0)
    z = class_logits.numpy()
    log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert classification.item() == pytest.approx(-log_softmax[[0, 1, 2], roi_labels[:3]].mean())
    d = np.abs(head_deltas.numpy()[[0, 2], [2, 1]] - roi_targets_[[0, 2]])
    assert head_box.item() == pytest.approx(np.mean(np.where(d < 1, 0.5 * d * d, d - 0.5)))
    _, head_box = box_head_losses(class_logits, head_deltas, np.zeros(4, dtype=np.int64), roi_targets_, valid, 1.0)
    assert head_box.item() == 0


def test_mask_loss_uses_only_the_true_class_channel():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4, 4))
    targets = (rng.random((2, 4, 4)) > 0.5).astype(np.float32)
    loss = mask_loss(tg.tensor(logits), np.array([2, 1]), targets).item()
    x = logits[[0, 1], [2, 1]]
    assert loss == pytest.approx(np.mean(np.maximum(x, 0) - x * targets + np.log1p(np.exp(-np.abs(x)))))
    background = np.concatenate([logits, rng.standard_normal((1, 3, 4, 4))])     # a slot of label 0: no loss
    assert mask_loss(tg.tensor(background), np.array([2, 1, 0]), np.concatenate([targets, targets[:1]])).item() \
        == pytest.approx(loss)
    other = logits.copy()
    other[0, 1], other[1, 2] = 50.0, -50.0                  # the other channels do not matter
    assert mask_loss(tg.tensor(other), np.array([2, 1]), targets).item() == pytest.approx(loss)


# --------------------------------------------------------------------------- gradient checks (float64)
ROIS = np.array([[0, 1.3, 0.4, 9.5, 7.2], [1, 0.0, 2.1, 5.7, 10.9], [1, 3.2, 3.3, 11.8, 8.1]])


def _double(module):
    return module.to(dtype=np.float64)


def _features():
    return tg.tensor(np.random.default_rng(1).standard_normal((2, 3, 6, 6)), requires_grad=True)


def test_gradcheck_mask_head_end_to_end():
    head = _double(MaskHead(3, num_classes=3, pool_size=3, channels=4, spatial_scale=0.5, sampling_ratio=2))
    labels = np.array([1, 2, 2])
    targets = (np.random.default_rng(2).random((3, 6, 6)) > 0.5).astype(np.float64)
    params = list(head.parameters())

    def loss(features, *_):
        return mask_loss(head(features, ROIS), labels, targets)
    assert tg.gradcheck(loss, [_features(), *params])


def test_gradcheck_box_head_with_its_losses():
    head = _double(BoxHead(3, num_classes=3, pool_size=2, units=5, spatial_scale=0.5, sampling_ratio=2))
    for layer in (head.classes, head.deltas):   # larger than the init's so the check sees real gradients
        layer.weight.data = np.random.default_rng(3).standard_normal(layer.weight.shape)
    labels, box_targets = np.array([1, 0, 2]), np.random.default_rng(4).standard_normal((3, 4))

    def loss(features, *_):
        classification, box = box_head_losses(*head(features, ROIS), labels, box_targets, np.ones(3, bool), beta=0.5)
        return classification + box * 2.0
    assert tg.gradcheck(loss, [_features(), *head.parameters()])


def test_gradcheck_rpn_head_with_its_losses():
    head = _double(RPNHead(3, 4, anchors_per_cell=2))
    for p in head.parameters():
        p.data = np.random.default_rng(5).standard_normal(p.shape) * 0.5
    labels = np.random.default_rng(6).integers(-1, 2, (2, 6 * 6 * 2))
    box_targets = np.random.default_rng(7).standard_normal((2, 6 * 6 * 2, 4))

    def loss(features, *_):
        objectness, box = rpn_losses(*head(features), labels, box_targets, beta=0.5)
        return objectness + box * 2.0
    assert tg.gradcheck(loss, [_features(), *head.parameters()])


# --------------------------------------------------------------------------- the whole model
def test_model_losses_detections_and_an_empty_image():
    config = small_config()
    model = MaskRCNN(config)
    image, targets = square_and_disc()
    images = prepare_images([image, np.full_like(image, 30)], config)
    losses = model.losses(images, [targets, empty_targets()])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    assert all(np.isfinite(v.item()) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in model.parameters())

    model.zero_grad()
    nothing = model.losses(images[1:], [empty_targets()])             # only background to learn
    assert all(nothing[k].item() == 0 for k in ("loss_rpn_box_reg", "loss_box_reg", "loss_mask"))
    assert nothing["loss_objectness"].item() > 0 and nothing["loss_classifier"].item() > 0
    sum(nothing.values()).backward()
    assert model.mask_head.conv1.weight.grad is None and model.rpn.conv.weight.grad is not None

    model.train()
    found = model.detect(images)
    assert model.training                                              # detect restores the mode
    assert len(found) == 2
    for f in found:
        n = len(f["boxes"])
        assert f["boxes"].shape == (n, 4) and f["labels"].shape == f["scores"].shape == (n,)
        assert f["masks"].shape == (n, 32, 32) and f["masks"].dtype == bool
        assert n <= config.max_detections and (np.diff(f["scores"]) <= 0).all()
        assert ((f["labels"] >= 1) & (f["labels"] < 3)).all()


@pytest.mark.parametrize("device", [d for d in DEVICES if d != "cpu"])
def test_model_gives_the_same_losses_gradients_and_detections_on_every_device(device):
    config = small_config()
    model = MaskRCNN(config)
    image, targets = square_and_disc()
    results = []
    for where in ("cpu", device):
        model.to(where)
        images = prepare_images([image, image[::-1].copy()], config, where)
        losses = model.losses(images, [targets, empty_targets()], np.random.default_rng(0))
        model.zero_grad()
        sum(losses.values()).backward()
        model.detect(images)                      # runs (an untrained model's ranking is all near-ties)
        with tg.no_grad():
            masks = model.mask_head(model.features(images), np.array([[0, 2, 3, 20, 25], [1, 8, 0, 30, 9.5]]))
        results.append(({k: v.item() for k, v in losses.items()}, model.rpn.conv.weight.grad.numpy(),
                         masks.numpy()))
    (cpu_losses, cpu_grad, cpu_masks), (losses, grad, masks) = results
    assert losses == pytest.approx(cpu_losses, rel=1e-5)
    np.testing.assert_allclose(grad, cpu_grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(masks, cpu_masks, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- data and evaluation
def write_coco(folder, samples):
    """``samples`` of (image, targets) written as a COCO instances file of 32-pixel PNGs; its path."""
    from tinygrad_cv.data import write_image
    (folder / "images").mkdir()
    images, annotations = [], []
    for i, (image, targets) in enumerate(samples):
        write_image(folder / "images" / f"{i}.png", image)
        images.append({"id": 10 + i, "file_name": f"{i}.png", "height": 32, "width": 32})
        for box, label, mask in zip(targets["boxes"], targets["labels"], targets["instance_masks"]):
            x1, y1, x2, y2 = box.tolist()
            annotations.append({"id": len(annotations) + 1, "image_id": 10 + i, "category_id": 7 * int(label),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(mask.sum()), "iscrowd": 0,
                                "segmentation": coco_mask.encode(mask)})
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 7, "name": "square"}, {"id": 14, "name": "disc"}]}))
    return path


def test_load_and_evaluate_with_category_ids(tmp_path):
    image, targets = square_and_disc()
    other, other_targets = square_and_disc(square=(18, 2, 30, 12), disc=(9, 22, 7))
    path = write_coco(tmp_path, [(image, targets), (other, other_targets)])
    samples, coco = load_coco_instances(path, tmp_path / "images")
    assert [s["image_id"] for s in samples] == [10, 11] and coco.vocab == ["background", "square", "disc"]
    np.testing.assert_array_equal(samples[1]["labels"], [1, 2])
    np.testing.assert_array_equal(samples[1]["instance_masks"], other_targets["instance_masks"])
    perfect = [{"boxes": s["boxes"], "labels": s["labels"], "scores": np.linspace(0.9, 0.8, len(s["labels"])),
                "masks": s["instance_masks"].astype(bool)} for s in samples]
    scores = score_detections(samples, perfect, coco, str(path))
    assert scores["segm"]["AP"] == pytest.approx(1.0) and scores["bbox"]["AP"] == pytest.approx(1.0)
    assert scores["voc_ap50"] == pytest.approx(1.0)
    swapped = [{**p, "labels": 3 - p["labels"]} for p in perfect]      # every class wrong
    scores = score_detections(samples, swapped, coco, str(path))
    assert scores["segm"]["AP"] == 0 and scores["voc_ap50"] == 0


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("change, message", [
    (dict(boxes=np.array([[10.0, 2, 4, 8], [0, 0, 4, 4]])), r"x2 <= x1"),
    (dict(boxes=np.array([[np.nan, 2, 4, 8], [0, 0, 4, 4]])), "NaN"),
    (dict(boxes=np.zeros((2, 5))), r"shape \(n, 4\)"),
    (dict(labels=np.array([1, 3])), r"classes in 1..2"),
    (dict(labels=np.array([1])), "2 integers"),
    (dict(instance_masks=np.zeros((2, 16, 16))), r"shape \(2, 32, 32\)"),
])
def test_bad_ground_truth_is_reported(change, message):
    _, targets = square_and_disc()
    with pytest.raises(ValueError, match=message):
        collate_ground_truth([empty_targets(), {**targets, **change}], 32, 3)


def test_bad_model_inputs_are_reported():
    config = small_config()
    model = MaskRCNN(config)
    image, targets = square_and_disc()
    with pytest.raises(ValueError, match=r"images must be a Tensor \(N, 3, 32, 32\)"):
        model.losses(tg.zeros(1, 3, 16, 16), [targets])
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        model.losses(prepare_images([image, image], config), [targets])
    with pytest.raises(ValueError, match="instance_masks"):
        model.losses(prepare_images([image], config), [{k: targets[k] for k in ("boxes", "labels")}])
    with pytest.raises(ValueError, match=r"prepare_images: expected images of shape \(N, 32, 32, 3\)"):
        prepare_images([image[:16]], config)
    with pytest.raises(ValueError, match="batch indices"):
        model.box_head(model.features(prepare_images([image], config)), np.array([[1, 0, 0, 8, 8.0]]))
    with pytest.raises(ValueError, match="unknown training stage .nothing-like-this."):
        model.set_trainable("nothing-like-this")
