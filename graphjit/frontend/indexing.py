"""gather, index_select, take_along_axis, scatter_add, segment sums, and x[idx] with integer or
boolean arrays (advanced_getitem, which shape_ops.getitem calls), for graph values and eager tensors.

Everything lowers to the four primitives of ir/ops/indexing.py (gather, scatter_add and
their along-an-axis forms), so gradients, every backend and the out-of-range check come
from there. Negative indices count from the end everywhere (NumPy's rule); an index
outside [-n, n) is a RuntimeCheckError when the op runs.

A boolean mask selects a number of elements that depends on its values. Eager tensors
and NumPy masks (known when the graph is built) are turned into integer positions; a
graph tensor as a mask becomes the `flatnonzero` op, whose result's length is known only
when it runs (the llvm and cuda backends run it between compiled stages, each compiled
once per length it meets: runtime/staged.py)."""

from __future__ import annotations

import math
import operator

import numpy as np

from graphjit.errors import DTypeError, ShapeError
from graphjit.frontend import shape_ops
from graphjit.frontend.convert import constant_like, is_tensor, unwrap
from graphjit.frontend.ops import add, as_tensor, cast, equal, mul, normalize_axes, where
from graphjit.ir.core import Value, user_location
from graphjit.ir.ops import bind
from graphjit.ir.patterns import constant_value
from graphjit.ir.types import bool_, int64

__all__ = [
    "gather",
    "index_select",
    "take_along_axis",
    "gather_along",
    "scatter_add",
    "index_add",
    "scatter_add_along",
    "unsorted_segment_sum",
    "segment_sum",
    "embedding",
    "boolean_mask",
    "argwhere",
    "nonzero",
]


# ---- arguments ---------------------------------------------------------------------------


def _axis(axis, rank: int) -> int:
    (axis,) = normalize_axes(axis, rank)
    return axis


def _indices(indices, like, what: str = "indices"):
    """indices as an integer tensor in the mode of `like` (lists and arrays: int64)."""
    indices = unwrap(indices)
    if not is_tensor(indices):
        array = np.asarray(indices)
        if array.size == 0 and array.dtype.kind == "f":  # ([] is float64 to NumPy)
            array = array.astype(np.int64)
        if array.dtype.kind not in "iu":
            raise _not_integer(what, str(array.dtype), array.dtype.kind == "b")
        indices = constant_like(array.astype(np.int64), int64, (like,))
    if indices.dtype.name not in ("int32", "int64"):
        raise _not_integer(what, indices.dtype.name, indices.dtype.is_bool)
    return indices


def _not_integer(what: str, dtype: str, boolean: bool) -> DTypeError:
    hint = "; for a boolean mask use gj.boolean_mask or x[mask]" if boolean else ""
    return DTypeError(f"{what} must be int32 or int64, got {dtype}{hint}", location=user_location())


def _rows_like(size: int, like):
    """A value whose dimension 0 is `size`, for scatter_add to read the size from (its
    values are never read: a broadcast of one constant, not a constant of that size)."""
    return bind("broadcast_to", constant_like(False, bool_, (like,)), shape=(size,))


# ---- gather family -----------------------------------------------------------------------


def gather(params, indices, axis=0, batch_dims=0):
    """TF1's tf.gather: the slices of `params` along `axis` at `indices` (any shape); the
    result is params.shape[:axis] + indices.shape + params.shape[axis + 1:]. An index
    outside [0, n), negative ones included, is a RuntimeCheckError, as in TF1 (`x[idx]`
    counts negative ones from the end, as NumPy). PyTorch's torch.gather(x, dim, index),
    an int then a tensor where TF1 has indices then an int axis, is `gather_along`."""
    if isinstance(indices, (int, np.integer)) and not isinstance(axis, (int, np.integer)):
        return gather_along(params, indices, axis)
    if batch_dims != 0:
        raise ShapeError(
            "gather supports batch_dims=0 only; for per-row indices use gj.take_along_axis",
            location=user_location(),
        )
    params = as_tensor(params)
    indices = _indices(indices, params)
    return bind("gather", params, indices, axis=_axis(axis, params.ndim), wrap_negative=False)


