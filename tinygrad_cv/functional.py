"""The differentiable functions, with PyTorch's names and semantics. Import as ``F``.

Where each op lives:
  ops/elementwise.py  add sub mul div floor_divide remainder neg pow exp expm1 log log1p sqrt rsqrt
                      reciprocal square sin cos abs sign floor ceil round trunc maximum minimum
                      where clamp (clip) relu leaky_relu sigmoid tanh silu gelu, comparisons (eq ne lt le gt ge),
                      isnan isinf isfinite logical_not
  ops/reduce.py       sum prod cumsum mean amax amin max min var std logsumexp softmax log_softmax
                      argmax argmin any all
  ops/linalg.py       matmul
  ops/shape.py        reshape view flatten permute transpose squeeze unsqueeze expand flip getitem
                      cat stack split chunk pad clone cast to_device
  ops/roi.py          roi_align roi_pool multi_scale_roi_align
  ops/conv.py         linear conv2d conv_transpose2d bias_relu
  ops/pool.py         max_pool2d avg_pool2d adaptive_avg_pool2d adaptive_max_pool2d
  ops/norm.py         batch_norm layer_norm group_norm dropout
  ops/resample.py     interpolate pixel_shuffle
  ops/loss.py         binary_cross_entropy_with_logits binary_cross_entropy cross_entropy nll_loss
                      mse_loss l1_loss smooth_l1_loss dice_loss
"""
from .ops.elementwise import (abs, add, ceil, clamp, clip, compare, cos, div, eq, exp, expm1, floor,  # noqa: F401
                              floor_divide, ge, gelu, gt, isfinite, isinf, isnan, le, leaky_relu, log, log1p,
                              logical_not, lt, maximum, minimum, mul, ne, neg, pow, reciprocal, relu,
                              remainder, round, rsqrt, sigmoid, sign, silu, sin, sqrt, square, sub, tanh, trunc,
                              where)
from .ops.linalg import matmul  # noqa: F401
from .ops.reduce import (all, amax, amin, any, argmax, argmin, cumsum, log_softmax, logsumexp, max,  # noqa: F401
                         mean, min, prod, softmax, std, sum, var)
from .ops.shape import (cast, cat, chunk, clone, expand, flatten, flip, getitem, pad, permute, reshape,  # noqa: F401
                        split, squeeze, stack, to_device, transpose, unsqueeze, view)
from .ops.roi import multi_scale_roi_align, roi_align, roi_pool  # noqa: F401
from .ops.conv import bias_relu, conv2d, conv_transpose2d, linear  # noqa: F401
from .ops.pool import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d  # noqa: F401
from .ops.norm import batch_norm, dropout, group_norm, layer_norm  # noqa: F401
from .ops.resample import interpolate, pixel_shuffle  # noqa: F401
from .ops.loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, dice_loss,  # noqa: F401
                       l1_loss, mse_loss, nll_loss, smooth_l1_loss)
