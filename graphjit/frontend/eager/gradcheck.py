"""`gradcheck`: autograd's Jacobian against central finite differences, in float64."""

from __future__ import annotations

import numpy as np

from graphjit.errors import GradientError
from graphjit.frontend.eager.engine import grad
from graphjit.frontend.eager.grad_mode import no_grad
from graphjit.frontend.eager.tensor import Tensor, wrap
from graphjit.ir.types import is_float_array


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-4, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:  # fmt: skip
    """Check `fn`'s gradients with respect to the inputs that require grad, element by
    element: |analytical - numerical| <= atol + rtol * |numerical|. Floating inputs are
    converted to float64. On a mismatch raise GradientError (or return False) naming the
    worst element."""
    args = _float64_args((inputs,) if isinstance(inputs, Tensor) else tuple(inputs))
    wrt = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
    if not wrt:
        raise GradientError("gradcheck: no input requires grad")
    outputs = _float_outputs(fn(*args))
    for out_index, out in enumerate(outputs):
        analytical = _analytical(out, [args[i] for i in wrt])
        for position, arg_index in enumerate(wrt):
            numerical = _numerical(fn, args, arg_index, out_index, eps)
            failure = _worst_mismatch(analytical[position], numerical, atol, rtol)
            if failure is not None:
                message = _describe(failure, out_index, arg_index, out.shape, args[arg_index].shape)
                if raise_exception:
                    raise GradientError(message)
                return False
    return True


def _float64_args(args: tuple) -> list:
    out = []
    for a in args:
        if isinstance(a, Tensor) and is_float_array(a._data):
            copy = wrap(a._data.astype(np.float64))
            out.append(copy.requires_grad_(a.requires_grad))
        else:
            out.append(a)
    return out


def _float_outputs(result) -> list:
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    return [o for o in outputs if isinstance(o, Tensor) and is_float_array(o._data)]


def _analytical(out: Tensor, wrt: list) -> list:
    """One Jacobian (output size x input size) per input, one backward pass per output
    element."""
    jacobians = [np.zeros((out._data.size, x._data.size)) for x in wrt]
    if not out.requires_grad:
        return jacobians
    for k in range(out._data.size):
        seed = np.zeros(out._data.size)
        seed[k] = 1.0
        seed = wrap(seed.reshape(out.shape).astype(out._data.dtype))
        grads = grad([out], wrt, [seed], retain_graph=True, allow_unused=True)
        for jacobian, g in zip(jacobians, grads):
            if g is not None:
                jacobian[k] = g._data.ravel()
    return jacobians


def _numerical(fn, args: list, arg_index: int, out_index: int, eps: float) -> np.ndarray:
    """d output / d args[arg_index] by central differences, one column per input element."""
    probe = list(args)
    values = args[arg_index]._data.copy()
    probe[arg_index] = wrap(values)
    columns = []
    with no_grad():
        for j in range(values.size):
            flat = values.reshape(-1)
            original = flat[j]
            flat[j] = original + eps
            plus = _float_outputs(fn(*probe))[out_index]._data.ravel().copy()
            flat[j] = original - eps
            minus = _float_outputs(fn(*probe))[out_index]._data.ravel()
            flat[j] = original
            columns.append((plus - minus) / (2 * eps))
    return np.stack(columns, axis=1) if columns else np.zeros((0, 0))


def _worst_mismatch(analytical, numerical, atol, rtol):
    """The element that exceeds the tolerance most, with both values; None if none does."""
    excess = np.abs(analytical - numerical) - (atol + rtol * np.abs(numerical))
    excess = np.where(np.isnan(excess), np.inf, excess)  # a nan is the worst mismatch
    if excess.size == 0 or excess.max() <= 0:
        return None
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    return worst, analytical[worst], numerical[worst]


def _describe(failure, out_index, arg_index, out_shape, in_shape) -> str:
    (row, column), analytical, numerical = failure
    out_element = np.unravel_index(row, out_shape) if out_shape else ()
    in_element = np.unravel_index(column, in_shape) if in_shape else ()
    return (
        f"gradcheck: Jacobian mismatch for output {out_index} with respect to input {arg_index}"
        f" at output element {tuple(map(int, out_element))}, input element "
        f"{tuple(map(int, in_element))}: analytical {analytical:.6g}, numerical {numerical:.6g}"
    )
