"""The CPU threads: the count, parallel_map's contract, BLAS held to one thread inside it, and the
ops giving the same numbers on any number of threads."""
import os
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv.backend import threads


@pytest.fixture
def n_threads():
    """Set the thread count for one test, and put the previous one back."""
    previous = threads.get_num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(previous)


def blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_parallel_map_keeps_order_and_uses_several_threads(n_threads):
    n_threads(3)
    barrier = threading.Barrier(3, timeout=10)  # passes only if three items run at the same time

    def work(i):
        if i < 3:
            barrier.wait()
        return i * i, threading.get_ident()
    results = threads.parallel_map(work, range(8))
    assert [r[0] for r in results] == [i * i for i in range(8)]
    assert len({r[1] for r in results}) >= 3


def test_blas_runs_on_one_thread_inside_and_as_before_outside(n_threads):
    if not blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    n_threads(2)
    before = blas_threads()
    inside = threads.parallel_map(lambda _: blas_threads(), range(2))
    assert inside == [[1] * len(before)] * 2
    assert blas_threads() == before


def test_one_thread_a_device_or_nesting_run_on_the_calling_thread(n_threads):
    caller = threading.get_ident()
    n_threads(1)
    assert threads.parallel_map(lambda _: threading.get_ident(), range(4)) == [caller] * 4
    n_threads(2)
    assert threads.parallel_map(lambda _: threading.get_ident(), range(4), device="emu") == [caller] * 4
    inner = threads.parallel_map(lambda _: {threading.get_ident()} == set(
        threads.parallel_map(lambda _: threading.get_ident(), range(4))), range(2))
    assert inner == [True, True]


def test_an_exception_in_an_item_reaches_the_caller(n_threads):
    n_threads(2)

    def work(i):
        if i == 3:
            raise KeyError("item 3")
        return i
    with pytest.raises(KeyError, match="item 3"):
        threads.parallel_map(work, range(6))
    assert threads.parallel_map(lambda i: -i, range(3)) == [0, -1, -2]


@pytest.mark.parametrize("n, parts", [(10, 3), (2, 4), (7, 1), (1, 2), (64, 2), (0, 2)])
def test_split_covers_the_range_in_nearly_equal_slices(n, parts, n_threads):
    n_threads(parts)
    slices = threads.split(n)
    assert len(slices) == max(1, min(n, parts))
    assert [i for s in slices for i in range(n)[s]] == list(range(n))
    assert max(s.stop - s.start for s in slices) - min(s.stop - s.start for s in slices) <= 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", None, True])
def test_set_num_threads_rejects_a_bad_count(bad):
    with pytest.raises(ValueError, match="set_num_threads: n must be a positive integer"):
        tg.set_num_threads(bad)


