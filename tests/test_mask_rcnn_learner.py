"""Mask R-CNN trained by the Learner on tiny models and images: its detection DataLoaders, the dict of losses
(summed, logged, validated in eval mode), COCO AP as a metric, freezing by Matterport's named stages,
gradient clipping, mixed precision, checkpoints and the LR finder.

References: the model's own ``losses``/``detect`` called directly, ``prepare_images``, hand-made mirrors,
``coco_evaluate`` and ``evaluate`` on the same detections."""
import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv.metrics import COCOMetric, coco_evaluate, to_coco_results
from tinygrad_cv.models.mask_rcnn import (MaskRCNN, MaskRCNNConfig, detection_dataloaders, evaluate,
                                          load_coco_instances, prepare_images, presence_dataloaders)
from tinygrad_cv.optim import AdamW
from tinygrad_cv.train import GradientClip, Learner
from test_mask_rcnn import square_and_disc, write_coco

SMALL = dict(image_size=32, backbone_widths=(8, 8), backbone_depths=(1, 1), anchor_scales=(8, 16),
             rpn_channels=8, box_head_units=16, mask_head_channels=8, rpn_pre_nms_top_n=100,
             rpn_post_nms_train=40, rpn_post_nms_test=20, rois_per_image=16, rpn_anchors_per_image=64)


THREE_STAGES = dict(backbone_widths=(8, 8, 8), backbone_depths=(1, 1, 1))   # res2 to res4, for stage '4+'


def small_config(**changes):
    return MaskRCNNConfig(num_classes=3, **{**SMALL, **changes})


