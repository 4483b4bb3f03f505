"""Tensor attributes, creation helpers, dtypes, devices and the seeded generator."""
import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import nn, optim


def test_attributes():
    t = tg.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert t.shape == (2, 2) and t.dtype == np.float32 and t.device == "cpu"
    assert t.requires_grad and t.is_leaf and t.grad is None
    y = t * 2
    assert not y.is_leaf and y.requires_grad
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    np.testing.assert_array_equal(d.numpy(), [[2, 4], [6, 8]])


def test_numpy_is_a_host_copy():
    t = tg.ones(3)
    a = t.numpy()
    a[0] = 5
    assert t.numpy()[0] == 1


def test_item():
    assert tg.Tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        tg.ones(2).item()


def test_default_dtypes_follow_pytorch():
    assert tg.Tensor([1.5]).dtype == np.float32
    assert tg.Tensor([1, 2]).dtype == np.int64
    assert tg.Tensor(np.ones(2)).dtype == np.float64  # NumPy arrays keep their dtype
    assert tg.zeros(2, 3).dtype == np.float32
    assert tg.arange(5).dtype == np.int64 and tg.arange(0.0, 1.0, 0.25).dtype == np.float32


def test_creation_helpers():
    np.testing.assert_array_equal(tg.zeros(2, 3).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(tg.ones((2, 3)).numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(tg.full((2,), 7.0).numpy(), [7, 7])
    np.testing.assert_array_equal(tg.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(tg.arange(1, 7, 2).numpy(), [1, 3, 5])
    x = tg.randn(3, 4, dtype=np.float64)
    for like in (tg.zeros_like, tg.ones_like, tg.rand_like, tg.randn_like):
        y = like(x)
        assert y.shape == x.shape and y.dtype == np.float64
    assert tg.full_like(x, 2.0).numpy().max() == 2.0
    assert tg.ones(2, dtype=np.float16, requires_grad=True).requires_grad


def test_rand_is_uniform_and_randn_normal():
    tg.manual_seed(1)
    u = tg.rand(100_000).numpy()
    n = tg.randn(100_000).numpy()
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01


def test_manual_seed_reproduces():
    tg.manual_seed(42)
    a = tg.randn(5).numpy()
    tg.manual_seed(42)
    np.testing.assert_array_equal(a, tg.randn(5).numpy())
    assert not np.array_equal(a, tg.randn(5).numpy())


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_conversions(dtype):
    t = tg.randn(3).to(dtype=dtype)
    assert t.dtype == dtype
    assert t.float().dtype == np.float32 and t.half().dtype == np.float16 and t.double().dtype == np.float64


def test_devices():
    t = tg.ones(3, device="emu")
    assert t.device == "emu" and t.to("cpu").device == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tg.ones(3, device="tpu")
    if not tg.cuda_available():
        with pytest.raises(RuntimeError, match="cupy.is_available"):
            tg.ones(3, device="cuda")


def test_comparisons_are_elementwise_and_tensors_stay_hashable():
    a = tg.Tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal((a > 1.5).numpy(), [False, True, True])
    np.testing.assert_array_equal((a == a).numpy(), [True, True, True])
    assert len({a, a}) == 1


def test_argmax_and_indexing_with_tensors():
    a = tg.Tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])
    np.testing.assert_array_equal(a.argmax(1).numpy(), [1, 0])
    np.testing.assert_array_equal(a[tg.Tensor([1, 1])].numpy(), [[7, 0, 1], [7, 0, 1]])
    np.testing.assert_array_equal(a[a > 4].numpy(), [5, 7])


@pytest.mark.parametrize("make", [tg.Tensor, tg.tensor, lambda a: nn.Parameter(tg.tensor(a))],
                         ids=["Tensor", "tensor", "Parameter"])
def test_a_tensor_never_aliases_the_callers_array(make):
    """The optimisers update parameters in place: the array a tensor was made from must not change."""
    initial = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
    kept = initial.copy()
    w = make(initial).requires_grad_()
    (w * w).sum().backward()
    optim.SGD([w], lr=0.1).step()
    np.testing.assert_array_equal(initial, kept)
    np.testing.assert_allclose(w.numpy(), kept - 0.1 * 2 * kept, rtol=1e-6)
    view = initial[:, ::-1]  # a view of the caller's array is not shared either
    assert not np.shares_memory(tg.Tensor(view).data, initial)


def test_detach_shares_the_data_as_pytorch():
    a = tg.randn(3, requires_grad=True)
    d = a.detach()
    assert d.data is a.data and not d.requires_grad and d.is_leaf
