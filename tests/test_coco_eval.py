"""COCO mAP: hand-worked cases always; pycocotools' COCOeval on many random cases when importable.
VOC-style AP (compute_ap) by hand."""
import contextlib
import copy
import io
import json
import warnings

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv.data import DataFormatError
from tinygrad_cv.data import coco_mask as cm
from tinygrad_cv.metrics import coco_evaluate, compute_ap, to_coco_results, voc_ap

STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def _dataset(annotations, images=((1, 100, 100),), categories=(1,)):
    """A COCO ground truth; annotations are (image_id, category_id, [x, y, w, h], iscrowd) and get
    ids from 1, area w * h and a rectangle polygon as segmentation."""
    anns = []
    for i, (image_id, category_id, (x, y, w, h), crowd) in enumerate(annotations, 1):
        anns.append({"id": i, "image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h],
                     "area": w * h, "iscrowd": crowd, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    return {"images": [{"id": i, "height": h, "width": w} for i, h, w in images],
            "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in categories]}


def _det(image_id, category_id, box, score):
    return {"image_id": image_id, "category_id": category_id, "bbox": list(box), "score": score}


def _evaluate(gt, dets, iou_type="bbox"):
    return coco_evaluate(gt, dets, iou_type=iou_type, verbose=False)


# --------------------------------------------------------------------------- hand cases
def test_perfect_match_gives_one_everywhere_defined():
    gt = _dataset([(1, 1, (10, 10, 20, 20), 0), (1, 1, (40, 40, 50, 50), 0)])
    stats = _evaluate(gt, [_det(1, 1, (10, 10, 20, 20), 0.9), _det(1, 1, (40, 40, 50, 50), 0.8)])
    assert list(stats) == STAT_NAMES
    # one small (area 400 < 32^2) and one medium (2500) object; no large one: -1 there
    expected = dict.fromkeys(STAT_NAMES, 1.0) | {"APl": -1.0, "ARl": -1.0, "AR1": 0.5}
    assert stats == pytest.approx(expected)


def test_single_match_at_iou_072():
    # IoU = 72 / 100: a match at the thresholds .50, .55, .60, .65, .70 (5 of 10), a miss above.
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0)])
    stats = _evaluate(gt, [_det(1, 1, (0, 0, 10, 7.2), 0.9)])
    assert stats["AP"] == pytest.approx(0.5)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == 0.0
    assert stats["AR100"] == pytest.approx(0.5) and stats["APs"] == pytest.approx(0.5)
    assert stats["APm"] == -1.0 and stats["APl"] == -1.0


def test_one_true_positive_and_one_low_scored_false_positive_give_51_over_101():
    # Two ground truths. Ranked: TP (recall 0.5, precision 1), then FP (recall 0.5, precision 0.5).
    # The envelope keeps precision 1 up to recall 0.5, so the 51 recall levels 0, .01, ..., .50 read 1
    # and the 50 levels above 0.5 are never reached and read 0: AP = 51/101 at every IoU threshold.
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0), (1, 1, (50, 50, 10, 10), 0)])
    stats = _evaluate(gt, [_det(1, 1, (0, 0, 10, 10), 0.9), _det(1, 1, (80, 0, 10, 10), 0.1)])
    assert stats["AP"] == pytest.approx(51 / 101)
    assert stats["AP50"] == pytest.approx(51 / 101) and stats["AR100"] == pytest.approx(0.5)


def test_detection_inside_a_crowd_region_is_ignored_not_false():
    boxes = [(1, 1, (0, 0, 10, 10), 0), (1, 1, (20, 20, 40, 40), 1)]
    dets = [_det(1, 1, (0, 0, 10, 10), 0.9), _det(1, 1, (22, 22, 8, 8), 0.95)]
    # crowd "IoU" = intersection / area(detection) = 1: the detection is matched to the crowd, ignored
    assert _evaluate(_dataset(boxes), dets)["AP"] == pytest.approx(1.0)
    # the same region not marked crowd: IoU 64/1600, so the top-scored detection is a false positive
    # and the region a missed object: precision 0, then 0.5 at recall 0.5; the envelope reads 0.5 at
    # the 51 recall levels up to 0.5 and 0 above
    not_crowd = [boxes[0], (1, 1, (20, 20, 40, 40), 0)]
    assert _evaluate(_dataset(not_crowd), dets)["AP50"] == pytest.approx(0.5 * 51 / 101)