def index_select(x, dim, index):
    """PyTorch's torch.index_select: x's slices along `dim` at the 1-D `index` (each in
    [0, n), as PyTorch checks)."""
    x = as_tensor(x)
    index = _indices(index, x, "index")
    if index.ndim > 1:
        raise ShapeError(
            f"index_select needs a 1-D index, got rank {index.ndim}", location=user_location()
        )
    if index.ndim == 0:
        index = bind("expand_dims", index, axes=(0,))
    return bind("gather", x, index, axis=_axis(dim, x.ndim), wrap_negative=False)


def take_along_axis(x, indices, axis):
    """NumPy's np.take_along_axis (PyTorch's torch.take_along_dim): one index per result
    element along `axis`; off the axis, x and indices broadcast. axis=None indexes the
    flattened x with 1-D indices."""
    x = as_tensor(x)
    indices = _indices(indices, x)
    if axis is None:
        x, axis = shape_ops.reshape(x, (-1,)), 0
    if indices.ndim != x.ndim:
        raise ShapeError(
            f"take_along_axis needs indices of x's rank {x.ndim}, got rank {indices.ndim}",
            location=user_location(),
        )
    axis = _axis(axis, x.ndim)
    x, indices = _broadcast_off_axis(x, indices, axis)
    return bind("take_along_axis", x, indices, axis=axis)


def _broadcast_off_axis(x, indices, axis: int):
    """x and indices broadcast against each other on every axis but `axis` (when their
    shapes are known; unknown ones must agree when the Session specialises them)."""
    if None in x.shape or None in indices.shape:
        return x, indices
    try:
        common = np.broadcast_shapes(
            tuple(1 if i == axis else d for i, d in enumerate(x.shape)),
            tuple(1 if i == axis else d for i, d in enumerate(indices.shape)),
        )
    except ValueError:
        raise ShapeError(
            f"indices {list(indices.shape)} do not broadcast with x {list(x.shape)} "
            f"off axis {axis}",
            location=user_location(),
        ) from None

    def to_common(t):
        shape = tuple(t.shape[axis] if i == axis else d for i, d in enumerate(common))
        return t if tuple(t.shape) == shape else shape_ops.broadcast_to(t, shape)

    return to_common(x), to_common(indices)


def gather_along(x, dim, index):
    """PyTorch's torch.gather (the method Tensor.gather): out[i][j] = x[index[i][j]][j]
    for dim=0. index has x's rank and may be smaller than x off `dim` (x's leading
    part is used); each index must lie in [0, n), as PyTorch checks."""
    x = as_tensor(x)
    index = _indices(index, x, "index")
    dim = _axis(dim, x.ndim)
    if index.ndim != x.ndim:
        raise ShapeError(
            f"gather needs an index of x's rank {x.ndim}, got rank {index.ndim}",
            location=user_location(),
        )
    x = _leading_part(x, index.shape, dim)
    return bind("take_along_axis", x, index, axis=dim, wrap_negative=False)


def _leading_part(x, shape, dim: int | None):
    """x[:shape[0], :shape[1], ...] on every axis but `dim` (None: on every axis)."""
    spec = _leading_spec(x.shape, shape, dim)
    return x if spec is None else bind("slice", x, spec=spec)


def _leading_spec(have_shape, want_shape, dim: int | None):
    """The slice spec of x's leading part `want_shape` off `dim`; None if it is all of x."""
    spec = []
    for i, (have, want) in enumerate(zip(have_shape, want_shape)):
        known = i != dim and None not in (have, want)
        if known and want > have:
            raise ShapeError(
                f"index {list(want_shape)} is larger than {list(have_shape)} on axis {i}",
                location=user_location(),
            )
        spec.append((None, want, None) if known and want < have else (None, None, None))
    return None if all(t == (None, None, None) for t in spec) else tuple(spec)


# ---- scatter family ----------------------------------------------------------------------


def scatter_add(x, indices, updates, axis=0):
    """x with `updates` added at `indices` along `axis` (TF1's tf.scatter_add and
    tf.tensor_scatter_nd_add on rows, as a new tensor; PyTorch's index_add): updates
    have the shape gather(x, indices, axis) would give; repeated indices add up; each
    must lie in [0, n), as in both libraries."""
    x = as_tensor(x)
    indices = _indices(indices, x)
    updates = as_tensor(updates, dtype=x.dtype)
    axis = _axis(axis, x.ndim)
    return add(x, bind("scatter_add", updates, indices, x, axis=axis, wrap_negative=False))


