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
# Then the experiment that matters: the same model, data and number of epochs (an equal budget), trained
# with a fixed rate and with one-cycle, at peak rates over more than two decades, each run repeated with
# three seeds so that a difference can be told from the noise (mean and spread over seeds).
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
from lesson_utils import parse_args, pyplot, save_lesson_figure, show_file

args = parse_args("Lesson 7: one-cycle and the learning-rate finder", "07_one_cycle_lr_finder", full_minutes=12)
plt = pyplot()
# Sizes: --quick only proves that every step runs; the full run is the experiment (a few minutes).
n_tiles, size, width, epochs, num_it = (96, 32, 4, 2, 30) if args.quick else (800, 32, 8, 6, 100)
# The peak rates of the comparison, as multiples of the LR finder's 'valley' suggestion, and the seeds.
multiples = (1, 16) if args.quick else (1, 4, 16, 64)
seeds = (0, 1) if args.quick else (0, 1, 2)

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
# cross-entropy on 17 logits and the metric is F2 at threshold 0.2. The network is deep enough (six
# convolutions) to need batch norm, as the networks one-cycle was made for do.

# %%
tg.manual_seed(0)
folder = make_planet(os.path.join(args.out, "planet"), n=n_tiles, size=size, seed=0)
recipe = planet_recipe(folder, valid_pct=0.2, seed=0)


