"""tinygrad_cv.distributed, DistributedSampler, SyncBatchNorm and the data-parallel Learner.

The single-process tests need no MPI. The multi-rank tests start ``mpiexec -n 2`` (shared memory and
loopback only, see dist.mpiexec_command) on tests/distributed_worker.py, which writes each rank's results;
the comparisons with independent references happen here. They skip, counted, when no MPI is installed.
"""
import functools
import math
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import distributed as dist
from tinygrad_cv import nn, optim
from tinygrad_cv.data import DataLoader, DistributedSampler
from tinygrad_cv.data.sampler import torch_randperm
from tinygrad_cv.nn.sync_batchnorm import sync_batch_norm

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from distributed_fixtures import learner_data, make_mlp, sgd_batch, small_cnn, sync_bn_inputs  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


# ---------------------------------------------------------------------------------------- a world of one
def test_plain_process_is_a_world_of_one():
    assert not dist.under_launcher({"PATH": "/bin"})
    assert dist.under_launcher({"OMPI_COMM_WORLD_SIZE": "2"}) and dist.under_launcher({"PMI_SIZE": "2"})
    assert (dist.rank(), dist.world_size()) == (0, 1) and dist.is_initialized()
    x = np.arange(4.0)
    assert dist.all_reduce(x, "mean") is x and np.array_equal(x, np.arange(4.0))
    t = tg.Tensor(np.ones(3))
    assert dist.broadcast(t) is t
    dist.barrier()


def test_collectives_reject_bad_arguments():
    with pytest.raises(ValueError, match="all_reduce: op must be one of"):
        dist.all_reduce(np.ones(2), "prod")
    with pytest.raises(TypeError, match="floating-point"):
        dist.all_reduce(np.ones(2, dtype=np.int64), "mean")
    with pytest.raises(TypeError, match="Tensor or a NumPy/CuPy array"):
        dist.all_reduce([1.0, 2.0])
    with pytest.raises(ValueError, match="broadcast: root must be a rank in 0 .. 0, got 1"):
        dist.broadcast(np.ones(2), root=1)
    with pytest.raises(ValueError, match="bucket_cap_mb must be > 0"):
        dist.average_gradients(nn.Linear(2, 2), bucket_cap_mb=0)
    with pytest.raises(ValueError, match="mpiexec_command: n must be a positive int"):
        dist.mpiexec_command(0, ["python"])


def test_gradient_buckets_respect_the_cap_device_and_dtype():
    f32, f64 = np.float32, np.float64
    grads = [np.zeros(10, f32), np.zeros(10, f32), np.zeros(30, f32), np.zeros(5, f64), np.zeros(2, f32)]
    # 40 + 40 bytes fit a 100-byte bucket, 120 bytes go alone, a new dtype starts a new bucket
    assert dist.gradient_buckets(grads, 100) == [[0, 1], [2], [3], [4]]
    assert dist.gradient_buckets(grads, 10 ** 6) == [[0, 1, 2], [3], [4]]


def test_init_under_a_launcher_without_mpi4py_says_what_to_install():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from tinygrad_cv import distributed as dist\n"
            "try:\n    dist.init()\nexcept ImportError as e:\n    print(e)\n")
    env = {**os.environ, "PMI_SIZE": "2", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env).stdout
    assert "PMI_SIZE=2" in out and "pip install 'tinygrad_cv[distributed]'" in out


class FakeNccl:
    """Records what NcclComm asks of cupy.cuda.nccl."""
    NCCL_SUM, NCCL_MAX, NCCL_MIN = 0, 2, 3
    NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_INT64 = 0, 1, 2, 4
    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 6, 7, 8

    def __init__(self):
        self.calls = []

    def get_unique_id(self):
        return tuple(range(-64, 64))

    def NcclCommunicator(self, size, unique_id, rank):
        self.calls.append(("communicator", size, unique_id, rank))
        return self

    def allReduce(self, send, recv, count, dtype, op, stream):
        self.calls.append(("allReduce", send, recv, count, dtype, op, stream))

    def bcast(self, ptr, count, dtype, root, stream):
        self.calls.append(("bcast", ptr, count, dtype, root, stream))


