"""canonicalize: constant folding through the reference kernels, the rewrite patterns each
op declares beside itself (`OpDef.canonicalize`: algebraic identities exact in floating
point, chains that compose, a cond on a constant), and explicit broadcasts that elementwise
ops make implicit. Each rule is one small pattern (see passes/rewrite.py)."""

from __future__ import annotations

import numpy as np

from graphjit.errors import GraphjitError
from graphjit.ir import builder
from graphjit.ir.core import Function, Operation, Value
from graphjit.ir.ops import BROADCAST, CONSTANT, FEED, STATE, STATE_UPDATE
from graphjit.ir.patterns import constant_value, is_static
from graphjit.ir.symbolic import elsewhere_value, has_symbolic_dims, hint
from graphjit.ir.types import TensorType, is_float_array
from graphjit.passes.manager import Pass
from graphjit.passes.rewrite import apply_patterns

# Folding a result larger than this would bloat the IR with a big literal.
MAX_FOLDED_ELEMENTS = 1 << 12
# A constant is already folded (its kernel returns its value): folding it again would
# "change" the IR every round, so the driver would never reach its fixpoint. Inputs and
# state updates have no value to fold until the program runs.
NOT_FOLDABLE = frozenset({CONSTANT, FEED, STATE, STATE_UPDATE})


def _placeholder_array(v: Value, elsewhere: bool = False) -> np.ndarray:
    """An array with v's shape and dtype for an operand read for its shape alone; its
    sizes of the run at their hints, or `elsewhere` (symbolic.elsewhere: other sizes)."""
    shape = [elsewhere_value(d) if elsewhere else hint(d) for d in v.type.shape]
    return np.broadcast_to(np.zeros((), v.type.dtype.np), shape)


def _fold(op: Operation, shape_only, elsewhere: bool = False):
    """The op's kernel on its constant operands (placeholder arrays for those it reads
    for their shape alone): its results, or None where it cannot be folded."""
    args = []
    for i, v in enumerate(op.operands):
        value = constant_value(v)
        if value is None and i in shape_only and is_static(v):
            value = _placeholder_array(v, elsewhere)
        if value is None:
            return None
        args.append(value)
    try:
        with np.errstate(all="ignore"):
            out = op.opdef.kernel(*args, **op.attrs)
    except (ArithmeticError, ValueError, TypeError, IndexError, GraphjitError):
        return None  # it fails when it runs, if it runs (it may sit in an untaken branch)
    return out if isinstance(out, tuple) else (out,)


def fold_constants(op: Operation):
    opdef = op.opdef
    if op.regions or opdef.kernel is None or opdef.side_effect or opdef.traits & NOT_FOLDABLE:
        return None
    if not all(
        is_static(r) and not has_symbolic_dims(r.type) and r.type.size <= MAX_FOLDED_ELEMENTS
        for r in op.results
    ):
        return None
    if not all(isinstance(v.type, TensorType) for v in op.operands):
        return None  # a tensor list is never a constant (list_get of one, say)
    shape_only = opdef.shape_only_operands(len(op.operands))
    data = [v.type for i, v in enumerate(op.operands) if i not in shape_only]
    if any(not t.is_static or has_symbolic_dims(t) for t in data):
        return None  # an operand whose size is only known at run time: not a constant
    data_sizes = [t.size for t in data]
    if max(r.type.size for r in op.results) > max(16, sum(data_sizes)):
        return None  # broadcasting a constant: keep it small and let kernels broadcast
    outs = _fold(op, shape_only)
    if outs is None:
        return None
    if any(has_symbolic_dims(v.type) for i, v in enumerate(op.operands) if i in shape_only):
        # it reads a size of the run (count over a batch axis, say) unless it gives the
        # same at other sizes: folded only then, else computed when it runs
        again = _fold(op, shape_only, elsewhere=True)
        if again is None or not all(map(np.array_equal, outs, again)):
            return None
    if any(is_float_array(np.asarray(o)) and not np.all(np.isfinite(o)) for o in outs):
        return None  # keep the op that makes NaN/inf, so check_numerics can name it
    return [
        builder.create(
            "constant", (), {"value": np.array(o, dtype=r.type.dtype.np)}, loc=op.loc
        ).result
        for o, r in zip(outs, op.results, strict=True)
    ]


def declared_patterns(op: Operation):
    """The patterns op's own definition declares, in order; the first that applies."""
    for pattern in op.opdef.canonicalize:
        replacement = pattern(op)
        if replacement is not None:
            return replacement
    return None


def elementwise_operand_broadcasts(op: Operation):
    """An elementwise op broadcasts implicitly, so an explicit broadcast of an operand that
    the op would broadcast anyway can go: add(y, broadcast_like(c, y)) -> add(y, c)."""
    if not op.opdef.elementwise or not is_static(op.result):
        return None
    for i, v in enumerate(op.operands):
        if v.op is None or not v.op.opdef.has(BROADCAST):
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


PATTERNS = (fold_constants, declared_patterns, elementwise_operand_broadcasts)


class Canonicalize(Pass):
    name = "canonicalize"

    def run(self, fn: Function) -> None:
        apply_patterns(fn, PATTERNS)
