"""Op-table records for integer and bitwise semantics (bitwise ops, floor division,
modulo, prod, argmin, any, all), through the public functions and the Python operators.
op_table.py adds them to OP_TABLE."""

from __future__ import annotations

import operator

import numpy as np

import graphjit as gj
from op_table import BINARY_SHAPES, FLOATS, INTS, REDUCE_SHAPES, UNARY_SHAPES, OpCase

BOOL = ("bool",)


def _bitwise_cases() -> list[OpCase]:
    """Each bitwise op as a function and as an operator, on integers (both signs) and on
    booleans (where NumPy's bitwise ops are the logical ones)."""
    binary = [
        ("bitwise_and", gj.bitwise_and, operator.and_, np.bitwise_and),
        ("bitwise_or", gj.bitwise_or, operator.or_, np.bitwise_or),
        ("bitwise_xor", gj.bitwise_xor, operator.xor, np.bitwise_xor),
    ]
    cases = []
    for dtypes, domain in [(INTS, "int"), (BOOL, "bool")]:
        for name, fn, python_op, ref in binary:
            cases.append(OpCase(name, fn, ref, BINARY_SHAPES, (domain,), dtypes, grad=False))
            cases.append(
                OpCase(f"operator {name}", python_op, ref, BINARY_SHAPES, (domain,), dtypes, False)
            )
        cases.append(
            OpCase("bitwise_not", gj.bitwise_not, np.invert, UNARY_SHAPES, (domain,), dtypes, False)
        )
        cases.append(
            OpCase("operator ~", operator.invert, np.invert, UNARY_SHAPES, (domain,), dtypes, False)
        )
    cases.append(
        OpCase(
            "operator & 6", lambda x: x & 6, lambda x: x & 6, UNARY_SHAPES, ("int",), INTS, False
        )
    )
    cases.append(
        OpCase(
            "5 ^ operator", lambda x: 5 ^ x, lambda x: 5 ^ x, UNARY_SHAPES, ("int",), INTS, False
        )
    )
    return cases


def _division_cases() -> list[OpCase]:
    """floor division and modulo with divisors of both signs, integers and floats; the
    float modulo is differentiable, floor division piecewise constant (no gradient)."""
    cases = []
    for name, fn, python_op, ref in [
        ("floor_divide", gj.floor_divide, operator.floordiv, np.floor_divide),
        ("remainder", gj.remainder, operator.mod, np.mod),
    ]:
        float_grad = name == "remainder"
        for dtypes, domains, grad in [
            (INTS, ("int", "nonzero"), False),
            (FLOATS, ("real", "nonzero"), float_grad),
        ]:
            cases.append(OpCase(name, fn, ref, BINARY_SHAPES, domains, dtypes, grad))
            cases.append(
                OpCase(f"operator {name}", python_op, ref, BINARY_SHAPES, domains, dtypes, grad)
            )
    cases += [
        OpCase(
            "operator // 3",
            lambda x: x // 3,
            lambda x: x // 3,
            UNARY_SHAPES,
            ("int",),
            INTS + FLOATS,
            False,
        ),
        OpCase(
            "operator % -3", lambda x: x % -3, lambda x: x % -3, UNARY_SHAPES, ("int",), INTS, False
        ),
        OpCase(
            "7 // operator",
            lambda x: 7 // x,
            lambda x: 7 // x,
            UNARY_SHAPES,
            ("nonzero",),
            INTS + FLOATS,
            False,
        ),
        OpCase(
            "7 % operator",
            lambda x: 7 % x,
            lambda x: 7 % x,
            UNARY_SHAPES,
            ("nonzero",),
            FLOATS,
            True,
        ),
    ]
    return cases


def _reduce(name, fn, ref, axis, keepdims=False, domain="real", dtypes=FLOATS, grad=True):
    return OpCase(
        f"{name}(axis={axis}, keepdims={keepdims})",
        lambda x: fn(x, axis=axis, keepdims=keepdims),
        lambda x: np.asarray(ref(x, axis=axis, keepdims=keepdims)),
        REDUCE_SHAPES if axis in (None, 0, -1, 1) else [((2, 3, 4),)],
        (domain,),
        dtypes,
        grad,
    )


def _reduction_cases() -> list[OpCase]:
    axes = [(None, False), (1, False), (-1, True), ((0, 2), False)]
    cases = [_reduce("prod", gj.prod, np.prod, a, k) for a, k in axes]
    cases += [
        _reduce("prod", gj.prod, np.prod, a, k, "small_int", INTS, False) for a, k in axes[:2]
    ]
    cases += [
        OpCase(
            "prod(dim=1, keepdim=True)",
            lambda x: gj.prod(x, dim=1, keepdim=True),
            lambda x: np.prod(x, axis=1, keepdims=True),
            REDUCE_SHAPES,
        )
    ]
    for a, k in [(None, False), (1, False), (-1, True)]:
        cases.append(_reduce("argmin", gj.argmin, np.argmin, a, k, grad=False))
        cases.append(_reduce("argmin", gj.argmin, np.argmin, a, k, "small_int", INTS, False))
    for name, fn, ref in [("any", gj.any, np.any), ("all", gj.all, np.all)]:
        for a, k in [(None, False), (1, True)]:
            cases.append(_reduce(name, fn, ref, a, k, "bool", BOOL, False))
            cases.append(_reduce(name, fn, ref, a, k, "small_int", INTS, False))
    return cases


INTEGER_CASES: list = _bitwise_cases() + _division_cases() + _reduction_cases()
