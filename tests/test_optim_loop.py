"""A PyTorch tutorial's training loop, optimiser side: zero_grad(set_to_none=True), backward, SGD with
momentum, StepLR once per epoch; against the same loop written in NumPy with hand gradients, and
against torch when installed."""
import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import optim
from tinygrad_cv.nn import Parameter
from tinygrad_cv.optim.lr_scheduler import StepLR

EPOCHS, BATCHES = 6, 4


def data(seed=0):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((3, 5))
    batches = [(rng.standard_normal((8, 5)), rng.integers(0, 3, 8)) for _ in range(BATCHES)]
    return w0, batches


def train_ours(loss_fn, w0, batches):
    w = Parameter(w0.copy())
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(EPOCHS):
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(w, tg.tensor(x), y)
            loss.backward()
            opt.step()
        sched.step()
    return w.numpy(), sched.get_last_lr()


def test_the_loop_matches_numpy_with_hand_gradients():
    # loss = mean over the batch of 0.5 * ||x W^T - onehot(y)||^2 summed over classes: dL/dW = (x W^T - Y)^T x / n
    w0, batches = data()

    def loss_fn(w, x, y):
        target = tg.tensor(np.eye(3)[y])
        return 0.5 * F.mse_loss(F.linear(x, w), target, reduction="sum") / len(x)

    ours, last_lr = train_ours(loss_fn, w0, batches)
    w, buf, lr = w0.copy(), None, 0.1
    for epoch in range(EPOCHS):
        for x, y in batches:
            grad = (x @ w.T - np.eye(3)[y]).T @ x / len(x)
            buf = grad.copy() if buf is None else 0.9 * buf + grad
            w = w - lr * buf
        lr = 0.1 * 0.5 ** ((epoch + 1) // 2)
    np.testing.assert_allclose(ours, w, rtol=1e-10, atol=1e-12)
    assert last_lr == pytest.approx([0.1 * 0.5 ** 3])


def test_the_loop_matches_torch():
    torch = pytest.importorskip("torch")
    w0, batches = data(1)
    ours, _ = train_ours(lambda w, x, y: F.cross_entropy(F.linear(x, w), tg.tensor(y)), w0, batches)
    w = torch.tensor(w0.copy(), requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(EPOCHS):
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(torch.tensor(x) @ w.T, torch.tensor(y))
            loss.backward()
            opt.step()
        sched.step()
    np.testing.assert_allclose(ours, w.detach().numpy(), rtol=1e-10, atol=1e-12)
