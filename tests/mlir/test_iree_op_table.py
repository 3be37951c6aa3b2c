"""Every op-table record whose ops export, on backend="iree" against the interpreter,
its export verified by MLIR; and the records built with unknown dimensions export to
`?` dimensions that MLIR verifies."""

from __future__ import annotations

import programs
import pytest
from iree_helpers import compare_iree, exported, require_iree
from programs import RECORD_CASES, TRANSCENDENTAL

import graphjit as gj
from graphjit.mlir import ExportError
from op_table import inputs_for

require_iree()

# IREE evaluates transcendentals with its own polynomial approximations (a few ulp in
# float32; float64 ones are not correctly rounded either).
IREE_TOLERANCE = {"float32": {"rtol": 2e-5, "atol": 2e-6}, "float64": {"rtol": 1e-9, "atol": 1e-10}}


# Records that export and verify but that IREE 3.x cannot compile for llvm-cpu: float64
# sin/cos/tanh/erf have no implementation it can link, and a reversed (negative-step)
# slice, a tensor.extract inside a linalg.generic, fails in its LLVM translation.
IREE_CANNOT_COMPILE = {
    **dict.fromkeys(
        [f"{n}-float64" for n in ("sin", "cos", "tanh", "erf", "gelu", "gelu_tanh")],
        "IREE cannot link float64 sin/cos/tanh/erf on llvm-cpu",
    ),
    **dict.fromkeys(
        [f"getitem(Ellipsis, slice(None, None, -2))-{d}" for d in ("float32", "float64")],
        "IREE's llvm-cpu fails to translate a tensor.extract inside linalg.generic",
    ),
}


def _program(case, dtype):
    sets = [inputs_for(case, shapes, dtype, seed=j) for j, shapes in enumerate(case.shapes)]
    return programs.record(case, sets)


@pytest.mark.parametrize("case, dtype", RECORD_CASES)
def test_record_on_iree_matches_interpreter(case, dtype):
    program = _program(case, dtype)
    feed = program.feeds[None]
    try:
        gj.mlir.export(program.fetches, feed, graph=program.graph)
    except ExportError as e:
        pytest.skip(f"does not export: {e}")
    known = IREE_CANNOT_COMPILE.get(f"{case.name}-{dtype}")
    if known is not None:
        exported(program.graph, program.fetches, feed)  # it still exports and verifies
        pytest.xfail(known)
    tol = IREE_TOLERANCE[dtype] if programs.OPS[id(case)] & TRANSCENDENTAL else {}
    compare_iree(program.graph, program.fetches, feed, what=case.name, **tol)


DYNAMIC_RECORDS = [
    pytest.param(case, id=case.name)
    for case in programs.OP_TABLE
    if case.dynamic and "float32" in case.dtypes
]


@pytest.mark.parametrize("case", DYNAMIC_RECORDS)
def test_record_with_unknown_dimensions_verifies(case):
    g = gj.Graph()
    with g.as_default():
        xs = [
            gj.placeholder(case.fixed.get(i, "float32"), [None] * len(s), name=f"x{i}")
            for i, s in enumerate(case.shapes[0])
        ]
        out = case.fn(*xs)
    try:
        text = exported(g, out)
    except ExportError as e:
        pytest.skip(f"does not export with unknown dimensions: {e}")
    assert "?" in text or not any(case.shapes[0])
