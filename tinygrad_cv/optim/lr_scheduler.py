"""Learning-rate schedules that drive an optimiser step by step, with PyTorch's names and formulas."""
import math
import numbers

from .optimizer import check_number, per_group


def annealing_cos(start, end, pct):
    """Cosine from ``start`` (pct = 0) to ``end`` (pct = 1): end + (start - end) / 2 * (1 + cos(pi pct))."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def annealing_linear(start, end, pct):
    """Straight line from ``start`` (pct = 0) to ``end`` (pct = 1)."""
    return (end - start) * pct + start


class OneCycleLR:
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

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        self.optimizer = optimizer
        self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        check_number(pct_start, "OneCycleLR: pct_start", low=0.0, high=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', "
                             f"got {anneal_strategy!r}")
        if cycle_momentum and optimizer.momentum_key is None:
            raise ValueError(f"OneCycleLR: {type(optimizer).__name__} has no momentum to cycle; "
                             f"pass cycle_momentum=False")
        for name, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            check_number(value, f"OneCycleLR: {name}", low=0.0, low_open=True)
        self.anneal = annealing_cos if anneal_strategy == "cos" else annealing_linear
        self.cycle_momentum = cycle_momentum
        self.phases = self._phases(float(pct_start), three_phase)
        self._check_phases(pct_start)
        groups = optimizer.param_groups
        max_lrs = per_group(max_lr, len(groups), "OneCycleLR: max_lr")
        max_moms = per_group(max_momentum, len(groups), "OneCycleLR: max_momentum")
        base_moms = per_group(base_momentum, len(groups), "OneCycleLR: base_momentum")
        for top, top_mom, base_mom in zip(max_lrs, max_moms, base_moms):
            check_number(top, "OneCycleLR: max_lr", low=0.0, low_open=True)
            if cycle_momentum:
                check_number(top_mom, "OneCycleLR: max_momentum", low=0.0, high=1.0, high_open=True)
                check_number(base_mom, "OneCycleLR: base_momentum", low=0.0, high=1.0, high_open=True)
        for group, top, top_mom, base_mom in zip(groups, max_lrs, max_moms, base_moms):
            group.update(initial_lr=top / div_factor, max_lr=top, min_lr=top / div_factor / final_div_factor)
            if cycle_momentum:
                group.update(max_momentum=top_mom, base_momentum=base_mom)
                optimizer.set_momentum(group, top_mom)
        self.last_epoch = -1
        self.step()

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

    def step(self):
        """Advance one step and write the new learning rate (and momentum) into every group."""
        self.last_epoch += 1
        if self.last_epoch > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {self.last_epoch} times, but the schedule has "
                             f"total_steps={self.total_steps}; make total_steps (or epochs x "
                             f"steps_per_epoch) match the number of optimiser steps")
        for group in self.optimizer.param_groups:
            lr, momentum = self._values_at(group, self.last_epoch)
            group["lr"] = lr
            if self.cycle_momentum:
                self.optimizer.set_momentum(group, momentum)

    def _values_at(self, group, step):
        start_step = 0.0
        for i, (end_step, lr_from, lr_to, mom_from, mom_to) in enumerate(self.phases):
            if step <= end_step or i == len(self.phases) - 1:
                pct = min(1.0, (step - start_step) / (end_step - start_step))
                momentum = self.anneal(group[mom_from], group[mom_to], pct) if self.cycle_momentum else None
                return self.anneal(group[lr_from], group[lr_to], pct), momentum
            start_step = end_step

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """The step count and the settings (everything but the optimiser), as plain numbers."""
        return {"last_epoch": self.last_epoch, "total_steps": self.total_steps}

    def load_state_dict(self, state):
        last = state.get("last_epoch")
        if isinstance(last, bool) or not isinstance(last, numbers.Integral) or not 0 <= last <= self.total_steps:
            raise ValueError(f"OneCycleLR.load_state_dict: last_epoch must be an integer in [0, "
                             f"{self.total_steps}], got {last!r}")
        if state["total_steps"] != self.total_steps:
            raise ValueError(f"OneCycleLR.load_state_dict: the saved schedule has total_steps="
                             f"{state['total_steps']} but this one has {self.total_steps}")
        self.last_epoch = int(state["last_epoch"])


def _total_steps(total_steps, epochs, steps_per_epoch):
    if total_steps is not None:
        return _positive_int(total_steps, "total_steps")
    if epochs is None or steps_per_epoch is None:
        raise ValueError("OneCycleLR: give total_steps, or both epochs and steps_per_epoch")
    return _positive_int(epochs, "epochs") * _positive_int(steps_per_epoch, "steps_per_epoch")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"OneCycleLR: {name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- schedules of training progress
# fastai's view: a hyper-parameter as a function of pos, the fraction of training done (0 to 1).
def combined_cos(pct, start, middle, end):
    """fastai's one-cycle shape: cosine from ``start`` to ``middle`` over pos in [0, pct], then cosine from
    ``middle`` to ``end`` over [pct, 1]. The values may be arrays (one per parameter group)."""
    def schedule(pos):
        if pos < pct:
            return annealing_cos(start, middle, pos / pct)
        return annealing_cos(middle, end, min(1.0, (pos - pct) / (1 - pct))) if pct < 1 else end
    return schedule


def exponential(start, end):
    """start * (end / start)^pos: the learning-rate finder's sweep."""
    def schedule(pos):
        return start * (end / start) ** pos
    return schedule
