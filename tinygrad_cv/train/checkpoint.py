"""Checkpoints that cannot run code: NumPy ``.npz`` files read back with ``allow_pickle=False``.

A checkpoint holds a tree of dicts and lists (model weights, optimiser state, schedule, epoch, the
random generator's state, anything extra). Arrays are stored as the archive's entries; everything else
(numbers, strings, the tree's shape) as one JSON string in a 0-d unicode array, where each array
appears as {"$array": "<entry name>"}. Loading therefore never unpickles anything.

Writes are atomic: the archive goes to a temporary file in the same folder, is flushed to disk
(fsync), and only then renamed over the target, so a crash mid-save leaves the last good file in place.
"""
import json
import os

import numpy as np

from .. import backend
from ..data.image_io import atomic_write
from ..random import generator

FORMAT = "tinygrad_cv-checkpoint-1"
META_KEY = "__checkpoint__"


def encode_tree(tree, where="checkpoint"):
    """(dict of arrays, JSON-able tree with {"$array": name} placeholders) for a nested state."""
    arrays = {}

    def encode(node, path):
        if isinstance(node, dict):
            bad = [k for k in node if not isinstance(k, str)]
            if bad:
                raise TypeError(f"{where}: keys must be strings, got {bad[:3]} at {path or 'the top'}")
            return {k: encode(v, f"{path}/{k}") for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [encode(v, f"{path}/{i}") for i, v in enumerate(node)]
        if backend.is_device_array(node):
            array = backend.to_numpy(node)
            if array.dtype.hasobject:
                raise TypeError(f"{where}: {path} is an object array, which would need pickle; "
                                f"store numbers, strings or plain arrays")
            name = f"a{len(arrays)}"
            arrays[name] = array
            return {"$array": name}
        if isinstance(node, np.generic):
            return node.item()
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"{where}: cannot store a {type(node).__name__} at {path}; a checkpoint holds only "
                        f"arrays, numbers, strings, None, lists and dicts")

    return arrays, encode(tree, "")


def decode_tree(arrays, node):
    """The nested state back from ``encode_tree``'s output (arrays as NumPy arrays)."""
    if isinstance(node, dict):
        if set(node) == {"$array"}:
            return arrays[node["$array"]]
        return {k: decode_tree(arrays, v) for k, v in node.items()}
    if isinstance(node, list):
        return [decode_tree(arrays, v) for v in node]
    return node


def save_state(path, state):
    """Write a nested state (see ``encode_tree``) to the ``.npz`` file ``path``, atomically."""
    arrays, tree = encode_tree(state, where=f"save_state({os.fspath(path)!r})")
    meta = np.array(json.dumps({"format": FORMAT, "tree": tree}))

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, allow_pickle=False, **{META_KEY: meta}, **arrays)
            f.flush()
            os.fsync(f.fileno())

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return atomic_write(path, write)


def load_state(path):
    """Read a nested state written by ``save_state``, without ever unpickling."""
    with np.load(path, allow_pickle=False) as archive:
        if META_KEY not in archive.files:
            raise ValueError(f"load_state: {os.fspath(path)!r} is an .npz file but not a tinygrad_cv "
                             f"checkpoint (no {META_KEY!r} entry); its entries are {archive.files[:5]}")
        meta = json.loads(str(archive[META_KEY][()]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"load_state: {os.fspath(path)!r} has format {meta.get('format')!r}, "
                             f"expected {FORMAT!r}")
        arrays = {name: archive[name] for name in archive.files if name != META_KEY}
    return decode_tree(arrays, meta["tree"])


def rng_state():
    """The state of the global generator (tinygrad_cv.random), as plain numbers."""
    return generator().bit_generator.state


def set_rng_state(state):
    generator().bit_generator.state = state


def save_checkpoint(path, model, optimizer=None, scheduler=None, epoch=None, extra=None):
    """Save the model's weights and buffers, and optionally the optimiser, a scheduler (anything with
    ``state_dict``), the epoch and ``extra`` (a tree of arrays and plain values), with the global random
    generator's state so that training resumed from here draws the same numbers."""
    state = {"model": model.state_dict(), "epoch": epoch, "rng": rng_state(), "extra": extra,
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "scheduler": scheduler.state_dict() if scheduler is not None else None}
    return save_state(path, state)


def load_checkpoint(path, model, optimizer=None, scheduler=None, restore_rng=True):
    """Load what ``save_checkpoint`` wrote into ``model`` (and the optimiser and scheduler when given);
    restore the random generator. Returns {"epoch": ..., "extra": ...}.

    A checkpoint of another model raises ValueError listing the missing, unexpected and mis-shaped names."""
    state = load_state(path)
    model.load_state_dict(state["model"])
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if state[name] is None:
            raise ValueError(f"load_checkpoint: {os.fspath(path)!r} holds no {name} state; save it with "
                             f"{name}=... or load without it")
        target.load_state_dict(state[name])
    if restore_rng:
        set_rng_state(state["rng"])
    return {"epoch": state["epoch"], "extra": state["extra"]}
