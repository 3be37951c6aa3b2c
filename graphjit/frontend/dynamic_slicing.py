"""Slices with run-time bounds: gj.slice (TF1), dynamic_slice and dynamic_update_slice (JAX), and
x[i:i + b] with i a graph value (dynamic_getitem, which shape_ops.getitem calls).

Every window has a static size and run-time starts (see ir/ops/dynamic_slice.py). Where the
names come from decides what an out-of-range start does: JAX's functions count a negative
start from the end and clamp it so that the window stays inside the operand, TF1's `slice` and Python indexing (`x[i]`,
`x[i:i + b]`) raise a RuntimeCheckError when the program runs. Eager tensors take the same
ops, so eager code, gj.function and graphs agree on every start.

This module's `slice` shadows the builtin: the builtin is `builtins.slice` here."""

from __future__ import annotations

import builtins
import operator

import numpy as np

from graphjit.errors import DTypeError, ShapeError
from graphjit.frontend import shape_ops
from graphjit.frontend.convert import constant_like, is_tensor, unwrap
from graphjit.frontend.ops import as_tensor
from graphjit.ir.core import Value, user_location
from graphjit.ir.ops import bind
from graphjit.ir.ops.dynamic_slice import static_length
from graphjit.ir.types import int64

__all__ = ["slice", "dynamic_slice", "dynamic_update_slice"]

_USE_DYNAMIC_SLICE = (
    "; for other windows give the size explicitly: gj.dynamic_slice(x, starts, sizes) (JAX) "
    "or gj.slice(x, begin, size) (TF1)"
)


# ---- start operands --------------------------------------------------------------------------


def _start_operand(value, x):
    """One start index as a 0-d integer tensor in x's mode (Python ints become int64)."""
    value = unwrap(value)
    if is_tensor(value):
        if value.ndim != 0 or not value.dtype.is_integer:
            raise DTypeError(
                f"a start index must be a 0-d integer tensor, got {value.dtype.name} of rank "
                f"{value.ndim}",
                location=user_location(),
            )
        return value
    try:
        return constant_like(operator.index(value), int64, context=(x,))
    except TypeError:
        raise DTypeError(
            f"a start index must be an int or a 0-d integer tensor, got {value!r}",
            location=user_location(),
        ) from None


def _start_operands(starts, x, what: str) -> list:
    """A sequence of start indices, or a 1-D integer tensor of them, one per axis of x."""
    starts = unwrap(starts)
    if is_tensor(starts) and starts.ndim == 1:
        if starts.shape[0] is None:
            raise ShapeError(f"{what}: the length of a tensor of starts must be known")
        starts = [shape_ops.getitem(starts, k) for k in range(starts.shape[0])]
    starts = list(np.asarray(starts).tolist()) if isinstance(starts, np.ndarray) else list(starts)
    if len(starts) != x.ndim:
        raise ShapeError(
            f"{what}: {len(starts)} start indices for a rank-{x.ndim} tensor",
            location=user_location(),
        )
    return [_start_operand(s, x) for s in starts]


def _static_sizes(sizes, what: str) -> list[int]:
    sizes = np.asarray(unwrap(sizes)) if not is_tensor(unwrap(sizes)) else None
    if sizes is None or sizes.ndim != 1 or sizes.dtype.kind not in "iu":
        raise ShapeError(
            f"{what}: sizes must be a list of Python ints (the window's shape is static)",
            location=user_location(),
        )
    return [int(s) for s in sizes]


# ---- JAX's lax.dynamic_slice / dynamic_update_slice --------------------------------------------


def _jax_placement(x) -> dict:
    """JAX's placement (lax's default, allow_negative_indices=True): every axis counts a
    negative start from the end once, then clamps."""
    return {"mode": "clamp", "wrap": tuple(range(x.ndim))}


def dynamic_slice(operand, start_indices, slice_sizes):
    """The window of static shape `slice_sizes` of `operand` starting at `start_indices`
    (ints or 0-d integer tensors, one per axis; or a 1-D integer tensor), as JAX's
    `lax.dynamic_slice`: a negative start counts from the end, then each start is clamped
    into [0, dim - size], so the window always lies inside the operand. Differentiable in
    `operand`."""
    x = as_tensor(operand)
    starts = _start_operands(start_indices, x, "dynamic_slice")
    sizes = _static_sizes(slice_sizes, "dynamic_slice")
    return bind("dynamic_slice", x, *starts, sizes=tuple(sizes), **_jax_placement(x))


def dynamic_update_slice(operand, update, start_indices):
    """`operand` with the window at `start_indices` replaced by `update` (of operand's rank
    and dtype), as JAX's `lax.dynamic_update_slice`: starts are placed as dynamic_slice
    places them (negative ones count from the end, then clamped so that the update fits).
    Differentiable in `operand` and `update`."""
    x = as_tensor(operand)
    update = unwrap(update)
    if not is_tensor(update):
        update = constant_like(update, x.dtype, context=(x,))
    starts = _start_operands(start_indices, x, "dynamic_update_slice")
    return bind("dynamic_update_slice", x, update, *starts, **_jax_placement(x))


