"""Importing upstream MLIR (graphjit/mlir/importer.py). Every op-table record that exports
(one dtype each), the control-flow programs and an MLP round trip graph -> MLIR -> graph
and give the original graph's results on the interpreter and llvm; modules written by
hand (not by the exporter) give NumPy's results, through `gj.ir.parse` too; ops outside
the subset and malformed text raise an MLIRImportError with the line and column; without
the mlir extra the error names it."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import programs
import pytest
from backend_check import assert_matches
from iree_helpers import IREE_MISSING

import graphjit as gj
from graphjit.mlir import ExportError, MLIRImportError
from graphjit.nest import flatten
from graphjit.runtime.program import build_program
from op_table import OP_TABLE, inputs_for

try:
    import iree.compiler.ir  # noqa: F401

    HAS_MLIR = True
except ImportError:
    HAS_MLIR = False
needs_mlir = pytest.mark.skipif(not HAS_MLIR, reason=IREE_MISSING)
try:
    import iree.runtime  # noqa: F401

    HAS_IREE = HAS_MLIR
except ImportError:
    HAS_IREE = False

BACKENDS = ("interpreter", "llvm")


def imported(graph, fetches, feed=None):
    """`fetches` exported from `graph` and imported into a new graph: (the new graph, the
    values standing for the fetches, the feed for it). Variables are arguments of the
    export: they are fed their initial values."""
    feed = feed or {}
    leaves = [v for v in flatten(fetches)[0] if isinstance(v, gj.ir.Value)]
    text = gj.mlir.export(leaves, feed, graph=graph)
    program = build_program(graph, leaves, [], {})
    args = [feed[p] for p in program.placeholders]
    args += [graph.variables[name].initial_value for name in program.variables]
    new = gj.Graph()
    inputs, outputs = gj.mlir.import_graph(text, graph=new)
    return new, outputs[: len(leaves)], dict(zip(inputs, args, strict=True))


def check_round_trip(graph, fetches, feed=None, what="") -> None:
    leaves = [v for v in flatten(fetches)[0] if isinstance(v, gj.ir.Value)]
    with gj.Session(graph, backend="interpreter") as sess:
        expected = sess.run(leaves, feed)
    new, outputs, new_feed = imported(graph, leaves, feed)
    for backend in BACKENDS:
        with gj.Session(new, backend=backend) as sess:
            got = sess.run(outputs, new_feed)
        for k, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_matches(g, e, f"{what} on {backend}, fetch {k}")


# ---- every op-table record -----------------------------------------------------------------

# graphjit ops whose exported forms may be outside the imported subset (a record of them
# may fail to import, no other): gathers and scatters (tensor.extract at computed indices),
# convolutions and pooling (tensor.pad, maps such as d2 + d4), sorts (reductions that are
# not one combining op), slices at run-time offsets
NOT_IMPORTED_OPS = {
    "gather",
    "take_along_axis",
    "scatter_add",
    "scatter_add_along_axis",
    "dynamic_slice",
    "dynamic_slice_like",
    "dynamic_update_slice",
    "sort",
    "conv2d",
    "conv2d_filter_grad",
    "conv2d_input_grad",
    "avg_pool2d",
    "avg_pool2d_grad",
    "max_pool2d",
    "max_pool2d_grad",
    "max_pool2d_pick",
}


def _outside_subset(case, text: str) -> str | None:
    outside = programs.OPS[id(case)] & NOT_IMPORTED_OPS
    if outside:
        return f"{sorted(outside)} export outside the imported subset"
    if "cf.assert" in text:
        return "its export checks values at run time (cf.assert)"
    if re.search(r"tensor\.extract %\w+\[%", text):
        return "its export reads at computed indices (a reversed slice)"
    return None


RECORDS = [pytest.param(case, case.dtypes[0], id=case.name) for case in OP_TABLE]


@needs_mlir
@pytest.mark.parametrize("case, dtype", RECORDS)
def test_record_round_trips(case, dtype):
    arrays = inputs_for(case, case.shapes[0], dtype)
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype, a.shape, name=f"x{i}") for i, a in enumerate(arrays)]
        out = case.fn(*xs)
    feed = dict(zip(xs, arrays))
    try:
        text = gj.mlir.export(out, feed, graph=g)
    except ExportError as e:
        pytest.skip(f"does not export: {e}")
    try:
        check_round_trip(g, out, feed, case.name)
    except MLIRImportError as e:  # (allowed only where the export is outside the subset)
        why = _outside_subset(case, text)
        if why is None or "not in the upstream subset graphjit imports" not in str(e):
            raise
        pytest.skip(f"{why}: {e}")


# ---- control flow, unknown dimensions, a model ------------------------------------------------


@needs_mlir
@pytest.mark.parametrize(
    "program",
    [
        programs.canonical_loop(4, [-3.0, 0.5]),
        programs.canonical_loop(3, [1.0, 2.0], constant_bound=True),
        programs.canonical_loop_fetching_its_input(),
        programs.nested_loops(4, 3, 0.5),
        programs.while_inside_cond_inside_while(5),
        programs.max_iterations([None, 0, 2, 9]),
        programs.loop_variables_of_different_dtypes(),
        programs.cond_gradient_to_values_captured_by_either_branch(0.5),
        programs.loop_updating_a_variable(),
    ],
    ids=[
        "canonical_loop",
        "canonical_loop_constant_bound",
        "loop_fetching_its_input",
        "nested_loops",
        "while_inside_cond_inside_while",
        "max_iterations",
        "loop_variables_of_different_dtypes",
        "cond_gradient",
        "loop_reading_a_variable",
    ],
)
def test_control_flow_round_trips(program):
    for case, feed in program.feeds.items():
        check_round_trip(program.graph, program.fetches, feed, f"{program.name} {case}")


@needs_mlir
def test_cond_branches_returning_inputs_round_trip():
    program = programs.cond_branches_returning_inputs_unchanged()
    for flag, feed in program.feeds.items():
        check_round_trip(program.graph, program.fetches, feed, f"flag {flag}")


def _mlp(batch):
    g = gj.Graph()
    rng = np.random.default_rng(0)
    with g.as_default():
        x = gj.placeholder(gj.float32, [batch, 4], name="x")
        w1 = gj.Variable(rng.normal(size=(4, 8)).astype(np.float32), name="w1")
        b1 = gj.Variable(rng.normal(size=8).astype(np.float32), name="b1")
        w2 = gj.Variable(rng.normal(size=(8, 3)).astype(np.float32), name="w2")
        probabilities = gj.softmax(gj.relu(x @ w1 + b1) @ w2)
    return g, x, probabilities


@needs_mlir
def test_mlp_forward_round_trips():
    g, x, probabilities = _mlp(5)
    feed = {x: np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)}
    check_round_trip(g, probabilities, feed, "mlp")


@needs_mlir
def test_unknown_dimensions_import_as_unknown_and_run_at_any_size():
    """Exported without a feed, the batch dimension is `?` (tensor.dim, tensor.empty):
    the import has a placeholder with an unknown dimension, fed two batch sizes."""
    g, x, probabilities = _mlp(None)
    text = gj.mlir.export(probabilities, graph=g)
    assert "tensor.dim" in text
    new = gj.Graph()
    (x2, *weights), (out,) = gj.mlir.import_graph(text, graph=new)
    assert x2.type.shape == (None, 4)
    values = [v.initial_value for v in g.variables.values()]
    for batch in (2, 7):
        data = np.random.default_rng(batch).normal(size=(batch, 4)).astype(np.float32)
        with gj.Session(g, backend="interpreter") as sess:
            expected = sess.run(probabilities, {x: data})
        for backend in BACKENDS:
            with gj.Session(new, backend=backend) as sess:
                got = sess.run(out, {x2: data, **dict(zip(weights, values))})
            assert_matches(got, expected, f"batch {batch} on {backend}")


# ---- modules written by hand ---------------------------------------------------------------------

# A dense layer with a scalar argument, a reduction whose body does more than combine, a
# reshape, arithmetic on tensors and scalars outside linalg, and scf.if on a scalar.
HAND_WRITTEN = """
#bias = affine_map<(d0, d1) -> (d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
#scalar = affine_map<(d0, d1) -> ()>
func.func @main(%x: tensor<4x3xf32>, %w: tensor<3x2xf32>, %b: tensor<2xf32>, %s: f32)
    -> (tensor<4x2xf32>, tensor<4x1xf32>, tensor<4x2xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x2xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<4x2xf32>) -> tensor<4x2xf32>
  %xw = linalg.matmul ins(%x, %w : tensor<4x3xf32>, tensor<3x2xf32>)
                      outs(%init : tensor<4x2xf32>) -> tensor<4x2xf32>
  %h = linalg.generic {indexing_maps = [#id, #bias, #scalar, #id],
                       iterator_types = ["parallel", "parallel"]}
      ins(%xw, %b, %s : tensor<4x2xf32>, tensor<2xf32>, f32) outs(%e : tensor<4x2xf32>) {
  ^bb0(%v: f32, %bias: f32, %scale: f32, %out: f32):
    %sum = arith.addf %v, %bias : f32
    %relu = arith.maximumf %sum, %zero : f32
    %scaled = arith.mulf %relu, %scale : f32
    linalg.yield %scaled : f32
  } -> tensor<4x2xf32>
  %e4 = tensor.empty() : tensor<4xf32>
  %init4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<4xf32>) -> tensor<4xf32>
  %squares = linalg.reduce ins(%h : tensor<4x2xf32>) outs(%init4 : tensor<4xf32>) dimensions = [1]
    (%in: f32, %acc: f32) {
      %sq = arith.mulf %in, %in : f32
      %add = arith.addf %sq, %acc : f32
      linalg.yield %add : f32
    }
  %column = tensor.expand_shape %squares [[0, 1]] output_shape [4, 1]
      : tensor<4xf32> into tensor<4x1xf32>
  %zt = tensor.splat %zero : tensor<f32>
  %total = linalg.reduce ins(%squares : tensor<4xf32>) outs(%zt : tensor<f32>) dimensions = [0]
    (%in: f32, %acc: f32) {
      %add = arith.addf %in, %acc : f32
      linalg.yield %add : f32
    }
  %t = tensor.extract %total[] : tensor<f32>
  %big = arith.cmpf ogt, %t, %s : f32
  %picked = scf.if %big -> (tensor<4x2xf32>) {
    %neg = arith.negf %h : tensor<4x2xf32>
    scf.yield %neg : tensor<4x2xf32>
  } else {
    scf.yield %xw : tensor<4x2xf32>
  }
  return %h, %column, %picked : tensor<4x2xf32>, tensor<4x1xf32>, tensor<4x2xf32>
}
"""


def _hand_written_inputs():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    w = rng.normal(size=(3, 2)).astype(np.float32)
    b = rng.normal(size=2).astype(np.float32)
    return x, w, b, np.float32(0.5)


def _hand_written_expected(x, w, b, s):
    h = np.maximum(x @ w + b, 0) * s
    squares = (h * h).sum(axis=1)
    return h, squares[:, None], -h if squares.sum() > s else x @ w


@needs_mlir
def test_hand_written_module_matches_numpy():
    g = gj.Graph()
    inputs, outputs = gj.mlir.import_graph(HAND_WRITTEN, graph=g)
    arrays = _hand_written_inputs()
    for s, backend in [(0.5, "interpreter"), (1e9, "llvm")]:
        arrays = (*arrays[:3], np.float32(s))
        with gj.Session(g, backend=backend) as sess:
            got = sess.run(outputs, dict(zip(inputs, arrays)))
        for k, (g_, e) in enumerate(zip(got, _hand_written_expected(*arrays), strict=True)):
            np.testing.assert_allclose(g_, e, rtol=1e-5, atol=1e-6, err_msg=f"{backend} {k}")


@needs_mlir
def test_parse_reads_upstream_text_as_a_module_that_prints_as_graphjit_text():
    module = gj.ir.parse(HAND_WRITTEN)
    fn = module.get("main")
    assert [a.type for a in fn.args][-1] == gj.ir.TensorType((), gj.float32)  # f32: 0-d
    names = {op.name for op in fn.walk()}
    assert {"matmul", "reduce_sum", "cond", "maximum"} <= names
    text = gj.ir.print_module(module)
    assert gj.ir.print_module(gj.ir.parse(text)) == text
    assert gj.ir.print_module(gj.mlir.import_module(HAND_WRITTEN.encode())) == text


# Structured ops in the forms other tools write: a generic writing its output transposed,
# a matmul by explicit (transposing) indexing maps into a start that is not zero,
# linalg.broadcast and linalg.map, slices (rank-reducing, inserted into a splat), a
# reshape, elements, arith on tensors with an unordered predicate, casts.
SHAPES = """
#id = affine_map<(d0, d1) -> (d0, d1)>
#transposed = affine_map<(d0, d1) -> (d1, d0)>
func.func @main(%x: tensor<2x3xf32>, %y: tensor<3x2xf32>, %v: tensor<3xf32>, %n: tensor<2x3xi32>)
    -> (tensor<3x2xf32>, tensor<2x2xf32>, tensor<2x3x4xf32>, tensor<3xf32>, tensor<4x3xf32>,
        tensor<6xf32>, tensor<3xf32>, tensor<3xf32>, tensor<2x3xi1>, tensor<?x3xf32>) {
  %e32 = tensor.empty() : tensor<3x2xf32>
  %exp_t = linalg.generic {indexing_maps = [#id, #transposed], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<2x3xf32>) outs(%e32 : tensor<3x2xf32>) {
  ^bb0(%a: f32, %o: f32):
    %e = math.exp %a : f32
    linalg.yield %e : f32
  } -> tensor<3x2xf32>
  %one = arith.constant 1.0 : f32
  %e22 = tensor.empty() : tensor<2x2xf32>
  %ones = linalg.fill ins(%one : f32) outs(%e22 : tensor<2x2xf32>) -> tensor<2x2xf32>
  %gram = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (k, m)>,
                                         affine_map<(m, n, k) -> (k, n)>,
                                         affine_map<(m, n, k) -> (m, n)>]
      ins(%y, %y : tensor<3x2xf32>, tensor<3x2xf32>) outs(%ones : tensor<2x2xf32>) -> tensor<2x2xf32>
  %e234 = tensor.empty() : tensor<2x3x4xf32>
  %wide = linalg.broadcast ins(%x : tensor<2x3xf32>) outs(%e234 : tensor<2x3x4xf32>) dimensions = [2]
  %e3 = tensor.empty() : tensor<3xf32>
  %squares = linalg.map { arith.mulf } ins(%v, %v : tensor<3xf32>, tensor<3xf32>) outs(%e3 : tensor<3xf32>)
  %seven = arith.constant 7.0 : f32
  %base = tensor.splat %seven : tensor<4x3xf32>
  %placed = tensor.insert_slice %x into %base[1, 0] [2, 3] [1, 1] : tensor<2x3xf32> into tensor<4x3xf32>
  %flat = tensor.collapse_shape %x [[0, 1]] : tensor<2x3xf32> into tensor<6xf32>
  %row = tensor.extract_slice %x[1, 0] [1, 3] [1, 1] : tensor<2x3xf32> to tensor<3xf32>
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %corner = tensor.extract %x[%c0, %c2] : tensor<2x3xf32>
  %three = tensor.from_elements %corner, %corner, %one : tensor<3xf32>
  %zeros = arith.constant dense<0.0> : tensor<2x3xf32>
  %above = arith.cmpf ugt, %x, %zeros : tensor<2x3xf32>
  %nf = arith.sitofp %n : tensor<2x3xi32> to tensor<2x3xf32>
  %sum = arith.addf %x, %nf : tensor<2x3xf32>
  %relaxed = tensor.cast %sum : tensor<2x3xf32> to tensor<?x3xf32>
  return %exp_t, %gram, %wide, %squares, %placed, %flat, %row, %three, %above, %relaxed
    : tensor<3x2xf32>, tensor<2x2xf32>, tensor<2x3x4xf32>, tensor<3xf32>, tensor<4x3xf32>,
      tensor<6xf32>, tensor<3xf32>, tensor<3xf32>, tensor<2x3xi1>, tensor<?x3xf32>
}
"""


@needs_mlir
@pytest.mark.parametrize(
    "backend",
    [*BACKENDS, pytest.param("iree", marks=pytest.mark.skipif(not HAS_IREE, reason=IREE_MISSING))],
)
def test_hand_written_shapes_and_forms_match_numpy(backend):
    """On every CPU backend, IREE included (the imported graph exported again)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    x[0, 1] = np.nan  # ugt is true for NaN
    y = rng.normal(size=(3, 2)).astype(np.float32)
    v = rng.normal(size=3).astype(np.float32)
    n = rng.integers(-5, 5, size=(2, 3)).astype(np.int32)
    placed = np.full((4, 3), 7, np.float32)
    placed[1:3] = x
    expected = [
        np.exp(x).T,
        1 + y.T @ y,
        np.broadcast_to(x[:, :, None], (2, 3, 4)),
        v * v,
        placed,
        x.reshape(6),
        x[1],
        np.array([x[0, 2], x[0, 2], 1], np.float32),
        ~(x <= 0),
        x + n,
    ]
    g = gj.Graph()
    inputs, outputs = gj.mlir.import_graph(SHAPES, graph=g)
    with gj.Session(g, backend=backend) as sess:
        got = sess.run(outputs, dict(zip(inputs, [x, y, v, n])))
    for k, (g_, e) in enumerate(zip(got, expected, strict=True)):
        np.testing.assert_allclose(g_, e, rtol=1e-5, atol=1e-6, err_msg=f"{backend} {k}")


