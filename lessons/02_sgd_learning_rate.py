# %% [markdown]
# # Lesson 2: gradient descent and the learning rate
#
# Gradient descent repeats  x <- x - lr * df/dx.  On f(x) = x^2 the step multiplies x by (1 - 2 lr):
#   lr = 0.1   factor  0.8   too small: steady but slow
#   lr = 0.7   factor -0.4   near the best (0.5): fast, with a small overshoot
#   lr = 0.99  factor -0.98  too large: jumps from side to side, barely closing in
#   lr = 1.01  factor -1.02  past the limit (1.0): each jump is larger, it diverges
# Then a bumpy, noisy function, where a small fixed rate settles into the first dip it meets.
#
#     python lessons/02_sgd_learning_rate.py [--quick] [--out DIR]

# %%
import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 2: gradient descent and the learning rate", "02_sgd_learning_rate", full_minutes=0.3)
steps = 15 if args.quick else 30


def descend(f, x0, lr, steps, noise=0.0, seed=0):
    """Plain gradient descent; the gradient comes from autograd. Returns the path of x."""
    rng = np.random.default_rng(seed)
    x = tg.Tensor([x0], dtype=np.float64, requires_grad=True)
    path = [x0]
    for _ in range(steps):
        f(x).sum().backward()
        grad = x.grad.numpy() + noise * rng.standard_normal(1)  # noise: a mini-batch's estimate
        x = tg.Tensor(x.numpy() - lr * grad, requires_grad=True)
        path.append(float(x.item()))
    return np.array(path)

# %% [markdown]
# ## 1. The quadratic and four learning rates

# %%
def quadratic(x):
    return x * x


plt = pyplot()
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
grid = np.linspace(-1.6, 1.6, 200)
axes[0].plot(grid, grid ** 2, color="lightgray")
for lr, color in ((0.1, "tab:blue"), (0.7, "tab:green"), (0.99, "tab:orange"), (1.01, "tab:red")):
    path = descend(quadratic, 1.0, lr, steps)
    print(f"lr={lr:<5} x after {steps} steps: {path[-1]: .4g}")
    axes[0].plot(path[:8], path[:8] ** 2, "o-", ms=3, color=color, label=f"lr={lr}")
    axes[1].semilogy(np.abs(path) + 1e-12, color=color, label=f"lr={lr}")
axes[0].set_title("f(x) = x^2: the first steps")
axes[0].set_ylim(0, 2.6)
axes[1].set_title("|x| against step (log scale)")
axes[1].set_xlabel("step")
for ax in axes:
    ax.legend()
save_lesson_figure(fig, args.out, "learning_rates_on_a_quadratic.png")

# %% [markdown]
# ## 2. Noise and local dips
#
# f(x) = x^2 + 0.3 sin(12 x) has dips all along the bowl. With noisy gradients (as from
# mini-batches), a small fixed rate stops in the first dip; a larger one hops over the dips but
# never settles, which is why schedules start high and anneal (lesson 7: one-cycle).

# %%
def bumpy(x):
    return x * x + 0.3 * F.sin(12 * x)


fig, ax = plt.subplots(figsize=(6, 4))
grid_t = tg.Tensor(np.linspace(-2, 2, 400))
ax.plot(grid_t.numpy(), bumpy(grid_t).numpy(), color="lightgray", label="f")
long_steps = 3 * steps
for lr, color in ((0.01, "tab:blue"), (0.2, "tab:red")):
    path = descend(bumpy, -1.8, lr, long_steps, noise=0.5)
    print(f"bumpy, lr={lr}: stopped near x = {path[-1]: .3f}")
    ax.plot(path, bumpy(tg.Tensor(path)).numpy(), ".-", ms=3, color=color, label=f"lr={lr}")
ax.set_title("noisy gradients on a bumpy function")
ax.legend()
save_lesson_figure(fig, args.out, "fixed_rate_gets_stuck.png")


# %% [markdown]
# ## What to look at
#
# - `learning_rates_on_a_quadratic.png`: on x^2 a step multiplies x by (1 - 2 lr): 0.1 shrinks it
#   steadily, 0.99 flips its sign each step and shrinks it slowly, 1.01 flips and grows.
# - `fixed_rate_gets_stuck.png`: the small rate stops in a dip, the large one keeps hopping.
#
# ## Exercises (change one line)
#
# 1. Add `(0.5, "tab:purple")` to the quadratic's rates: 1 - 2 * 0.5 = 0, so x reaches 0 in one step.
# 2. Add `(1.0, "tab:brown")`: 1 - 2 * 1.0 = -1, so x jumps between 1 and -1 for ever.
