"""canonicalize: constant folding through the reference kernels, and algebraic identities
that are exact in floating point. Each rule is one small pattern (see passes/rewrite.py)."""

from __future__ import annotations

import numpy as np

from graphjit.errors import GraphjitError
from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Function, Operation, Value
from graphjit.ir.ops import CONSTANT, FEED, STATE, STATE_UPDATE
from graphjit.ir.types import TensorType
from graphjit.passes.manager import Pass
from graphjit.passes.rewrite import apply_patterns

# Folding a result larger than this would bloat the IR with a big literal.
MAX_FOLDED_ELEMENTS = 1 << 12
# A constant is already folded (its kernel returns its value): folding it again would
# "change" the IR every round, so the driver would never reach its fixpoint. Inputs and
# state updates have no value to fold until the program runs.
NOT_FOLDABLE = frozenset({CONSTANT, FEED, STATE, STATE_UPDATE})


def constant_value(v: Value):
    op = v.op
    return op.attrs["value"] if op is not None and op.opdef.has(CONSTANT) else None


def _is_scalar_constant(v: Value, number) -> bool:
    value = constant_value(v)
    if value is None or value.size != 1 or not np.all(value == number):
        return False
    # IEEE: -0.0 + 0.0 is +0.0, so only x + (-0.0) and x - (+0.0) are exactly x.
    return value.dtype.kind != "f" or bool(np.signbit(value).all() == np.signbit(number))


def _static(v: Value) -> bool:
    return isinstance(v.type, TensorType) and v.type.is_static


def _placeholder_array(v: Value) -> np.ndarray:
    """An array with v's shape and dtype for an operand read for its shape alone."""
    return np.broadcast_to(np.zeros((), v.type.dtype.np), v.type.shape)


def fold_constants(op: Operation):
    opdef = op.opdef
    if op.regions or opdef.kernel is None or opdef.side_effect or opdef.traits & NOT_FOLDABLE:
        return None
    if not all(_static(r) and r.type.size <= MAX_FOLDED_ELEMENTS for r in op.results):
        return None
    if not all(isinstance(v.type, TensorType) for v in op.operands):
        return None  # a tensor list is never a constant (list_get of one, say)
    shape_only = opdef.shape_only_operands(len(op.operands))
    data_sizes = [v.type.size for i, v in enumerate(op.operands) if i not in shape_only]
    if sum(r.type.size for r in op.results) > max(16, sum(data_sizes)):
        return None  # broadcasting a constant: keep it small and let kernels broadcast
    args = []
    for i, v in enumerate(op.operands):
        value = constant_value(v)
        if value is None and i in shape_only and _static(v):
            value = _placeholder_array(v)
        if value is None:
            return None
        args.append(value)
    try:
        with np.errstate(all="ignore"):
            out = opdef.kernel(*args, **op.attrs)
    except (ArithmeticError, ValueError, TypeError, IndexError, GraphjitError):
        return None  # it fails when it runs, if it runs (it may sit in an untaken branch)
    outs = out if isinstance(out, tuple) else (out,)
    if any(np.asarray(o).dtype.kind == "f" and not np.all(np.isfinite(o)) for o in outs):
        return None  # keep the op that makes NaN/inf, so check_numerics can name it
    return [
        builder.create(
            "constant", (), {"value": np.array(o, dtype=r.type.dtype.np)}, loc=op.loc
        ).result
        for o, r in zip(outs, op.results, strict=True)
    ]


def _same_type(a: Value, b: Value) -> bool:
    return a.type == b.type and _static(a)


def identities(op: Operation):
    """x*1, 1*x, x+0, 0+x, x-0, x/1 (when the result has x's type); for floats the zero
    must be -0.0 in x+0 and 0+x, and +0.0 in x-0, or x = -0.0 would change sign."""
    if len(op.operands) != 2 or op.name not in _IDENTITY_CONSTANTS:
        return None
    x, y = op.operands
    number, commutes = _IDENTITY_CONSTANTS[op.name]
    if _is_scalar_constant(y, number) and _same_type(op.result, x):
        return [x]
    if commutes and _is_scalar_constant(x, number) and _same_type(op.result, y):
        return [y]
    return None