def index_add(x, dim, index, source, alpha=1):
    """PyTorch's torch.index_add: x with alpha * source's slices added at the 1-D index."""
    x = as_tensor(x)
    index = _indices(index, x, "index")
    if index.ndim != 1:
        raise ShapeError(
            f"index_add needs a 1-D index, got rank {index.ndim}", location=user_location()
        )
    source = as_tensor(source, dtype=x.dtype)
    if alpha != 1:
        source = mul(source, alpha)
    return scatter_add(x, index, cast(source, x.dtype), axis=dim)


def scatter_add_along(x, dim, index, src):
    """PyTorch's torch.scatter_add (the method Tensor.scatter_add): x with src[i][j]
    added at x[index[i][j]][j] for dim=0; index may be smaller than src and x off `dim`;
    each index must lie in [0, n), as PyTorch checks."""
    x = as_tensor(x)
    index = _indices(index, x, "index")
    src = as_tensor(src, dtype=x.dtype)
    dim = _axis(dim, x.ndim)
    if not index.ndim == src.ndim == x.ndim:
        raise ShapeError(
            f"scatter_add needs x, index and src of one rank, got {x.ndim}, {index.ndim}, "
            f"{src.ndim}",
            location=user_location(),
        )
    src = _leading_part(src, index.shape, None)
    spec = _leading_spec(x.shape, index.shape, dim)
    target = x if spec is None else bind("slice", x, spec=spec)
    added = bind("scatter_add_along_axis", src, index, target, axis=dim, wrap_negative=False)
    if spec is not None:  # zeros around the part that index reaches
        added = bind("unslice", added, x, spec=spec)
    return add(x, added)


def _is_graph(x) -> bool:
    return isinstance(x, Value)


def unsorted_segment_sum(data, segment_ids, num_segments: int):
    """TF1's tf.math.unsorted_segment_sum: result[s] is the sum of the data[i...] whose
    segment_ids[i...] is s (segment_ids' shape is a prefix of data's); the result has
    num_segments rows, zeros where no id points. Negative ids are dropped, as in TF1; ids
    of num_segments or more are a RuntimeCheckError (TF1's error too)."""
    data = as_tensor(data)
    ids = _indices(segment_ids, data, "segment_ids")
    if ids.ndim > data.ndim:
        raise ShapeError(
            f"segment_ids (rank {ids.ndim}) must index a prefix of data's {data.ndim} axes",
            location=user_location(),
        )
    try:
        num_segments = operator.index(num_segments)
    except TypeError:
        raise DTypeError(
            f"num_segments must be an integer, got {num_segments!r}", location=user_location()
        ) from None
    # TF1 drops the data of negative ids (they do not count from the end here): their
    # rows add zeros to segment 0
    negative = bind("less", ids, constant_like(0, ids.dtype, (ids,)))
    trailing = tuple(range(ids.ndim, data.ndim))
    dropped = bind("expand_dims", negative, axes=trailing) if trailing else negative
    data, ids = where(dropped, 0, data), where(negative, 0, ids)
    return bind("scatter_add", data, ids, _rows_like(num_segments, data), axis=0)


def segment_sum(data, segment_ids, num_segments=None):
    """TF1's tf.math.segment_sum (ids sorted, though unsorted ones add up the same). Its
    number of segments is max(segment_ids) + 1, known in advance for eager tensors and
    NumPy ids: with graph tensor ids, pass num_segments."""
    if num_segments is None:
        ids = unwrap(segment_ids)
        if _is_graph(ids):
            raise ShapeError(
                "segment_sum in a graph needs num_segments (the result's length would "
                "depend on the ids' values); pass num_segments=",
                location=user_location(),
            )
        values = ids.numpy() if is_tensor(ids) else np.asarray(ids)
        num_segments = int(values.max()) + 1 if values.size else 0
    return unsorted_segment_sum(data, segment_ids, num_segments)


def embedding(indices, weight, padding_idx=None):
    """PyTorch's torch.nn.functional.embedding: the rows of `weight` at `indices`
    (gather on axis 0); an id outside [0, num_embeddings), negative ones included, is a
    RuntimeCheckError, as PyTorch's IndexError. The row `padding_idx` gets no gradient,
    as in PyTorch (a negative padding_idx counts from the end there, and here)."""
    weight = as_tensor(weight)
    indices = _indices(indices, weight)
    rows = bind("gather", weight, indices, axis=0, wrap_negative=False)
    if padding_idx is None:
        return rows
    padding_idx = operator.index(padding_idx)
    if padding_idx < 0:  # (counted from the end, as PyTorch does)
        padding_idx += weight.shape[0]
    is_padding = bind("expand_dims", equal(indices, padding_idx), axes=(indices.ndim,))
    return where(is_padding, bind("stop_gradient", rows), rows)


