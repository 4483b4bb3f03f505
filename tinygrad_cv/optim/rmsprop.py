"""RMSprop: steps divided by a running root-mean-square of the gradients, as PyTorch."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..tensor import Tensor
from .optimizer import Optimizer, ParamGroup, check_number


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), as ``torch.optim.RMSprop``. With g = grad + weight_decay * p:

        v <- alpha * v + (1 - alpha) * g^2                   (square_avg, from 0)
        a  = sqrt(v - m^2) + eps,  m <- alpha * m + (1 - alpha) * g   (centered; m = grad_avg, from 0)
        a  = sqrt(v) + eps                                   (otherwise)
        b <- momentum * b + g / a,  p <- p - lr * b          (momentum > 0; b from 0)
        p <- p - lr * g / a                                  (otherwise)

    (centered: m is updated before a is formed.) Checked whenever set: lr and weight_decay finite and
    >= 0; alpha and momentum in [0, 1) (PyTorch accepts 1 and more: a square average that never forgets
    its zero start, or a growing buffer: refused); eps finite and > 0 (PyTorch accepts 0, which divides by
    zero where a gradient has been 0: refused); centered True or False.
    """

    momentum_key = "momentum"
    state_keys = ("step", "square_avg")
    optional_state_keys = ("momentum_buffer", "grad_avg")

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def check_hypers(self, group: Mapping[str, Any]) -> None:
        super().check_hypers(group)
        for key in ("alpha", "momentum"):
            check_number(group[key], f"RMSprop: {key}", low=0.0, high=1.0, high_open=True)
        check_number(group["eps"], "RMSprop: eps", low=0.0, low_open=True)
        if not isinstance(group["centered"], bool):
            raise TypeError(f"RMSprop: centered must be True or False, got {group['centered']!r}")

    def update(self, group: ParamGroup, param: Tensor, grad: Any, state: dict[str, Any]) -> None:
        p, xp, alpha = param.data, param.xp, group["alpha"]
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(p))
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * grad * grad
        if group["centered"]:
            m = state.setdefault("grad_avg", xp.zeros_like(p))
            m += (1 - alpha) * (grad - m)
            avg = xp.sqrt(v - m * m) + group["eps"]
        else:
            avg = xp.sqrt(v) + group["eps"]
        if group["momentum"] > 0:
            b = state.setdefault("momentum_buffer", xp.zeros_like(p))
            b *= group["momentum"]
            b += grad / avg
            p -= group["lr"] * b
        else:
            p -= group["lr"] * (grad / avg)
