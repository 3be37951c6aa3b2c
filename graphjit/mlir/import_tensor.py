"""The tensor dialect read back: allocation (empty, splat), sizes (dim), reshapes
(expand_shape, collapse_shape, reshape), slices (extract_slice, insert_slice, extract),
concat, from_elements and cast. Offsets, sizes and strides must be static (what the
exporter writes); reshapes keep to unit axes or to at most one unknown dimension."""

from __future__ import annotations

import numpy as np

from graphjit.ir.patterns import constant_value
from graphjit.ir.types import int64
from graphjit.mlir.import_core import Pending, static_ints, tensor_type


def _dims(im, op) -> list:
    """The result's size per axis: static sizes, and the index operands for the `?`s."""
    dynamic = iter(op.operands[len(op.operands) - _dynamic_count(op) :])
    return [
        d if d is not None else im.value(next(dynamic))
        for d in tensor_type(op.results[0].type).shape
    ]


def _dynamic_count(op) -> int:
    return sum(d is None for d in tensor_type(op.results[0].type).shape)


def read_empty(im, op):
    return [Pending(tensor_type(op.results[0].type), _dims(im, op))]


def read_splat(im, op):
    return [Pending(tensor_type(op.results[0].type), _dims(im, op), im.value(op.operands[0]))]


def read_dim(im, op):
    """The size of one axis as an int64 scalar; a dynamic one is remembered with where it
    came from, so a tensor.empty it sizes can be built (Importer.materialize)."""
    x, index = im.values(op.operands)
    axis = _constant_int(im, index, "tensor.dim of a computed axis")
    size = x.type.shape[axis]
    if size is not None:
        return [im.constant(np.int64(size))]
    counted = x if not x.type.dtype.is_bool else im.cast(x, int64)
    value = im.cast(im.create("count", [counted], axes=(axis,)), int64)
    im.dim_sources[value] = (x, axis)
    return [value]


def _constant_int(im, value, what: str) -> int:
    constant = constant_value(value)
    if constant is None or constant.ndim:  # (a loop-space index in a linalg body)
        raise im.unsupported(what)
    return int(constant)


def read_cast(im, op):
    return [im.conform(im.value(op.operands[0]), op.results[0].type, exact=True)]


# ---- reshapes -----------------------------------------------------------------------------


def _reassociation(im, op) -> list[list[int]]:
    return [[im.ir.IntegerAttr(i).value for i in group] for group in op.attributes["reassociation"]]


def unit_axes(shape, groups) -> tuple | None:
    """The axes of `shape` that are 1s beside the one axis each group keeps, or None when
    a group joins two axes that are not 1s (a real reshape)."""
    extra = []
    for group in groups:
        big = [i for i in group if shape[i] != 1]
        if len(big) > 1:
            return None
        extra += [i for i in group if i != (big[0] if big else group[0])]
    return tuple(sorted(extra)) if groups else tuple(range(len(shape)))


def reshape(im, x, target):
    shape = tuple(-1 if d is None else d for d in target.shape)
    if shape.count(-1) > 1:
        raise im.unsupported("a reshape with more than one unknown dimension")
    return im.create("reshape", [x], shape=shape)


def read_collapse(im, op):
    x = im.value(op.operands[0])
    units = unit_axes(tensor_type(op.operands[0].type).shape, _reassociation(im, op))
    if units is None:
        return [reshape(im, x, tensor_type(op.results[0].type))]
    return [im.create("squeeze", [x], axes=units) if units else x]


def read_expand(im, op):
    x = im.value(op.operands[0])
    target = tensor_type(op.results[0].type)
    units = unit_axes(target.shape, _reassociation(im, op))
    if units is None:
        return [reshape(im, x, target)]
    return [im.create("expand_dims", [x], axes=units) if units else x]


def read_reshape(im, op):
    return [reshape(im, im.value(op.operands[0]), tensor_type(op.results[0].type))]


# ---- slices ---------------------------------------------------------------------------------


