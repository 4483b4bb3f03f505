"""Run every declaration of op_specs.py: forward against NumPy in float64/float32/float16 on every
device, inputs left unmodified, non-contiguous inputs, and a float64 gradcheck over random shapes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cv as tg
from conftest import DEVICES
from op_specs import SPECS

TOLERANCE = {np.float64: 1e-10, np.float32: 2e-5}


def draw_case(data, spec):
    """Shapes, extra parameters and float64 input arrays for one example."""
    drawn = data.draw(spec.shapes, label="shapes")
    shapes, params = drawn if isinstance(drawn[-1], dict) else (drawn, {})
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    return params, spec.inputs(rng, shapes)


def run(spec, arrays, params, dtype=np.float64, device="cpu", requires_grad=False):
    tensors = [tg.Tensor(a.astype(dtype), device=device, requires_grad=requires_grad) for a in arrays]
    return tensors, spec.fn(*tensors, **params)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@given(data=st.data())
def test_forward_matches_numpy(spec, device, data):
    params, arrays = draw_case(data, spec)
    for dtype in (np.float64, np.float32, np.float16):
        rounded = [a.astype(dtype).astype(np.float64) for a in arrays]  # reference sees the same inputs
        expected = np.asarray(spec.ref(*rounded, **params), dtype=np.float64)
        _, out = run(spec, arrays, params, dtype, device)
        assert out.dtype == dtype, f"{spec.name}: {dtype.__name__} input gave {out.dtype}"
        assert out.shape == expected.shape
        got = out.numpy().astype(np.float64)
        if dtype is np.float16:
            scale = np.abs(expected).max(initial=0) + 1
            np.testing.assert_allclose(got, expected, rtol=spec.fp16_rtol, atol=spec.fp16_rtol * scale)
        else:
            np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@given(data=st.data())
def test_gradcheck(spec, data):
    params, arrays = draw_case(data, spec)
    tensors = [tg.Tensor(a, requires_grad=True) for a in arrays]
    assert tg.gradcheck(lambda *ts: spec.fn(*ts, **params), tensors)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@given(data=st.data())
def test_inputs_unmodified_and_noncontiguous(spec, data):
    params, arrays = draw_case(data, spec)
    tensors, out = run(spec, arrays, params, requires_grad=True)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(upstream)
    for t, a in zip(tensors, arrays):
        np.testing.assert_array_equal(t.numpy(), a, err_msg=f"{spec.name} modified its input")
    # The same values laid out in memory backwards (negative strides) must give the same results.
    flipped = [tg.Tensor(np.flip(a.copy()), requires_grad=True) for a in arrays]
    views = [t[tuple(slice(None, None, -1) for _ in range(t.ndim))] for t in flipped]
    out2 = spec.fn(*views, **params)
    np.testing.assert_allclose(out2.numpy(), out.numpy(), rtol=1e-12, atol=1e-12)
    out2.backward(upstream)
    for t, f in zip(tensors, flipped):
        np.testing.assert_allclose(np.flip(f.grad.numpy()), t.grad.numpy(), rtol=1e-12, atol=1e-12)
