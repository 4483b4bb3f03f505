"""The shared helpers: the backend's array module, host copies and accumulation dtype; ops/_util's
"int or pair" arguments and sliding-window geometry."""
import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import backend
from tinygrad_cv.ops._util import Window, check_4d, pair


def test_array_module_of_host_arrays_is_numpy():
    assert backend.array_module(np.zeros(3)) is np
    assert backend.array_module(np.float32(1)) is np


def test_as_host_copies_and_never_aliases():
    x = np.arange(6.0).reshape(2, 3)
    host = backend.as_host(x)
    host[0, 0] = 42
    assert x[0, 0] == 0
    np.testing.assert_array_equal(backend.as_host(tg.Tensor(x)), x)
    np.testing.assert_array_equal(backend.as_host([[1, 2], [3, 4]]), np.array([[1, 2], [3, 4]]))


@pytest.mark.parametrize("dtype, expected", [(np.float16, np.float32), (np.float32, np.float32),
                                             (np.float64, np.float64), (np.int32, np.int32), (bool, bool)])
def test_acc_dtype_widens_only_float16_and_is_never_none(dtype, expected):
    got = backend.acc_dtype(np.dtype(dtype))
    assert isinstance(got, np.dtype) and got == np.dtype(expected)


def test_float16_sum_accumulates_in_float32():
    x = np.full(4096, 1.0, np.float16)   # 4096 is past float16's exact integers after 2048 + 1 steps
    assert float(tg.Tensor(x).sum().item()) == 4096.0
    assert float(np.cumsum(x)[-1]) != 4096.0     # the same sum accumulated in float16 saturates


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((2, 5), (2, 5)), ([4], (4, 4)), (np.int64(2), (2, 2))])
def test_pair_accepts_ints_and_pairs(value, expected):
    assert pair(value, "f", "kernel_size", 1) == expected


@pytest.mark.parametrize("value, error, message", [
    (1.5, TypeError, r"f: size must be an int or a pair of ints, got 1.5"),
    (True, TypeError, r"f: size must be an int or a pair of ints, got True"),
    ((1, 2, 3), TypeError, r"f: size must be an int or a pair of ints, got \(1, 2, 3\)"),
    ((2, 0), ValueError, r"f: size must be >= 1, got \(2, 0\)"),
])
def test_pair_refuses_with_a_message_naming_the_argument(value, error, message):
    with pytest.raises(error, match=message):
        pair(value, "f", "size", 1)


def test_check_4d_names_the_function_and_argument():
    with pytest.raises(TypeError, match="g: input must be a Tensor, got ndarray"):
        check_4d("g", "input", np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"g: weight must be 4-D .*got shape \(2, 2\)"):
        check_4d("g", "weight", tg.zeros(2, 2))


def test_window_from_args_defaults_stride_to_the_kernel_and_pads_both_sides():
    window = Window.from_args("f", 3, padding=(1, 2))
    assert window == ((3, 3), (3, 3), ((1, 1), (2, 2)), (1, 1))
    kernel, stride, padding, dilation = Window.from_args("f", (2, 3), stride=1, dilation=2)
    assert (kernel, stride, padding, dilation) == ((2, 3), (1, 1), ((0, 0), (0, 0)), (2, 2))
    with pytest.raises(ValueError, match="f: stride must be >= 1, got 0"):
        Window.from_args("f", 3, stride=0)


@pytest.mark.parametrize("size, kernel, stride, padding, dilation", [
    ((7, 9), (3, 2), (1, 2), ((1, 1), (0, 2)), (1, 1)),
    ((10, 6), (3, 3), (3, 2), ((0, 2), (1, 0)), (2, 1)),
    ((5, 5), (5, 1), (1, 1), ((0, 0), (0, 0)), (1, 3)),
])
def test_window_output_size_counts_the_window_positions(size, kernel, stride, padding, dilation):
    """Independent count: the window starts that fit inside the padded input, enumerated."""
    window = Window(kernel, stride, padding, dilation)
    expected = tuple(sum(1 for start in range(0, n + lo + hi, s) if start + d * (k - 1) < n + lo + hi)
                     for n, k, s, (lo, hi), d in zip(size, kernel, stride, padding, dilation))
    assert window.output_size(size) == expected
