"""CPU threads: how many the CPU ops use, and the one way they use them.

The heavy CPU ops (the convolutions' products over tiles of samples and rows, batch norm over
groups of channels, max pooling over groups of samples) cut their work into blocks and run the
blocks on a pool of threads. NumPy releases the GIL inside its copies, ufunc loops and BLAS calls, so the blocks
really run at once. While they run, BLAS is held to one thread per call: one level of parallelism,
over the batch, as in PyTorch's CPU convolution (parallel over samples, a single-threaded GEMM each).
Two levels (our threads, each asking BLAS for all the cores) would oversubscribe the machine; and a
multi-threaded BLAS alone leaves the copies of im2col and col2im on one core.

The count is, first to last: ``set_num_threads(n)``, the environment variable
TINYGRAD_CV_NUM_THREADS, the cores this process may run on. Several threads of a program may call
the ops at once: they share the pool, and BLAS gets its own setting back when the last one is done.
"""
import contextlib
import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import OpenBLASController, ThreadpoolController

_num_threads = None
_pool = None
_in_worker = threading.local()
_lock = threading.Lock()      # guards the pool's creation and the BLAS limit's users
_blas = None                  # (the ThreadpoolController, its active limit, how many callers are inside)
_blas_limit = None
_blas_users = 0


def usable_cores():
    """The cores this process may run on: its CPU affinity where the system has one (Linux), else
    every core (macOS and Windows have no ``os.sched_getaffinity``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def get_num_threads():
    """The number of threads the CPU ops run on."""
    global _num_threads
    if _num_threads is None:
        env = os.environ.get("TINYGRAD_CV_NUM_THREADS")
        if env is None:
            _num_threads = usable_cores()
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
    global _pool
    items = list(items)
    threads = get_num_threads()
    if device != "cpu" or threads == 1 or len(items) < 2 or getattr(_in_worker, "active", False):
        return [fn(item) for item in items]
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="tinygrad_cv")
        pool = _pool
    with _blas_on_one_thread():
        return list(pool.map(_run_in_worker, [fn] * len(items), items))


@contextlib.contextmanager
def _blas_on_one_thread():
    """BLAS on one thread inside; the first caller in sets the limit, the last one out restores it.

    Those two may be different Python threads. threadpoolctl lets only one thread at a time set
    OpenBLAS's process-wide count (the first to try, until it lets go), so each of them takes that
    control: _lock already keeps our callers from fighting over it."""
    global _blas, _blas_limit, _blas_users
    with _lock:
        if _blas_users == 0:
            _blas = _blas or ThreadpoolController()
            OpenBLASController.clear_controlling_thread(force=True)
            _blas_limit = _blas.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _lock:
            _blas_users -= 1
            if _blas_users == 0:
                OpenBLASController.clear_controlling_thread(force=True)
                _blas_limit.restore_original_limits()
                OpenBLASController.clear_controlling_thread()


def split(n):
    """range(n) cut into as many slices as threads (fewer if n is smaller, one if n is 0), of nearly
    equal lengths."""
    parts = max(1, min(n, get_num_threads()))
    bounds = [n * k // parts for k in range(parts + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def _forget_pool_in_child():
    """A forked child (a DataLoader worker) has none of the parent's other threads: no pool threads,
    and no caller inside a parallel region that could hold the lock. It starts afresh if it needs to."""
    global _pool, _lock, _blas_users
    _pool, _lock, _blas_users = None, threading.Lock(), 0


if hasattr(os, "register_at_fork"):  # Windows has no fork, so no child can inherit the pool there
    os.register_at_fork(after_in_child=_forget_pool_in_child)