# ---- boolean masks -------------------------------------------------------------------------


def boolean_mask(x, mask, axis=0):
    """TF1's tf.boolean_mask (NumPy's x[mask]): the elements (or slices) of x where the
    mask holds, the mask's axes flattened into one. The mask must be known before the op
    runs: an eager tensor, or a NumPy array when building a graph."""
    x = as_tensor(x)
    axis = _axis(axis, x.ndim)
    if _is_runtime_mask(mask):
        return _boolean_mask_of_graph_tensor(x, unwrap(mask), axis)
    values = _mask_values(mask)
    if values.ndim == 0 or axis + values.ndim > x.ndim:
        raise ShapeError(
            f"boolean_mask needs a mask of rank 1 to {x.ndim - axis}, got rank {values.ndim}",
            location=user_location(),
        )
    _check_mask_shape(x.shape[axis : axis + values.ndim], values.shape)
    positions = constant_like(np.flatnonzero(values).astype(np.int64), int64, (x,))
    return bind("gather", _merge_axes(x, axis, values.ndim), positions, axis=axis)


def _boolean_mask_of_graph_tensor(x, mask, axis: int):
    """A mask known only when the graph runs: a gather at its True positions (a
    `flatnonzero`, whose length the backends learn as it runs: see VALUE_SHAPED)."""
    _check_graph_mask(mask)
    if mask.ndim == 0 or axis + mask.ndim > x.ndim:
        raise ShapeError(
            f"boolean_mask needs a mask of rank 1 to {x.ndim - axis}, got rank {mask.ndim}",
            location=user_location(),
        )
    _check_mask_shape(x.shape[axis : axis + mask.ndim], mask.shape)
    positions = _true_positions(mask)
    return bind("gather", _merge_axes(x, axis, mask.ndim), positions, axis=axis)


def _check_graph_mask(mask) -> None:
    if not mask.dtype.is_bool:
        raise DTypeError(f"a mask must be boolean, got {mask.dtype.name}", location=user_location())


def argwhere(x):
    """The coordinates of x's nonzero (True) elements, one row each, as int64 of shape
    (count, x.ndim), in row-major order (np.argwhere, torch.argwhere, TF1's tf.where(x))."""
    x = as_tensor(x)
    mask = x if x.dtype.is_bool else bind("not_equal", x, _zero_like(x))
    positions = _true_positions(mask)
    coordinates = [bind("expand_dims", c, axes=(1,)) for c in _unravel(positions, mask.shape)]
    if not coordinates:  # a 0-d x: one row of no coordinates when it is nonzero
        return bind("expand_dims", positions, axes=(1,))[:, :0]
    return bind("concat", *coordinates, axis=1)


def nonzero(x, as_tuple: bool = False):
    """PyTorch's torch.nonzero: argwhere(x), or with `as_tuple` one int64 index array per
    axis (NumPy's np.nonzero, what x[mask] indexes with)."""
    if not as_tuple:
        return argwhere(x)
    x = as_tensor(x)
    mask = x if x.dtype.is_bool else bind("not_equal", x, _zero_like(x))
    return tuple(_unravel(_true_positions(mask), mask.shape))


def _true_positions(mask):
    """The flat positions of a boolean tensor's True elements: computed now when its values
    are known (an eager tensor, a graph constant), else when the graph runs."""
    known = constant_value(mask) if _is_graph(mask) else None
    if known is None:
        return bind("flatnonzero", mask)
    return constant_like(np.flatnonzero(known).astype(np.int64), int64, (mask,))


def _zero_like(x):
    return constant_like(np.zeros((), x.dtype.np), x.dtype, (x,))


