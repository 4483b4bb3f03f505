"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad`` and a pickle-free state_dict.

A subclass defines ``update(group, param, grad, state)``, which changes ``param.data`` in place from
``grad`` (an array) and the per-parameter ``state`` dict. ``step`` calls it for every parameter that
has a gradient, on raw arrays: no graph is built and nothing loops over elements in Python.
"""
from __future__ import annotations

import abc
import math
import numbers
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .. import backend
from ..tensor import Tensor


class Optimizer(abc.ABC):
    """Base class. ``params`` is an iterable of Tensors, or a list of dicts (parameter groups), each
    with a ``"params"`` list and optional hyper-parameters overriding the defaults, as in PyTorch.

    Hyper-parameters are checked by ``check_hypers`` whenever they enter: at construction, in
    ``add_param_group``, ``set_hyper``, ``load_state_dict``, and when an entry of ``param_groups`` is set
    directly (each group is a ``ParamGroup``, a dict that checks its values as they are set)."""

    momentum_key: str | None = None
    """Which hyper-parameter a schedule's 'momentum' drives ('momentum' for SGD, 'betas' for Adam)."""
    state_keys: tuple[str, ...] | None = None
    """The keys of a parameter's state once it has one (checked by ``load_state_dict``); None: unchecked."""
    optional_state_keys: tuple[str, ...] = ()
    """Further keys a parameter's state has in some configurations (RMSprop's momentum_buffer)."""
    param_groups: list[ParamGroup]
    state: dict[Tensor, dict[str, Any]]  # per parameter

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: Mapping[str, Any]) -> None:
        name = type(self).__name__
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        if isinstance(params, (Tensor, dict)) or hasattr(params, "named_parameters") or \
                not hasattr(params, "__iter__"):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of parameter-group dicts, "
                            f"got {_kind(params)}; pass model.parameters() (or [tensor], or "
                            f"[{{'params': ...}}, ...])")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: optimizer got an empty parameter list; pass model.parameters() of a "
                             f"model that has parameters (a generator such as model.parameters() can be "
                             f"iterated only once)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)  # type: ignore[arg-type]  # add_param_group checks it is a dict

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Append a group: a dict with ``"params"`` and optional hyper-parameters (defaults fill the rest)."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' key, "
                            f"got {type(group).__name__}")
        params = [group["params"]] if isinstance(group["params"], Tensor) else list(group["params"])
        if not params:
            raise ValueError(f"{name}: parameter group {len(self.param_groups)} is empty")
        for p in params:
            if not isinstance(p, Tensor) or p.dtype.kind != "f":
                what = f"a Tensor of {p.dtype}" if isinstance(p, Tensor) else type(p).__name__
                raise TypeError(f"{name}: parameters must be floating-point Tensors, got {what}")
        known = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or known & {id(p) for p in params}:
            raise ValueError(f"{name}: a parameter appears twice (in one group or in two groups); "
                             f"each parameter must belong to exactly one group")
        self.param_groups.append(ParamGroup(self.check_hypers, {**self.defaults, **group, "params": params}))

    def check_hypers(self, group: Mapping[str, Any]) -> None:
        """Reject impossible hyper-parameters with a message naming them; subclasses extend it."""
        name = type(self).__name__
        check_number(group["lr"], f"{name}: lr", low=0.0)
        check_number(group.get("weight_decay", 0.0), f"{name}: weight_decay", low=0.0)

    # ------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: set it to None (PyTorch's default), or with
        ``set_to_none=False`` to zeros (a fresh zero array in the same ``.grad`` Tensor; a parameter
        without a gradient keeps None)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data = p.grad.xp.zeros_like(p.grad.data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient, in place, and return the loss that ``closure``
        (a function that recomputes the gradients and returns the loss) gave, or None without one; the
        closure runs first, as PyTorch's. A gradient of another shape than its parameter (set by hand) is
        an error, not a broadcast."""
        if closure is not None and not callable(closure):
            raise TypeError(f"{type(self).__name__}.step: closure must be a function that returns the loss, "
                            f"got {_kind(closure)}")
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if p.grad.shape != p.shape:
                        raise ValueError(f"{type(self).__name__}.step: a parameter of shape {p.shape} has a "
                                         f"gradient of shape {p.grad.shape}; gradients must match their "
                                         f"parameters")
                    self.update(group, p, p.grad.data, self.state.setdefault(p, {}))
        return loss

    @abc.abstractmethod
    def update(self, group: ParamGroup, param: Tensor, grad: Any, state: dict[str, Any]) -> None:
        """Change ``param.data`` in place from ``grad`` and the per-parameter ``state`` dict."""

    # ------------------------------------------------------------------ schedules
    def get_momentum(self, group: Mapping[str, Any]) -> float:
        value = group[self._momentum_name()]
        return value[0] if self.momentum_key == "betas" else value

    def set_momentum(self, group: ParamGroup, value: float) -> None:
        """Set the hyper-parameter that plays momentum's role (SGD's momentum, Adam's beta1)."""
        group.update(self._momentum_entry(group, value))

    def _momentum_entry(self, group, value):
        if self.momentum_key == "betas":
            return {"betas": (value, *group["betas"][1:])}
        return {self._momentum_name(): value}

    def _momentum_name(self) -> str:
        if self.momentum_key is None:
            raise TypeError(f"{type(self).__name__} has no hyper-parameter that plays momentum's role "
                            f"(momentum_key is None), so it has no momentum to get or set")
        return self.momentum_key

    def set_hyper(self, name: str, values: float | Sequence[float] | npt.NDArray[Any]) -> None:
        """Set the scalar hyper-parameter ``name`` ('lr', 'mom' for momentum/beta1, 'weight_decay', ...)
        to one number for every group, or to a list (or array) of one number per group. Every group's new
        value is checked before any is set."""
        where = f"{type(self).__name__}.set_hyper({name!r})"
        if name != "mom" and name not in self.defaults:
            raise ValueError(f"{where}: unknown hyper-parameter; this optimiser has "
                             f"{['mom', *self.defaults]}")
        values = per_group(values, len(self.param_groups), where)
        updates = [self._momentum_entry(group, value) if name == "mom" else {name: value}
                   for group, value in zip(self.param_groups, values)]
        for group, update in zip(self.param_groups, updates):
            self.check_hypers({**group, **update})
        for group, update in zip(self.param_groups, updates):
            dict.update(group, update)  # checked above

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """{'state': [per-parameter dict of host arrays and numbers], 'param_groups': [hyper-parameters with
        'params' as indices]}. Only NumPy arrays, numbers, strings and lists: storable without pickle."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = [{k: (backend.as_host(v) if backend.is_device_array(v) else v)
                  for k, v in self.state.get(p, {}).items()} for p in self._all_params()]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyper-parameters and per-parameter state saved by ``state_dict`` (arrays are copied to
        each parameter's device). All or nothing: the groups must have the same sizes, the hyper-parameters
        this optimiser's names and valid values, the state this optimiser's keys and the parameters' shapes;
        otherwise a ValueError lists what differs and nothing is changed."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise TypeError(f"{name}: expected a dict with 'state' and 'param_groups' (from "
                            f"Optimizer.state_dict()), got {_kind(state_dict)}")
        params, saved_groups, saved_state = self._all_params(), state_dict["param_groups"], state_dict["state"]
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        if sizes != saved_sizes or len(saved_state) != len(params):
            raise ValueError(f"{name}: the saved optimiser has parameter groups of sizes {saved_sizes} "
                             f"but this one has {sizes} (and {len(saved_state)} saved states for "
                             f"{len(params)} parameters); was it saved for another model?")
        missing = sorted(set(self.defaults) - {k for g in saved_groups for k in g})
        if missing:
            raise ValueError(f"{name}: the saved parameter groups lack {missing} (they have "
                             f"{sorted(k for k in saved_groups[0] if k != 'params')}): the state is from "
                             f"another kind of optimiser; load it into the optimiser type that saved it")
        new_groups = [{**group, **{k: (tuple(v) if isinstance(v, list) else v)
                                   for k, v in saved.items() if k != "params"}}
                      for group, saved in zip(self.param_groups, saved_groups)]
        for group in new_groups:
            self.check_hypers(group)
        self._check_saved_state(name, params, saved_state)
        for group, new in zip(self.param_groups, new_groups):
            dict.update(group, new)
        self.state = {}
        for p, saved in zip(params, saved_state):
            if saved:
                self.state[p] = {k: (backend.move(np.array(v, dtype=p.dtype), p.device)
                                     if backend.is_device_array(v) else v) for k, v in saved.items()}

    def _check_saved_state(self, name, params, saved_state):
        """Each saved per-parameter state has this optimiser's keys, and its arrays the parameter's shape."""
        required, optional = set(self.state_keys or ()), set(self.optional_state_keys)
        wrong_keys = [f"parameter {i}: {sorted(s)}" for i, s in enumerate(saved_state)
                      if s and self.state_keys is not None and not required <= set(s) <= required | optional]
        if wrong_keys:
            also = f" (and, by configuration, {sorted(optional)})" if optional else ""
            raise ValueError(f"{name}: {type(self).__name__} keeps {sorted(required)}{also} per parameter, "
                             f"but the saved state has " + "; ".join(wrong_keys[:3]) + ": it is from another "
                             "kind of optimiser or another configuration")
        wrong = [f"parameter {i}: {k} {np.shape(v)} vs {p.shape}" for i, (p, s) in
                 enumerate(zip(params, saved_state)) for k, v in s.items()
                 if backend.is_device_array(v) and np.shape(v) != p.shape]
        if wrong:
            raise ValueError(f"{name}: state shapes do not match the parameters: " + "; ".join(wrong))

    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            hypers = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} tensors, {hypers}")
        return "\n".join(lines) + "\n)"


class ParamGroup(dict):
    """A parameter group: a dict whose hyper-parameters are checked (by the optimiser's ``check_hypers``)
    whenever they are set, through ``group[key] = value``, ``update`` or ``setdefault``; a value that fails
    the check is not stored."""

    def __init__(self, check: Callable[[Mapping[str, Any]], None], values: Mapping[str, Any]) -> None:
        check(values)
        super().__init__(values)
        self.check = check

    def __setitem__(self, key: str, value: Any) -> None:
        self.check({**self, key: value})
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        new = dict(*args, **kwargs)
        self.check({**self, **new})
        super().update(new)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


def check_number(value: Any, where: str, low: float | None = None, high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> float:
    """A finite real number within [low, high] (an open end with ``low_open``/``high_open``), else a
    ValueError: '<where> must be ..., got <value>'."""
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
    if not bad and low is not None:
        bad = value <= low if low_open else value < low
    if not bad and high is not None:
        bad = value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else f"{'(' if low_open else '['}{low}, "
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        within = f" in {lo or '(-inf, '}{hi or 'inf)'}" if (lo or hi) else ""
        raise ValueError(f"{where} must be a finite number{within}, got {value!r}")
    return value


def _kind(value):
    return f"a {type(value).__name__}"


def per_group(values: Any, n_groups: int, where: str) -> list[Any]:
    """A number repeated for ``n_groups`` groups, or a sequence checked to have one value per group."""
    if isinstance(values, numbers.Number):
        return [values] * n_groups
    values = np.asarray(values).tolist() if isinstance(values, np.ndarray) else list(values)
    if len(values) != n_groups:
        raise ValueError(f"{where}: got {len(values)} values but the optimiser has {n_groups} "
                         f"parameter groups")
    return values
