"""Slices whose start is a run-time value: dynamic_slice and dynamic_update_slice (JAX's names), the
slices of `x[i:i + b]` with `i` a graph value, differentiable.

A window has a static size (the result's shape must be known when the Session specialises)
and starts that are 0-d integer operands, one per leading axis (`len(starts) <= rank`; the
axes after them are taken whole). Where a window starts is decided by `resolve_starts`, the
one definition every backend follows:

- `wrap`: axes whose negative start counts from the end first (x[i] with i = -1, as NumPy);
- mode "clamp" (JAX's lax.dynamic_slice): the start is clamped into [0, dim - size], so the
  window always lies inside the operand;
- mode "check" (TF1's tf.slice, and `x[i:i + b]`): a start outside [0, dim - size] is a
  RuntimeCheckError, on every backend, before anything is written.

A size of None in `sizes` means the whole axis (its start must then resolve to 0): that is
how a slice keeps an axis whose length is unknown until specialisation.

The gradients are windows too: dynamic_slice's VJP writes the cotangent into zeros with
dynamic_update_slice; dynamic_update_slice's VJP zeroes the window of the cotangent (for the
operand) and reads it back with dynamic_slice_like (for the update: a window shaped like the
update, whose dimensions may be unknown until specialisation). Start operands are integers
and get no gradient."""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, RuntimeCheckError, ShapeError
from graphjit.ir.ops import REQUIRED, OpDef, P, register
from graphjit.ir.patterns import constant_value
from graphjit.ir.types import shape_str

MODES = ("clamp", "check")


# ---- where a window starts: the semantics every backend implements ---------------------


def out_of_range_message(axis: int, size: int, dim: int, wraps: bool) -> str:
    """The RuntimeCheckError's words for a start outside its range (no start value: the
    native backends report a static message)."""
    low = -dim if wraps else 0
    return (
        f"slice start out of range on axis {axis}: a window of {size} along a dimension of "
        f"{dim} needs a start in [{low}, {dim - size}]"
    )


def window_sizes(shape, sizes) -> list[int]:
    """The window's extent along each axis that has a start (None: the whole axis)."""
    return [shape[a] if s is None else s for a, s in enumerate(sizes)]


def resolve_start(start: int, axis: int, dim: int, size: int, mode: str, wrap) -> int:
    """Where the window along `axis` begins (see the module docstring)."""
    wraps = axis in wrap
    if wraps and start < 0:
        start += dim
    if mode == "check" and not 0 <= start <= dim - size:
        raise RuntimeCheckError(out_of_range_message(axis, size, dim, wraps))
    return min(max(start, 0), dim - size)


def resolve_starts(starts, shape, sizes, mode, wrap) -> list[int]:
    return [
        resolve_start(int(s), axis, shape[axis], size, mode, wrap)
        for axis, (s, size) in enumerate(zip(starts, window_sizes(shape, sizes), strict=True))
    ]


def window(starts, sizes) -> tuple:
    """The NumPy index of a resolved window over the leading axes."""
    return tuple(slice(s, s + n) for s, n in zip(starts, sizes, strict=True))


# ---- shape and dtype rules -----------------------------------------------------------------


def _check_starts(types, rank: int, attrs) -> None:
    if len(types) > rank:
        raise ShapeError(f"{len(types)} start indices for a rank-{rank} tensor")
    for t in types:
        if t.rank != 0 or t.dtype.np.kind not in "iu":
            raise DTypeError(
                f"start indices must be 0-d integer tensors, got {t.dtype.name}{shape_str(t.shape)}"
            )
    if attrs["mode"] not in MODES:
        raise ShapeError(f"mode must be one of {MODES}, got {attrs['mode']!r}")
    if any(not 0 <= a < len(types) for a in attrs["wrap"]):
        raise ShapeError(f"wrap axes {attrs['wrap']} must be axes that have a start")


def _fits(size, dim, axis) -> None:
    if size is not None and dim is not None and size > dim:
        raise ShapeError(f"a window of {size} does not fit axis {axis} of length {dim}")


