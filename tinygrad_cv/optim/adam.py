"""Adam and AdamW, with PyTorch's update formulas."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from ..tensor import Tensor
from .optimizer import Optimizer, ParamGroup, check_number


class Adam(Optimizer):
    """Adam (Kingma & Ba). At step t, with g the gradient:

        g   <- g + weight_decay * p                        (Adam: L2 penalty in the gradient)
        p   <- p * (1 - lr * weight_decay)                 (AdamW: decoupled decay, instead)
        m   <- beta1 * m + (1 - beta1) * g
        v   <- beta2 * v + (1 - beta2) * g^2
        p   <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Checked whenever set: lr and weight_decay finite and >= 0; betas two numbers in [0, 1), as PyTorch;
    eps finite and > 0 (PyTorch accepts 0, which divides by zero where a gradient has been 0: refused).
    """

    momentum_key = "betas"
    state_keys = ("step", "exp_avg", "exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        betas = tuple(betas) if isinstance(betas, (list, tuple)) else betas
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def check_hypers(self, group: Mapping[str, Any]) -> None:
        super().check_hypers(group)
        name, betas = type(self).__name__, group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            check_number(beta, f"{name}: betas[{i}]", low=0.0, high=1.0, high_open=True)
        check_number(group["eps"], f"{name}: eps", low=0.0, low_open=True)

    def update(self, group: ParamGroup, param: Tensor, grad: Any, state: dict[str, Any]) -> None:
        p, xp = param.data, param.xp
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p), exp_avg_sq=xp.zeros_like(p))
        state["step"] += 1
        if wd and self.decoupled_weight_decay:
            p *= 1 - lr * wd
        elif wd:
            grad = grad + wd * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1 ** state["step"]
        bias_correction2_sqrt = (1 - beta2 ** state["step"]) ** 0.5
        denom = xp.sqrt(v) / bias_correction2_sqrt + group["eps"]
        p -= (lr / bias_correction1) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); default weight_decay 1e-2, as PyTorch."""

    decoupled_weight_decay = True

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
