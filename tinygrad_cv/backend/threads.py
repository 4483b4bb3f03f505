"""CPU threads: how many the CPU ops use, and the one way they use them.

The heavy CPU ops (the convolutions' products) cut the batch into blocks and run the blocks on a
pool of threads. NumPy releases the GIL inside its copies, ufunc loops and BLAS calls, so the blocks
really run at once. While they run, BLAS is held to one thread per call: one level of parallelism,
over the batch, as in PyTorch's CPU convolution (parallel over samples, a single-threaded GEMM each).
Two levels (our threads, each asking BLAS for all the cores) would oversubscribe the machine; and a
multi-threaded BLAS alone leaves the copies of im2col and col2im on one core.

The count is, first to last: ``set_num_threads(n)``, the environment variable
TINYGRAD_CV_NUM_THREADS, the cores this process may run on.
"""
import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import ThreadpoolController

_num_threads = None
_pool = None
_blas = None
_in_worker = threading.local()


def get_num_threads():
    """The number of threads the CPU ops run on."""
    global _num_threads
    if _num_threads is None:
        env = os.environ.get("TINYGRAD_CV_NUM_THREADS")
        if env is None:
            _num_threads = len(os.sched_getaffinity(0))
        elif env.strip().isdigit() and int(env) >= 1:
            _num_threads = int(env)
        else:
            raise ValueError(f"TINYGRAD_CV_NUM_THREADS must be a positive integer, got {env!r}")
    return _num_threads


def set_num_threads(n):
    """Run the CPU ops on ``n`` threads (1: everything on the calling thread, BLAS as configured)."""
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    if _pool is not None and n != _num_threads:
        _pool.shutdown()
        _pool = None
    _num_threads = int(n)


def _run_in_worker(fn, item):
    _in_worker.active = True
    try:
        return fn(item)
    finally:
        _in_worker.active = False


def parallel_map(fn, items, device="cpu"):
    """[fn(item) for item in items], the items spread over ``get_num_threads()`` threads with BLAS on
    one thread each. Runs in order on the calling thread for a device other than 'cpu' (a GPU runs its
    own kernels in parallel; the emulator runs one at a time), when there is one thread or one item,
    or when called from inside another parallel_map (no nesting, so no deadlock)."""
    global _pool, _blas
    items = list(items)
    threads = get_num_threads()
    if device != "cpu" or threads == 1 or len(items) < 2 or getattr(_in_worker, "active", False):
        return [fn(item) for item in items]
    if _pool is None:
        _pool = ThreadPoolExecutor(threads, thread_name_prefix="tinygrad_cv")
    if _blas is None:
        _blas = ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        return list(_pool.map(_run_in_worker, [fn] * len(items), items))


def split(n):
    """range(n) cut into as many slices as threads (fewer if n is smaller), of nearly equal lengths."""
    parts = min(n, get_num_threads())
    bounds = [n * k // parts for k in range(parts + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def _forget_pool_in_child():
    """A forked child (a DataLoader worker) has no pool threads: it starts a pool of its own if needed."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool_in_child)
