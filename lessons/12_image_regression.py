# %% [markdown]
# # Lesson 12: image regression: where is the face?
#
# Classification answers "which class"; regression answers with numbers. Here the numbers say *where*:
# the network looks at a noisy picture with a small face drawn somewhere on it and outputs two numbers,
# the (x, y) of the face's centre. Nothing else changes from classification but the head and the loss:
#   1. the data: faces of random size, colour and place; targets scaled to [-1, 1];
#   2. augmentation that moves the label too: a mirrored picture has a mirrored centre;
#   3. the model: a small CNN whose head keeps track of *where* (flatten, not global average pooling);
#   4. the loss: mean squared error between the predicted and the true coordinates;
#   5. training with the Learner, and the error in pixels against a baseline that always guesses the
#      average position;
#   6. the classifier's head (global average pooling) on the same body, for comparison.
#
#     python lessons/12_image_regression.py [--quick] [--out DIR]

# %%
import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn
from tinygrad_cv.data import DataLoader, DataLoaders
from tinygrad_cv.train import Learner
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 12: image regression: where is the face?", "12_image_regression", full_minutes=0.7)
size = 32
n_train, n_valid, epochs = (512, 128, 3) if args.quick else (2048, 512, 8)
tg.manual_seed(0)

# %% [markdown]
# ## 1. The data
#
# Each picture: a flat background colour with pixel noise, and a face (a disk with two dark eyes and a
# mouth) of radius 4 to 6.4 pixels, wholly inside the picture. All pictures are drawn at once with
# broadcasting: u, v are the pixel-centre coordinates, every shape is an inequality on them.
#
# The target is the face's centre (cx, cy) in pixels, rescaled to x = 2 cx / size - 1, so that the
# picture spans [-1, 1] on both axes. Why rescale? The network's outputs start near 0 with a spread of
# about 1 (that is what the initialisation aims for); targets of the same scale mean the first steps
# are sensible and the loss is not dominated by a constant offset of 16 pixels.

# %%
def draw_faces(n, size, rng):
    """n (size, size, 3) uint8 pictures and their (n, 2) float32 targets (x, y) in [-1, 1]."""
    v, u = np.mgrid[0:size, 0:size] + 0.5                           # pixel centres; pixel c covers [c, c+1)
    radius = rng.uniform(0.125, 0.2, (n, 1, 1)) * size
    cx = radius + rng.uniform(0, 1, (n, 1, 1)) * (size - 2 * radius)
    cy = radius + rng.uniform(0, 1, (n, 1, 1)) * (size - 2 * radius)

    def disk(x, y, r):
        return (u - x) ** 2 + (v - y) ** 2 < r ** 2
    head = disk(cx, cy, radius)
    eye_y, eye_r = cy - 0.25 * radius, 0.18 * radius
    eyes = disk(cx - 0.4 * radius, eye_y, eye_r) | disk(cx + 0.4 * radius, eye_y, eye_r)
    mouth = (np.abs(u - cx) < 0.45 * radius) & (np.abs(v - cy - 0.4 * radius) < 0.1 * radius + 0.5)
    background = rng.uniform(0.15, 0.65, (n, 1, 1, 3))
    skin = rng.uniform(0.6, 1.0, (n, 1, 1, 1)) * np.array([1.0, 0.8, 0.6])
    image = np.where(head[..., None], skin, background)
    image = np.where((head & (eyes | mouth))[..., None], 0.1, image)
    image = np.clip(image + 0.08 * rng.standard_normal(image.shape), 0, 1)
    target = np.concatenate([2 * cx / size - 1, 2 * cy / size - 1], axis=1).reshape(n, 2)
    return (image * 255 + 0.5).astype(np.uint8), target.astype(np.float32)


class Faces:
    """A dataset (len and [i]) of pictures drawn once, in memory: samples {"image", "target"}."""

    def __init__(self, n, size, seed):
        self.images, self.targets = draw_faces(n, size, np.random.default_rng(seed))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"image": self.images[index], "target": self.targets[index]}


def to_pixels(xy):
    """Targets in [-1, 1] -> pixel coordinates (edges: the picture spans [0, size])."""
    return (np.asarray(xy) + 1) * size / 2


train_ds, valid_ds = Faces(n_train, size, seed=0), Faces(n_valid, size, seed=1)
assert np.all(np.abs(train_ds.targets) < 1)

