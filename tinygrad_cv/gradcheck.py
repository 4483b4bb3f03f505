"""Check analytic gradients against central finite differences, in float64.

Directional mode (default). Pick a random upstream gradient u (shape of the output) and, for each
input x_i that requires grad, a random direction v_i with no component near zero. With
L(x) = <f(x), u>,

    numeric  = (L(x_i + eps v_i) - L(x_i - eps v_i)) / (2 eps)
    analytic = <dL/dx_i, v_i>             (dL/dx_i from one backward with gradient u)

An all-ones u is never used: a backward that, say, reverses its output would pass it.

Jacobian mode (small inputs). Every entry of every input's Jacobian is compared, and the worst one
is reported.
"""
import numpy as np

from .autograd import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with finite differences."""


def _check_inputs(inputs):
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    positions = [next(i for i, x in enumerate(inputs) if x is t) for t in checked]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    for t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs must be float64 for finite differences to be accurate, "
                            f"got {t.dtype}; call .double() on them")
    return inputs, checked, positions


def _output(fn, inputs):
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out


def _analytic_grads(fn, inputs, checked, upstream):
    for t in checked:
        t.grad = None
    out = _output(fn, inputs)
    out.backward(gradient=upstream)
    return [np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in checked]


def _loss_at(fn, inputs, upstream):
    with no_grad():
        return float(np.sum(_output(fn, inputs).numpy() * upstream))


def _perturbed_loss(fn, inputs, t, delta, upstream):
    original = t.data
    t.data = original + t.xp.asarray(delta)
    try:
        return _loss_at(fn, inputs, upstream)
    finally:
        t.data = original


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, mode="directional", seed=0):
    """Return True when ``fn``'s backward agrees with finite differences; raise GradcheckError otherwise.

    ``fn(*inputs)`` must return a Tensor. Every float64 input with ``requires_grad`` is checked.
    """
    inputs, checked, positions = _check_inputs(inputs)
    rng = np.random.default_rng(seed)
    with no_grad():
        out_shape = _output(fn, inputs).shape
    if mode == "directional":
        _directional(fn, inputs, checked, positions, rng.standard_normal(out_shape), rng, eps, atol, rtol)
    elif mode == "jacobian":
        _jacobian(fn, inputs, checked, positions, out_shape, eps, atol, rtol)
    else:
        raise ValueError(f"gradcheck: mode must be 'directional' or 'jacobian', got {mode!r}")
    return True


def _directional(fn, inputs, checked, positions, upstream, rng, eps, atol, rtol):
    grads = _analytic_grads(fn, inputs, checked, upstream)
    for position, t, grad in zip(positions, checked, grads):
        direction = rng.choice([-1.0, 1.0], size=t.shape) * rng.uniform(0.5, 1.5, size=t.shape)
        plus = _perturbed_loss(fn, inputs, t, eps * direction, upstream)
        minus = _perturbed_loss(fn, inputs, t, -eps * direction, upstream)
        numeric = (plus - minus) / (2 * eps)
        analytic = float(np.sum(grad * direction))
        error = abs(numeric - analytic)
        if not error <= atol + rtol * abs(numeric):
            raise GradcheckError(
                f"gradcheck failed for input {position} (shape {t.shape}): directional derivative "
                f"numeric {numeric:.8g} vs analytic {analytic:.8g}; abs error {error:.3g}, "
                f"rel error {error / max(abs(numeric), 1e-300):.3g} (atol {atol}, rtol {rtol})")


def _jacobian(fn, inputs, checked, positions, out_shape, eps, atol, rtol):
    n_out = int(np.prod(out_shape))
    analytic = [np.zeros((n_out, t.numel())) for t in checked]  # rows: outputs, columns: inputs
    for k in range(n_out):
        onehot = np.zeros(n_out)
        onehot[k] = 1.0
        for rows, grad in zip(analytic, _analytic_grads(fn, inputs, checked, onehot.reshape(out_shape))):
            rows[k] = grad.reshape(-1)
    for position, t, jac in zip(positions, checked, analytic):
        numeric = np.zeros_like(jac)
        for j in range(t.numel()):
            delta = np.zeros(t.numel())
            delta[j] = eps
            delta = delta.reshape(t.shape)
            with no_grad():
                original = t.data
                t.data = original + t.xp.asarray(delta)
                plus = _output(fn, inputs).numpy().reshape(-1)
                t.data = original - t.xp.asarray(delta)
                minus = _output(fn, inputs).numpy().reshape(-1)
                t.data = original
            numeric[:, j] = (plus - minus) / (2 * eps)
        error = np.abs(numeric - jac) - (atol + rtol * np.abs(numeric))
        worst = np.unravel_index(np.argmax(error), error.shape)
        if error[worst] > 0:
            raise GradcheckError(
                f"gradcheck failed for input {position} (shape {t.shape}): worst Jacobian entry "
                f"d out[{worst[0]}] / d in[{worst[1]}]: numeric {numeric[worst]:.8g} vs analytic "
                f"{jac[worst]:.8g}; abs error {abs(numeric[worst] - jac[worst]):.3g}, max abs error "
                f"{np.abs(numeric - jac).max():.3g} (atol {atol}, rtol {rtol})")
