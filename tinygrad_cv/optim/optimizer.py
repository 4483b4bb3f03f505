"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad`` and a pickle-free state_dict.

A subclass defines ``update(group, param, grad, state)``, which changes ``param.data`` in place from
``grad`` (an array) and the per-parameter ``state`` dict. ``step`` calls it for every parameter that
has a gradient, on raw arrays: no graph is built and nothing loops over elements in Python.
"""
import abc
import numbers

import numpy as np

from .. import backend
from ..tensor import Tensor


class Optimizer(abc.ABC):
    """Base class. ``params`` is an iterable of Tensors, or a list of dicts (parameter groups), each
    with a ``"params"`` list and optional hyper-parameters overriding the defaults, as in PyTorch."""

    momentum_key = None
    """Which hyper-parameter a schedule's 'momentum' drives ('momentum' for SGD, 'betas' for Adam)."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        groups = list(params) if not isinstance(params, Tensor) else [params]
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list; pass model.parameters() "
                             f"of a model that has parameters (or a list of parameter-group dicts)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Append a group: a dict with ``"params"`` and optional hyper-parameters (defaults fill the rest)."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a parameter group must be a dict with a 'params' key, "
                            f"got {type(group).__name__}")
        params = [group["params"]] if isinstance(group["params"], Tensor) else list(group["params"])
        name = type(self).__name__
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
        full = {**self.defaults, **group, "params": params}
        self.check_hypers(full)
        self.param_groups.append(full)

    def check_hypers(self, group):
        """Reject impossible hyper-parameters with a message naming them; subclasses extend it."""
        lr = group["lr"]
        if not isinstance(lr, numbers.Real) or not lr > 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be a positive number, got lr={lr!r}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {group['weight_decay']}")

    # ------------------------------------------------------------------ stepping
    def zero_grad(self):
        """Forget every parameter's gradient (set it to None, as PyTorch's default)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(group, p, p.grad.data, self.state.setdefault(p, {}))

    @abc.abstractmethod
    def update(self, group, param, grad, state):
        """Change ``param.data`` in place from ``grad`` and the per-parameter ``state`` dict."""

    # ------------------------------------------------------------------ schedules
    def get_momentum(self, group):
        value = group[self.momentum_key]
        return value[0] if self.momentum_key == "betas" else value

    def set_momentum(self, group, value):
        """Set the hyper-parameter that plays momentum's role (SGD's momentum, Adam's beta1)."""
        if self.momentum_key == "betas":
            group["betas"] = (value, *group["betas"][1:])
        else:
            group[self.momentum_key] = value

    def set_hyper(self, name, values):
        """Set the scalar hyper-parameter ``name`` ('lr', 'mom' for momentum/beta1, 'weight_decay', ...)
        to one number for every group, or to a list (or array) of one number per group."""
        values = per_group(values, len(self.param_groups), f"{type(self).__name__}.set_hyper({name!r})")
        for group, value in zip(self.param_groups, values):
            if name == "mom":
                self.set_momentum(group, value)
            else:
                group[name] = value

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """{'state': [per-parameter dict of host arrays and numbers], 'param_groups': [hyper-parameters with
        'params' as indices]}. Only NumPy arrays, numbers, strings and lists: storable without pickle."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = [{k: (backend.to_numpy(v) if backend.is_device_array(v) else v)
                  for k, v in self.state.get(p, {}).items()} for p in self._all_params()]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and per-parameter state saved by ``state_dict`` (arrays are copied to
        each parameter's device). The groups must have the same sizes and the state the same shapes."""
        params = self._all_params()
        saved_groups = state_dict["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        name = f"{type(self).__name__}.load_state_dict"
        if sizes != saved_sizes:
            raise ValueError(f"{name}: the saved optimiser has parameter groups of sizes {saved_sizes} but "
                             f"this one has {sizes}; was it saved for another model?")
        wrong = [f"parameter {i}: {k} {np.shape(v)} vs {p.shape}" for i, (p, s) in
                 enumerate(zip(params, state_dict["state"])) for k, v in s.items()
                 if backend.is_device_array(v) and np.shape(v) != p.shape]
        if wrong:
            raise ValueError(f"{name}: state shapes do not match the parameters: " + "; ".join(wrong))
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: (tuple(v) if isinstance(v, list) else v)
                          for k, v in saved.items() if k != "params"})
        self.state = {}
        for p, saved in zip(params, state_dict["state"]):
            if saved:
                self.state[p] = {k: (backend.move(np.array(v, dtype=p.dtype), p.device)
                                     if backend.is_device_array(v) else v) for k, v in saved.items()}

    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            hypers = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} tensors, {hypers}")
        return "\n".join(lines) + "\n)"


def per_group(values, n_groups, where):
    """A number repeated for ``n_groups`` groups, or a sequence checked to have one value per group."""
    if isinstance(values, numbers.Number):
        return [values] * n_groups
    values = np.asarray(values).tolist() if isinstance(values, np.ndarray) else list(values)
    if len(values) != n_groups:
        raise ValueError(f"{where}: got {len(values)} values but the optimiser has {n_groups} "
                         f"parameter groups")
    return values
