"""Run-time checks in upstream MLIR: what raises on the other backends raises here too.

A check is one reduction to a 0-d tensor<i1> (structured.all_true) that waits in the
writer until `flush` asserts the pending ones together with `cf.assert`; IREE fails the
call with the assert's message and the runner raises the graphjit error the check names.
The checks:

- integer floor_divide / floor_mod (no zero divisor) and pow (no negative exponent): a
  RuntimeCheckError with the interpreter's words (VALUE_CHECKS); constant operands are
  checked when the module is written;
- the `check_numerics` op: no NaN, then no infinity (a NumericsError with its message);
- `Session(..., check_numerics=True)`: every float result of every op (constants and
  region ops aside, as llvm does), in program order, NaN before infinity."""

from __future__ import annotations

import numpy as np

from graphjit.errors import NumericsError, RuntimeCheckError
from graphjit.ir.ops import CONSTANT
from graphjit.ir.ops.debug import numerics_message
from graphjit.ir.ops.elementwise import VALUE_CHECKS
from graphjit.ir.patterns import constant_value
from graphjit.ir.types import TensorType, bool_, int64
from graphjit.mlir.structured import affine_map, all_true, generic, operands
from graphjit.mlir.writer import element_type

# ---- asserting the pending checks -------------------------------------------------------


def flush(w) -> None:
    """Assert the pending checks; the first to fail, in the order they were made, raises.
    Their flags go into one tensor<K x i1>, one reduction finds the position of the first
    false one (K when none is), and that one number is read back and compared by one
    `cf.assert` per check: a read-back per check would make IREE compile (and the
    program wait at) K synchronisation points instead of one.

    Export flushes before each region op (cond, while), at the end of each region and
    before the function returns. Until then the checked ops run on (a gather clamps its
    index, a division its divisor): nothing they compute is returned when a check fails."""
    pending, w.pending = w.pending, []
    if len(pending) == 1:
        passed = w.op(f"tensor.extract {w.flags[pending[0]]}[{w.index(0)}] : tensor<1xi1>")
        w.assert_(passed, pending[0])
        return
    if not pending:
        return
    first = first_failure(w, [w.flags[n] for n in pending])
    first = w.op(f"tensor.extract {first}[] : tensor<i64>")
    for position, number in enumerate(pending):
        passed = w.op(f"arith.cmpi ne, {first}, {w.scalar(position, int64)} : i64")
        w.assert_(passed, number)


def first_failure(w, flags: list) -> str:
    """0-d int64: the position of the first false flag (tensor<1xi1>s), len(flags) when
    every one holds."""
    k = len(flags)
    joined_t = TensorType((k,), bool_)
    joined = w.op(
        f"tensor.concat dim(0) {', '.join(flags)} : ({', '.join(['tensor<1xi1>'] * k)}) -> "
        f"tensor<{k}xi1>"
    )
    result = TensorType((), int64)

    def body(w, s):
        position = w.op(f"arith.index_cast {w.op('linalg.index 0 : index')} : index to i64")
        candidate = w.op(f"arith.select {s[0]}, {w.scalar(k, int64)}, {position} : i64")
        return [w.op(f"arith.minsi {s[1]}, {candidate} : i64")]

    init = w.filled(result, [], k)
    maps = [affine_map(1, ["d0"]), affine_map(1, [])]
    return generic(w, [(joined, joined_t)], [(init, result)], maps, ["reduction"], body)[0]


def check_all(
    w, inputs: list, predicate, message: str, op, error=RuntimeCheckError, over=None
) -> None:
    """A check that `predicate(w, scalars) -> i1` holds at every element of `inputs` (or
    of the shape `over`, the inputs broadcast to it: structured.all_true)."""
    holds = all_true(w, inputs, predicate, over)
    flag = w.op(f"tensor.expand_shape {holds} [] output_shape [1] : tensor<i1> into tensor<1xi1>")
    w.check(flag, message, op, error)


def check_scalar(w, condition: str, message: str, op) -> None:
    """A check of an i1 computed on the host (a slice start's range), asserted at once
    after the pending ones (IREE 3.13 fails to compile a tensor.from_elements of i1, the
    way to make it a flag)."""
    flush(w)
    w.assert_(condition, w.numbered(message, op))


# ---- integer operands --------------------------------------------------------------------

# The arith predicate an integer op's second operand must satisfy against 0.
CHECKED_OPERAND = {"floor_divide": "ne", "floor_mod": "ne", "pow": "sge"}


def check_values(w, op) -> None:
    """The check of an integer floor_divide, floor_mod or pow, before it runs: its second
    operand, where it computes (NumPy checks nothing for an empty result, and a non-empty
    one uses every element of both operands; a result of unknown size is checked over its
    own elements, the operands broadcast to it)."""
    dtype = op.operands[-1].type.dtype
    out = op.result.type
    if op.name not in CHECKED_OPERAND or dtype.is_floating or 0 in out.shape:
        return
    predicate = CHECKED_OPERAND[op.name]
    constant = constant_value(op.operands[1])
    if constant is not None and _holds(predicate, constant):
        return
    ty = element_type(dtype)

    def holds(w, s):
        return w.op(f"arith.cmpi {predicate}, {s[-1]}, {w.scalar(0, dtype)} : {ty}")

    message = VALUE_CHECKS[op.name]
    if out.is_static:
        check_all(w, operands(w, op)[1:], holds, message, op)
    else:
        check_all(w, operands(w, op), holds, message, op, over=out)


def _holds(predicate: str, constant) -> bool:
    return bool((constant != 0).all() if predicate == "ne" else (constant >= 0).all())


# ---- NaN and infinity ----------------------------------------------------------------------


def check_finite(w, x: str, t: TensorType, messages, op) -> None:
    """Two NumericsError checks of x: no NaN (messages[0]), then no infinity
    (messages[1])."""
    ty = element_type(t.dtype)

    def no_nan(w, s):
        return w.op(f"arith.cmpf ord, {s[0]}, {s[0]} : {ty}")

    def no_infinity(w, s):
        magnitude = w.op(f"math.absf {s[0]} : {ty}")
        return w.op(f"arith.cmpf une, {magnitude}, {w.scalar(np.inf, t.dtype)} : {ty}")

    for predicate, message in zip((no_nan, no_infinity), messages, strict=True):
        check_all(w, [(x, t)], predicate, message, op, NumericsError)


def emit_check_numerics(w, op):
    """x, once checked (the op's message, as every backend words it)."""
    x, t = operands(w, op)[0]
    message = op.attrs["message"]
    check_finite(w, x, t, [numerics_message(message, nan) for nan in (True, False)], op)
    return [x]


# Ops whose results Session(check_numerics=True) does not scan, as on llvm (with constants,
# what the user wrote, and region ops, whose results come from their regions' ops).
NOT_SCANNED = frozenset({"check_numerics"})


def check_results(w, op) -> None:
    """Session(check_numerics=True): the float results of `op`, the interpreter's words."""
    if op.name in NOT_SCANNED or op.regions or op.opdef.has(CONSTANT):
        return
    for value in op.results:
        t = value.type
        if isinstance(t, TensorType) and t.dtype.is_floating:
            messages = [
                f"check_numerics: {what} in the result of '{op.name}'"
                for what in ("NaN", "infinity")
            ]
            check_finite(w, w.name(value), t, messages, op)