# %% [markdown]
# ## 2. Augmentation that moves the label
#
# For a class label, a mirrored cat is still a cat. For a position it is not: mirroring the picture
# left-right moves the centre from x to -x (in [-1, 1] coordinates the mirror is just a sign change),
# and up-down from y to -y. A transform must change the target with the picture, or it teaches the
# network wrong answers. The DataLoader calls transform(sample, rng) with a seeded generator.

# %%
def mirror_with_point(sample, rng):
    """Mirror left-right and/or up-down, each with probability 1/2, and the target with the picture."""
    image, target = sample["image"], sample["target"].copy()
    if rng.random() < 0.5:
        image, target[0] = image[:, ::-1], -target[0]
    if rng.random() < 0.5:
        image, target[1] = image[::-1], -target[1]
    return {"image": np.ascontiguousarray(image), "target": target}


# Check: a picture with one lit pixel, whose centre is the target. Wherever the mirrors send the pixel,
# the new target must point at its centre.
probe = np.zeros((size, size, 3), dtype=np.uint8)
probe[5, 9] = 255                                                     # row 5, column 9: centre (9.5, 5.5)
probe_sample = {"image": probe, "target": (np.array([9.5, 5.5]) * 2 / size - 1).astype(np.float32)}
for seed in range(8):
    mirrored = mirror_with_point(probe_sample, np.random.default_rng(seed))
    row, col = np.argwhere(mirrored["image"][..., 0])[0]
    assert np.allclose(to_pixels(mirrored["target"]), [col + 0.5, row + 0.5])

dls = DataLoaders(DataLoader(train_ds, batch_size=32, shuffle=True, drop_last=True, seed=0,
                             transform=mirror_with_point),
                  DataLoader(valid_ds, batch_size=64, seed=1))
x, y = dls.one_batch()
print(f"{len(train_ds)} training and {len(valid_ds)} validation pictures of {size}x{size}; "
      f"x {x.shape}, y {y.shape} {y.dtype} in [{y.numpy().min():.2f}, {y.numpy().max():.2f}]")

# %% [markdown]
# ## 3. The model: a head that keeps "where"
#
# Four 3x3 conv blocks; the last three have stride 2, so a 32x32 picture becomes a 4x4 grid of 64
# features, each looking at a region of the picture. A classifier would now average the grid (global
# average pooling): good for "is there a face?", which should not depend on where. For "where is it?"
# that average throws the answer away: moving the face moves the features around the grid but barely
# changes their average. So we flatten the grid instead: the linear layer has a separate weight for
# every cell, and can learn "strong face features in the top-left cells mean x < 0, y < 0".

# %%
def conv_block(c_in, c_out, stride):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def features(width):
    """conv (32x32) -> conv /2 (16x16) -> conv /2 (8x8) -> conv /2 (4x4): (N, 4 width, 4, 4)."""
    return nn.Sequential(conv_block(3, width, 1), conv_block(width, 2 * width, 2),
                         conv_block(2 * width, 4 * width, 2), conv_block(4 * width, 4 * width, 2))


