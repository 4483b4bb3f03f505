# %% [markdown]
# # Lesson 9: mixed precision
#
# float16 ("half") takes half the memory and half the memory traffic of float32, and GPUs multiply it on
# tensor cores many times faster (on an H100, about 990 TFLOP/s of dense fp16 matrix products against
# 67 TFLOP/s of plain fp32). But it has only 16 bits: 1 sign, 5 exponent, 10 fraction bits, so
#   - its range is small: above 65504 everything is inf (overflow);
#   - small numbers lose their bits and then become 0 (underflow), and gradients are small numbers;
#   - its precision is about 3 decimal digits: adding a small number to a large one can do nothing.
# Mixed precision (Micikevicius et al., 2018) keeps fp16 where it is safe and fast (the forward and
# backward passes) and fp32 where it is not: the master copy of the weights and their update, the
# accumulators of sums and products, the loss, batch-norm statistics. Loss scaling rescues the small
# gradients. This lesson shows each failure, then each fix, then trains the same model both ways.
#
#     python lessons/09_mixed_precision.py [--quick] [--out DIR]

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
from tinygrad_cv.train import Learner, LossScaler
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 9: mixed precision", "09_mixed_precision", full_minutes=0.5)
plt = pyplot()
tg.manual_seed(0)

# %% [markdown]
# ## 1. What float16 can hold
#
# A normal fp16 number is (-1)^sign * 2^(exponent - 15) * (1 + fraction / 1024), exponent 1..30;
# exponent 0 holds the subnormals 2^-14 * fraction / 1024, which trade precision for range near 0.

# %%
half, single = np.finfo(np.float16), np.finfo(np.float32)
print(f"{'':22s} {'float16':>12s} {'float32':>12s}")
for name in ("max", "smallest_normal", "smallest_subnormal", "eps"):
    print(f"{name:22s} {float(getattr(half, name)):12.4g} {float(getattr(single, name)):12.4g}")
assert half.max == (2 - 2 ** -10) * 2 ** 15 == 65504          # the largest fraction, the largest exponent
assert half.smallest_normal == 2 ** -14 and half.smallest_subnormal == 2 ** -24 and half.eps == 2 ** -10

