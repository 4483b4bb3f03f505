"""``Module``: a container of parameters, buffers and sub-modules, as in PyTorch.

Assigning a ``Parameter``, a ``Module`` or (through ``register_buffer``) a buffer to an attribute
registers it, so ``named_parameters()`` and ``state_dict()`` find it by its dotted name.
"""
from __future__ import annotations

import re
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar, overload

import numpy as np
import numpy.typing as npt

from .. import backend
from ..tensor import Device, DTypeLike, Tensor

_M = TypeVar("_M", bound="Module")  # methods that return self return the caller's own Module type


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """load_state_dict's unmatched names: the model's absent from the state, and the reverse."""
    __slots__ = ()

    def __repr__(self):
        return "<All keys matched successfully>" if self == ([], []) else super().__repr__()


class RemovableHandle:
    """Returned by the hook registrations; ``remove()`` unregisters the hook (twice is harmless)."""

    def __init__(self, hooks: dict[int, Callable[..., Any]], key: int) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimiser updates (requires grad by default)."""

    def __init__(self, data: Any, requires_grad: bool = True, device: Device = None, dtype: DTypeLike = None) -> None:
        super().__init__(data, dtype=dtype, device=device or getattr(data, "device", None),
                         requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__() + ")"


class Module:
    """Base class of every layer and model."""
    training: bool
    _parameters: OrderedDict[str, Parameter | None]
    _buffers: OrderedDict[str, Tensor | None]
    _modules: OrderedDict[str, Module | None]
    _forward_pre_hooks: OrderedDict[int, Callable[..., Any]]
    _forward_hooks: OrderedDict[int, Callable[..., Any]]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        """Register a Parameter or Module by its attribute name, as PyTorch. A name already registered keeps
        its kind: a parameter takes only a Parameter or None, a sub-module only a Module or None, a buffer
        only a Tensor or None (None keeps the name registered, and skipped by parameters() and state_dict())."""
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
        elif name in self._parameters:
            self._check_kind(name, value, "parameter", Parameter, "nn.Parameter or None expected; to replace "
                             "it, wrap the tensor: nn.Parameter(t)")
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
        elif name in self._modules:
            self._check_kind(name, value, "child module", Module, "nn.Module or None expected")
            self._modules[name] = value
        elif name in self._buffers:
            self._check_kind(name, value, "buffer", Tensor, "Tensor or None expected; wrap an array: "
                             "tg.tensor(array)")
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def _forget(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)

    def _check_kind(self, name, value, kind, cls, expected):
        if value is not None and not isinstance(value, cls):
            raise TypeError(f"{type(self).__name__}: cannot assign '{_typename(value)}' as {kind} '{name}' "
                            f"({expected})")

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """A state tensor saved in the state_dict but not trained (batch norm's running statistics): a
        Tensor, or None (registered, but absent from state_dict until a Tensor is assigned)."""
        where = f"{type(self).__name__}.register_buffer"
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{where}: a buffer name must be a non-empty string without '.', got {name!r}")
        if name in self.__dict__ and name not in self._buffers:
            raise KeyError(f"{where}: attribute '{name}' already exists; pick another name")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"{where}: cannot assign '{_typename(tensor)}' object to buffer '{name}' (Tensor "
                            f"or None required); wrap it: tg.tensor(array)")
        self._forget(name)
        self._buffers[name] = tensor
        object.__setattr__(self, name, tensor)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the forward pre-hooks, the subclass's ``forward``, then the forward hooks, as PyTorch.
        Containers such as ModuleList hold modules without computing anything themselves, so a Module
        need not have a forward; calling one that has none fails."""
        forward = getattr(self, "forward", None)
        if forward is None:
            raise TypeError(f"{type(self).__name__} has no forward method, so it cannot be called; define "
                            f"forward(self, ...) in the subclass, or call the modules it holds")
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_pre_hook(self, hook: Callable[[Module, tuple[Any, ...]], Any]) -> RemovableHandle:
        """Call ``hook(module, args)`` before each forward; a non-None result replaces the positional
        args (a non-tuple is wrapped in one). Returns a handle whose ``remove()`` unregisters it."""
        return _register_hook(self, self._forward_pre_hooks, hook, "register_forward_pre_hook")

    def register_forward_hook(self, hook: Callable[[Module, tuple[Any, ...], Any], Any]) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each forward; a non-None result replaces the output.
        Returns a handle whose ``remove()`` unregisters it."""
        return _register_hook(self, self._forward_hooks, hook, "register_forward_hook")

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(name, module) for this module and every descendant, depth first; a module reachable by two
        paths appears once (at its first name) unless ``remove_duplicate=False``."""
        seen = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((k, m) for k, m in self._modules.items() if m is not None)

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def _named_members(self, registry, prefix, recurse, remove_duplicate):
        """(dotted name, tensor) from one registry of this module (and its descendants with ``recurse``);
        a tensor shared by two names appears once unless ``remove_duplicate=False``."""
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix,
                                                                                                          self)]
        seen = set()
        for module_name, module in modules:
            for name, t in getattr(module, registry).items():
                if t is not None and not (remove_duplicate and id(t) in seen):
                    seen.add(id(t))
                    yield (f"{module_name}.{name}" if module_name else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse=recurse))

    def apply(self: _M, fn: Callable[[Module], object]) -> _M:
        """Call ``fn(module)`` on every descendant and on this module (children first), as PyTorch."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self: _M, mode: bool = True) -> _M:
        if not isinstance(mode, bool):
            raise ValueError(f"{type(self).__name__}.train: training mode is expected to be boolean, got "
                             f"{mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self: _M) -> _M:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (``grad = None``), or with ``set_to_none=False`` fill the
        existing gradients with zeros in place, as PyTorch."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def requires_grad_(self: _M, requires_grad: bool = True) -> _M:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def freeze(self, pattern: str | None = None) -> list[str]:
        """Stop training the parameters whose dotted names match the regular expression ``pattern``
        (all of them when None). Returns the names frozen."""
        return self._set_trainable(pattern, False)

    def unfreeze(self, pattern: str | None = None) -> list[str]:
        """Train again the parameters whose names match ``pattern`` (all when None)."""
        return self._set_trainable(pattern, True)

    def _set_trainable(self, pattern, trainable):
        try:
            regex = re.compile(pattern) if pattern is not None else None
        except (re.error, TypeError) as error:
            raise ValueError(f"{'unfreeze' if trainable else 'freeze'}: pattern must be a regular expression "
                             f"matched against dotted parameter names, got {pattern!r} ({error})") from None
        names = []
        for name, p in self.named_parameters():
            if regex is None or regex.search(name):
                p.requires_grad_(trainable)
                names.append(name)
        if regex is not None and not names:
            raise ValueError(f"no parameter name matches {pattern!r}; names look like "
                             f"{[n for n, _ in self.named_parameters()][:5]}")
        return names

    def to(self: _M, *args: Any, **kwargs: Any) -> _M:
        """Move and/or cast every parameter, buffer and gradient (the same Tensor objects), as PyTorch's ``Module.to``:
        ``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)`` (its device and dtype), or by
        keyword (``non_blocking`` is accepted and ignored). The cast applies to floating tensors only;
        ``dtype`` must be a floating dtype, as PyTorch's."""
        device, dtype = _to_arguments(type(self).__name__, args, kwargs)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}.to: only floating-point dtypes are accepted, got {dtype}")
        tensors = [t for m in self.modules() for registry in (m._parameters, m._buffers)
                   for t in registry.values() if t is not None]
        tensors += [t.grad for t in tensors if t.grad is not None]
        moved = [_moved(t, device, dtype) for t in tensors]   # all or nothing: a failed move changes nothing
        for t, data in zip(tensors, moved):
            t.data, t.device = data, device or t.device
        return self

    def half(self: _M) -> _M:
        return self.to(np.float16)

    def float(self: _M) -> _M:
        return self.to(np.float32)

    def double(self: _M) -> _M:
        return self.to(np.float64)

    def cpu(self: _M) -> _M:
        return self.to("cpu")

    def cuda(self: _M, device: int | str | None = None) -> _M:
        """Move to the GPU; ``device`` may be None, 0 or 'cuda' (this engine knows one GPU)."""
        if device not in (None, 0, "cuda", "cuda:0"):
            raise ValueError(f"{type(self).__name__}.cuda: only one GPU is known, pass None, 0 or 'cuda'; "
                             f"got {device!r}")
        return self.to("cuda")

    # ------------------------------------------------------------------ state
    def _named_state(self):
        """(dotted name, tensor, optional) for every parameter and buffer in PyTorch's order: module by
        module, each one's parameters and then its buffers. ``optional`` marks the names in a module's
        ``_optional_state``, which a loaded state may lack (batch norm's ``num_batches_tracked``, absent
        from old checkpoints: PyTorch keeps the current value)."""
        seen = set()
        for module_name, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, t in registry.items():
                    if t is not None and id(t) not in seen:
                        seen.add(id(t))
                        yield (f"{module_name}.{name}" if module_name else name), t, name in module._optional_state

    _optional_state: tuple[str, ...] = ()

    def state_dict(self) -> OrderedDict[str, npt.NDArray[Any]]:
        """Every parameter and buffer as a host NumPy array (a copy), keyed by dotted name, in PyTorch's order.

        A deliberate difference from PyTorch, whose values are tensors sharing the parameters' storage:
        here they are plain arrays that no later training step changes (``np.asarray`` reads either)."""
        return OrderedDict((name, t.numpy()) for name, t, _ in self._named_state())

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (NumPy, CuPy or Tensors) into the existing parameters and buffers, in place, keeping
        their dtype and device; the caller's arrays are never kept. With ``strict``, a missing or unexpected
        name is an error; a shape mismatch or a non-numeric value always is. All or nothing: every name and
        shape is checked (every problem listed in one message) before anything is written. Returns
        ``(missing_keys, unexpected_keys)``, a named tuple, as PyTorch: with ``strict=False``, the names
        that were skipped. A batch norm's ``num_batches_tracked`` may be absent (kept as it is), as PyTorch."""
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"load_state_dict into {type(self).__name__}: state must be a dict of name -> array "
                            f"(from state_dict()), got {_typename(state)}")
        entries = list(self._named_state())
        own = OrderedDict((name, t) for name, t, _ in entries)
        missing = [name for name, _, optional in entries if name not in state and not optional]
        unexpected = [k for k in state if k not in own]
        arrays = {k: _host_array(state[k]) for k in own if k in state}
        not_numeric = [f"{k} ({a.dtype})" for k, a in arrays.items() if a.dtype.kind not in "biuf"]
        wrong_shape = [f"{k}: checkpoint {a.shape} vs model {own[k].shape}"
                       for k, a in arrays.items() if a.shape != own[k].shape]
        problems = []
        if not_numeric:
            problems.append("not numeric arrays: " + ", ".join(not_numeric))
        if wrong_shape:
            problems.append("shape mismatch: " + "; ".join(wrong_shape))
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems) +
                             ". Is this checkpoint from another model or configuration?")
        for name, array in arrays.items():
            target = own[name]
            target.data[...] = backend.move(array.astype(target.dtype, copy=False), target.device)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ display
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self.named_children():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")