def test_image_without_instances():
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0)], images=((1, 50, 50), (2, 50, 50)))
    tp = _det(1, 1, (0, 0, 10, 10), 0.8)
    assert _evaluate(gt, [tp])["AP"] == pytest.approx(1.0)
    # a detection on the empty image is a false positive; scored above the TP it halves precision
    assert _evaluate(gt, [tp, _det(2, 1, (0, 0, 10, 10), 0.9)])["AP"] == pytest.approx(0.5)
    assert _evaluate(gt, [tp, _det(2, 1, (0, 0, 10, 10), 0.7)])["AP"] == pytest.approx(1.0)
    empty = _dataset([], images=((1, 50, 50),))
    assert set(_evaluate(empty, [_det(1, 1, (0, 0, 5, 5), 0.5)]).values()) == {-1.0}


def test_categories_absent_from_the_ground_truth():
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0)], categories=(1, 2))
    tp = _det(1, 1, (0, 0, 10, 10), 0.5)
    # category 2 is listed but has no instance: undefined AP, left out of the mean, as in pycocotools
    assert _evaluate(gt, [tp, _det(1, 2, (0, 0, 10, 10), 0.9)])["AP"] == pytest.approx(1.0)
    # category 1 predicted where there is none of it is a false positive for category 1
    assert _evaluate(gt, [tp, _det(1, 1, (60, 60, 10, 10), 0.9)])["AP"] == pytest.approx(0.5)
    with pytest.warns(UserWarning, match=r"categories \[7\] are ignored"):
        assert _evaluate(gt, [tp, _det(1, 7, (0, 0, 10, 10), 0.9)])["AP"] == pytest.approx(1.0)


def test_max_detections_and_area_field():
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0), (1, 1, (50, 50, 10, 10), 0)])
    stats = _evaluate(gt, [_det(1, 1, (0, 0, 10, 10), 0.9), _det(1, 1, (50, 50, 10, 10), 0.8)])
    assert stats["AR1"] == 0.5 and stats["AR10"] == 1.0
    # the ground truth's 'area' field, not its box, decides small / medium / large
    gt["annotations"][0]["area"] = gt["annotations"][1]["area"] = 5000.0
    stats = _evaluate(gt, [_det(1, 1, (0, 0, 10, 10), 0.9), _det(1, 1, (50, 50, 10, 10), 0.8)])
    assert stats["APm"] == pytest.approx(1.0) and stats["APs"] == -1.0


def test_more_than_100_detections_are_cut():
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0)])
    decoys = [_det(1, 1, (80, 80, 5, 5), 0.5 + i / 1000) for i in range(100)]
    assert _evaluate(gt, decoys + [_det(1, 1, (0, 0, 10, 10), 0.4)])["AR100"] == 0.0
    assert _evaluate(gt, decoys[1:] + [_det(1, 1, (0, 0, 10, 10), 0.4)])["AR100"] == 1.0


