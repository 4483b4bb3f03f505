"""Learning-rate schedules that drive an optimiser step by step, with PyTorch's names and formulas."""
import math
import numbers

from .optimizer import per_group


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
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False):
        self.optimizer = optimizer
        self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', "
                             f"got {anneal_strategy!r}")
        if cycle_momentum and optimizer.momentum_key is None:
            raise ValueError(f"OneCycleLR: {type(optimizer).__name__} has no momentum to cycle; "
                             f"pass cycle_momentum=False")
        self.anneal = annealing_cos if anneal_strategy == "cos" else annealing_linear
        self.cycle_momentum = cycle_momentum
        self.phases = self._phases(float(pct_start), three_phase)
        groups = optimizer.param_groups
        max_lrs = per_group(max_lr, len(groups), "OneCycleLR: max_lr")
        for group, top in zip(groups, max_lrs):
            group.update(initial_lr=top / div_factor, max_lr=top, min_lr=top / div_factor / final_div_factor)
            if cycle_momentum:
                group.update(max_momentum=max_momentum, base_momentum=base_momentum)
                optimizer.set_momentum(group, max_momentum)
        self.last_epoch = -1
        self.step()

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
                pct = (step - start_step) / (end_step - start_step)
                momentum = self.anneal(group[mom_from], group[mom_to], pct) if self.cycle_momentum else None
                return self.anneal(group[lr_from], group[lr_to], pct), momentum
            start_step = end_step

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """The step count and the settings (everything but the optimiser), as plain numbers."""
        return {"last_epoch": self.last_epoch, "total_steps": self.total_steps}

    def load_state_dict(self, state):
        if state["total_steps"] != self.total_steps:
            raise ValueError(f"OneCycleLR.load_state_dict: the saved schedule has total_steps="
                             f"{state['total_steps']} but this one has {self.total_steps}")
        self.last_epoch = int(state["last_epoch"])


def _total_steps(total_steps, epochs, steps_per_epoch):
    if total_steps is not None:
        if not isinstance(total_steps, numbers.Integral) or total_steps <= 0:
            raise ValueError(f"OneCycleLR: total_steps must be a positive integer, got {total_steps!r}")
        return int(total_steps)
    if epochs is None or steps_per_epoch is None:
        raise ValueError("OneCycleLR: give total_steps, or both epochs and steps_per_epoch")
    if epochs <= 0 or steps_per_epoch <= 0:
        raise ValueError(f"OneCycleLR: epochs and steps_per_epoch must be positive, got {epochs} and "
                         f"{steps_per_epoch}")
    return int(epochs) * int(steps_per_epoch)



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
