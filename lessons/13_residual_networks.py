# %% [markdown]
# # Lesson 13: residual networks
#
# Lesson 3 showed the gradient fading as it goes back through a deep stack, unless the initialisation is
# chosen with care. Deeper networks should be at least as good as shallow ones: the extra layers could
# simply learn to do nothing. In practice a plain deep stack trains *worse* than a shallow one, on the
# training set itself, so it is not overfitting: it is an optimisation problem. He et al. (2015) made
# "doing nothing" the default: each block computes x + f(x), a *shortcut* around the layers plus a
# *residual* f that the layers learn. At initialisation f is small, so the block is almost the identity,
# and the gradient has a path straight back to the first layers: d(x + f(x))/dx = I + df/dx.
#
# This lesson measures both halves of that sentence on the same small task:
#   1. the gradient that reaches each layer of a 32-layer plain stack and of a 32-layer residual one;
#   2. the training loss after the same number of steps against depth (2 to 32 layers), plain and residual.
#
#     python lessons/13_residual_networks.py [--quick] [--out DIR]

# %%
import time

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn, optim
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 13: residual networks", "13_residual_networks", full_minutes=16)
started = time.time()
plt = pyplot()
depths = (2, 8) if args.quick else (2, 4, 8, 16, 32)
steps, batch, width, size = (30, 32, 8, 16) if args.quick else (150, 64, 8, 16)

# %% [markdown]
# ## 1. A small task that needs spatial features
#
# Greyscale 16 x 16 images of stripes in one of four orientations (horizontal, vertical, and the two
# diagonals), at a random period and phase, with noise. A convolution sees orientation at once; the task
# is easy for a shallow network, which is the point: whatever a deep one does worse, it cannot blame the
# task.

# %%
CLASSES = ["horizontal", "vertical", "diagonal", "anti-diagonal"]


