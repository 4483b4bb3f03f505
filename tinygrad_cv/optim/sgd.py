"""Stochastic gradient descent with momentum, dampening, weight decay and Nesterov, as PyTorch."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..tensor import Tensor
from .optimizer import Optimizer, ParamGroup, check_number


class SGD(Optimizer):
    """With g = grad + weight_decay * p, and the buffer b started at g on the first step:

        b <- momentum * b + (1 - dampening) * g
        d  = g + momentum * b   (nesterov)   or   b   (otherwise; g itself when momentum = 0)
        p <- p - lr * d

    lr defaults to 1e-3, as PyTorch's. Checked whenever set: lr and weight_decay finite and >= 0; momentum
    in [0, 1) (PyTorch accepts 1 and more, where the buffer never forgets, or grows: refused here);
    dampening finite; nesterov needs momentum > 0 and dampening 0, as PyTorch.
    """

    momentum_key = "momentum"
    state_keys = ("momentum_buffer",)

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def check_hypers(self, group: Mapping[str, Any]) -> None:
        super().check_hypers(group)
        check_number(group["momentum"], "SGD: momentum", low=0.0, high=1.0, high_open=True)
        check_number(group["dampening"], "SGD: dampening")
        if not isinstance(group["nesterov"], bool):
            raise TypeError(f"SGD: nesterov must be True or False, got {group['nesterov']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def update(self, group: ParamGroup, param: Tensor, grad: Any, state: dict[str, Any]) -> None:
        p = param.data
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.astype(p.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p -= group["lr"] * grad
