# %% [markdown]
# # Lesson 8: semantic segmentation of street scenes with a U-Net (the CamVid task)
#
# Segmentation is classification of every pixel: the model outputs one score per class per pixel,
# (N, C, H, W), and the loss is the cross-entropy at each pixel. Pixels labelled Void (unlabelled in
# CamVid) are left out of the loss and of the accuracy.
#
# Why a U-Net: a classifier's encoder shrinks the image 8x or more while it learns *what* is there;
# an upsampled 16x16 map of a 128x128 image cannot draw a thin pole or a lane marking. The U-Net's
# decoder grows the map back and, at each size, joins the encoder's features of that size (the skip
# connections), which still know *where* things are. We train both and compare, and a linear model on
# pixels (a 1x1 convolution) shows that the synthetic scenes are not solvable by colour alone.
#
#     python lessons/08_camvid_unet.py [--quick] [--out DIR] [--data DIR]

# %%
import os
import time
from functools import partial

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn
from tinygrad_cv.data import camvid_recipe, class_colors
from tinygrad_cv.data.show import class_legend
from tinygrad_cv.data.synthetic import make_camvid
from tinygrad_cv.metrics import AccIgnore, MeanIoU
from tinygrad_cv.models import resnet_small, unet_resnet
from tinygrad_cv.train import Learner
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 8: semantic segmentation with a U-Net (CamVid)", "08_camvid_unet", data="camvid",
                  full_minutes=12)
tg.manual_seed(0)

n_images, size, batch, epochs, width = (24, 32, 8, 1, 8) if args.quick else (600, 128, 8, 10, 16)
data_dir = os.path.join(args.out, "data") if args.quick else args.data

# %% [markdown]
# ## 1. The data: CamVid's layout
#
# images/x.png, labels/x_P.png (one class index per pixel, a palette PNG), codes.txt (the 32 class
# names; the index of a name is its pixel value) and valid.txt (the validation images).

# %%
path = make_camvid(data_dir, n=n_images, size=size, seed=0)
recipe = camvid_recipe(path)
codes = [line.strip() for line in open(os.path.join(path, "codes.txt")) if line.strip()]
void_code = codes.index("Void")
print(recipe, f"\n{len(codes)} classes; Void is class {void_code}")
# CamVid frames are 4:3; (height, width) keeps that shape instead of squashing them square.
dls = recipe.dataloaders(batch_size=batch, size=(3 * size // 4, size), seed=0)
save_lesson_figure(dls.show_batch(max_n=6), args.out, 'batch.png')

# %% [markdown]
# ## 2. Metrics that ignore Void
#
# Pixel accuracy over non-void pixels, and the mean over classes of IoU = TP / (TP + FP + FN), which
# a model cannot game by painting everything road.

# %%
def metrics():
    return [AccIgnore(void_code), MeanIoU(len(codes), void_code=void_code)]


loss = partial(F.cross_entropy, ignore_index=void_code)

# %% [markdown]
# ## 3. The U-Net, trained with one-cycle and a long warm-up (pct_start=0.9, as in the lesson)

# %%
started = time.time()
unet = unet_resnet(len(codes), width=width)
learn = Learner(dls, unet, loss, metrics=metrics(), path=args.out)
learn.fit_one_cycle(epochs, 3e-3, pct_start=0.9)
unet_minutes = (time.time() - started) / 60
unet_scores = learn.validate()
print(f"U-Net: void-ignoring accuracy {unet_scores['acc_ignore']:.3f}, mean IoU {unet_scores['mean_iou']:.3f} "
      f"({unet_minutes:.1f} min)")

# %% [markdown]
# ## 4. An encoder alone

# %%
class EncoderOnly(nn.Module):
    """The same ResNet encoder, a 1x1 convolution to class scores at 1/8 of the size, and a bilinear
    upsampling to the input size: no decoder, no skips."""

    def __init__(self, n_classes, width):
        super().__init__()
        self.body = resnet_small(1, width=width).body
        self.classify = nn.Conv2d(8 * width, n_classes, 1)

    def forward(self, x):
        return F.interpolate(self.classify(self.body(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


tg.manual_seed(0)
encoder_learn = Learner(dls, EncoderOnly(len(codes), width), loss, metrics=metrics(), path=args.out, progress=False)
encoder_learn.fit_one_cycle(epochs, 3e-3, pct_start=0.9)
encoder_scores = encoder_learn.validate()
print(f"encoder only: void-ignoring accuracy {encoder_scores['acc_ignore']:.3f}, "
      f"mean IoU {encoder_scores['mean_iou']:.3f}")

# %% [markdown]
# ## 5. The honest baseline: a linear model on pixels
#
# A 1x1 convolution classifies each pixel from its own colour alone. If it reached the U-Net's
# scores, the scenes would be too easy to teach anything: sky, road and trees differ in colour, but
# cars, signs and pedestrians come in many colours and only their shape and context tell them apart.

# %%
tg.manual_seed(0)
linear_learn = Learner(dls, nn.Conv2d(3, len(codes), 1), loss, metrics=metrics(), path=args.out, progress=False)
linear_learn.fit_one_cycle(epochs, 3e-2, pct_start=0.9)
linear_scores = linear_learn.validate()
print(f"linear on pixels: void-ignoring accuracy {linear_scores['acc_ignore']:.3f}, "
      f"mean IoU {linear_scores['mean_iou']:.3f}")

# %% [markdown]
# ## 6. Figures: predictions over the images

# %%
x, y = dls.valid.one_batch()
with tg.no_grad():
    learn.model.eval()
    encoder_learn.model.eval()
    pred_unet = learn.model(x).argmax(1).numpy()
    pred_enc = encoder_learn.model(x).argmax(1).numpy()
# The images de-normalised with the loaders' statistics: pixel = x * std + mean, per channel.
images = np.clip(x.numpy().transpose(0, 2, 3, 1) * dls.normalize.std + dls.normalize.mean, 0, 1)
colors = class_colors(len(codes))
plt = pyplot()
n = min(4, len(x))
fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
for row in range(n):
    for col, (title, labels) in enumerate((("truth", y.numpy()[row]), ("U-Net", pred_unet[row]),
                                           ("encoder only", pred_enc[row]))):
        ax = axes[row, col]
        ax.imshow(images[row])
        ax.imshow(colors[labels], alpha=0.6)
        ax.set_title(title)
        ax.axis("off")
class_legend(fig, range(len(codes)), codes)
save_lesson_figure(fig, args.out, "predictions.png")
save_lesson_figure(learn.recorder.plot_loss(), args.out, 'losses.png')
save_lesson_figure(learn.recorder.plot_sched(), args.out, 'lr_schedule.png')


# %% [markdown]
# ## What to look at
#
# - `predictions.png`: truth, U-Net and encoder-only masks over the images, with the class-colour legend;
#   the encoder alone draws coarser outlines (it upsamples from a small feature map, without the skips).
# - `losses.png` and `lr_schedule.png`: the long warm-up (pct_start=0.9) and the short anneal.
#
# ## Exercises (change one line)
#
# 1. Set the full run's `epochs` to 5: half the training steps.
# 2. Set `n = min(8, len(x))` in section 6: the predictions figure shows up to 8 validation images.
