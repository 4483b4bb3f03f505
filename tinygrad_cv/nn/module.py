"""``Module``: a container of parameters, buffers and sub-modules, as in PyTorch.

Assigning a ``Parameter``, a ``Module`` or (through ``register_buffer``) a buffer to an attribute
registers it, so ``named_parameters()`` and ``state_dict()`` find it by its dotted name.
"""
import re
from collections import OrderedDict

import numpy as np

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimiser updates (requires grad by default)."""

    def __init__(self, data, requires_grad=True, device=None, dtype=None):
        super().__init__(data, dtype=dtype, device=device or getattr(data, "device", None),
                         requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"


class Module:
    """Base class of every layer and model."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, tensor):
        """A state tensor saved in the state_dict but not trained (batch norm's running statistics)."""
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        setattr(self, name, tensor)

    def __call__(self, *args, **kwargs):
        """Run the subclass's ``forward``. Containers such as ModuleList hold modules without
        computing anything themselves, so a Module need not have one; calling one that has none fails."""
        forward = getattr(self, "forward", None)
        if forward is None:
            raise TypeError(f"{type(self).__name__} has no forward method, so it cannot be called; define "
                            f"forward(self, ...) in the subclass, or call the modules it holds")
        return forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix=""):
        """(name, module) for this module and every descendant, depth first."""
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((k, m) for k, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix=""):
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:  # shared weights appear once
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        for module_name, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant and on this module (children first), as PyTorch."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def freeze(self, pattern=None):
        """Stop training the parameters whose dotted names match the regular expression ``pattern``
        (all of them when None). Returns the names frozen."""
        return self._set_trainable(pattern, False)

    def unfreeze(self, pattern=None):
        """Train again the parameters whose names match ``pattern`` (all when None)."""
        return self._set_trainable(pattern, True)

    def _set_trainable(self, pattern, trainable):
        regex = re.compile(pattern) if pattern is not None else None
        names = []
        for name, p in self.named_parameters():
            if regex is None or regex.search(name):
                p.requires_grad_(trainable)
                names.append(name)
        if regex is not None and not names:
            raise ValueError(f"no parameter name matches {pattern!r}; names look like "
                             f"{[n for n, _ in self.named_parameters()][:5]}")
        return names

    def to(self, device=None, dtype=None):
        """Move (and/or cast) every parameter and floating buffer in place."""
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for name, t in registry.items():
                    if t is None:
                        continue
                    cast = dtype if (dtype is not None and t.dtype.kind == "f") else None
                    t.data = Tensor(t.data, dtype=cast, device=device or t.device).data
                    t.device = backend.check_device(device or t.device)
                    if t.grad is not None:
                        t.grad = None
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self):
        """Every parameter and buffer as a host NumPy array, keyed by dotted name."""
        state = OrderedDict((name, p.numpy()) for name, p in self.named_parameters())
        state.update((name, b.numpy()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters and buffers. With ``strict``, a missing or unexpected name
        is an error; a shape mismatch always is. Every problem is listed in one message."""
        own = OrderedDict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        wrong_shape = [f"{k}: checkpoint {tuple(np.shape(state[k]))} vs model {own[k].shape}"
                       for k in own if k in state and tuple(np.shape(state[k])) != own[k].shape]
        problems = []
        if wrong_shape:
            problems.append("shape mismatch: " + "; ".join(wrong_shape))
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems) +
                             ". Is this checkpoint from another model or configuration?")
        for name, t in own.items():
            if name in state:
                t.data = Tensor(np.asarray(state[name]), dtype=t.dtype, device=t.device).data
        return self

    # ------------------------------------------------------------------ display
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self.named_children():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")


class Sequential(Module):
    """Apply modules in order; indexable like a list."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            for name, m in modules[0].items():
                setattr(self, name, m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        items = list(self._modules.values())
        return Sequential(*items[i]) if isinstance(i, slice) else items[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
