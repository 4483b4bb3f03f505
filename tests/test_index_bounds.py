"""Indices that cannot overflow (issue 19.3): 64-bit offsets in the kernels, refusals in the launchers.

A GPU holds tensors of more than 2^31 - 1 elements (1 x 8193 x 512 x 512 has 2^31 + 2^18), where a
32-bit int index wraps to a negative number: a grid-stride loop `for (int i = ...; i < P*H*W; ...)`
then never runs, or writes before the array. The kernels index whole tensors with long long; offsets
inside one plane (h*W + w, and max pooling's int32 argmax) stay int, and the launchers refuse planes of
2^31 elements or more, and batches beyond the grid's y limit, from the shapes alone: the refusal tests
below pass inputs with zero strides (np.broadcast_to) or small gradients with a large input_shape, so
a launcher that allocated before checking would try to allocate gigabytes.

Running a kernel on 2^31 elements is out of reach of the CPU emulator, so the 64-bit kernels are
checked in two steps: the emulator computes in the GPU's integer types (int wraps at 32 bits, long long
at 64, signed overflow wraps as on the GPU: g++ -fwrapv), and the kernels' index helpers and every
grid-stride loop are 64-bit.
"""
import re

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv.backend import emulator, launch, nvrtc

INT_MAX = 2**31 - 1
ISSUE_SHAPE = (1, 8193, 512, 512)  # the max_pool2d_backward shape that left the gradient unwritten

PRODUCTS = r'''
#include "common.h"
extern "C" __global__ void products(const int* dims, int* as_int, long long* as_long, long long* sizes) {
    as_int[0] = dims[0] * dims[1] * dims[2] * dims[3];                // int * int: wraps at 2^31
    as_long[0] = (long long)dims[0] * dims[1] * dims[2] * dims[3];    // promoted first: exact
    int i = dims[4];
    i += dims[5];                                                     // a 32-bit grid-stride step
    as_int[1] = i;
    sizes[0] = sizeof(first_index());
    sizes[1] = sizeof(grid_stride());
    sizes[2] = sizeof(int);
}
'''


def run_products(dims):
    as_int, as_long, sizes = np.zeros(2, np.int32), np.zeros(1, np.int64), np.zeros(3, np.int64)
    emulator.load(PRODUCTS, "products.cu").get_function("products")(
        (1,), (1,), (np.array(dims, np.int32), as_int, as_long, sizes))
    return as_int, as_long, sizes


def test_the_emulator_wraps_int_at_32_bits_and_keeps_long_long_exact():
    start, step = INT_MAX - 5, 1 << 20  # the last element of a big tensor, plus a grid's stride
    as_int, as_long, sizes = run_products((*ISSUE_SHAPE, start, step))
    exact = int(np.prod(ISSUE_SHAPE, dtype=np.int64))
    assert exact == 2**31 + 2**18
    wrapped = (exact + 2**31) % 2**32 - 2**31  # two's complement, computed in Python's exact ints
    assert as_int[0] == wrapped < 0            # what `int n = P * H * W` was on the GPU
    assert as_long[0] == exact
    assert as_int[1] == start + step - 2**32 < 0  # an int loop index past INT_MAX goes negative
    assert sizes[2] == 4


def test_the_index_helpers_are_64_bit():
    _, _, sizes = run_products((1, 1, 1, 1, 0, 0))
    assert list(sizes[:2]) == [8, 8]


GRID_STRIDE_LOOP = re.compile(r"for\s*\(\s*([\w ]+?)\s+\w+\s*=\s*first_index\(\)")


@pytest.mark.parametrize("file", nvrtc.kernel_names())
def test_every_grid_stride_loop_has_a_64_bit_index(file):
    source = nvrtc.read_kernel(file)
    index_types = GRID_STRIDE_LOOP.findall(emulator._strip_comments(source))
    assert index_types or "first_index" not in source, f"{file}.cu: a grid-stride loop the test cannot read"
    assert all(t.split() == ["long", "long"] for t in index_types), f"{file}.cu loop index types {index_types}"


def test_element_counts_are_passed_as_long_long():
    """The launchers' counts reach the kernels as 64-bit parameters (the emulator checks each C type)."""
    for file in nvrtc.kernel_names():
        for k in emulator.parse_kernels(nvrtc.read_kernel(file)):
            for p in k.params:
                if p.name in ("n", "L"):
                    assert p.ctype == "long long", f"{k.name}: {p}"


# ------------------------------------------------------------------------------ launcher refusals
def huge(shape, dtype=np.float32):
    """An input of ``shape`` that occupies one element (zero strides): any copy of it would be huge."""
    return np.broadcast_to(np.zeros(1, dtype), shape)


def test_planes_up_to_int_max_pass_and_larger_ones_are_refused():
    launch._check_planes("k", input=(1, INT_MAX), output=(46340, 46340))  # 2147395600 <= INT_MAX
    for plane in [(2, 2**30), (46341, 46341), (65536, 32768)]:
        with pytest.raises(ValueError, match=rf"k: the output plane {plane[0]} x {plane[1]} has "
                                             rf"{plane[0] * plane[1]} elements"):
            launch._check_planes("k", input=(1, 1), output=plane)


