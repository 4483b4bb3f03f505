# %% [markdown]
# # Lesson 5: data
#
# Before a model sees anything, images travel a long way: files on disk -> samples -> random
# augmentations -> mini-batches -> normalised Tensors on the device. Each step is small:
#   1. the Dataset protocol: anything with len(ds) and ds[i]; a tiny dataset of our own;
#   2. the DataLoader: mini-batches, shuffled by a seed, so every run sees the same batches;
#   3. DataLoaders: the training and validation loaders together, batches as (x, y) Tensors;
#   4. the data block on planet-like satellite tiles: get the items, split, label, transform, load;
#   5. transforms: flips, the 8 dihedral symmetries, rotation, zoom, perspective warp, lighting;
#   6. normalisation with statistics of the training set only, and what it does to the pixels.
#
#     python lessons/05_data.py [--quick] [--out DIR]

# %%
import os
from pathlib import Path

import numpy as np

from tinygrad_cv.data import (DataLoader, DataLoaders, DataRecipe, Dihedral, Flip, Lighting, Normalize,
                              Perspective, RandomSplit, Rotate, TagLabels, Zoom, aug_transforms, csv_rows,
                              planet_recipe, valid_transforms)
from tinygrad_cv.data.synthetic import make_planet
from tinygrad_cv.data.transforms import DIHEDRAL, warp_sample
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 5: data", "05_data", full_minutes=1.1)
n_tiles, batch_size = (64, 16) if args.quick else (400, 32)
plt = pyplot()

# %% [markdown]
# ## 1. The Dataset protocol
#
# A dataset is anything with a length and an indexing operator: len(ds) samples, ds[i] the i-th.
# Nothing else: no base class to inherit, no files required. Here a sample is a dict of NumPy arrays
# ("image" (H, W, 3) uint8 and "target"), the form every loader and transform of tinygrad_cv expects.
# Two habits make a dataset good:
#   - deterministic: ds[i] is the same every time (here it is drawn from a generator seeded by (seed, i)),
#     so a run can be repeated and samples can be loaded in any order, by any worker;
#   - lazy: a sample is made (or read from disk) only when asked for, so the dataset can be larger
#     than memory. The planet dataset below holds file paths, not pixels.

