"""The feature pyramid (against a NumPy transcription of Lin et al.'s equations and against torchvision's
FeaturePyramidNetwork), its anchors (by hand and against torchvision's AnchorGenerator), per-level
proposals, and Mask R-CNN on the pyramid end to end."""
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_cv as tg
from conftest import DEVICES
from tinygrad_cv.models.mask_rcnn import MaskRCNN, MaskRCNNConfig, prepare_images
from tinygrad_cv.models.mask_rcnn.fpn import FeaturePyramidNetwork, LastLevelMaxPool
from tinygrad_cv.models.mask_rcnn.rpn import compact_proposals, level_anchors, propose, pyramid_anchors
from tinygrad_cv.ops.boxes import first_kept
from tinygrad_cv.ops.boxes import batched_nms

FPN_SMALL = dict(num_classes=3, image_size=32, fpn=True, fpn_channels=8, backbone_widths=(8, 8, 8),
                 backbone_depths=(1, 1, 1), anchor_scales=(6, 12, 24, 48), rpn_channels=8, box_head_units=16,
                 mask_head_channels=8, rpn_pre_nms_top_n=40, rpn_post_nms_train=40, rpn_post_nms_test=20,
                 rois_per_image=16, roi_canonical_scale=16, roi_canonical_level=3)


def fpn_config(**changes):
    return MaskRCNNConfig(**{**FPN_SMALL, **changes})


# --------------------------------------------------------------------------- the pyramid
def _conv_numpy(x, weight, bias):
    """A 'same' convolution (odd kernel, stride 1) as a sum of shifted 1x1 products."""
    k = weight.shape[-1]
    padded = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    h, w = x.shape[2:]
    out = sum(np.einsum("oc,nchw->nohw", weight[:, :, i, j], padded[:, :, i:i + h, j:j + w])
              for i in range(k) for j in range(k))
    return out + bias[None, :, None, None]


def _fpn_numpy(features, params):
    """L_i = lateral(C_i); T_top = L_top, T_i = L_i + nearest-2x(T_{i+1}); P_i = output(T_i); pool = P_top[::2, ::2]."""
    lateral = [_conv_numpy(c, params[f"inner_blocks.{i}.0.weight"], params[f"inner_blocks.{i}.0.bias"])
               for i, c in enumerate(features)]
    top_down = [lateral[-1]]
    for i in range(len(features) - 2, -1, -1):
        up = top_down[0].repeat(2, axis=2).repeat(2, axis=3)[:, :, :lateral[i].shape[2], :lateral[i].shape[3]]
        top_down.insert(0, lateral[i] + up)
    outputs = [_conv_numpy(t, params[f"layer_blocks.{i}.0.weight"], params[f"layer_blocks.{i}.0.bias"])
               for i, t in enumerate(top_down)]
    return outputs + [outputs[-1][:, :, ::2, ::2]]


def test_fpn_computes_laterals_top_down_sums_and_outputs():
    rng = np.random.default_rng(0)
    fpn = FeaturePyramidNetwork([3, 5, 4], 6, extra_blocks=LastLevelMaxPool()).to(dtype=np.float64)
    for p in fpn.parameters():
        p.data = rng.standard_normal(p.shape)                  # non-zero biases too
    features = [rng.standard_normal((2, c, s, s)) for c, s in ((3, 12), (5, 6), (4, 3))]
    out = fpn(OrderedDict((f"c{i}", tg.Tensor(f)) for i, f in enumerate(features)))
    assert list(out) == ["c0", "c1", "c2", "pool"]
    assert [o.shape for o in out.values()] == [(2, 6, 12, 12), (2, 6, 6, 6), (2, 6, 3, 3), (2, 6, 2, 2)]
    params = {k: np.asarray(v) for k, v in fpn.state_dict().items()}
    for got, expected in zip(out.values(), _fpn_numpy(features, params)):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_fpn_gradcheck_float64():
    rng = np.random.default_rng(1)
    fpn = FeaturePyramidNetwork([2, 3], 2, extra_blocks=LastLevelMaxPool()).to(dtype=np.float64)
    for p in fpn.parameters():
        p.data = rng.standard_normal(p.shape)
    c2 = tg.Tensor(rng.standard_normal((1, 2, 4, 4)), requires_grad=True)
    c3 = tg.Tensor(rng.standard_normal((1, 3, 2, 2)), requires_grad=True)
    weights = [tg.Tensor(rng.standard_normal(s)) for s in ((1, 2, 4, 4), (1, 2, 2, 2), (1, 2, 1, 1))]

    def scalar(a, b, *_):
        levels = fpn(OrderedDict([("0", a), ("1", b)])).values()
        return sum((level * w).sum() for level, w in zip(levels, weights))
    assert tg.gradcheck(scalar, [c2, c3, *fpn.parameters()])


