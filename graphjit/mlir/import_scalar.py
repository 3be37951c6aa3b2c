"""THE table of `arith` and `math` ops read back: each as the graphjit elementwise op it
stands for (scalar.py's table inverted op by op, so the multi-op bodies that table writes
for sign, sigmoid or a float -> integer cast read back as the same few graphjit ops).

A rule takes its operands as graphjit values of any shape: 0-d tensors for MLIR scalars,
tensors for `arith` on tensors, and loop-space tensors inside a linalg body (see
import_linalg.py), where NumPy broadcasting does what the indexing maps did."""

from __future__ import annotations

import numpy as np

from graphjit.ir.patterns import constant_value
from graphjit.mlir.import_core import tensor_type

# A splat constant with more elements than this stays one scalar, broadcast: a few
# characters of text must not become a huge literal.
SPLAT_EXPANDED_MAX = 1 << 16


def read_constant(im, op):
    attr = op.attributes["value"]
    t = tensor_type(op.results[0].type)
    if isinstance(attr, (im.ir.FloatAttr, im.ir.IntegerAttr, im.ir.BoolAttr)):
        return [im.constant(np.asarray(attr.value, t.dtype.np))]  # a scalar
    if not isinstance(attr, im.ir.DenseElementsAttr):
        raise im.unsupported(f"a constant {str(attr)[:60]}")
    if attr.is_splat and np.prod(t.shape, dtype=np.int64) > SPLAT_EXPANDED_MAX:
        scalar = im.constant(np.asarray(attr.get_splat_value().value, t.dtype.np))
        return [im.create("broadcast_to", [scalar], shape=t.shape)]
    try:
        array = np.array(attr)
    except (TypeError, ValueError) as e:  # bfloat16 has no NumPy buffer format here
        raise im.unsupported(f"a dense constant of {t} ({e})") from None
    return [im.constant(array.astype(t.dtype.np, copy=False).reshape(t.shape))]


def _same(name: str):
    """The graphjit op `name` of the same operands."""

    def read(im, op):
        return [im.create(name, im.values(op.operands))]

    return read


def _cast(im, op):
    return [im.cast(im.value(op.operands[0]), tensor_type(op.results[0].type).dtype)]


def _signed_cast(im, op):
    """sitofp / extsi / index_cast read i1 as signed: true is -1 (graphjit's cast gives 1)."""
    (cast,) = _cast(im, op)
    return [im.create("neg", [cast]) if tensor_type(op.operands[0].type).dtype.is_bool else cast]


def _from_bool(im, op):
    """uitofp / extui: graphjit's cast reads integers as signed, so only i1 (0 or 1)."""
    if not tensor_type(op.operands[0].type).dtype.is_bool:
        raise im.unsupported(f"'{op.name}' of a multi-bit integer (read as unsigned)")
    return _cast(im, op)


def _truncate(im, op):
    """trunci keeps the low bits; to i1 that is the lowest bit (graphjit's cast to bool
    tests for nonzero)."""
    x = im.value(op.operands[0])
    if not tensor_type(op.results[0].type).dtype.is_bool:
        return [im.cast(x, tensor_type(op.results[0].type).dtype)]
    low_bit = im.create("bitwise_and", [x, im.constant(np.ones((), x.type.dtype.np))])
    return [im.create("not_equal", [low_bit, im.constant(np.zeros((), x.type.dtype.np))])]


def _floor_mod_and_sign_fix(im, a, b):
    """(floor_mod(a, b), where truncating division differs from flooring: a remainder
    whose sign is not a's)."""
    mod = im.create("floor_mod", [a, b])
    zero = im.constant(np.zeros((), a.type.dtype.np))
    signs_differ = im.create(
        "not_equal", [im.create("less", [a, zero]), im.create("less", [b, zero])]
    )
    return mod, im.create("logical_and", [im.create("not_equal", [mod, zero]), signs_differ])


def _truncating_remainder(im, op):
    """arith.remsi (the remainder takes a's sign): floor_mod, less b where they differ."""
    a, b = im.values(op.operands)
    mod, differs = _floor_mod_and_sign_fix(im, a, b)
    return [im.create("select", [differs, im.create("sub", [mod, b]), mod])]


def _truncating_division(im, op):
    """arith.divsi (rounds toward zero): floor_divide, plus one where they differ."""
    a, b = im.values(op.operands)
    _, differs = _floor_mod_and_sign_fix(im, a, b)
    return [im.create("add", [im.create("floor_divide", [a, b]), im.cast(differs, a.type.dtype)])]


