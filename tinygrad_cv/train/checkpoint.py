"""Checkpoints that any tool can read and none can use to run code: safetensors files with named arrays.

A checkpoint holds a tree of dicts and lists (model weights, optimiser state, schedule, epoch, the random
generator's state, anything extra). Each array is stored under its path in the tree, so the model's
weights are ``model/layer1.0.conv1.weight``, Adam's moments ``opt/state/3/exp_avg``, and
``safetensors.numpy.load_file`` (or torch's, or ``tinygrad_cv.io.load_safetensors``) lists them by name.
Everything else (numbers, strings, None, the tree's shape) is one JSON document in the file's header
metadata, where each array appears as {"$array": "<its name>"}. A dict key of the tree that starts with
"$" is stored with one more "$" in front, so a stored dict can never be mistaken for an array.

Why safetensors rather than .npz: the names and shapes are in a JSON header that other tools read
without loading (or trusting) the data, the format cannot hold a pickle, and torch, timm and the
Hugging Face hub read it directly.

Saving is atomic (``io.atomic_write(..., durable=True)``: a temporary file in the same folder, fsync,
rename; stale temporary files of killed writers are removed). Loading is all or nothing: the whole file
is read and checked against the model, the optimiser (its type too) and the scheduler before anything
is written, and if writing still fails midway, everything is put back as it was.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..io import read_safetensors, save_safetensors, to_host_array
from ..random import generator
from ..nn import Module
from ..optim import Optimizer
from ..tensor import Tensor

FORMAT = "tinygrad_cv-checkpoint-2"
META_KEY = "tinygrad_cv.checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, is malformed, or does not fit what it is loaded into."""


def _escape(key):
    return "$" + key if key.startswith("$") else key


def _unescape(key):
    return key[1:] if key.startswith("$") else key


