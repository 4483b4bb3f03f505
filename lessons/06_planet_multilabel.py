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
#   4. the metric: F2 (recall weighs beta = 2 times as much as precision), averaged per image; the threshold;
#   5. progressive resizing: train at 64 px, then go on at 128 px with the same weights, against the same
#      budget at 128 px only;
#   6. the test set: predictions in the submission format;
#   7. an honest baseline: a linear model on raw pixels cannot reach the same F2.
#
#     python lessons/06_planet_multilabel.py [--quick] [--out DIR] [--data DIR] [--planet DIR]

# %%
import os
import time
from functools import partial
from pathlib import Path

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn
from tinygrad_cv.data import aug_transforms, planet_recipe
from tinygrad_cv.data.image_io import write_text
from tinygrad_cv.data.synthetic import make_planet
from tinygrad_cv.metrics import accuracy_multi, fbeta
from tinygrad_cv.models import resnet_small
from tinygrad_cv.train import Learner
from lesson_utils import parse_args, pyplot, save_lesson_figure, show_file

args = parse_args("Lesson 6: multi-label satellite tagging (Planet)", "06_planet_multilabel", data="planet",
                  full_minutes=47, configure=lambda parser: parser.add_argument(
                      "--planet", help="a real Kaggle Planet folder (train_v2.csv, train-jpg/, test-jpg/) to "
                                       "train on instead of generating synthetic tiles"))
started = time.time()
tg.manual_seed(0)
plt = pyplot()

# Sizes: the full run is what the README reports; --quick only proves that every step runs.
n_images, small, large, batch = (48, 32, 48, 16) if args.quick else (2000, 64, 128, 64)
epochs_small, epochs_large = (1, 1) if args.quick else (8, 2)
data_dir = os.path.join(args.out, "data") if args.quick else args.data

# %% [markdown]
# ## 1. The data
#
# The synthetic tiles are written exactly as Kaggle ships the real ones: train-jpg/*.jpg and
# train_v2.csv with two columns, image_name and tags ("clear primary road"), so the same code reads
# a real download (see "Your own data" at the end). A second, independent synthetic set stands in for
# Kaggle's test-jpg/: images without labels, on which we only predict.

# %%
if args.planet:
    path = Path(args.planet)
    test_paths = sorted((path / "test-jpg").glob("*.jpg"))