_IDENTITY_CONSTANTS = {
    "mul": (1, True),
    "add": (-0.0, True),
    "sub": (0.0, False),
    "div": (1, False),
}


def double_negation(op: Operation):
    x = op.operands[0] if op.operands else None
    if op.name == "neg" and x.op is not None and x.op.name == "neg":
        return [x.op.operands[0]]
    return None


# Ops that are the identity when their result has their operand's type.
_IDENTITY_WHEN_SAME_TYPE = frozenset(
    {
        "reshape",
        "reshape_like",
        "broadcast_to",
        "broadcast_like",
        "sum_to",
        "cast",
        "stop_gradient",
        "transpose",
        "squeeze",
        "expand_dims",
    }
)


def no_op_shapes(op: Operation):
    if op.name in _IDENTITY_WHEN_SAME_TYPE and _same_type(op.result, op.operands[0]):
        if op.name != "transpose" or list(op.attrs["perm"]) == sorted(op.attrs["perm"]):
            return [op.operands[0]]
    return None


def reshape_chains(op: Operation):
    """reshape(reshape(x)) -> reshape(x); transpose(transpose(x)) -> one transpose."""
    x = op.operands[0] if op.operands else None
    if x is None or x.op is None or x.op.name != op.name:
        return None
    inner = x.op.operands[0]
    if op.name in ("reshape", "reshape_like") and _static(op.result):
        shape = {"shape": op.result.type.shape}
        return [builder.create("reshape", [inner], shape, loc=op.loc).result]
    if op.name == "transpose":
        perm = tuple(x.op.attrs["perm"][p] for p in op.attrs["perm"])
        return [builder.create("transpose", [inner], {"perm": perm}, loc=op.loc).result]
    return None


def elementwise_operand_broadcasts(op: Operation):
    """An elementwise op broadcasts implicitly, so an explicit broadcast of an operand that
    the op would broadcast anyway can go: add(y, broadcast_like(c, y)) -> add(y, c)."""
    if not op.opdef.elementwise or not _static(op.result):
        return None
    for i, v in enumerate(op.operands):
        if v.op is None or v.op.name not in ("broadcast_like", "broadcast_to"):
            continue
        operands = list(op.operands)
        operands[i] = v.op.operands[0]
        try:
            types = op.opdef.infer_types(operands, op.attrs)
        except Exception:
            continue
        if types == [r.type for r in op.results]:
            return builder.create(op.name, operands, op.attrs, loc=op.loc).results
    return None


def _swaps_last_two_axes(v: Value) -> bool:
    if v.op is None or v.op.name != "transpose":
        return False
    perm = list(v.op.attrs["perm"])
    n = len(perm)
    return n >= 2 and perm == list(range(n - 2)) + [n - 1, n - 2]


def matmul_transposed_operands(op: Operation):
    """matmul(transpose(x), y) -> matmul(x, y, transpose_a): BLAS reads x transposed, so
    the transpose (a copy of the whole matrix) is gone once nothing else uses it."""
    if op.name != "matmul":
        return None
    operands, attrs = list(op.operands), dict(op.attrs)
    for i, flag in enumerate(("transpose_a", "transpose_b")):
        if _swaps_last_two_axes(operands[i]):
            operands[i] = operands[i].op.operands[0]
            attrs[flag] = not attrs[flag]
    if attrs == op.attrs:
        return None
    return builder.create("matmul", operands, attrs, loc=op.loc).results


def constant_cond(op: Operation):
    """cond on a constant predicate is its taken branch."""
    if op.name != "cond" or constant_value(op.operands[0]) is None:
        return None
    branch = op.regions[0 if bool(constant_value(op.operands[0])) else 1].block
    vmap: dict = {}
    for inner in branch.ops[:-1]:
        clone_op(inner, vmap, builder.current_block(), reinfer=False)
    return [vmap.get(v, v) for v in branch.terminator.operands]


PATTERNS = (
    fold_constants,
    identities,
    double_negation,
    no_op_shapes,
    reshape_chains,
    elementwise_operand_broadcasts,
    matmul_transposed_operands,
    constant_cond,
)


class Canonicalize(Pass):
    name = "canonicalize"

    def run(self, fn: Function) -> None:
        apply_patterns(fn, PATTERNS)