@needs_mlir
def test_import_module_reads_mlirs_generic_form_too():
    """(gj.ir.parse hands over upstream text in MLIR's custom form, as MLIR prints it; the
    generic form of upstream ops is import_module's to read.)"""
    from iree.compiler import ir

    with ir.Context():
        generic = ir.Module.parse(HAND_WRITTEN).operation.get_asm(print_generic_op_form=True)
    expected = gj.ir.print_module(gj.ir.parse(HAND_WRITTEN))
    assert gj.ir.print_module(gj.mlir.import_module(generic)) == expected


# scf.condition forwards other values than its arguments (graphjit's while cannot): the
# importer computes them again in the body and after the loop. Carried values are scalars.
FORWARDING_WHILE = """
func.func @main(%x: tensor<3xf32>) -> (i64, tensor<3xf32>) {
  %c0 = arith.constant 0 : i64
  %c1 = arith.constant 1 : i64
  %c5 = arith.constant 5 : i64
  %r:2 = scf.while (%i = %c0, %a = %x) : (i64, tensor<3xf32>) -> (i64, tensor<3xf32>) {
    %more = arith.cmpi slt, %i, %c5 : i64
    %twice = arith.addf %a, %a : tensor<3xf32>
    scf.condition(%more) %i, %twice : i64, tensor<3xf32>
  } do {
  ^bb0(%j: i64, %b: tensor<3xf32>):
    %next = arith.addi %j, %c1 : i64
    scf.yield %next, %b : i64, tensor<3xf32>
  }
  return %r#0, %r#1 : i64, tensor<3xf32>
}
"""


