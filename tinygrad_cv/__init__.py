"""tinygrad_cv: a small, readable deep-learning engine for computer vision on NumPy and CuPy.

    import tinygrad_cv as tg
    from tinygrad_cv import functional as F
"""
from . import functional  # noqa: F401
# The ops PyTorch also offers at torch.* (the same function objects as in functional).
from .functional import (abs, add, all, amax, amin, any, argmax, argmin, cat, ceil, chunk, clamp, clip,  # noqa: F401
                         clone, conv2d, conv_transpose2d, cos, cumsum, div, eq, exp, expm1, flatten, flip,
                         floor, floor_divide, ge, gt, isfinite, isinf, isnan, le, log, log1p, log_softmax,
                         logical_not, logsumexp, lt, matmul, max, maximum, mean, min, minimum, mul, ne, neg,
                         permute, pixel_shuffle, pow, prod, reciprocal, relu, remainder, reshape, round, rsqrt,
                         sigmoid, sign, sin, softmax, split, sqrt, square, squeeze, stack, std, sub, sum, tanh,
                         transpose, trunc, unsqueeze, var, where)
from .autograd import Function, is_grad_enabled, no_grad  # noqa: F401
from .backend import cuda_available  # noqa: F401
from .backend.threads import get_num_threads, set_num_threads  # noqa: F401
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
from .random import manual_seed  # noqa: F401
from .tensor import (Tensor, arange, eye, full, full_like, ones, ones_like, rand, rand_like, randn,  # noqa: F401
                     randn_like, tensor, zeros, zeros_like)

# dtype names, as torch.float32, torch.int64, torch.bool (NumPy reads them with np.dtype)
float16, float32, float64 = "float16", "float32", "float64"
uint8, int8, int16, int32, int64, bool = "uint8", "int8", "int16", "int32", "int64", "bool"
