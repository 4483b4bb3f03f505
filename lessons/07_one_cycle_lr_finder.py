# %% [markdown]
# # Lesson 7: one-cycle and the learning-rate finder
#
# Lesson 2 showed that the learning rate decides everything: too small crawls, too large diverges,
# and a fixed rate large enough to explore never settles. Two tools from Leslie Smith (made popular by
# fastai) answer "which rate?" and "why one rate?":
#
#   the LR finder   train for a few dozen batches while the rate grows exponentially, from 1e-7 to 10;
#                   the loss first barely moves, then falls, then explodes. A good rate sits on the
#                   steep, steady part of the fall, well before the explosion;
#   one-cycle       do not keep the rate fixed: warm up from lr_max/25 to lr_max, then anneal with a
#                   cosine to almost zero, while the momentum does the opposite (high when the rate is
#                   low, low when the rate is high). The large steps in the middle explore; the small
#                   steps at the end settle into the bottom of whatever valley the model has reached.
#
# Then the experiment that matters: the same model, data, seed and number of epochs, trained with a
# fixed rate and with one-cycle, at several peak rates.
#
#     python lessons/07_one_cycle_lr_finder.py [--quick] [--out DIR]

# %%
import os
from functools import partial

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn, optim
from tinygrad_cv.data import planet_recipe
from tinygrad_cv.data.synthetic import make_planet
from tinygrad_cv.metrics import fbeta
from tinygrad_cv.train import Learner
from lesson_utils import parse_args, pyplot, save_figure, show_file

args = parse_args("Lesson 7: one-cycle and the learning-rate finder", "07_one_cycle_lr_finder")
plt = pyplot()
# Sizes: --quick only proves that every step runs; the full run is the experiment (a few minutes).
n_tiles, size, width, epochs, num_it = (160, 32, 8, 2, 30) if args.quick else (1000, 32, 16, 8, 100)
# The peak rates of the comparison, as multiples of the LR finder's 'valley' suggestion.
multiples = (1, 10) if args.quick else (0.3, 1, 3, 10, 30)

# %% [markdown]
# ## 1. The one-cycle schedule on its own
#
# A schedule is just a function of the step. PyTorch's OneCycleLR drives any optimiser that has a
# momentum (SGD's momentum, Adam's beta1): call scheduler.step() after each optimizer.step(). With
# pct_start = 0.3 the first 30% of the steps warm up, cosine-shaped, from max_lr / div_factor to
# max_lr; the rest anneal to max_lr / (div_factor * final_div_factor). Momentum moves the other way:
# a large step with a large momentum would overshoot, so momentum dips while the rate peaks.

# %%
total_steps, max_lr = 200, 1e-2
weight = nn.Parameter(tg.zeros(3))
sgd = optim.SGD([weight], lr=max_lr, momentum=0.9)
scheduler = optim.lr_scheduler.OneCycleLR(sgd, max_lr=max_lr, total_steps=total_steps)
torch_lrs, torch_moms = [], []
for _ in range(total_steps):
    torch_lrs.append(sgd.param_groups[0]["lr"])
    torch_moms.append(sgd.param_groups[0]["momentum"])
    sgd.step()           # no gradients here: only the schedule matters
    scheduler.step()
print(f"OneCycleLR: starts at {torch_lrs[0]:.1e} (max_lr/25), peaks at {max(torch_lrs):.1e} at step "
      f"{int(np.argmax(torch_lrs))} of {total_steps}, ends at {torch_lrs[-1]:.1e}")

# %% [markdown]
# ## 2. Data and a small CNN
#
# Planet-like satellite tiles at 32x32 (lesson 6): 17 tags per tile, multi-label, so the loss is binary
# cross-entropy on 17 logits and the metric is F2 at threshold 0.2.

# %%
tg.manual_seed(0)
folder = make_planet(os.path.join(args.out, "planet"), n=n_tiles, size=size, seed=0)
recipe = planet_recipe(folder, valid_pct=0.2, seed=0)