def test_fpn_loads_torchvision_weights_and_gives_the_same_levels():
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool as TorchMaxPool
    torch.manual_seed(0)
    reference = torchvision.ops.FeaturePyramidNetwork([8, 16, 32], 12, extra_blocks=TorchMaxPool())
    ours = FeaturePyramidNetwork([8, 16, 32], 12, extra_blocks=LastLevelMaxPool())
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    assert sorted(state) == sorted(ours.state_dict())
    ours.load_state_dict(state, strict=True)
    rng = np.random.default_rng(2)
    arrays = OrderedDict((n, rng.standard_normal((2, c, s, s)).astype(np.float32))
                         for n, c, s in (("a", 8, 17), ("b", 16, 9), ("c", 32, 5)))   # odd sizes: nearest to size
    expected = reference(OrderedDict((k, torch.tensor(v)) for k, v in arrays.items()))
    got = ours(OrderedDict((k, tg.Tensor(v)) for k, v in arrays.items()))
    assert list(got) == list(expected) == ["a", "b", "c", "pool"]
    for name in expected:
        np.testing.assert_allclose(got[name].numpy(), expected[name].detach().numpy(), rtol=1e-4, atol=1e-5)


def test_model_fpn_has_torchvision_names_and_strides():
    config = fpn_config(backbone_widths=(4, 6, 8), backbone_depths=(1, 1, 1))
    model = MaskRCNN(config)
    names = set(model.state_dict())
    assert {"backbone.conv1.weight", "backbone.layer3.0.conv2.weight", "fpn.inner_blocks.0.0.weight",
            "fpn.inner_blocks.2.0.bias", "fpn.layer_blocks.1.0.weight"} <= names
    assert model.fpn.inner_blocks[1][0].weight.shape == (8, 6, 1, 1)
    levels = model.features(prepare_images(np.zeros((1, 32, 32, 3), np.uint8), config))
    assert [level.shape for level in levels] == [(1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2), (1, 8, 1, 1)]
    assert config.level_strides == [4, 8, 16, 32]


def test_config_needs_one_anchor_scale_per_pyramid_level():
    with pytest.raises(ValueError, match="one scale per pyramid level"):
        fpn_config(anchor_scales=(8, 16, 32))


# --------------------------------------------------------------------------- anchors and proposals
def test_pyramid_anchors_by_hand():
    # size 8, ratios h/w 0.5, 1, 2: half-sides round(8/sqrt(r)/2), round(8 sqrt(r)/2) = (6, 3), (4, 4), (3, 6)
    level0, level1 = pyramid_anchors([8, 16], [0.5, 1.0, 2.0], [(2, 3), (1, 2)], 12)
    assert level0.shape == (2 * 3 * 3, 4) and level1.shape == (1 * 2 * 3, 4)
    np.testing.assert_array_equal(level0[:3], [[-6, -3, 6, 3], [-4, -4, 4, 4], [-3, -6, 3, 6]])   # cell (0, 0)
    np.testing.assert_array_equal(level0[3:6] - level0[:3], [[4, 0, 4, 0]] * 3)   # next column: stride 12 // 3
    np.testing.assert_array_equal(level0[9:12] - level0[:3], [[0, 6, 0, 6]] * 3)  # next row: stride 12 // 2
    np.testing.assert_array_equal(level1[3:6], [[-5, -6, 17, 6], [-2, -8, 14, 8], [0, -11, 12, 11]])


