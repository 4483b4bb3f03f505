"""Metrics against hand-worked examples and naive loops written independently of the vectorised code."""
import functools
import math

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import metrics
from conftest import DEVICES

# The Planet anchor: probabilities (sigmoid=False) and multi-hot targets.
PROBS = np.array([[.9, .3, .1, .05], [.1, .1, .1, .1], [.25, .8, .15, .6]])
TARGS = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]])


def fbeta_naive(probs, targs, beta, thresh):
    """F-beta per sample with Python loops, averaged; a row with no true positive scores 0."""
    scores = []
    for row, truth in zip(probs, targs):
        pred = [p > thresh for p in row]
        tp = sum(1 for p, t in zip(pred, truth) if p and t)
        n_pred, n_true = sum(pred), sum(truth)
        if tp == 0:
            scores.append(0.0)
            continue
        prec, rec = tp / n_pred, tp / n_true
        scores.append((1 + beta ** 2) * prec * rec / (beta ** 2 * prec + rec))
    return sum(scores) / len(scores)


def test_fbeta_planet_anchor_by_hand():
    # thresh 0.2 -> predictions [1,1,0,0], [0,0,0,0], [1,1,0,1]
    # row 0: TP 1, prec 1/2, rec 1/2: F2 = (1/4) / (4/2 + 1/2) * 5 = 0.5
    # row 1: empty in prediction and truth: 0
    # row 2: TP 2, prec 2/3, rec 1:   F2 = (2/3) / (8/3 + 1) * 5 = 10/11
    # mean = (0.5 + 0 + 10/11) / 3 = 0.469697
    f2 = metrics.fbeta(tg.tensor(PROBS), tg.tensor(TARGS), beta=2, thresh=0.2, sigmoid=False)
    assert f2 == pytest.approx((0.5 + 10 / 11) / 3, abs=1e-6)
    assert f2 == pytest.approx(0.469697, abs=1e-6)


def test_accuracy_multi_planet_anchor_by_hand():
    # thresh 0.2: row 0 matches 2 of 4 labels, row 1 all 4, row 2 three of 4: 9 / 12 = 0.75
    assert metrics.accuracy_multi(PROBS, TARGS, thresh=0.2, sigmoid=False) == pytest.approx(0.75)


def test_sigmoid_true_applies_to_logits():
    logits = np.log(PROBS / (1 - PROBS))
    assert metrics.fbeta(logits, TARGS) == pytest.approx(0.469697, abs=1e-6)
    assert metrics.accuracy_multi(logits, TARGS, thresh=0.2) == pytest.approx(0.75)


def test_accuracy_thresh_is_fastai_v1_name_of_accuracy_multi():
    # same hand anchor as above, through the v1 name and its v1 keywords
    assert metrics.accuracy_thresh(PROBS, TARGS, thresh=0.2, sigmoid=False) == pytest.approx(0.75)


def test_fbeta_thresh_and_beta_are_keyword_only():
    # fastai v1 takes (thresh, beta) positionally in the other order: a positional number is refused
    with pytest.raises(TypeError):
        metrics.fbeta(PROBS, TARGS, 0.2)
    assert metrics.fbeta(PROBS, TARGS, thresh=0.2, beta=2, sigmoid=False) == pytest.approx(0.469697, abs=1e-6)


@pytest.mark.parametrize("beta,thresh", [(2, 0.3), (1, 0.5), (0.5, 0.1)])
def test_fbeta_matches_naive_loop(beta, thresh):
    rng = np.random.default_rng(4)
    probs, targs = rng.random((20, 6)), (rng.random((20, 6)) > 0.6).astype(np.int64)
    expected = fbeta_naive(probs, targs, beta, thresh)
    got = metrics.fbeta(probs, targs, beta=beta, thresh=thresh, sigmoid=False)
    assert got == pytest.approx(expected, abs=1e-7)


def test_partial_fbeta_is_a_metric_named_after_the_function():
    metric = metrics.as_metric(functools.partial(metrics.fbeta, thresh=0.3, sigmoid=False))
    assert metric.name == "fbeta"
    metric.accumulate(PROBS, TARGS)
    assert metric.value == pytest.approx(fbeta_naive(PROBS, TARGS, 2, 0.3), abs=1e-7)


