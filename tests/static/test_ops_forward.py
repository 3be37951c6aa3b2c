"""Every op-table record, built as a graph and run in an interpreter Session, against NumPy;
and the coverage check that every registered primitive has a record."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir.ops import all_ops
from op_table import COVERED_ELSEWHERE, OP_TABLE, inputs_for, tolerance

CASES = [
    pytest.param(case, shapes, dtype, id=f"{case.name}-{shapes}-{dtype}")
    for case in OP_TABLE
    for shapes in case.shapes
    for dtype in case.dtypes
]


DYNAMIC_CASES = [c for c in CASES if c.values[2] == "float64" and c.values[0].dynamic]


def run_graph(case, arrays, dynamic=False):
    g = gj.Graph()
    with g.as_default():
        xs = [
            gj.placeholder(a.dtype, [None] * a.ndim if dynamic else a.shape, name=f"x{i}")
            for i, a in enumerate(arrays)
        ]
        out = case.fn(*xs)
    with gj.Session(g, backend="interpreter") as sess:
        return sess.run(out, dict(zip(xs, arrays))), g


@pytest.mark.parametrize("case, shapes, dtype", CASES)
def test_forward_matches_numpy(case, shapes, dtype):
    arrays = inputs_for(case, shapes, dtype)
    expected = np.asarray(case.ref(*arrays))
    got, _ = run_graph(case, arrays)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    np.testing.assert_allclose(got, expected, **tolerance(dtype))


@pytest.mark.parametrize("case, shapes, dtype", DYNAMIC_CASES)
def test_forward_with_unknown_dimensions(case, shapes, dtype):
    """The same graphs built with every dimension unknown, specialised by the Session."""
    arrays = inputs_for(case, shapes, dtype)
    got, _ = run_graph(case, arrays, dynamic=True)
    np.testing.assert_allclose(got, case.ref(*arrays), **tolerance(dtype))


def traced_ops(case) -> set[str]:
    arrays = inputs_for(case, case.shapes[0], case.dtypes[0])
    _, g = run_graph(case, arrays)
    return {op.name for op in g.function.walk()}


def test_every_registered_op_has_a_record():
    covered = set(COVERED_ELSEWHERE)
    for case in OP_TABLE:
        covered |= traced_ops(case)
    missing = sorted(set(all_ops()) - covered)
    assert not missing, f"ops without an op-table record: {missing}"