class FakeHost:
    """An MPI host communicator on which rank 0's broadcast array is ``sent``."""

    def __init__(self, sent):
        self.sent = sent

    def broadcast(self, array, root):
        array[...] = self.sent


def _fake_cupy_array(ptr, size, dtype):
    return types.SimpleNamespace(data=types.SimpleNamespace(ptr=ptr), size=size, dtype=np.dtype(dtype))


def test_nccl_communicator_gets_rank_zeros_unique_id_and_raw_pointers():
    nccl, stream = FakeNccl(), types.SimpleNamespace(ptr=77)
    uid = np.arange(128) - 64
    comm = dist.NcclComm(FakeHost(uid), rank=1, size=2, nccl=nccl, current_stream=lambda: stream)
    assert nccl.calls[0] == ("communicator", 2, tuple(range(-64, 64)), 1)
    comm.all_reduce(_fake_cupy_array(4096, 6, np.float32), "max")
    comm.broadcast(_fake_cupy_array(8192, 3, np.int64), 0)
    assert nccl.calls[1:] == [("allReduce", 4096, 4096, 6, FakeNccl.NCCL_FLOAT32, FakeNccl.NCCL_MAX, 77),
                              ("bcast", 8192, 3, FakeNccl.NCCL_INT64, 0, 77)]
    with pytest.raises(TypeError, match="NCCL cannot reduce complex128"):
        comm.all_reduce(_fake_cupy_array(1, 1, np.complex128), "sum")


