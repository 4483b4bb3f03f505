# %% [markdown]
# # Lesson 14: transfer learning
#
# The central move of the fastai lesson: do not start from random weights. Take a ResNet whose body
# was trained on a large source task (ImageNet, in the course), put a new head on it for your task,
# train the head alone for a while (the body *frozen*), then everything (*unfrozen*) with small
# learning rates for the early layers and larger ones near the head (*discriminative* rates). fastai
# packs the recipe into one call, `learn.fine_tune(epochs)`.
#
# No ImageNet weights can be downloaded here, so this lesson makes its own: it pretrains a ResNet-18
# (narrow, for a CPU) on a source task built from the synthetic generators' textures and shapes,
# saves the weights as a `.safetensors` file, and loads that file the way you would load torchvision's.
# Then it fine-tunes on the Planet-like tiles and compares, epoch by epoch, with the same network
# trained from scratch for the same number of epochs.
#
#     python lessons/14_transfer_learning.py [--quick] [--out DIR] [--data DIR]

# %%
import os
import time
from functools import partial

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv.data import planet_recipe
from tinygrad_cv.data.loader import DataLoader, DataLoaders
from tinygrad_cv.data.synthetic import make_planet
from tinygrad_cv.data.synthetic.draw import Canvas, fractal_noise, textured
from tinygrad_cv.data.synthetic.planet import FOREST_ONLY, PAINTERS, paint_ground
from tinygrad_cv.data.synthetic.shapes import shape_alpha
from tinygrad_cv.io import load_safetensors, save_safetensors
from tinygrad_cv.metrics import accuracy, fbeta
from tinygrad_cv.models import resnet18
from tinygrad_cv.train import Callback, Learner
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 14: transfer learning", "14_transfer_learning", data="planet_transfer", full_minutes=3.1)
started = time.time()
tg.manual_seed(0)

# Sizes: the full run is what the text below reports; --quick only proves that every step runs.
if args.quick:
    n_source, source_epochs, n_target, target_epochs, width, batch = 96, 1, 48, 2, 4, 16
else:
    n_source, source_epochs, n_target, target_epochs, width, batch = 5000, 5, 400, 8, 8, 32
size = 64
data_dir = os.path.join(args.out, "data") if args.quick else args.data

# %% [markdown]
# ## 1. A source task
#
# ImageNet teaches a network edges, textures, blobs and object parts, which are useful far beyond
# ImageNet's 1000 classes. Our stand-in is drawn from the synthetic generators' own textures and
# shapes: sixteen single-label classes. Twelve show one land-cover feature (a field grid, a river,
# a road, roofs, a mine, ...) painted by the Planet generator's painters on forest or open ground,
# without clouds, haze or other features; four show a square, a circle, a triangle or nothing on a
# textured background (the "shapes" generator's). Colours, sizes, positions and angles are random.
#
# Be clear about what this is: the land-cover classes share the target's visual vocabulary, so this
# is closer to pretraining on *other satellite images* than to ImageNet, whose photos look nothing
# like satellite tiles. The target task below is still a different one: seventeen tags at once,
# several per tile, under clouds and haze, learned from a few hundred tiles.

# %%
LAND = list(PAINTERS)
SHAPES = ("nothing", "square", "circle", "triangle")
CLASSES = LAND + [f"{shape} on texture" for shape in SHAPES]


def source_image(rng, label):
    """One (size, size, 3) uint8 image of class ``label``: a land feature, or a shape on a texture."""
    canvas, scale = Canvas(size, size), size / 128
    if label < len(LAND):
        feature = LAND[label]
        paint_ground(canvas, rng, scale, forest=feature in FOREST_ONLY or rng.random() < 0.6)
        PAINTERS[feature](canvas, rng, scale, 1)
    else:
        shape = label - len(LAND)
        canvas.paint(1.0, textured(rng.uniform(0.2, 0.8, 3).astype(np.float32),
                                   fractal_noise(rng, size, size, int(rng.integers(2, 12)), 3), 0.9))
        if shape:
            radius = rng.uniform(0.15, 0.3) * size
            cx, cy = rng.uniform(radius, size - radius, 2)
            canvas.paint(shape_alpha(canvas, shape, cx, cy, radius, rng.uniform(0, 2 * np.pi)),
                         rng.uniform(0, 1, 3).astype(np.float32))
    canvas.shade(rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3))
    return canvas.to_uint8()


