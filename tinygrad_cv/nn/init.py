"""Weight initialisation with PyTorch's formulas (``torch.nn.init``).

Every function fills ``tensor.data`` in place, keeping its dtype and device, and returns the tensor.
Values are drawn on the host from ``tinygrad_cv.random.generator()``, so ``manual_seed`` makes them
reproducible.

For a weight of shape (out, in, *kernel): fan_in = in * prod(kernel), fan_out = out * prod(kernel).
  xavier (Glorot):  std = gain * sqrt(2 / (fan_in + fan_out))
  kaiming (He):     std = gain / sqrt(fan),  fan = fan_in or fan_out (``mode``)
A uniform initialiser with standard deviation std draws from U(-sqrt(3) std, sqrt(3) std).

As PyTorch: the random initialisers need a floating-point tensor, U(a, b) needs a <= b and N(mean, std^2)
std >= 0; a kaiming or xavier initialiser on a tensor with no elements does nothing (with a warning)
instead of dividing by a zero fan.
"""
from __future__ import annotations

import math
import numbers
import warnings

from .. import backend
from ..random import generator
from ..tensor import Tensor

_LINEAR = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' variance stable through ``nonlinearity``:
    1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for
    leaky_relu (slope = param, 0.01 by default), 3/4 for selu."""
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{_LINEAR + ('tanh', 'relu', 'leaky_relu', 'selu')}")


def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) = (shape[1], shape[0]) times the receptive field prod(shape[2:])."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dims, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, host_values):
    """Write host values into tensor.data in place (same array, same dtype and device)."""
    tensor.data[...] = backend.move(host_values.astype(tensor.dtype), tensor.device)
    return tensor


def _checked(tensor, where, floating=True):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{where}: expected a Tensor (e.g. layer.weight), got {type(tensor).__name__}")
    if floating and tensor.dtype.kind != "f":
        raise TypeError(f"{where}: needs a floating-point tensor, got {tensor.dtype}")
    return tensor


def _finite(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def _no_elements(tensor):
    if tensor.data.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with U(a, b)."""
    a, b = _finite(a, "a", "uniform_"), _finite(b, "b", "uniform_")
    if a > b:
        raise ValueError(f"uniform_: needs a <= b for the range [a, b), got a={a} > b={b}")
    return _fill(_checked(tensor, "uniform_"), generator().uniform(a, b, size=tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with N(mean, std^2)."""
    mean, std = _finite(mean, "mean", "normal_"), _finite(std, "std", "normal_")
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    return _fill(_checked(tensor, "normal_"), generator().normal(mean, std, size=tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    _checked(tensor, "constant_", floating=False).data[...] = val
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    if _no_elements(_checked(tensor, "xavier_uniform_")):
        return tensor
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    if _no_elements(_checked(tensor, "xavier_normal_")):
        return tensor
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a)."""
    if _no_elements(_checked(tensor, "kaiming_uniform_")):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """N(0, std^2) with std = gain / sqrt(fan), gain = calculate_gain(nonlinearity, a)."""
    if _no_elements(_checked(tensor, "kaiming_normal_")):
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)))