# %%
class ColouredSquares:
    """``n`` images of ``size`` x ``size`` pixels: a red, green or blue square at a random place on a
    dark, noisy background. The target is the square's colour (0, 1 or 2)."""

    vocab = ["red", "green", "blue"]

    def __init__(self, n, size=32, seed=0):
        self.n, self.size, self.seed = n, size, seed

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if not 0 <= index < self.n:                      # IndexError is what Python's protocol expects
            raise IndexError(f"ColouredSquares: index {index} is out of range for {self.n} samples")
        rng = np.random.default_rng([self.seed, index])
        colour = int(rng.integers(3))
        image = rng.integers(0, 50, (self.size, self.size, 3)).astype(np.uint8)
        side = int(rng.integers(self.size // 4, self.size // 2))
        top, left = rng.integers(0, self.size - side, 2)
        image[top:top + side, left:left + side, colour] = rng.integers(180, 256)
        return {"image": image, "target": np.int64(colour)}


train_ds, valid_ds = ColouredSquares(96, seed=0), ColouredSquares(32, seed=1)
sample = train_ds[5]
print(f"len(train_ds) = {len(train_ds)}; train_ds[5]: image {sample['image'].shape} {sample['image'].dtype}, "
      f"target {sample['target']} ({train_ds.vocab[sample['target']]})")
assert np.array_equal(train_ds[5]["image"], sample["image"])    # the same sample every time

# %% [markdown]
# ## 2. The DataLoader: mini-batches
#
# One gradient step on the whole dataset is expensive; on one sample, very noisy. A mini-batch of B
# samples is the middle road: its gradient is an average whose noise shrinks like 1/sqrt(B). The loader
# cuts each epoch into batches and stacks each batch's samples into arrays with a batch axis first.
# shuffle=True draws a new order every epoch: were the data sorted (all reds, then greens), unshuffled
# batches would hold one class each and every step would pull the model one way. The order comes from
# a generator seeded by (seed, epoch): the same seed gives the same epochs, run after run.

# %%
loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, seed=0)
batch = loader.one_batch()
print(f"{len(loader)} batches per epoch; one batch: image {batch['image'].shape}, target {batch['target']}")
epoch0, epoch1 = loader.batch_indices(0), loader.batch_indices(1)
print("first batch of epoch 0:", epoch0[0][:8], "...\nfirst batch of epoch 1:", epoch1[0][:8], "...")
assert np.array_equal(np.sort(np.concatenate(epoch0)), np.arange(len(train_ds)))   # each sample once
assert not np.array_equal(epoch0[0], epoch1[0])                                     # a new order each epoch
again = DataLoader(train_ds, batch_size=batch_size, shuffle=True, seed=0)
assert all(np.array_equal(a, b) for a, b in zip(epoch0, again.batch_indices(0)))   # same seed, same batches

# %% [markdown]
# ## 3. DataLoaders: training and validation together
#
# A model is trained on one set and judged on another it never learns from. DataLoaders holds both
# loaders (the validation one is not shuffled and, below, not augmented) and turns each batch into
# Tensors: x = the images as float32 (N, C, H, W), normalised (section 6), y = the targets.

# %%
dls = DataLoaders(loader, DataLoader(valid_ds, batch_size=batch_size, seed=1))
x, y = dls.one_batch()
print(dls)
print(f"x: {x.shape} {x.dtype}, y: {y.shape} {y.dtype}; classes {dls.vocab}")
save_lesson_figure(dls.show_batch(max_n=8, ncols=4), args.out, 'squares_batch.png')

# %% [markdown]
# ## 4. The data block on planet-like tiles
#
# Real datasets come as files. The synthetic tiles are written exactly as Kaggle's Planet data is:
# train-jpg/<name>.jpg and train_v2.csv with the columns image_name and tags ("clear primary road").
# The data block answers five questions, one small object each:
#   get        what are the items?              the CSV rows
#   split      which items are for validation?  a random 20%, with a seed (the same split every run)
#   label      what is each item's target?      its tags as a 0/1 vector over the vocabulary
#   transform  how is each sample augmented?    random flips, rotations, ... on the training set only
#   load       how are batches made?            DataLoaders, as above

# %%
path = make_planet(os.path.join(args.out, "planet"), n=n_tiles, size=128, seed=0)
rows = csv_rows(Path(path) / "train_v2.csv", columns=("image_name", "tags"))                     # get
print(f"{len(rows)} rows, e.g. {rows[0]}")
recipe = DataRecipe(rows, image=lambda row: Path(path) / "train-jpg" / f"{row['image_name']}.jpg",
                    split=RandomSplit(valid_pct=0.2, seed=42),                                   # split
                    label=TagLabels("tags"))                                                     # label
print(recipe)
print(f"vocabulary ({len(recipe.vocab)} tags): {recipe.vocab}")
first = recipe.load(0)
print(f"item 0: tags {rows[0]['tags']!r} -> target {first['target'].astype(int)}")
assert not set(recipe.train_indices) & set(recipe.valid_indices)                   # no tile in both sets
assert len(recipe.train_indices) + len(recipe.valid_indices) == len(rows)
assert [recipe.vocab[k] for k in np.flatnonzero(first["target"])] == sorted(rows[0]["tags"].split())
# planet_recipe is this very recipe, packaged: the same split and the same vocabulary.
packaged = planet_recipe(path, valid_pct=0.2, seed=42)
assert np.array_equal(packaged.valid_indices, recipe.valid_indices) and packaged.vocab == recipe.vocab

size = 64
planet_dls = recipe.dataloaders(batch_size=batch_size, size=size, seed=0,                   # transform + load
                                train_tfms=aug_transforms(size, flip_vert=True, max_rotate=20, max_warp=0.2))
save_lesson_figure(planet_dls.show_batch(max_n=9), args.out, 'planet_batch.png')

# %% [markdown]
# ## 5. Transforms
#
# Augmentation shows the model a slightly different picture of each tile every epoch: a flipped or
# turned satellite tile is still the same forest with the same road, so the label stays and the model
# learns what does not depend on the view. Each transform is t(sample, rng); the loader seeds rng from
# (seed, epoch, index), so a sample's augmentation is random but reproducible. Geometric transforms
# are 3x3 matrices mapping output coordinates to input ones; consecutive ones are multiplied and the
# image is resampled (bilinearly) only once. Where a rotated or warped view reaches past the tile's edge,
# the default pad_mode="reflection" mirrors the tile (look at the corners): no black wedges for the
# model to learn as a feature.

# %%
showcase = next((i for i, row in enumerate(rows) if {"road", "water"} & set(row["tags"].split())), 0)
tile = recipe.load(showcase)
rows_of_figure = [("Flip(p=0.5)", Flip()), ("Rotate(30)", Rotate(30, p=1.0)), ("Zoom(1.6)", Zoom(1.6, p=1.0)),
                  ("Perspective(0.4)", Perspective(0.4, p=1.0)), ("Lighting(0.4, 0.4)", Lighting(0.4, 0.4, p=1.0)),
                  ("aug_transforms", aug_transforms(flip_vert=True, max_rotate=20, max_warp=0.3))]
draws = 5
fig, axes = plt.subplots(len(rows_of_figure), draws + 1, figsize=(1.9 * (draws + 1), 2.0 * len(rows_of_figure)),
                         layout="constrained")
for r, (name, transform) in enumerate(rows_of_figure):
    axes[r, 0].imshow(tile["image"])
    axes[r, 0].set_ylabel(name, fontsize=9)
    for d in range(draws):
        axes[r, d + 1].imshow(transform(tile, np.random.default_rng([r, d]))["image"])
axes[0, 0].set_title("original", fontsize=9)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"one tile ({rows[showcase]['tags']}), five random draws of each transform")
save_lesson_figure(fig, args.out, "transforms_on_one_tile.png")

