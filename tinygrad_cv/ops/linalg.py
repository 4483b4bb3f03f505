"""Matrix product with NumPy's/PyTorch's rules: 1-D operands are promoted and squeezed back, batch
dims broadcast. float16 is multiplied in float32 (see ``matmul_arrays``)."""
from __future__ import annotations

from ..autograd import Function, sum_to_shape
from ..tensor import Tensor
from ._util import matmul_arrays


class MatMul(Function):
    """C = A B;  dA = dC B^T,  dB = A^T dC (batch dims summed back by sum_to_shape)."""
    def forward(ctx, a, b):
        ctx.save(a, b)
        return matmul_arrays(ctx.xp, a, b)

    def backward(ctx, g):
        a, b = ctx.saved
        xp = ctx.xp
        a2 = a[None, :] if a.ndim == 1 else a           # (k,) -> (1, k)
        b2 = b[:, None] if b.ndim == 1 else b           # (k,) -> (k, 1)
        g2 = g.reshape(1, 1) if a.ndim == b.ndim == 1 else \
            g[..., None, :] if a.ndim == 1 else g[..., None] if b.ndim == 1 else g  # as if a2 @ b2
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = sum_to_shape(xp, matmul_arrays(xp, g2, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = sum_to_shape(xp, matmul_arrays(xp, xp.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: the last dim of the first "
                         f"({k_a}) must equal the {'only' if b.ndim == 1 else 'second-to-last'} dim of the "
                         f"second ({k_b})")
    return MatMul.apply(a, b)