def locator(width=16):
    """The features, flattened (4 width * 4 * 4 numbers), then a linear layer to (x, y)."""
    return nn.Sequential(features(width), nn.Flatten(), nn.Linear(4 * width * (size // 8) ** 2, 2))


def pooled_locator(width=16):
    """The same features, averaged over the 4x4 grid (a classifier's head), then linear to (x, y)."""
    return nn.Sequential(features(width), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 2))

# %% [markdown]
# ## 4. The loss
#
# Mean squared error: L = mean over the batch and the two coordinates of (prediction - target)^2. Its
# gradient, 2 (prediction - target) / count, pulls each output towards its target in proportion to the
# miss. F.smooth_l1_loss (quadratic below beta, linear above) grows more slowly for large misses, which
# helps when some labels are wrong; with our clean labels and misses below 1, MSE is the plain choice.
# The metric that a person cares about is the distance in pixels:

# %%
def distances(pred, targ):
    """Per picture: the Euclidean distance between the predicted and the true centre, in pixels."""
    return np.linalg.norm(to_pixels(pred.numpy()) - to_pixels(targ.numpy()), axis=1)


def pixel_error(pred, targ):
    """The metric: the mean distance in pixels."""
    return float(distances(pred, targ).mean())


# The baseline to beat: always answer the average position of the training faces.
mean_centre = tg.Tensor(np.broadcast_to(train_ds.targets.mean(axis=0), valid_ds.targets.shape))
baseline = pixel_error(mean_centre, tg.Tensor(valid_ds.targets))
print(f"baseline (always the mean training centre): {baseline:.2f} px")

# %% [markdown]
# ## 5. Training
#
# Adam with the one-cycle schedule (lesson 7), through the Learner.

# %%
learn = Learner(dls, locator(), F.mse_loss, metrics=[pixel_error], path=args.out)
learn.fit_one_cycle(epochs, 3e-3)
preds, targets = learn.get_preds()
errors = distances(preds, targets)
print(f"flatten head: mean error {errors.mean():.2f} px on the validation set (median {np.median(errors):.2f}, "
      f"90th percentile {np.percentile(errors, 90):.2f}); baseline {baseline:.2f} px")
assert np.allclose(targets.numpy(), valid_ds.targets)                # get_preds keeps the dataset order
assert errors.mean() < (0.7 if args.quick else 0.25) * baseline, "the CNN should beat the baseline by far"
save_lesson_figure(learn.recorder.plot_loss(), args.out, 'losses.png')

# %% [markdown]
# ## 6. The classifier's head on the same body
#
# Same features, same training, but global average pooling before the linear layer. It does learn
# something: a CNN picks up absolute position from the zero padding, because features near a border see
# zeros and so differ from the same features in the middle (Islam et al., "How much position information
# do convolutional neural networks encode?", 2020). But it has to work around the average; the
# flattening head reads the position off directly, and misses by less.

# %%
tg.manual_seed(0)
pooled = Learner(dls, pooled_locator(), F.mse_loss, metrics=[pixel_error], path=args.out, progress=False)
pooled.fit_one_cycle(epochs, 3e-3)
pooled_errors = distances(*pooled.get_preds())
print(f"global-average-pooling head: {pooled_errors.mean():.2f} px; flatten head: {errors.mean():.2f} px")

# %% [markdown]
# ## 7. The predictions

# %%
plt = pyplot()
shown = 12
fig, axes = plt.subplots(2, shown // 2, figsize=(2.2 * shown // 2, 5.0), layout="constrained")
true_px, pred_px = to_pixels(targets.numpy()[:shown]), to_pixels(preds.numpy()[:shown])
for ax, image, (tx, ty), (px, py), error in zip(axes.ravel(), valid_ds.images, true_px, pred_px, errors):
    ax.imshow(image, extent=(0, size, size, 0))                       # axes in pixel-edge units
    ax.plot(tx, ty, "+", color="lime", ms=12, mew=2)
    ax.plot(px, py, "x", color="red", ms=9, mew=2)
    ax.set_title(f"miss {error:.1f} px", fontsize=9)
    ax.axis("off")
fig.suptitle(f"validation pictures: true centre (green +), predicted (red x); mean miss {errors.mean():.2f} px")
save_lesson_figure(fig, args.out, "predicted_centres.png")

fig, ax = plt.subplots(figsize=(6, 3.5))
bins = np.linspace(0, max(errors.max(), pooled_errors.max()), 50)
for misses, name, colour in ((errors, "flatten head", "tab:blue"), (pooled_errors, "pooled head", "tab:orange")):
    ax.hist(misses, bins=bins, histtype="step", lw=1.5, color=colour)
    ax.axvline(misses.mean(), color=colour, ls="--", label=f"{name}: mean {misses.mean():.2f} px")
ax.axvline(baseline, color="gray", ls="--", label=f"always the mean centre: {baseline:.2f} px")
ax.set_xlabel("distance between predicted and true centre (pixels)")
ax.set_ylabel("validation pictures")
ax.legend(fontsize=8)
save_lesson_figure(fig, args.out, "error_histogram.png")


# %% [markdown]
# ## What to look at
#
# - `predicted_centres.png`: predicted centres against the true ones on validation images.
# - `error_histogram.png`: the distance errors, this head against the classifier's pooled head; the
#   pooled head has thrown away "where", so its errors are larger.
# - `losses.png`: the training and validation losses.
#
# ## Exercises (change one line)
#
# 1. Set `epochs` of the full run to 4: half the training steps.
# 2. Give `learn` `F.smooth_l1_loss` instead of `F.mse_loss`: the printed loss is then on another scale, so
#    compare the pixel errors (the metric), not the losses.