# The 8 dihedral symmetries of a square: the 4 rotations by multiples of 90 degrees, each with or
# without a mirror. Satellite images have no "up", so all 8 are fair. On whole pixels they only move
# pixels around, so each equals a NumPy flip, rotation or transpose exactly. aug_transforms(flip_vert=True)
# uses Dihedral(); with flip_vert=False only the left-right Flip().
numpy_views = [("identity", lambda a: a), ("flip left-right", lambda a: a[:, ::-1]),
               ("flip up-down", lambda a: a[::-1]), ("rotate 180", lambda a: np.rot90(a, 2)),
               ("transpose", lambda a: a.transpose(1, 0, 2)), ("rotate 90 left", lambda a: np.rot90(a, 1)),
               ("rotate 90 right", lambda a: np.rot90(a, 3)),
               ("anti-transpose", lambda a: np.rot90(a, 2).transpose(1, 0, 2))]
fig, axes = plt.subplots(2, 4, figsize=(9, 5))
for ax, matrix, (name, numpy_view) in zip(axes.ravel(), DIHEDRAL, numpy_views):
    turned = warp_sample(tile, matrix, tile["image"].shape[:2])["image"]
    assert np.array_equal(turned, numpy_view(tile["image"])), name
    ax.imshow(turned)
    ax.set_title(name, fontsize=9)
    ax.axis("off")
fig.suptitle("Dihedral(): one of these 8, uniformly at random")
# Dihedral() picks one of them per draw:
drawn = [Dihedral()(tile, np.random.default_rng(seed))["image"] for seed in range(16)]
which = [next(name for name, view in numpy_views if np.array_equal(image, view(tile["image"]))) for image in drawn]
print(f"16 draws of Dihedral(): {', '.join(which)}")
save_lesson_figure(fig, args.out, "dihedral_8.png")

# On a batch: the loader applies the training transforms afresh every epoch, so the same tiles look
# different in each one (and the validation loader, not augmented, shows them as they are).
train_loader = planet_dls.loaders["train"]
chosen = train_loader.dataset.items[:6]
epochs = 3
fig, axes = plt.subplots(epochs + 1, len(chosen), figsize=(1.9 * len(chosen), 2.0 * (epochs + 1)),
                         layout="constrained")
for c, item in enumerate(chosen):
    axes[0, c].imshow(recipe.load(item)["image"])
    for epoch in range(epochs):
        axes[epoch + 1, c].imshow(train_loader.load_sample(c, epoch)["image"])
for r, label in enumerate(["file"] + [f"epoch {e}" for e in range(epochs)]):
    axes[r, 0].set_ylabel(label)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"six training tiles, augmented anew each epoch (resized to {size} px)")
