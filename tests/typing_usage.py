"""The public API used as a PyTorch or fastai user would, type-checked by mypy in ``make test`` (this file is
in [tool.mypy] files, fully annotated). ``assert_type`` fails the check when a hint is wrong or is Any where a
type is promised, so a regression in the package's hints fails ``make test``; tests/test_typing_usage.py
also runs ``main()``, so the hints are checked against what the code really returns."""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import assert_type

import tinygrad_cv as tg
from tinygrad_cv import functional as F
from tinygrad_cv import nn, optim
from tinygrad_cv.data import DataLoader, Dataset, RandomSampler
from tinygrad_cv.nn.module import IncompatibleKeys
from tinygrad_cv.ops.reduce import MaxResult
from tinygrad_cv.train import Learner
from tinygrad_cv.train.lr_finder import Suggestion, slide, valley


class Blobs(Dataset):
    """A PyTorch-style dataset: (image, label) tuples."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.labels = rng.integers(0, 3, n)
        self.images = (rng.standard_normal((n, 1, 4, 4)) + self.labels[:, None, None, None]).astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[tg.Tensor, int]:
        return tg.tensor(self.images[i]), int(self.labels[i])


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return self.head(F.relu(self.bn(self.conv(x))))


def halfway(lrs: tg.Tensor, losses: tg.Tensor, num_it: int) -> Suggestion:
    """A user's own suggestion function, fastai v2's signature."""
    lr = lrs[losses.argmin()].item() ** 0.5 * lrs[0].item() ** 0.5
    return lr, (lr, float(losses.min()))


def tensors() -> None:
    x = tg.randn(2, 3, requires_grad=True)
    assert_type(x, tg.Tensor)
    assert_type(x + 1, tg.Tensor)
    assert_type(2.0 * x, tg.Tensor)
    assert_type(x @ x.t(), tg.Tensor)
    assert_type(x.shape, tuple[int, ...])
    assert_type(x.size(), tuple[int, ...])
    assert_type(x.size(0), int)
    assert_type(x.item() if x.numel() == 1 else 0.0, bool | int | float)
    assert_type(x.numpy(), npt.NDArray[Any])
    result = x.max(1)
    assert_type(result, MaxResult)
    assert_type(result.values, tg.Tensor)
    assert_type(result.indices, tg.Tensor)
    assert_type(x.max(), tg.Tensor)
    assert_type(tg.max(x, 0, keepdim=True).indices, tg.Tensor)
    assert_type(x.split(1, 1), tuple[tg.Tensor, ...])
    assert_type(x > 0, tg.Tensor)
    assert_type(x == x, tg.Tensor)
    pooled, where = F.max_pool2d(tg.rand(1, 1, 4, 4), 2, return_indices=True)
    assert_type(pooled, tg.Tensor)
    assert_type(where, tg.Tensor)
    assert_type(F.max_pool2d(tg.rand(1, 1, 4, 4), 2), tg.Tensor)
    loss = F.cross_entropy(x, tg.tensor([0, 2]))
    loss.backward()
    assert_type(x.grad, tg.Tensor | None)
    assert x.grad is not None and x.grad.shape == (2, 3)
    assert isinstance(result, MaxResult) and isinstance(result.values, tg.Tensor)


def pytorch_loop() -> list[float]:
    model = Net()
    assert_type(model.eval(), Net)                          # methods returning self keep the model's type
    assert_type(model.train(), Net)
    assert_type(model.to("cpu").double().float(), Net)
    assert_type(model(tg.zeros(1, 1, 4, 4)), Any)           # Module.__call__ returns Any, as PyTorch's
    assert_type(next(model.parameters()), nn.Parameter)
    assert_type(list(model.named_modules())[0], tuple[str, nn.Module])
    assert_type(model.head[1], nn.Module)
    assert_type(model.head[1:], nn.Sequential)
    keys = model.load_state_dict(model.state_dict())
    assert_type(keys, IncompatibleKeys)
    assert_type(model.state_dict()["conv.weight"], npt.NDArray[Any])
    loader = DataLoader(Blobs(24), batch_size=8, sampler=RandomSampler(range(24)))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    losses: list[float] = []
    for _ in range(2):
        for X, y in loader:
            loss = loss_fn(model(X), y)
            assert_type(loss, Any)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    assert_type(scheduler.get_last_lr(), list[float])
    assert_type(optimizer.state_dict(), dict[str, Any])
    return losses


class Pairs:
    """fastai-style loaders: .train and .valid iterables of (x, y) batches."""

    def __init__(self) -> None:
        self.train = DataLoader(Blobs(24), batch_size=8, shuffle=True, seed=0)
        self.valid = DataLoader(Blobs(8), batch_size=8)


def fastai_learner() -> float:
    learn = Learner(Pairs(), Net(), F.cross_entropy, opt_func=partial(optim.SGD, momentum=0.9), lr=0.05,
                    progress=False)
    assert_type(learn.fit_one_cycle(1, 0.05), None)
    assert_type(learn.validate(), dict[str, Any])
    preds, targets = learn.get_preds()
    assert_type(preds, tg.Tensor)
    assert_type(targets, tg.Tensor | None)
    assert_type(learn.predict(tg.zeros(1, 4, 4)), tg.Tensor)
    assert_type(learn.summary(), str)
    assert_type(learn.to_fp32(), Learner)
    suggestions = learn.lr_find(num_it=20, show_plot=False,
                                suggest_funcs=(valley, halfway, partial(slide, lr_diff=3)))
    assert_type(valley(tg.tensor([1e-3, 1e-2, 1e-1]), tg.tensor([1.0, 0.5, 2.0]), 3), Suggestion)
    return float(suggestions[0])


def main() -> None:
    tensors()
    losses = pytorch_loop()
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert fastai_learner() > 0


if __name__ == "__main__":
    main()
