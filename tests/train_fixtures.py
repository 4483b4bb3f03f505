"""Small models and data for the training tests, built only from Parameters and core ops."""
import math

import numpy as np

import tinygrad_cv as tg
from tinygrad_cv import functional as F
from tinygrad_cv.nn import Module, Parameter
from tinygrad_cv.random import generator
from tinygrad_cv.train import Learner


class MLP(Module):
    """x -> relu(x W1 + b1) [-> dropout drawn from the global generator] -> W2 + b2, in two layer groups."""

    def __init__(self, n_in=4, n_hidden=16, n_out=3, dropout=0.0):
        super().__init__()
        self.w1 = Parameter(tg.randn(n_in, n_hidden) * (2 / n_in) ** 0.5)
        self.b1 = Parameter(tg.zeros(n_hidden))
        self.w2 = Parameter(tg.randn(n_hidden, n_out) * (1 / n_hidden) ** 0.5)
        self.b2 = Parameter(tg.zeros(n_out))
        self.dropout = dropout

    def forward(self, x):
        h = F.relu(x @ self.w1 + self.b1)
        if self.training and self.dropout:
            keep = tg.rand(*h.shape, device=h.device) > self.dropout
            h = h * tg.Tensor(keep.data.astype(h.dtype), device=h.device) / (1 - self.dropout)
        return h @ self.w2 + self.b2

    def layer_groups(self):
        return [[self.w1, self.b1], [self.w2, self.b2]]


def cross_entropy(pred, y):
    """Mean of -log softmax(pred)[y], written with core ops only."""
    return -pred.log_softmax(1)[(np.arange(len(y)), y.data)].mean()


def blobs(n=240, n_in=4, n_classes=3, seed=0):
    """Gaussian clusters: x (n, n_in) float32 around one random centre per class, y (n,) int64."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, n_in)) * 2
    y = rng.integers(0, n_classes, n)
    return (centres[y] + rng.standard_normal((n, n_in))).astype(np.float32), y


class ShufflingLoader:
    """(x, y) Tensor batches; a fresh order each epoch drawn from the global generator (so resuming needs
    the generator's state restored)."""

    def __init__(self, x, y, batch_size, shuffle=True):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        order = generator().permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield tg.tensor(self.x[index]), tg.tensor(self.y[index])


class Loaders:
    def __init__(self, train, valid):
        self.train, self.valid = train, valid


def make_dls(n=240, batch_size=20, seed=0):
    x, y = blobs(n, seed=seed)
    cut = n * 3 // 4
    return Loaders(ShufflingLoader(x[:cut], y[:cut], batch_size),
                   ShufflingLoader(x[cut:], y[cut:], batch_size, shuffle=False))


def make_learner(seed=0, dropout=0.0, **kwargs):
    """A Learner on blobs with a freshly seeded MLP (no progress output unless asked)."""
    tg.manual_seed(seed)
    kwargs.setdefault("progress", False)
    return Learner(make_dls(), MLP(dropout=dropout), cross_entropy, **kwargs)


class TinyCNN(Module):
    """conv-bn-relu, conv-bn-relu, pool, linear: the layers mixed precision and freezing care about."""

    def __init__(self, n_classes=3):
        super().__init__()
        from tinygrad_cv import nn
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, n_classes))

    def forward(self, x):
        return self.head(self.body(x))

    def layer_groups(self):
        return [self.body, self.head]


def image_dls(n=96, size=8, batch_size=16, seed=0):
    """Images whose class is the brightest of three colour channels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32) * 0.5
    x[np.arange(n), y] += 1.0
    cut = n * 3 // 4
    return Loaders(ShufflingLoader(x[:cut], y[:cut], batch_size),
                   ShufflingLoader(x[cut:], y[cut:], batch_size, shuffle=False))
