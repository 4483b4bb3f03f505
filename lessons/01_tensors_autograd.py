# %% [markdown]
# # Lesson 1: tensors and autograd
#
# A small graph, its gradient worked out by hand and by the engine, and gradcheck: how we know a
# backward pass is right, and why checking it with an all-ones upstream gradient is not enough.
#
#     python lessons/01_tensors_autograd.py [--quick] [--out DIR]

# %%
import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv.autograd import Function
from lesson_utils import parse_args, pyplot, save_lesson_figure

args = parse_args("Lesson 1: tensors and autograd", "01_tensors_autograd", full_minutes=0.2)
tg.manual_seed(0)

# %% [markdown]
# ## 1. A tiny graph
#
# f(w, x) = sum( sigmoid(w * x) * x ).  Every Tensor remembers the op that made it, so the engine
# can walk the graph backwards from f and apply the chain rule at each step.

# %%
x = tg.Tensor([0.5, -1.0, 2.0], dtype=np.float64)
w = tg.Tensor([1.5, 0.3, -0.7], dtype=np.float64, requires_grad=True)
s = F.sigmoid(w * x)
f = (s * x).sum()
f.backward()

# %% [markdown]
# ## 2. The same gradient by hand
#
# df/dw_i = x_i * sigmoid'(w_i x_i) * x_i, and sigmoid'(z) = sigmoid(z) (1 - sigmoid(z)).

# %%
sig = 1 / (1 + np.exp(-w.numpy() * x.numpy()))
by_hand = x.numpy() * sig * (1 - sig) * x.numpy()
print("df/dw by the engine:", w.grad.numpy())
print("df/dw by hand:      ", by_hand)
assert np.allclose(w.grad.numpy(), by_hand)

# %% [markdown]
# ## 3. gradcheck
#
# Finite differences: (f(w + eps v) - f(w - eps v)) / 2 eps should equal <grad f, v> for any
# direction v. gradcheck does this in float64 with a random v and a random upstream gradient.

# %%
print("gradcheck:", tg.gradcheck(lambda w: F.sigmoid(w * x) * x, [w]))

# %% [markdown]
# ## 4. Why the upstream gradient must be random
#
# An op that reverses a vector has a backward that must reverse the gradient back. A buggy version
# that forgets gives exactly the right answer when the upstream gradient is all ones (a vector of
# ones is its own reverse), so a check with ones would pass it. gradcheck catches it.

# %%
class BuggyFlip(Function):
    def forward(ctx, v):
        return v[::-1].copy()

    def backward(ctx, g):
        return g  # bug: should be g[::-1]


v = tg.Tensor(np.arange(4.0), requires_grad=True)
BuggyFlip.apply(v).backward(np.ones(4))
print("buggy gradient with all-ones upstream:", v.grad.numpy(), "(looks right)")
try:
    tg.gradcheck(lambda v: BuggyFlip.apply(v), [v])
except tg.GradcheckError as e:
    print("gradcheck with a random upstream gradient:", str(e).split(":")[0], "-> caught")

# %% [markdown]
# ## 5. A figure: a function, its gradient by autograd, and the finite-difference slope

# %%
plt = pyplot()
z = tg.Tensor(np.linspace(-6, 6, 61 if args.quick else 241), requires_grad=True)
y = F.sigmoid(z) * F.tanh(z)
y.backward(np.ones(z.shape))  # elementwise function: an all-ones upstream gives the derivative
eps = 1e-5
fd = (np.tanh(z.numpy() + eps) / (1 + np.exp(-z.numpy() - eps))
      - np.tanh(z.numpy() - eps) / (1 + np.exp(-z.numpy() + eps))) / (2 * eps)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(z.numpy(), y.numpy(), label="y = sigmoid(z) tanh(z)")
ax.plot(z.numpy(), z.grad.numpy(), label="dy/dz by autograd")
ax.plot(z.numpy()[::6], fd[::6], "o", ms=3, label="finite differences")
ax.legend()
ax.set_xlabel("z")
save_lesson_figure(fig, args.out, "autograd_vs_finite_differences.png")


# %% [markdown]
# ## What to look at
#
# - `autograd_vs_finite_differences.png`: the autograd curve and the finite-difference dots coincide.
# - The printed gradients: the engine's and the hand-derived ones agree to every printed digit.
#
# ## Exercises (change one line)
#
# 1. In `BuggyFlip.backward`, return `g[::-1]` (the correct backward): gradcheck no longer raises, so the
#    "-> caught" line disappears.
# 2. In section 2, drop one factor `x.numpy()` from `by_hand`: the assert fails, since x is not all ones.
