"""The loss modules of ``torch.nn``: each keeps its constructor's arguments and calls its function of ``F``.

As in PyTorch, a class ``weight`` (and BCEWithLogitsLoss's ``pos_weight``) is a buffer, so it moves
with ``to()`` and is saved in the state_dict. The deprecated ``size_average`` and ``reduce`` are
accepted only as None: say ``reduction=`` instead (PyTorch maps them onto it with a warning).
"""
from __future__ import annotations

from .. import functional as F
from ..ops.loss import REDUCTIONS
from ..tensor import Tensor
from .module import Module


class _Loss(Module):
    def __init__(self, size_average: None = None, reduce: None = None, reduction: str = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        if size_average is not None or reduce is not None:
            raise ValueError(f"{name}: size_average and reduce are deprecated in PyTorch and not supported here; "
                             f"pass reduction='mean', 'sum' or 'none' instead")
        if reduction not in REDUCTIONS:
            raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    weight: Tensor | None  # a buffer
    def __init__(self, weight: Tensor | None = None, size_average: None = None, reduce: None = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """``F.cross_entropy`` of logits (N, C, *) and class indices (N, *) or class probabilities."""

    def __init__(self, weight: Tensor | None = None, size_average: None = None, ignore_index: int = -100,
                 reduce: None = None, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """``F.nll_loss`` of log-probabilities (N, C, *) and class indices (N, *)."""

    def __init__(self, weight: Tensor | None = None, size_average: None = None, ignore_index: int = -100,
                 reduce: None = None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """``F.binary_cross_entropy`` of probabilities and targets of the same shape."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    weight: Tensor | None  # buffers
    pos_weight: Tensor | None
    """``F.binary_cross_entropy_with_logits``: sigmoid and binary cross entropy in one stable step."""

    def __init__(self, weight: Tensor | None = None, size_average: None = None, reduce: None = None,
                 reduction: str = "mean", pos_weight: Tensor | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class MSELoss(_Loss):
    """``F.mse_loss``: (input - target)^2, reduced."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """``F.l1_loss``: |input - target|, reduced."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """``F.smooth_l1_loss``: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, reduced."""

    def __init__(self, size_average: None = None, reduce: None = None, reduction: str = "mean",
                 beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)