@needs_mlir
@pytest.mark.parametrize("backend", BACKENDS)
def test_while_forwarding_other_values(backend):
    g = gj.Graph()
    (x,), (count, doubled) = gj.mlir.import_graph(FORWARDING_WHILE, graph=g)
    start = np.array([1.0, -2.0, 0.25], np.float32)
    with gj.Session(g, backend=backend) as sess:
        got_count, got = sess.run([count, doubled], {x: start})
    assert got_count == 5 and got_count.dtype == np.int64
    np.testing.assert_array_equal(got, start * 2**6)


# A fill (built only when something reads it) read first inside a branch, then after it:
# it is built before the cond, where both uses see it.
FILL_READ_IN_A_BRANCH = """
func.func @main(%p: i1, %x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>) {
  %two = arith.constant 2.0 : f32
  %e = tensor.empty() : tensor<3xf32>
  %f = linalg.fill ins(%two : f32) outs(%e : tensor<3xf32>) -> tensor<3xf32>
  %r = scf.if %p -> (tensor<3xf32>) {
    %m = arith.mulf %x, %f : tensor<3xf32>
    scf.yield %m : tensor<3xf32>
  } else {
    scf.yield %x : tensor<3xf32>
  }
  %s = arith.addf %r, %f : tensor<3xf32>
  return %r, %s : tensor<3xf32>, tensor<3xf32>
}
"""


