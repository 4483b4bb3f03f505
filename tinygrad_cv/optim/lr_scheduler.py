"""Learning-rate schedules that drive an optimiser step by step, with PyTorch's names and formulas.

Every schedule is an ``LRScheduler``. At construction it stores each group's starting rate (the group's
``initial_lr``, set from its ``lr`` unless already there; also ``base_lrs``) and makes a first step, to
``last_epoch`` 0; each ``step()`` (call it after ``optimizer.step()``) advances ``last_epoch`` by one and
writes ``get_lr()`` into the groups through ``optimizer.set_hyper``, so every rate a schedule sets is
checked by the optimiser's ``check_hypers`` (all groups, before any is set). As PyTorch's, StepLR,
MultiStepLR, ExponentialLR, LinearLR and CosineAnnealingLR are chainable: each step changes the group's
current rate, so a change made to it from outside carries on. ``state_dict()`` is every attribute but the
optimiser (numbers, strings, lists: storable without pickle); ``load_state_dict`` is all or nothing.

PyTorch's deprecated ``step(epoch)`` is refused with a ValueError (it jumps with a closed form that only
some schedules have); restore a position with ``load_state_dict``.
"""
from __future__ import annotations

import bisect
import copy
import math
import numbers
import types
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from ..tensor import Tensor
from .optimizer import Optimizer, check_number, per_group


