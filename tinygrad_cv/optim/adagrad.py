"""Adagrad: each coordinate's step divided by the root of its summed squared gradients, as PyTorch."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..tensor import Tensor
from .optimizer import Optimizer, ParamGroup, check_number


class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer), as ``torch.optim.Adagrad``. At step t, with g = grad +
    weight_decay * p:

        s <- s + g^2                                   (sum, from initial_accumulator_value)
        p <- p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Checked whenever set: lr, weight_decay, lr_decay and initial_accumulator_value finite and >= 0, as
    PyTorch; eps finite and > 0 (PyTorch accepts 0, which divides by zero where every gradient so far has
    been 0 and the accumulator started at 0: refused). A parameter's state is made at its first step
    (PyTorch makes it at construction, from the same value).
    """

    state_keys = ("step", "sum")

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def check_hypers(self, group: Mapping[str, Any]) -> None:
        super().check_hypers(group)
        for key in ("lr_decay", "initial_accumulator_value"):
            check_number(group[key], f"Adagrad: {key}", low=0.0)
        check_number(group["eps"], "Adagrad: eps", low=0.0, low_open=True)

    def update(self, group: ParamGroup, param: Tensor, grad: Any, state: dict[str, Any]) -> None:
        p, xp = param.data, param.xp
        if not state:
            state.update(step=0, sum=xp.full_like(p, group["initial_accumulator_value"]))
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p
        s = state["sum"]
        s += grad * grad
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        p -= clr * (grad / (xp.sqrt(s) + group["eps"]))