def test_segm_with_polygon_ground_truth_and_json_files(tmp_path, capsys):
    gt = _dataset([(1, 1, (10, 10, 20, 20), 0)], images=((1, 40, 40),))
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[10:30, 10:25] = 1                                         # 300 of the 400 pixels: IoU 0.75
    dets = [{"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": cm.encode(mask)}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    stats = coco_evaluate(str(tmp_path / "gt.json"), str(tmp_path / "dt.json"), iou_type="segm")
    # matched at .50 .. .75 (6 thresholds): linspace gives exactly 0.75, and 300/400 = 0.75
    assert stats["AP"] == pytest.approx(0.6) and stats["AP75"] == pytest.approx(1.0)
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.600" in printed
    assert len(printed.strip().splitlines()) == 12


def test_to_coco_results_converts_boxes_and_masks():
    masks = np.zeros((2, 6, 8), dtype=np.float32)
    masks[0, 1:3, 2:5] = 0.9
    masks[1, 4:, :] = 0.3                                        # below the 0.5 threshold: empty
    results = to_coco_results(5, tg.Tensor([[2.0, 1.0, 5.0, 3.0], [0.0, 4.0, 8.0, 6.0]]),
                              np.array([3, 1]), [0.8, 0.6], masks=masks)
    assert results[0]["bbox"] == [2.0, 1.0, 3.0, 2.0] and results[1]["bbox"] == [0.0, 4.0, 8.0, 2.0]
    assert [r["category_id"] for r in results] == [3, 1] and results[0]["image_id"] == 5
    assert isinstance(results[0]["category_id"], int) and results[0]["score"] == pytest.approx(0.8)
    assert (cm.decode(results[0]["segmentation"]) == (masks[0] > 0.5)).all()
    assert cm.area(results[1]["segmentation"]) == 0
    json.dumps(results)                                          # plain JSON types only
    with pytest.raises(ValueError, match="2 boxes, 1 labels"):
        to_coco_results(5, np.zeros((2, 4)), [1], [0.5, 0.5])


def test_evaluating_our_own_results_round_trip():
    gt = _dataset([(1, 1, (2, 2, 10, 10), 0), (1, 2, (20, 20, 15, 10), 0)], images=((1, 40, 40),),
                  categories=(1, 2))
    boxes = np.array([[2, 2, 12, 12], [20, 20, 35, 30]], dtype=np.float64)
    masks = np.zeros((2, 40, 40), dtype=bool)
    masks[0, 2:12, 2:12] = masks[1, 20:30, 20:35] = True
    results = to_coco_results(1, boxes, [1, 2], [0.9, 0.8], masks)
    assert _evaluate(gt, results, "bbox")["AP"] == pytest.approx(1.0)
    assert _evaluate(gt, results, "segm")["AP"] == pytest.approx(1.0)


def test_bad_input_raises():
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0)])
    with pytest.raises(ValueError, match="iou_type must be 'segm' or 'bbox'"):
        coco_evaluate(gt, [], iou_type="keypoints")
    with pytest.raises(ValueError, match="prediction 0 is for image 9"):
        _evaluate(gt, [_det(9, 1, (0, 0, 1, 1), 0.5)])
    with pytest.raises(ValueError, match=r"prediction 0 lacks \['score'\]"):
        _evaluate(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])
    with pytest.raises(ValueError, match=r"lacks \['segmentation'\]"):
        _evaluate(gt, [_det(1, 1, (0, 0, 1, 1), 0.5)], "segm")
    with pytest.raises(ValueError, match="'images', 'annotations' and 'categories'"):
        coco_evaluate({"images": []}, [])
    assert _evaluate(gt, [])["AP"] == 0.0                       # no predictions at all: nothing found


@pytest.mark.parametrize("change, iou_type, message", [
    (lambda d: d["images"][0].pop("height"), "bbox", r"images\[0\] = .* needs an integer 'id' and positive"),
    (lambda d: d["annotations"][0].update(bbox=[0, 0, -5, 10]), "bbox", r"annotation 1 .*'bbox' must be"),
    (lambda d: d["annotations"][0].update(iscrowd=2), "bbox", r"annotation 1 .*'iscrowd' must be 0 or 1"),
    (lambda d: d["annotations"][0].pop("segmentation"), "segm", r"annotation 1 of image 1 has no polygon or RLE"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [4, 4], "counts": [16]}), "segm",
     r"annotation 1 of image 1: its RLE size \[4, 4\] is not the image's"),
    (lambda d: d["annotations"][0].update(segmentation=cm.encode(np.ones((100, 100), np.uint8)) | {"counts": "0"}),
     "segm", r"annotation 1 of image 1: .*runs add up to 0 pixels"),
    (lambda d: d["annotations"].append("x"), "bbox", r"annotations\[1\] is a str"),
])
def test_malformed_ground_truth_names_the_record(change, iou_type, message):
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0)])
    change(gt)
    with pytest.raises(DataFormatError, match=message):
        coco_evaluate(gt, [], iou_type=iou_type, verbose=False)


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(score="high"), r"prediction 0 \(image 1\): 'score' must be a finite number"),
    (lambda r: r.update(score=float("nan")), r"prediction 0 \(image 1\): 'score' must be a finite number"),
    (lambda r: r.update(bbox=[0, 0, 5]), r"prediction 0 \(image 1\): 'bbox' must be \[x, y, w, h\]"),
    (lambda r: r.update(segmentation=cm.encode(np.ones((40, 40), np.uint8))),
     r"prediction 0 \(image 1\): its RLE size \[40, 40\] is not the image's \[100, 100\]"),
])
def test_malformed_predictions_are_named(change, message):
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0)])
    result = _det(1, 1, (0, 0, 10, 10), 0.9) | {"segmentation": cm.encode(np.ones((100, 100), np.uint8))}
    change(result)
    with pytest.raises(DataFormatError, match=message):
        coco_evaluate(gt, [result], iou_type="segm", verbose=False)