def annealing_cos(start: Any, end: Any, pct: float) -> Any:
    """Cosine from ``start`` (pct = 0) to ``end`` (pct = 1): end + (start - end) / 2 * (1 + cos(pi pct))."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def annealing_linear(start: Any, end: Any, pct: float) -> Any:
    """Straight line from ``start`` (pct = 0) to ``end`` (pct = 1)."""
    return (end - start) * pct + start


class LRScheduler:
    """Base class: a subclass sets its settings, defines ``_check()`` (which validates them, at
    construction and on ``load_state_dict``) and ``get_lr()`` (the groups' rates at ``last_epoch``), then
    calls ``super().__init__(optimizer, last_epoch)``. ``last_epoch`` other than -1 resumes a schedule
    whose groups already hold ``initial_lr`` (a KeyError otherwise, as PyTorch)."""

    _is_initial = False
    """True during the first step, made by the constructor (chainable schedules keep the rate there)."""
    _not_state: tuple[str, ...] = ("optimizer",)

    if TYPE_CHECKING:
        def get_lr(self) -> list[float]: ...  # each schedule defines it (ReduceLROnPlateau has none)

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        self.optimizer = _optimizer(optimizer, name)
        _check_int(last_epoch, f"{name}: last_epoch", low=-1)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        missing = [i for i, group in enumerate(optimizer.param_groups) if "initial_lr" not in group]
        if missing:
            raise KeyError(f"{name}: resuming at last_epoch={last_epoch} needs 'initial_lr' in every parameter "
                           f"group, but groups {missing} lack it; load the optimiser's state_dict first, or "
                           f"start with last_epoch=-1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._check()
        self._initial_step()

    def _check(self):
        """Validate the settings and the step count; subclasses extend it."""
        _check_int(self.last_epoch, f"{type(self).__name__}: last_epoch", low=-1)

    def _initial_step(self):
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            del self._is_initial

    def _restart(self):
        """Start again from the base rates at epoch 0 (SequentialLR, at a milestone)."""
        self.optimizer.set_hyper("lr", self.base_lrs)
        self.last_epoch = -1
        self._initial_step()

    def step(self, epoch: None = None) -> None:
        """Advance one step and write the new rates into the optimiser's groups."""
        _refuse_epoch(self, epoch)
        self._step_count += 1
        self.last_epoch += 1
        self._set_lrs(self.get_lr())

    def _set_lrs(self, lrs):
        self.optimizer.set_hyper("lr", lrs)
        self._last_lr = self._lrs()

    def _lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The rates the last step wrote, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimiser (copies), as PyTorch's."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k not in self._not_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved. All or nothing: the keys must be this schedule's, the per-group
        lists as long as the optimiser has groups, and the settings pass the constructor's checks;
        otherwise a ValueError (or TypeError) and nothing changes."""
        own = self.state_dict()
        if not isinstance(state_dict, dict) or set(state_dict) != set(own):
            seen = sorted(state_dict) if isinstance(state_dict, dict) else f"a {type(state_dict).__name__}"
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected the keys {sorted(own)} (from "
                             f"{type(self).__name__}.state_dict()), got {seen}")
        try:
            self._load(copy.deepcopy(state_dict))
            self._check_groups()
            self._check()
        except (TypeError, ValueError):
            self._load(own)
            raise

    def _load(self, state):
        vars(self).update(state)

    def _check_groups(self):
        n = len(self.optimizer.param_groups)
        for key in ("base_lrs", "_last_lr", "min_lrs"):
            values = getattr(self, key, None)
            if values is not None and (not isinstance(values, list) or len(values) != n):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key} must be a list of one rate per "
                                 f"parameter group ({n}), got {values!r}; was it saved for another optimiser?")


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(last_epoch), with one function for every group or a list of one per group.

    ``state_dict`` holds, per function, None for a plain function or lambda, or a copy of a callable
    object's attributes (restored into it by ``load_state_dict``), as PyTorch's."""

    _not_state = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        groups = _optimizer(optimizer, "LambdaLR").param_groups
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(groups):
                raise ValueError(f"LambdaLR: expected {len(groups)} lr_lambdas (one per parameter group), got "
                                 f"{len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * len(groups)
        bad = [type(f).__name__ for f in self.lr_lambdas if not callable(f)]
        if bad:
            raise TypeError(f"LambdaLR: lr_lambda must be a function of the epoch (or a list of them), got {bad[0]}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(f, types.FunctionType) else copy.deepcopy(vars(f))
                               for f in self.lr_lambdas]
        return state

    def _load(self, state):
        saved = state.pop("lr_lambdas")
        if not isinstance(saved, list) or len(saved) != len(self.lr_lambdas) or \
                not all(s is None or isinstance(s, dict) for s in saved):
            raise ValueError(f"LambdaLR.load_state_dict: lr_lambdas must be a list of {len(self.lr_lambdas)} "
                             f"entries, each None or a dict of a callable's attributes, got {saved!r}")
        super()._load(state)
        for f, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                vars(f).update(attributes)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps: from the start, lr = base_lr *
    gamma^(last_epoch // step_size). step_size must be a positive integer, gamma finite and > 0."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def _check(self):
        super()._check()
        _check_int(self.step_size, "StepLR: step_size", low=1)
        check_number(self.gamma, "StepLR: gamma", low=0.0, low_open=True)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone (twice at one given twice): from the start, lr =
    base_lr * gamma^(number of milestones <= last_epoch). Milestones are non-negative integers, kept
    sorted in a list (PyTorch keeps a Counter); gamma finite and > 0."""

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = sorted(milestones) if _all_ints(milestones) else list(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check(self):
        super()._check()
        for i, m in enumerate(self.milestones):
            _check_int(m, f"MultiStepLR: milestones[{i}]", low=0)
        if self.milestones != sorted(self.milestones):
            raise ValueError(f"MultiStepLR: milestones must be sorted, got {self.milestones}")
        check_number(self.gamma, "MultiStepLR: gamma", low=0.0, low_open=True)

    def get_lr(self) -> list[float]:
        times = self.milestones.count(self.last_epoch)
        return [lr * self.gamma ** times for lr in self._lrs()] if times else self._lrs()


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every step: from the start, lr = base_lr * gamma^last_epoch. gamma
    must be finite and > 0."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check(self):
        super()._check()
        check_number(self.gamma, "ExponentialLR: gamma", low=0.0, low_open=True)

    def get_lr(self) -> list[float]:
        return self._lrs() if self._is_initial else [lr * self.gamma for lr in self._lrs()]


class LinearLR(LRScheduler):
    """The factor on base_lr moves in a straight line from ``start_factor`` (step 0) to ``end_factor``
    (step total_iters) and stays there: lr = base_lr * (start + (end - start) * min(t, total_iters) /
    total_iters). Each step multiplies the current rate by the ratio of consecutive factors,
    1 + (end - start) / (total_iters * start + (t - 1) * (end - start)), as PyTorch. start_factor in
    (0, 1] and end_factor in [0, 1], as PyTorch; total_iters a positive integer."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def _check(self):
        super()._check()
        check_number(self.start_factor, "LinearLR: start_factor", low=0.0, high=1.0, low_open=True)
        check_number(self.end_factor, "LinearLR: end_factor", low=0.0, high=1.0)
        _check_int(self.total_iters, "LinearLR: total_iters", low=1)

    def get_lr(self) -> list[float]:
        t, start, end = self.last_epoch, self.start_factor, self.end_factor
        if t == 0:
            return [lr * start for lr in self._lrs()]
        if self._is_initial or t > self.total_iters:
            return self._lrs()
        ratio = 1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start))
        return [lr * ratio for lr in self._lrs()]


class CosineAnnealingLR(LRScheduler):
    """Cosine from base_lr down to ``eta_min`` over ``T_max`` steps, then back up (a period of 2 T_max):
    lr = eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2. Each step moves the current rate
    recursively, as PyTorch: lr_t = eta_min + (lr_{t-1} - eta_min) (1 + cos(pi t / T_max)) /
    (1 + cos(pi (t - 1) / T_max)), or, where that denominator is 0 (t - 1 = T_max, 3 T_max, ...),
    lr_t = lr_{t-1} + (base_lr - eta_min) (1 - cos(pi / T_max)) / 2. T_max a positive integer, eta_min
    finite and >= 0."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:  # noqa: N803 (PyTorch's name)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def _check(self):
        super()._check()
        _check_int(self.T_max, "CosineAnnealingLR: T_max", low=1)
        check_number(self.eta_min, "CosineAnnealingLR: eta_min", low=0.0)

    def get_lr(self) -> list[float]:
        t, period, low = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._lrs()
        if (t - 1 - period) % (2 * period) == 0:
            return [lr + (base - low) * (1 - math.cos(math.pi / period)) / 2
                    for lr, base in zip(self._lrs(), self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return [ratio * (lr - low) + low for lr in self._lrs()]


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another: the first until ``milestones[0]``, the next from there (started
    afresh from its base rates, at its epoch 0), and so on; ``len(milestones) == len(schedulers) - 1``,
    milestones increasing non-negative integers. The schedulers must drive this optimiser and not be
    ReduceLROnPlateau (its step needs a metric), as PyTorch. Refused, where PyTorch goes wrong: a nested
    SequentialLR (PyTorch's switches one step early) and ``last_epoch`` other than -1 (PyTorch's shifts
    only its own count, not the schedulers')."""

    _not_state = ("optimizer", "_schedulers")

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int],
                 last_epoch: int = -1) -> None:
        self.optimizer, schedulers = _optimizer(optimizer, "SequentialLR"), list(schedulers)
        if not schedulers:
            raise ValueError("SequentialLR: expects at least one scheduler, got none")
        for i, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(f"SequentialLR: schedulers[{i}] must be a learning-rate scheduler, got "
                                f"{type(scheduler).__name__}")
            if isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(f"SequentialLR: schedulers[{i}] is a ReduceLROnPlateau, whose step needs a "
                                 f"metric; it cannot run inside SequentialLR")
            if isinstance(scheduler, SequentialLR):
                raise ValueError(f"SequentialLR: schedulers[{i}] is a SequentialLR; nesting them is not supported "
                                 f"(PyTorch's inner one switches a step early); list all the schedulers in one "
                                 f"SequentialLR")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: schedulers[{i}] ({type(scheduler).__name__}) drives another "
                                 f"optimiser; every scheduler must drive the one given to SequentialLR")
        if last_epoch != -1:
            raise ValueError(f"SequentialLR: last_epoch must be -1 (resume with load_state_dict), got "
                             f"{last_epoch!r}")
        self._schedulers, self._milestones, self.last_epoch = schedulers, list(milestones), 0
        self._check()
        self._restart()

    def _check(self):
        _check_int(self.last_epoch, "SequentialLR: last_epoch", low=0)
        if len(self._milestones) != len(self._schedulers) - 1:
            raise ValueError(f"SequentialLR: expects one milestone fewer than schedulers, got "
                             f"{len(self._schedulers)} schedulers and milestones {self._milestones}")
        for i, m in enumerate(self._milestones):
            _check_int(m, f"SequentialLR: milestones[{i}]", low=0)
        if any(a >= b for a, b in zip(self._milestones, self._milestones[1:])):
            raise ValueError(f"SequentialLR: milestones must be increasing, got {self._milestones}")

    def _restart(self):
        for scheduler in self._schedulers:
            scheduler.last_epoch = -1  # not begun: each starts at its milestone
        self.last_epoch = 0
        current = self._schedulers[bisect.bisect_right(self._milestones, 0)]
        current._restart()
        self._last_lr = current.get_last_lr()

    def step(self, epoch: None = None) -> None:
        """Advance one step: the scheduler whose turn it is steps, or starts at its milestone."""
        _refuse_epoch(self, epoch)
        self.last_epoch += 1
        i = bisect.bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            scheduler._restart()
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "_schedulers": [s.state_dict() for s in self._schedulers]}

    def _load(self, state):
        saved = state.pop("_schedulers")
        if not isinstance(saved, list) or len(saved) != len(self._schedulers):
            raise ValueError(f"SequentialLR.load_state_dict: expected the states of {len(self._schedulers)} "
                             f"schedulers, got {saved!r}")
        for scheduler, scheduler_state in zip(self._schedulers, saved):
            scheduler.load_state_dict(scheduler_state)
        super()._load(state)


