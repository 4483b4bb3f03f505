"""tinygrad_cv: a small, readable deep-learning engine for computer vision on NumPy and CuPy.

    import tinygrad_cv as tg
    from tinygrad_cv import functional as F
"""
from . import functional  # noqa: F401
from .autograd import Function, is_grad_enabled, no_grad  # noqa: F401
from .backend import cuda_available  # noqa: F401
from .backend.threads import get_num_threads, set_num_threads  # noqa: F401
from .gradcheck import GradcheckError, gradcheck  # noqa: F401
from .random import manual_seed  # noqa: F401
from .tensor import (Tensor, arange, eye, full, full_like, ones, ones_like, rand, rand_like, randn,  # noqa: F401
                     randn_like, tensor, zeros, zeros_like)

float16, float32, float64 = "float16", "float32", "float64"
