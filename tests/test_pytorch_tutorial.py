"""A training loop in the shape of PyTorch's own tutorial (a Dataset returning (image, label) tuples, a
DataLoader, nn.Sequential, nn.CrossEntropyLoss, optim.SGD with momentum, lr_scheduler.StepLR,
zero_grad(set_to_none=True)), written once and run unchanged but for the modules passed in: ours, and
PyTorch's when it is installed. Both start from the same weights, so they must end with the same ones."""
import types

import numpy as np
import pytest

import tinygrad_cv as tg
from tinygrad_cv import data, nn, optim

EPOCHS = 3


def tutorial(torch, nn, optim, DataLoader, Dataset, images, labels, initial):
    """The loop as a PyTorch user writes it; ``torch`` etc. are whichever library runs it."""
    class Digits(Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return torch.tensor(images[i]), int(labels[i])

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
    model.load_state_dict({k: torch.tensor(v) for k, v in initial.items()})
    loader = DataLoader(Digits(), batch_size=8, shuffle=False)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    losses = []
    for _ in range(EPOCHS):
        model.train()
        for X, y in loader:
            pred = model(X)
            loss = loss_fn(pred, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    return losses, {k: np.asarray(v) for k, v in model.state_dict().items()}  # ours: arrays; torch: tensors


def problem(seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, 40)
    images = (rng.standard_normal((40, 1, 4, 4)) + labels[:, None, None, None]).astype(np.float32)
    initial = {"1.weight": rng.standard_normal((12, 16)) * 0.25, "1.bias": np.zeros(12),
               "3.weight": rng.standard_normal((3, 12)) * 0.25, "3.bias": np.zeros(3)}
    return images, labels, {k: v.astype(np.float32) for k, v in initial.items()}


def ours():
    return tg, nn, optim, data.DataLoader, data.Dataset


def test_the_tutorial_loop_trains_with_our_modules():
    images, labels, initial = problem()
    losses, final = tutorial(*ours(), images, labels, initial)
    assert len(losses) == EPOCHS * 5 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert set(final) == set(initial) and all(final[k].dtype == np.float32 for k in final)
    assert not np.allclose(final["1.weight"], initial["1.weight"])


def test_the_tutorial_loop_gives_pytorchs_weights():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, Dataset
    images, labels, initial = problem(1)
    our_losses, our_final = tutorial(*ours(), images, labels, initial)
    torch_modules = types.SimpleNamespace(nn=torch.nn, optim=torch.optim)
    their_losses, their_final = tutorial(torch, torch_modules.nn, torch_modules.optim, DataLoader, Dataset,
                                         images, labels, initial)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-4, atol=1e-6)
    for key in initial:
        np.testing.assert_allclose(our_final[key], their_final[key], rtol=1e-4, atol=1e-5, err_msg=key)
