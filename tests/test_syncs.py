"""No hidden synchronisation: a training step on "emu" (standing for "cuda") reads the device back once.

The emu device array counts every device-to-host read (``backend.sync_count``); a GPU stalls at each
one. A Learner step reads only its loss, after the optimiser step is queued; the loss scaler's overflow
flag and the step's device-side checks travel in that same read; clipping keeps its norm on the device.
"""
import math

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import backend
from tinygrad_cv.optim import clip_grad_norm_
from tinygrad_cv.train import Callback, GradientClip, Learner
from train_fixtures import TinyCNN, image_dls


class OnDevice:
    """A loader's (x, y) batches moved to ``device`` (host to device copies: no reads)."""

    def __init__(self, loader, device):
        self.loader, self.device = loader, device

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield x.to(self.device), y.to(self.device)


class Loaders:
    def __init__(self, train, valid):
        self.train, self.valid = train, valid


class CountSyncs(Callback):
    """The device-to-host reads of each training batch, from before_batch to after_batch."""

    def __init__(self):
        self.counts = []

    def before_batch(self):
        self.start = backend.sync_count()

    def after_batch(self):
        if self.learn.training:
            self.counts.append(backend.sync_count() - self.start)


def fit_one_epoch(device, mode, loss_func=F.cross_entropy):
    tg.manual_seed(0)
    dls = image_dls()
    counter = CountSyncs()
    cbs = [counter] + ([GradientClip(0.5)] if mode == "clip" else [])
    learn = Learner(Loaders(OnDevice(dls.train, device), OnDevice(dls.valid, device)), TinyCNN().to(device),
                    loss_func, cbs=cbs, progress=False)
    if mode == "fp16":
        learn.to_fp16()
    learn.fit(1, lr=1e-2)
    return learn, counter.counts


@pytest.mark.parametrize("mode", ["fp32", "fp16", "clip"])
def test_a_training_step_on_a_device_reads_back_once(mode):
    learn, counts = fit_one_epoch("emu", mode)
    assert counts == [1] * len(learn.dls.train)
    reference, _ = fit_one_epoch("cpu", mode)  # and it trains as on the CPU
    ours, theirs = learn.recorder.values[0], reference.recorder.values[0]
    assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
    assert ours["valid_loss"] == pytest.approx(theirs["valid_loss"], rel=1e-4)


def test_the_loss_is_read_after_the_step_is_queued():
    """loss_value is first read when the step's work is queued: a callback after backward sees no read."""
    seen = []

    class Probe(Callback):
        def after_backward(self):
            seen.append(("backward", self.learn._loss_value))

        def after_step(self):
            seen.append(("step", backend.sync_count() - self.start))

        def before_batch(self):
            self.start = backend.sync_count()

    tg.manual_seed(0)
    dls = image_dls()
    learn = Learner(Loaders(OnDevice(dls.train, "emu"), OnDevice(dls.valid, "emu")), TinyCNN().to("emu"),
                    F.cross_entropy, cbs=[Probe()], progress=False)
    learn.fit(1, lr=1e-2)
    assert seen[:2] == [("backward", None), ("step", 0)]
    assert math.isfinite(learn.loss_value)


def test_the_loss_scaler_still_skips_an_overflowing_step_with_one_read():
    """A loss that overflows float16 on batch 1: its step is skipped and the scale halved, in one read."""
    calls = []

    def overflowing(pred, y):
        calls.append(1)
        return F.cross_entropy(pred, y) * (1e30 if len(calls) == 2 else 1.0)

    learn, counts = fit_one_epoch("emu", "fp16", overflowing)
    scaler = learn.mixed_precision.scaler
    assert scaler.skipped_steps == 1 and scaler.scale == 2.0 ** 15
    assert counts == [1] * len(learn.dls.train)


def test_a_bad_target_stops_training_at_the_steps_read():
    calls = []

    def corrupted(pred, y):
        calls.append(1)
        y = tg.Tensor(backend.get_xp(y.device).full(y.shape, 7, np.int64), device=y.device) if len(calls) == 3 else y
        return F.cross_entropy(pred, y)

    with pytest.raises(ValueError, match="class index 7, outside"):
        fit_one_epoch("emu", "fp32", corrupted)


def test_clip_grad_norm_stays_on_the_device():
    tg.manual_seed(0)
    params = [tg.randn(3, 4, device="emu", requires_grad=True), tg.randn(5, device="emu", requires_grad=True)]
    grads = [np.arange(12.0, dtype=np.float32).reshape(3, 4), np.full(5, -2.0, np.float32)]
    for p, g in zip(params, grads):
        p.grad = tg.Tensor(g, device="emu")
    with backend.count_syncs() as syncs:
        total = clip_grad_norm_(params, max_norm=5.0)
    assert syncs.count == 0
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert total.item() == pytest.approx(norm, rel=1e-6)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * 5.0 / (norm + 1e-6), rtol=1e-6)


