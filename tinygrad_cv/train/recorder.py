"""The Recorder keeps the history of training (losses, learning rates, momenta, loss scales, the epoch
table) and draws it: each ``plot_*`` returns a matplotlib Figure (shown inline by Jupyter) and also writes
it as a PNG when given ``fname``. It is always among a Learner's callbacks, as ``learn.recorder``."""
import math
import numbers

from ..data.show import blank_figure, save_figure
from .callbacks import Callback


class SmoothedLoss:
    """Exponential moving average with bias correction (as Adam's): after t values,
    avg_t = beta avg_{t-1} + (1 - beta) loss_t, reported as avg_t / (1 - beta^t)."""

    def __init__(self, beta=0.98):
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= beta < 1:
            raise ValueError(f"SmoothedLoss: beta must be a number in [0, 1), got {beta!r}")
        self.beta = beta
        self.reset()

    def reset(self):
        self.average, self.count = 0.0, 0

    def add(self, loss):
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        return self.value

    @property
    def value(self):
        return self.average / (1 - self.beta ** self.count) if self.count else math.nan


def new_figure(n_axes=1, width=6.0, height=4.0):
    """A Figure (see data.show.blank_figure: no pyplot, no backend change) with ``n_axes`` axes in a row."""
    figure = blank_figure(width * n_axes, height)
    return figure, [figure.add_subplot(1, n_axes, i + 1) for i in range(n_axes)]


class Recorder(Callback):
    """Per training batch: the loss (raw and smoothed, beta 0.98), the learning rate and momentum of the last
    parameter group, and the loss scale under mixed precision; with a dict of losses, each term too (raw
    in ``term_losses[name]``, smoothed in ``smooth_term_losses[name]``). Per epoch: the row of the epoch
    table, with the validation mean of each term as ``valid_<name>``."""

    order = 50

    def __init__(self, beta=0.98):
        self.beta, self.smooth = beta, SmoothedLoss(beta)
        self.before_fit()

    def before_fit(self):
        self.losses, self.smooth_losses, self.lrs, self.moms, self.loss_scales = [], [], [], [], []
        self.values, self.iters = [], []
        self.term_losses, self.smooth_term_losses, self.smooth_terms = {}, {}, {}
        self.smooth.reset()

    def after_batch(self):
        if not self.learn.training:
            return
        loss = self.learn.loss_value
        self.losses.append(loss)
        if math.isfinite(loss):  # a step skipped for fp16 overflow must not poison the average
            self.smooth.add(loss)
        self.smooth_losses.append(self.smooth.value)
        for name, value in self.learn.loss_values.items():
            smooth = self.smooth_terms.setdefault(name, SmoothedLoss(self.beta))
            if math.isfinite(loss):
                smooth.add(value)
            self.term_losses.setdefault(name, []).append(value)
            self.smooth_term_losses.setdefault(name, []).append(smooth.value)
        group = self.learn.opt.param_groups[-1]
        self.lrs.append(group["lr"])
        self.moms.append(self.learn.opt.get_momentum(group) if self.learn.opt.momentum_key else None)
        if self.learn.loss_scale is not None:
            self.loss_scales.append(self.learn.loss_scale)

    def after_epoch(self):
        self.values.append(dict(self.learn.epoch_values))
        self.iters.append(len(self.losses))

    # ------------------------------------------------------------------ figures
    def _require(self, history, what):
        if not history:
            raise ValueError(f"Recorder: no {what} recorded yet; train first (learn.fit(...))")

    def plot_loss(self, skip_start=5, with_valid=True, fname=None):
        """Smoothed training loss per batch from batch ``skip_start`` on, and (``with_valid``) the validation
        loss per epoch, as fastai's ``plot_loss``; with a dict of losses, a second panel draws each term the
        same way (training smoothed, validation per epoch in the term's colour). Returns the Figure."""
        self._require(self.smooth_losses, "training loss")
        figure, axes = new_figure(2 if self.term_losses else 1)
        curves = [(axes[0], "train (smoothed)", self.smooth_losses, "valid_loss", "valid")]
        curves += [(axes[-1], name, smooth, f"valid_{name}", None) for name, smooth in self.smooth_term_losses.items()]
        for ax, label, smooth, valid_key, valid_label in curves:
            line, = ax.plot(range(skip_start, len(smooth)), smooth[skip_start:], label=label)
            valid = [(it, row[valid_key]) for it, row in zip(self.iters, self.values)
                     if row.get(valid_key) is not None]
            if valid and with_valid:
                ax.plot(*zip(*valid), "o-" if valid_label else "o--", color=None if valid_label else line.get_color(),
                        label=valid_label)
        for ax, title in zip(axes, ["Losses", "Loss terms (dashed: valid)"]):
            ax.set(xlabel="batches", ylabel="loss", title=title)
            ax.legend(fontsize=8)
        return save_figure(figure, fname)

    def plot_losses(self, fname=None, skip_start=5):
        """fastai v1's name: ``plot_loss(skip_start, fname=fname)``."""
        return self.plot_loss(skip_start, fname=fname)

    def plot_sched(self, fname=None):
        """Learning rate and momentum per batch (the schedule), as fastai's ``plot_sched``; returns the
        Figure."""
        self._require(self.lrs, "learning rate")
        figure, (lr_ax, mom_ax) = new_figure(2)
        lr_ax.plot(self.lrs)
        lr_ax.set(xlabel="batches", ylabel="learning rate", title="Learning rate")
        mom_ax.plot([m for m in self.moms if m is not None])
        mom_ax.set(xlabel="batches", ylabel="momentum", title="Momentum (SGD momentum or Adam beta1)")
        return save_figure(figure, fname)

    plot_lr = plot_sched  # fastai v1's name

    def plot_metrics(self, fname=None):
        """Every column of the epoch table (losses and metrics) against the epoch; returns the Figure."""
        self._require(self.values, "epoch")
        names = [k for k in (self.values[0] if self.values else {}) if k not in ("epoch", "time")]
        figure, axes = new_figure(max(1, len(names)), width=4.5, height=3.5)
        for ax, name in zip(axes, names):
            points = [(row["epoch"], row[name]) for row in self.values if row[name] is not None]
            if points:
                ax.plot(*zip(*points), "o-")
            ax.set(xlabel="epoch", title=name)
        return save_figure(figure, fname)

    def plot_loss_scale(self, fname=None):
        """The dynamic loss scale of mixed-precision training per batch (log scale); returns the Figure."""
        self._require(self.loss_scales, "loss scale (only training after learn.to_fp16() has one)")
        figure, (ax,) = new_figure()
        ax.semilogy(self.loss_scales)
        ax.set(xlabel="batches", ylabel="loss scale", title="Dynamic loss scale (halved on overflow)")
        return save_figure(figure, fname)