save_lesson_figure(fig, args.out, "augmented_batch_by_epoch.png")
assert np.array_equal(train_loader.load_sample(0, 1)["image"], train_loader.load_sample(0, 1)["image"])

# %% [markdown]
# ## 6. Normalisation
#
# Pixels arrive as 0..255. A network trains best on inputs centred on 0 with a spread of about 1 in
# every channel: the first layer's weights then start on the same scale for all channels, and the
# activations neither vanish nor blow up. So each channel c becomes
#     x_c = (pixel / 255 - mean_c) / std_c
# with mean and std measured on the TRAINING images only. The validation set stands for data the model
# has never seen; its statistics must not leak into the model, and it must be transformed exactly as
# the training data was. (A pretrained network expects the statistics of *its* training set, e.g.
# IMAGENET_STATS.) And they are measured on the training tiles as they are, NOT augmented: augmentation
# is a random view for training, while the statistics describe the data the model will be shown at test
# time, which is never augmented. Here, on the whole training set, resized but not augmented (the
# validation transforms):

# %%
plain_train = DataLoader(train_loader.dataset, batch_size=batch_size, transform=valid_transforms(size))
train_images = [plain_train.load_batch(indices, 0)["image"] for indices in plain_train.batch_indices(0)]
normalize = Normalize.from_images(train_images)
augmented = Normalize.from_images(train_loader.load_batch(indices, 0)["image"]
                                  for indices in train_loader.batch_indices(0))
print(f"training set statistics: {normalize}\nthe same tiles augmented (brightness, contrast, warps) would "
      f"give: {augmented}")
before = np.concatenate(train_images).reshape(-1, 3) / 255.0
after = np.concatenate([normalize(images) for images in train_images]).transpose(0, 2, 3, 1).reshape(-1, 3)
assert np.allclose(after.mean(0), 0, atol=1e-4) and np.allclose(after.std(0), 1, atol=1e-3)
valid_loader = planet_dls.loaders["valid"]
valid_after = np.concatenate([normalize(valid_loader.load_batch(indices, 0)["image"])
                              for indices in valid_loader.batch_indices(0)]).transpose(0, 2, 3, 1).reshape(-1, 3)
print(f"normalised training pixels: mean {after.mean(0).round(4)}, std {after.std(0).round(4)}")
# The validation tiles are another sample of the same kind of data: their normalised mean and std differ
# from 0 and 1 only by sampling (the fewer the tiles, the larger the difference; compare --quick).
print(f"validation pixels with the training statistics: mean {valid_after.mean(0).round(3)}, "
      f"std {valid_after.std(0).round(3)}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for channel, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
    axes[0].hist(before[:, channel], bins=64, range=(0, 1), histtype="step", color=colour, lw=1.5,
                 label=f"mean {before[:, channel].mean():.3f}, std {before[:, channel].std():.3f}")
    axes[1].hist(after[:, channel], bins=64, range=(-4, 4), histtype="step", color=colour, lw=1.5,
                 label=f"mean {after[:, channel].mean():.3f}, std {after[:, channel].std():.3f}")
axes[0].set_title("before: pixel / 255 of the training tiles")
axes[1].set_title("after: (pixel / 255 - mean) / std, per channel")
for ax in axes:
    ax.set_yticks([])
    ax.legend(fontsize=8)
save_lesson_figure(fig, args.out, "normalisation_histograms.png")


# %% [markdown]
# ## What to look at
#
# - `dihedral_8.png`: the 8 views a satellite tile allows; each equals a NumPy flip or rotation exactly.
# - `augmented_batch_by_epoch.png`: the same six tiles, a different random view in every epoch.
# - `normalisation_histograms.png`: after normalisation every channel is centred on 0 with spread 1.
#
# ## Exercises (change one line)
#
# 1. In `DataLoader(train_ds, batch_size=batch_size, shuffle=True, seed=0)` use `seed=1`: the asserts still
#    pass (each sample once per epoch), but the printed first batches change.
# 2. In `aug_transforms(size, flip_vert=True, ...)` of `planet_dls`, use `flip_vert=False`: only left-right
#    flips remain, so a tile can no longer appear upside down in `augmented_batch_by_epoch.png`.
# 3. Measure the statistics on `train_loader` (augmented) instead of `plain_train`: the printed line
#    "the same tiles augmented" shows the statistics you would then get.
