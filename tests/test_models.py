"""ResNet and U-Net: shapes, layer groups, float64 gradchecks of tiny configurations end to end, and
torchvision's parameter names and weight files in both directions."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv.io import load_safetensors, save_safetensors
from tinygrad_cv.models import (MaskRCNN, MaskRCNNConfig, Bottleneck, ResNet, resnet18, resnet34, resnet50,
                                resnet_small, unet_resnet)


def image(n, c, h, w, seed=0, dtype=np.float64):
    return tg.Tensor(np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(dtype), requires_grad=True)


def check_model_gradients(model, x, train):
    """Directional gradcheck on the input and every parameter together, through a loss-like sum."""
    model.to(dtype=np.float64)
    model.train(train)
    params = list(model.parameters())
    assert tg.gradcheck(lambda x, *ps: model(x), [x, *params], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_resnet_gradcheck(train):
    model = resnet_small(5, width=4, depths=(1, 1), multi_label=True)
    if not train:  # make the running statistics non-trivial before checking eval mode
        with tg.no_grad():
            model(image(4, 3, 16, 16, seed=3, dtype=np.float32))
    check_model_gradients(model, image(2, 3, 16, 16), train)


def test_bottleneck_resnet_gradcheck():
    model = ResNet(Bottleneck, (1, 1), (2, 4), num_classes=3, small_images=False)
    check_model_gradients(model, image(2, 3, 16, 16), train=True)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_unet_gradcheck(train):
    model = unet_resnet(3, width=4, depths=(1, 1, 1))
    if not train:
        with tg.no_grad():
            model(image(3, 3, 16, 16, seed=3, dtype=np.float32))
    check_model_gradients(model, image(2, 3, 16, 16), train)


@given(size=st.integers(9, 40), channels=st.integers(1, 4), classes=st.integers(1, 4))
@settings(max_examples=6)
def test_unet_output_matches_input_size(size, channels, classes):
    """Sizes that are not multiples of the encoder's stride still give one logit per pixel."""
    model = unet_resnet(classes, width=4, depths=(1, 1, 1, 1), in_channels=channels)
    with tg.no_grad():
        out = model(image(1, channels, size, size + 3, dtype=np.float32))
    assert out.shape == (1, classes, size, size + 3)


@given(size=st.integers(8, 40), channels=st.integers(1, 4))
@settings(max_examples=6)
def test_resnet_output_shape(size, channels):
    model = resnet_small(7, width=4, depths=(1, 1, 1), in_channels=channels)
    with tg.no_grad():
        assert model(image(2, channels, size, size, dtype=np.float32)).shape == (2, 7)


def test_unet_skips_are_taken_where_the_size_changes():
    model = unet_resnet(2, width=4, depths=(1, 1, 1, 1))
    # conv1, bn1, relu, maxpool (identity) (H), layer1 (H), layer2 (H/2), layer3 (H/4), layer4 (H/8):
    # the last at each size
    assert model.skip_ids == [4, 5, 6]
    assert len(model.decoder) == 3


def test_resnet18_and_34_have_the_published_block_counts():
    count = lambda m: sum(1 for mod in m.modules() if type(mod).__name__ == "BasicBlock")
    assert count(resnet18(10, width=4)) == 8
    assert count(resnet34(10, width=4)) == 16
    with tg.no_grad():
        assert resnet18(10, width=4)(image(2, 3, 64, 64, dtype=np.float32)).shape == (2, 10)


def test_layer_groups_cover_every_parameter_once():
    model = resnet_small(17, width=4)
    groups = model.layer_groups()
    assert len(groups) == 3
    ids = [id(p) for g in groups for p in g.parameters()]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_predict_proba_uses_sigmoid_for_multi_label_and_softmax_otherwise():
    logits = tg.Tensor(np.array([[2.0, -1.0, 0.5]]))
    multi = resnet_small(3, width=4, multi_label=True).predict_proba(logits).numpy()
    single = resnet_small(3, width=4).predict_proba(logits).numpy()
    np.testing.assert_allclose(multi, 1 / (1 + np.exp(-logits.numpy())))
    np.testing.assert_allclose(single.sum(), 1.0)


def test_weights_carry_over_across_input_sizes():
    """Progressive resizing: the same weights work at 64 px and at 128 px (the pool is adaptive)."""
    model = resnet_small(17, width=4).eval()
    with tg.no_grad():
        small = model(image(1, 3, 64, 64, dtype=np.float32))
        large = model(F.interpolate(image(1, 3, 64, 64, dtype=np.float32), scale_factor=2, mode="bilinear",
                                    align_corners=False))
    assert small.shape == large.shape == (1, 17)


