"""SyncBatchNorm: batch normalisation whose batch statistics are those of the whole global batch (all ranks).

With data parallelism each rank sees only its B samples, so plain batch norm normalises with per-rank
statistics (and keeps per-rank running statistics). SyncBatchNorm reduces the per-channel sums over the
ranks, so N ranks with batch B normalise exactly as one process with batch N*B.
"""
from __future__ import annotations

from .. import distributed as dist
from .. import functional as F
from ..autograd import Function
from ..backend import acc_dtype
from ..tensor import Tensor
from .layers import BatchNorm2d
from .module import Module


def global_batch_stats(xp, x):
    """(mean, biased var, M) per channel of x (N, C, *) over every rank's values, in float32 for float16:
    the sums of x and the counts all-reduced first (as float64), then those of (x - mean)^2 (two passes, no
    cancellation)."""
    acc = acc_dtype(x.dtype)
    xv = x.reshape(x.shape[0], x.shape[1], -1).astype(acc, copy=False)
    channels = x.shape[1]
    local = xp.concatenate([xv.sum(axis=(0, 2)).astype(xp.float64), xp.full(1, xv.shape[0] * xv.shape[2], xp.float64)])
    sums = dist.all_reduce(local)  # float64: the count stays exact and the sums lose nothing in transit
    count = int(sums[channels])
    mean = (sums[:channels] / count).astype(acc)
    centred = xv - mean[:, None]
    var = dist.all_reduce((centred * centred).sum(axis=(0, 2))) / acc.type(count)
    return mean, var, count


class SyncBatchNormFunction(Function):
    """y = xhat * w + b, xhat = (x - mean) * invstd, with the global batch's per-channel mean and invstd =
    1 / sqrt(var + eps) (see global_batch_stats); M values per channel over all ranks.

    Rank r's loss L_r gives it g_r = dL_r/dy_r; x_r moves every rank's output through mean and var, so the
    gradient of the sum of the ranks' losses is, with the two sums over every rank (all-reduced):
        dx_r = w * invstd * (g_r - sum(g)/M - xhat_r * sum(g * xhat)/M)
    and the weight's gradients are this rank's share, dw = sum_local(g * xhat), db = sum_local(g), which the
    gradient averaging then combines as it does every other parameter's. float16 inputs are computed in
    float32 and returned as float16.
    """
    def forward(ctx, x, w, b, *, mean, invstd, count):
        acc = mean.dtype
        xhat = (x.reshape(x.shape[0], x.shape[1], -1).astype(acc) - mean[:, None]) * invstd[:, None]
        ctx.save(xhat, w.astype(acc) * invstd)
        ctx.count, ctx.shape, ctx.dtypes = count, x.shape, (x.dtype, w.dtype, b.dtype)
        return (xhat * w.astype(acc)[:, None] + b.astype(acc)[:, None]).astype(x.dtype).reshape(x.shape)

    def backward(ctx, g):
        xhat, scale = ctx.saved
        xp, need, channels = ctx.xp, ctx.needs_input_grad, xhat.shape[1]
        gv = g.reshape(xhat.shape).astype(xhat.dtype)
        db, dw = gv.sum(axis=(0, 2)), (gv * xhat).sum(axis=(0, 2))
        dx = None
        if need[0]:
            sums = dist.all_reduce(xp.concatenate([db, dw])) / xhat.dtype.type(ctx.count)
            dx = scale[:, None] * (gv - sums[:channels, None] - xhat * sums[channels:, None])
            dx = dx.astype(ctx.dtypes[0]).reshape(ctx.shape)
        return dx, (dw.astype(ctx.dtypes[1]) if need[1] else None), (db.astype(ctx.dtypes[2]) if need[2] else None)


class SyncBatchNorm(BatchNorm2d):
    """Batch normalisation over axis 1 of (N, C, *) inputs whose training statistics are the global batch's
    (every rank's), as ``torch.nn.SyncBatchNorm``. The running statistics fold in the global mean and the
    unbiased global variance (M / (M - 1) times the biased), so they stay equal on every rank; evaluation
    uses them. In a world of one it computes what BatchNorm2d computes. ``process_group`` must be None
    (tinygrad_cv has one world)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group: None = None) -> None:
        if process_group is not None:
            raise ValueError(f"SyncBatchNorm: process_group must be None (tinygrad_cv has one world of ranks), "
                             f"got {process_group!r}")
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected an input (N, {self.num_features}, ...), got shape "
                             f"{x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1  # type: ignore[union-attr]  # a buffer with track_running_stats
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())  # type: ignore[union-attr]
        keep = not self.training or self.track_running_stats
        return sync_batch_norm(x, self.running_mean if keep else None, self.running_var if keep else None,
                               self.weight, self.bias, self.training or not self.track_running_stats, factor,
                               self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: None = None) -> Module:
        """``module`` with every BatchNorm2d inside it replaced by a SyncBatchNorm holding the same parameters,
        buffers and mode (in place for the children; the module itself is returned, or its replacement
        when it is a batch norm), as ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``."""
        if process_group is not None:
            raise ValueError(f"convert_sync_batchnorm: process_group must be None, got {process_group!r}")
        if isinstance(module, BatchNorm2d) and not isinstance(module, SyncBatchNorm):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                setattr(sync, name, getattr(module, name))
            return sync.train(module.training)
        for name, child in list(module._modules.items()):
            if child is not None:
                converted = cls.convert_sync_batchnorm(child)
                module._modules[name] = converted  # in place: the children keep their order
                object.__setattr__(module, name, converted)
        return module


def sync_batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                    weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
                    momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """``F.batch_norm`` with, in training, the statistics of the global batch (every rank's input; see
    global_batch_stats); the running statistics, if given, fold in the global mean and unbiased variance.
    Evaluation is F.batch_norm's."""
    if not training:
        return F.batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    if not isinstance(input, Tensor) or input.ndim < 2:
        raise ValueError(f"sync_batch_norm: input must be a Tensor of shape (N, C, ...), got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    xp, channels = input.xp, input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and (not isinstance(t, Tensor) or t.shape != (channels,)):
            raise ValueError(f"sync_batch_norm: {name} must be a Tensor of shape ({channels},) for an input of "
                             f"shape {input.shape}, got {getattr(t, 'shape', type(t).__name__)}")
    mean, var, count = global_batch_stats(xp, input.data)
    if count <= 1:
        raise ValueError(f"sync_batch_norm: expected more than 1 value per channel over all ranks when "
                         f"training, got input shape {input.shape} on each of {dist.world_size()} rank(s)")
    if running_mean is not None:
        _fold(running_mean, mean, momentum)
    if running_var is not None:
        _fold(running_var, var * var.dtype.type(count / (count - 1)), momentum)
    invstd = 1 / xp.sqrt(var + var.dtype.type(eps))
    weight = weight if weight is not None else Tensor(xp.ones(channels, dtype=input.dtype), device=input.device)
    bias = bias if bias is not None else Tensor(xp.zeros(channels, dtype=input.dtype), device=input.device)
    return SyncBatchNormFunction.apply(input, weight, bias, mean=mean, invstd=invstd, count=count)


def _fold(running, batch_value, factor):
    """running <- (1 - factor) * running + factor * batch_value, in place of running.data."""
    data = running.data
    data *= data.dtype.type(1 - factor)
    data += (factor * batch_value).astype(data.dtype)


def convert_sync_batchnorm(module: Module) -> Module:
    """``SyncBatchNorm.convert_sync_batchnorm(module)``."""
    return SyncBatchNorm.convert_sync_batchnorm(module)
