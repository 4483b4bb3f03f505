"""Models and data shared by tests/test_distributed.py and the ranks it starts (distributed_worker.py)."""
import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import nn
from tinygrad_cv.data import DataLoader, DataLoaders, DistributedSampler

SEED = 1234


class TwoLayer(nn.Module):
    """x -> tanh(x W1 + b1) W2 + b2."""

    def __init__(self, dtype):
        super().__init__()
        rng = np.random.default_rng(7)  # the same weights in every process
        self.w1 = nn.Parameter(rng.standard_normal((4, 6)).astype(dtype) * 0.5)
        self.b1 = nn.Parameter(rng.standard_normal(6).astype(dtype) * 0.1)
        self.w2 = nn.Parameter(rng.standard_normal((6, 2)).astype(dtype) * 0.5)
        self.b2 = nn.Parameter(np.zeros(2, dtype=dtype))

    def forward(self, x):
        return (x @ self.w1 + self.b1).tanh() @ self.w2 + self.b2


def make_mlp(dtype):
    return TwoLayer(dtype)


def sgd_batch(step, n=8):
    """Step ``step``'s combined batch (x, y), float64, the same in every process."""
    rng = np.random.default_rng(100 + step)
    return rng.standard_normal((n, 4)), rng.standard_normal((n, 2))


def sync_bn_inputs():
    """x (4, 3, 5, 5), an upstream gradient g like it, and a weight and bias (3,), float64."""
    rng = np.random.default_rng(5)
    return (rng.standard_normal((4, 3, 5, 5)) * 2 + 1, rng.standard_normal((4, 3, 5, 5)),
            rng.standard_normal(3), rng.standard_normal(3))


def tag_samples(n, seed):
    """Planet-like multi-label samples: 8x8 RGB uint8 images with 3 tags, each tag a brighter channel."""
    rng = np.random.default_rng(seed)
    tags = (rng.random((n, 3)) < 0.5).astype(np.float32)
    images = rng.integers(0, 120, (n, 8, 8, 3)) + (tags[:, None, None, :] * 100).astype(np.int64)
    return [{"image": images[i].astype(np.uint8), "target": tags[i]} for i in range(n)]


def learner_data(batch_size, reference):
    """48 training and 20 validation samples. ``reference``: one process whose training loader follows
    DistributedSampler(num_replicas=1) (the order the ranks share between them); otherwise a shuffled
    loader, which the Learner splits between the ranks."""
    train, valid = tag_samples(48, 0), tag_samples(20, 1)
    if reference:
        sampler = DistributedSampler(train, num_replicas=1, rank=0, shuffle=True, seed=SEED)
        train_loader = DataLoader(train, batch_size=batch_size, sampler=sampler, seed=SEED)
    else:
        train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, seed=SEED)
    return DataLoaders(train_loader, DataLoader(valid, batch_size=10, seed=SEED), stats=([0.4] * 3, [0.25] * 3))


class SmallCNN(nn.Module):
    """conv 3x3 -> SyncBatchNorm -> ReLU -> conv 3x3 stride 2 -> global average -> linear to 3 tags."""

    def __init__(self):
        super().__init__()
        tg.manual_seed(0)
        self.body = nn.convert_sync_batchnorm(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                                                            nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1)))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(F.relu(self.body(x)).mean(dim=(2, 3)))


def small_cnn():
    return SmallCNN()
