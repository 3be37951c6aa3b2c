"""Shape primitives. Ops named `*_like` take a second operand for its shape alone, so that
gradients work when dimensions are unknown until the Session specialises them."""

from __future__ import annotations

import math

import numpy as np

from graphjit.errors import ShapeError
from graphjit.ir import builder
from graphjit.ir.ops import (
    BROADCAST,
    INDEX_MAP,
    REDUCTION,
    REQUIRED,
    REST,
    VIEW,
    OpDef,
    P,
    as_list,
    register,
)
from graphjit.ir.ops.elementwise import broadcast_shapes, unbroadcast
from graphjit.ir.ops.reduce import sum_identity
from graphjit.ir.patterns import is_static, producer, same_type_is_identity
from graphjit.ir.symbolic import slice_indices
from graphjit.ir.types import computes_in_float32, shape_str


def _zeros_for(cts, outs):
    return [P.broadcast_like(0, o) if c is None else c for c, o in zip(cts, outs)]


# ---- reshape -----------------------------------------------------------------------------


def reshape_shape(in_shape, shape) -> tuple:
    shape = tuple(int(d) for d in shape)
    if sum(d == -1 for d in shape) > 1 or any(d < -1 for d in shape):
        raise ShapeError(f"invalid target shape {shape}")
    if None in in_shape:
        return tuple(None if d == -1 else d for d in shape)
    total = math.prod(in_shape)  # exact Python ints: huge shapes must not wrap around
    known = math.prod(d for d in shape if d != -1)
    if -1 in shape:
        if known == 0 or total % known:
            raise ShapeError(f"cannot reshape {shape_str(in_shape)} to {shape}")
        shape = tuple(total // known if d == -1 else d for d in shape)
    if math.prod(shape) != total:
        raise ShapeError(f"cannot reshape {shape_str(in_shape)} ({total} elements) to {shape}")
    return shape


def reshape_of_reshape(op):
    """reshape(reshape(x)) -> reshape(x) (and the same for reshape_like)."""
    inner = producer(op.operands[0], op.opdef)
    if inner is None or not is_static(op.result):
        return None
    shape = {"shape": op.result.type.shape}
    return [builder.create("reshape", [inner.operands[0]], shape, loc=op.loc).result]


RESHAPE_PATTERNS = (same_type_is_identity, reshape_of_reshape)

register(
    OpDef(
        "reshape",
        lambda t, a: [t[0].with_shape(reshape_shape(t[0].shape, a["shape"]))],
        lambda x, shape: np.reshape(x, reshape_shape(x.shape, shape)).copy(),  # (the rule's -1)
        lambda cts, ins, outs, a: [P.reshape_like(cts[0], ins[0])],
        attrs={"shape": REQUIRED},
        traits=frozenset({VIEW}),
        canonicalize=RESHAPE_PATTERNS,
    )
)
register(
    OpDef(
        "reshape_like",
        lambda t, a: [t[1].with_dtype(t[0].dtype)],
        lambda x, ref: np.reshape(x, ref.shape).copy(),
        lambda cts, ins, outs, a: [P.reshape_like(cts[0], ins[0]), None],
        shape_only=(1,),
        traits=frozenset({VIEW}),
        canonicalize=RESHAPE_PATTERNS,
    )
)

# ---- expand_dims / squeeze ---------------------------------------------------------------


def _expand_infer(types, attrs):
    shape = list(types[0].shape)
    rank = len(shape) + len(attrs["axes"])
    for a in sorted(attrs["axes"]):
        if not 0 <= a < rank:
            raise ShapeError(f"axis {a} out of range for result rank {rank}")
        shape.insert(a, 1)
    return [types[0].with_shape(shape)]


def _squeeze_infer(types, attrs):
    shape = types[0].shape
    for a in attrs["axes"]:
        if not 0 <= a < len(shape) or shape[a] not in (1, None):
            raise ShapeError(f"cannot squeeze axis {a} of shape {shape_str(shape)}")
    return [types[0].with_shape([d for i, d in enumerate(shape) if i not in attrs["axes"]])]


register(
    OpDef(
        "expand_dims",
        _expand_infer,
        lambda x, axes: expand_dims_view(x, axes).copy(),
        lambda cts, ins, outs, a: [P.squeeze(cts[0], axes=a["axes"])],
        attrs={"axes": REQUIRED},
        traits=frozenset({VIEW}),
        canonicalize=(same_type_is_identity,),
    )
)
register(
    OpDef(
        "squeeze",
        _squeeze_infer,
        lambda x, axes: np.squeeze(x, tuple(axes)).copy(),
        lambda cts, ins, outs, a: [P.expand_dims(cts[0], axes=a["axes"])],
        attrs={"axes": REQUIRED},
        traits=frozenset({VIEW}),
        canonicalize=(same_type_is_identity,),
    )
)

# ---- transpose ---------------------------------------------------------------------------


def _transpose_infer(types, attrs):
    perm = tuple(attrs["perm"])
    if sorted(perm) != list(range(types[0].rank)):
        raise ShapeError(
            f"{perm} is not a permutation of the axes of a rank-{types[0].rank} tensor"
        )
    return [types[0].with_shape([types[0].shape[p] for p in perm])]


def identity_permutation(op):
    return [op.operands[0]] if list(op.attrs["perm"]) == sorted(op.attrs["perm"]) else None


def transpose_of_transpose(op):
    """transpose(transpose(x)) -> one transpose by the composed permutation."""
    inner = producer(op.operands[0], op.opdef)
    if inner is None:
        return None
    perm = tuple(inner.attrs["perm"][p] for p in op.attrs["perm"])
    return [builder.create("transpose", [inner.operands[0]], {"perm": perm}, loc=op.loc).result]


register(
    OpDef(
        "transpose",
        _transpose_infer,
        lambda x, perm: np.transpose(x, perm).copy(),
        lambda cts, ins, outs, a: [P.transpose(cts[0], perm=tuple(np.argsort(a["perm"])))],
        attrs={"perm": REQUIRED},
        canonicalize=(identity_permutation, transpose_of_transpose),
    )
)

# ---- broadcasting and its transpose ------------------------------------------------------


def _broadcast_to_infer(types, attrs):
    target = tuple(attrs["shape"])
    if broadcast_shapes(types[0].shape, target) != target:
        raise ShapeError(f"cannot broadcast {shape_str(types[0].shape)} to {shape_str(target)}")
    return [types[0].with_shape(target)]


def _broadcast_like_infer(types, attrs):
    x, ref = types
    return [x.with_shape(broadcast_shapes(x.shape, ref.shape))]


def _sum_to_infer(types, attrs):
    x, ref = types
    broadcast_shapes(x.shape, ref.shape)
    return [ref.with_dtype(x.dtype)]


def sum_to_kernel(x, ref):
    """Sum x over the axes along which ref's shape was broadcast to x's."""
    lead = x.ndim - ref.ndim
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(ref.shape) if d == 1 and x.shape[lead + i] != 1
    )
    return np.add.reduce(x, axis=axes, keepdims=True).reshape(ref.shape) if axes else x.copy()