def test_unreadable_json_is_named(tmp_path):
    (tmp_path / "gt.json").write_text("{broken")
    with pytest.raises(DataFormatError, match=r"cannot read the ground truth '.*gt.json' as JSON"):
        coco_evaluate(tmp_path / "gt.json", [], verbose=False)


# --------------------------------------------------------------------------- pycocotools (extra oracle)
def _ellipse(h, w, cx, cy, rx, ry):
    r, c = np.mgrid[:h, :w]
    return (((c + 0.5 - cx) / rx) ** 2 + ((r + 0.5 - cy) / ry) ** 2 <= 1).astype(np.uint8)


def _result(rng, image_id, category_id, mask):
    rle = cm.encode(mask)
    box = np.array(cm.to_bbox(rle))
    if rng.random() < 0.5:
        box[:2] += rng.normal(0, 1.5, 2)
    score = float(np.round(rng.random(), 1)) if rng.random() < 0.3 else float(rng.random())  # some ties
    return {"image_id": image_id, "category_id": category_id, "score": score, "bbox": box.tolist(),
            "segmentation": rle}


def _random_case(rng, n_images=4, n_categories=3):
    """Ellipses of all sizes as polygons, RLE or crowd (uncompressed RLE); detections near them with
    various quality and sometimes the wrong category, random false positives, and now and then more
    than 100 detections on an image. One listed category never occurs; one predicted is not listed."""
    images, annotations, results = [], [], []
    for image_id in range(3, 3 + 5 * n_images, 5):
        h, w = (int(v) for v in rng.integers(60, 200, 2))
        images.append({"id": image_id, "height": h, "width": w})
        for _ in range(rng.integers(0, 8)):
            category = int(rng.integers(1, n_categories + 1))
            size, quality = rng.choice([8, 25, 90]), rng.choice([0.03, 0.1, 0.3])
            rx, ry = rng.uniform(size / 3, size, 2)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            crowd = bool(rng.random() < 0.15)
            if rng.random() < 0.5 and not crowd:
                angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
                segmentation = [np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], 1).ravel().tolist()]
                rle = cm.from_polygons(segmentation, h, w)
            else:
                rle = cm.encode(_ellipse(h, w, cx, cy, rx, ry))
                segmentation = {"size": [h, w], "counts": cm.rle_counts(rle).tolist()} if crowd else rle
            if cm.area(rle) == 0:
                continue
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": cm.to_bbox(rle).tolist(), "area": float(cm.area(rle)),
                                "iscrowd": int(crowd), "segmentation": segmentation})
            for _ in range(rng.integers(0, 3)):
                jitter, stretch = rng.normal(0, quality, 2) * (rx, ry), rng.uniform(1 - quality, 1 + quality, 2)
                mask = _ellipse(h, w, cx + jitter[0], cy + jitter[1], rx * stretch[0], ry * stretch[1])
                label = category if rng.random() < 0.85 else int(rng.integers(1, n_categories + 3))
                results.append(_result(rng, image_id, label, mask))
        for _ in range(rng.integers(0, 3) if rng.random() < 0.85 else 110):
            mask = _ellipse(h, w, rng.uniform(0, w), rng.uniform(0, h), *rng.uniform(2, 40, 2))
            results.append(_result(rng, image_id, int(rng.integers(1, n_categories + 2)), mask))
    order = rng.permutation(len(results))
    categories = [{"id": c, "name": str(c)} for c in range(1, n_categories + 2)]
    return ({"images": images, "annotations": annotations, "categories": categories},
            [results[i] for i in order])