def conv_block(c_in, c_out, stride):
    """3x3 convolution (stride 2 halves height and width), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


def new_learner(seed=0, progress=False):
    """A fresh learner: six conv-BN-ReLU blocks (32 -> 4 px), average pooling, a linear layer. The seed fixes
    the initial weights and the order of the batches, so runs with the same seed differ only in their
    learning-rate schedule."""
    tg.manual_seed(seed)
    w = width
    model = nn.Sequential(conv_block(3, w, 1), conv_block(w, w, 2), conv_block(w, 2 * w, 1),
                          conv_block(2 * w, 2 * w, 2), conv_block(2 * w, 4 * w, 1), conv_block(4 * w, 4 * w, 2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, len(recipe.vocab)))
    dls = recipe.dataloaders(batch_size=32, size=size, seed=seed)
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
suggestion = finder_learn.lr_find(num_it=num_it, show_plot=False, fname=os.path.join(args.out, "lr_find.png"))
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
save_lesson_figure(fig, args.out, "lr_find_raw_and_smoothed.png")

# %% [markdown]
# ## 4. Fixed rate against one-cycle, over seeds and peak rates
#
# Same model, same data, same epochs; only the schedule differs. Learner.fit keeps the rate fixed;
# Learner.fit_one_cycle uses fastai's version of the cycle (warm-up over the first 25%, from
# lr_max/25, annealing to lr_max/1e5; momentum, here Adam's beta1, from 0.95 to 0.85 and back). Each
# (schedule, peak) pair is trained with three seeds (initial weights and batch order); we report the mean
# final validation loss and its spread (the standard deviation over the seeds).

# %%
def train(schedule, multiple, seed):
    """Train a fresh learner with ``schedule`` peaking at ``multiple`` x the valley rate; its final
    validation loss (the epoch table is printed for the one-cycle run at 4 x valley, seed 0)."""
    learn = new_learner(seed, progress=(schedule, multiple, seed) == ("one-cycle", multiples[-2], 0))
    (learn.fit_one_cycle if schedule == "one-cycle" else learn.fit)(epochs, multiple * lr)
    return learn


schedules = ("fixed", "one-cycle")
runs = {(schedule, m, seed): train(schedule, m, seed) for m in multiples for schedule in schedules for seed in seeds}


def final_losses(schedule, m):
    return np.array([runs[schedule, m, seed].recorder.values[-1]["valid_loss"] for seed in seeds])


summary = {(schedule, m): (final_losses(schedule, m).mean(), final_losses(schedule, m).std())
           for schedule in schedules for m in multiples}
for m in multiples:
    (f_mean, f_std), (c_mean, c_std) = summary["fixed", m], summary["one-cycle", m]
    verdict = "within the spread" if abs(f_mean - c_mean) <= f_std + c_std else \
        ("one-cycle lower" if c_mean < f_mean else "fixed lower")
    print(f"peak lr {m * lr:.2e} ({m:>3} x valley): final validation loss over {len(seeds)} seeds  "
          f"fixed {f_mean:.4f} +- {f_std:.4f}  one-cycle {c_mean:.4f} +- {c_std:.4f}  ({verdict})")
best = {schedule: min(multiples, key=lambda m: summary[schedule, m][0]) for schedule in schedules}
for schedule in schedules:
    mean, std = summary[schedule, best[schedule]]
    print(f"best peak for {schedule}: {best[schedule]} x valley ({best[schedule] * lr:.2e}), "
          f"validation loss {mean:.4f} +- {std:.4f}")
# "Good" = within 10% of the best mean loss either schedule reached; over how many peaks does each stay good?
good = 1.1 * min(mean for mean, _ in summary.values())
for schedule in schedules:
    kept = [m for m in multiples if summary[schedule, m][0] <= good]
    print(f"{schedule}: within 10% of the best loss at {len(kept)} of {len(multiples)} peaks {kept}")

# The schedule that fit_one_cycle really followed, batch by batch, as the Recorder saw it.
main_run = runs["one-cycle", multiples[0], seeds[0]]
save_lesson_figure(main_run.recorder.plot_sched(), args.out, "fit_one_cycle_schedule.png")
save_lesson_figure(main_run.recorder.plot_loss(), args.out, "losses.png")
recorded = np.array(main_run.recorder.lrs)
peak = multiples[0] * lr
print(f"fit_one_cycle: first rate {recorded[0] / peak:.3f} x lr_max, peak {recorded.max() / peak:.3f} x lr_max, "
      f"last {recorded[-1] / peak:.1e} x lr_max")

# Both cycles side by side against the fraction of training done: the same shape, with PyTorch's
# defaults (30% warm-up, down to max_lr/2.5e5) and fastai's (25% warm-up, down to lr_max/1e5).
fig, (lr_ax, mom_ax) = plt.subplots(1, 2, figsize=(11, 3.5))
torch_pos = np.arange(total_steps) / total_steps
fastai_pos = np.arange(len(recorded)) / len(recorded)
lr_ax.plot(torch_pos, np.array(torch_lrs) / max_lr, label="optim.lr_scheduler.OneCycleLR")
lr_ax.plot(fastai_pos, recorded / peak, "--", label="Learner.fit_one_cycle (recorded)")
mom_ax.plot(torch_pos, torch_moms, label="OneCycleLR: SGD momentum")
mom_ax.plot(fastai_pos, main_run.recorder.moms, "--", label="fit_one_cycle: Adam beta1 (recorded)")
lr_ax.set(xlabel="fraction of training", ylabel="lr / lr_max", title="learning rate", ylim=(0, 1.35))
mom_ax.set(xlabel="fraction of training", ylabel="momentum", title="momentum moves against the rate",
           ylim=(0.84, 0.99))
lr_ax.legend(loc="upper right")
mom_ax.legend(loc="upper center")
save_lesson_figure(fig, args.out, "one_cycle_schedules.png")

# %% [markdown]
# ## 5. The comparison, with error bars
#
# Left: validation loss per epoch at the largest peak, mean over the seeds with the spread shaded. Right:
# the final validation loss against the peak rate, mean and spread (error bars) over the seeds.
#
# What the full run measured (README, results; validation loss after 6 epochs, mean +- spread over 3 seeds):
#
# | peak | fixed | one-cycle |
# |---|---|---|
# | 1 x valley | 0.135 +- 0.001 | 0.157 +- 0.007 |
# | 4 x valley | 0.148 +- 0.007 | 0.134 +- 0.002 |
# | 16 x valley | 0.185 +- 0.023 | 0.138 +- 0.008 |
# | 64 x valley | 0.193 +- 0.008 | 0.161 +- 0.011 |
#
# So, on this network: at their best peaks the two are tied (0.134 against 0.135, well within the spread);
# what one-cycle buys is the range. A fixed rate is good only at the finder's valley and gets worse with
# every step up, while one-cycle stays within 10% of the best loss from 4x to 16x the valley, and is ahead
# of the fixed rate at every peak above the valley by more than the spread: its warm-up keeps the early,
# fragile steps small, and its end is always small steps, whatever the peak. At the valley itself the fixed
# rate is better: there one-cycle's average step (warm-up and anneal) is smaller than the fixed one's.
# (Without batch norm, an earlier version of this lesson found no advantage at all: both broke down at the
# same peak.)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
high = multiples[-1]
for schedule in schedules:
    curves = np.array([[row["valid_loss"] for row in runs[schedule, high, seed].recorder.values] for seed in seeds])
    mean, std = curves.mean(0), curves.std(0)
    line, = axes[0].plot(range(1, epochs + 1), mean, "o-", label=schedule)
    axes[0].fill_between(range(1, epochs + 1), mean - std, mean + std, color=line.get_color(), alpha=0.25)
axes[0].set(xlabel="epoch", ylabel="validation loss", title=f"peak lr {high * lr:.1e} ({high} x valley)")
axes[0].legend()
peaks = [m * lr for m in multiples]
for schedule, shift in zip(schedules, (0.97, 1.03)):   # a small shift so the error bars do not overlap
    means, stds = zip(*(summary[schedule, m] for m in multiples))
    axes[1].errorbar(np.array(peaks) * shift, means, yerr=stds, fmt="o-", capsize=4, label=schedule)
axes[1].set_xscale("log")
for name, value, color in (("valley", suggestion.valley, "tab:red"), ("steep", suggestion.steep, "tab:green")):
    axes[1].axvline(value, color=color, ls=":", label=f"finder's {name}")
axes[1].set(xlabel="peak learning rate", ylabel=f"validation loss after {epochs} epochs",
            title=f"mean and spread over {len(seeds)} seeds, equal budget")
axes[1].legend()
save_lesson_figure(fig, args.out, "fixed_vs_one_cycle.png")


# %% [markdown]
# ## What to look at
#
# - `fixed_vs_one_cycle.png`, right: the final loss against the peak rate, with error bars over three
#   seeds; where the bars of the two schedules overlap the difference is noise.
# - `one_cycle_schedules.png`: PyTorch's and fastai's cycles have the same shape, the rate and the momentum
#   moving against each other.
# - `lr_find.png`: each suggestion is marked on the curve at the rate its legend gives.
#
# ## Exercises (change one line)
#
# 1. Set `seeds = (0,)`: the run takes a third of the time and the error bars vanish, so nothing tells you
#    any more whether a difference is noise.
# 2. Add 256 to `multiples`: one more peak rate, so a quarter more training runs.