def expand_dims_view(x: np.ndarray, axes) -> np.ndarray:
    """np.expand_dims(x, axes) for axes already normalised (sorted, each a position in the
    result), as NumPy's own does it (a reshape) without its ~1 us of axis checks: the
    backward of every reduction runs this. Other axes go to NumPy, which checks them."""
    shape, previous = list(x.shape), -1
    for a in sorted(axes):
        if not previous < a <= len(shape):  # (a negative, repeated or too large axis)
            return np.expand_dims(x, tuple(axes))
        shape.insert(a, 1)
        previous = a
    return x.reshape(shape)


def broadcast_like_kernel(x, ref) -> np.ndarray:
    """x broadcast against ref's shape, copied (np.broadcast_to's result is read-only):
    an empty array of the broadcast shape filled by assignment, a third of the time of
    np.array(np.broadcast_to(x, np.broadcast_shapes(...))), the same bits."""
    out = np.empty(np.broadcast(x, ref).shape, x.dtype)
    out[...] = x
    return out


register(
    OpDef(
        "broadcast_to",
        _broadcast_to_infer,
        lambda x, shape: np.array(np.broadcast_to(x, shape)),
        lambda cts, ins, outs, a: [unbroadcast(cts[0], ins[0])],
        attrs={"shape": REQUIRED},
        traits=frozenset({INDEX_MAP, BROADCAST}),
        canonicalize=(same_type_is_identity,),
    )
)
register(
    OpDef(
        "broadcast_like",
        _broadcast_like_infer,
        broadcast_like_kernel,
        lambda cts, ins, outs, a: [unbroadcast(cts[0], ins[0]), None],
        shape_only=(1,),
        traits=frozenset({INDEX_MAP, BROADCAST}),
        canonicalize=(same_type_is_identity,),
    )
)
register(
    OpDef(
        "sum_to",
        _sum_to_infer,
        computes_in_float32(sum_to_kernel),  # float16/bfloat16 accumulate in float32
        lambda cts, ins, outs, a: [P.broadcast_like(cts[0], ins[0]), None],
        shape_only=(1,),
        traits=frozenset({REDUCTION}),
        identity=sum_identity,
        canonicalize=(same_type_is_identity,),
    )
)