else:
    path = make_planet(data_dir, n=n_images, size=128, seed=0)
    test_folder = make_planet(data_dir + "-test", n=max(16, n_images // 10), size=128, seed=1)
    test_paths = sorted((test_folder / "train-jpg").glob("*.jpg"))
with open(os.path.join(path, "train_v2.csv")) as f:
    print("".join(f.readlines()[:4]))

# The data block: items are the CSV rows; each row's image is train-jpg/<name>.jpg; its labels are
# the space-separated tags, turned into a 17-long 0/1 vector over the vocabulary; 20% of the rows,
# chosen at random with a seed, are the validation set.
recipe = planet_recipe(path, valid_pct=0.2, seed=42)
print(recipe, "\nvocabulary:", recipe.vocab)


def loaders(size):
    """A satellite tile has no "up": seen from above, a forest turned by 90 degrees or mirrored is still a
    forest. So the flips are all 8 dihedral transforms (fastai's ``flip_vert=True``), with the fastai
    lesson's mild lighting and zoom and no perspective warp."""
    tfms = aug_transforms(size, flip_vert=True, max_lighting=0.1, max_zoom=1.05, max_warp=0)
    return recipe.dataloaders(batch_size=batch, size=size, seed=0, train_tfms=tfms, test_paths=test_paths)


dls = loaders(small)
save_lesson_figure(dls.show_batch(max_n=8), args.out, "batch.png")

# %% [markdown]
# ## 2. The model and the loss
#
# Multi-label: 17 independent yes/no questions. binary_cross_entropy_with_logits applies the sigmoid
# inside the loss in a numerically stable form, so the model outputs raw logits.

# %%
def new_model():
    """The same seed, the same initial weights: runs differ only in how they are trained."""
    tg.manual_seed(0)
    return resnet_small(len(recipe.vocab), width=8 if args.quick else 16, multi_label=True)


# `partial` fixes a metric's threshold: fbeta(pred, targ, beta=2, thresh=0.2) becomes a function of
# (pred, targ) alone, which is what the Learner calls.
f2 = partial(fbeta, beta=2, thresh=0.2)
acc = partial(accuracy_multi, thresh=0.2)
learn = Learner(dls, new_model(), F.binary_cross_entropy_with_logits, metrics=[acc, f2], path=args.out)

# %% [markdown]
# ## 3. The LR finder, then one-cycle
#
# Raise the learning rate exponentially batch after batch and watch the loss: pick a rate where it
# still falls steeply, before it blows up. Weights are restored afterwards.

# %%
suggestion = learn.lr_find(num_it=12 if args.quick else 100, show_plot=False,  # shown once, by show_file
                           fname=os.path.join(args.out, "lr_find.png"))
print(f"LR finder suggests: valley {suggestion.valley:.2e}, steep {suggestion.steep:.2e}")
show_file(os.path.join(args.out, "lr_find.png"))
lr = float(np.clip(suggestion.valley, 1e-3, 1e-2))
stages = []   # each fit's losses: the Recorder starts afresh at every fit


def record_stage(name):
    """Keep the stage's smoothed training loss per batch and its validation loss per epoch."""
    rec = learn.recorder
    stages.append((name, list(rec.smooth_losses), [(it, row["valid_loss"]) for it, row in zip(rec.iters, rec.values)]))


fit_started = time.time()
learn.fit_one_cycle(epochs_small, lr)
record_stage(f"{small} px")

# %% [markdown]
# ## 4. Choosing the threshold
#
# F-beta weighs recall beta times as much as precision: F2 = 5 * precision * recall / (4 * precision +
# recall), per image, then averaged (the 4 is beta squared). Missing a tag costs more than adding a wrong
# one, so the best threshold is low. The threshold trades precision for recall; scan it on the validation
# set.

# %%
def f2_by_threshold(learn):
    probs, targets = learn.get_preds()
    thresholds = np.arange(0.05, 0.96, 0.05)
    scores = [fbeta(probs, targets, beta=2, thresh=t, sigmoid=False) for t in thresholds]
    return thresholds, np.array(scores)


thresholds, scores = f2_by_threshold(learn)
print(f"at {small} px: best F2 {scores.max():.3f} at threshold {thresholds[scores.argmax()]:.2f}")

# %% [markdown]
# ## 5. Progressive resizing: transfer learning from small images to large ones
#
# The ResNet ends with an adaptive average pool, so the same weights accept 128-px images. Training
# first on small images is fast and teaches the coarse features; going on at 128 px with the same weights
# is transfer learning from one image size to another: the features carry over, the larger images add
# detail.

# %%
learn.dls = loaders(large)
learn.fit_one_cycle(epochs_large, lr / 4)
record_stage(f"{large} px, same weights")
progressive_minutes = (time.time() - fit_started) / 60
thresholds, scores_large = f2_by_threshold(learn)
best = thresholds[scores_large.argmax()]
print(f"at {large} px: best F2 {scores_large.max():.3f} at threshold {best:.2f} "
      f"(both stages trained in {progressive_minutes:.1f} min)")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(thresholds, scores, "o-", label=f"after training at {small} px")
ax.plot(thresholds, scores_large, "o-", label=f"after going on at {large} px")
ax.set_xlabel("threshold")
ax.set_ylabel("F2 on the validation set")
ax.legend()
save_lesson_figure(fig, args.out, "f2_vs_threshold.png")

# Both stages' losses on one axis (each fit starts a fresh Recorder, so we kept them as we went).
fig, ax = plt.subplots(figsize=(7, 4))
offset = 0
for name, train_losses, valid in stages:
    line, = ax.plot(range(offset, offset + len(train_losses)), train_losses, label=f"train (smoothed), {name}")
    if valid:
        its, losses = zip(*valid)
        ax.plot(np.array(its) + offset, losses, "o--", color=line.get_color(), label=f"valid, {name}")
    offset += len(train_losses)
    ax.axvline(offset, color="gray", ls=":")
ax.set(xlabel="batches (all stages)", ylabel="loss", title="losses of every stage")
ax.legend(fontsize=8)
save_lesson_figure(fig, args.out, "losses_all_stages.png")
# The predictions, drawn with the images de-normalised and the threshold chosen above.
save_lesson_figure(learn.show_results(max_n=8, thresh=float(best)), args.out, "predictions.png")

# %% [markdown]
# ## 6. Progressive resizing against the same budget at 128 px only
#
# Is starting small worth it? Give a fresh model the same compute at 128 px only. A batch's cost grows
# with its pixels, so the progressive run's budget, in 128-px epochs, is
# (epochs_small * 64^2 + epochs_large * 128^2) / 128^2 = (8 * 4096 + 2 * 16384) / 16384 = 4 epochs.
#
# In the full run (README, results) progressive resizing won: best F2 0.902 against 0.876 for 4 epochs at
# 128 px only, the same weights and seed at the start. (The wall times it prints are not comparable there:
# the machine was shared and the load changed between the two runs; the budget is equal by construction.)

# %%
epochs_equal = max(1, round((epochs_small * small ** 2 + epochs_large * large ** 2) / large ** 2))
direct = Learner(loaders(large), new_model(), F.binary_cross_entropy_with_logits, metrics=[acc, f2],
                 path=args.out)
direct_started = time.time()
direct.fit_one_cycle(epochs_equal, lr)
direct_minutes = (time.time() - direct_started) / 60
_, scores_direct = f2_by_threshold(direct)
print(f"same budget: progressive ({epochs_small} epochs at {small} px + {epochs_large} at {large} px) best F2 "
      f"{scores_large.max():.3f} in {progressive_minutes:.1f} min; {epochs_equal} epochs at {large} px only: "
      f"best F2 {scores_direct.max():.3f} in {direct_minutes:.1f} min")

# %% [markdown]
# ## 7. The test set
#
# The test images have no labels: we can only predict, with the threshold chosen on the validation set,
# and write the tags in the competition's submission format (image_name,tags).

# %%
probs, _ = learn.get_preds(dl=learn.dls.test)
probs = probs.numpy()
lines = ["image_name,tags"] + [f"{p.stem},{' '.join(recipe.vocab[k] for k in np.flatnonzero(row > best))}"
                               for p, row in zip(test_paths, probs)]
submission = write_text(os.path.join(args.out, "submission.csv"), "\n".join(lines) + "\n")
print(f"{len(probs)} test images predicted; the first rows of {submission}:\n" + "\n".join(lines[:4]))

# %% [markdown]
# ## 8. An honest baseline
#
# If a linear model on the raw pixels did as well, the task would be too easy to teach anything.
# It learns colour averages (cloudy is white, water is dark) but not roads, buildings or shapes.

# %%
train_minutes = (time.time() - started) / 60
tg.manual_seed(0)
linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * small * small, len(recipe.vocab)))
baseline = Learner(loaders(small), linear, F.binary_cross_entropy_with_logits, metrics=[f2], path=args.out,
                   progress=False)
