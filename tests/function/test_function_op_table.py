"""gj.function(record.fn) equals record.fn on gj.tensors, for every record of the op table
(its first shape, float64 where the record takes it). The interpreter runs every record,
since the point is tracing; the default LLVM backend runs a representative subset."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from op_table import OP_TABLE, inputs_for, tolerance

LLVM_SUBSET = {"exp", "div", "sum(axis=-1, keepdims=True)", "max(axis=1, keepdims=False)",
               "softmax", "matmul", "getitem(slice(None, None, None), 2)", "concat", "where", "cast_i32",
               "one_hot", "softmax_cross_entropy"}  # fmt: skip
NOT_EAGER = {"tensor_lists"}  # list ops have no eager form: compare with the NumPy reference


def _dtype(case) -> str:
    return "float64" if "float64" in case.dtypes else case.dtypes[0]


def _check(case, backend: str) -> None:
    arrays = inputs_for(case, case.shapes[0], _dtype(case))
    compiled = gj.function(case.fn, backend=backend)
    got = compiled(*arrays)
    if case.name in NOT_EAGER:
        want = np.asarray(case.ref(*arrays))
    else:
        want = case.fn(*[gj.tensor(a) for a in arrays]).numpy()
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **tolerance(_dtype(case)))
    compiled(*arrays)
    assert compiled.trace_count == 1


@pytest.mark.parametrize("case", OP_TABLE, ids=lambda c: c.name)
def test_function_equals_eager_on_the_interpreter(case):
    _check(case, "interpreter")


@pytest.mark.parametrize(
    "case", [c for c in OP_TABLE if c.name in LLVM_SUBSET], ids=lambda c: c.name
)
def test_function_equals_eager_on_llvm(case):
    _check(case, "llvm")


def test_the_llvm_subset_names_existing_records():
    assert LLVM_SUBSET <= {c.name for c in OP_TABLE}
