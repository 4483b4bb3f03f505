"""The differentiable functions, with PyTorch's names and semantics. Import as ``F``.

Where each op lives:
  ops/elementwise.py  add sub mul div neg pow exp log sqrt sin cos abs maximum minimum where clamp
                      relu leaky_relu sigmoid tanh, comparisons
  ops/reduce.py       sum mean amax amin var std logsumexp softmax log_softmax argmax argmin
  ops/linalg.py       matmul
  ops/shape.py        reshape view flatten permute transpose squeeze unsqueeze expand getitem
                      cat stack split chunk pad cast to_device
  ops/roi.py          roi_align roi_pool
  ops/conv.py         linear conv2d conv_transpose2d bias_relu
  ops/pool.py         max_pool2d avg_pool2d adaptive_avg_pool2d adaptive_max_pool2d
  ops/norm.py         batch_norm dropout
  ops/resample.py     interpolate pixel_shuffle
  ops/loss.py         binary_cross_entropy_with_logits binary_cross_entropy cross_entropy nll_loss
                      mse_loss l1_loss smooth_l1_loss dice_loss
"""
from .ops.elementwise import (abs, add, clamp, compare, cos, div, exp, leaky_relu, log, maximum, minimum,  # noqa: F401
                              mul, neg, pow, relu, sigmoid, sign, sin, sqrt, sub, tanh, where)
from .ops.linalg import matmul  # noqa: F401
from .ops.reduce import (amax, amin, argmax, argmin, log_softmax, logsumexp, mean, softmax, std, sum,  # noqa: F401
                         var)
from .ops.shape import (cast, cat, chunk, expand, flatten, getitem, pad, permute, reshape, split,  # noqa: F401
                        squeeze, stack, to_device, transpose, unsqueeze, view)
from .ops.roi import roi_align, roi_pool  # noqa: F401
from .ops.conv import bias_relu, conv2d, conv_transpose2d, linear  # noqa: F401
from .ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d  # noqa: F401
from .ops.norm import batch_norm, dropout  # noqa: F401
from .ops.resample import interpolate, pixel_shuffle  # noqa: F401
from .ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, dice_loss,  # noqa: F401
                       l1_loss, mse_loss, nll_loss, smooth_l1_loss)

max = amax
min = amin