def test_the_environment_variable_sets_the_count(monkeypatch):
    monkeypatch.setattr(threads, "_num_threads", None)
    monkeypatch.setenv("TINYGRAD_CV_NUM_THREADS", "3")
    assert tg.get_num_threads() == 3
    monkeypatch.setattr(threads, "_num_threads", None)
    monkeypatch.setenv("TINYGRAD_CV_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="TINYGRAD_CV_NUM_THREADS must be a positive integer, got 'many'"):
        tg.get_num_threads()
    monkeypatch.setattr(threads, "_num_threads", None)
    monkeypatch.delenv("TINYGRAD_CV_NUM_THREADS")
    assert tg.get_num_threads() == len(os.sched_getaffinity(0))


def test_a_forked_child_runs_its_own_pool(n_threads):
    n_threads(2)
    threads.parallel_map(abs, range(4))  # the parent's pool exists before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its pool threads were not copied, so it must make new ones
        try:
            ok = threads.parallel_map(lambda i: i + 1, range(4)) == [1, 2, 3, 4]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0
    os.close(read)


def assert_same_on_any_thread_count(run, n_threads, counts):
    """run() returns arrays; they must be identical on 1 thread and on each of ``counts``."""
    n_threads(1)
    one = run()
    for count in counts:
        n_threads(count)
        for a, b in zip(one, run()):
            np.testing.assert_array_equal(a, b)


def test_max_pool_gives_the_same_numbers_on_any_thread_count(n_threads):
    rng = np.random.default_rng(6)
    x = rng.permutation(5 * 3 * 9 * 8).reshape(5, 3, 9, 8).astype(np.float64)  # no ties
    g = rng.standard_normal((5, 3, 5, 4))

    def run():
        xt = tg.Tensor(x, requires_grad=True)
        y = F.max_pool2d(xt, 3, stride=2, padding=1)
        y.backward(tg.Tensor(g))
        return y.numpy(), xt.grad.numpy()

    assert_same_on_any_thread_count(run, n_threads, (2, 3, 5, 8))


def test_batch_norm_gives_the_same_numbers_on_any_thread_count(n_threads):
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((4, 7, 5, 3)), rng.standard_normal(7), rng.standard_normal(7)
    g = rng.standard_normal(x.shape)

    def run():
        xt, wt, bt = (tg.Tensor(a, requires_grad=True) for a in (x, w, b))
        mean, var = tg.zeros(7, dtype="float64"), tg.ones(7, dtype="float64")
        y = F.batch_norm(xt, mean, var, wt, bt, training=True)
        y.backward(tg.Tensor(g))
        return y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy(), mean.numpy(), var.numpy()

    assert_same_on_any_thread_count(run, n_threads, (2, 3, 7, 9))


def test_callers_on_several_threads_share_the_pool_and_blas_is_restored_after_the_last(n_threads):
    if not blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    n_threads(2)
    before = blas_threads()
    first_inside, second_done = threading.Event(), threading.Event()
    seen = {}

    def first():  # enters, waits until the second caller has come and gone, then leaves
        def item(i):
            if i == 0:  # holds one pool thread; the other serves the second caller
                first_inside.set()
                second_done.wait(10)
            return blas_threads()
        seen["first"] = threads.parallel_map(item, range(2))

    def second():
        first_inside.wait(10)
        seen["second"] = threads.parallel_map(lambda _: blas_threads(), range(2))
        seen["between"] = blas_threads()  # the first caller is still inside: still one thread
        second_done.set()
    callers = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(20)
    ones = [1] * len(before)
    assert seen["first"] == [ones, ones] and seen["second"] == [ones, ones]
    assert seen["between"] == ones
    assert blas_threads() == before


def test_a_caller_on_another_thread_after_the_main_one_also_gets_blas_on_one_thread(n_threads):
    """threadpoolctl gives control of OpenBLAS to the first thread that sets it; a later caller on
    another thread must still get one BLAS thread inside, and the setting back afterwards."""
    if not blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    n_threads(2)
    before = blas_threads()
    threads.parallel_map(abs, range(2))  # the main thread sets and restores first
    seen = {}
    caller = threading.Thread(target=lambda: seen.update(inside=threads.parallel_map(lambda _: blas_threads(),
                                                                                     range(2))))
    caller.start()
    caller.join(10)
    assert seen["inside"] == [[1] * len(before)] * 2
    assert blas_threads() == before


def test_without_sched_getaffinity_every_core_counts(monkeypatch):
    """macOS and Windows have no os.sched_getaffinity: the count falls back to os.cpu_count()."""
    monkeypatch.setattr(threads, "_num_threads", None)
    monkeypatch.delenv("TINYGRAD_CV_NUM_THREADS", raising=False)
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert tg.get_num_threads() == 5
    monkeypatch.setattr(threads, "_num_threads", None)
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undeterminable", as the docs allow
    assert tg.get_num_threads() == 1


def test_the_backend_imports_where_os_has_no_register_at_fork(monkeypatch):
    """Windows has no os.register_at_fork: importing the thread module must not need it."""
    import importlib.util
    monkeypatch.delattr(os, "register_at_fork")
    spec = importlib.util.spec_from_file_location("threads_without_fork", threads.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.parallel_map(lambda k: k * k, range(4)) == [0, 1, 4, 9]