@needs_mlir
def test_a_fill_read_first_in_a_branch_is_built_before_it():
    g = gj.Graph()
    (p, x), outputs = gj.mlir.import_graph(FILL_READ_IN_A_BRANCH, graph=g)
    ones = np.ones(3, np.float32)
    with gj.Session(g, backend="llvm") as sess:
        for flag, r in ((True, 2.0), (False, 1.0)):
            got = sess.run(outputs, {p: flag, x: ones})
            np.testing.assert_array_equal(got, [ones * r, ones * (r + 2)])


# ---- errors ----------------------------------------------------------------------------------

UNSUPPORTED = """func.func @main(%x: tensor<3xf32>) -> tensor<3xf32> {
  %c = arith.constant 1.0 : f32
  %y = math.atan2 %x, %x : tensor<3xf32>
  return %y : tensor<3xf32>
}
"""


@needs_mlir
def test_unsupported_op_is_named_with_its_line_and_column():
    with pytest.raises(MLIRImportError, match=r"'math\.atan2'.*line 3, column 8") as e:
        gj.ir.parse(UNSUPPORTED)
    assert (e.value.line, e.value.column) == (3, 8)


@needs_mlir
def test_run_time_checks_are_not_imported():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.int32, [3], name="x")
        y = x // x
    with pytest.raises(MLIRImportError, match="cf.assert"):
        gj.mlir.import_module(gj.mlir.export(y, graph=g))


@needs_mlir
def test_malformed_upstream_text_gets_mlirs_diagnostic_and_line():
    text = UNSUPPORTED.replace("%y = math.atan2 %x, %x", "%y = arith.addf %x, %z")
    with pytest.raises(MLIRImportError, match=r"MLIR rejects the text: .*undeclared.*line 3"):
        gj.ir.parse(text)


def test_malformed_graphjit_text_is_still_graphjits_parse_error():
    with pytest.raises(gj.errors.ParseError, match="use of undefined value %9") as e:
        gj.ir.parse('func.func @f() -> () {\n  "gj.neg"(%9) : (tensor<f32>) -> tensor<f32>\n}')
    assert not isinstance(e.value, MLIRImportError)


SCRIPT = """
import sys
sys.modules["iree"] = None  # importing iree now raises ImportError
import graphjit as gj
try:
    gj.ir.parse(sys.argv[1])
except gj.errors.ParseError as e:
    print(e)
"""


def test_without_the_extra_the_error_names_it():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, UNSUPPORTED], capture_output=True, text=True
    )
    assert "pip install graphjit[mlir]" in out.stdout, out.stderr
