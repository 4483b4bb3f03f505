"""The checker itself: correct backwards pass, deliberately wrong ones fail, and failures say which
input and by how much."""
import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv.autograd import Function


class Flip(Function):
    """y = x reversed; the correct backward reverses g back. The "reversed" bug forgets to."""
    def forward(ctx, x, bug=None):
        ctx.bug = bug
        return x[::-1] * 3

    def backward(ctx, g):
        if ctx.bug == "reversed":
            return g * 3
        if ctx.bug == "scaled":
            return g[::-1] * 3.01
        return g[::-1] * 3


class MulBoth(Function):
    """z = a * b, optionally forgetting b's gradient."""
    def forward(ctx, a, b, bug=None):
        ctx.save(a, b)
        ctx.bug = bug
        return a * b

    def backward(ctx, g):
        a, b = ctx.saved
        return g * b, (None if ctx.bug == "drop" else g * a)


def x64(*shape, seed=0):
    return tg.Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("mode", ["directional", "jacobian"])
def test_correct_backward_passes(mode):
    assert tg.gradcheck(lambda x: Flip.apply(x), [x64(5)], mode=mode)
    assert tg.gradcheck(lambda a, b: MulBoth.apply(a, b), [x64(3), x64(3, seed=1)], mode=mode)


@pytest.mark.parametrize("mode", ["directional", "jacobian"])
@pytest.mark.parametrize("bug", ["reversed", "scaled"])
def test_wrong_backward_fails(bug, mode):
    with pytest.raises(tg.GradcheckError, match="input 0"):
        tg.gradcheck(lambda x: Flip.apply(x, bug=bug), [x64(6)], mode=mode)


def test_reversed_backward_would_pass_an_all_ones_check():
    """Why an all-ones upstream gradient is weak: it is its own reverse, so a backward that forgets
    to reverse gives the right answer for it, and only a random upstream gradient exposes the bug."""
    def grad(bug, upstream):
        x = x64(6)
        Flip.apply(x, bug=bug).backward(upstream)
        return x.grad.numpy()
    ones = np.ones(6)
    np.testing.assert_array_equal(grad("reversed", ones), grad(None, ones))
    random = np.random.default_rng(3).standard_normal(6)
    assert not np.allclose(grad("reversed", random), grad(None, random))


@pytest.mark.parametrize("mode", ["directional", "jacobian"])
def test_dropped_second_input_is_named(mode):
    a, b = x64(4), x64(4, seed=1)
    with pytest.raises(tg.GradcheckError, match=r"input 1 \(shape \(4,\)\)"):
        tg.gradcheck(lambda a, b: MulBoth.apply(a, b, bug="drop"), [a, b], mode=mode)


def test_jacobian_mode_reports_worst_entry_and_errors():
    with pytest.raises(tg.GradcheckError, match=r"worst Jacobian entry .*max abs error"):
        tg.gradcheck(lambda x: Flip.apply(x, bug="reversed"), [x64(4)], mode="jacobian")


def test_directional_reports_abs_and_rel_error():
    with pytest.raises(tg.GradcheckError, match=r"abs error .* rel error"):
        tg.gradcheck(lambda x: Flip.apply(x, bug="scaled"), [x64(8)])


def test_rejects_float32_and_inputs_without_grad():
    with pytest.raises(TypeError, match="float64"):
        tg.gradcheck(lambda x: x * 2, [tg.randn(3, requires_grad=True)])
    with pytest.raises(ValueError, match="no input requires grad"):
        tg.gradcheck(lambda x: x * 2, [tg.Tensor(np.ones(3))])


def test_non_differentiable_inputs_are_skipped():
    a, b = x64(3), tg.Tensor(np.ones(3))
    assert tg.gradcheck(lambda a, b: a * b, [a, b])