# Every fp16 number there is: the 2^16 bit patterns, read as float16. Between two powers of two the
# numbers are evenly spaced, and the spacing doubles at each power of two: the *relative* spacing is
# about eps = 2^-10 (3 decimal digits) everywhere in the normal range. Below 2^-14 the spacing stays
# at 2^-24 (the subnormals), so there the relative precision falls, down to one bit at 2^-24.
every_half = np.arange(2 ** 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
positive = np.sort(every_half[np.isfinite(every_half) & (every_half > 0)]).astype(np.float64)
print(f"float16 has {np.isfinite(every_half).sum()} finite values, {len(positive)} of them positive")
fig, ax = plt.subplots(figsize=(7, 4))
ax.loglog(positive[:-1], np.diff(positive), label="float16: gap to the next number")
grid32 = np.logspace(-40, 38, 400).astype(np.float32)
ax.loglog(grid32, np.spacing(grid32), label="float32: np.spacing")
ax.axvspan(half.smallest_subnormal, half.smallest_normal, color="tab:orange", alpha=0.15,
           label="float16 subnormals")
ax.axvline(float(half.max), color="tab:red", ls=":", label="float16 max = 65504")
ax.set(xlabel="value", ylabel="spacing of representable numbers", xlim=(1e-9, 1e6), ylim=(1e-16, 1e2),
       title="float16 is coarse and short; float32 goes on to 3.4e38")
ax.legend(fontsize="small")
save_lesson_figure(fig, args.out, "float16_spacing.png")

# %% [markdown]
# ## 2. Overflow
#
# Products of moderate numbers leave the range: 300 * 300 = 90000 > 65504. So does exp() of any logit
# above log(65504) = 11.09, which is why the loss (a log-softmax or a sigmoid) is computed in fp32.

# %%
with np.errstate(over="ignore"):   # NumPy warns on overflow; here it is the point
    x = tg.Tensor([300.0], dtype=tg.float16)
    print(f"300 * 300 in float16 = {(x * x).item()}, in float32 = {(x.float() * x.float()).item()}")
    logits = tg.Tensor([10.0, 11.0, 12.0], dtype=tg.float16)
    print(f"exp({logits.numpy()}) in float16 = {F.exp(logits).numpy()}")

# %% [markdown]
# ## 3. Underflow of small gradients
#
# A segmentation-sized loss: the mean of binary cross-entropy over 8 x 256 x 256 pixels. Its gradient
# with respect to each logit is (sigmoid(logit) - target) / 524288: less than 2e-6. That is below
# float16's smallest normal (6.1e-5): those gradients are subnormals with a few bits left, and the
# ones below 2^-25 round to exactly 0. Under mixed precision the logits are float16 and the loss is
# float32, so the gradient is rounded to float16 where it flows back through the cast.

# %%
rng = np.random.default_rng(0)
shape = (8, 1, 256, 256)
targets = (rng.random(shape) < 0.3).astype(np.float32)
logit_values = rng.standard_normal(shape) * 2 + (2 * targets - 1) * 2   # a half-trained model's logits


def logit_gradient(dtype, scale):
    """d(mean BCE)/d(logits) with the logits in ``dtype`` and the loss multiplied by ``scale`` before
    backward; returned in float32 after dividing by ``scale`` (in float32)."""
    x = tg.Tensor(logit_values, dtype=dtype, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x.float(), tg.Tensor(targets))
    (loss * scale).backward()
    return x.grad.numpy().astype(np.float32) / np.float32(scale)


reference = logit_gradient(tg.float32, 1.0)
for scale in (1.0, 2.0 ** 16):
    g = logit_gradient(tg.float16, scale)
    relative = np.abs(g - reference) / np.abs(reference)
    print(f"float16 gradients, loss scale {scale:>7.0f}: {100 * np.mean(g == 0):5.2f}% are exactly 0, "
          f"median relative error {np.median(relative):.1e}")

# %% [markdown]
# ## 4. Loss scaling
#
# Backward is linear in the gradient it starts from: multiply the loss by S and every gradient is
# multiplied by S, which moves the whole histogram up by log2(S) on the axis below, out of the
# subnormals and into float16's precise range. Divide by S again in float32, after backward and before
# the update. S = 2^16 makes the zeros disappear and brings the error down to float16's rounding.

# %%
log2_reference = np.log2(np.abs(reference[reference != 0]))
fig, ax = plt.subplots(figsize=(7, 4))
bins = np.arange(-40, 6, 0.5)
ax.hist(log2_reference, bins, alpha=0.6, label="|gradient|")
ax.hist(log2_reference + 16, bins, alpha=0.6, label="|gradient| x 2^16 (scaled loss)")
ax.axvspan(-40, -25, color="black", alpha=0.12, label="rounds to 0 in float16")
ax.axvspan(-25, -14, color="tab:orange", alpha=0.15, label="float16 subnormals (few bits)")
ax.axvline(np.log2(65504), color="tab:red", ls=":", label="float16 max")
ax.set(xlabel="log2 |value|", ylabel="count", title="loss scaling moves gradients into float16's range")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
save_lesson_figure(fig, args.out, "loss_scaling_histogram.png")

# S must not be so large that the largest gradient overflows: then some gradient is inf, the step must
# be skipped, and S was too large. Nobody knows the right S in advance, so it is found while training
# (PyTorch's GradScaler): start high (2^16); on an overflow skip the step and halve S; after
# growth_interval clean steps in a row, double it. S then hovers just below the overflow level.
scaler = LossScaler(init_scale=2.0 ** 16, growth_interval=3)
for found_inf in (False, False, False, True, True, False):
    before = scaler.scale
    scaler.update(found_inf)
    print(f"LossScaler: {'overflow, step skipped' if found_inf else 'clean step':22s} scale {before:>8.0f} -> "
          f"{scaler.scale:.0f}")

# %% [markdown]
# ## 5. fp32 master weights and fp32 accumulation
#
# An update is w - lr * g. Near w = 1 the float16 numbers are 2^-11 = 0.00049 apart below 1, so an
# update smaller than half of that (0.00024) rounds back to w: the weight never moves, however many
# steps are taken. The same update added to a float32 master copy is kept. Below: plain SGD with
# lr * gradient = 1e-4 per step, once on a float16 weight and once on a float32 one.

# %%
steps = 200 if args.quick else 1000
trajectories = {}
for dtype in (tg.float16, tg.float32):
    w = nn.Parameter(tg.ones(1, dtype=dtype))
    sgd = optim.SGD([w], lr=1e-4)
    path = []
    for _ in range(steps):
        sgd.zero_grad()
        w.sum().backward()          # gradient 1
        sgd.step()
        path.append(w.item())
    trajectories[dtype] = path
print(f"after {steps} updates of -1e-4 from 1.0: float16 weight {trajectories[tg.float16][-1]}, float32 weight "
      f"{trajectories[tg.float32][-1]:.4f}")

# Accumulation has the same problem: a running sum in float16 stops growing once the spacing at its
# size exceeds twice what is added. Summing 0.1 (float16's 0.0999756) 10000 times: at 256 the spacing
# is 0.25, and 256 + 0.1 rounds back to 256. The engine's reductions and matrix products of float16
# accumulate in float32 and round once at the end.
n_terms = 10_000
tenths = np.full(n_terms, 0.1, dtype=np.float16)
running16 = np.cumsum(tenths, dtype=np.float16)          # one float16 addition after another
running32 = np.cumsum(tenths, dtype=np.float32)
engine_sum = tg.Tensor(tenths).sum()                      # float16 tensor, float32 accumulator
print(f"sum of {n_terms} x float16(0.1): float16 running sum {running16[-1]}, float32 {running32[-1]:.2f}, "
      f"the engine's sum {engine_sum.item()} ({engine_sum.dtype})")

fig, (w_ax, sum_ax) = plt.subplots(1, 2, figsize=(11, 4))
for dtype, style in ((tg.float32, "-"), (tg.float16, "--")):
    w_ax.plot(trajectories[dtype], style, label=f"{dtype} weight")
w_ax.set(xlabel="SGD step", ylabel="weight", title="updates of 1e-4: lost in float16, kept in float32")
sum_ax.plot(running32, label="float32 accumulator")
sum_ax.plot(running16, "--", label="float16 accumulator")
sum_ax.set(xlabel="terms added", ylabel="running sum", title="summing 0.1: float16 stalls at 256")
for ax in (w_ax, sum_ax):
    ax.legend()
save_lesson_figure(fig, args.out, "master_weights_and_accumulation.png")

# %% [markdown]
# ## 6. Training in float16 against float32
#
# Learner.to_fp16() does all of the above each batch: float16 copies of the float32 master weights for
# the forward and backward passes (batch norm keeps float32 weights and statistics), the predictions
# cast to float32 for the loss, the loss multiplied by the dynamic scale, the gradients unscaled in
# float32 and checked for inf/NaN (a skipped step halves the scale), and the optimiser stepping the
# masters. Same model, data, seed and schedule, once in each precision.

# %%
n_tiles, size, width, epochs = (160, 32, 8, 2) if args.quick else (1000, 32, 16, 8)
folder = make_planet(os.path.join(args.out, "planet"), n=n_tiles, size=size, seed=0)
recipe = planet_recipe(folder, valid_pct=0.2, seed=0)


def conv_block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


def train(fp16):
    tg.manual_seed(0)
    model = nn.Sequential(conv_block(3, width), conv_block(width, 2 * width), conv_block(2 * width, 4 * width),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, len(recipe.vocab)))
    learn = Learner(recipe.dataloaders(batch_size=32, size=size, seed=0), model,
                    F.binary_cross_entropy_with_logits, metrics=[partial(fbeta, beta=2, thresh=0.2)],
                    path=args.out, progress=False)
    if fp16:
        # growth_interval=10 instead of the usual 2000, so that in a few hundred steps the scale climbs
        # to where gradients overflow and we can watch it back off.
        learn.to_fp16(growth_interval=10)
    learn.fit_one_cycle(epochs, 1e-2)
    return learn