def _dynamic_slice_infer(types, attrs):
    x, starts, sizes = types[0], types[1:], tuple(attrs["sizes"])
    _check_starts(starts, x.rank, attrs)
    if len(sizes) != len(starts):
        raise ShapeError(f"{len(sizes)} sizes for {len(starts)} start indices")
    for axis, (size, dim) in enumerate(zip(sizes, x.shape)):
        if size is not None and (not isinstance(size, (int, np.integer)) or size < 0):
            raise ShapeError(f"slice sizes must be non-negative ints or None, got {sizes}")
        _fits(size, dim, axis)
    shape = [d if s is None else int(s) for s, d in zip(sizes, x.shape)]
    return [x.with_shape(shape + list(x.shape[len(sizes) :]))]


def _same_rank_and_dtype(x, window_type, what: str) -> None:
    if window_type.dtype != x.dtype:
        raise DTypeError(f"the {what} is {window_type.dtype.name}, the operand {x.dtype.name}")
    if window_type.rank != x.rank:
        raise ShapeError(
            f"the {what} {shape_str(window_type.shape)} and the operand {shape_str(x.shape)} "
            "differ in rank"
        )


def _window_fits(x, window_type, n_starts: int, what: str) -> None:
    """Axes with a start hold a window no longer than the operand's; the others match."""
    for axis, (w, d) in enumerate(zip(window_type.shape, x.shape)):
        if axis < n_starts:
            _fits(w, d, axis)
        elif w is not None and d is not None and w != d:
            raise ShapeError(
                f"the {what} {shape_str(window_type.shape)} must span axis {axis} of the "
                f"operand {shape_str(x.shape)} (it has no start index)"
            )


def _dynamic_slice_like_infer(types, attrs):
    x, ref, starts = types[0], types[1], types[2:]
    _check_starts(starts, x.rank, attrs)
    _same_rank_and_dtype(x, ref.with_dtype(x.dtype), "window")
    _window_fits(x, ref, len(starts), "window")
    return [ref.with_dtype(x.dtype)]


def _dynamic_update_slice_infer(types, attrs):
    x, update, starts = types[0], types[1], types[2:]
    _check_starts(starts, x.rank, attrs)
    _same_rank_and_dtype(x, update, "update")
    _window_fits(x, update, len(starts), "update")
    return [x]


# ---- reference kernels ---------------------------------------------------------------------


def _dynamic_slice_kernel(x, *starts, sizes, mode, wrap):
    extents = window_sizes(x.shape, sizes)
    at = resolve_starts(starts, x.shape, sizes, mode, wrap)
    return x[window(at, extents)].copy()


def _dynamic_slice_like_kernel(x, ref, *starts, mode, wrap):
    sizes = ref.shape[: len(starts)]
    return _dynamic_slice_kernel(x, *starts, sizes=sizes, mode=mode, wrap=wrap)


def _dynamic_update_slice_kernel(x, update, *starts, mode, wrap):
    extents = update.shape[: len(starts)]
    at = resolve_starts(starts, x.shape, extents, mode, wrap)
    out = x.copy()
    out[window(at, extents)] = update
    return out


# ---- gradients ------------------------------------------------------------------------------


def _zeros_like(v):
    return P.broadcast_like(0, v)


def _window_attrs(attrs) -> dict:
    """The attributes that place a window: a gradient must put it where the forward did."""
    return {"mode": attrs["mode"], "wrap": attrs["wrap"]}


def _dynamic_slice_vjp(cts, ins, outs, attrs):
    x, starts = ins[0], ins[1:]
    dx = P.dynamic_update_slice(_zeros_like(x), cts[0], *starts, **_window_attrs(attrs))
    return [dx] + [None] * len(starts)


def _dynamic_slice_like_vjp(cts, ins, outs, attrs):
    x, starts = ins[0], ins[2:]
    dx = P.dynamic_update_slice(_zeros_like(x), cts[0], *starts, **_window_attrs(attrs))
    return [dx, None] + [None] * len(starts)


