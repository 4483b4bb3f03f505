"""Gradient clipping by the global norm, as ``torch.nn.utils.clip_grad_norm_``."""
from __future__ import annotations

import math
import numbers
from typing import Iterable

import numpy as np

from ..tensor import Tensor


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together, in place, so that their joint norm is at most ``max_norm``.

    total = (sum_p ||grad_p||^q)^(1/q)  (max |grad| for q = inf);
    every grad *= min(1, max_norm / (total + 1e-6)), computed on the gradients' device (nothing is read
    back to the host, unless ``error_if_nonfinite`` asks for the check).
    Returns the total norm before clipping, as a 0-d float32 Tensor. Parameters without a gradient are
    skipped. ``max_norm`` must be finite and > 0 (PyTorch accepts a negative one, which flips the
    gradients' sign).
    """
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or not 0 < max_norm < math.inf:
        raise ValueError(f"clip_grad_norm_: max_norm must be a finite number > 0, got {max_norm!r}")
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad.data for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive (or inf), got {norm_type}")
    xp = params[0].xp
    norms = xp.stack([_norm(xp, g, norm_type) for g in grads])
    total = norms.max() if norm_type == math.inf else (norms ** norm_type).sum() ** (1 / norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           f"{float(total)}; the gradients contain inf or NaN")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)  # stays on the device: no read back per step
    for g in grads:
        g *= coef.astype(g.dtype)
    return Tensor(total.astype(np.float32), device=params[0].device)


def _norm(xp, grad, norm_type):
    """One gradient's norm, accumulated in float32 at least."""
    g = xp.abs(grad.astype(np.promote_types(grad.dtype, np.float32), copy=False))
    return g.max() if norm_type == math.inf else (g ** norm_type).sum() ** (1 / norm_type)