runs = {"float32": train(fp16=False), "mixed float16": train(fp16=True)}
for name, learn in runs.items():
    row = learn.recorder.values[-1]
    print(f"{name:14s} final validation loss {row['valid_loss']:.4f}, F2 {row['fbeta']:.4f}")
mixed = runs["mixed float16"]
print(f"loss scale: from 2^{np.log2(mixed.recorder.loss_scales[0]):.0f} to 2^{np.log2(mixed.loss_scale):.0f}, "
      f"{mixed.mixed_precision.scaler.skipped_steps} steps skipped for overflow")
save_lesson_figure(mixed.recorder.plot_loss_scale(), args.out, 'loss_scale.png')

fig, (loss_ax, scale_ax) = plt.subplots(1, 2, figsize=(11, 4))
for name, learn in runs.items():
    loss_ax.plot(range(1, epochs + 1), [row["valid_loss"] for row in learn.recorder.values], "o-", label=name)
loss_ax.set(xlabel="epoch", ylabel="validation loss", title="the same training in two precisions")
loss_ax.legend()
scale_ax.semilogy(mixed.recorder.loss_scales, base=2)
scale_ax.set(xlabel="batch", ylabel="loss scale", title="dynamic loss scale: doubles, halves on overflow")
save_lesson_figure(fig, args.out, "fp16_vs_fp32_training.png")


# %% [markdown]
# ## What to look at
#
# - `float16_spacing.png`: float16's spacing grows with the magnitude; above 2048 it is already 2.
# - `loss_scaling_histogram.png`: scaling moves the small gradients out of float16's underflow zone.
# - `master_weights_and_accumulation.png`: an update smaller than half the spacing is lost in float16.
# - `fp16_vs_fp32_training.png` and `loss_scale.png`: the two trainings side by side, the scale's halvings.
#
# ## Exercises (change one line)
#
# 1. Set the full run's `n_tiles` to 500: half the tiles, about half the training steps of section 6.
# 2. Print `np.finfo(np.float16)`: its max (65504) and smallest normal (6.1e-05) are the limits the figures
#    show.