class ReduceLROnPlateau(LRScheduler):
    """Divide the rate when a metric stops improving, as PyTorch: ``step(metric)`` after each evaluation.

    A metric is better than the best so far when it beats ``best * (1 - threshold)`` ('min', 'rel'),
    ``best - threshold`` ('min', 'abs'), ``best * (1 + threshold)`` ('max', 'rel') or ``best + threshold``
    ('max', 'abs'). After more than ``patience`` steps in a row that are not better, each group's rate
    becomes max(lr * factor, min_lr) (unless that changes it by eps or less), and the next ``cooldown``
    steps count no bad steps. min_lr is a number or one per group. Checked: mode and threshold_mode as
    PyTorch; factor in (0, 1) (PyTorch accepts 0 and below, a rate sent to min_lr: refused); patience
    and cooldown non-negative integers; threshold, min_lr and eps finite and >= 0."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | Sequence[float] = 0, eps: float = 1e-8) -> None:
        self.optimizer = _optimizer(optimizer, "ReduceLROnPlateau")
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"ReduceLROnPlateau: expected {n} min_lrs (one per parameter group), got "
                                 f"{len(min_lr)}")
            self.default_min_lr, self.min_lrs = None, list(min_lr)
        else:
            self.default_min_lr, self.min_lrs = min_lr, [min_lr] * n
        self.factor, self.patience, self.threshold, self.threshold_mode = factor, patience, threshold, threshold_mode
        self.mode, self.cooldown, self.eps, self.last_epoch = mode, cooldown, eps, 0
        self._check()
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best, self.cooldown_counter, self.num_bad_epochs = self.mode_worse, 0, 0
        self._last_lr = self._lrs()

    def _check(self):
        if self.mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {self.mode!r}")
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got "
                             f"{self.threshold_mode!r}")
        check_number(self.factor, "ReduceLROnPlateau: factor", low=0.0, high=1.0, low_open=True, high_open=True)
        for key in ("patience", "cooldown", "last_epoch"):
            _check_int(getattr(self, key), f"ReduceLROnPlateau: {key}", low=0)
        for key in ("threshold", "eps"):
            check_number(getattr(self, key), f"ReduceLROnPlateau: {key}", low=0.0)
        for i, value in enumerate(self.min_lrs):
            check_number(value, f"ReduceLROnPlateau: min_lr[{i}]", low=0.0)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether the metric ``a`` beats ``best`` by more than the threshold (see the class docstring)."""
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (self.threshold + 1.0) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, metrics: float | Tensor, epoch: None = None) -> None:  # type: ignore[override]  # PyTorch's
        """Count the metric (a number or a one-element Tensor) and reduce the rates if it has plateaued."""
        _refuse_epoch(self, epoch)
        current = float(metrics.item() if isinstance(metrics, Tensor) else metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad steps in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = self._lrs()

    def _reduce_lr(self):
        n = len(self.optimizer.param_groups)
        if len(self.min_lrs) != n:
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimiser now has {n} parameter groups but min_lr "
                                   f"was given for {len(self.min_lrs)}; set min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * n
        lrs = []
        for lr, low in zip(self._lrs(), self.min_lrs):
            new = max(float(lr) * self.factor, low)
            lrs.append(new if float(lr) - new > self.eps else lr)
        self.optimizer.set_hyper("lr", lrs)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), as ``torch.optim.lr_scheduler.OneCycleLR``.

    The learning rate rises from max_lr / div_factor to max_lr over the first pct_start of the steps,
    then falls to max_lr / (div_factor * final_div_factor); momentum (SGD's momentum or Adam's beta1)
    moves the opposite way between max_momentum and base_momentum. Phase boundaries are the steps
    pct_start * total_steps - 1 and total_steps - 1; with ``three_phase`` the fall first returns to the
    initial rate (at step 2 * pct_start * total_steps - 2) and then annihilates it.

    Call ``step()`` after each ``optimizer.step()``; stepping more than ``total_steps`` times is an error.
    The arguments are checked as PyTorch's (positive integer step counts, pct_start in [0, 1], 'cos' or
    'linear'), and further: max_lr and the div factors finite and > 0, momenta in [0, 1), and no phase
    that spans zero steps (PyTorch divides by zero there, e.g. pct_start=1.0) or, with three_phase, never
    comes (pct_start > 1/2, where PyTorch ends the cycle near max_lr). After the last step (step
    total_steps) the rate stays at the final one, where PyTorch extrapolates (below zero when linear).
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85, max_momentum: float | Sequence[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        groups = _optimizer(optimizer, "OneCycleLR").param_groups
        self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        self.pct_start, self.anneal_strategy, self.three_phase = pct_start, anneal_strategy, three_phase
        self.cycle_momentum = cycle_momentum
        if cycle_momentum and optimizer.momentum_key is None:
            raise ValueError(f"OneCycleLR: {type(optimizer).__name__} has no momentum to cycle; "
                             f"pass cycle_momentum=False")
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            check_number(value, f"OneCycleLR: {name}", low=0.0, low_open=True)
        self.last_epoch = last_epoch
        self._check()
        max_lrs = per_group(max_lr, len(groups), "OneCycleLR: max_lr")
        max_moms = per_group(max_momentum, len(groups), "OneCycleLR: max_momentum")
        base_moms = per_group(base_momentum, len(groups), "OneCycleLR: base_momentum")
        for top, top_mom, base_mom in zip(max_lrs, max_moms, base_moms):
            check_number(top, "OneCycleLR: max_lr", low=0.0, low_open=True)
            if cycle_momentum:
                check_number(top_mom, "OneCycleLR: max_momentum", low=0.0, high=1.0, high_open=True)
                check_number(base_mom, "OneCycleLR: base_momentum", low=0.0, high=1.0, high_open=True)
        if last_epoch == -1:  # a fresh schedule writes its entries; a resumed one finds them in the groups
            for group, top, top_mom, base_mom in zip(groups, max_lrs, max_moms, base_moms):
                group.update(initial_lr=top / div_factor, max_lr=top, min_lr=top / div_factor / final_div_factor)
                if cycle_momentum:
                    group.update(max_momentum=top_mom, base_momentum=base_mom)
                    optimizer.set_momentum(group, top_mom)
        super().__init__(optimizer, last_epoch)

    def _check(self):
        """Positive integer step counts, pct_start in [0, 1], 'cos' or 'linear', and phases that make a
        schedule; last_epoch at most total_steps."""
        _check_int(self.total_steps, "OneCycleLR: total_steps", low=1)
        _check_int(self.last_epoch, "OneCycleLR: last_epoch", low=-1, high=self.total_steps)
        check_number(self.pct_start, "OneCycleLR: pct_start", low=0.0, high=1.0)
        if self.anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', "
                             f"got {self.anneal_strategy!r}")
        for key in ("three_phase", "cycle_momentum"):
            if not isinstance(getattr(self, key), bool):
                raise TypeError(f"OneCycleLR: {key} must be True or False, got {getattr(self, key)!r}")
        self._check_phases(self.pct_start)

    @property
    def anneal(self) -> Callable[[Any, Any, float], Any]:
        return annealing_cos if self.anneal_strategy == "cos" else annealing_linear

    @property
    def phases(self) -> list[Any]:
        return self._phases(float(self.pct_start), self.three_phase)

    def _check_phases(self, pct_start):
        """Refuse phases that make no schedule: a first phase ending exactly at step 0 or a last phase starting
        at or after step total_steps - 1 (both divide by zero), or, with three_phase, a last phase that never
        comes (pct_start above about 1/2)."""
        n, first_end, last_start = self.total_steps, self.phases[0][0], self.phases[-2][0]
        if first_end == 0 or last_start >= n - 1:
            raise ValueError(f"OneCycleLR: pct_start={pct_start} with total_steps={n} gives a phase that "
                             f"spans no steps (phase ends at steps {[p[0] for p in self.phases]}); "
                             f"choose a pct_start that leaves every phase at least one step")

    def _phases(self, pct_start, three_phase):
        """Per phase: (end step, lr key at start, lr key at end, momentum keys at start and end)."""
        n = self.total_steps
        if three_phase:
            return [(pct_start * n - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                    (2 * pct_start * n - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                    (n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        return [(pct_start * n - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]

    def get_lr(self) -> list[float]:
        if self.last_epoch > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {self.last_epoch} times, but the schedule has "
                             f"total_steps={self.total_steps}; make total_steps (or epochs x "
                             f"steps_per_epoch) match the number of optimiser steps")
        return [self._values_at(group, self.last_epoch)[0] for group in self.optimizer.param_groups]

    def step(self, epoch: None = None) -> None:
        """Advance one step and write the new learning rate (and momentum) into every group."""
        super().step(epoch)
        if self.cycle_momentum:
            self.optimizer.set_hyper("mom", [self._values_at(group, self.last_epoch)[1]
                                             for group in self.optimizer.param_groups])

    def _values_at(self, group, step):
        start_step = 0.0
        for i, (end_step, lr_from, lr_to, mom_from, mom_to) in enumerate(self.phases):
            if step <= end_step or i == len(self.phases) - 1:
                pct = min(1.0, (step - start_step) / (end_step - start_step))
                momentum = self.anneal(group[mom_from], group[mom_to], pct) if self.cycle_momentum else None
                return self.anneal(group[lr_from], group[lr_to], pct), momentum
            start_step = end_step


def _total_steps(total_steps, epochs, steps_per_epoch):
    if total_steps is not None:
        return _check_int(total_steps, "OneCycleLR: total_steps", low=1)
    if epochs is None or steps_per_epoch is None:
        raise ValueError("OneCycleLR: give total_steps, or both epochs and steps_per_epoch")
    return _check_int(epochs, "OneCycleLR: epochs", low=1) * _check_int(steps_per_epoch, "OneCycleLR: steps_per_epoch",
                                                                        low=1)


def _check_int(value, where, low, high=None):
    """An integer (not a bool) in [low, high], else a ValueError: '<where> must be ..., got <value>'."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or \
            (high is not None and value > high):
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
        kind = kind if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{where} must be {kind}, got {value!r}")
    return int(value)


def _all_ints(values):
    return all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)


def _optimizer(optimizer, name):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{name}: optimizer must be a tinygrad_cv.optim Optimizer (SGD, Adam, ...), got "
                        f"{type(optimizer).__name__}")
    return optimizer


def _refuse_epoch(scheduler, epoch):
    if epoch is not None:
        raise ValueError(f"{type(scheduler).__name__}.step: the epoch argument (deprecated in PyTorch) is not "
                         f"supported; call step() once per epoch, and restore a position with load_state_dict")


# --------------------------------------------------------------------------- schedules of training progress
# fastai's view: a hyper-parameter as a function of pos, the fraction of training done (0 to 1).
def combined_cos(pct: float, start: Any, middle: Any, end: Any) -> Callable[[float], Any]:
    """fastai's one-cycle shape: cosine from ``start`` to ``middle`` over pos in [0, pct], then cosine from
    ``middle`` to ``end`` over [pct, 1]. The values may be arrays (one per parameter group)."""
    def schedule(pos):
        if pos < pct:
            return annealing_cos(start, middle, pos / pct)
        return annealing_cos(middle, end, min(1.0, (pos - pct) / (1 - pct))) if pct < 1 else end
    return schedule


def exponential(start: Any, end: Any) -> Callable[[float], Any]:
    """start * (end / start)^pos: the learning-rate finder's sweep."""
    def schedule(pos):
        return start * (end / start) ** pos
    return schedule