def test_roi_align_reads_nothing_back_and_reports_bad_boxes_at_the_next_read():
    x = tg.randn(2, 3, 8, 8, device="emu", requires_grad=True)
    boxes = tg.tensor([[0, 1.0, 1.0, 5.0, 6.0], [1, 0.0, 2.0, 7.0, 7.5]], device="emu")
    levels = [tg.randn(2, 3, 16, 16, device="emu", requires_grad=True), x]
    with backend.count_syncs() as syncs:
        out = F.roi_align(x, boxes, 2, sampling_ratio=2)
        out.backward(tg.ones(*out.shape, device="emu"))
        pyramid = F.multi_scale_roi_align(levels, boxes, 2, [1 / 2, 1 / 4], canonical_scale=4, canonical_level=3)
        pyramid.sum().backward()
    assert syncs.count == 0
    reference = F.roi_align(x.detach().cpu(), boxes.cpu(), 2, sampling_ratio=2)
    np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)
    cpu_pyramid = F.multi_scale_roi_align([t.detach().cpu() for t in levels], boxes.cpu(), 2, [1 / 2, 1 / 4],
                                          canonical_scale=4, canonical_level=3)
    np.testing.assert_allclose(pyramid.numpy(), cpu_pyramid.numpy(), rtol=1e-5, atol=1e-6)
    for bad, message in (([1, 7.0, 2.0, 1.0, 7.5], "box 1 has x2 < x1"), ([2, 1.0, 2.0, 3.0, 7.5], "batch indices"),
                         ([0, np.nan, 2.0, 3.0, 7.5], "NaN or infinite")):
        pooled = F.roi_align(x, tg.tensor([[0, 1.0, 1.0, 5.0, 6.0], bad], device="emu"), 2)   # runs in bounds
        with pytest.raises(ValueError, match=message):
            pooled.numpy()                                    # the verdict comes with the next read


@pytest.mark.parametrize("fpn", [False, True], ids=["single-level", "fpn"])
def test_a_mask_rcnn_step_reads_back_once(fpn, tmp_path):
    """Proposals, NMS (a kernel), ROI sampling and mask targets stay on the device: the step reads its losses."""
    from test_mask_rcnn import square_and_disc, write_coco
    from tinygrad_cv.models.mask_rcnn import MaskRCNN, MaskRCNNConfig, detection_dataloaders, load_coco_instances
    from tinygrad_cv.optim import AdamW
    pyramid = dict(fpn=True, fpn_channels=8, backbone_widths=(8, 8, 8), backbone_depths=(1, 1, 1),
                   anchor_scales=(4, 8, 16, 32)) if fpn else {}
    config = MaskRCNNConfig(**{**dict(num_classes=3, image_size=32, backbone_widths=(8, 8), backbone_depths=(1, 1),
                                      anchor_scales=(8, 16), rpn_channels=8, box_head_units=16, mask_head_channels=8,
                                      rpn_pre_nms_top_n=100, rpn_post_nms_train=40, rois_per_image=16,
                                      rpn_anchors_per_image=64), **pyramid})
    layouts = [((4, 6, 16, 18), (22, 20, 6)), ((18, 2, 30, 12), (9, 22, 7))]
    path = write_coco(tmp_path, [square_and_disc(square=square, disc=disc) for square, disc in layouts])
    samples, _ = load_coco_instances(path, tmp_path / "images")
    tg.manual_seed(0)
    dls = detection_dataloaders(samples * 2, samples, config, batch_size=2, device="emu")
    counter = CountSyncs()
    learn = Learner(dls, MaskRCNN(config).to("emu"), None, opt_func=AdamW, cbs=[counter], progress=False)
    learn.fit(1, lr=1e-3)
    assert counter.counts == [1] * len(dls.train)
    assert all(math.isfinite(v) for v in learn.recorder.values[0].values() if isinstance(v, float))


def test_the_data_block_pipeline_with_metrics_and_one_cycle_reads_back_once_per_step(tmp_path):
    """The real path: JPEG tiles, augmentations on the host, DataLoaders(device='emu'), one-cycle, metrics."""
    from functools import partial

    from tinygrad_cv.data import planet_recipe
    from tinygrad_cv.data.synthetic import make_planet
    from tinygrad_cv.metrics import accuracy_multi, fbeta
    from tinygrad_cv.models import resnet_small
    recipe = planet_recipe(make_planet(tmp_path / "planet", n=40, size=32, seed=0), valid_pct=0.2, seed=42)
    dls = recipe.dataloaders(batch_size=8, size=32, seed=0, device="emu")
    counter = CountSyncs()
    learn = Learner(dls, resnet_small(len(recipe.vocab), width=8).to("emu"), F.binary_cross_entropy_with_logits,
                    metrics=[partial(accuracy_multi, thresh=0.2), partial(fbeta, beta=2, thresh=0.2)], cbs=[counter],
                    path=tmp_path, progress=False)
    learn.to_fp16()
    learn.fit_one_cycle(1, 1e-2)
    assert counter.counts == [1] * len(dls.train) and math.isfinite(learn.recorder.values[0]["fbeta"])
