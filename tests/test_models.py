"""ResNet and U-Net: shapes, layer groups, and float64 gradchecks of tiny configurations end to end."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv.models import Bottleneck, ResNet, resnet18, resnet34, resnet_small, unet_resnet


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
    # stages: stem (H), stage1 (H), stage2 (H/2), stage3 (H/4), stage4 (H/8): the last at each size
    assert model.skip_ids == [1, 2, 3]
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
