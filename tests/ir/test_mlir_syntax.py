"""graphjit's IR text is MLIR: MLIR's own parser (the one in IREE's compiler wheel, with
unregistered dialects allowed) reads every printed test graph, and its verifier accepts it
(ops of the unknown `gj` dialect verify trivially; func.func and func.return must agree
on types). Graphs: one per record of the op table, with its gradient, static and with
unknown dimensions; every FileCheck case, before and after its passes; control flow,
tensor lists, locations and attribute values of every kind. And the text MLIR prints back
reads in graphjit as the same IR.

Skipped, with the reason, where the `mlir` extra (iree-base-compiler) is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
from passes.filecheck import case_files, parse_case, run_passes

import graphjit as gj
from graphjit.ir import parse, print_module
from graphjit.ir.core import Block, Function, Module, Operation, Region
from graphjit.ir.types import DType, TensorType, float32
from op_table import OP_TABLE

mlir_ir = pytest.importorskip(
    "iree.compiler.ir",
    reason="MLIR's parser comes with the mlir extra: pip install iree-base-compiler",
)


@pytest.fixture(scope="module")
def context():
    """One MLIR context for the module (making one per graph costs more than parsing)."""
    with mlir_ir.Context() as ctx:
        ctx.allow_unregistered_dialects = True
        yield ctx


def mlir_module(context, text: str):
    """MLIR's parse of `text`, which its verifier must accept."""
    try:
        module = mlir_ir.Module.parse(text, context=context)
    except mlir_ir.MLIRError as e:
        pytest.fail(f"MLIR rejects graphjit's text: {e}\n{text}")
    assert module.operation.verify()
    return module


def graph_text(build, locations: bool = False) -> str:
    g = gj.Graph()
    with g.as_default():
        build()
    return g.as_text(locations=locations)


def op_table_graph(case, dynamic: bool):
    """The record's first case on placeholders, and its gradient when it has one."""

    def build():
        args = [
            gj.placeholder(
                case.fixed.get(i, case.dtypes[0]),
                [None] * len(shape) if dynamic else list(shape),
                name=f"p{i}",
            )
            for i, shape in enumerate(case.shapes[0])
        ]
        out = case.fn(*args)
        floats = [a for i, a in enumerate(args) if i not in case.fixed and a.dtype.is_floating]
        if case.grad and floats and out.dtype.is_floating:
            gj.gradients(gj.sum(out), floats)

    return build


@pytest.mark.parametrize("case", OP_TABLE, ids=lambda c: c.name)
def test_every_op_table_graph_is_mlir(context, case):
    mlir_module(context, graph_text(op_table_graph(case, dynamic=False)))
    if case.dynamic:
        mlir_module(context, graph_text(op_table_graph(case, dynamic=True)))


@pytest.mark.parametrize("path", case_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_filecheck_case_is_mlir_before_and_after_its_passes(context, path):
    source = path.read_text()
    mlir_module(context, source)  # the `// RUN:` and `// CHECK:` lines are comments
    mlir_module(context, run_passes(source, parse_case(source).passes))


def control_flow():
    """Nested loops and conds with their gradients (tapes: tensor lists), a variable and
    constants of every kind: splats, long ones (hex), NaN and infinities, narrow floats."""
    x = gj.placeholder(gj.float32, [None, 3], name="x")
    n = gj.placeholder(gj.int32, [], name="n")
    w = gj.Variable(np.ones((3, 3), np.float32), name="w")
    y = gj.tanh(gj.matmul(x, w)) * 2.0

    def body(i, a):
        return i + 1, gj.cond(gj.sum(a) > 0, lambda: a * 0.5, lambda: -a)

    _, z = gj.while_loop(lambda i, a: i < n, body, [0, y], max_iterations=50)
    gj.gradients(gj.sum(z * z), [w, x])
    gj.constant(np.arange(40, dtype=np.int64).reshape(4, 10))
    gj.constant(np.array([True, False] * 10))
    gj.constant(np.array([1.0, np.nan, -np.inf, -0.0], np.float32))
    gj.constant(np.linspace(0, 1, 40, dtype=np.float16))
    gj.constant(np.full((64, 64), 0.5))
    gj.constant(np.zeros((0, 3), np.int8))
    gj.constant(np.arange(20, dtype=np.uint8))
    if isinstance(gj.bfloat16, DType):
        gj.constant(np.array([1.5, np.inf], gj.bfloat16.np))


@pytest.mark.parametrize("locations", [False, True])
def test_control_flow_gradients_and_constants_are_mlir(context, locations):
    mlir_module(context, graph_text(control_flow, locations))


def test_every_kind_of_attribute_value_is_mlir(context):
    """Strings with quotes, escapes and non-ASCII, wide integers, non-finite floats, None,
    nested arrays and dtypes, through an op whose attributes are not type-checked; a
    function whose name needs quotes and one with several results."""
    odd = (1.5, float("nan"), float("inf"), -0.0, 1e-300, 2**70, -(2**63), None)
    name = (odd, True, 'quote " backslash \\ newline \n tab \t é \x01', ((), ((None,),)))
    fn = Function('odd "name"\n', Region(Block([TensorType((None, 3), float32)])))
    attrs = {"name": name, "shape": (None, 3), "dtype": float32}
    fn.block.append(Operation("placeholder", [], [TensorType((None, 3), float32)], attrs))
    fn.block.append(Operation("return", [fn.args[0], fn.block.ops[0].results[0]], []))
    mlir_module(context, print_module(Module([fn])))


def test_the_text_mlir_prints_back_is_the_same_ir(context):
    """MLIR's own printing (a `module`, `return`, `1.000000e+00`, `0 : i64`, `\\22`, bare
    unit attributes) reads in graphjit as the IR graphjit printed."""
    text = graph_text(control_flow)
    assert print_module(parse(str(mlir_module(context, text)))) == text


def test_unranked_tensors_are_mlir(context):
    """A placeholder of unknown rank prints as MLIR's unranked `tensor<*xf32>`."""

    def build():
        x = gj.placeholder(gj.float32, name="x")
        gj.reduce_sum(gj.exp(x) * 2.0)

    text = graph_text(build)
    assert "tensor<*xf32>" in text
    assert print_module(parse(str(mlir_module(context, text)))) == text
