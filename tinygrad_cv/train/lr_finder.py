"""The learning-rate finder (Smith 2015, as in fastai): train for a few batches while the learning rate
grows exponentially, watch the smoothed loss, and suggest a rate from the curve."""
from __future__ import annotations

import inspect
import math
import numbers
import os
from collections import namedtuple
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence, Tuple

import numpy as np
import numpy.typing as npt

from ..metrics.base import function_name
from ..optim.lr_scheduler import exponential
from ..tensor import Tensor
from .callbacks import Callback, CancelFitException, CancelValidException
from .recorder import SmoothedLoss, new_figure, finish_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Suggestion = Tuple[float, Tuple[float, float]]
"""What a suggestion function returns, as fastai v2's: (suggested lr, (lr, loss)), the second a point of the curve."""
SuggestFunc = Callable[[Tensor, Tensor, int], Suggestion]
"""f(lrs, losses, num_it) -> Suggestion, fastai v2's signature."""


class SuggestedLRs(NamedTuple):
    """lr_find's default result: one rate per suggestion function (another tuple of functions gives a named
    tuple of the same name with a field per function, as fastai's)."""
    valley: float
    steep: float
    minimum: float


def suggestion_names(suggest_funcs: Sequence[SuggestFunc]) -> list[str]:
    """The field names of the SuggestedLRs for ``suggest_funcs``, after checking that each is a function that
    takes (lrs, losses, num_it), fastai v2's signature. The earlier form f(lrs, losses) -> (lr, index) is
    refused by name: a function with a third optional argument would take num_it for it, so the two forms
    cannot be told apart in general."""
    if not isinstance(suggest_funcs, (list, tuple)) or not suggest_funcs or not all(map(callable, suggest_funcs)):
        raise TypeError(f"lr_find: suggest_funcs must be a non-empty tuple of functions f(lrs, losses, num_it) -> "
                        f"(lr, (lr, loss)) such as (valley, steep, minimum, slide), got {suggest_funcs!r}")
    names = [function_name(f) for f in suggest_funcs]
    if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
        raise ValueError(f"lr_find: suggest_funcs need distinct names that are identifiers, got {names}")
    for f, name in zip(suggest_funcs, names):
        try:
            signature = inspect.signature(f)
        except (TypeError, ValueError):  # a callable without a signature: its result is checked instead
            continue
        try:
            signature.bind(None, None, 0)
        except TypeError:
            raise TypeError(f"lr_find: suggest function {name}{signature} cannot be called as {name}(lrs, losses, "
                            f"num_it), fastai v2's signature (the form f(lrs, losses) -> (lr, index) is no longer "
                            f"taken); add num_it and return (lr, (lr, loss))") from None
    return names


def _checked_suggestion(name: str, result: Any) -> Suggestion:
    """``result`` as (lr, (lr, loss)) of floats, or a TypeError naming the function and what it returned."""
    try:
        lr, (x, y) = result
        return float(lr), (float(x), float(y))
    except (TypeError, ValueError):
        raise TypeError(f"lr_find: suggest function {name} returned {result!r:.80}; a suggestion function "
                        f"returns (lr, (lr, loss)), as fastai v2's (the old (lr, index) is no longer taken)") from None