def conv_block(c_in, c_out):
    """3x3 convolution with stride 2 (halves height and width), then ReLU. No batch norm, on purpose:
    batch norm makes a network so forgiving of the learning rate (with it, this network's LR-finder
    loss had still not blown up at a rate of 4) that it would hide what this lesson is about."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU())


def new_learner(progress=False):
    """A fresh learner: the same seed gives the same initial weights and the same batches every time,
    so runs differ only in their learning-rate schedule."""
    tg.manual_seed(0)
    model = nn.Sequential(conv_block(3, width), conv_block(width, 2 * width), conv_block(2 * width, 4 * width),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, len(recipe.vocab)))
    dls = recipe.dataloaders(batch_size=32, size=size, seed=0)
    return Learner(dls, model, F.binary_cross_entropy_with_logits, metrics=[partial(fbeta, beta=2, thresh=0.2)],
                   path=args.out, progress=progress)

# %% [markdown]
# ## 3. The learning-rate finder
#
# Before training batch i the rate is 1e-7 * (10 / 1e-7)^(i / num_it); the loss is smoothed with an
# exponential moving average (the raw loss of one batch is too noisy to read). The finder stops when
# the smoothed loss passes 4x its best, and restores the weights: it is a measurement, not training.
# Its suggestions (marked on the figure):
#   valley   a point a third to half of the way down the longest descending stretch of the curve;
#   steep    where the loss falls fastest per unit of log(lr);
#   minimum  a tenth of the rate at the lowest loss (the lowest point itself is already too hot).

# %%
finder_learn = new_learner()
suggestion = finder_learn.lr_find(num_it=num_it, fname=os.path.join(args.out, "lr_find.png"))
show_file(os.path.join(args.out, 'lr_find.png'))
print(f"LR finder suggests: valley {suggestion.valley:.2e}, steep {suggestion.steep:.2e}, "
      f"minimum/10 {suggestion.minimum:.2e}")
lr = suggestion.valley

# The smoothing has a price: with beta = 0.98 the average remembers about 1 / (1 - 0.98) = 50 batches,
# and the rate grows 8 decades in num_it batches, so the smoothed curve trails the raw one by several
# decades of rate. That is why the suggestions sit well before the raw loss's lowest point: they are
# conservative by construction. The Recorder kept the finder's raw losses (the finder is a short fit).
finder_record = finder_learn.recorder
fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogx(finder_record.lrs, finder_record.losses, ".", ms=3, color="lightgray", label="raw loss per batch")
ax.semilogx(finder_record.lrs, finder_record.smooth_losses, label="smoothed (beta 0.98)")
ax.axvline(suggestion.valley, color="tab:red", ls=":", label=f"valley {suggestion.valley:.1e}")
ax.set(xlabel="learning rate", ylabel="training loss", title="LR finder: raw and smoothed loss",
       ylim=(0, 2 * finder_record.smooth_losses[0]))  # the explosion runs off the top
ax.legend()
save_figure(fig, args.out, "lr_find_raw_and_smoothed.png")

# %% [markdown]
# ## 4. Fixed rate against one-cycle
#
# Same model, same data, same seed, same epochs; only the schedule differs. Learner.fit keeps the rate
# fixed; Learner.fit_one_cycle uses fastai's version of the cycle (warm-up over the first 25%, from
# lr_max/25, annealing to lr_max/1e5; momentum, here Adam's beta1, from 0.95 to 0.85 and back).

# %%
def train(schedule, multiple):
    """Train a fresh learner with ``schedule`` peaking at ``multiple`` x the valley rate (the epoch table
    is printed for the one-cycle run at the valley rate)."""
    learn = new_learner(progress=(schedule, multiple) == ("one-cycle", 1))
    if schedule == "one-cycle":
        learn.fit_one_cycle(epochs, multiple * lr)
    else:
        learn.fit(epochs, multiple * lr)
    return learn


runs = {(schedule, m): train(schedule, m) for m in multiples for schedule in ("fixed", "one-cycle")}


def valid_losses(learn):
    return [row["valid_loss"] for row in learn.recorder.values]


for m in multiples:
    fixed, cycle = valid_losses(runs["fixed", m])[-1], valid_losses(runs["one-cycle", m])[-1]
    print(f"peak lr {m * lr:.2e} ({m:>4} x valley): final validation loss  fixed {fixed:.4f}  "
          f"one-cycle {cycle:.4f}  ({'one-cycle' if cycle < fixed else 'fixed'} lower)")

for schedule in ("fixed", "one-cycle"):
    best = min(multiples, key=lambda m: valid_losses(runs[schedule, m])[-1])
    print(f"best peak for {schedule}: {best} x valley ({best * lr:.2e}), "
          f"validation loss {valid_losses(runs[schedule, best])[-1]:.4f}")

# The schedule that fit_one_cycle really followed, batch by batch, as the Recorder saw it.
main_run = runs["one-cycle", 1]
show_file(main_run.recorder.plot_lr(os.path.join(args.out, 'fit_one_cycle_schedule.png')))
show_file(main_run.recorder.plot_losses(os.path.join(args.out, 'losses.png')))
recorded = np.array(main_run.recorder.lrs)
print(f"fit_one_cycle: first rate {recorded[0] / lr:.3f} x lr_max, peak {recorded.max() / lr:.3f} x lr_max, "
      f"last {recorded[-1] / lr:.1e} x lr_max")

# Both cycles side by side against the fraction of training done: the same shape, with PyTorch's
# defaults (30% warm-up, down to max_lr/2.5e5) and fastai's (25% warm-up, down to lr_max/1e5).
fig, (lr_ax, mom_ax) = plt.subplots(1, 2, figsize=(11, 3.5))
torch_pos = np.arange(total_steps) / total_steps
fastai_pos = np.arange(len(recorded)) / len(recorded)
lr_ax.plot(torch_pos, np.array(torch_lrs) / max_lr, label="optim.lr_scheduler.OneCycleLR")
lr_ax.plot(fastai_pos, recorded / lr, "--", label="Learner.fit_one_cycle (recorded)")
mom_ax.plot(torch_pos, torch_moms, label="OneCycleLR: SGD momentum")
mom_ax.plot(fastai_pos, main_run.recorder.moms, "--", label="fit_one_cycle: Adam beta1 (recorded)")
lr_ax.set(xlabel="fraction of training", ylabel="lr / lr_max", title="learning rate", ylim=(0, 1.35))
mom_ax.set(xlabel="fraction of training", ylabel="momentum", title="momentum moves against the rate",
           ylim=(0.84, 0.99))
lr_ax.legend(loc="upper right")
mom_ax.legend(loc="upper center")
save_figure(fig, args.out, "one_cycle_schedules.png")

# The comparison. Left and middle: validation loss per epoch at the valley rate and at 10x it. At the
# valley rate a fixed schedule is already safe, and one-cycle, which spends its first quarter warming
# up from lr_max/25 and its last half annealing, takes smaller steps on average and ends a little
# behind. At 10x a fixed rate is too large to settle: its loss bounces from epoch to epoch, while
# one-cycle's annealing brings the loss down smoothly at the end. Right: the final validation loss
# against the peak rate. One-cycle is at least as good at its best, and stays good over a wider range
# of peaks, well above the rates where a fixed schedule starts to suffer: its warm-up keeps the early,
# fragile steps small, and its end is always small steps, whatever the peak.
fig, axes = plt.subplots(1, 3, figsize=(16, 4))
for ax, m in zip(axes[:2], (1, 10)):
    for schedule in ("fixed", "one-cycle"):
        ax.plot(range(1, epochs + 1), valid_losses(runs[schedule, m]), "o-", label=schedule)
    ax.set(xlabel="epoch", ylabel="validation loss", title=f"peak lr {m * lr:.1e} ({m} x valley)")
    ax.legend()
peaks = [m * lr for m in multiples]
for schedule in ("fixed", "one-cycle"):
    axes[2].semilogx(peaks, [valid_losses(runs[schedule, m])[-1] for m in multiples], "o-", label=schedule)
for name, value, color in (("valley", suggestion.valley, "tab:red"), ("steep", suggestion.steep, "tab:green")):
    axes[2].axvline(value, color=color, ls=":", label=f"finder's {name}")
axes[2].set(xlabel="peak learning rate", ylabel=f"validation loss after {epochs} epochs",
            title="same model, data, seed and epochs")
axes[2].legend()
save_figure(fig, args.out, "fixed_vs_one_cycle.png")
