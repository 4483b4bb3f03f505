# %% [markdown]
# # Training a small CNN on planet-like satellite tiles: the learning-rate finder, then one cycle
#
# Each tile carries several tags at once (clear, primary, water, road, ...): multi-label classification.
# The network gives one logit per tag; the loss is binary cross-entropy on each logit; the metric is the
# Planet competition's F2 at threshold 0.2, which weighs recall beta = 2 times as much as precision.
#
#   1. Data: write a synthetic planet-like dataset in the real format (train-jpg/ + train_v2.csv) and
#      read it back with the data block, as a real download would be read.
#   2. Model: four conv-batchnorm-ReLU blocks, each halving the resolution, then average pooling and a
#      linear layer. Two layer groups (body, head), for freezing and discriminative learning rates.
#   3. lr_find: a short run with the learning rate growing exponentially; the smoothed loss falls, flattens,
#      then explodes. Its 'valley' suggestion is a rate from the steep, steady part of the fall.
#   4. fit_one_cycle: warm up to that rate, then anneal it with a cosine, while the momentum does the
#      opposite. Large steps in the middle explore; small steps at the end settle.
#   5. Figures: the LR finder, the losses, the schedule, the metrics and some predictions.
#
#     python lessons/train_small_cnn.py [--quick] [--out DIR]

# %%
import os
from functools import partial

import numpy as np

import tinygrad_cv as tg
from tinygrad_cv import functional as F
from tinygrad_cv import nn
from tinygrad_cv.data import planet_recipe
from tinygrad_cv.data.synthetic import make_planet
from tinygrad_cv.metrics import accuracy_multi, fbeta
from tinygrad_cv.train import Learner
from lesson_utils import parse_args, save_lesson_figure, show_file

args = parse_args("Training a small CNN on planet-like tiles: LR finder, then one cycle", "train_small_cnn")
n_tiles, size, epochs, width, num_it = (160, 32, 3, 8, 30) if args.quick else (1500, 64, 8, 16, 100)
tg.manual_seed(0)

# %% [markdown]
# ## 1. Data

# %%
folder = make_planet(os.path.join(args.out, "planet"), n=n_tiles, size=size, seed=0)
dls = planet_recipe(folder, valid_pct=0.2, seed=0).dataloaders(batch_size=32, size=size, seed=0)
print(f"{len(dls.train.dataset)} training and {len(dls.valid.dataset)} validation tiles of {size}x{size}; "
      f"{dls.c} tags: {', '.join(dls.vocab)}")

# %% [markdown]
# ## 2. Model

# %%
def conv_block(c_in, c_out):
    """3x3 convolution with stride 2 (half the height and width), batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


class SmallCNN(nn.Module):
    def __init__(self, n_tags, width):
        super().__init__()
        self.body = nn.Sequential(conv_block(3, width), conv_block(width, 2 * width),
                                  conv_block(2 * width, 4 * width), conv_block(4 * width, 8 * width))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * width, n_tags))

    def forward(self, x):
        return self.head(self.body(x))

    def predict_proba(self, logits):
        """Each tag independently: a sigmoid per logit."""
        return F.sigmoid(logits)

    def layer_groups(self):
        return [self.body, self.head]


f2 = partial(fbeta, beta=2, thresh=0.2)
learn = Learner(dls, SmallCNN(dls.c, width), F.binary_cross_entropy_with_logits,
                metrics=[partial(accuracy_multi, thresh=0.2), f2], path=args.out)

# %% [markdown]
# ## 3. The learning-rate finder

# %%
suggestions = learn.lr_find(num_it=num_it, show_plot=False, fname=os.path.join(args.out, 'lr_find.png'))
print(f"lr_find suggests: valley {suggestions.valley:.2e}, steep {suggestions.steep:.2e}, "
      f"minimum/10 {suggestions.minimum:.2e}")
show_file(os.path.join(args.out, 'lr_find.png'))
lr_max = suggestions.valley

# %% [markdown]
# ## 4. One cycle

# %%
learn.fit_one_cycle(epochs, lr_max)
result = learn.validate()

# The baseline to beat: give every tile each tag's frequency in the training set.
probs, targets = learn.get_preds()
prior = np.concatenate([y.numpy() for _, y in dls.train]).mean(0)
baseline = f2(np.tile(prior, (len(targets), 1)), targets, sigmoid=False)
print(f"validation: loss {result['valid_loss']:.4f}, F2 {result['fbeta']:.4f} "
      f"(tag-frequency baseline F2 {baseline:.4f})")

# %% [markdown]
# ## 5. Figures

# %%
save_lesson_figure(learn.recorder.plot_loss(), args.out, "losses.png")
save_lesson_figure(learn.recorder.plot_sched(), args.out, "lr_schedule.png")
save_lesson_figure(learn.recorder.plot_metrics(), args.out, "metrics.png")
save_lesson_figure(learn.show_results(max_n=6, thresh=0.2), args.out, "results.png")
