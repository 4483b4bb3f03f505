# %% [markdown]
# # Lesson 6: multi-label satellite tagging (the Planet "Understanding the Amazon from space" task)
#
# Each satellite tile carries several tags at once: one weather tag (clear, partly_cloudy, cloudy,
# haze) and any number of land tags (primary forest, agriculture, road, water, ...). So the model does
# not pick *one* class with a softmax and an argmax: it gives each of the 17 tags its own probability
# through a sigmoid, and we keep every tag whose probability is above a threshold.
#
# The steps, as in the fastai lesson:
#   1. the data block: read the CSV, split, label with the tag vocabulary, transform, make loaders;
#   2. a ResNet with a 17-way multi-label head, trained with binary cross-entropy on logits;
#   3. the LR finder, then fit_one_cycle;
#   4. the metric: F2 (recall counts 4x as much as precision), averaged per image; pick the threshold;
#   5. progressive resizing: train at 64 px, then go on at 128 px with the same weights;
#   6. an honest baseline: a linear model on raw pixels cannot reach the same F2.
#
#     python lessons/06_planet_multilabel.py [--quick] [--out DIR] [--data DIR]

# %%
import os
import time
from functools import partial

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn
from tinygrad_cv.data import planet_recipe
from tinygrad_cv.data.synthetic import make_planet
from tinygrad_cv.metrics import accuracy_multi, fbeta
from tinygrad_cv.models import resnet_small
from tinygrad_cv.train import Learner
from lesson_utils import parse_args, pyplot, save_figure, show_file

args = parse_args("Lesson 6: multi-label satellite tagging (Planet)", "06_planet_multilabel", data="planet")
started = time.time()
tg.manual_seed(0)

# Sizes: the full run is what the README reports; --quick only proves that every step runs.
n_images, small, large, batch = (48, 32, 48, 16) if args.quick else (2000, 64, 128, 64)
epochs_small, epochs_large = (1, 1) if args.quick else (8, 2)
data_dir = os.path.join(args.out, "data") if args.quick else args.data

# %% [markdown]
# ## 1. The data
#
# The synthetic tiles are written exactly as Kaggle ships the real ones: train-jpg/*.jpg and
# train_v2.csv with two columns, image_name and tags ("clear primary road"), so the same code reads
# a real download.

# %%
path = make_planet(data_dir, n=n_images, size=128, seed=0)
with open(os.path.join(path, "train_v2.csv")) as f:
    print("".join(f.readlines()[:4]))

# The data block: items are the CSV rows; each row's image is train-jpg/<name>.jpg; its labels are
# the space-separated tags, turned into a 17-long 0/1 vector over the vocabulary; 20% of the rows,
# chosen at random with a seed, are the validation set.
recipe = planet_recipe(path, valid_pct=0.2, seed=42)
print(recipe, "\nvocabulary:", recipe.vocab)


def loaders(size):
    """Satellite images have no "up": flips and all 8 dihedral transforms are fair augmentations."""
    return recipe.dataloaders(batch_size=batch, size=size, seed=0)


dls = loaders(small)
show_file(dls.show_batch(os.path.join(args.out, 'batch.png'), n=8))

# %% [markdown]
# ## 2. The model and the loss
#
# Multi-label: 17 independent yes/no questions. binary_cross_entropy_with_logits applies the sigmoid
# inside the loss in a numerically stable form, so the model outputs raw logits.

# %%
model = resnet_small(len(recipe.vocab), width=8 if args.quick else 16, multi_label=True)

# `partial` fixes a metric's threshold: fbeta(pred, targ, beta=2, thresh=0.2) becomes a function of
# (pred, targ) alone, which is what the Learner calls.
f2 = partial(fbeta, beta=2, thresh=0.2)
acc = partial(accuracy_multi, thresh=0.2)
learn = Learner(dls, model, F.binary_cross_entropy_with_logits, metrics=[acc, f2], path=args.out)

# %% [markdown]
# ## 3. The LR finder, then one-cycle
#
# Raise the learning rate exponentially batch after batch and watch the loss: pick a rate where it
# still falls steeply, before it blows up. Weights are restored afterwards.

# %%
suggestion = learn.lr_find(num_it=12 if args.quick else 100)
print(f"LR finder suggests: valley {suggestion.valley:.2e}, steep {suggestion.steep:.2e}")
show_file(os.path.join(args.out, 'lr_find.png'))
lr = float(np.clip(suggestion.valley, 1e-3, 1e-2))
learn.fit_one_cycle(epochs_small, lr)

# %% [markdown]
# ## 4. Choosing the threshold
#
# F2 = 5 * precision * recall / (4 * precision + recall), per image, then averaged. The threshold
# trades precision for recall; scan it on the validation set.

# %%
def f2_by_threshold(learn):
    probs, targets = learn.get_preds()
    thresholds = np.arange(0.05, 0.96, 0.05)
    scores = [fbeta(probs, targets, beta=2, thresh=t, sigmoid=False) for t in thresholds]
    return thresholds, np.array(scores)


thresholds, scores = f2_by_threshold(learn)
print(f"at {small} px: best F2 {scores.max():.3f} at threshold {thresholds[scores.argmax()]:.2f}")

# %% [markdown]
# ## 5. Progressive resizing
#
# The ResNet ends with an adaptive average pool, so the same weights accept 128-px images. Training
# first on small images is fast and teaches the coarse features; the larger ones add detail.

# %%
learn.dls = loaders(large)
learn.fit_one_cycle(epochs_large, lr / 4)
thresholds, scores_large = f2_by_threshold(learn)
best = thresholds[scores_large.argmax()]
print(f"at {large} px: best F2 {scores_large.max():.3f} at threshold {best:.2f}")

plt = pyplot()
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(thresholds, scores, "o-", label=f"after training at {small} px")
ax.plot(thresholds, scores_large, "o-", label=f"after going on at {large} px")
ax.set_xlabel("threshold")
ax.set_ylabel("F2 on the validation set")
ax.legend()
save_figure(fig, args.out, "f2_vs_threshold.png")
show_file(learn.recorder.plot_losses(os.path.join(args.out, 'losses.png')))
show_file(learn.show_results(n=8, fname=os.path.join(args.out, 'predictions.png')))
train_minutes = (time.time() - started) / 60

# %% [markdown]
# ## 6. An honest baseline
#
# If a linear model on the raw pixels did as well, the task would be too easy to teach anything.
# It learns colour averages (cloudy is white, water is dark) but not roads, buildings or shapes.

# %%
tg.manual_seed(0)
linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * small * small, len(recipe.vocab)))
baseline = Learner(loaders(small), linear, F.binary_cross_entropy_with_logits, metrics=[f2], path=args.out,
                   progress=False)
baseline.fit_one_cycle(epochs_small, 1e-3)
_, linear_scores = f2_by_threshold(baseline)
print(f"linear model on pixels: best F2 {linear_scores.max():.3f}; ResNet: {scores_large.max():.3f} "
      f"(trained in {train_minutes:.1f} min)")
