"""The verifier accepts well-formed IR and names the op and the fault in broken IR."""

from __future__ import annotations

import numpy as np
import pytest

from graphjit.errors import VerificationError
from graphjit.ir.builder import create, insertion_point
from graphjit.ir.core import Block, Function, Module, Operation, Region
from graphjit.ir.parser import parse
from graphjit.ir.types import TensorType, float32, int32
from graphjit.ir.verifier import verify

F32 = TensorType((), float32)
I32 = TensorType((), int32)


def function(arg_types=(F32,)) -> Function:
    return Function("f", Region(Block(list(arg_types))))


def region(build, arg_types=()) -> Region:
    r = Region(Block(list(arg_types)))
    with insertion_point(r.block):
        build(*r.block.args)
    return r


def op(op_name, *operands, **attrs):
    return create(op_name, list(operands), attrs).result


def const(value, dtype=np.float32):
    return create("constant", (), {"value": np.asarray(value, dtype)}).result


def build_loop() -> Function:
    """while i < 3: x = cond(x > 0, x * a, x) with `a` captured from the function body."""
    fn = function()
    a = fn.args[0]

    def before(i, x):
        create("condition", [op("less", i, const(3, np.int32))])

    def after(i, x):
        scaled = region(lambda: create("yield", [op("mul", x, a)]))
        same = region(lambda: create("yield", [x]))
        new_x = create("cond", [op("greater", x, const(0.0))], regions=[scaled, same]).result
        create("yield", [op("add", i, const(1, np.int32)), new_x])

    with insertion_point(fn.block):
        regions = [region(before, [I32, F32]), region(after, [I32, F32])]
        loop = create("while", [const(0, np.int32), a], regions=regions).results
        create("return", [loop[1]])
    return fn


def expect_error(target, *words: str) -> str:
    with pytest.raises(VerificationError) as info:
        verify(target)
    message = str(info.value)
    for word in words:
        assert word in message, message
    return message


# ---- accepted IR -----------------------------------------------------------------------


def test_accepts_nested_control_flow_with_captures():
    fn = build_loop()
    verify(fn)
    verify(Module([fn]))


def test_accepts_open_and_empty_functions():
    open_fn = function()
    with insertion_point(open_fn.block):
        op("neg", open_fn.args[0])  # a graph under construction: no return yet
    verify(Module([open_fn, Function("empty")]))


def test_accepts_parsed_text():
    verify(
        parse(
            """
            func.func @g(%a: tensor<f32>) {
              %p = "gj.constant"() {value = dense<true> : tensor<i1>} : () -> tensor<i1>
              %r = "gj.cond"(%p) ({
                "gj.yield"(%a) : (tensor<f32>) -> ()
              }, {
                %n = "gj.neg"(%a) : (tensor<f32>) -> tensor<f32>
                "gj.yield"(%n) : (tensor<f32>) -> ()
              }) : (tensor<i1>) -> tensor<f32>
            }
            """
        )
    )


# ---- hand-built breakage (the parser would not accept these) ---------------------------


def test_use_before_def():
    fn = function()
    with insertion_point(fn.block):
        first = op("neg", fn.args[0])
        op("exp", first)
    fn.block.ops.reverse()
    message = expect_error(fn, "op 'exp'", "operand #0 (%1)", "used before it is defined")
    assert '>   %0 = "gj.exp"(%1)' in message


def test_value_from_sibling_region():
    fn = function()
    a = fn.args[0]
    inner = []
    with insertion_point(fn.block):
        then = region(lambda: inner.append(op("neg", a)) or create("yield", inner))
        other = region(lambda: create("yield", inner))
        create("cond", [op("greater", a, a)], regions=[then, other])
    expect_error(fn, "op 'yield'", "(%2)", "inside a region that does not enclose this use")


def test_value_from_inside_a_region_used_after_it():
    fn = function()
    a, inner = fn.args[0], []
    with insertion_point(fn.block):
        then = region(lambda: inner.append(op("neg", a)) or create("yield", inner))
        other = region(lambda: create("yield", [a]))
        create("cond", [op("greater", a, a)], regions=[then, other])
        create("return", inner)
    expect_error(fn, "op 'return'", "inside a region that does not enclose")


def test_region_uses_its_own_ops_result():
    fn = function()
    a = fn.args[0]
    with insertion_point(fn.block):
        then, other = region(lambda: None), region(lambda: create("yield", [a]))
        cond = create("cond", [op("greater", a, a)], regions=[then, other], result_types=[F32])
    then.block.append(Operation("yield", [cond.result], []))
    expect_error(fn, "op 'yield'", "used before it is defined")


def test_unknown_op():
    fn = function()
    fn.block.append(Operation("frobnicate", [fn.args[0]], [F32]))
    message = expect_error(fn, "op 'frobnicate'", "unknown op")
    assert "> " in message and '"gj.frobnicate"(%arg0)' in message


def test_missing_attribute():
    fn = function()
    fn.block.append(Operation("reduce_sum", [fn.args[0]], [F32], {"axes": ()}))
    expect_error(fn, "op 'reduce_sum'", "missing: ['keepdims']")


def test_wrong_parent_pointer():
    fn, other = function(), function()
    with insertion_point(other.block):
        stray = create("neg", [other.args[0]])
    fn.block.ops.append(stray)
    expect_error(fn, "op 'neg'", "parent")