# ---- basic slicing -----------------------------------------------------------------------
# `spec` holds one (start, stop, step) triple per leading axis; None means the default.


def _slices(spec) -> tuple:
    return tuple(slice(*t) for t in spec)


def sliced_shape(shape, spec) -> tuple:
    if len(spec) > len(shape):
        raise ShapeError(f"too many indices ({len(spec)}) for a rank-{len(shape)} tensor")
    out = []
    for d, (start, stop, step) in zip(shape, spec):
        if step == 0:
            raise ShapeError("slice step cannot be zero")
        if d is not None:
            out.append(slice_indices(start, stop, step, d)[3])
        else:
            out.append(None if (start, stop, step or 1) != (None, None, 1) else d)
    return tuple(out) + tuple(shape[len(spec) :])


def _unslice_kernel(g, ref, spec):
    out = np.zeros(ref.shape, dtype=g.dtype)
    out[_slices(spec)] = g
    return out


register(
    OpDef(
        "slice",
        lambda t, a: [t[0].with_shape(sliced_shape(t[0].shape, a["spec"]))],
        lambda x, spec: x[_slices(spec)].copy(),
        lambda cts, ins, outs, a: [P.unslice(cts[0], ins[0], spec=a["spec"])],
        attrs={"spec": REQUIRED},
    )
)
# The transpose of slice: zeros shaped like `ref`, with the operand written into the slice.
register(
    OpDef(
        "unslice",
        lambda t, a: [t[1].with_dtype(t[0].dtype)],
        _unslice_kernel,
        lambda cts, ins, outs, a: [P.slice(cts[0], spec=a["spec"]), None],
        attrs={"spec": REQUIRED},
        shape_only=(1,),
    )
)

# ---- concat and its transpose ------------------------------------------------------------


def _concat_infer(types, attrs):
    axis, first = attrs["axis"], types[0]
    if not 0 <= axis < first.rank:
        raise ShapeError(f"axis {axis} out of range for rank {first.rank}")
    for t in types[1:]:
        if t.dtype != first.dtype:
            raise ShapeError(f"cannot concat {first.dtype.name} with {t.dtype.name}")
        if t.rank != first.rank:
            raise ShapeError(f"cannot concat {shape_str(first.shape)} with {shape_str(t.shape)}")
    shape = []
    for i in range(first.rank):
        dims = [t.shape[i] for t in types]
        if i == axis:
            shape.append(None if None in dims else sum(dims))
        else:
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                raise ShapeError(
                    f"cannot concat shapes {', '.join(shape_str(t.shape) for t in types)} "
                    f"along axis {axis}"
                )
            shape.append(known.pop() if known else None)
    return [first.with_shape(shape)]


def _split_like_kernel(g, *refs, axis):
    bounds = np.cumsum([r.shape[axis] for r in refs])[:-1]
    return tuple(part.copy() for part in np.split(g, bounds, axis=axis))


register(
    OpDef(
        "concat",
        _concat_infer,
        lambda *xs, axis: np.concatenate(xs, axis=axis),
        lambda cts, ins, outs, a: as_list(P.split_like(cts[0], *ins, axis=a["axis"])),
        attrs={"axis": REQUIRED},
    )
)
# Splits the operand along `axis` into pieces shaped like the remaining operands.
register(
    OpDef(
        "split_like",
        lambda t, a: [r.with_dtype(t[0].dtype) for r in t[1:]],
        _split_like_kernel,
        lambda cts, ins, outs, a: (
            [P.concat(*_zeros_for(cts, outs), axis=a["axis"])] + [None] * (len(ins) - 1)
        ),
        attrs={"axis": REQUIRED},
        shape_only=REST,
    )
)
