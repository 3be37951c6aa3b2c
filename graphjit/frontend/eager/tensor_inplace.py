"""In-place ops on `gj.Tensor` (`add_`, `mul_`, `x -= y`, `x[i] = v`, ...), PyTorch's rules:

- a leaf that requires grad, or a view of one, may only change in place with grad mode off
  (`gj.no_grad()`, as optimizers do);
- otherwise the op is recorded like its out-of-place form applied to the old value (a copy,
  so the write cannot change what that node saved), and the tensor takes over the new
  grad_fn; through a view, the base gets a CopySlices node instead and the view is
  re-derived from it (views.py);
- the new value is written into the tensor's own storage, so its base, its other views and
  its detach() aliases see it, and the shared version is bumped: a tape node that saved the
  old value and reads it in backward refuses to run (node.py).
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, GradientError, ShapeError
from graphjit.frontend import ops
from graphjit.frontend.eager.grad_mode import is_grad_enabled
from graphjit.frontend.eager.tensor import Tensor, bump_version, wrap
from graphjit.frontend.eager.views import check_view_of_leaf, check_writable, rebase
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind


def _requires_grad(x) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


def apply_inplace(self: Tensor, compute, *others) -> Tensor:
    """Set self to `compute(old value of self)`, recording on the tape when grad mode is on."""
    check_writable(self)
    grad_mode = is_grad_enabled()
    if grad_mode and self._base is not None:
        check_view_of_leaf(self)
    recording = grad_mode and (self.requires_grad or any(map(_requires_grad, others)))
    if recording and self._grad_fn is None and self._requires_grad:
        raise GradientError(
            "a leaf tensor that requires grad was changed in place while grad mode is on; do it "
            "under `with gj.no_grad():` (as an optimizer step does) or on a clone()",
            location=user_location(),
        )
    result = compute(_old_value(self) if recording else self)
    result = _fit(self, result)
    np.copyto(self._data, result._data)
    bump_version(self)
    if recording and result._requires_grad:
        if self._base is not None:
            rebase(self, result)
        else:
            self._grad_fn, self._output_nr = result._grad_fn, result._output_nr
            self._requires_grad = True
    return self


def _old_value(self: Tensor) -> Tensor:
    """What the recorded op reads: the current value, with self's history, in an array the
    write cannot change."""
    old = wrap(self._data.copy())
    if self._requires_grad:
        old._grad_fn, old._output_nr, old._requires_grad = self._grad_fn, self._output_nr, True
    return old


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
    """Every element set from `source` (a number, or a tensor broadcast to this shape),
    converted to this tensor's dtype as PyTorch's copy_ converts (floats into an integer
    tensor truncate). Recorded as a select, so gradient flows to `source` and none to the
    old value (nor do nan or inf in the old value leak into the result)."""
    if isinstance(source, Tensor) and source.dtype != self.dtype:
        source = ops.cast(source, self.dtype)
    everywhere = wrap(np.ones(self.shape, dtype=np.bool_))
    return apply_inplace(self, lambda old: ops.where(everywhere, source, old), source)


def zero_(self):
    return copy_(self, 0)


def _basic_key(key):
    """The key with 0-d integer tensors as ints, if it is basic indexing; else None."""
    out = []
    for k in key if isinstance(key, tuple) else (key,):
        if isinstance(k, Tensor) and k.ndim == 0 and k._data.dtype.kind in "iu":
            k = int(k)
        if not (k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice))):
            return None
        out.append(k)
    return tuple(out)


def setitem(self, key, value) -> None:
    """`x[key] = value`. Basic indexing (ints, slices, None, ...) is `x[key].copy_(value)`, as
    in PyTorch: recorded when grad mode is on and either side requires grad. Other keys
    (masks, index arrays) use NumPy's indexing and are not recorded."""
    recording = is_grad_enabled() and (self.requires_grad or _requires_grad(value))
    basic = _basic_key(key)
    if basic is not None:
        if recording:
            target = self[basic]
            extra = value.ndim - target.ndim if isinstance(value, Tensor) else 0
            if extra > 0 and all(d == 1 for d in value.shape[:extra]):
                value = value.reshape(value.shape[extra:])  # (leading 1s, as NumPy allows)
            copy_(target, value)
            return
        check_writable(self)
        if is_grad_enabled() and self._base is not None:
            check_view_of_leaf(self)
    elif recording:
        raise GradientError(
            "x[mask or index array] = value is not recorded on the tape; use gj.where or "
            "gj.concat to build the tensor, use basic indexing (ints and slices), or assign "
            "under gj.no_grad()",
            location=user_location(),
        )
    try:
        self._data[key] = value._data if isinstance(value, Tensor) else value
    except (IndexError, ValueError) as e:  # (an index out of range, a value that does not fit)
        raise ShapeError(f"x[...] = value: {e}", location=user_location()) from None
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