def test_pyramid_anchors_equal_torchvision_anchor_generator():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList
    sizes, ratios, shapes = (8, 16, 32, 64, 128), (0.5, 1.0, 2.0), [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    generator = AnchorGenerator(tuple((s,) for s in sizes), (ratios,) * len(sizes))
    images = ImageList(torch.zeros(1, 3, 128, 128), [(128, 128)])
    expected = generator(images, [torch.zeros(1, 1, *shape) for shape in shapes])[0].numpy()
    np.testing.assert_array_equal(np.concatenate(pyramid_anchors(sizes, ratios, shapes, 128)), expected)
    config = MaskRCNNConfig(fpn=True, backbone_widths=(8, 8, 8, 8), backbone_depths=(1, 1, 1, 1))
    np.testing.assert_array_equal(np.concatenate(level_anchors(config)), expected)   # the default scales


def test_propose_keeps_the_top_n_of_each_level_and_never_suppresses_across_levels():
    config = fpn_config(rpn_pre_nms_top_n=2, rpn_nms_threshold=0.5, min_box_size=0.0)
    box = [4.0, 4.0, 20.0, 20.0]
    # level 0: three anchors, the same box twice (NMS keeps one) and another; level 1: the same box again
    anchors = np.array([box, box, [0, 0, 30, 30], box, [10, 10, 12, 12]])
    logits = np.array([[5.0, 4.0, -9.0, 1.0, 0.5]])      # level 0's top 2 are anchors 0 and 1, level 1's both
    proposals = compact_proposals(*propose(anchors, logits, np.zeros((1, 5, 4)), config, 10, level_sizes=[3, 2]))
    np.testing.assert_array_equal(proposals, [[0] + box, [0] + box, [0, 10, 10, 12, 12]])
    boxes, valid = propose(anchors, logits, np.zeros((1, 5, 4)), config, 2, level_sizes=[3, 2])
    assert boxes.shape == (1, 2, 4) and valid.all()
    merged = compact_proposals(*propose(anchors, logits, np.zeros((1, 5, 4)), config, 10))   # one level: one box
    np.testing.assert_array_equal(merged, [[0] + box])


def test_first_kept_is_the_head_of_full_nms():
    rng = np.random.default_rng(4)
    for trial in range(40):
        count = int(rng.integers(0, 60))
        corners = rng.uniform(0, 40, (count, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(1, 20, (count, 2))], 1)
        scores = rng.integers(0, 6, count).astype(float) if trial % 2 else rng.standard_normal(count)   # ties too
        groups = rng.integers(0, 3, count)
        for n in (1, 5, 30, 100):
            for threshold in (0.1, 0.5, 0.9):
                expected = batched_nms(boxes, scores, groups, threshold)[:n]
                np.testing.assert_array_equal(first_kept(boxes, scores, groups, threshold, n), expected)


def test_propose_per_image_and_level_on_random_outputs():
    config = fpn_config()
    per_level = level_anchors(config)
    anchors, sizes = np.concatenate(per_level), [len(a) for a in per_level]
    rng = np.random.default_rng(3)
    logits, deltas = rng.standard_normal((2, len(anchors))), rng.standard_normal((2, len(anchors), 4)) * 0.1
    proposals = compact_proposals(*propose(anchors, logits, deltas, config, 25, sizes))
    for i in range(2):
        boxes = proposals[proposals[:, 0] == i, 1:]
        assert 0 < len(boxes) <= 25 and boxes.min() >= 0 and boxes.max() <= 32
    assert (np.diff(proposals[:, 0]) >= 0).all()                        # image by image
    top = sum(min(config.rpn_pre_nms_top_n, n) for n in sizes)
    assert len(proposals) <= 2 * top


# --------------------------------------------------------------------------- the model on the pyramid
def _scene():
    yy, xx = np.mgrid[:32, :32] + 0.5
    small = (xx > 3) & (xx < 8) & (yy > 4) & (yy < 9)
    large = (xx - 20) ** 2 + (yy - 19) ** 2 < 81
    image = np.full((32, 32, 3), 30, dtype=np.uint8)
    image[small], image[large] = (220, 40, 40), (40, 220, 40)
    return image, {"boxes": np.array([[3, 4, 8, 9], [11, 10, 29, 28]], dtype=np.float64), "labels": np.array([1, 2]),
                   "instance_masks": np.stack([small, large]).astype(np.uint8)}


def test_fpn_model_losses_gradients_and_detections():
    config = fpn_config()
    model = MaskRCNN(config)
    image, targets = _scene()
    empty = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64), "instance_masks": np.zeros((0, 32, 32))}
    images = prepare_images([image, np.full_like(image, 30)], config)
    losses = model.losses(images, [targets, empty])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    assert all(np.isfinite(v.item()) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name, p in model.named_parameters():                  # every level's convolutions learn
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all() and p.grad.numpy().any(), name
    found = model.detect(images)
    assert len(found) == 2 and all(f["masks"].shape == (len(f["boxes"]), 32, 32) for f in found)


@pytest.mark.parametrize("device", [d for d in DEVICES if d != "cpu"])
def test_fpn_model_gives_the_same_losses_and_gradients_on_every_device(device):
    config = fpn_config()
    model = MaskRCNN(config)
    image, targets = _scene()
    results = []
    for where in ("cpu", device):
        model.to(where)
        images = prepare_images([image, image[::-1].copy()], config, where)
        flipped = {**targets, "boxes": targets["boxes"][:, [0, 3, 2, 1]] * [1, -1, 1, -1] + [0, 32, 0, 32],
                   "instance_masks": targets["instance_masks"][:, ::-1].copy()}
        losses = model.losses(images, [targets, flipped], np.random.default_rng(0))
        model.zero_grad()
        sum(losses.values()).backward()
        results.append(({k: v.item() for k, v in losses.items()}, model.fpn.inner_blocks[0][0].weight.grad.numpy(),
                         model.rpn.conv.weight.grad.numpy()))
    (cpu_losses, *cpu_grads), (losses, *grads) = results
    assert losses == pytest.approx(cpu_losses, rel=1e-5)
    for grad, cpu_grad in zip(grads, cpu_grads):
        np.testing.assert_allclose(grad, cpu_grad, rtol=1e-4, atol=1e-6)


def test_fpn_heads_pool_each_roi_from_its_level():
    config = fpn_config()
    model = MaskRCNN(config).to(dtype=np.float64)
    levels = model.features(prepare_images([_scene()[0]], config).to(dtype=np.float64))
    rois = np.array([[0, 3, 4, 8, 9], [0, 0, 0, 30, 31]])             # sides 5 (P2) and 30.5 (P3)
    pooled = model.box_head.fc1.weight.shape[1]
    assert pooled == 8 * 7 * 7
    head, one_level = model.box_head, []
    with tg.no_grad():
        got = head(levels[:-1], rois)[0].numpy()
        for k, level in ((0, 0), (1, 1)):                              # the head on that level's map alone
            head.spatial_scale = 1 / config.level_strides[level]
            one_level.append(head(levels[level], rois[k:k + 1])[0].numpy())
    np.testing.assert_allclose(got, np.concatenate(one_level), rtol=1e-12)


def test_pooling_levels_name_the_pyramid_level_of_each_box():
    model = MaskRCNN(fpn_config())                          # levels P2-P4 pooled, canonical 16 px at level 3
    assert model.pooling_levels([[0, 0, 4, 4], [0, 0, 8, 8], [0, 0, 16, 16], [0, 0, 40, 30], [0, 0, 90, 90]]).tolist() \
        == [2, 2, 3, 4, 4]
    with pytest.raises(ValueError, match="single feature level"):
        MaskRCNN(MaskRCNNConfig(**{**FPN_SMALL, "fpn": False, "anchor_scales": (8, 16)})).pooling_levels([[0, 0, 4, 4]])


def test_fpn_training_stage_heads_trains_the_pyramid_not_the_body():
    model = MaskRCNN(fpn_config())
    trainable = model.set_trainable("heads")
    assert any(n.startswith("fpn.") for n in trainable)
    assert not any(n.startswith("backbone.") for n in trainable)
    assert any(n.startswith("backbone.layer2") for n in model.set_trainable("3+"))
    assert not any(n.startswith("backbone.layer1") for n in model.set_trainable("3+"))


# --------------------------------------------------------------------------- the wide-size-range shapes
def test_shapes_with_a_wide_size_range(tmp_path):
    from tinygrad_cv.data.synthetic import make_shapes, shapes
    sides = []
    for i in range(60):
        _, instances, owner = shapes.draw_shapes(np.random.default_rng([5, i]), 128, object_sizes=(8, 100))
        for k in range(1, len(instances) + 1):
            rows, cols = np.nonzero(owner == k)
            sides.append(max(np.ptp(rows), np.ptp(cols)) + 1)
    sides = np.array(sides)
    assert 5 <= sides.min() and sides.max() <= 125
    assert (sides < 16).sum() >= 10 and (sides > 60).sum() >= 10      # log-uniform: both ends are common
    default = shapes.draw_shapes(np.random.default_rng([5, 0]), 64)[0]
    np.testing.assert_array_equal(default, shapes.draw_shapes(np.random.default_rng([5, 0]), 64, None)[0])
    for bad in ((1, 50), (20, 10), (8, 120), (8,), "8-100"):
        with pytest.raises(ValueError, match="make_shapes: object_sizes must be"):
            make_shapes(tmp_path, n=1, size=128, object_sizes=bad)