def test_accuracy_and_error_rate():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.2, 0.9], [1.0, 0.0, 0.0]])
    targs = np.array([0, 1, 1, 2])  # arg-maxes 0, 1, 2, 0: two of four right
    assert metrics.accuracy(logits, targs) == 0.5
    assert metrics.error_rate(logits, targs) == 0.5


@pytest.mark.parametrize("device", DEVICES)
def test_accuracy_over_pixels_on_each_device(device):
    rng = np.random.default_rng(5)
    logits, targs = rng.standard_normal((2, 3, 4, 5)), rng.integers(0, 3, (2, 4, 5))
    expected = np.mean([np.argmax(logits[n, :, i, j]) == targs[n, i, j]
                        for n in range(2) for i in range(4) for j in range(5)])
    got = metrics.accuracy(tg.tensor(logits, device=device), tg.tensor(targs, device=device), axis=1)
    assert got == pytest.approx(expected)


def test_avg_metric_weights_batches_by_size():
    metric = metrics.as_metric(metrics.accuracy)
    metric.accumulate(np.array([[1.0, 0], [1, 0], [1, 0]]), np.array([0, 1, 1]))  # 1/3 of 3 samples
    metric.accumulate(np.array([[0.0, 1]]), np.array([1]))                      # 1/1 of 1 sample
    assert metric.value == pytest.approx(2 / 4)
    metric.reset()
    assert metric.value is None


@pytest.mark.parametrize("call,message", [
    (lambda: metrics.accuracy(np.zeros((4, 3)), np.zeros(5)), r"shape \(4,\).*targets have shape \(5,\)"),
    (lambda: metrics.fbeta(np.zeros((4, 3)), np.zeros((4, 2))), r"fbeta: .* \(4, 3\) and \(4, 2\)"),
    (lambda: metrics.accuracy_multi(np.zeros(4), np.zeros(4)), r"accuracy_multi: .*\(batch, classes\)"),
    (lambda: metrics.acc_ignore(np.zeros((2, 3, 4, 4)), np.zeros((2, 4, 5)), 0),
     r"acc_ignore: .*\(2, 4, 5\)"),
    (lambda: metrics.MeanIoU().accumulate(np.zeros((1, 3, 2, 2)), np.full((1, 2, 2), 7)), "targets range"),
    (lambda: metrics.as_metric(3), "expected a Metric or a function"),
])
def test_wrong_shapes_raise_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ----------------------------------------------------------------------------- segmentation
def one_hot_logits(labels, n_classes):
    """Logits (N, C, H, W) whose arg-max is ``labels`` (N, H, W)."""
    return np.moveaxis(np.eye(n_classes)[labels], -1, 1) * 5.0


def test_acc_ignore_by_hand_and_all_void():
    targ = np.array([[[0, 1], [2, 2]]])       # void code 2: two pixels count
    pred = one_hot_logits(np.array([[[0, 0], [2, 1]]]), 3)
    assert metrics.acc_ignore(pred, targ, void_code=2) == 0.5
    all_void = metrics.acc_ignore(pred, np.full((1, 2, 2), 2), void_code=2)
    assert all_void == 0.0 and not math.isnan(all_void)


def test_acc_ignore_class_weights_by_counted_pixels():
    metric = metrics.AccIgnore(void_code=9)
    metric.accumulate(one_hot_logits(np.array([[[0, 1]]]), 2), np.array([[[0, 9]]]))  # 1 of 1 counted
    metric.accumulate(one_hot_logits(np.array([[[0, 0]]]), 2), np.array([[[1, 1]]]))  # 0 of 2 counted
    assert metric.value == pytest.approx(1 / 3)
    metric.reset()
    metric.accumulate(one_hot_logits(np.array([[[0, 1]]]), 2), np.array([[[9, 9]]]))
    assert metric.value == 0.0


# targets and predictions used for the hand-worked IoU/Dice below
SEG_TARG = np.array([[[0, 0, 1], [1, 2, 2]]])
SEG_PRED = np.array([[[0, 1, 1], [1, 2, 0]]])