# ---- TF1's tf.slice ---------------------------------------------------------------------------


def slice(input_, begin, size, name=None):  # noqa: A001 (TF1's name; `name` is accepted, unused)
    """TF1's `tf.slice`: the window of `input_` starting at `begin` (ints or 0-d integer
    tensors, or a 1-D integer tensor) of shape `size` (Python ints; -1 takes the rest of
    the axis, which needs that axis's begin to be an int). A begin that puts the window
    outside the input is a RuntimeCheckError when the program runs, as TF1 errors."""
    x = as_tensor(input_)
    sizes = _static_sizes(size, "slice")
    starts = _start_operands(begin, x, "slice")
    if len(sizes) != x.ndim:
        raise ShapeError(f"slice: {len(sizes)} sizes for a rank-{x.ndim} tensor")
    begins = [None] * x.ndim if is_tensor(unwrap(begin)) else list(begin)  # (known ones)
    resolved = [
        _to_the_end(b, d, axis) if s == -1 else s
        for axis, (s, b, d) in enumerate(zip(sizes, begins, x.shape))
    ]
    return bind("dynamic_slice", x, *starts, sizes=tuple(resolved), mode="check")


def _to_the_end(begin, dim, axis):
    """tf.slice's size -1: the rest of the axis, from a begin known now."""
    if isinstance(begin, (int, np.integer)) and not isinstance(begin, bool):
        if dim is not None:
            return max(dim - int(begin), 0)
        if begin == 0:
            return None  # the whole axis, whatever its length turns out to be
    raise ShapeError(
        f"slice: a size of -1 on axis {axis} needs its begin to be an int (and the axis's "
        "length known unless begin is 0): the window's shape must be static",
        location=user_location(),
    )


# ---- x[i], x[i:i + b] ---------------------------------------------------------------------------


def dynamic_getitem(x, key: tuple):
    """x[key] where some int index or slice bound is a 0-d integer tensor: static entries
    are applied by the static getitem first, then one checked dynamic_slice places the
    run-time ones (`x[i]`: a window of 1 whose negative index counts from the end, as in
    NumPy; `x[start:stop]`: a window of stop - start, which the graph must make a constant,
    as in x[i:i + b] or x[i * b:(i + 1) * b]), and the run-time int indices are squeezed."""
    key = shape_ops.expand_ellipsis(key, x.ndim)
    static_key, windows = [], []  # windows: (axis of the static result, start, size, is_index)
    out_axis = 0
    for k in key:
        if k is None or (isinstance(k, builtins.slice) and not shape_ops.is_runtime_index(k)):
            static_key.append(k)
            out_axis += 1
        elif isinstance(k, builtins.slice):
            windows.append((out_axis, *_slice_window(k), False))
            static_key.append(builtins.slice(None))
            out_axis += 1
        elif is_tensor(unwrap(k)):
            windows.append((out_axis, unwrap(k), 1, True))
            static_key.append(builtins.slice(None))
            out_axis += 1
        else:
            static_key.append(k)  # a Python int: the static getitem checks and drops it
    y = shape_ops.getitem(x, tuple(static_key))
    return _place_windows(y, windows)


def _slice_window(k: builtins.slice) -> tuple:
    """(start, static length) of a slice with run-time bounds and a step of 1."""
    step = unwrap(k.step)
    if is_tensor(step) or step not in (None, 1):
        raise ShapeError(
            f"a slice with run-time bounds must have a step of 1, got {step!r}"
            + _USE_DYNAMIC_SLICE,
            location=user_location(),
        )
    start, stop = unwrap(k.start), unwrap(k.stop)
    length = _length(start, stop)
    if length is None:
        raise ShapeError(
            "a slice with run-time bounds needs stop - start known when the graph is built "
            "(write x[i:i + b] with b a Python int)" + _USE_DYNAMIC_SLICE,
            location=user_location(),
        )
    return (0 if start is None else start), max(length, 0)


def _length(start, stop) -> int | None:
    """stop - start: read from the graph for graph values, from the values for eager
    tensors (whose values are known)."""
    if stop is None:
        return None  # x[i:]: the rest of the axis, whose length depends on i
    if isinstance(start, Value) or isinstance(stop, Value):
        return static_length(start, stop)
    return operator.index(stop) - (0 if start is None else operator.index(start))


def _place_windows(y, windows: list):
    """One checked dynamic_slice over the leading axes of y up to the last window (the
    axes between take their whole length), then the run-time int indices squeezed."""
    if not windows:
        return y
    last = windows[-1][0]
    starts, sizes = [0] * (last + 1), [None] * (last + 1)
    wrap, squeeze = [], []
    for axis, start, size, is_index in windows:
        starts[axis], sizes[axis] = start, size
        if is_index:
            wrap.append(axis)
            squeeze.append(axis)
    operands = [_start_operand(s, y) for s in starts]
    y = bind("dynamic_slice", y, *operands, sizes=tuple(sizes), mode="check", wrap=tuple(wrap))
    return bind("squeeze", y, axes=tuple(squeeze)) if squeeze else y
