"""Neural-network building blocks: ``Module`` and the layers, with PyTorch's names."""
from .module import Module, ModuleList, Parameter, Sequential  # noqa: F401