class Sequential(Module):
    """Apply modules in order; indexable like a list (a slice is a Sequential keeping the names)."""
    _modules: OrderedDict[str, Module]  # type: ignore[assignment]  # a container holds only modules

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            for name, m in modules[0].items():
                setattr(self, name, _checked_module(m, "Sequential", name))
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), _checked_module(m, "Sequential", i))

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    @overload
    def __getitem__(self, i: int) -> Module: ...
    @overload
    def __getitem__(self, i: slice) -> Sequential: ...

    def __getitem__(self, i: int | slice) -> Module | Sequential:
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[_checked_index(i, len(self), "Sequential")]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        setattr(self, str(len(self._modules)), _checked_module(module, "Sequential.append", len(self)))
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (a slice is a ModuleList, renumbered)."""
    _modules: OrderedDict[str, Module]  # type: ignore[assignment]  # a container holds only modules

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), _checked_module(module, "ModuleList", len(self)))
        return self

    @overload
    def __getitem__(self, i: int) -> Module: ...
    @overload
    def __getitem__(self, i: slice) -> ModuleList: ...

    def __getitem__(self, i: int | slice) -> Module | ModuleList:
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return list(self._modules.values())[_checked_index(i, len(self), "ModuleList")]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleDict(Module):
    """An ordered dict of modules whose parameters are registered under their keys, as PyTorch's."""
    _modules: OrderedDict[str, Module]  # type: ignore[assignment]  # a container holds only modules

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: a key must be a non-empty string without '.', got {key!r}")
        setattr(self, key, _checked_module(module, "ModuleDict", key))

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add (or replace) entries from a mapping or an iterable of (key, module) pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: expected a mapping or (key, module) pairs, got an entry "
                                f"{pair!r}")
            self[pair[0]] = pair[1]


