"""The differentiable functions, with PyTorch's names and semantics. Import as ``F``.

Where each op lives:
  ops/elementwise.py  add sub mul div neg pow exp log sqrt sin cos abs maximum minimum where clamp
                      relu leaky_relu sigmoid tanh, comparisons
  ops/reduce.py       sum mean amax amin var std logsumexp softmax log_softmax argmax argmin
  ops/linalg.py       matmul
  ops/shape.py        reshape view flatten permute transpose squeeze unsqueeze expand getitem
                      cat stack split chunk pad cast to_device
  ops/roi.py          roi_align roi_pool
"""
from .ops.elementwise import (abs, add, clamp, compare, cos, div, exp, leaky_relu, log, maximum, minimum,  # noqa: F401
                              mul, neg, pow, relu, sigmoid, sign, sin, sqrt, sub, tanh, where)
from .ops.linalg import matmul  # noqa: F401
from .ops.reduce import (amax, amin, argmax, argmin, log_softmax, logsumexp, mean, softmax, std, sum,  # noqa: F401
                         var)
from .ops.shape import (cast, cat, chunk, expand, flatten, getitem, pad, permute, reshape, split,  # noqa: F401
                        squeeze, stack, to_device, transpose, unsqueeze, view)
from .ops.roi import roi_align, roi_pool  # noqa: F401

max = amax
min = amin
