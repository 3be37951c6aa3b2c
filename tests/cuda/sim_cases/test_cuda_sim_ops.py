"""Every op-table record on the cuda backend (kernels run in Numba's CUDA simulator) against
the interpreter: one compiled graph per (record, dtype) applying the record to all its
shapes, a non-contiguous copy of its largest inputs and, for elementwise records, a
broadcasting case; special values (NaN, ±inf, ±0) through elementwise records and
reductions; reductions big enough to split over blocks."""

from __future__ import annotations

import numpy as np
import programs
import pytest
from cuda_helpers import compare_backends
from programs import (
    OPS,
    RECORD_CASES,
    TRANSCENDENTAL,
    floats,
    is_elementwise,
    special_inputs,
)

import graphjit as gj
from op_table import OP_TABLE, inputs_for


def check(program: programs.Program, **tol) -> None:
    programs.check(program, compare_backends, **tol)


def input_sets(case, dtype) -> list[list[np.ndarray]]:
    """The record's own shapes, the largest again strided, and for elementwise records a
    broadcasting case."""
    return programs.input_sets(
        case,
        dtype,
        seed=9,
        vary_layout=False,
        elementwise_shapes=lambda n: [((3, 1), (1, 5), (5,))[:n]],
        elementwise_seed=10,
    )


@pytest.mark.parametrize("case, dtype", RECORD_CASES)
def test_record_matches_interpreter(case, dtype):
    check(programs.record(case, input_sets(case, dtype)))


# ---- special values ------------------------------------------------------------------------

SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -2.5, 1e-30]

SPECIAL_ELEMENTWISE = [
    c
    for c in OP_TABLE
    if is_elementwise(c) and not OPS[id(c)] & (TRANSCENDENTAL | {"cast"}) and floats(c)
]
SPECIAL_REDUCTIONS = programs.REDUCTION_RECORDS


@pytest.mark.parametrize("case", SPECIAL_ELEMENTWISE, ids=lambda c: c.name)
def test_special_values_through_elementwise_records(case):
    check(programs.record(case, [special_inputs(case, dtype, SPECIAL) for dtype in floats(case)]))


DESIGNED = np.array(
    [
        [np.nan, 1, 2, 3],  # NaN first
        [1, np.nan, 5, np.nan],  # two NaNs: argmax gives the first
        [np.inf, -np.inf, 0, -0.0],
        [2, 7, 7, 1],  # ties: argmax gives the first maximum
    ]
)


@pytest.mark.parametrize("case", SPECIAL_REDUCTIONS, ids=lambda c: c.name)
def test_special_values_through_reductions(case):
    """NaN propagates through sum/max/min, argmax returns the first NaN or maximum."""
    sets = []
    for dtype in floats(case):
        rest = inputs_for(case, case.shapes[0], dtype)[1:]  # sum_to's shape operand
        if rest or len(case.shapes[0][0]) != 2:
            x = np.resize(np.array(SPECIAL, dtype), case.shapes[0][0])
        else:
            x = DESIGNED.astype(dtype)
        sets.append([x, *rest])
    check(programs.record(case, sets))


def test_the_record_filters_pick_what_they_should():
    """A filter that matched nothing would silently test nothing."""
    assert {"maximum", "minimum", "div", "sign", "less"} <= {c.name for c in SPECIAL_ELEMENTWISE}
    assert "argmax(axis=1, keepdims=False)" in {c.name for c in SPECIAL_REDUCTIONS}


# ---- reductions over more elements than a block has threads ------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32", "int32"])
def test_reductions_split_over_blocks_and_partial_results(dtype):
    """Few outputs over many elements: each output is folded by several blocks whose
    partial results a second kernel combines; many outputs: one block each."""
    rng = np.random.default_rng(0)
    x = rng.integers(-9, 9, (3, 2, 37)).astype(dtype)
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(x.dtype, x.shape, name="x")
        fetches = [
            gj.sum(p),
            gj.max(p, axis=(0, 2)),
            gj.min(p, axis=2),
            gj.sum(p * 2, axis=(0, 1), keepdims=True),
            gj.argmax(p, axis=2),
        ]
    compare_backends(g, fetches, {p: x})