def flatten_tree(tree, where="checkpoint"):
    """(dict of named host arrays, JSON-able tree with {"$array": name} placeholders) for a nested state.
    An array's name is its path in the tree ("model/fc.weight"); a second array with the same path (keys
    that contain "/") gets a "~n" suffix."""
    arrays = {}

    def flatten(node, path):
        if isinstance(node, dict):
            bad = [k for k in node if not isinstance(k, str)]
            if bad:
                raise TypeError(f"{where}: keys must be strings, got {bad[:3]} at {path or 'the top'}")
            return {_escape(k): flatten(v, f"{path}/{k}" if path else k) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [flatten(v, f"{path}/{i}") for i, v in enumerate(node)]
        if isinstance(node, np.generic):
            return node.item()
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not (isinstance(node, Tensor) or backend.is_device_array(node)):
            raise TypeError(f"{where}: cannot store a {type(node).__name__} at /{path}; a checkpoint holds "
                            f"only arrays, numbers, strings, None, lists and dicts")
        array = to_host_array(node, f"{where}: /{path}")
        name, n = path, 1
        while name in arrays:
            name, n = f"{path}~{n}", n + 1
        arrays[name] = array
        return {"$array": name}

    return arrays, flatten(tree, "")


def unflatten_tree(arrays, node, where="checkpoint"):
    """The nested state back from ``flatten_tree``'s output. Every placeholder must name an array and every
    array must be used once; otherwise CheckpointError."""
    used = set()

    def unflatten(node, path):
        if isinstance(node, dict):
            if set(node) == {"$array"}:
                name = node["$array"]
                if not isinstance(name, str) or name not in arrays or name in used:
                    raise CheckpointError(f"{where}: malformed checkpoint: {path or 'the top'} refers to array "
                                          f"{name!r}, which the file does not hold (or which is used twice)")
                used.add(name)
                return arrays[name]
            return {_unescape(k): unflatten(v, f"{path}/{_unescape(k)}") for k, v in node.items()}
        if isinstance(node, list):
            return [unflatten(v, f"{path}/{i}") for i, v in enumerate(node)]
        return node

    tree = unflatten(node, "")
    unused = sorted(set(arrays) - used)
    if unused:
        raise CheckpointError(f"{where}: malformed checkpoint: arrays {unused[:5]} are not in its tree")
    return tree


def save_state(path: str | os.PathLike[str], state: Any) -> Path:
    """Write a nested state (see ``flatten_tree``) to the safetensors file ``path``, atomically."""
    arrays, tree = flatten_tree(state, where=f"save_state({os.fspath(path)!r})")
    metadata = {META_KEY: json.dumps({"format": FORMAT, "tree": tree})}
    return save_safetensors(arrays, path, metadata=metadata)


def load_state(path: str | os.PathLike[str]) -> Any:
    """Read a nested state written by ``save_state``. A file that is missing, empty, truncated, not a
    checkpoint or malformed raises an error naming it; nothing is ever unpickled."""
    where = f"load_state({os.fspath(path)!r})"
    try:
        arrays, metadata = read_safetensors(path)
    except ValueError as error:
        raise CheckpointError(f"{where}: {error}") from None
    if META_KEY not in metadata:
        raise CheckpointError(f"{where}: a safetensors file but not a tinygrad_cv checkpoint (no {META_KEY!r} "
                              f"in its metadata); for plain weights use io.load_safetensors")
    try:
        meta = json.loads(metadata[META_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{where}: malformed checkpoint: its metadata is not JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "tree" not in meta:
        seen = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{where}: the checkpoint's format is {seen!r}, expected {FORMAT!r}")
    return unflatten_tree(arrays, meta["tree"], where)


def rng_state():
    """The state of the global generator (tinygrad_cv.random), as plain numbers."""
    return generator().bit_generator.state


def set_rng_state(state):
    generator().bit_generator.state = state


def save_checkpoint(path: str | os.PathLike[str], model: Module, optimizer: Optimizer | None = None,
                    scheduler: Any = None, epoch: int | None = None, extra: Any = None) -> Path:
    """Save the model's weights and buffers, and optionally the optimiser (with its type), a scheduler
    (anything with ``state_dict``), the epoch and ``extra`` (a tree of arrays and plain values), with the
    global random generator's state so that training resumed from here draws the same numbers."""
    state = {"model": model.state_dict(), "epoch": epoch, "rng": rng_state(), "extra": extra,
             "opt": None if optimizer is None else optimizer.state_dict(),
             "opt_type": None if optimizer is None else type(optimizer).__name__,
             "scheduler": None if scheduler is None else scheduler.state_dict(),
             "scheduler_type": None if scheduler is None else type(scheduler).__name__}
    return save_state(path, state)


# --------------------------------------------------------------------------- checking before loading
SECTIONS = ("model", "epoch", "rng", "extra", "opt", "opt_type", "scheduler", "scheduler_type")


def _check_sections(state, where):
    if not isinstance(state, dict) or sorted(state) != sorted(SECTIONS):
        seen = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{where}: malformed checkpoint: expected the sections {sorted(SECTIONS)}, got {seen}")
    if not isinstance(state["model"], dict) or not all(isinstance(v, np.ndarray) for v in state["model"].values()):
        raise CheckpointError(f"{where}: malformed checkpoint: 'model' must map names to arrays")


def _model_problems(model, saved):
    """Every missing, unexpected and mis-shaped name, as Module.load_state_dict would report them."""
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    problems = [f"{k}: checkpoint {saved[k].shape} vs model {own[k].shape}"
                for k in own if k in saved and saved[k].shape != own[k].shape]
    missing, unexpected = [k for k in own if k not in saved], [k for k in saved if k not in own]
    if missing:
        problems.append(f"missing keys: {missing}")
    if unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    return problems


def _optimizer_problems(optimizer, saved, saved_type):
    """Why ``saved`` (an optimiser state_dict of type ``saved_type``) cannot load into ``optimizer``."""
    name = type(optimizer).__name__
    if saved_type != name:
        return [f"it holds the state of a {saved_type} optimiser, but this optimiser is a {name}; create the "
                f"optimiser (or the Learner's opt_func) as {saved_type}, or load without the optimiser "
                f"(with_opt=False / optimizer=None)"]
    groups, states = saved.get("param_groups"), saved.get("state")
    if not isinstance(groups, list) or not isinstance(states, list) or \
            not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        return ["its optimiser state is malformed (needs 'param_groups' and 'state' lists)"]
    sizes, saved_sizes = [len(g["params"]) for g in optimizer.param_groups], [len(g["params"]) for g in groups]
    if sizes != saved_sizes:
        return [f"its optimiser has parameter groups of sizes {saved_sizes}, this one {sizes}"]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if len(states) != len(params):
        return [f"its optimiser state covers {len(states)} parameters, this one has {len(params)}"]
    problems = []
    for i, (p, s) in enumerate(zip(params, states)):
        if not isinstance(s, dict):
            problems.append(f"the state of parameter {i} is not a dict")
            continue
        problems += [f"parameter {i}: {k} {v.shape} vs {p.shape}" for k, v in s.items()
                     if isinstance(v, np.ndarray) and v.shape != p.shape]
    return problems


def _scheduler_problems(scheduler, saved, saved_type):
    name = type(scheduler).__name__
    if saved_type != name:
        return [f"it holds the state of a {saved_type} scheduler, but this scheduler is a {name}"]
    own = scheduler.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(own):
        return [f"its scheduler state has keys {sorted(saved) if isinstance(saved, dict) else saved!r}, "
                f"this one {sorted(own)}"]
    return []


def check_checkpoint(state, model, optimizer=None, scheduler=None, restore_rng=True, where="load_checkpoint"):
    """Raise CheckpointError listing every reason ``state`` (from ``load_state``) cannot be loaded into
    ``model`` (and the optimiser, the scheduler and the generator, when asked); return None when it can."""
    _check_sections(state, where)
    problems = _model_problems(model, state["model"])
    for section, argument, target, check in (("opt", "optimizer", optimizer, _optimizer_problems),
                                             ("scheduler", "scheduler", scheduler, _scheduler_problems)):
        if target is None:
            continue
        if state[section] is None:
            problems.append(f"it holds no {argument} state; save it with {argument}=... or load without it")
            continue
        problems += check(target, state[section], state[f"{section}_type"])
    kind = rng_state()["bit_generator"]
    if restore_rng and (not isinstance(state["rng"], dict) or state["rng"].get("bit_generator") != kind):
        problems.append(f"its random generator state is not a {kind} state")
    if problems:
        raise CheckpointError(f"{where}: cannot load into {type(model).__name__}: " + " | ".join(problems) +
                              ". Nothing was changed")


def _snapshot(model, optimizer, scheduler):
    return (model.state_dict(), None if optimizer is None else optimizer.state_dict(),
            None if scheduler is None else scheduler.state_dict(), rng_state())


def _restore(snapshot, model, optimizer, scheduler):
    model_state, opt_state, sched_state, rng = snapshot
    model.load_state_dict(model_state)
    if optimizer is not None:
        optimizer.load_state_dict(opt_state)
    if scheduler is not None:
        scheduler.load_state_dict(sched_state)
    set_rng_state(rng)


def load_checkpoint(path: str | os.PathLike[str], model: Module, optimizer: Optimizer | None = None,
                    scheduler: Any = None, restore_rng: bool = True) -> dict[str, Any]:
    """Load what ``save_checkpoint`` wrote into ``model`` (and the optimiser and scheduler when given);
    restore the random generator. Returns {"epoch": ..., "extra": ...}.

    All or nothing: the file is read and checked in full first (``check_checkpoint``: another model's
    names and shapes, an optimiser of another type, group sizes or state shapes, a missing section), and a
    CheckpointError (a ValueError) lists every problem without touching anything. Should a load still
    fail midway, the model, optimiser, scheduler and generator are restored to what they were."""
    where = f"load_checkpoint({os.fspath(path)!r})"
    state = load_state(path)
    check_checkpoint(state, model, optimizer, scheduler, restore_rng, where)
    snapshot = _snapshot(model, optimizer, scheduler)
    try:
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["opt"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if restore_rng:
            set_rng_state(state["rng"])
    except Exception:
        _restore(snapshot, model, optimizer, scheduler)
        raise
    return {"epoch": state["epoch"], "extra": state["extra"]}