def _unravel(positions, shape) -> list:
    """Flat row-major positions in `shape` as one int64 index array per axis (a 1-d
    shape's positions are its coordinates, whatever its length)."""
    if len(shape) == 1:
        return [positions]
    if 0 in shape:  # no elements, no positions: each axis's coordinates are that empty array
        return [positions] * len(shape)
    if None in shape:
        raise ShapeError(
            f"the coordinates of a mask's True elements need the mask's shape known, got "
            f"{list(shape)}",
            location=user_location(),
        )
    out = []
    for axis, size in enumerate(shape):
        stride = math.prod(shape[axis + 1 :])  # (from the sizes after it: 0-size axes too)
        c = positions if stride == 1 else bind("floor_divide", positions, _int64(stride, positions))
        out.append(bind("floor_mod", c, _int64(size, positions)) if axis else c)
    return out


def _int64(value: int, like):
    return constant_like(np.int64(value), int64, (like,))


def _is_runtime_mask(mask) -> bool:
    """A graph tensor whose values are known only when the graph runs (not a constant)."""
    mask = unwrap(mask)
    return _is_graph(mask) and constant_value(mask) is None


def _mask_values(mask) -> np.ndarray:
    """The values of a mask known now: a NumPy array, an eager tensor, a graph constant."""
    mask = unwrap(mask)
    if _is_graph(mask):
        mask = constant_value(mask)
    values = mask.numpy() if is_tensor(mask) else np.asarray(mask)
    if values.dtype.kind != "b":
        raise DTypeError(f"a mask must be boolean, got {values.dtype}", location=user_location())
    return values


def _check_mask_shape(dims, mask_shape) -> None:
    if any(d is not None and d != m for d, m in zip(dims, mask_shape)):
        raise ShapeError(
            f"a boolean index of shape {list(mask_shape)} does not match the indexed "
            f"dimensions {list(dims)}",
            location=user_location(),
        )


def _merge_axes(x, start: int, count: int):
    """x with axes [start, start + count) reshaped into one (their sizes must be known)."""
    if count == 1:
        return x
    merged = x.shape[start : start + count]
    if None in merged:
        raise ShapeError(
            f"indexing several axes at once needs their sizes known, got {list(x.shape)}",
            location=user_location(),
        )
    shape = list(x.shape[:start]) + [math.prod(merged)] + list(x.shape[start + count :])
    if shape.count(None) > 1:
        raise ShapeError(
            f"indexing several axes at once needs at most one unknown dimension, got "
            f"{list(x.shape)}",
            location=user_location(),
        )
    return shape_ops.reshape(x, [-1 if d is None else d for d in shape])


# ---- x[key] with array indices ---------------------------------------------------------------


def advanced_getitem(x, key: tuple):
    """x[key] where the key holds integer arrays or boolean masks (NumPy's advanced
    indexing, which PyTorch follows): with ints, slices, None and Ellipsis beside them.
    The arrays broadcast together; their result dimensions replace the indexed axes when
    those are adjacent, else they come first. One array is one gather; several are
    flattened into one (the indexed dimensions must then be known)."""
    x = as_tensor(x)
    key = [_classified(k) for k in key]
    key = list(shape_ops.expand_ellipsis(key, x.ndim, _consumed))
    x, key = _new_axes_as_slices(x, key)
    key = _masks_as_positions(x, key)
    return _index(x, key + [slice(None)] * (x.ndim - len(key)))


def _classified(k):
    """One key entry: None, Ellipsis, a slice, an int, a NumPy bool or int array, or a
    tensor (an int tensor of any rank, or a boolean one)."""
    k = unwrap(k)
    if isinstance(k, (bool, np.bool_)):
        return _ScalarMask(bool(k))
    if k is None or k is Ellipsis or isinstance(k, slice):
        return k
    if isinstance(k, (int, np.integer)):
        return int(k)
    if is_tensor(k):
        if not (k.dtype.is_bool or k.dtype.is_integer):
            raise DTypeError(
                f"tensors used as indices must be integer or boolean, got {k.dtype.name}",
                location=user_location(),
            )
        return k
    if isinstance(k, (list, tuple, np.ndarray)):
        array = np.asarray(k)
        if array.size == 0 and array.dtype.kind == "f":
            return array.astype(np.int64)
        if array.dtype.kind not in "biu":
            raise DTypeError(
                f"arrays used as indices must be integer or boolean, got {array.dtype}",
                location=user_location(),
            )
        return array if array.dtype.kind == "b" else array.astype(np.int64)
    raise ShapeError(f"cannot index with {k!r}", location=user_location())


class _ScalarMask:
    """x[True] / x[False]: NumPy's 0-d mask is a new axis of size 1 indexed by the array
    [0] (or []): x[True] is x[None][[0]], and beside other arrays it broadcasts with them."""

    def __init__(self, value: bool):
        self.positions = np.zeros(int(value), np.int64)


