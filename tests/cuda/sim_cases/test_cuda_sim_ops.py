"""Every op-table record on the cuda backend (kernels run in Numba's CUDA simulator) against
the interpreter: one compiled graph per (record, dtype) applying the record to all its
shapes, a non-contiguous copy of its largest inputs and, for elementwise records, a
broadcasting case; special values (NaN, ±inf, ±0) through elementwise records and
reductions; reductions big enough to split over blocks."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_helpers import assert_matches, compare_backends, run_on

import graphjit as gj
from graphjit.ir.ops import all_ops
from op_table import OP_TABLE, inputs_for

TRANSCENDENTAL = frozenset({"exp", "log", "tanh", "sigmoid"})
REDUCTIONS = frozenset({"reduce_sum", "reduce_max", "reduce_min", "sum_to", "argmax"})


def traced_ops(case) -> set[str]:
    g = gj.Graph()
    with g.as_default():
        arrays = inputs_for(case, case.shapes[0], case.dtypes[0])
        case.fn(*[gj.placeholder(a.dtype, a.shape, name=f"x{i}") for i, a in enumerate(arrays)])
    return {op.name for op in g.function.walk()} - {"placeholder", "constant", "return"}


_OPS = {id(case): traced_ops(case) for case in OP_TABLE}


def is_elementwise(case) -> bool:
    ops = _OPS[id(case)]
    return bool(ops) and all(all_ops()[name].elementwise for name in ops)


def noncontiguous(a: np.ndarray) -> np.ndarray:
    """The values of `a` as every other element of a bigger buffer (not C-contiguous)."""
    if a.ndim == 0:
        return a
    view = np.zeros(tuple(2 * d for d in a.shape), a.dtype)[(slice(None, None, 2),) * a.ndim]
    view[...] = a
    return view


def input_sets(case, dtype) -> list[tuple[str, list[np.ndarray]]]:
    sets = [
        (f"shapes {shapes}", inputs_for(case, shapes, dtype, seed=j))
        for j, shapes in enumerate(case.shapes)
    ]
    big = max(case.shapes, key=lambda shapes: sum(np.prod(s, dtype=int) for s in shapes))
    sets.append(("non-contiguous", [noncontiguous(a) for a in inputs_for(case, big, dtype, 9)]))
    if is_elementwise(case):
        n = len(case.shapes[0])
        shapes = ((3, 1), (1, 5), (5,))[:n]
        sets.append(("broadcast", inputs_for(case, shapes, dtype, seed=10)))
    return sets


def compare(case, sets):
    g = gj.Graph()
    fetches, feeds = [], {}
    with g.as_default():
        for j, (_, arrays) in enumerate(sets):
            xs = [gj.placeholder(a.dtype, a.shape, name=f"s{j}_x{i}") for i, a in enumerate(arrays)]
            feeds.update(zip(xs, arrays))
            fetches.append(case.fn(*xs))
    expected = run_on("interpreter", g, fetches, feeds)
    got = run_on("cuda", g, fetches, feeds)
    for (label, _), a, b in zip(sets, got, expected, strict=True):
        assert_matches(a, b, f"{case.name} {label}")


CASES = [
    pytest.param(case, dtype, id=f"{case.name}-{dtype}")
    for case in OP_TABLE
    for dtype in case.dtypes
]


@pytest.mark.parametrize("case, dtype", CASES)
def test_record_matches_interpreter(case, dtype):
    compare(case, input_sets(case, dtype))


# ---- special values ------------------------------------------------------------------------

SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -2.5, 1e-30]


def special_inputs(case, dtype) -> list[np.ndarray]:
    """Input i varies along axis i over SPECIAL (every combination once broadcast)."""
    n, m = len(case.shapes[0]), len(SPECIAL)
    arrays = []
    for i in range(n):
        if case.fixed.get(i) == "bool":
            arrays.append(np.indices((m,) * n).sum(0) % 2 == 0)
        else:
            shape = [1] * n
            shape[i] = m
            arrays.append(np.array(SPECIAL, dtype).reshape(shape))
    return arrays


def floats(case) -> list[str]:
    return [d for d in case.dtypes if d.startswith("float")]


SPECIAL_ELEMENTWISE = [
    c
    for c in OP_TABLE
    if is_elementwise(c) and not _OPS[id(c)] & (TRANSCENDENTAL | {"cast"}) and floats(c)
]
SPECIAL_REDUCTIONS = [
    c for c in OP_TABLE if _OPS[id(c)] & REDUCTIONS and not _OPS[id(c)] & TRANSCENDENTAL
]


@pytest.mark.parametrize("case", SPECIAL_ELEMENTWISE, ids=lambda c: c.name)
def test_special_values_through_elementwise_records(case):
    compare(case, [(dtype, special_inputs(case, dtype)) for dtype in floats(case)])


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
        sets.append((dtype, [x, *rest]))
    compare(case, sets)


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
