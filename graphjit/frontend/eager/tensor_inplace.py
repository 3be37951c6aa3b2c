"""In-place ops on `gj.Tensor` (`add_`, `mul_`, `x -= y`, `x[i] = v`, ...), PyTorch's rules:

- a leaf that requires grad may only change in place with grad mode off (`gj.no_grad()`, as
  optimizers do);
- otherwise the op is recorded like its out-of-place form applied to the old value, and the
  tensor takes over the new grad_fn;
- every change bumps the tensor's version, so a tape node that saved the old value refuses
  to run backward with the new one.

A tensor with a grad_fn gets a new array instead of being overwritten: its grad_fn saved the
old array, and the VJP rules read it. Tensors without one are overwritten, so that detach()
aliases see the change, as PyTorch's shared storage does.
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, GradientError, ShapeError
from graphjit.frontend import ops
from graphjit.frontend.eager.grad_mode import is_grad_enabled
from graphjit.frontend.eager.tensor import Tensor, bump_version, wrap
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind


def _requires_grad(x) -> bool:
    return isinstance(x, Tensor) and x._requires_grad


def apply_inplace(self: Tensor, compute, *others) -> Tensor:
    """Set self to `compute(old value of self)`, recording on the tape when grad mode is on."""
    recording = is_grad_enabled() and (self._requires_grad or any(map(_requires_grad, others)))
    if recording and self.grad_fn is None and self._requires_grad:
        raise GradientError(
            "a leaf tensor that requires grad was changed in place while grad mode is on; do it "
            "under `with gj.no_grad():` (as an optimizer step does) or on a clone()",
            location=user_location(),
        )
    result = compute(_old_value(self) if recording else self)
    result = _fit(self, result)
    _write(self, result._data)
    if result.grad_fn is not None:
        self.grad_fn, self._output_nr, self._requires_grad = result.grad_fn, result._output_nr, True
    return self


def _old_value(self: Tensor) -> Tensor:
    """What the recorded op reads: the current value, as a tensor the write cannot change."""
    if self.grad_fn is None:
        return wrap(self._data.copy())
    alias = wrap(self._data)  # _write gives self a new array; this one stays as it is
    alias.grad_fn, alias._output_nr, alias._requires_grad = self.grad_fn, self._output_nr, True
    return alias


def _fit(self: Tensor, result: Tensor) -> Tensor:
    if result._data.dtype != self._data.dtype:
        if not np.can_cast(result._data.dtype, self._data.dtype, "same_kind"):
            raise DTypeError(
                f"an in-place result of dtype {result.dtype.name} cannot be stored in a "
                f"{self.dtype.name} tensor",
                location=user_location(),
            )
        result = bind("cast", result, dtype=self.dtype.name)
    if result.shape != self.shape:
        raise ShapeError(
            f"an in-place result of shape {result.shape} cannot be stored in a tensor of shape "
            f"{self.shape}",
            location=user_location(),
        )
    return result


def _write(self: Tensor, array: np.ndarray) -> None:
    if self.grad_fn is None:
        np.copyto(self._data, array)
        bump_version(self)
    else:
        self._data = array
        bump_version(self, new_cell=True)


def _scaled(other, alpha):
    return other if alpha == 1 else ops.mul(other, alpha)


def add_(self, other, alpha=1):
    return apply_inplace(self, lambda old: ops.add(old, _scaled(other, alpha)), other)


def sub_(self, other, alpha=1):
    return apply_inplace(self, lambda old: ops.sub(old, _scaled(other, alpha)), other)


def mul_(self, other):
    return apply_inplace(self, lambda old: ops.mul(old, other), other)


def div_(self, other):
    return apply_inplace(self, lambda old: ops.div(old, other), other)


def pow_(self, exponent):
    return apply_inplace(self, lambda old: ops.pow(old, exponent), exponent)


def clamp_(self, min=None, max=None):  # (PyTorch's argument names)
    return apply_inplace(self, lambda old: old.clamp(min, max), min, max)


def copy_(self, source):
    """Every element set from `source` (a number, or a tensor broadcast to this shape).
    Recorded as a select, so gradient flows to `source` and none to the old value (nor do
    nan or inf in the old value leak into the result)."""
    everywhere = wrap(np.ones(self.shape, dtype=np.bool_))
    return apply_inplace(self, lambda old: ops.where(everywhere, source, old), source)


def zero_(self):
    return copy_(self, 0)


def setitem(self, key, value) -> None:
    """`x[key] = value`, with NumPy indexing; not recorded, so only outside the tape."""
    if is_grad_enabled() and (self._requires_grad or _requires_grad(value)):
        raise GradientError(
            "x[...] = value is not recorded on the tape; use gj.where or gj.concat to build "
            "the tensor, or assign under gj.no_grad()",
            location=user_location(),
        )
    array = self._data.copy() if self.grad_fn is not None else self._data
    array[key] = value._data if isinstance(value, Tensor) else value
    if self.grad_fn is not None:
        _write(self, array)
    else:
        bump_version(self)


INPLACE_METHODS = {
    "add_": add_,
    "sub_": sub_,
    "mul_": mul_,
    "div_": div_,
    "pow_": pow_,
    "clamp_": clamp_,
    "clip_": clamp_,
    "fill_": copy_,
    "zero_": zero_,
    "copy_": copy_,
    "__iadd__": add_,
    "__isub__": sub_,
    "__imul__": mul_,
    "__itruediv__": div_,
    "__setitem__": setitem,
}