def test_duplicate_function_names():
    expect_error(Module([Function("f"), Function("f")]), "@f is defined more than once")


# ---- textual breakage ------------------------------------------------------------------

HEAD = "func.func @f(%a: tensor<f32>, %i: tensor<i32>) {\n"
PRED = '  %p = "gj.constant"() {value = dense<true> : tensor<i1>} : () -> tensor<i1>\n'


def cond_text(then_body: str, else_body: str, result: str = "tensor<f32>") -> str:
    return (
        HEAD + PRED + f'  %r = "gj.cond"(%p) ({{\n{then_body}'
        f"  }}, {{\n{else_body}  }}) : (tensor<i1>) -> {result}\n}}"
    )


def while_text(before: str, after: str, arg2: str = "tensor<f32>") -> str:
    types = "(tensor<i32>, tensor<f32>) -> (tensor<i32>, tensor<f32>)"
    return (
        HEAD + PRED + '  %w:2 = "gj.while"(%i, %a) ({\n'
        f"  ^bb0(%j: tensor<i32>, %x: {arg2}):\n{before}"
        f"  }}, {{\n  ^bb0(%j2: tensor<i32>, %x2: tensor<f32>):\n{after}  }}) : {types}\n}}"
    )


YIELD_A = '    "gj.yield"(%a) : (tensor<f32>) -> ()\n'
NEG = '    %n = "gj.neg"(%a) : (tensor<f32>) -> tensor<f32>\n'
COND_P = '    "gj.condition"(%p) : (tensor<i1>) -> ()\n'
YIELD_2 = '    "gj.yield"(%j2, %x2) : (tensor<i32>, tensor<f32>) -> ()\n'

BROKEN = {
    "wrong result type": (
        HEAD + '  %n = "gj.neg"(%a) : (tensor<f32>) -> tensor<f64>\n}',
        ["op 'neg'", "result types (tensor<f64>) differ from the inferred (tensor<f32>)"],
    ),
    "wrong result count": (
        HEAD + '  %n:2 = "gj.neg"(%a) : (tensor<f32>) -> (tensor<f32>, tensor<f32>)\n}',
        ["op 'neg'", "result types (tensor<f32>, tensor<f32>) differ", "> ", '%0:2 = "gj.neg"'],
    ),
    "missing terminator": (
        cond_text(NEG, YIELD_A),
        ["op 'cond'", "region #0 must end in 'yield' but ends in 'neg'"],
    ),
    "empty region": (cond_text("", YIELD_A), ["op 'cond'", "region #0 must end in 'yield'"]),
    "yield in the middle": (
        cond_text(YIELD_A + NEG + YIELD_A, YIELD_A),
        ["op 'yield'", "must be the last op of its block"],
    ),
    "cond branch type mismatch": (
        cond_text(YIELD_A, '    "gj.yield"(%i) : (tensor<i32>) -> ()\n'),
        ["op 'cond'", "cond branches return different types"],
    ),
    "cond result type": (
        cond_text(YIELD_A, YIELD_A, result="tensor<i32>"),
        ["op 'cond'", "result types (tensor<i32>) differ from the inferred (tensor<f32>)"],
    ),
    "while body type change": (
        while_text(COND_P, '    "gj.yield"(%j2, %p) : (tensor<i32>, tensor<i1>) -> ()\n'),
        ["op 'while'", "changes loop variable 1"],
    ),
    "while block argument types": (
        while_text(COND_P, YIELD_2, arg2="tensor<f64>"),
        ["op 'while'", "region #0 has block arguments (tensor<i32>, tensor<f64>)"],
    ),
    "while before region ends in yield": (
        while_text(YIELD_2.replace("j2, %x2", "j, %x"), YIELD_2),
        ["op 'while'", "region #0 must end in 'condition' but ends in 'yield'"],
    ),
    "condition on a non-boolean": (
        while_text('    "gj.condition"(%j) : (tensor<i32>) -> ()\n', YIELD_2),
        ["op 'condition'", "operand must be a boolean scalar, got tensor<i32>"],
    ),
    "return inside a region": (
        cond_text("    func.return %a : tensor<f32>\n", YIELD_A),
        ["op 'return'", "only end a function's body"],
    ),
    "return not last": (
        HEAD
        + '  func.return %a : tensor<f32>\n  %n = "gj.neg"(%a) : (tensor<f32>) -> tensor<f32>\n}',
        ["op 'return'", "last op of its block"],
    ),
    "yield at top level": (
        HEAD + '  "gj.yield"(%a) : (tensor<f32>) -> ()\n}',
        ["op 'yield'", "only end a region"],
    ),
    "missing region": (
        HEAD
        + PRED
        + '  %r = "gj.cond"(%p) ({\n'
        + YIELD_A
        + "  }) : (tensor<i1>) -> tensor<f32>\n}",
        ["op 'cond'", "has 1 region(s), expected 2"],
    ),
    "shape rule rejects operands": (
        HEAD + '  %m = "gj.matmul"(%a, %a) : (tensor<f32>, tensor<f32>) -> tensor<f32>\n}',
        ["op 'matmul'", "shape rule rejects it", "rank >= 2"],
    ),
}


@pytest.mark.parametrize("text, words", BROKEN.values(), ids=BROKEN.keys())
def test_rejects_broken_ir(text, words):
    message = expect_error(parse(text), *words)
    assert "\n> " in message or message.splitlines()[1].startswith("> ")  # the op, marked
