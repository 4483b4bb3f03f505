"""Data-parallel training in the Learner: the callback it adds by itself when ``dist.world_size() > 1``.

    mpiexec -n 2 python train.py          # the same script as for one process

Every rank builds the same Learner; then:
  - before training, rank 0's weights (and batch-norm statistics) go to every rank, and the training
    loader (a data.DataLoader) gets a DistributedSampler, so each rank sees its 1/N of every epoch (the
    loader's seed is rank 0's, so the shuffles and the per-sample transforms agree);
  - each training batch's loss is averaged over the ranks (what the table and the Recorder show is the
    global batch's loss), and so are the gradients, before mixed precision unscales them and checks them
    for overflow: an inf or NaN on one rank is in every rank's average, so every rank skips that step;
  - the validation set is not split: every rank evaluates all of it, so the metrics are those of the whole
    set whatever the metric (a ratio of sums, a ranking, a confusion matrix), at the price of the same
    validation on every rank; the epoch table is then rank 0's on every rank, so callbacks such as early
    stopping decide the same everywhere;
  - only rank 0 prints progress, writes figures and checkpoints (the Learner asks ``dist.rank()``).
Batch-norm statistics stay per rank unless the model uses nn.SyncBatchNorm (nn.convert_sync_batchnorm).
"""
from __future__ import annotations

import numpy as np

from .. import distributed as dist
from ..data.sampler import DistributedSampler
from .callbacks import Callback


def _data_loader(loader):
    """The data.DataLoader inside a DeviceLoader (``.loader``), or the loader itself."""
    return getattr(loader, "loader", loader)


class DataParallel(Callback):
    """The data-parallel steps described in the module docstring."""

    order = 12  # after the schedule (10), before mixed precision (15) unscales and checks the gradients

    def before_fit(self) -> None:
        dist.broadcast_parameters(self.learn.model)
        self._shard(_data_loader(self.learn.dls.train))

    def _shard(self, loader):
        sampler = getattr(loader, "sampler", False)
        if isinstance(sampler, DistributedSampler) and sampler.num_replicas == dist.world_size():
            return
        if sampler is not None:
            raise TypeError(f"DataParallel: the training loader must be a tinygrad_cv DataLoader without a "
                            f"sampler (or with a DistributedSampler for {dist.world_size()} ranks) to be split "
                            f"between the ranks; got {type(loader).__name__} with sampler {sampler!r}")
        seed = dist.broadcast(np.array([loader.seed], dtype=np.int64))
        loader.seed = int(seed[0])
        loader.sampler = DistributedSampler(loader.dataset, shuffle=loader.shuffle, seed=loader.seed,
                                            drop_last=loader.drop_last)
        loader.shuffle = False

    def after_loss(self) -> None:
        """The training loss becomes the global batch's (the ranks' losses weighted by their batch sizes)."""
        if self.learn.training:
            n = len(self.learn.yb)
            total = dist.all_reduce(np.array([self.learn.loss_value * n, n], dtype=np.float64))
            self.learn.loss_value = float(total[0] / total[1])

    def after_backward(self) -> None:
        dist.average_gradients(self.learn.model)

    def after_epoch(self) -> None:
        """Rank 0's epoch table on every rank (None stays None)."""
        values = self.learn.epoch_values
        names = [name for name in self.learn.column_names() if name in values and name != "epoch"]
        known = np.array([0.0 if values[n] is None else 1.0 for n in names] +
                         [np.nan if values[n] is None else float(values[n]) for n in names])
        dist.broadcast(known)
        for i, name in enumerate(names):
            values[name] = float(known[len(names) + i]) if known[i] else None
