"""Shape functions of the public namespace and basic-slicing `x[...]`."""

from __future__ import annotations

import numpy as np

from graphjit.errors import ShapeError
from graphjit.frontend.convert import is_tensor, plain_eager, unwrap
from graphjit.frontend.ops import as_tensor, axis_aliases, normalize_axes, operands
from graphjit.ir.core import user_location
from graphjit.ir.ops import as_list, bind
from graphjit.ir.types import as_dims


def shape_args(shape: tuple) -> tuple:
    """A method's shape given as separate ints or as one sequence: `x.reshape(2, 3)` and
    `x.reshape((2, 3))` alike."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        _not_computed(shape[0])
        return tuple(shape[0])
    return shape


def static_dims(shape) -> tuple:
    """A shape argument as ints, known when the op is built (see `_not_computed`)."""
    _not_computed(shape)
    return as_dims(shape)


def _not_computed(shape) -> None:
    """A shape the graph computes (gj.shape(x), or a list holding its elements) is refused
    with what to write instead: graphjit's shapes are known when an op is built, except
    the dimensions a placeholder leaves unknown, which every op carries through."""
    dims = [shape] if is_tensor(unwrap(shape)) else shape
    if isinstance(dims, (list, tuple)) and any(is_tensor(unwrap(d)) for d in dims):
        raise ShapeError(
            "a shape computed by the graph (such as gj.shape(x)) is not supported here: give "
            "Python ints (x.shape's known dimensions), and for a tensor shaped like x use "
            "gj.zeros_like(x) / gj.ones_like(x), or x * 0 + value",
            location=user_location(),
        )


def reshape(x, shape):
    """Reshape; one dimension may be -1 (inferred). TF1's `[gj.shape(x)[0], -1]` idiom:
    where only one dimension is a tensor and the others are ints, that dimension is the one
    the reshape infers (the element count fixes it), so it stands for -1."""
    return bind("reshape", as_tensor(x), shape=static_dims(_inferred_from_tensor(shape)))


def _inferred_from_tensor(shape):
    if not isinstance(shape, (list, tuple)):
        return shape
    computed = [i for i, d in enumerate(shape) if is_tensor(unwrap(d))]
    if not computed:
        return shape
    if len(computed) > 1 or any(isinstance(d, (int, np.integer)) and d == -1 for d in shape):
        raise ShapeError(
            "reshape: more than one dimension is unknown when the op is built (-1 or "
            "computed by the graph, such as gj.shape(x)[0]): write -1 for one of them and "
            "ints for the others (the product of x's known dimensions: [-1, 6] for x of "
            "shape (None, 2, 3))",
            location=user_location(),
        )
    return [-1 if i == computed[0] else d for i, d in enumerate(shape)]


def transpose(x, axes=None):
    x = as_tensor(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else normalize_perm(axes, x.ndim)
    return bind("transpose", x, perm=perm)


def normalize_perm(axes, rank: int) -> tuple:
    perm = tuple(int(a) % rank if -rank <= a < rank else int(a) for a in axes)
    if sorted(perm) != list(range(rank)):
        raise ShapeError(
            f"axes {tuple(axes)} are not a permutation of {rank} axes", location=user_location()
        )
    return perm


def broadcast_to(x, shape):
    return bind("broadcast_to", as_tensor(x), shape=static_dims(shape))


@axis_aliases
def expand_dims(x, axis):
    x = as_tensor(x)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return bind("expand_dims", x, axes=normalize_axes(axes, x.ndim + len(axes)))


@axis_aliases
def squeeze(x, axis=None):
    """Remove size-1 axes (all known ones when axis is None)."""
    x = as_tensor(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = normalize_axes(axis, x.ndim)
    return bind("squeeze", x, axes=axes) if axes else x


@axis_aliases
def concat(xs, axis=0):
    if not len(xs):
        raise ShapeError("concat needs at least one tensor", location=user_location())
    xs = operands(*xs)
    (axis,) = normalize_axes(axis, xs[0].ndim)
    return bind("concat", *xs, axis=axis) if len(xs) > 1 else xs[0]


@axis_aliases
def stack(xs, axis=0):
    if not len(xs):
        raise ShapeError("stack needs at least one tensor", location=user_location())
    xs = operands(*xs)
    (axis,) = normalize_axes(axis, xs[0].ndim + 1)
    return concat([bind("expand_dims", x, axes=(axis,)) for x in xs], axis=axis)


def split_like(x, refs, axis):
    return as_list(bind("split_like", x, *refs, axis=axis))


# ---- basic slicing -----------------------------------------------------------------------


def is_array_index(k) -> bool:
    """An index that selects by an array of positions or a mask (NumPy's advanced
    indexing): a list, a NumPy array, a bool, or a tensor that is not a 0-d integer."""
    if isinstance(k, (list, np.ndarray, bool, np.bool_)):
        return True
    return is_tensor(k) and (k.ndim > 0 or k.dtype.is_bool)


def is_runtime_index(k) -> bool:
    """An int index or slice bound known only when the program runs: a 0-d tensor."""
    if isinstance(k, slice):
        return any(is_tensor(b) for b in (k.start, k.stop, k.step))
    return is_tensor(k)


def _one_axis(k) -> int:
    return 0 if k is None or k is Ellipsis else 1


def expand_ellipsis(key: tuple, rank: int, consumed=_one_axis) -> tuple:
    """`key` with its Ellipsis (at most one) replaced by the full slices it stands for;
    `consumed(k)` is how many axes an entry indexes (a boolean mask: its rank). Entries are
    compared by identity: `in` and `index` would compare tensors elementwise."""
    key = tuple(key)
    if sum(k is Ellipsis for k in key) > 1:
        raise ShapeError("an index can only have a single ellipsis", location=user_location())
    used = sum(consumed(k) for k in key)
    if used > rank:
        raise ShapeError(
            f"too many indices ({used}) for a rank-{rank} tensor", location=user_location()
        )
    at = [n for n, k in enumerate(key) if k is Ellipsis]
    if not at:
        return key
    return key[: at[0]] + (slice(None),) * (rank - used) + key[at[0] + 1 :]


def getitem(x, key):
    """x[key]: basic indexing (ints, slices, None for a new axis, Ellipsis) here; integer
    and boolean array indices in frontend/indexing.py; run-time bounds in
    frontend/dynamic_slicing.py."""
    if plain_eager(type(x)):  # (x[i], x[:, j], x[a:b] of an eager tensor: decoded at once)
        basic = basic_index(key, x.shape)
        if basic is not None:
            return _apply_index(x, *basic, [])
    from graphjit.frontend import dynamic_slicing, indexing  # (both build on this module)

    x = as_tensor(x)
    key = key if isinstance(key, tuple) else (key,)
    if any(is_array_index(k) for k in key):
        return indexing.advanced_getitem(x, key)
    if any(is_runtime_index(k) for k in key):
        return dynamic_slicing.dynamic_getitem(x, key)
    for k in key:
        if not (k is None or k is Ellipsis or isinstance(k, (int, np.integer, slice))):
            raise ShapeError(
                f"only basic indexing (ints, slices, None, ...) is supported, got {k!r}",
                location=user_location(),
            )
    key = expand_ellipsis(key, x.ndim)
    spec, drop, new_axes, axis, out_axis = [], [], [], 0, 0
    for k in key:
        if k is None:
            new_axes.append(out_axis)
            out_axis += 1
            continue
        if isinstance(k, slice):
            spec.append((k.start, k.stop, k.step))
            out_axis += 1
        else:
            spec.append(_int_index(int(k), x.shape[axis]))
            drop.append(axis)
        axis += 1
    return _apply_index(x, spec, drop, new_axes)


def basic_index(key, shape: tuple) -> tuple | None:
    """(spec, drop) as getitem makes them for a key of Python ints and slices of int or
    None bounds, no more of them than axes; None for any other key (getitem's general
    path then decodes it)."""
    entries = key if type(key) is tuple else (key,)
    if len(entries) > len(shape):
        return None
    spec, drop = [], []
    for axis, k in enumerate(entries):
        kind = type(k)
        if kind is int:
            spec.append(_int_index(k, shape[axis]))
            drop.append(axis)
        elif kind is slice and all(type(b) in _SLICE_BOUNDS for b in (k.start, k.stop, k.step)):
            spec.append((k.start, k.stop, k.step))
        else:
            return None
    return spec, drop


_SLICE_BOUNDS = (int, type(None))


def _int_index(i: int, dim) -> tuple:
    if dim is not None and not -dim <= i < dim:
        raise ShapeError(
            f"index {i} is out of bounds for a dimension of size {dim}", location=user_location()
        )
    if i >= 0:
        return (i, i + 1, 1)
    return (i, i + 1 if i != -1 else None, 1)


def _apply_index(x, spec, drop, new_axes):
    if any(t != (None, None, None) for t in spec):
        x = bind("slice", x, spec=tuple(spec))
    if drop:
        x = bind("squeeze", x, axes=tuple(drop))
    if new_axes:
        x = bind("expand_dims", x, axes=tuple(new_axes))
    return x