def _is_new_axis(k) -> bool:
    return k is None or isinstance(k, _ScalarMask)


def _is_mask(k) -> bool:
    return getattr(k, "dtype", None) is not None and (
        k.dtype == np.bool_ if isinstance(k, np.ndarray) else is_tensor(k) and k.dtype.is_bool
    )


def _consumed(k) -> int:
    """How many of x's axes an entry indexes."""
    if _is_new_axis(k) or k is Ellipsis:
        return 0
    return k.ndim if _is_mask(k) else 1


def _new_axes_as_slices(x, key: list):
    """None entries as axes of size 1 inserted into x first, indexed by `:` (a scalar
    mask's by its positions): the same result, with every entry indexing an axis of x."""
    positions, axis = [], 0
    for k in key:
        if _is_new_axis(k):
            positions.append(axis)
        axis += 1 if _is_new_axis(k) else _consumed(k)
    if positions:
        x = bind("expand_dims", x, axes=tuple(positions))
    return x, [k.positions if isinstance(k, _ScalarMask) else _as_slice(k) for k in key]


def _as_slice(k):
    return slice(None) if k is None else k


def _masks_as_positions(x, key: list) -> list:
    """Each boolean mask as the integer arrays of its True positions (NumPy's rule: a
    k-dimensional mask is the k arrays of its nonzero())."""
    out, axis = [], 0
    for k in key:
        if _is_mask(k) and _is_runtime_mask(k):  # known when the graph runs
            _check_mask_shape(x.shape[axis : axis + k.ndim], k.shape)
            out += list(_unravel(_true_positions(k), k.shape))
        elif _is_mask(k):
            values = _mask_values(k)
            _check_mask_shape(x.shape[axis : axis + values.ndim], values.shape)
            out += [p.astype(np.int64) for p in np.nonzero(values)]
        else:
            out.append(k)
        axis += _consumed(k)
    return out


def _index(x, key: list):
    """Every entry a slice, an int or an integer array, one per axis of x."""
    advanced = [i for i, k in enumerate(key) if not isinstance(k, slice)]
    arrays = [i for i in advanced if not isinstance(key[i], int)]
    basic = tuple(slice(None) if i in arrays else k for i, k in enumerate(key))
    x = shape_ops.getitem(x, basic)  # the slices, and the ints (their axes dropped)
    if not arrays:
        return x
    dropped = [i for i in advanced if i not in arrays]
    positions = [i - sum(d < i for d in dropped) for i in arrays]
    indices = [_indices(key[i], x) for i in arrays]
    in_place = advanced == list(range(advanced[0], advanced[-1] + 1))
    if len(arrays) == 1:
        out = bind("gather", x, indices[0], axis=positions[0])
        return out if in_place else _to_front(out, positions[0], indices[0].ndim)
    if not in_place:  # the indexed axes first, in order
        rest = [i for i in range(x.ndim) if i not in positions]
        x = shape_ops.transpose(x, positions + rest)
        positions = list(range(len(positions)))
    flat = _flat_index(x, positions, indices)
    return bind("gather", _merge_axes(x, positions[0], len(positions)), flat, axis=positions[0])


def _to_front(x, start: int, count: int):
    """x with axes [start, start + count) moved to the front."""
    moved = list(range(start, start + count))
    return shape_ops.transpose(x, moved + [i for i in range(x.ndim) if i not in moved])


def _flat_index(x, positions: list, indices: list):
    """The row-major position in x's adjacent `positions` axes of each broadcast index
    tuple. Each index is checked and wrapped against its own axis first (a gather from
    0..n-1), so that no out-of-range index can land inside the merged axis."""
    dims = [x.shape[p] for p in positions]
    if None in dims:
        raise ShapeError(
            f"indexing with several arrays needs the indexed dimensions known, got {list(x.shape)}",
            location=user_location(),
        )
    strides = [math.prod(dims[j + 1 :]) for j in range(len(dims))]
    flat = None
    for index, size, stride in zip(indices, dims, strides):
        axis_positions = constant_like(np.arange(size, dtype=np.int64), int64, (x,))
        term = mul(bind("gather", axis_positions, index, axis=0), stride)
        flat = term if flat is None else add(flat, term)
    return flat
