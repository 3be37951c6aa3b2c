"""Every op-table record whose ops export, on backend="iree" against the interpreter,
its export verified by MLIR; and the records built with unknown dimensions export to
`?` dimensions that MLIR verifies.

A record on its own is one IREE compile (about half a second, most of it fixed cost), so
the records run batched: those of the families in BATCHED as one graph per family (every
record and dtype in it), every other record as one graph per dtype; each record's
results are still compared on their own, and a failure names the record and its input
set. GRAPHJIT_FUZZ=long (the long profile) runs every record one by one as well, so that
a record that breaks a whole batch's compile is found; the records IREE is known not to
compile run one by one always (they export and verify, then xfail)."""

from __future__ import annotations

import os

import programs
import pytest
from backend_check import assert_matches, run_on
from iree_helpers import compare_iree, exported, require_iree
from programs import RECORD_CASES, TRANSCENDENTAL

import graphjit as gj
from graphjit.mlir import ExportError
from graphjit.nest import flatten
from op_table import inputs_for

require_iree()

# IREE evaluates transcendentals with its own polynomial approximations (a few ulp in
# float32; float64 ones are not correctly rounded either).
IREE_TOLERANCE = {"float32": {"rtol": 2e-5, "atol": 2e-6}, "float64": {"rtol": 1e-9, "atol": 1e-10}}


# Records that export and verify but that IREE cannot compile for llvm-cpu (none now:
# float64 sin, cos, tanh and erf, which it cannot link, are graphjit's own: own_math.py).
IREE_CANNOT_COMPILE: dict[str, str] = {}


LONG = os.environ.get("GRAPHJIT_FUZZ", "") == "long"

# Families of ops whose records run batched, one graph per family.
BATCHED = {
    "indexing": {"gather", "take_along_axis", "scatter_add", "scatter_add_along_axis"},
    "dynamic_slice": {"dynamic_slice", "dynamic_slice_like", "dynamic_update_slice"},
    "scan_and_sort": {"cumsum", "sort"},
    "conv": {"conv2d", "conv2d_input_grad", "conv2d_filter_grad"},
    "pool": {
        "max_pool2d",
        "max_pool2d_grad",
        "max_pool2d_pick",
        "avg_pool2d",
        "avg_pool2d_grad",
    },
    "checked_integers": {"floor_divide", "floor_mod", "pow"},  # (integer dtypes only)
}


def family(case, dtype) -> str:
    """The batch a record in `dtype` runs in: its family's, else its dtype's."""
    ops = programs.OPS[id(case)]
    for name, members in BATCHED.items():
        if ops & members and (name != "checked_integers" or dtype.startswith("int")):
            return name
    return dtype


def _known_failure(case, dtype) -> str | None:
    return IREE_CANNOT_COMPILE.get(f"{case.name}-{dtype}")


def _sets(case, dtype):
    return [inputs_for(case, shapes, dtype, seed=j) for j, shapes in enumerate(case.shapes)]


def _program(case, dtype):
    return programs.record(case, _sets(case, dtype))


def _tolerance(case, dtype) -> dict:
    return IREE_TOLERANCE[dtype] if programs.OPS[id(case)] & TRANSCENDENTAL else {}


ONE_BY_ONE = [p for p in RECORD_CASES if LONG or _known_failure(*p.values)]
# one batch per family, then one per dtype (of the records in no family)
BATCHES = list(dict.fromkeys([*BATCHED, *(family(*p.values) for p in RECORD_CASES)]))


@pytest.mark.parametrize("case, dtype", ONE_BY_ONE)
def test_record_on_iree_matches_interpreter(case, dtype):
    program = _program(case, dtype)
    feed = program.feeds[None]
    try:
        gj.mlir.export(program.fetches, feed, graph=program.graph)
    except ExportError as e:
        pytest.skip(f"does not export: {e}")
    known = _known_failure(case, dtype)
    if known is not None:
        exported(program.graph, program.fetches, feed)  # it still exports and verifies
        pytest.xfail(known)
    compare_iree(program.graph, program.fetches, feed, what=case.name, **_tolerance(case, dtype))


@pytest.mark.parametrize("name", BATCHES)
def test_batched_records_on_iree_match_interpreter(name):
    """Every record of one batch (a family, in every dtype, or a dtype) that exports and
    that IREE is not known to fail on, as one graph: its export verified, each record's
    results on iree against the interpreter's, leaf by leaf."""
    members = [
        p.values
        for p in RECORD_CASES
        if family(*p.values) == name and not _known_failure(*p.values)
    ]
    g, fetches, feed = gj.Graph(), {}, {}
    with g.as_default():
        for k, (case, dtype) in enumerate(members):
            ours, our_feed = {}, {}
            for j, arrays in enumerate(_sets(case, dtype)):
                xs = [
                    gj.placeholder(a.dtype, a.shape, name=f"r{k}_s{j}_x{i}")
                    for i, a in enumerate(arrays)
                ]
                our_feed.update(zip(xs, arrays))
                ours[(k, j)] = case.fn(*xs)
            if _exports(g, ours, our_feed):  # (the per-record test says why not)
                fetches.update(ours)
                feed.update(our_feed)
    assert fetches, f"no record of {name} exports"
    exported(g, fetches, feed)
    expected, got = (run_on(backend, g, fetches, feed) for backend in ("interpreter", "iree"))
    for (k, j), value in expected.items():
        case, dtype = members[k]
        got_leaves, expected_leaves = flatten(got[(k, j)])[0], flatten(value)[0]
        assert len(got_leaves) == len(expected_leaves), f"{case.name}-{dtype} set {j}"
        for n, (leaf, expected_leaf) in enumerate(zip(got_leaves, expected_leaves)):
            what = f"{case.name}-{dtype} set {j} fetch {n}"
            assert_matches(leaf, expected_leaf, what, **_tolerance(case, dtype))


def _exports(graph, fetches, feed) -> bool:
    try:
        gj.mlir.export(fetches, feed, graph=graph)
    except ExportError:
        return False
    return True


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