def test_max_pool2d_backward_refuses_a_plane_beyond_int32_before_allocating():
    gy, argmax = np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.int32)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: the input plane 46341 x 46341 has 2147488281"):
        launch.max_pool2d_backward(gy, argmax, (1, 1, 46341, 46341), kernel_size=46341)


@pytest.mark.parametrize("call, kernel", [
    (lambda x: launch.max_pool2d(x, 46341), "max_pool2d_forward"),
    (lambda x: launch.im2col(x, 46341), "im2col"),
    (lambda x: launch.roi_align(x, np.zeros((1, 5), np.float32), 1), "roi_align_forward"),
])
def test_launchers_refuse_an_input_plane_beyond_int32_before_copying(call, kernel):
    with pytest.raises(ValueError, match=rf"{kernel}: the input plane 46341 x 46341 has 2147488281 elements"):
        call(huge((1, 1, 46341, 46341)))


def test_roi_align_backward_refuses_a_plane_beyond_int32_before_allocating():
    gy = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"roi_align_backward: the input plane 65536 x 32768"):
        launch.roi_align_backward(gy, np.zeros((1, 5), np.float32), (1, 1, 65536, 32768))


def test_col2im_refuses_an_output_plane_beyond_int32():
    cols = huge((1, 1, 2**31))
    with pytest.raises(ValueError, match=r"col2im: the input plane 2 x 1073741824"):
        launch.col2im(cols, (1, 1, 2, 2**30), 1)


def test_im2col_batches_up_to_the_grid_limit(monkeypatch):
    monkeypatch.setattr(emulator, "RACE_CHECK_BUDGET", 0)  # 65535 blocks: skip the (slow) race check
    x = np.arange(launch.MAX_GRID_Y, dtype=np.float32).reshape(-1, 1, 1, 1)
    np.testing.assert_array_equal(launch.im2col(x, 1, block=1), x.reshape(-1, 1, 1))
    too_many = r"a batch of 65536 images is more than the grid's y dimension holds \(65535"
    with pytest.raises(ValueError, match=rf"im2col: {too_many}"):
        launch.im2col(huge((65536, 1, 1, 1)), 1)
    with pytest.raises(ValueError, match=rf"col2im: {too_many}"):
        launch.col2im(huge((65536, 1, 1)), (65536, 1, 1, 1), 1)


def test_dimensions_beyond_int32_are_refused():
    launch._ints(INT_MAX, -2**31, op="k")
    for v in (2**31, -2**31 - 1):
        with pytest.raises(ValueError, match=rf"k: size {v} does not fit in a 32-bit int"):
            launch._ints(v, op="k")


def test_counts_beyond_int32_reach_the_kernel_whole():
    """A count of 2^31 + 2^18 passes as a long long; the kernel sees it unchanged (here: the non-finite
    check's loop, whose threads all stop at the first element they read, an inf)."""
    x = np.full(64, np.inf, np.float32)
    flag = np.zeros(1, np.int32)
    check = launch._module("nonfinite", "emu").get_function("nonfinite_check_f32")
    check((2,), (32,), (x, np.int64(2**31 + 2**18), flag))
    assert flag[0] == 1
    with pytest.raises(TypeError, match="nonfinite_check_f32: argument n is a C long long"):
        check((2,), (32,), (x, np.int32(64), flag))


# ------------------------------------------------------------------------------ on a real GPU
@pytest.mark.gpu
@pytest.mark.skipif(not tg.cuda_available(), reason="no CUDA device")
def test_max_pool2d_on_more_than_2_31_elements_on_the_gpu():
    """The issue's case, 1 x 8193 x 512 x 512 (2^31 + 2^18 elements, 4.3 GB in float16): forward and
    backward reach the last plane, and every 2 x 2 window's gradient lands on exactly one pixel."""
    import cupy

    n, c, h, w = ISSUE_SHAPE
    x = (cupy.arange(n * c * h * w, dtype=cupy.int64) % 251).astype(cupy.float16).reshape(ISSUE_SHAPE)
    y, argmax = launch.max_pool2d(x, 2)
    last = x[0, -1].reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
    assert bool((y[0, -1] == last).all())
    del x
    gx = launch.max_pool2d_backward(cupy.ones_like(y), argmax, ISSUE_SHAPE, 2)
    del y, argmax
    per_window = gx.reshape(c, h // 2, 2, w // 2, 2).sum(axis=(2, 4), dtype=cupy.float32)
    assert bool((per_window == 1).all())


@pytest.mark.gpu
@pytest.mark.skipif(not tg.cuda_available(), reason="no CUDA device")
def test_bias_relu_on_more_than_2_31_elements_on_the_gpu():
    import cupy

    x = cupy.full(ISSUE_SHAPE, -1, cupy.float16)
    bias = (cupy.arange(ISSUE_SHAPE[1]) % 3).astype(cupy.float16)  # 0, 1, 2: relu(-1 + b) = 0, 0, 1
    y = launch.bias_relu(x, bias)
    del x
    expected = (cupy.arange(ISSUE_SHAPE[1]) % 3 == 2).astype(cupy.float32) * ISSUE_SHAPE[2] * ISSUE_SHAPE[3]
    assert bool((y[0].sum(axis=(1, 2), dtype=cupy.float32) == expected).all())
