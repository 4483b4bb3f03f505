"""DistributedSampler: each rank's share of a dataset's indices, the same lists as PyTorch's.

PyTorch shuffles with ``torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))``. That is
not ``np.random.RandomState(seed).permutation(n)`` (a different walk over the same generator), but it can
be reproduced with NumPy exactly: torch's CPU generator is a 32-bit Mersenne Twister (MT19937) seeded
like NumPy's legacy one with the seed's low 32 bits, and for n < 2^32 / 20 its randperm is the forward
Fisher-Yates shuffle ``for i in 0..n-2: swap(r[i], r[i + u_i % (n - i)])`` with u_i its i-th raw 32-bit
output. Above that size torch switches to another algorithm, so ``shuffle=True`` refuses such datasets.
"""
import math
import numbers

import numpy as np

from .. import distributed as dist

TORCH_RANDPERM_SMALL_N = (2 ** 32 - 1) // 20
"""torch's randperm uses the Fisher-Yates walk below for n < this bound."""


def torch_randperm(n, seed):
    """``torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()`` on the CPU, in NumPy."""
    if n >= TORCH_RANDPERM_SMALL_N:
        raise ValueError(f"torch_randperm: n={n} is beyond {TORCH_RANDPERM_SMALL_N}, where torch's randperm "
                         f"uses another algorithm that this reproduction does not follow")
    raw = np.random.RandomState(seed & 0xFFFFFFFF).randint(0, 2 ** 32, size=max(n - 1, 0), dtype=np.uint32)
    order = list(range(n))
    for i, u in enumerate(raw.tolist()):
        j = i + u % (n - i)
        order[i], order[j] = order[j], order[i]
    return order


def _check_int(name, value, low):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"DistributedSampler: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class DistributedSampler:
    """The indices of ``dataset`` that rank ``rank`` of ``num_replicas`` trains on, as PyTorch's.

    Each epoch: all indices (shuffled by seed + epoch when ``shuffle``), then made a multiple of
    num_replicas (without ``drop_last``: padded by repeating the first indices; with it: the tail cut
    off), then every num_replicas-th index from position ``rank``. Every rank gets ``len(self)`` indices
    and the ranks' lists together cover the epoch. ``num_replicas`` and ``rank`` default to the world's
    (``tinygrad_cv.distributed``). ``set_epoch(e)`` changes the shuffle (a DataLoader given this sampler
    calls it with its own epoch count at the start of each epoch)."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        num_replicas = dist.world_size() if num_replicas is None else _check_int("num_replicas", num_replicas, 1)
        rank = dist.rank() if rank is None else rank
        if not isinstance(rank, numbers.Integral) or isinstance(rank, bool) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in 0 .. {num_replicas - 1}, got {rank!r}")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), _check_int("seed", seed, 0), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.shuffle and n >= TORCH_RANDPERM_SMALL_N:
            raise ValueError(f"DistributedSampler: shuffle=True follows torch's randperm only below "
                             f"{TORCH_RANDPERM_SMALL_N} samples, got {n}")
        if self.drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        self.epoch = _check_int("epoch", epoch, 0)

    def indices(self):
        """This rank's indices for the current epoch, as a list of ints."""
        n = len(self.dataset)
        order = torch_randperm(n, self.seed + self.epoch) if self.shuffle else list(range(n))
        if self.drop_last:
            order = order[:self.total_size]
        else:
            padding = self.total_size - n
            order += (order * math.ceil(padding / n))[:padding] if n else []
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self):
        return iter(self.indices())

    def __len__(self):
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler({len(self.dataset)} samples, rank {self.rank} of {self.num_replicas}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