def _dynamic_update_slice_vjp(cts, ins, outs, attrs):
    g, update, starts = cts[0], ins[1], ins[2:]
    placed = _window_attrs(attrs)
    dx = P.dynamic_update_slice(g, _zeros_like(update), *starts, **placed)
    dupdate = P.dynamic_slice_like(g, update, *starts, **placed)
    return [dx, dupdate] + [None] * len(starts)


PLACEMENT = {"mode": "clamp", "wrap": ()}

register(
    OpDef(
        "dynamic_slice",
        _dynamic_slice_infer,
        _dynamic_slice_kernel,
        _dynamic_slice_vjp,
        attrs={"sizes": REQUIRED, **PLACEMENT},
    )
)
# A window shaped like `ref` (read for its shape alone): dynamic_update_slice's VJP for an
# update whose dimensions are unknown until the Session specialises them.
register(
    OpDef(
        "dynamic_slice_like",
        _dynamic_slice_like_infer,
        _dynamic_slice_like_kernel,
        _dynamic_slice_like_vjp,
        attrs=dict(PLACEMENT),
        shape_only=(1,),
    )
)
# The result is the operand with the window replaced; it may be written over the operand's
# buffer (then only the window is written).
register(
    OpDef(
        "dynamic_update_slice",
        _dynamic_update_slice_infer,
        _dynamic_update_slice_kernel,
        _dynamic_update_slice_vjp,
        attrs=dict(PLACEMENT),
        overwrites=((0, 0),),
    )
)


# ---- static window lengths: what makes x[i:i + b] a window of b ------------------------------

_ONE = "1"  # the constant term's key in a linear form
_MAX_DEPTH = 32  # how deep the graph is followed (bounds are short expressions)


def static_length(start, stop) -> int | None:
    """stop - start when the graph makes it a constant, else None. Each bound (a graph
    value, a Python int, or None for 0) is read as a linear form in the values it is built
    from (adds, subtracts, negations, multiplications by constants, integer casts), so
    `x[i:i + b]`, `x[i * b:(i + 1) * b]` and `x[k - 1:k + 1]` are windows of static length."""
    difference = _combine(_linear_form(stop), _linear_form(start), -1)
    if any(coefficient for atom, coefficient in difference.items() if atom is not _ONE):
        return None
    return difference.get(_ONE, 0)


def _linear_form(v, depth: int = 0) -> dict:
    if v is None:
        return {}
    if isinstance(v, (int, np.integer)):
        return {_ONE: int(v)}
    constant = constant_value(v)
    if constant is not None and constant.ndim == 0 and constant.dtype.kind in "iu":
        return {_ONE: int(constant)}
    op = v.op
    if op is None or depth >= _MAX_DEPTH or not v.type.dtype.is_integer:
        return {v: 1}
    forms = [_linear_form(w, depth + 1) for w in op.operands]
    if op.name == "add":
        return _combine(forms[0], forms[1], 1)
    if op.name == "sub":
        return _combine(forms[0], forms[1], -1)
    if op.name == "neg":
        return _combine({}, forms[0], -1)
    if op.name == "cast" and op.operands[0].type.dtype.is_integer:
        return forms[0]
    if op.name == "mul":
        for factor, other in ((forms[0], forms[1]), (forms[1], forms[0])):
            if set(factor) <= {_ONE}:
                return _combine({}, other, factor.get(_ONE, 0))
    return {v: 1}


def _combine(a: dict, b: dict, scale: int) -> dict:
    """a + scale * b."""
    out = dict(a)
    for atom, coefficient in b.items():
        out[atom] = out.get(atom, 0) + scale * coefficient
    return out


# ---- what the code generators ask -------------------------------------------------------------

# op name -> the index of its first start operand (the starts run to the last operand)
FIRST_START = {"dynamic_slice": 1, "dynamic_slice_like": 2, "dynamic_update_slice": 2}


def window_operands(op) -> tuple:
    """(operand, window, starts) of a windowed op: the tensor the window lies in, the value
    shaped like the window (the result of a slice, the update of an update), and the start
    operands."""
    starts = list(op.operands[FIRST_START[op.name] :])
    if op.name == "dynamic_update_slice":
        return op.operands[0], op.operands[1], starts
    return op.operands[0], op.result, starts
