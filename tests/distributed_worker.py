"""Started as N ranks by tests/test_distributed.py (``mpiexec -n 2 python distributed_worker.py SCENARIO OUT``).

Each scenario computes on every rank and writes that rank's results to OUT/SCENARIO_rank<r>.npz; the
test process compares them with references it computes itself. No assertion lives here.
"""
import os
import sys
from functools import partial

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import distributed as dist
from tinygrad_cv import nn, optim

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from distributed_fixtures import learner_data, make_mlp, sgd_batch, small_cnn, sync_bn_inputs  # noqa: E402


def collectives():
    r = dist.rank()
    res = {"rank": r, "size": dist.world_size(), "initialized": dist.is_initialized()}
    base = np.arange(6, dtype=np.float64).reshape(2, 3)
    for op in ("sum", "mean", "max", "min"):
        res[op] = dist.all_reduce(base + 10 * r, op)
    t = tg.Tensor(np.full(3, r + 1.0, dtype=np.float32))
    res["tensor_mean"] = dist.all_reduce(t, "mean").numpy()
    res["int_sum"] = dist.all_reduce(np.array([r + 1, 2 * r], dtype=np.int64))
    whole = np.arange(12.0).reshape(3, 4) * (r + 1)
    dist.all_reduce(whole[:, ::2])  # a strided view, reduced in place of the caller's array
    res["strided"] = whole
    res["bcast"] = dist.broadcast(np.full(4, float(r)), root=1)
    res["scalar"] = dist.all_reduce(np.array(r + 1.0))
    res["half_mean"] = dist.all_reduce(np.full(2, 40000 + 64 * r, dtype=np.float16), "mean")  # sum > fp16 max
    return res


def parameters():
    r = dist.rank()
    tg.manual_seed(r)  # a different initialisation on every rank
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm2d(5))
    model[1].running_mean.data[:] = r + 1.0
    res = {"before": _flat(model)}
    dist.broadcast_parameters(model)
    res["after"] = _flat(model)
    caller = np.full(3, r + 10.0)
    holder = nn.Sequential()
    holder.p = nn.Parameter(caller)  # shares the caller's array
    dist.broadcast_parameters(holder)
    res["caller"], res["holder"] = caller, holder.p.numpy()
    wrong = nn.Sequential(nn.Linear(4, 5 + r))
    try:
        dist.broadcast_parameters(wrong)
        res["mismatch"] = "no error"
    except ValueError as error:
        res["mismatch"] = str(error)
    return res


def gradients():
    r = dist.rank()
    model = make_mlp(np.float64)
    for i, p in enumerate(model.parameters()):
        p.grad = tg.Tensor(np.random.default_rng(i).standard_normal(p.shape) * (r + 1))
    dist.average_gradients(model, bucket_cap_mb=100 / 2 ** 20)  # 100-byte buckets: several messages
    res = {f"grad{i}": p.grad.numpy() for i, p in enumerate(model.parameters())}
    half = nn.Linear(3, 2).to(dtype=np.float16)
    for p in half.parameters():
        p.grad = tg.Tensor(np.full(p.shape, 50000.0, dtype=np.float16))  # their fp16 sum would overflow
    dist.average_gradients(half)
    res["half_grad"] = half.weight.grad.numpy()
    for p in model.parameters():
        p.grad = tg.Tensor(np.ones(p.shape))
    model.w2.grad.data[0, 0] = np.inf if r == 1 else 1.0  # an overflow on rank 1 only
    dist.average_gradients(model)
    res["finite_after_overflow"] = all(bool(np.isfinite(p.grad.numpy()).all()) for p in model.parameters())
    if r == 1:
        model.b1.grad = None
    try:
        dist.average_gradients(model)
        res["missing"] = "no error"
    except ValueError as error:
        res["missing"] = str(error)
    return res


def sgd():
    """Three SGD-with-momentum steps on this rank's half of the batch, gradients averaged."""
    r, n = dist.rank(), dist.world_size()
    model = make_mlp(np.float64)
    dist.broadcast_parameters(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        x, y = sgd_batch(step)
        share = slice(r * len(x) // n, (r + 1) * len(x) // n)
        F.mse_loss(model(tg.Tensor(x[share])), tg.Tensor(y[share])).backward()
        dist.average_gradients(model)
        opt.step()
        opt.zero_grad()
    return {name: p.numpy() for name, p in model.named_parameters()}


def sync_bn():
    r, n = dist.rank(), dist.world_size()
    x, g, weight, bias = sync_bn_inputs()
    share = slice(r * len(x) // n, (r + 1) * len(x) // n)
    bn = nn.SyncBatchNorm(3).to(dtype=np.float64)
    bn.weight.data[:], bn.bias.data[:] = weight, bias
    xr = tg.Tensor(x[share], requires_grad=True)
    y = bn(xr)
    (y * tg.Tensor(g[share])).sum().backward()
    return {"y": y.numpy(), "dx": xr.grad.numpy(), "dw": bn.weight.grad.numpy(), "db": bn.bias.grad.numpy(),
            "running_mean": bn.running_mean.numpy(), "running_var": bn.running_var.numpy()}


def learner():
    """Two epochs of a small CNN with SyncBatchNorm; batch 4 per rank."""
    from tinygrad_cv.train import Learner
    dls = learner_data(batch_size=4, reference=False)
    learn = Learner(dls, small_cnn(), F.binary_cross_entropy_with_logits,
                    opt_func=partial(optim.SGD, momentum=0.9), lr=0.05, progress=False, path=sys.argv[2])
    learn.fit(2)
    rec = learn.recorder
    figure = os.path.join(sys.argv[2], "losses.png")
    rec.plot_loss(fname=figure)
    return {"losses": np.array(rec.losses), "train_loss": np.array([v["train_loss"] for v in rec.values]),
            "valid_loss": np.array([v["valid_loss"] for v in rec.values]), "params": _flat(learn.model),
            "figure": figure, "n_batches": len(dls.train)}


def fp16():
    """Mixed precision, with an overflow put into rank 1's gradients at the first step only."""
    from tinygrad_cv.train import Callback, Learner

    class OverflowOnRank1(Callback):
        order = 11  # after backward, before DataParallel (12) averages the gradients

        def after_backward(self):
            if dist.rank() == 1 and self.learn.train_iter == 0:
                next(self.learn.model.parameters()).grad.data[...] = np.inf

    learn = Learner(learner_data(batch_size=4, reference=False), small_cnn(), F.binary_cross_entropy_with_logits,
                    opt_func=partial(optim.SGD, momentum=0.9), lr=0.05, progress=False, cbs=[OverflowOnRank1()])
    learn.to_fp16()
    learn.fit(1)
    return {"skipped": learn.mixed_precision.scaler.skipped_steps, "scale": learn.loss_scale,
            "params": _flat(learn.model)}


def crash():
    if dist.rank() == 1:
        raise RuntimeError("boom on purpose")
    dist.barrier()  # rank 0 waits here for a rank that will never come


def _flat(model):
    return np.concatenate([t.numpy().ravel().astype(np.float64) for _, t in dist._state(model)])


if __name__ == "__main__":
    scenario, out = sys.argv[1], sys.argv[2]
    dist.init()
    result = globals()[scenario]()
    if result is not None:
        np.savez(f"{out}/{scenario}_rank{dist.rank()}.npz", **{k: np.asarray(v) for k, v in result.items()})