def _slice_spec(im, op) -> tuple:
    """(start, stop, step) per axis from the static offsets, sizes and strides."""
    geometry = [static_ints(op.attributes[f"static_{k}"]) for k in ("offsets", "sizes", "strides")]
    dynamic = im.ir.ShapedType.get_dynamic_size()
    if any(dynamic in values for values in geometry):
        raise im.unsupported(f"'{op.name}' at computed offsets or sizes")
    return tuple(
        (offset, offset + (size - 1) * stride + 1 if size else offset, stride)
        for offset, size, stride in zip(*geometry, strict=True)
    )


def _dropped_axes(sizes: list, shape: tuple) -> tuple:
    """The unit axes a rank-reducing slice drops: `sizes` matched to `shape` in order."""
    dropped, j = [], 0
    for i, size in enumerate(sizes):
        if j < len(shape) and shape[j] in (size, None):
            j += 1
        else:
            dropped.append(i)
    return tuple(dropped)


def read_extract_slice(im, op):
    spec = _slice_spec(im, op)
    piece = im.create("slice", [im.value(op.operands[0])], spec=spec)
    sizes = static_ints(op.attributes["static_sizes"])
    dropped = _dropped_axes(sizes, tensor_type(op.results[0].type).shape)
    return [im.create("squeeze", [piece], axes=dropped) if dropped else piece]


def read_insert_slice(im, op):
    """`source` written into `dest` at the slice: unslice (zeros elsewhere), or for a dest
    that is not all zeros, a select between the two by where the slice lies."""
    source, dest = op.operands[:2]
    spec = _slice_spec(im, op)
    value = im.value(source)
    sizes = static_ints(op.attributes["static_sizes"])
    dropped = _dropped_axes(sizes, tensor_type(source.type).shape)
    if dropped:
        value = im.create("expand_dims", [value], axes=dropped)
    pending = im.pending(dest)
    zeros = pending is not None and im.is_fill_of(pending, 0)
    base = im.value(dest)
    placed = im.create("unslice", [value, base], spec=spec)
    if zeros:
        return [placed]
    inside = im.create("broadcast_like", [im.constant(True), value])
    mask = im.create("unslice", [inside, base], spec=spec)
    return [im.create("select", [mask, placed, base])]


def read_extract(im, op):
    """An element at constant indices (a 0-d tensor: the scalar itself)."""
    x, *indices = im.values(op.operands)
    if not indices:
        return [x]
    at = [_constant_int(im, i, "tensor.extract at computed indices (a gather)") for i in indices]
    piece = im.create("slice", [x], spec=tuple((i, i + 1, 1) for i in at))
    return [im.create("squeeze", [piece], axes=tuple(range(len(at))))]


def read_from_elements(im, op):
    """Scalars joined in a row, then shaped (one scalar: given unit axes)."""
    target = tensor_type(op.results[0].type)
    scalars = im.values(op.operands)
    if len(scalars) == 1:
        units = tuple(range(len(target.shape)))
        return [im.create("expand_dims", scalars, axes=units) if units else scalars[0]]
    parts = [im.create("expand_dims", [s], axes=(0,)) for s in scalars]
    row = im.create("concat", parts, axis=0)
    return [row if len(target.shape) == 1 else im.create("reshape", [row], shape=target.shape)]


def read_concat(im, op):
    axis = im.ir.IntegerAttr(op.attributes["dim"]).value
    return [im.create("concat", im.values(op.operands), axis=axis)]


TENSOR_RULES = {
    "tensor.empty": read_empty,
    "tensor.splat": read_splat,
    "tensor.dim": read_dim,
    "tensor.cast": read_cast,
    "tensor.collapse_shape": read_collapse,
    "tensor.expand_shape": read_expand,
    "tensor.reshape": read_reshape,
    "tensor.extract_slice": read_extract_slice,
    "tensor.insert_slice": read_insert_slice,
    "tensor.extract": read_extract,
    "tensor.from_elements": read_from_elements,
    "tensor.concat": read_concat,
}