class ParameterList(Module):
    """A list of Parameters registered as "0", "1", ...; a plain Tensor is wrapped in a Parameter, as PyTorch.
    Unlike PyTorch, an entry that is not a Tensor is refused (TypeError) rather than kept as an attribute."""
    _parameters: OrderedDict[str, Parameter]  # type: ignore[assignment]  # only parameters

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        for value in values or ():
            self.append(value)

    def _as_parameter(self, value):
        if isinstance(value, Parameter):
            return value
        if isinstance(value, Tensor):
            return Parameter(value.data)
        raise TypeError(f"ParameterList: entries must be Parameters or Tensors, got {_typename(value)}")

    @overload
    def __getitem__(self, i: int) -> Parameter: ...
    @overload
    def __getitem__(self, i: slice) -> ParameterList: ...

    def __getitem__(self, i: int | slice) -> Parameter | ParameterList:
        if isinstance(i, slice):
            return ParameterList(list(self._parameters.values())[i])
        return list(self._parameters.values())[_checked_index(i, len(self), "ParameterList")]

    def __setitem__(self, i: int, value: Any) -> None:
        setattr(self, str(_checked_index(i, len(self), "ParameterList") % len(self)), self._as_parameter(value))

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters.values())

    def append(self, value: Any) -> ParameterList:
        setattr(self, str(len(self)), self._as_parameter(value))
        return self

    def extend(self, values: Iterable[Any]) -> ParameterList:
        for value in values:
            self.append(value)
        return self