def stripes(n, seed):
    """``n`` images (n, 1, size, size) float32 and their orientation labels (n,) int64."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    r, c = np.mgrid[0:size, 0:size]
    directions = np.array([[1, 0], [0, 1], [1, 1], [1, -1]], dtype=np.float64)
    d = directions[labels]
    coordinate = d[:, 0, None, None] * r + d[:, 1, None, None] * c
    period = rng.uniform(3, 6, (n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    images = np.sin(2 * np.pi * coordinate / period + phase) + rng.normal(0, 0.5, (n, size, size))
    return images[:, None].astype(np.float32), labels.astype(np.int64)


images, labels = stripes(batch * steps, seed=0)
fig, axes = plt.subplots(1, 8, figsize=(12, 2))
for ax, image, label in zip(axes, images, labels):
    ax.imshow(image[0], cmap="gray")
    ax.set_title(CLASSES[label], fontsize=8)
    ax.axis("off")
save_lesson_figure(fig, args.out, "stripes.png")

# %% [markdown]
# ## 2. Plain and residual stacks
#
# Both have a stem (a 3x3 convolution from 1 to 8 channels), then ``depth`` layers of a 3x3 convolution
# (8 to 8 channels, PyTorch's default initialisation) with a ReLU, then average pooling and a linear layer
# to the 4 classes. The only difference is one addition per layer:
#
#     plain:     h = relu(conv(h))
#     residual:  h = h + relu(conv(h))
#
# The same parameters, the same cost (plus one addition); the residual layer starts close to the identity
# because its convolution's output is small at initialisation.

# %%
class Stack(nn.Module):
    def __init__(self, depth, residual):
        super().__init__()
        self.residual = residual
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.layers = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1) for _ in range(depth)])
        self.head = nn.Linear(width, len(CLASSES))

    def forward(self, x):
        h = self.stem(x)
        for conv in self.layers:
            h = h + F.relu(conv(h)) if self.residual else F.relu(conv(h))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))


# %% [markdown]
# ## 3. How much gradient reaches each layer
#
# One backward pass at initialisation, on one batch, for the deepest stacks; the norm of each layer's
# weight gradient. In the plain stack each layer multiplies the backward signal by its (shrinking) weights
# and by ReLU's 0/1 slope; in the residual one the identity carries it past every layer.

# %%
deepest = depths[-1]
x, y = tg.Tensor(images[:batch]), tg.Tensor(labels[:batch])
grad_norms = {}
for name, residual in (("plain", False), ("residual", True)):
    tg.manual_seed(0)
    model = Stack(deepest, residual)
    F.cross_entropy(model(x), y).backward()
    norms = grad_norms[name] = [float(np.linalg.norm(conv.weight.grad.numpy())) for conv in model.layers]
    print(f"{name:8s} ({deepest} layers): |dL/dW| at the last layer {norms[-1]:.2e}, at the first {norms[0]:.2e}, "
          f"ratio {norms[0] / norms[-1]:.1e}")
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, norms in grad_norms.items():
    ax.semilogy(range(1, deepest + 1), norms, "o-", ms=3, label=name)
ax.set(xlabel="layer (1 = closest to the input)", ylabel="|dL/dW| at initialisation",
       title=f"{deepest} layers: the shortcut carries the gradient back")
ax.legend()
save_lesson_figure(fig, args.out, "gradient_per_layer.png")

# %% [markdown]
# ## 4. Training loss against depth
#
# Each stack is trained for the same number of steps (one pass over the generated images, a fresh batch
# each step) with Adam at lr 1e-3 and the same seed. We report the training loss, averaged over the last
# 20 steps: what the optimiser managed, not how well it generalises.
#
# In the full run (README, results) the plain stack trains at 2 to 8 layers, is stuck near 1.0 at 16 and
# at chance (ln 4 = 1.386) at 32; the residual stack reaches about 0.001 at 8 and 16 layers. At 32 layers
# the residual stack is also far from trained (about 1.1), for another reason: each of its layers *adds*
# a ReLU output, which is never negative, so the activations grow with depth (at initialisation their
# spread is about 0.7 after 4 layers and about 110 after 32), and so do the first logits. Real ResNets put
# batch norm inside each residual branch (below), which keeps every block's contribution on one scale.

# %%
def train(depth, residual):
    """The training losses, step by step, of a fresh stack."""
    tg.manual_seed(0)
    model = Stack(depth, residual)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        xb = tg.Tensor(images[step * batch:(step + 1) * batch])
        yb = tg.Tensor(labels[step * batch:(step + 1) * batch])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


curves = {(name, depth): train(depth, residual) for name, residual in (("plain", False), ("residual", True))
          for depth in depths}
final = {key: curve[-20:].mean() for key, curve in curves.items()}
for depth in depths:
    print(f"{depth:2d} layers: training loss over the last 20 steps  plain {final['plain', depth]:.3f}  "
          f"residual {final['residual', depth]:.3f}")
print(f"(chance level: ln 4 = {np.log(4):.3f}; all runs took {(time.time() - started) / 60:.1f} min)")

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for name in ("plain", "residual"):
    axes[0].plot(depths, [final[name, d] for d in depths], "o-", label=name)
    axes[1].plot(np.convolve(curves[name, deepest], np.ones(10) / 10, mode="valid"), label=f"{name}, {deepest} layers")
axes[0].axhline(np.log(4), color="gray", ls=":", label="chance (ln 4)")
axes[0].set_xscale("log", base=2)
axes[0].set(xlabel="depth (layers)", ylabel="training loss, last 20 steps", title="loss against depth")
axes[1].axhline(np.log(4), color="gray", ls=":", label="chance (ln 4)")
axes[1].set(xlabel="step", ylabel="training loss (moving average of 10)", title=f"the {deepest}-layer stacks")
for ax in axes:
    ax.legend()
save_lesson_figure(fig, args.out, "loss_against_depth.png")

# %% [markdown]
# ## What to look at
#
# - `gradient_per_layer.png`: the plain stack's gradient falls by orders of magnitude towards the input;
#   the residual stack's stays within a small factor.
# - `loss_against_depth.png`, left: the plain stack's training loss rises to chance as it gets deeper; the
#   residual one trains at depths where the plain one cannot (16 layers), and fails later, at 32, because
#   its activations grow (section 4). Right: the 32-layer stacks step by step.
# - The library's ResNet (`tinygrad_cv.models.resnet.BasicBlock`) is the same idea with two convolutions
#   and batch norm in each residual branch: relu(bn(conv(relu(bn(conv(x))))) + x).
#
# ## Exercises (change one line)
#
# 1. In `Stack.forward`, write `h = h + conv(h)` (no ReLU in the branch): the network becomes linear again
#    (lesson 3), a product of (I + W) maps, and cannot fit better than a linear model of the pixels.
# 2. Set `depths = (2, 4, 8, 16, 32, 64)`: the plain stack's first-layer gradient gets smaller still; the
#    run takes about twice as long.
# 3. In `Stack.forward`, print `h.numpy().std()` after each layer of the 32-layer residual stack at
#    initialisation: it grows from about 0.7 after 4 layers to about 110 after 32 (the cause of section 4's
#    last line).
