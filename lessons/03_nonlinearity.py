# %% [markdown]
# # Lesson 3: non-linearity
#
# A stack of linear layers is still one linear map: it can only draw straight lines. Put a
# non-linearity between them and it can bend. Which one matters:
#   sigmoid(x) = 1 / (1 + e^-x)   squashes to (0, 1); its slope is at most 1/4 and vanishes for
#                                 large |x| (saturation), so gradients shrink layer after layer;
#   relu(x) = max(x, 0)           slope 1 wherever it is active: gradients pass through unchanged.
# Then the universal approximation idea: linear -> ReLU -> linear with enough units fits any
# reasonable 1-D function, as a sum of hinges; more units, closer fit.
#
#     python lessons/03_nonlinearity.py [--quick] [--out DIR]

# %%
import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn, optim
from lesson_utils import parse_args, pyplot, save_figure

args = parse_args("Lesson 3: non-linearity", "03_nonlinearity")
tg.manual_seed(0)
plt = pyplot()

# %% [markdown]
# ## 1. Shapes and slopes (the slopes come from autograd)

# %%
x = tg.Tensor(np.linspace(-6, 6, 241), requires_grad=True)
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
save_figure(fig, args.out, "sigmoid_vs_relu.png")

# %% [markdown]
# ## 2. Saturation: how much gradient reaches each layer of a deep stack

# %%
depth, width = 12, 32
grad_norms = {}
for name, act in (("sigmoid", F.sigmoid), ("relu", F.relu)):
    tg.manual_seed(1)
    layers = [nn.Linear(width, width) for _ in range(depth)]
    h = tg.randn(64, width)
    for layer in layers:
        h = act(layer(h))
    h.sum().backward()
    grad_norms[name] = [float(np.linalg.norm(layer.weight.grad.numpy())) for layer in layers]
    print(f"{name}: gradient norm at layer 1 = {grad_norms[name][0]:.2e}, "
          f"at layer {depth} = {grad_norms[name][-1]:.2e}")
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, norms in grad_norms.items():
    ax.semilogy(range(1, depth + 1), norms, "o-", label=name)
ax.set_xlabel("layer (1 = closest to the input)")
ax.set_ylabel("|dL/dW|")
ax.set_title("gradients vanish through saturating sigmoids")
ax.legend()
save_figure(fig, args.out, "gradient_through_depth.png")

# %% [markdown]
# ## 3. Universal approximation

# %%
def target(t):
    return np.sin(3 * t) + 0.5 * np.abs(t) - 0.3 * t ** 2


t = np.linspace(-2, 2, 200, dtype=np.float32)[:, None]
inputs, targets = tg.Tensor(t), tg.Tensor(target(t))
steps = 800 if args.quick else 2000
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
save_figure(fig, args.out, "universal_approximation.png")
