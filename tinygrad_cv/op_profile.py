"""Where the time goes: a per-op profile of forward and backward, time and work per op.

    with OpProfile() as prof:
        loss = loss_fn(model(x), y); loss.backward()
    print(prof.table())

Inside the block, ``Function.apply`` is replaced by a timed copy of itself, and every graph node it
creates gets a timed ``backward``; on leaving, the original comes back. Outside a block nothing is
patched, so profiling costs nothing when it is off. Times are wall-clock and exclusive: an op that
applies other ops inside its forward is charged only for its own part. Work per call:

    GEMM-shaped ops (Conv2d, ConvTranspose2d, MatMul): the multiply-adds, 2 FLOPs each;
        forward  Conv2d 2 * numel(out) * C_in/groups * kh * kw, ConvTranspose2d 2 * numel(x) * prod(w.shape[1:]),
                 MatMul 2 * numel(out) * k;
        backward the same again for each of the input and weight gradients asked for.
    every other op: a nominal one FLOP per output element (they are memory-bound: read their bytes).
    bytes: the arrays read and written (inputs and output forward; upstream gradient, saved arrays
        and input gradients backward), which places each op on a roofline (FLOPs / bytes).
"""
import time
from collections import defaultdict

import numpy as np

from .autograd import Function

_GEMM_OPS = ("Conv2d", "ConvTranspose2d", "MatMul")


def _nbytes(arrays):
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray) or hasattr(a, "nbytes"))


def _forward_flops(name, arrays, out):
    """FLOPs of one forward call of op ``name`` on ``arrays`` giving ``out`` (see the module docstring)."""
    if name == "Conv2d":
        return 2 * out.size * int(np.prod(arrays[1].shape[1:]))
    if name == "ConvTranspose2d":
        return 2 * arrays[0].size * int(np.prod(arrays[1].shape[1:]))
    if name == "MatMul":
        return 2 * out.size * arrays[0].shape[-1]
    return out.size


def _backward_flops(name, forward_flops, needs_input_grad, out_size):
    if name in _GEMM_OPS:
        return forward_flops * sum(needs_input_grad[:2])
    return out_size


class OpProfile:
    """A context manager that records, per (op, pass), the calls, seconds, FLOPs and bytes."""

    def __init__(self):
        self.stats = defaultdict(lambda: {"calls": 0, "s": 0.0, "flops": 0, "bytes": 0})
        self._child_time = [0.0]  # time spent in nested ops, subtracted from the enclosing one

    def _record(self, name, phase, seconds, flops, nbytes):
        row = self.stats[(name, phase)]
        row["calls"] += 1
        row["s"] += seconds
        row["flops"] += flops
        row["bytes"] += nbytes

    def _timed(self, fn):
        """(fn's result, its exclusive seconds)."""
        self._child_time.append(0.0)
        start = time.perf_counter()
        try:
            result = fn()
        finally:
            total = time.perf_counter() - start
            children = self._child_time.pop()
            self._child_time[-1] += total
        return result, total - children

    def __enter__(self):
        self._apply, self._backwards = Function.__dict__["apply"], {}
        profile = self

        def apply(cls, *tensors, **params):
            out, seconds = profile._timed(lambda: profile._apply.__func__(cls, *tensors, **params))
            arrays = [t.data for t in tensors]
            flops = _forward_flops(cls.__name__, arrays, out.data)
            profile._record(cls.__name__, "forward", seconds, flops, _nbytes(arrays) + out.data.nbytes)
            if out._ctx is not None:
                out._ctx.profile_work = (flops, out.data.size)
                profile._time_backward_of(cls)
            return out

        Function.apply = classmethod(apply)
        return self

    def _original_backward(self, cls):
        """The backward ``cls`` had before any patching: the first in its MRO that is not a timed copy."""
        for k in cls.__mro__:
            own = self._backwards[k] if k in self._backwards else k.__dict__.get("backward")
            if own is not None:
                return own

    def _time_backward_of(self, cls):
        """Replace ``cls.backward`` by a timed copy until the block ends (patching the class, not each
        node, keeps the graph free of reference cycles)."""
        if cls in self._backwards:
            return
        backward, profile = self._original_backward(cls), self

        def timed_backward(ctx, grad):
            saved = ctx.saved
            grads, seconds = profile._timed(lambda: backward(ctx, grad))
            returned = grads if isinstance(grads, tuple) else (grads,)
            nbytes = grad.nbytes + _nbytes(saved) + _nbytes([g for g in returned if g is not None])
            name = type(ctx).__name__
            flops, out_size = getattr(ctx, "profile_work", (0, 0))
            profile._record(name, "backward", seconds, _backward_flops(name, flops, ctx.needs_input_grad, out_size),
                            nbytes)
            return grads
        self._backwards[cls] = cls.__dict__.get("backward")
        cls.backward = timed_backward

    def __exit__(self, *exc):
        Function.apply = self._apply
        for cls, own in self._backwards.items():
            if own is None:
                del cls.backward
            else:
                cls.backward = own
        return False

    def rows(self):
        """One dict per (op, pass): op, pass, calls, ms, gflops (FLOPs / 1e9), gflop_s, gb_s; slowest first."""
        out = []
        for (name, phase), r in self.stats.items():
            seconds = max(r["s"], 1e-12)
            out.append({"op": name, "pass": phase, "calls": r["calls"], "ms": 1000 * r["s"],
                        "gflops": r["flops"] / 1e9, "gflop_s": r["flops"] / 1e9 / seconds,
                        "gb": r["bytes"] / 1e9, "gb_s": r["bytes"] / 1e9 / seconds})
        return sorted(out, key=lambda row: -row["ms"])

    def table(self, total_ms=None, top=None):
        """The rows as text, slowest first; with ``total_ms`` (the whole step), each op's share of it and
        a line for the time outside the ops (optimiser, gradient accumulation, Python)."""
        rows = self.rows()
        lines = [f"{'op':<30}{'pass':<10}{'calls':>6}{'ms':>9}{'share':>7}{'GFLOP':>8}{'GFLOP/s':>9}{'GB/s':>7}"]
        for r in rows[:top]:
            share = f"{100 * r['ms'] / total_ms:>6.1f}%" if total_ms else f"{'':>7}"
            lines.append(f"{r['op']:<30}{r['pass']:<10}{r['calls']:>6}{r['ms']:>9.1f}{share}{r['gflops']:>8.2f}"
                         f"{r['gflop_s']:>9.1f}{r['gb_s']:>7.1f}")
        if total_ms:
            outside = total_ms - sum(r["ms"] for r in rows)
            lines.append(f"{'(outside the ops)':<46}{outside:>9.1f}{100 * outside / total_ms:>6.1f}%")
        return "\n".join(lines)