def source_loaders(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    samples = [{"image": source_image(rng, int(label)), "target": int(label)} for label in labels]
    cut = n * 9 // 10
    return DataLoaders(DataLoader(samples[:cut], batch_size=batch, shuffle=True, seed=seed),
                       DataLoader(samples[cut:], batch_size=batch, seed=seed))


source = source_loaders(n_source)
print(f"source task: {n_source} images of {size} px, {len(CLASSES)} classes: {CLASSES}")

plt = pyplot()
fig, axes = plt.subplots(2, 8, figsize=(12, 3.4))
examples = np.random.default_rng(123)  # its own generator: the figure changes no number of the run
for label, ax in enumerate(axes.ravel()):
    ax.imshow(source_image(examples, label))
    ax.set_title(CLASSES[label].replace("_", " "), fontsize=7)
    ax.axis("off")
save_lesson_figure(fig, args.out, "source_task.png")

# %% [markdown]
# ## 2. Pretraining, and saving the weights
#
# `resnet18` is torchvision's architecture (here at width 8 instead of 64, so that it trains on a
# CPU in a minute or two) with torchvision's parameter names. Its `state_dict()` saved with
# `save_safetensors` is the same kind of file as a torchvision or timm ResNet-18 exported to
# safetensors: names like `layer1.0.conv1.weight`, one array each.

# %%
pretrained_model = resnet18(num_classes=len(CLASSES), width=width)
pretrain = Learner(source, pretrained_model, F.cross_entropy, metrics=[accuracy], path=args.out)
pretrain.fit_one_cycle(source_epochs, 3e-3)
source_accuracy = pretrain.recorder.values[-1]["accuracy"]
weights_path = save_safetensors(pretrained_model.state_dict(), os.path.join(args.out, "resnet18_source.safetensors"))
names = list(load_safetensors(weights_path))
print(f"source accuracy {source_accuracy:.3f}; saved {len(names)} arrays to {weights_path}, e.g. {names[:3]}")

# %% [markdown]
# ## 3. The target task: Planet-like tiles
#
# Seventeen tags per tile, multi-label (see lesson 6), with few images: pretraining matters most when
# the target task has little data.

# %%
path = make_planet(data_dir, n=n_target, size=128, seed=0)
recipe = planet_recipe(path, valid_pct=0.2, seed=42)
print(recipe)
f2 = partial(fbeta, beta=2, thresh=0.2)


class F2History(Callback):
    """The validation F2 after every epoch, across fits (fine_tune runs two; the Recorder keeps the last)."""

    def __init__(self):
        self.values = []

    def after_epoch(self):
        self.values.append(self.learn.epoch_values["fbeta"])


def target_learner(model):
    history = F2History()
    learn = Learner(recipe.dataloaders(batch_size=batch, size=size, seed=0), model,
                    F.binary_cross_entropy_with_logits, metrics=[f2], cbs=[history], path=args.out)
    return learn, history


# %% [markdown]
# ## 4. Fine-tuning the pretrained body
#
# `resnet18(num_classes=17, weights=path)` loads every array of the file except the head: the file's
# `fc` has 16 outputs, we asked for 17, so `fc` is replaced by a new, random Linear (the head rule:
# an explicit `num_classes` that differs from the file's replaces the head; leaving it out would make
# the mismatch an error naming `fc.weight` and both shapes). Everything else must match exactly.
#
# With torchvision's real weights, the call is the same with another file:
#
#     import torchvision, safetensors.torch
#     safetensors.torch.save_file(torchvision.models.resnet18(weights="DEFAULT").state_dict(),
#                                 "resnet18_imagenet.safetensors")
#     model = resnet18(num_classes=17, weights="resnet18_imagenet.safetensors")   # width 64
#
# (or a timm `model.safetensors` from the hub for `resnet18`/`resnet34`/`resnet50`). Then
# `fine_tune(epochs - 1, freeze_epochs=1)`: one epoch with the body frozen (the head and the batch
# norm layers learn at `base_lr`), then all layers, at rates from `base_lr/2/100` (first group) to
# `base_lr/2` (head).

# %%
tg.manual_seed(1)
model = resnet18(num_classes=len(recipe.vocab), weights=weights_path, width=width, multi_label=True)
fine, fine_history = target_learner(model)
fine.fine_tune(target_epochs - 1, base_lr=1e-2, freeze_epochs=1)
fine_f2 = fine_history.values

# %% [markdown]
# ## 5. The same network from scratch, with the same budget
#
# Same architecture, same data, same number of epochs, one-cycle at the same top rate; only the
# starting weights differ.

# %%
tg.manual_seed(1)
scratch, scratch_history = target_learner(resnet18(num_classes=len(recipe.vocab), width=width, multi_label=True))
scratch.fit_one_cycle(target_epochs, 1e-2)
scratch_f2 = scratch_history.values

# %% [markdown]
# ## 6. What pretraining bought
#
# F2 on the validation set after each epoch, for both. The question of the issue: how soon does the
# pretrained model reach the from-scratch model's *final* F2?

# %%
epochs = np.arange(1, target_epochs + 1)
reached = [e for e, value in zip(epochs, fine_f2) if value >= scratch_f2[-1]]
print("epoch  F2 pretrained  F2 from scratch")
for e, a, b in zip(epochs, fine_f2, scratch_f2):
    print(f"{e:5d}  {a:13.3f}  {b:15.3f}")
if reached:
    print(f"the pretrained model reaches the from-scratch final F2 ({scratch_f2[-1]:.3f}) at epoch {reached[0]} "
          f"of {target_epochs}")
else:
    print(f"the pretrained model does not reach the from-scratch final F2 ({scratch_f2[-1]:.3f}) in "
          f"{target_epochs} epochs")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(epochs, fine_f2, "o-", label="pretrained body, fine_tune")
ax.plot(epochs, scratch_f2, "s-", label="from scratch, fit_one_cycle")
ax.axhline(scratch_f2[-1], color="grey", lw=0.8, ls="--")
ax.axvline(1.5, color="grey", lw=0.8, ls=":")
ax.text(1.55, ax.get_ylim()[0], " unfrozen from here", va="bottom", fontsize=8)
ax.set_xlabel("epoch")
ax.set_ylabel("F2 on the validation set (threshold 0.2)")
ax.legend()
save_lesson_figure(fig, args.out, "f2_pretrained_vs_scratch.png")
print(f"total time {(time.time() - started) / 60:.1f} min")

# %% [markdown]
# ## What the run showed
#
# The full run (`python lessons/14_transfer_learning.py`, one CPU thread, about 3 minutes):
# pretraining for 5 epochs on 4,500 source images reached 72% validation accuracy over the 16
# classes. Then 8 epochs on 320 planet tiles, F2 on 80 validation tiles:
#
# | epoch | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 |
# |---|---|---|---|---|---|---|---|---|
# | pretrained, `fine_tune` | 0.768 | 0.803 | 0.835 | 0.856 | 0.881 | 0.875 | 0.876 | 0.872 |
# | from scratch | 0.485 | 0.734 | 0.639 | 0.737 | 0.845 | 0.848 | 0.854 | 0.844 |
#
# - After one epoch in which only the new head and the batch norm layers learned, the pretrained
#   model is at 0.768; the network from scratch is at 0.485.
# - The pretrained model passes the from-scratch model's final F2 (0.844) at epoch 4, half the
#   budget, and finishes at 0.872.
# - Its curve rises steadily; the from-scratch one jumps about (0.734, then 0.639) before settling.
#
# Keep the scale of this in mind: one seed and 80 validation tiles, so differences of a point or two
# of F2 are within the noise; the early lead is the robust part. And the source task matters: in an
# earlier version of this lesson, whose source task had only textures and shapes (no land-cover
# features), the pretrained model led in the first epochs only and finished below the one from scratch.
