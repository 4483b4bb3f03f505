"""Reverse-mode automatic differentiation: the ``Function`` base class and the backward pass.

Every differentiable op is a subclass of ``Function`` with two methods written against ``ctx.xp``
(NumPy or CuPy, chosen by the backend):

    forward(ctx, *arrays, **params) -> array        # may call ctx.save(...) for backward
    backward(ctx, grad) -> one gradient per array  # None where no gradient is needed

What forward keeps for backward (``ctx.save`` for arrays, plain attributes for shapes and
parameters) is released once backward has used it, unless ``retain_graph``.

``Function.apply(*tensors, **params)`` runs forward on the tensors' arrays and, when a gradient is
wanted, links the result to ``ctx`` so that ``Tensor.backward`` can walk the graph back.
"""
from __future__ import annotations

import abc
import contextlib
import gc
from typing import Any, Iterator

import numpy as np

from .backend import get_xp
from .tensor import Tensor

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block no graph is recorded: results never require grad."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


class Function(abc.ABC):
    """One differentiable op. Subclasses define ``forward`` and ``backward``; ``apply`` runs it.

    The output lives on the inputs' device (``ctx.device``), except for an op with ``moves_device``,
    whose output lives on its ``device`` parameter (``ToDevice``)."""
    moves_device = False
    xp: Any  # the array module of the inputs' device (numpy, or cupy on "cuda")
    device: str
    saved: tuple[Any, ...]
    needs_input_grad: tuple[bool, ...]
    parents: tuple[Tensor, ...]
    freed: bool

    def save(self, *arrays: Any) -> None:
        """Keep arrays for backward. They are never written in place afterwards."""
        self.saved = arrays

    @classmethod
    def apply(cls, *tensors: Tensor, **params: Any) -> Tensor:
        device = tensors[0].device
        for t in tensors[1:]:
            if t.device != device:
                raise RuntimeError(f"{cls.__name__}: inputs are on different devices ({device!r} and "
                                   f"{t.device!r}); move them to one device with .to(device) first")
        ctx = cls.__new__(cls)
        ctx.xp, ctx.device, ctx.saved = get_xp(device), device, ()
        ctx.needs_input_grad = tuple(t.requires_grad for t in tensors)
        data = as_array(ctx.forward(*[t.data for t in tensors], **params))
        out = Tensor.wrap(data, params["device"] if cls.moves_device else device)
        if _grad_enabled and any(ctx.needs_input_grad) and data.dtype.kind == "f":
            out.requires_grad = True
            ctx.parents, ctx.freed = tensors, False
            out._ctx = ctx
        return out

    @abc.abstractmethod
    def forward(self, *arrays, **params):
        """The op on the inputs' arrays (through ``self.xp``); returns the output array."""

    @abc.abstractmethod
    def backward(self, grad):
        """One gradient array (or None) per tensor input, given the gradient of the output."""


def as_array(value):
    """NumPy turns 0-d results into scalars (``np.float64``); make them 0-d arrays again, so that op
    results and gradients are always arrays of their dtype (CuPy always returns arrays)."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def sum_to_shape(xp, grad, shape):
    """Undo broadcasting: sum ``grad`` over the axes along which an input of ``shape`` was broadcast."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _topological_order(root_ctx):
    """Contexts reachable from ``root_ctx``, each after every context that consumes its output.

    Iterative depth-first post-order (no recursion, linear in the graph size), then reversed.
    """
    order, visited = [], set()
    stack = [(root_ctx, False)]
    while stack:
        ctx, expanded = stack.pop()
        if expanded:
            order.append(ctx)
            continue
        if id(ctx) in visited:
            continue
        if ctx.freed:
            raise RuntimeError("backward through a graph that was already freed: its saved arrays were "
                               "released by an earlier backward. Pass retain_graph=True to the first "
                               "backward if you need to backpropagate twice.")
        visited.add(id(ctx))
        stack.append((ctx, True))
        for parent in ctx.parents:
            if parent._ctx is not None and id(parent._ctx) not in visited:
                stack.append((parent._ctx, False))
    order.reverse()
    return order


def _accumulate(store, key, grad):
    previous = store.get(key)
    store[key] = grad if previous is None else as_array(previous + grad)


@contextlib.contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector. The backward pass allocates many small arrays; each
    allocation burst would trigger a collection that walks the whole (large) graph, making backward
    superlinear in the graph size. The graph holds no reference cycles, so reference counting alone
    frees everything in time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def backward(root, grad, retain_graph=False):
    """Propagate ``grad`` (the gradient of some scalar w.r.t. ``root``) to every leaf that requires grad.

    Leaves accumulate into ``.grad``; gradients of tensors used several times add up.
    """
    with _gc_paused():
        _backward(root, grad, retain_graph)


def _backward(root, grad, retain_graph):
    if root._ctx is None:
        if root.requires_grad:  # a leaf: its gradient is the one given
            _accumulate_leaf(root, grad)
            return
        raise RuntimeError("backward: this tensor does not require grad and has no graph; create the inputs "
                           "with requires_grad=True (and not under no_grad()) to differentiate")
    grads = {id(root._ctx): grad}
    for ctx in _topological_order(root._ctx):
        g = grads.pop(id(ctx), None)
        if g is None:
            continue
        input_grads = ctx.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, gi in zip(ctx.parents, input_grads):
            if gi is None or not parent.requires_grad:
                continue
            gi = sum_to_shape(ctx.xp, as_array(gi), parent.shape)
            if gi.dtype != parent.data.dtype:
                gi = gi.astype(parent.data.dtype)
            if parent._ctx is None:
                _accumulate_leaf(parent, gi)
            else:
                _accumulate(grads, id(parent._ctx), gi)
        if not retain_graph:
            _release(ctx)


def _release(ctx):
    """Drop everything forward left on ``ctx`` (the saved arrays, and the shapes, parameters and links
    to the inputs), so that no op holds memory past its backward; ``freed`` stays, for the error that a
    second backward through the graph raises."""
    vars(ctx).clear()
    ctx.freed = True


def _accumulate_leaf(leaf, grad):
    """Add ``grad`` (already of the leaf's dtype and shape) into ``leaf.grad``, a fresh array."""
    if leaf.grad is None:
        leaf.grad = Tensor.wrap(as_array(grad.copy()), leaf.device)
    else:
        leaf.grad.data = as_array(leaf.grad.data + grad)