class LRFinder(Callback):
    """Sets lr = start_lr * (end_lr / start_lr)^(i / num_it) before training batch i, records the smoothed
    loss (beta 0.98, debiased), and stops after ``num_it`` batches, or as soon as the smoothed loss is NaN
    or exceeds 4 times the best so far (unless ``stop_div=False``). The weights and the optimiser state are
    restored afterwards.

    The suggestions read the curve without its first num_it // 10 and last 5 points (fastai's trim) and
    need at least ``MIN_POINTS`` points, so ``num_it`` must be at least ``min_num_it`` (10)."""
    schedule: Callable[[float], float]
    num_it: int
    stop_div: bool
    lrs: list[float]
    losses: list[float]

    order = 55  # after the Recorder, so that the last batch is recorded before the finder stops
    MIN_POINTS = 4
    min_num_it = 10  # 10 - 10 // 10 - 5 = MIN_POINTS

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, stop_div: bool = True) -> None:
        finite = all(isinstance(v, numbers.Real) and math.isfinite(v) for v in (start_lr, end_lr))
        if not finite or not 0 < start_lr < end_lr:
            raise ValueError(f"lr_find: need finite 0 < start_lr < end_lr, got start_lr={start_lr}, "
                             f"end_lr={end_lr}")
        if isinstance(num_it, bool) or not isinstance(num_it, numbers.Integral) or num_it < self.min_num_it:
            raise ValueError(f"lr_find: num_it must be an integer >= {self.min_num_it}, got {num_it!r}: the "
                             f"suggestions drop the first num_it // 10 and the last 5 points of the curve and "
                             f"need {self.MIN_POINTS} left")
        self.schedule, self.num_it, self.stop_div = exponential(start_lr, end_lr), int(num_it), bool(stop_div)

    def before_fit(self) -> None:
        self.lrs, self.losses, self.smooth, self.best = [], [], SmoothedLoss(0.98), math.inf
        self.diverged = False
        self.saved_model = self.learn.model.state_dict()
        self.saved_opt = self.learn.opt.state_dict()

    def before_batch(self) -> None:
        if self.learn.training:
            self.learn.opt.set_hyper("lr", self.schedule(self.learn.train_iter / self.num_it))

    def after_loss(self) -> None:
        if not self.learn.training:
            return
        smoothed = self.smooth.add(self.learn.loss_value)
        self.lrs.append(self.learn.opt.param_groups[-1]["lr"])
        self.losses.append(smoothed)
        self.best = min(self.best, smoothed)
        if not smoothed <= 4 * self.best:  # also true for NaN
            self.diverged = True
            if self.stop_div:
                raise CancelFitException()

    def after_batch(self) -> None:
        if self.learn.training and self.learn.train_iter + 1 >= self.num_it:
            raise CancelFitException()

    def before_validate(self) -> None:
        raise CancelValidException()

    def after_fit(self) -> None:
        self.learn.model.load_state_dict(self.saved_model)
        self.learn.opt.load_state_dict(self.saved_opt)
        self.learn.opt.zero_grad()

    # ------------------------------------------------------------------ reading the curve
    def curve(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(lrs, smoothed losses) used for suggestions: without the first num_it // 10 and the last 5
        points (fastai's trim), and cut before the first NaN."""
        lrs, losses = np.array(self.lrs[self.num_it // 10:-5]), np.array(self.losses[self.num_it // 10:-5])
        nan = np.flatnonzero(np.isnan(losses))
        end = nan[0] if nan.size else len(losses)
        return lrs[:end], losses[:end]

    def suggestions(self, suggest_funcs: Sequence[SuggestFunc] | None = None) -> Any:
        """SuggestedLRs with one field per function of ``suggest_funcs`` (default valley, steep, minimum; see
        the functions of those names), each applied to the trimmed curve."""
        suggest_funcs = (valley, steep, minimum) if suggest_funcs is None else suggest_funcs
        names = suggestion_names(suggest_funcs)
        lrs, losses = self.curve()
        if len(losses) >= self.MIN_POINTS:
            kind = SuggestedLRs if names == list(SuggestedLRs._fields) else namedtuple("SuggestedLRs", names)
            return kind(*(lr for lr, _ in self._suggest(suggest_funcs, names, lrs, losses)))
        found = f"only {len(losses)} usable points (of {len(self.losses)} batches; {self.MIN_POINTS} needed)"
        if self.diverged:
            raise ValueError(f"lr_find: {found}: the loss diverged (smoothed {self.losses[-1]:.4g} > 4 x the "
                             f"best {self.best:.4g}) after {len(self.losses)} batches; lower start_lr")
        raise ValueError(f"lr_find: not enough iterations to suggest a rate: {found}, as the sweep stopped "
                         f"after {len(self.losses)} of num_it={self.num_it} batches without diverging; let it "
                         f"run longer (more batches, or no callback that cancels the fit)")

    def _suggest(self, suggest_funcs, names, lrs, losses):
        """Each function's checked (lr, (lr, loss)) on the curve, given as float64 Tensors (fastai: tensors)."""
        lr_t, loss_t = Tensor(lrs, dtype=np.float64), Tensor(losses, dtype=np.float64)
        return [_checked_suggestion(name, f(lr_t, loss_t, self.num_it)) for f, name in zip(suggest_funcs, names)]

    def plot(self, suggest_funcs: Sequence[SuggestFunc] | None = None, fname: str | os.PathLike[str] | None = None,
             skip_end: int = 5) -> Figure:
        """Smoothed loss against the learning rate (log scale), each suggestion marked on the curve at the
        rate its legend gives; returns the Figure (also written as the PNG ``fname`` when given)."""
        suggest_funcs = (valley, steep, minimum) if suggest_funcs is None else suggest_funcs
        figure, (ax,) = new_figure()
        ax.plot(self.lrs[:-skip_end], self.losses[:-skip_end])
        ax.set_xscale("log")
        lrs, losses = self.curve()
        colors = ("tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink")
        names = suggestion_names(suggest_funcs)
        for i, ((lr, _), name) in enumerate(zip(self._suggest(suggest_funcs, names, lrs, losses), names)):
            # marked at the suggested rate itself, where fastai marks the returned point (minimum's: 10 x)
            ax.plot(lr, np.interp(np.log(lr), np.log(lrs), losses), "o", color=colors[i % len(colors)],
                    label=f"{name}: {lr:.2e}")
        ax.set(xlabel="learning rate", ylabel="smoothed loss", title="Learning-rate finder")
        ax.legend()
        return finish_figure(figure, fname)


# The suggestion functions have fastai v2's signature: f(lrs, losses, num_it) -> (suggested_lr, (lr, loss)),
# the pair a point of the curve to mark. ``lrs`` and ``losses`` are float64 Tensors (fastai passes torch
# tensors), so a function written for fastai's (with .log(), .argmin(), .item(), indexing) runs unchanged;
# NumPy reads them too (np.asarray). num_it is the finder's number of iterations.
def valley(lrs: Tensor, losses: Tensor, num_it: int) -> Suggestion:
    """fastai's 'valley': the longest stretch of decreasing loss (longest decreasing subsequence), and a point
    (1/3 + 1/6) of the way along it. Written as fastai's double loop, quirks included: the valley's start is
    fixed when its end is first found. The point is (lr, loss) there."""
    values = np.asarray(losses, dtype=np.float64)
    n = len(values)
    lds, max_start, max_end = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(i):
            if values[i] < values[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    index = max_start + int(sections) + int(sections / 2)
    lr = float(lrs[index])
    return lr, (lr, float(values[index]))


def steep(lrs: Tensor, losses: Tensor, num_it: int) -> Suggestion:
    """The learning rate where the loss falls fastest per unit of log(lr): the start of the steepest
    segment, argmin of diff(losses) / diff(log(lrs)). The point is (lr, its loss)."""
    lr_values, values = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    lr = float(lr_values[int(np.argmin(np.diff(values) / np.diff(np.log(lr_values))))])
    return lr, (lr, _loss_at(lr, lr_values, values))


def minimum(lrs: Tensor, losses: Tensor, num_it: int) -> Suggestion:
    """A tenth of the learning rate with the lowest smoothed loss (the first lowest). The point is, as
    fastai's, (that lowest-loss rate, its loss): ten times the suggestion."""
    lr_values, values = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    lr = float(lr_values[int(np.argmin(values))])
    return lr / 10, (lr, _loss_at(lr, lr_values, values))


def slide(lrs: Tensor, losses: Tensor, num_it: int, lr_diff: int = 15, thresh: float = 0.005,
          adjust_value: float = 1.0) -> Suggestion:
    """fastai's 'slide' rule: with g the loss gradient per point (np.gradient), slide a window of
    ``lr_diff`` points from the end of the curve towards its start while its two ends' slopes differ by
    more than ``thresh``; suggest the rate at the left end of the last window that did (the first window's
    when none did), times ``adjust_value``. The point is (suggestion, the loss interpolated there in
    log10(lr))."""
    lr_values, values = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    n = len(values)
    if n <= lr_diff:
        raise ValueError(f"slide: the curve has {n} points but the window lr_diff={lr_diff} needs more; run "
                         f"lr_find with a larger num_it or pass partial(slide, lr_diff=...) smaller")
    grad = np.gradient(values)
    left = index = n - 1 - lr_diff
    while left >= 0 and abs(grad[left + lr_diff] - grad[left]) > thresh:
        index, left = left, left - 1
    lr = float(lr_values[index]) * adjust_value
    return lr, (lr, float(np.interp(np.log10(lr), np.log10(lr_values), values)))


def _loss_at(lr, lrs, losses):
    """The loss at the recorded rate nearest ``lr`` (the first such), as fastai reads a suggestion's point."""
    return float(losses[int(np.argmin(np.abs(lrs - lr)))])
