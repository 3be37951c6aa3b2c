"""Op-table records for dynamic ops (issue 17); op_table.py adds them to OP_TABLE.

Slices with run-time starts: x[i], x[i:i + b], TF1's slice, JAX's dynamic_slice and
dynamic_update_slice, and dynamic_slice_like (dynamic_update_slice's gradient). Start inputs
are fixed integer dtypes drawn from the "label" domain (0 to 3), which every record's
windows fit: the checked forms stay in range, the clamped ones are clamped on some draws."""

from __future__ import annotations

import graphjit as gj
from graphjit.ir.ops import bind
from op_table import FLOATS, INTS, OpCase

STARTS = ("real", "label")  # a tensor, then its start indices


def _clamped(start, dim: int, size: int) -> int:
    """JAX's placement of a non-negative start: clamped into [0, dim - size]."""
    return min(int(start), dim - size)


def _window(x, starts, sizes):
    at = [_clamped(s, d, n) for s, d, n in zip(starts, x.shape, sizes)]
    return x[tuple(slice(a, a + n) for a, n in zip(at, sizes))]


def _updated(x, update, starts):
    out = x.copy()
    at = [_clamped(s, d, n) for s, d, n in zip(starts, x.shape, update.shape)]
    out[tuple(slice(a, a + n) for a, n in zip(at, update.shape))] = update
    return out


DYNAMIC_CASES: list = [
    OpCase(
        "dynamic x[i:i+3]",
        lambda x, i: x[i : i + 3],
        lambda x, i: x[i : i + 3],
        [((6, 4), ()), ((7,), ())],
        STARTS,
        fixed={1: "int64"},
    ),
    OpCase(
        "dynamic x[:, i]",
        lambda x, i: x[:, i],
        lambda x, i: x[:, i],
        [((3, 5), ()), ((2, 4, 3), ())],
        STARTS,
        fixed={1: "int32"},
    ),
    OpCase(
        "dynamic x[i:i+2] of integers and booleans",
        lambda x, i: x[i : i + 2],
        lambda x, i: x[i : i + 2],
        [((5, 3), ())],
        ("int", "label"),
        INTS + ("bool",),
        grad=False,
        fixed={1: "int64"},
    ),
    OpCase(
        "dynamic_slice",
        lambda x, i, j: gj.dynamic_slice(x, [i, j], [2, 3]),
        lambda x, i, j: _window(x, (i, j), (2, 3)),
        [((4, 5), (), ()), ((3, 4), (), ())],
        ("real", "label"),
        fixed={1: "int32", 2: "int64"},
    ),
    OpCase(
        "dynamic_update_slice",
        lambda x, u, i: gj.dynamic_update_slice(x, u, [i, 1]),
        lambda x, u, i: _updated(x, u, (i, 1)),
        [((5, 4), (2, 3), ()), ((3, 4), (3, 2), ())],
        ("real", "real", "label"),
        FLOATS,
        fixed={2: "int64"},
    ),
    OpCase(
        "dynamic slice (TF1)",
        lambda x, i: gj.slice(x, [i] + [0] * (x.ndim - 1), [2] + [-1] * (x.ndim - 1)),
        lambda x, i: x[i : i + 2],
        [((5, 3), ()), ((6, 2, 2), ())],
        STARTS,
        fixed={1: "int64"},
    ),
    OpCase(
        "dynamic_slice_like",
        lambda x, ref, i: bind("dynamic_slice_like", x, ref, i),
        lambda x, ref, i: _window(x, (i,), ref.shape[:1]),
        [((5, 4), (2, 4), ()), ((6,), (3,), ())],
        ("real", "real", "label"),
        fixed={2: "int64"},
    ),
]