LAYOUTS = [((4, 6, 16, 18), (22, 20, 6)), ((18, 2, 30, 12), (9, 22, 7)), ((2, 16, 12, 28), (22, 9, 6)),
           ((14, 14, 26, 26), (7, 7, 5))]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Four images written as a COCO instances file and loaded back: (samples, coco, json path)."""
    folder = tmp_path_factory.mktemp("coco")
    path = write_coco(folder, [square_and_disc(square=square, disc=disc) for square, disc in LAYOUTS])
    samples, coco = load_coco_instances(path, folder / "images")
    return samples, coco, str(path)


def category_ids(coco):
    return [0] + [c["id"] for c in coco.categories]


def make_learner(samples, config=None, batch_size=2, flip=True, valid=None, **kwargs):
    config = config or small_config()
    tg.manual_seed(0)
    dls = detection_dataloaders(samples, samples if valid is None else valid, config, batch_size=batch_size, flip=flip)
    kwargs.setdefault("progress", False)
    return Learner(dls, MaskRCNN(config), None, opt_func=AdamW, **kwargs)


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- data
def test_detection_batches_are_the_models_inputs_and_flips_move_everything_together(shapes):
    samples, coco, _ = shapes
    config = small_config()
    dls = detection_dataloaders(samples, samples, config, batch_size=2, seed=3)
    images, targets = dls.valid.one_batch()
    np.testing.assert_allclose(images.numpy(), prepare_images([s["image"] for s in samples[:2]], config).numpy(),
                               rtol=1e-6, atol=1e-6)
    assert [int(t["image_id"].item()) for t in targets] == [10, 11]
    np.testing.assert_array_equal(targets[1]["instance_masks"].numpy(), samples[1]["instance_masks"])

    flips = 0
    for epoch in range(4):                                 # the training batches are flipped half the time
        for images, targets in dls.train:
            for image, target in zip(images.numpy(), targets):
                sample = samples[[s["image_id"] for s in samples].index(int(target["image_id"].item()))]
                plain = prepare_images([sample["image"]], config).numpy()[0]
                flipped = not np.allclose(image, plain, atol=1e-6)
                flips += flipped
                if flipped:
                    np.testing.assert_allclose(image, plain[:, :, ::-1], atol=1e-6)
                    mirrored = sample["boxes"].copy()
                    mirrored[:, [0, 2]] = 32 - sample["boxes"][:, [2, 0]]
                    np.testing.assert_allclose(target["boxes"].numpy(), mirrored)
                    np.testing.assert_array_equal(target["instance_masks"].numpy(),
                                                  sample["instance_masks"][:, :, ::-1])
    assert 0 < flips < 16


def test_presence_batches_mark_the_classes_of_each_image(shapes):
    samples, _, _ = shapes
    one_class = [{**samples[0], "labels": np.array([2, 2]), "boxes": samples[0]["boxes"]}]
    dls = presence_dataloaders(samples[:1] + one_class, one_class, small_config(), batch_size=2, flip=False)
    _, presence = dls.valid.one_batch()
    np.testing.assert_array_equal(presence.numpy(), [[0, 1]])
    assert presence.dtype == np.float32


def test_images_of_the_wrong_size_are_refused(shapes):
    samples, _, _ = shapes
    big = [{**samples[0], "image": np.zeros((64, 64, 3), np.uint8)}]
    with pytest.raises(ValueError, match=r"detection_dataloaders: valid_samples holds images of shape "
                                         r"\(32, 32, 3\), but the model takes \(64, 64, 3\)"):
        detection_dataloaders(big, samples, small_config(image_size=64))


# --------------------------------------------------------------------------- training and validation
def test_the_learner_sums_logs_and_validates_the_models_losses(shapes):
    samples, _, _ = shapes
    learn = make_learner(samples, flip=False)
    before = weights(learn.model)
    learn.fit(1, lr=1e-3)
    terms = learn.recorder.term_losses
    assert len(terms) == 5 and all(len(v) == 2 for v in terms.values())
    np.testing.assert_allclose(np.sum(list(terms.values()), axis=0), learn.recorder.losses, rtol=1e-5)
    row = learn.recorder.values[0]
    assert set(terms) <= set(row) and {f"valid_{k}" for k in terms} <= set(row)
    assert any(not np.array_equal(before[k], v) for k, v in weights(learn.model).items())

    # validation: the model's losses in eval mode (batch norm on its running statistics, left unchanged)
    buffers = {k: v.numpy().copy() for k, v in learn.model.named_buffers()}
    tg.manual_seed(5)
    valid = learn.validate()
    learn.model.eval()
    tg.manual_seed(5)
    direct = []
    for images, targets in learn.dls.valid:
        with tg.no_grad():
            losses = learn.model(images, targets)
            learn.model.detect(images)                     # validation also predicts, between the batches
        direct.append({k: v.item() for k, v in losses.items()})
    for key in terms:
        assert valid[f"valid_{key}"] == pytest.approx(np.mean([d[key] for d in direct]), rel=1e-5, abs=1e-7)
    assert all(np.array_equal(buffers[k], v.numpy()) for k, v in learn.model.named_buffers())


def test_coco_ap_as_a_metric_equals_evaluating_the_detections(shapes):
    samples, coco, path = shapes
    metrics = [COCOMetric(path, category_ids(coco)), COCOMetric(path, category_ids(coco), "bbox", "AP50")]
    learn = make_learner(samples, metrics=metrics)
    learn.fit(1, lr=3e-3)
    assert [m.name for m in metrics] == ["mask_AP", "box_AP50"]
    result = learn.validate()
    scores = evaluate(learn.model, samples, coco, path)
    assert result["mask_AP"] == pytest.approx(scores["segm"]["AP"], abs=1e-12)
    assert result["box_AP50"] == pytest.approx(scores["bbox"]["AP50"], abs=1e-12)


def test_coco_metric_scores_perfect_and_wrong_detections(shapes):
    samples, coco, path = shapes
    metric = COCOMetric(path, category_ids(coco), stat="AP75")
    perfect = [{"boxes": s["boxes"], "labels": s["labels"], "scores": np.array([0.9, 0.8]),
                "masks": s["instance_masks"].astype(bool)} for s in samples]
    targets = [{"image_id": tg.tensor(np.int64(s["image_id"]))} for s in samples]
    metric.reset()
    metric.accumulate(perfect[:2], targets[:2])
    metric.accumulate(perfect[2:], targets[2:])
    assert metric.value == pytest.approx(1.0)
    metric.reset()
    metric.accumulate([{**p, "labels": 3 - p["labels"]} for p in perfect], targets)   # every class wrong
    assert metric.value == 0
    results = sum((to_coco_results(s["image_id"], p["boxes"], np.array([0, 7, 14])[p["labels"]], p["scores"],
                                   p["masks"]) for s, p in zip(samples, perfect[:1])), [])
    metric.reset()
    metric.accumulate(perfect[:1], targets[:1])
    assert metric.value == coco_evaluate(path, results, "segm", verbose=False)["AP75"]
    with pytest.raises(ValueError, match="COCOMetric: stat must be one of"):
        COCOMetric(path, category_ids(coco), stat="mAP")
    with pytest.raises(ValueError, match="targets need 'image_id'"):
        metric.accumulate(perfect[:1], [{}])


def test_overfits_four_images_and_finds_the_objects(shapes):
    samples, _, _ = shapes
    learn = make_learner(samples[:1] * 4, batch_size=4, flip=False, valid=samples[:1], cbs=[GradientClip(5.0)])
    learn.fit_one_cycle(60, 0.01, wd=1e-4)
    losses = learn.recorder.losses
    assert losses[-1] < 0.3 * losses[0]
    image, targets = samples[0]["image"], samples[0]
    found = learn.model.detect(prepare_images([image], learn.model.config), score_threshold=0.5)[0]
    for label, mask in zip(targets["labels"], targets["instance_masks"].astype(bool)):
        best = np.flatnonzero(found["labels"] == label)
        assert best.size, f"class {label} not found"
        overlap = (found["masks"][best[0]] & mask).sum() / (found["masks"][best[0]] | mask).sum()
        assert overlap > 0.7


def test_gradient_clip_bounds_the_step(shapes):
    samples, _, _ = shapes
    norms = []

    class Norm(tg.train.Callback):
        order = GradientClip.order + 1

        def after_backward(self):
            grads = [p.grad.numpy() for p in self.learn.model.parameters() if p.grad is not None]
            norms.append(np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads)))
    learn = make_learner(samples, cbs=[GradientClip(1e-3), Norm()])
    learn.fit(1, lr=1e-3)
    assert len(norms) == 2 and max(norms) <= 1e-3 * (1 + 1e-4)


# --------------------------------------------------------------------------- freezing by stage
def test_layer_groups_follow_the_backbone_stages_then_the_heads(shapes):
    model = MaskRCNN(small_config(**THREE_STAGES))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [[names[id(p)] for p in g] for g in model.layer_groups()]
    assert len(groups) == 4                                    # stem + res2, res3, res4, heads
    assert all(n.startswith(("backbone.conv1", "backbone.bn1", "backbone.layer1.")) for n in groups[0])
    assert all(n.startswith("backbone.layer2.") for n in groups[1])
    assert all(n.startswith("backbone.layer3.") for n in groups[2])
    assert all(n.startswith(("rpn.", "box_head.", "mask_head.")) for n in groups[3])
    assert sum(map(len, groups)) == len(names)
    assert [model.layer_group_index(s) for s in ("all", "3+", "4+", "heads")] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"unknown training stage '5\+'; this model's are \['heads', 'all', "
                                         r"'3\+', '4\+'\]"):
        model.layer_group_index("5+")


@pytest.mark.parametrize("stage, trained", [("heads", ("rpn.", "box_head.", "mask_head.")),
                                            ("4+", ("backbone.layer3.", "rpn.", "box_head.", "mask_head.")),
                                            ("all", ("",))])
def test_freeze_to_a_stage_trains_only_its_layers(shapes, stage, trained):
    samples, _, _ = shapes
    learn = make_learner(samples, small_config(**THREE_STAGES), train_bn=False)
    learn.freeze_to(stage)
    before = weights(learn.model)
    learn.fit(1, lr=1e-2)
    after = weights(learn.model)
    for name, value in after.items():                 # running statistics too: frozen batch norm runs in eval
        changed = not np.array_equal(before[name], value)
        if not name.startswith(trained):
            assert not changed, f"{name} changed while training {stage!r}"
    assert any(not np.array_equal(before[n], v) for n, v in after.items() if n.startswith(trained))


def test_freeze_keeps_batch_norm_trainable_with_train_bn_and_matches_set_trainable(shapes):
    samples, _, _ = shapes
    learn = make_learner(samples)
    learn.freeze()                                     # fastai's freeze: the last group, here 'heads'
    model = learn.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    bn = {f"{m}.{p}" for m, module in model.named_modules() if isinstance(module, tg.nn.BatchNorm2d)
          for p, _ in module.named_parameters()}
    heads = {n for n in trainable if not n.startswith("backbone.")}
    assert trainable == heads | bn and bn and not bn & heads
    model.train()
    assert model.backbone.layer1[0].bn1.training                         # trainable, so in training mode
    assert set(model.set_trainable("heads")) == heads                      # Matterport's: batch norm frozen
    model.train()
    assert not model.backbone.layer1[0].bn1.training and model.mask_head.training
    learn.freeze_to(1)
    assert learn.model.backbone.layer2[0].conv1.weight.requires_grad
    assert not learn.model.backbone.layer1[0].conv1.weight.requires_grad
    learn.unfreeze()
    assert all(p.requires_grad for p in model.parameters())


# --------------------------------------------------------------------------- precision, checkpoints, LR finder
def test_mixed_precision_trains_with_float32_masters(shapes):
    samples, _, _ = shapes
    learn = make_learner(samples, cbs=[GradientClip(5.0)]).to_fp16()
    before = weights(learn.model)
    learn.fit(1, lr=1e-3)
    assert all(p.dtype == np.float32 for p in learn.model.parameters())
    assert all(np.isfinite(v) for v in learn.recorder.losses) and learn.loss_scale is not None
    assert all(np.isfinite(v) for values in learn.recorder.term_losses.values() for v in values)
    assert any(not np.array_equal(before[k], v) for k, v in weights(learn.model).items())
    assert np.isfinite(learn.validate()["valid_loss"])


def test_checkpoints_resume_and_lr_find_restores(shapes, tmp_path):
    samples, _, _ = shapes
    learn = make_learner(samples, path=tmp_path)
    learn.fit_one_cycle(1, 1e-3)
    learn.save("stage1")
    saved = weights(learn.model)
    learn.fit(1, lr=1e-2)
    assert any(not np.array_equal(saved[k], v) for k, v in weights(learn.model).items())
    learn.load("stage1")
    assert all(np.array_equal(saved[k], v) for k, v in weights(learn.model).items())

    suggestions = learn.lr_find(num_it=10, show_plot=False)
    assert len(learn.lr_finder.losses) == 10 and all(s > 0 for s in suggestions)
    assert all(np.array_equal(saved[k], v) for k, v in weights(learn.model).items())