def _pycocotools_stats(gt, results, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_agrees_with_pycocotools_on_random_cases(iou_type):
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng({"bbox": 0, "segm": 1}[iou_type])
    seen = []
    for _ in range(15):
        gt, results = _random_case(rng)
        if iou_type == "bbox":
            results = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                      # predictions of the unlisted category
            ours = _evaluate(gt, results, iou_type)
        theirs = _pycocotools_stats(gt, results, iou_type)
        assert np.allclose([ours[name] for name in STAT_NAMES], theirs, atol=1e-12, rtol=0)
        seen.append(theirs)
    seen = np.array(seen)
    assert (seen[:, 0] > 0.05).sum() >= 10 and (seen[:, 5] > -1).any()   # the cases are not trivial


# --------------------------------------------------------------------------- AP by object size
SIDES = {"small": (6, 31), "medium": (33, 95), "large": (97, 150)}
"""Square sides whose areas fall in one COCO size class only: small < 32^2 <= medium < 96^2 <= large."""


def _sized_case(rng, sizes, iou_type, n_images=3):
    """Squares of the given size classes only (the other ranges are empty), as polygons; detections are
    jittered copies (some of the wrong category), missed objects and false positives of any size."""
    images, annotations, results = [], [], []
    for image_id in range(1, n_images + 1):
        images.append({"id": image_id, "height": 200, "width": 200})
        for _ in range(rng.integers(1, 5) if sizes else 0):
            side = float(rng.integers(*SIDES[sizes[rng.integers(len(sizes))]], endpoint=True))
            x, y = (float(v) for v in rng.uniform(0, 200 - side, 2))
            category = int(rng.integers(1, 3))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [x, y, side, side], "area": side * side, "iscrowd": 0,
                                "segmentation": [[x, y, x + side, y, x + side, y + side, x, y + side]]})
            if rng.random() < 0.8:
                dx, dy, ds = rng.normal(0, 0.08 * side, 3)
                results.append(_square_result(image_id, category if rng.random() < 0.9 else 3 - category,
                                              (x + dx, y + dy, max(side + ds, 2.0)), float(rng.random())))
        for _ in range(rng.integers(0, 3)):
            side = float(rng.uniform(4, 140))
            x, y = (float(v) for v in rng.uniform(0, 200 - side, 2))
            results.append(_square_result(image_id, int(rng.integers(1, 3)), (x, y, side), float(rng.random())))
    if iou_type == "bbox":
        results = [{k: v for k, v in r.items() if k != "segmentation"} for r in results]
    return ({"images": images, "annotations": annotations,
             "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}, results)


def _square_result(image_id, category_id, square, score):
    x, y, side = (min(max(v, 0.0), 199.0) for v in square)
    side = min(side, 200 - max(x, y))
    rle = cm.from_polygons([[x, y, x + side, y, x + side, y + side, x, y + side]], 200, 200)
    return {"image_id": image_id, "category_id": category_id, "score": score, "bbox": [x, y, side, side],
            "segmentation": rle}


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("sizes", [(), ("small",), ("medium",), ("large",), ("small", "large"),
                                   ("small", "medium", "large")])
def test_ap_by_size_is_undefined_exactly_where_no_object_has_that_size(sizes, iou_type):
    rng = np.random.default_rng(len(sizes) * 7 + sum(map(len, sizes)) + (iou_type == "segm"))
    gt, results = _sized_case(rng, list(sizes), iou_type)
    ours = _evaluate(gt, results, iou_type)
    for key, size in (("APs", "small"), ("APm", "medium"), ("APl", "large")):
        if size in sizes:
            assert 0 <= ours[key] <= 1 and ours[key.replace("AP", "AR")] >= 0
        else:
            assert ours[key] == -1.0 and ours[key.replace("AP", "AR")] == -1.0
    if sizes:
        assert ours["AP"] > 0                                        # the cases are not trivial
    pytest.importorskip("pycocotools")
    theirs = _pycocotools_stats(gt, results, iou_type)
    np.testing.assert_allclose([ours[name] for name in STAT_NAMES], theirs, atol=1e-12, rtol=0)


def test_ap_by_size_by_hand_with_an_object_on_the_small_medium_boundary():
    # a small square found exactly; a medium one (area 50^2) missed, its detection shifted to IoU 1/3;
    # a square of area exactly 32^2, found exactly: COCO's ranges include their bounds, so it is both small
    # and medium; no large object
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0), (1, 1, (40, 40, 50, 50), 0), (1, 1, (120, 0, 32, 32), 0)],
                  images=((1, 200, 200),))
    dets = [_det(1, 1, (0, 0, 10, 10), 0.9), _det(1, 1, (65, 40, 50, 50), 0.8), _det(1, 1, (120, 0, 32, 32), 0.7)]
    stats = _evaluate(gt, dets)
    assert stats["APs"] == pytest.approx(1.0) and stats["APl"] == -1.0
    # medium: the boundary square (score 0.7) is the only true positive, after a false positive (0.8), and
    # recall 1/2: precision 1/2 at recalls 0 .. 0.5 (51 of 101 levels), 0 beyond
    assert stats["APm"] == pytest.approx(51 / 101 * 0.5)
    assert stats["ARs"] == pytest.approx(1.0) and stats["ARm"] == pytest.approx(0.5)
    pytest.importorskip("pycocotools")
    np.testing.assert_allclose([stats[name] for name in STAT_NAMES], _pycocotools_stats(gt, dets, "bbox"),
                               atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- VOC-style AP
def test_voc_ap_by_hand():
    # recall 0.5 at precision 1, a false positive, then recall 1 at precision 2/3:
    # envelope 1 on (0, .5], 2/3 on (.5, 1] -> 0.5 + 1/3
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(5 / 6)
    assert voc_ap([], []) == 0.0


def test_compute_ap_duplicate_detection_is_a_false_positive():
    gt_boxes = np.array([[0.0, 0, 10, 10]])
    preds = np.array([[0.0, 0, 10, 10], [0.0, 0, 10, 10]])
    ap, precisions, recalls, overlaps = compute_ap(gt_boxes, [1], None, preds, [1, 1], [0.9, 0.8], None)
    assert ap == 1.0 and precisions.tolist() == [1.0, 0.5] and recalls.tolist() == [1.0, 1.0]
    assert overlaps.shape == (2, 1)


def test_compute_ap_with_masks_classes_and_order():
    masks = np.zeros((2, 10, 10), dtype=bool)
    masks[0, :5, :5] = masks[1, 5:, 5:] = True
    gt_boxes = np.array([[0.0, 0, 5, 5], [5.0, 5, 10, 10]])
    # best-scored prediction has the right mask but the wrong class: a false positive;
    # then a correct one for ground truth 1, then one with IoU 0.4 for ground truth 0 (a miss)
    pred_masks = np.stack([masks[1], masks[1], np.pad(masks[0][:, :2], ((0, 0), (0, 8)))])
    ap, precisions, recalls, _ = compute_ap(gt_boxes, [1, 2], masks, gt_boxes[[1, 1, 0]], [1, 2, 1],
                                            [0.9, 0.8, 0.7], pred_masks)
    assert precisions.tolist() == pytest.approx([0, 0.5, 1 / 3])
    assert recalls.tolist() == [0, 0.5, 0.5]
    assert ap == pytest.approx(0.25)                              # envelope 0.5 up to recall 0.5
    assert np.isnan(compute_ap(np.zeros((0, 4)), [], None, gt_boxes, [1, 1], [0.5, 0.4], None)[0])


def test_equal_iou_goes_to_the_later_ground_truth():
    # d1 overlaps g1 and g2 equally (IoU 80/120); pycocotools keeps the later one (its test is >=),
    # which leaves g1 free for d2 (IoU 1 with g1, 60/140 with g2): two true positives at IoU 0.5.
    # Taking g1 for d1 instead would make d2 a false positive and AP50 51/101.
    gt = _dataset([(1, 1, (0, 0, 10, 10), 0), (1, 1, (4, 0, 10, 10), 0)])
    dets = [_det(1, 1, (2, 0, 10, 10), 0.9), _det(1, 1, (0, 0, 10, 10), 0.8)]
    assert _evaluate(gt, dets)["AP50"] == pytest.approx(1.0)
    pytest.importorskip("pycocotools")
    assert _pycocotools_stats(gt, dets, "bbox")[1] == pytest.approx(1.0)
