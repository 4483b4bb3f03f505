# %% [markdown]
# # Lesson 3: non-linearity
#
# A stack of linear layers is still one linear map: it can only draw straight lines. Put a
# non-linearity between them and it can bend. Which one matters:
#   sigmoid(x) = 1 / (1 + e^-x)   squashes to (0, 1); its slope is at most 1/4 and vanishes for
#                                 large |x| (saturation), so gradients shrink layer after layer;
#   relu(x) = max(x, 0)           slope 1 wherever it is active: with He initialisation (section 2)
#                                 gradients keep their size through any depth.
# Then the universal approximation idea: linear -> ReLU -> linear with enough units fits any
# reasonable 1-D function, as a sum of hinges; more units, closer fit.
#
#     python lessons/03_nonlinearity.py [--quick] [--out DIR]

# %%
import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn, optim
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 3: non-linearity", "03_nonlinearity", full_minutes=0.05)
tg.manual_seed(0)
plt = pyplot()

# %% [markdown]
# ## 1. Shapes and slopes (the slopes come from autograd)

# %%
x = tg.Tensor(np.linspace(-6, 6, 61 if args.quick else 241), requires_grad=True)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, fn in (("sigmoid", F.sigmoid), ("relu", F.relu)):
    x.grad = None
    y = fn(x)
    y.backward(np.ones(x.shape))  # elementwise: an all-ones upstream gradient gives the slope
    axes[0].plot(x.numpy(), y.numpy(), label=name)
    axes[1].plot(x.numpy(), x.grad.numpy(), label=f"d {name} / dx")
axes[0].set_title("activations")
axes[1].set_title("their slopes: sigmoid's is at most 0.25")
for ax in axes:
    ax.legend()
save_lesson_figure(fig, args.out, "sigmoid_vs_relu.png")

# %% [markdown]
# ## 2. Saturation: how much gradient reaches each layer of a deep stack
#
# A stack of 12 linear layers of width 32, an activation after each, a batch of 64 random inputs; we
# backpropagate a random upstream gradient and print the size of the gradient that reaches each layer's
# output. Three stacks:
#
# - **sigmoid**, with the Xavier (Glorot) initialisation made for it: every layer multiplies the backward
#   signal by sigmoid's slope, at most 1/4, so the gradient shrinks geometrically towards the input;
# - **ReLU with the default initialisation** (PyTorch's `nn.Linear` default, uniform with variance
#   1 / (3 fan_in)): ReLU's slope is exactly 1 where a unit is active, but half the units are off, so a
#   layer keeps only about half the signal's energy, and the default weights shrink it by a further 3x:
#   about sqrt(1/6) = 0.41 of the norm survives each layer. The gradient still fades, not because of
#   ReLU but because of the initialisation;
# - **ReLU with He (Kaiming) initialisation**, weights of variance 2 / fan_in (`nn.init.kaiming_normal_`,
#   `nonlinearity="relu"`): the 2 pays back the half that ReLU switches off, so the signal keeps its size,
#   forwards and backwards, through any depth. This is the claim of the lesson's title, made true.

# %%
depth, width = 12, 32


def deep_stack(act, init):
    """``depth`` linear layers, ``act`` after each; ``init`` re-initialises each weight (biases zero)."""
    layers = [nn.Linear(width, width) for _ in range(depth)]
    for layer in layers:
        if init is not None:
            init(layer.weight)
            nn.init.zeros_(layer.bias)
    return layers


# To read the gradient that reaches the output of layer l, we add a zero 'probe' there, a leaf Tensor
# that changes nothing in the forward pass: its .grad after backward is exactly dL/dh_l.
stacks = {"sigmoid (Xavier init)": (F.sigmoid, nn.init.xavier_normal_),
          "ReLU (default init)": (F.relu, None),
          "ReLU (He init)": (F.relu, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))}
grad_norms = {}
for name, (act, init) in stacks.items():
    tg.manual_seed(1)
    layers = deep_stack(act, init)
    h = tg.randn(64, width)
    probes = [tg.zeros(64, width, requires_grad=True) for _ in layers]
    for layer, probe in zip(layers, probes):
        h = act(layer(h)) + probe
    h.backward(tg.randn(*h.shape))          # a random upstream gradient, as in lesson 1
    norms = grad_norms[name] = [float(np.linalg.norm(probe.grad.numpy())) for probe in probes]
    print(f"{name:22s}: |dL/dh| at layer {depth} (output side) = {norms[-1]:.2e}, "
          f"at layer 1 (input side) = {norms[0]:.2e}, ratio {norms[0] / norms[-1]:.1e}")
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, norms in grad_norms.items():
    ax.semilogy(range(1, depth + 1), norms, "o-", label=name)
ax.set_xlabel("layer (1 = closest to the input)")
ax.set_ylabel("|dL/dh|, the gradient reaching the layer's output")
ax.set_title("sigmoid's gradient vanishes; ReLU's keeps its size with He init")
ax.legend()
save_lesson_figure(fig, args.out, "gradient_through_depth.png")


# %% [markdown]
# ## 3. Universal approximation

# %%
def target(t):
    return np.sin(3 * t) + 0.5 * np.abs(t) - 0.3 * t ** 2


t = np.linspace(-2, 2, 200, dtype=np.float32)[:, None]
inputs, targets = tg.Tensor(t), tg.Tensor(target(t))
steps = 2000   # cheap (seconds): the quick run fits as long as the full one, so it shows the same thing
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(t, target(t), color="black", lw=3, alpha=0.3, label="target")
for units in (2, 8, 64):
    tg.manual_seed(2)
    model = nn.Sequential(nn.Linear(1, units), nn.ReLU(), nn.Linear(units, 1))
    opt = optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        loss = F.mse_loss(model(inputs), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"{units:3d} ReLU units: mean squared error {loss.item():.4f}")
    with tg.no_grad():
        ax.plot(t, model(inputs).numpy(), label=f"{units} units (mse {loss.item():.3f})")
ax.set_title("linear -> ReLU -> linear: more units, closer fit")
ax.legend()
save_lesson_figure(fig, args.out, "universal_approximation.png")


# %% [markdown]
# ## What to look at
#
# - `gradient_through_depth.png`: the sigmoid line falls about seven decades over 12 layers, ReLU with the
#   default init about four and a half, ReLU with He init stays flat (the printed ratios).
# - `sigmoid_vs_relu.png`: sigmoid's slope never passes 0.25; ReLU's is 0 or 1.
# - `universal_approximation.png`: 2 hinges cannot follow the curve, 64 follow it closely.
#
# ## Exercises (change one line)
#
# 1. In `stacks`, give He's init `nonlinearity="linear"` (variance 1 / fan_in, no factor 2): the ReLU
#    stack loses half the energy per layer again; its ratio falls from about 0.8 to about 0.02.
# 2. Set `depth = 24`: sigmoid's ratio falls to about 1e-14, the default-init ReLU's to about 1e-9, while
#    He's stays near 1.
# 3. Add 256 to `for units in (2, 8, 64)`: its error is smaller again (about 1e-4 after 2000 steps).