def _typename(value):
    """'Tensor', 'Linear', 'numpy.ndarray', 'float': how an error message names what it was given."""
    cls = type(value)
    if isinstance(value, (Tensor, Module)) or cls.__module__ == "builtins":
        return cls.__name__
    return f"{cls.__module__.split('.')[0]}.{cls.__qualname__}"


def _register_hook(module, hooks, hook, where):
    if not callable(hook):
        raise TypeError(f"{type(module).__name__}.{where}: hook must be callable, got {_typename(hook)}")
    key = max(hooks, default=-1) + 1
    hooks[key] = hook
    return RemovableHandle(hooks, key)


def _to_arguments(cls, args, kwargs):
    """(device or None, numpy dtype or None) from Module.to's forms: (device), (dtype), (device, dtype),
    (tensor), and the keywords device=, dtype=, non_blocking=."""
    kwargs = dict(kwargs)
    kwargs.pop("non_blocking", None)
    if set(kwargs) - {"device", "dtype"} or len(args) > 2:
        raise TypeError(f"{cls}.to: expected (device), (dtype), (device, dtype) or (tensor), got {args} {kwargs}")
    device, dtype = kwargs.get("device"), kwargs.get("dtype")
    if len(args) == 1 and isinstance(args[0], Tensor):
        device, dtype = args[0].device, args[0].dtype
    elif len(args) == 2:
        device, dtype = args
    elif len(args) == 1:
        if isinstance(args[0], str) and args[0] in backend.DEVICES:
            device = args[0]
        else:
            dtype = args[0]
    try:
        dtype = None if dtype is None else np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{cls}.to: {dtype!r} is neither a device {backend.DEVICES} nor a dtype") from None
    return (None if device is None else backend.check_device(device)), dtype


def _moved(t, device, dtype):
    """t's array on ``device`` (None: where it is), cast to ``dtype`` if t is floating."""
    cast = dtype if (dtype is not None and t.dtype.kind == "f") else None
    return Tensor(t.data, dtype=cast, device=device or t.device).data


def _host_array(value):
    """A host NumPy view of a state-dict value (an array of any device, a Tensor, or numbers)."""
    if isinstance(value, Tensor):
        value = value.data
    return backend.as_host(value) if backend.is_device_array(value) else np.asarray(value)


def _checked_module(module, where, name):
    if not isinstance(module, Module):
        raise TypeError(f"{where}: entry {name!r} is a {_typename(module)}, not an nn.Module; wrap functions "
                        f"in a Module (e.g. nn.ReLU()) before putting them in a container")
    return module


def _checked_index(i, length, where):
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"{where}: indices must be integers or slices, got {_typename(i)}")
    if not -length <= i < length:
        raise IndexError(f"{where}: index {i} is out of range for a container of length {length}")
    return int(i)