def _logical_or_bitwise(logical: str, bitwise: str):
    def read(im, op):
        a, b = im.values(op.operands)
        return [im.create(logical if a.type.dtype.is_bool else bitwise, [a, b])]

    return read


def _xor(im, op):
    """xori with all ones is scalar.py's `not`; otherwise xor (on i1, `!=`)."""
    a, b = im.values(op.operands)
    is_bool = a.type.dtype.is_bool
    for x, y in ((a, b), (b, a)):
        if _all_ones(y):
            return [im.create("logical_not" if is_bool else "bitwise_not", [x])]
    return [im.create("not_equal" if is_bool else "bitwise_xor", [a, b])]


def _all_ones(v) -> bool:
    value = constant_value(v)
    if value is None or value.size != 1:
        return False
    return bool(value) if value.dtype == bool else int(value) == -1


# ---- comparisons: arith.cmpf / arith.cmpi predicates (MLIR's enum numbers) -----------------


def _compare(name: str):
    return lambda im, a, b: im.create(name, [a, b])


def _negated(compare):
    return lambda im, a, b: im.create("logical_not", [compare(im, a, b)])


def _ordered(im, a, b):
    """Neither operand is NaN."""
    return im.create("logical_and", [im.create("equal", [a, a]), im.create("equal", [b, b])])


def _ordered_not_equal(im, a, b):
    return im.create("logical_and", [_ordered(im, a, b), im.create("not_equal", [a, b])])


# graphjit's comparisons are NumPy's: false when an operand is NaN, but not_equal (true)
# ("u" predicates are true on NaN: the negation of the opposite ordered comparison)
CMPF = {
    1: _compare("equal"),  # oeq
    2: _compare("greater"),  # ogt
    3: _compare("greater_equal"),  # oge
    4: _compare("less"),  # olt
    5: _compare("less_equal"),  # ole
    6: _ordered_not_equal,  # one
    7: _ordered,  # ord
    8: _negated(_ordered_not_equal),  # ueq
    9: _negated(_compare("less_equal")),  # ugt
    10: _negated(_compare("less")),  # uge
    11: _negated(_compare("greater_equal")),  # ult
    12: _negated(_compare("greater")),  # ule
    13: _compare("not_equal"),  # une
    14: _negated(_ordered),  # uno
}
# signed predicates only: graphjit's integers are signed
CMPI = {
    0: _compare("equal"),
    1: _compare("not_equal"),
    2: _compare("less"),
    3: _compare("less_equal"),
    4: _compare("greater"),
    5: _compare("greater_equal"),
}


def _predicate(table: dict):
    def read(im, op):
        number = im.ir.IntegerAttr(op.attributes["predicate"]).value
        if number not in table:
            raise im.unsupported(f"'{op.name}' with predicate {number}")
        return [table[number](im, *im.values(op.operands))]

    return read


SCALAR_RULES = {
    "arith.constant": read_constant,
    **dict.fromkeys(["arith.addf", "arith.addi"], _same("add")),
    **dict.fromkeys(["arith.subf", "arith.subi"], _same("sub")),
    **dict.fromkeys(["arith.mulf", "arith.muli"], _same("mul")),
    "arith.divf": _same("div"),
    "arith.floordivsi": _same("floor_divide"),
    "arith.divsi": _truncating_division,
    "arith.remsi": _truncating_remainder,
    **dict.fromkeys(["arith.maximumf", "arith.maxsi"], _same("maximum")),
    **dict.fromkeys(["arith.minimumf", "arith.minsi"], _same("minimum")),
    "arith.negf": _same("neg"),
    "arith.select": _same("select"),
    "arith.andi": _logical_or_bitwise("logical_and", "bitwise_and"),
    "arith.ori": _logical_or_bitwise("logical_or", "bitwise_or"),
    "arith.xori": _xor,
    "arith.cmpf": _predicate(CMPF),
    "arith.cmpi": _predicate(CMPI),
    **dict.fromkeys(["arith.extf", "arith.truncf", "arith.fptosi"], _cast),
    **dict.fromkeys(["arith.sitofp", "arith.extsi", "arith.index_cast"], _signed_cast),
    **dict.fromkeys(["arith.uitofp", "arith.extui"], _from_bool),
    "arith.trunci": _truncate,
    **dict.fromkeys(["math.absf", "math.absi"], _same("abs")),
    **{
        f"math.{name}": _same(name)
        for name in ("exp", "log", "sqrt", "sin", "cos", "tanh", "erf", "log1p", "expm1")
    },
    "math.floor": _same("floor"),
    "math.ceil": _same("ceil"),
    "math.roundeven": _same("round"),
    "math.powf": _same("pow"),
}