baseline.fit_one_cycle(epochs_small, 1e-3)
_, linear_scores = f2_by_threshold(baseline)
print(f"linear model on pixels: best F2 {linear_scores.max():.3f}; ResNet: {scores_large.max():.3f} "
      f"(lesson so far {train_minutes:.1f} min; whole lesson {(time.time() - started) / 60:.1f} min)")

# %% [markdown]
# ## Your own data: the real Kaggle Planet download
#
# The readers take the real files as they are. With the Kaggle command-line tool (an account and its
# API token in ~/.kaggle/kaggle.json, and the competition's rules accepted on its web page):
#
#     kaggle competitions download -c planet-understanding-the-amazon-from-space -p ~/data/planet
#     cd ~/data/planet && unzip planet-understanding-the-amazon-from-space.zip
#     7z x train-jpg.tar.7z && tar xf train-jpg.tar    # -> train-jpg/train_0.jpg ...
#     7z x test-jpg.tar.7z && tar xf test-jpg.tar      # -> test-jpg/test_0.jpg ...
#     # train_v2.csv (image_name,tags) must sit next to train-jpg/
#     python lessons/06_planet_multilabel.py --planet ~/data/planet
#
# The 40,479 real tiles are 256 x 256 pixels, so expect a full run many times longer than the synthetic
# one. (The real CamVid folders go to lesson 8 the same way: images/, labels/<name>_P.png, codes.txt,
# valid.txt, as fastai's camvid download ships them.)
#
# ## What to look at
#
# - `f2_vs_threshold.png`: F2 peaks at a low threshold; F2 counts a missed tag more than a wrong one.
# - `losses_all_stages.png`: the small jump where the images grow to 128 px, and how fast it recovers.
# - `predictions.png`: true colours (the normalisation is undone), tags above the chosen threshold.
# - the printed line "same budget": whether starting small paid off on this data.
#
# ## Exercises (change one line)
#
# 1. In `planet_recipe(path, valid_pct=0.2, ...)` use `valid_pct=0.1`: 1800 training tiles instead of 1600,
#    and a validation F2 measured on 200 tiles, so it is noisier.
# 2. In `show_results`, pass `thresh=0.5`: each image shows the same or fewer predicted tags.
# 3. In `loaders`, use `aug_transforms(size)` (left-right flips only): the model sees 2 views of a tile
#    instead of 8.