# --------------------------------------------------------------------------- torchvision's names and files
def torchvision_spec(depths, bottleneck, width=64, num_classes=1000):
    """{key: shape} of torchvision's ResNet state_dict, written out from the architecture (not from our
    model): the stem, then per block conv1/bn1, conv2/bn2 (and conv3/bn3), a downsample where the shape
    changes, and fc."""
    spec = {}

    def bn(prefix, c):
        spec.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                     f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    spec["conv1.weight"] = (width, 3, 7, 7)
    bn("bn1", width)
    inplanes, expansion = width, 4 if bottleneck else 1
    for i, depth in enumerate(depths):
        planes = width * 2 ** i
        for j in range(depth):
            stride, p = (2 if i > 0 and j == 0 else 1), f"layer{i + 1}.{j}"
            if bottleneck:
                convs = [(planes, inplanes, 1, 1), (planes, planes, 3, 3), (planes * 4, planes, 1, 1)]
            else:
                convs = [(planes, inplanes, 3, 3), (planes, planes, 3, 3)]
            for k, shape in enumerate(convs, 1):
                spec[f"{p}.conv{k}.weight"] = shape
                bn(f"{p}.bn{k}", shape[0])
            if stride != 1 or inplanes != planes * expansion:
                spec[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    spec["fc.weight"], spec["fc.bias"] = (num_classes, inplanes), (num_classes,)
    return spec


ARCHS = {"resnet18": (resnet18, (2, 2, 2, 2), False), "resnet34": (resnet34, (3, 4, 6, 3), False),
         "resnet50": (resnet50, (3, 4, 6, 3), True)}


def random_file(path, spec, seed=0):
    """A weight file with the spec's keys: random floats, positive variances, int64 counts."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in spec.items():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(rng.integers(0, 100), dtype=np.int64)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            state[key] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    save_safetensors(state, path)
    return state


def assert_same_logits(torch, ours, theirs, seed):
    """Both models in their current mode give the same logits on one random batch (float32 round-off)."""
    x = np.random.default_rng(seed).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with tg.no_grad():
        got = ours(tg.Tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_the_state_dict_has_torchvisions_keys_and_shapes(arch):
    make, depths, bottleneck = ARCHS[arch]
    state = make().state_dict()
    expected = torchvision_spec(depths, bottleneck)
    assert sorted(state) == sorted(expected)
    assert {k: v.shape for k, v in state.items()} == expected
    assert state["bn1.num_batches_tracked"].dtype == np.int64


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_a_file_with_torchvisions_keys_loads_strictly(tmp_path, arch):
    make, depths, bottleneck = ARCHS[arch]
    written = random_file(tmp_path / "w.safetensors", torchvision_spec(depths, bottleneck, width=8), seed=1)
    model = make(weights=tmp_path / "w.safetensors", width=8)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, written[key], err_msg=key)
        assert value.dtype == written[key].dtype, key


def test_bottleneck_strides_on_the_3x3_convolution():
    block = resnet50(width=8).layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2) and block.conv3.stride == (1, 1)
    assert block.downsample[0].stride == (2, 2)


def test_a_mismatched_file_names_every_bad_key(tmp_path):
    spec = torchvision_spec((2, 2, 2, 2), False, width=8, num_classes=10)
    spec["extra.weight"] = (3,)
    del spec["layer1.0.conv2.weight"]
    spec["layer2.0.conv1.weight"] = (16, 8, 5, 5)
    random_file(tmp_path / "w10.safetensors", spec)
    with pytest.raises(ValueError) as error:
        resnet18(weights=tmp_path / "w10.safetensors", width=8)
    message = str(error.value)
    assert "resnet18(weights=" in message and "w10.safetensors" in message
    assert "fc.weight: checkpoint (10, 64) vs model (1000, 64)" in message
    assert "fc.bias: checkpoint (10,) vs model (1000,)" in message
    assert "layer2.0.conv1.weight: checkpoint (16, 8, 5, 5) vs model (16, 8, 3, 3)" in message
    assert "missing keys: ['layer1.0.conv2.weight']" in message and "unexpected keys: ['extra.weight']" in message


def test_an_explicit_num_classes_replaces_the_head_and_keeps_the_body(tmp_path):
    written = random_file(tmp_path / "w.safetensors", torchvision_spec((2, 2, 2, 2), False, width=8), seed=2)
    tg.manual_seed(0)
    model = resnet18(num_classes=17, weights=tmp_path / "w.safetensors", width=8)
    assert model.fc.weight.shape == (17, 64)
    tg.manual_seed(0)
    fresh = resnet18(num_classes=17, width=8)
    np.testing.assert_array_equal(model.fc.weight.numpy(), fresh.fc.weight.numpy())  # a new head
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            np.testing.assert_array_equal(value, written[key], err_msg=key)
    same = resnet18(num_classes=1000, weights=tmp_path / "w.safetensors", width=8)  # the file's own count
    np.testing.assert_array_equal(same.fc.weight.numpy(), written["fc.weight"])
    with pytest.raises(ValueError, match="conv1.weight"):  # the body is still strict
        resnet18(num_classes=17, weights=tmp_path / "w.safetensors", width=8, in_channels=4)


def test_body_and_head_are_views_over_the_same_modules():
    model = resnet34(num_classes=5, width=4)
    body, head = model.body, model.head
    assert body.layer3 is model.layer3 and body[0] is model.conv1 and head.fc is model.fc
    ids = sorted(id(p) for p in list(body.parameters()) + list(head.parameters()))
    assert ids == sorted(id(p) for p in model.parameters())
    groups = model.layer_groups()
    assert groups[0].layer2 is model.layer2 and groups[1].layer3 is model.layer3 and groups[2].fc is model.fc
    x = image(2, 3, 32, 32, dtype=np.float32)
    with tg.no_grad():
        np.testing.assert_array_equal(model.eval()(x).numpy(), head(body(x)).numpy())


def test_batch_norm_counts_its_training_batches():
    model = resnet18(num_classes=3, width=4)
    with tg.no_grad():
        for _ in range(3):
            model(image(2, 3, 32, 32, dtype=np.float32))
        model.eval()(image(2, 3, 32, 32, dtype=np.float32))  # evaluation does not count
    counts = {k: int(v) for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    assert counts and set(counts.values()) == {3}


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_unet_on_a_pretrained_torchvision_encoder(tmp_path, arch):
    make, depths, bottleneck = ARCHS[arch]
    written = random_file(tmp_path / "e.safetensors", torchvision_spec(depths, bottleneck, width=4), seed=3)
    model = unet_resnet(3, encoder=arch, width=4, weights=tmp_path / "e.safetensors")
    np.testing.assert_array_equal(model.encoder[0].weight.numpy(), written["conv1.weight"])
    np.testing.assert_array_equal(model.encoder[7][1].bn2.running_var.numpy(), written["layer4.1.bn2.running_var"])
    with tg.no_grad():
        assert model.eval()(image(1, 3, 32, 32, dtype=np.float32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="encoder must be a ResNet or one of"):
        unet_resnet(3, encoder="resnet101")


def test_mask_rcnn_backbone_from_a_resnet50_file(tmp_path):
    written = random_file(tmp_path / "b.safetensors", torchvision_spec((3, 4, 6, 3), True, width=4), seed=4)
    config = MaskRCNNConfig(image_size=64, backbone_widths=(4, 8, 16, 32), backbone_depths=(3, 4, 6, 3),
                            backbone_block="bottleneck", backbone_weights=str(tmp_path / "b.safetensors"),
                            anchor_scales=(16, 32), rpn_channels=8, box_head_units=16, mask_head_channels=8)
    model = MaskRCNN(config)
    np.testing.assert_array_equal(model.backbone.layer3[5].conv3.weight.numpy(), written["layer3.5.conv3.weight"])
    with tg.no_grad():
        assert model.features(tg.Tensor(np.zeros((1, 3, 64, 64), np.float32))).shape == (1, 128, 2, 2)


def randomised_torchvision(torch, torchvision, arch, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(5)
    return model.eval()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_torchvision_weights_load_and_give_the_same_logits(tmp_path, arch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from safetensors.torch import save_file
    theirs = randomised_torchvision(torch, torchvision, arch, seed=0)
    assert {k: tuple(v.shape) for k, v in theirs.state_dict().items()} == torchvision_spec(*ARCHS[arch][1:])
    save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, tmp_path / "tv.safetensors")
    ours = ARCHS[arch][0](weights=tmp_path / "tv.safetensors").eval()
    assert_same_logits(torch, ours, theirs, seed=1)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_our_weights_load_into_torchvision_strictly_with_the_same_logits(tmp_path, arch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from safetensors.torch import load_file
    tg.manual_seed(3)
    ours = ARCHS[arch][0](num_classes=10)
    with tg.no_grad():  # training-mode passes give non-trivial running statistics and counts
        for seed in range(2):
            ours(image(4, 3, 32, 32, seed=seed, dtype=np.float32))
    save_safetensors(ours.state_dict(), tmp_path / "ours.safetensors")
    theirs = getattr(torchvision.models, arch)(num_classes=10)
    theirs.load_state_dict(load_file(tmp_path / "ours.safetensors"), strict=True)
    assert int(theirs.bn1.num_batches_tracked) == 2
    theirs.eval()
    ours.eval()
    assert_same_logits(torch, ours, theirs, seed=2)


def test_training_mode_statistics_match_torchvision():
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    theirs = randomised_torchvision(torch, torchvision, "resnet18", seed=5).train()
    ours = resnet18()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        theirs(torch.from_numpy(x))
    with tg.no_grad():
        ours(tg.Tensor(x))
    for key, value in theirs.state_dict().items():
        if "running" in key or "num_batches" in key:
            np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


def test_saved_weights_round_trip_through_our_loader(tmp_path):
    model = resnet50(num_classes=4, width=4)
    save_safetensors(model.state_dict(), tmp_path / "r50.safetensors")
    assert sorted(load_safetensors(tmp_path / "r50.safetensors")) == sorted(model.state_dict())
    again = resnet50(num_classes=4, weights=tmp_path / "r50.safetensors", width=4)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[key], value, err_msg=key)