# ---------------------------------------------------------------------------------------- the sampler
def _hand_sampler(n, replicas, rank, order, drop_last):
    """PyTorch's rule, written out: pad by wrapping around (or cut), then every replicas-th from rank."""
    if drop_last:
        total = (n // replicas) * replicas
        kept = order[:total]
    else:
        total = math.ceil(n / replicas) * replicas
        kept = [order[i % n] for i in range(total)]
    return kept[rank::replicas]


@pytest.mark.parametrize("n,replicas", [(10, 3), (10, 2), (7, 4), (2, 5), (12, 4)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_without_shuffle_matches_a_hand_computation(n, replicas, drop_last):
    shares = [list(DistributedSampler(list(range(n)), replicas, r, shuffle=False, drop_last=drop_last))
              for r in range(replicas)]
    for r, share in enumerate(shares):
        assert share == _hand_sampler(n, replicas, r, list(range(n)), drop_last)
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == len(DistributedSampler(range(n), replicas, 0))\
        or drop_last
    if not drop_last:
        assert sorted(set(i for s in shares for i in s)) == list(range(n))  # every sample is seen


def test_torch_randperm_reproduction_is_a_fisher_yates_on_mt19937():
    # an independent check: NumPy's legacy RandomState draws the same raw 32-bit words as torch's generator
    rng = np.random.RandomState(3)
    words = rng.randint(0, 2 ** 32, size=4, dtype=np.uint32).tolist()
    order = list(range(5))
    for i, u in enumerate(words):
        j = i + u % (5 - i)
        order[i], order[j] = order[j], order[i]
    assert torch_randperm(5, 3) == order
    perm = torch_randperm(1000, 42)
    assert sorted(perm) == list(range(1000)) and perm != list(range(1000))


def test_sampler_shuffle_is_a_partition_that_changes_with_the_epoch():
    samplers = [DistributedSampler(range(11), 3, r, shuffle=True, seed=5) for r in range(3)]
    first = [list(s) for s in samplers]
    order = torch_randperm(11, 5)
    assert first == [_hand_sampler(11, 3, r, order, False) for r in range(3)]
    for s in samplers:
        s.set_epoch(1)
    assert [list(s) for s in samplers] == [_hand_sampler(11, 3, r, torch_randperm(11, 6), False) for r in range(3)]
    assert [list(s) for s in samplers] != first


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_equals_torchs(shuffle, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler
    for n, replicas, seed in [(10, 3, 0), (17, 4, 7), (3, 5, 11), (100, 2, 2 ** 33 + 1)]:
        for rank in range(replicas):
            ours = DistributedSampler(range(n), replicas, rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
            theirs = TorchSampler(range(n), replicas, rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
            for epoch in (0, 3):
                ours.set_epoch(epoch)
                theirs.set_epoch(epoch)
                assert list(ours) == list(theirs) and len(ours) == len(theirs)
    assert torch_randperm(500, 9) == torch.randperm(500, generator=torch.Generator().manual_seed(9)).tolist()


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank must be in 0 .. 1, got 2"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be an integer >= 1"):
        DistributedSampler(range(4), num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        DistributedSampler(range(4), 1, 0, seed=-1)
    assert (DistributedSampler(range(4)).num_replicas, DistributedSampler(range(4)).rank) == (1, 0)


def test_data_loader_batches_follow_its_sampler_and_set_its_epoch():
    data = [{"image": np.full((2, 2, 1), i, np.uint8), "target": np.int64(i)} for i in range(10)]
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=3)
    loader = DataLoader(data, batch_size=2, sampler=sampler)
    assert len(loader) == 3
    for epoch in range(2):
        targets = np.concatenate([batch["target"] for batch in loader])
        assert targets.tolist() == _hand_sampler(10, 2, 1, torch_randperm(10, 3 + epoch), False)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(data, sampler=sampler, shuffle=True)


# ---------------------------------------------------------------------------------------- SyncBatchNorm
def test_sync_batch_norm_in_a_world_of_one_is_batch_norm():
    x = tg.Tensor(np.random.default_rng(0).standard_normal((6, 3, 4, 4)) * 3 + 2, requires_grad=True)
    plain, sync = nn.BatchNorm2d(3, momentum=None).to(dtype=np.float64), nn.SyncBatchNorm(3, momentum=None)
    sync.to(dtype=np.float64)
    g = tg.Tensor(np.random.default_rng(1).standard_normal(x.shape))
    for _ in range(2):
        grads = []
        for module in (plain, sync):
            x.grad = None
            (module(x) * g).sum().backward()
            grads.append(x.grad.numpy())
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sync.running_var.numpy(), plain.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(sync.weight.grad.numpy(), plain.weight.grad.numpy(), rtol=1e-10)
    sync.eval()
    plain.eval()
    np.testing.assert_allclose(sync(x).numpy(), plain(x).numpy(), rtol=1e-12)


def test_sync_batch_norm_gradcheck_and_half():
    rng = np.random.default_rng(2)
    x, w, b = (tg.Tensor(rng.standard_normal(s), requires_grad=True) for s in [(5, 3, 2), (3,), (3,)])
    assert tg.gradcheck(lambda x, w, b: sync_batch_norm(x, None, None, w, b, training=True), [x, w, b])
    y = nn.SyncBatchNorm(3)(tg.randn(4, 3, 2, 2).half())
    assert y.dtype == np.float16
    with pytest.raises(ValueError, match="SyncBatchNorm: expected an input \\(N, 3, ...\\)"):
        nn.SyncBatchNorm(3)(tg.randn(4, 2, 2))
    with pytest.raises(ValueError, match="process_group must be None"):
        nn.SyncBatchNorm(3, process_group="g")


def test_convert_sync_batchnorm_keeps_parameters_order_and_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(4)))
    model.eval()
    weight = model[1].weight
    converted = nn.convert_sync_batchnorm(model)
    assert converted is model and isinstance(model[1], nn.SyncBatchNorm) and model[1].weight is weight
    assert isinstance(model[3][0], nn.SyncBatchNorm) and not model[1].training
    assert [type(m).__name__ for m in model] == ["Conv2d", "SyncBatchNorm", "ReLU", "Sequential"]
    assert isinstance(nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(2)), nn.SyncBatchNorm)


# ---------------------------------------------------------------------------------------- two ranks
def _mpi_missing():
    try:
        import mpi4py  # noqa: F401
        dist.mpiexec_command(2, ["python"])
    except (ImportError, FileNotFoundError) as error:
        return str(error)
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None,
                               reason=f"no MPI to start 2 ranks: {_mpi_missing()}; "
                                      f"pip install 'tinygrad_cv[distributed]'")


def _launch(scenario, out, timeout=120):
    argv, extra = dist.mpiexec_command(2, [sys.executable, str(HERE / "distributed_worker.py"), scenario, str(out)])
    env = {**os.environ, **extra, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
           "TINYGRAD_CV_NUM_THREADS": "1"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _ranks(scenario, tmp):
    result = _launch(scenario, tmp)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return [dict(np.load(f"{tmp}/{scenario}_rank{r}.npz", allow_pickle=False)) for r in range(2)]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ranks"))


@needs_mpi
def test_all_reduce_and_broadcast_on_two_ranks(out):
    ranks = _ranks("collectives", out)
    base = np.arange(6, dtype=np.float64).reshape(2, 3)
    for r, res in enumerate(ranks):
        assert (int(res["rank"]), int(res["size"]), bool(res["initialized"])) == (r, 2, True)
        np.testing.assert_array_equal(res["sum"], 2 * base + 10)
        np.testing.assert_array_equal(res["mean"], base + 5)
        np.testing.assert_array_equal(res["max"], base + 10)
        np.testing.assert_array_equal(res["min"], base)
        np.testing.assert_array_equal(res["tensor_mean"], np.full(3, 1.5, np.float32))
        assert res["int_sum"].dtype == np.int64 and res["int_sum"].tolist() == [3, 2]
        strided = np.arange(12.0).reshape(3, 4) * (r + 1)
        strided[:, ::2] = np.arange(12.0).reshape(3, 4)[:, ::2] * 3
        np.testing.assert_array_equal(res["strided"], strided)
        np.testing.assert_array_equal(res["bcast"], np.ones(4))
        assert res["scalar"].shape == () and float(res["scalar"]) == 3.0
        assert res["half_mean"].dtype == np.float16 and res["half_mean"].tolist() == [40032.0] * 2


@needs_mpi
def test_broadcast_parameters_on_two_ranks(out):
    ranks = _ranks("parameters", out)
    assert not np.array_equal(ranks[0]["before"], ranks[1]["before"])
    for res in ranks:
        np.testing.assert_array_equal(res["after"], ranks[0]["before"])  # parameters and buffers
        np.testing.assert_array_equal(res["holder"], np.full(3, 10.0))
        assert "broadcast_parameters: the model on rank(s) [1] differs from rank 0's" in str(res["mismatch"])
    np.testing.assert_array_equal(ranks[1]["caller"], np.full(3, 11.0))  # the caller's array was not written
    assert "rank 1 has '0.weight (6, 4) float32' where rank 0 has '0.weight (5, 4) float32'" in str(
        ranks[1]["mismatch"])


@needs_mpi
def test_average_gradients_on_two_ranks(out):
    ranks = _ranks("gradients", out)
    model = make_mlp(np.float64)
    for i, p in enumerate(model.parameters()):
        expected = np.random.default_rng(i).standard_normal(p.shape) * 1.5  # the mean of 1x and 2x
        for res in ranks:
            np.testing.assert_allclose(res[f"grad{i}"], expected, rtol=1e-15)
    for res in ranks:
        assert res["half_grad"].dtype == np.float16 and np.all(res["half_grad"] == np.float16(50000.0))
        assert not bool(res["finite_after_overflow"])  # rank 1's inf reaches rank 0: both skip the step
        assert "parameters ['b1'] have a gradient on some ranks but not on others" in str(res["missing"])


@needs_mpi
def test_two_ranks_take_the_steps_of_one_process_with_the_combined_batch(out):
    ranks = _ranks("sgd", out)
    model = make_mlp(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        x, y = sgd_batch(step)
        F.mse_loss(model(tg.Tensor(x)), tg.Tensor(y)).backward()
        opt.step()
        opt.zero_grad()
    for name, p in model.named_parameters():
        assert not np.allclose(p.numpy(), getattr(make_mlp(np.float64), name).numpy())  # it did move
        for res in ranks:
            np.testing.assert_allclose(res[name], p.numpy(), rtol=1e-10)


@needs_mpi
def test_sync_batch_norm_on_two_ranks_is_batch_norm_of_the_whole_batch(out):
    ranks = _ranks("sync_bn", out)
    x, g, weight, bias = sync_bn_inputs()
    bn = nn.BatchNorm2d(3).to(dtype=np.float64)
    bn.weight.data[:], bn.bias.data[:] = weight, bias
    xt = tg.Tensor(x, requires_grad=True)
    y = bn(xt)
    (y * tg.Tensor(g)).sum().backward()
    for r, res in enumerate(ranks):
        share = slice(2 * r, 2 * r + 2)
        np.testing.assert_allclose(res["y"], y.numpy()[share], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res["dx"], xt.grad.numpy()[share], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(res["running_mean"], bn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(res["running_var"], bn.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ranks[0]["dw"] + ranks[1]["dw"], bn.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ranks[0]["db"] + ranks[1]["db"], bn.bias.grad.numpy(), rtol=1e-10)


@needs_mpi
def test_learner_on_two_ranks_matches_one_process_with_the_doubled_batch(out):
    from tinygrad_cv.train import Learner
    ranks = _ranks("learner", out)
    learn = Learner(learner_data(batch_size=8, reference=True), small_cnn(), F.binary_cross_entropy_with_logits,
                    opt_func=functools.partial(optim.SGD, momentum=0.9), lr=0.05, progress=False)
    learn.fit(2)
    losses = np.array(learn.recorder.losses)
    assert int(ranks[0]["n_batches"]) == len(losses) // 2 == 6  # 24 samples per rank, 4 per batch
    for res in ranks:
        # float32 model: sums over 4 + 4 samples against 8 differ in their last bits
        np.testing.assert_allclose(res["losses"][:6], losses[:6], rtol=1e-6)  # the first epoch's batches
        np.testing.assert_allclose(res["losses"], losses, rtol=1e-6)
        np.testing.assert_allclose(res["train_loss"], [v["train_loss"] for v in learn.recorder.values], rtol=1e-6)
        np.testing.assert_allclose(res["valid_loss"], [v["valid_loss"] for v in learn.recorder.values], rtol=1e-6)
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])  # the copies never drift apart
    figure = pathlib.Path(str(ranks[0]["figure"]))
    assert figure.exists() and figure.stat().st_size > 1000  # rank 0 wrote it (rank 1 did not try)


@needs_mpi
def test_mixed_precision_ranks_agree_to_skip_an_overflowing_step(out):
    ranks = _ranks("fp16", out)
    for res in ranks:
        assert int(res["skipped"]) == 1 and float(res["scale"]) == 2.0 ** 15  # rank 0 skipped rank 1's overflow
    assert np.all(np.isfinite(ranks[0]["params"]))
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])


@needs_mpi
def test_a_rank_that_raises_aborts_every_rank(tmp_path):
    result = _launch("crash", tmp_path, timeout=60)
    assert result.returncode != 0
    assert "rank 1 of 2 raised RuntimeError: boom on purpose; aborting all ranks" in result.stderr