def confusion_naive(pred, targ, n, ignore=None):
    out = np.zeros((n, n), dtype=np.int64)
    for p, t in zip(pred.reshape(-1), targ.reshape(-1)):
        if t != ignore:
            out[t, p] += 1
    return out


def test_confusion_matrix_matches_naive_count():
    rng = np.random.default_rng(6)
    pred, targ = rng.integers(0, 4, (3, 5, 5)), rng.integers(0, 5, (3, 5, 5))
    np.testing.assert_array_equal(metrics.confusion_matrix(pred, targ, 5), confusion_naive(pred, targ, 5))
    np.testing.assert_array_equal(metrics.confusion_matrix(pred, targ, 5, ignore_index=4),
                                  confusion_naive(pred, targ, 5, ignore=4))


def test_mean_iou_and_dice_by_hand():
    # class 0: TP 1, FP 1 (a 2 predicted as 0), FN 1  -> IoU 1/3, Dice 2/4
    # class 1: TP 2, FP 1, FN 0                        -> IoU 2/3, Dice 4/5
    # class 2: TP 1, FP 0, FN 1                        -> IoU 1/2, Dice 2/3
    iou, dice = metrics.MeanIoU(), metrics.DiceMulti()
    for metric in (iou, dice):
        metric.accumulate(one_hot_logits(SEG_PRED, 3), SEG_TARG)
    np.testing.assert_allclose(iou.per_class, [1 / 3, 2 / 3, 1 / 2])
    assert iou.value == pytest.approx(0.5)
    np.testing.assert_allclose(dice.per_class, [0.5, 0.8, 2 / 3])
    assert dice.value == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_mean_iou_averages_only_classes_present_and_ignores_void():
    metric = metrics.MeanIoU(n_classes=4)  # class 3 never occurs
    metric.accumulate(one_hot_logits(SEG_PRED, 4), SEG_TARG)
    assert np.isnan(metric.per_class[3]) and metric.value == pytest.approx(0.5)
    void = metrics.MeanIoU(void_code=2)  # without the class-2 pixels: class 0 TP 1 FN 1; class 1 TP 2 FP 1
    void.accumulate(one_hot_logits(SEG_PRED, 3), SEG_TARG)
    np.testing.assert_allclose(void.per_class[:2], [1 / 2, 2 / 3])
    assert void.value == pytest.approx(7 / 12)


def test_epoch_accumulation_equals_one_big_batch_not_mean_of_batches():
    rng = np.random.default_rng(7)
    logits, targ = rng.standard_normal((4, 3, 6, 6)), rng.integers(0, 3, (4, 6, 6))
    whole, split = metrics.MeanIoU(), metrics.MeanIoU()
    whole.accumulate(logits, targ)
    split.accumulate(logits[:1], targ[:1])
    split.accumulate(logits[1:], targ[1:, None])  # targets may carry a channel axis of size 1
    assert split.value == pytest.approx(whole.value)


def test_binary_dice_and_iou_by_hand_with_one_or_two_channels():
    targ = np.array([[[1, 1, 0, 0]]])
    pred = np.array([[[1, 0, 1, 0]]])  # |P & T| = 1, |P| = |T| = 2, |P | T| = 3
    two_channels = one_hot_logits(pred, 2)
    one_channel = np.where(pred, 3.0, -3.0)[:, None]
    for logits in (two_channels, one_channel):
        dice, iou = metrics.Dice(), metrics.IoU()
        dice.accumulate(logits, targ)
        iou.accumulate(logits, targ)
        assert dice.value == pytest.approx(2 * 1 / 4) and iou.value == pytest.approx(1 / 3)
    empty = metrics.Dice()
    empty.accumulate(one_hot_logits(np.zeros((1, 1, 4), np.int64), 2), np.zeros((1, 1, 4)))
    assert empty.value is None


@pytest.mark.parametrize("device", DEVICES)
def test_segmentation_metrics_take_tensors_on_each_device(device):
    metric = metrics.MeanIoU()
    logits = tg.tensor(one_hot_logits(SEG_PRED, 3), device=device)
    metric.accumulate(logits, tg.tensor(SEG_TARG, device=device))
    assert metric.value == pytest.approx(0.5)
