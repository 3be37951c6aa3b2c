"""Printer and parser: the text format round-trips exactly, and bad text fails precisely."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

from graphjit.errors import ParseError
from graphjit.ir.builder import create, insertion_point
from graphjit.ir.core import Block, Function, Location, Module, Operation, Region
from graphjit.ir.parser import parse
from graphjit.ir.printer import print_function, print_module, print_op_context, value_names
from graphjit.ir.types import ListType, TensorType, float32, int32
from graphjit.ir.verifier import verify

F32 = TensorType((), float32)
I32 = TensorType((), int32)


def function(name: str = "main", arg_types=()) -> Function:
    return Function(name, Region(Block(list(arg_types))))


def region(build, arg_types=()) -> Region:
    """A region whose block `build(*block_args)` fills, ending in whatever it creates."""
    r = Region(Block(list(arg_types)))
    with insertion_point(r.block):
        build(*r.block.args)
    return r


def const(value, dtype=np.float32):
    return create("constant", (), {"value": np.asarray(value, dtype)}).result


def op(op_name, *operands, **attrs):
    """One-result op, as the frontend would build it."""
    return create(op_name, list(operands), attrs).result


def build_main() -> Function:
    """One function using every op family, control flow nested three deep, and captures."""
    fn = function("main", [TensorType((None, 3), float32)])
    with insertion_point(fn.block):
        x = op("placeholder", name="x", shape=(None, 3), dtype="float32")
        w = op("variable", name="w", shape=(3, 3), dtype="float32")
        y = op("tanh", op("exp", op("neg", op("mul", x, fn.args[0]))))
        y = op("select", op("greater", y, x), y, x)
        both = op("logical_and", op("less", y, x), op("not_equal", y, x))
        op("cast", both, dtype="int32")
        mm = op("matmul", y, w)
        total = op("reduce_sum", mm, axes=(0, 1), keepdims=False)
        op("argmax", mm, axis=1, keepdims=True)
        op("count", mm, axes=(0,))
        flat = op("reshape", mm, shape=(-1,))
        op("squeeze", op("expand_dims", flat, axes=(0,)), axes=(0,))
        op("reshape_like", flat, mm)
        op("transpose", mm, perm=(1, 0))
        one = const(1.0)
        op("sum_to", op("broadcast_like", op("broadcast_to", one, shape=(2, 3)), x), one)
        part = op("slice", mm, spec=((None, 2, None), (1, None, 1)))
        op("unslice", part, mm, spec=((None, 2, None), (1, None, 1)))
        halves = create("split_like", [op("concat", x, x, axis=0), x, x], {"axis": 0}).results
        new_w = op("assign", op("add", w, one), w, var="w")
        loop = build_loop(total, halves[0])
        create("group", [new_w, loop[0]])
        create("return", [loop[1], halves[1]])
    return fn


def build_loop(total, captured):
    """while i < 5: acc = cond(acc > 0, acc + total, -acc); a cond nested in a loop."""
    i0 = const(0, np.int32)

    def before(i, acc):
        create("condition", [op("less", i, const(5, np.int32))])

    def after(i, acc):
        positive = op("greater", acc, const(0.0))
        then = region(lambda: create("yield", [op("add", acc, total)]))
        other = region(lambda: create("yield", [op("neg", acc)]))
        branch = create("cond", [positive], regions=[then, other]).result
        op("reduce_sum", captured, axes=(0,), keepdims=False)
        create("yield", [op("add", i, const(1, np.int32)), branch])

    regions = [region(before, [I32, F32]), region(after, [I32, F32])]
    return create("while", [i0, total], {"max_iterations": 100}, regions=regions).results


def build_module() -> Module:
    helper = function("helper", [ListType(TensorType((3,), float32)), F32])
    with insertion_point(helper.block):
        op("neg", helper.args[1])  # an open graph: no return
    return Module([build_main(), helper, function('odd "name"\n')])


def same_attr(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, (tuple, list)):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(same_attr, a, b))
    return type(a) is type(b) and a == b


def assert_same_ir(m1: Module, m2: Module) -> None:
    """Structural equality: op by op, attributes by exact value, operands by position."""
    assert [f.name for f in m1.functions] == [f.name for f in m2.functions]
    for f1, f2 in zip(m1.functions, m2.functions):
        n1, n2 = value_names(f1), value_names(f2)
        assert [a.type for a in f1.args] == [a.type for a in f2.args]
        ops1, ops2 = list(f1.walk()), list(f2.walk())
        assert [o.name for o in ops1] == [o.name for o in ops2]
        for o1, o2 in zip(ops1, ops2):
            assert [r.type for r in o1.results] == [r.type for r in o2.results]
            assert [n1[v] for v in o1.operands] == [n2[v] for v in o2.operands]
            assert o1.attrs.keys() == o2.attrs.keys()
            assert all(same_attr(o1.attrs[k], o2.attrs[k]) for k in o1.attrs), o1.name


# ---- round trip ------------------------------------------------------------------------


def test_built_module_verifies():
    verify(build_module())


@pytest.mark.parametrize("locations", [False, True])
def test_round_trip_text_is_identical(locations):
    module = build_module()
    text = print_module(module, locations=locations)
    again = parse(text)
    assert print_module(again, locations=locations) == text
    assert_same_ir(module, again)
    verify(again)


def test_locations_round_trip():
    text = print_module(build_module(), locations=True)
    assert 'loc("' + __file__ in text
    parsed = parse(text)
    locs = [o.loc for o in parsed.walk()]
    assert all(isinstance(loc, Location) and loc.file == __file__ for loc in locs)
    assert "loc(" not in print_module(parsed)


def assert_lines_in_order(text: str, expected: list[str]) -> None:
    """FileCheck-style: each expected substring on a later line than the previous one."""
    lines, at = text.splitlines(), 0
    for want in expected:
        while at < len(lines) and want not in lines[at]:
            at += 1
        assert at < len(lines), f"{want!r} not found in order in:\n{text}"
        at += 1


def test_printed_form():
    text = print_module(build_module())
    assert_lines_in_order(
        text,
        [
            "func.func @main(%arg0: tensor<?x3xf32>) -> (tensor<f32>, tensor<?x3xf32>) {",
            '%0 = "gj.placeholder"() {dtype = "float32", name = "x", shape = [unit, 3]} : () -> ',
            '= "gj.mul"(%0, %arg0) : (tensor<?x3xf32>, tensor<?x3xf32>) -> tensor<?x3xf32>',
            "{axes = [0, 1], keepdims = false} : (tensor<?x3xf32>) -> tensor<f32>",
            '"gj.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>',
            "{spec = [[unit, 2, unit], [1, unit, 1]]}",
            ':2 = "gj.split_like"',
            '= "gj.while"(%31, %13) ({',
            "^bb0(%arg1: tensor<i32>, %arg2: tensor<f32>):",
            '    "gj.condition"(%',
            "  }, {",
            "^bb0(%arg3: tensor<i32>, %arg4: tensor<f32>):",
            '= "gj.cond"(%',
            '      "gj.yield"(%',
            "    }, {",
            '      "gj.yield"(%',
            "    }) : (tensor<i1>) -> tensor<f32>",
            '= "gj.reduce_sum"(%28#0) {axes = [0], keepdims = false}',  # captured from above
            "  }) {max_iterations = 100} : (tensor<i32>, tensor<f32>) -> (tensor<i32>, tensor<f32>)",
            '"gj.group"(%30, %32#0) : (tensor<3x3xf32>, tensor<i32>) -> ()',
            "func.return %",
            "func.func @helper(%arg0: !gj.list<tensor<3xf32>>, %arg1: tensor<f32>) {",
            'func.func @"odd \\"name\\"\\n"() {',
        ],
    )


def test_multi_result_definition_and_uses():
    fn = function("f", [TensorType((4,), float32)])
    with insertion_point(fn.block):
        parts = create("split_like", [fn.args[0], const([0, 0]), const([0, 0])], {"axis": 0})
        create("return", [parts.results[1], parts.results[0]])
    text = print_function(fn)
    assert '%2:2 = "gj.split_like"(%arg0, %0, %1) {axis = 0}' in text
    assert "func.return %2#1, %2#0 : tensor<2xf32>, tensor<2xf32>" in text
    ret = parse(text).functions[0].block.ops[-1]
    split = ret.operands[0].owner
    assert ret.operands == [split.results[1], split.results[0]]


def test_list_types_round_trip():
    fn = function("tape", [TensorType((3,), float32)])
    with insertion_point(fn.block):
        tape = op("list_push", op("list_new", fn.args[0]), fn.args[0])
        create("return", [op("list_get", tape, const(0, np.int64)), tape])
    text = print_function(fn)
    assert "-> !gj.list<tensor<3xf32>>" in text
    parsed = parse(text)
    assert parsed.functions[0].block.ops[-1].operands[1].type == tape.type
    assert print_module(parsed) == text


def test_empty_module_and_open_function():
    assert print_module(Module()) == ""
    assert parse("").functions == []
    assert print_function(function("g")) == "func.func @g() {\n}\n"


# ---- constants and attributes ----------------------------------------------------------

rng = np.random.default_rng(0)
weird_nan = np.array([1.0, np.nan], np.float32)
weird_nan.view(np.uint32)[1] = 0xFFC00001  # a NaN with a sign and payload


@pytest.mark.parametrize(
    "value, spelled",
    [
        (np.array(1.5, np.float32), "dense<1.5> : tensor<f32>"),
        (np.array(0.1, np.float32), "dense<0.1> : tensor<f32>"),
        (np.array(-0.0, np.float64), "dense<-0.0> : tensor<f64>"),
        (
            np.array([[1.5, np.nan], [np.inf, -np.inf]]),
            "dense<[[1.5, 0x7FF8000000000000], [0x7FF0000000000000, 0xFFF0000000000000]]>",
        ),
        (np.array([1.0, np.inf], np.float16), "dense<[1.0, 0x7C00]> : tensor<2xf16>"),
        (np.array([0.0, -0.0], np.float32), "dense<[0.0, -0.0]> : tensor<2xf32>"),
        (np.full((10, 10), 0.25, np.float32), "dense<0.25> : tensor<10x10xf32>"),  # a splat
        (np.full(3, np.nan), "dense<0x7FF8000000000000> : tensor<3xf64>"),
        (np.array([np.iinfo(np.int32).min, 7], np.int32), "dense<[-2147483648, 7]>"),
        (np.array([np.iinfo(np.int64).max], np.int64), "dense<[9223372036854775807]>"),
        (np.array(7, np.int64), "dense<7> : tensor<i64>"),
        (np.array([True, False]), "dense<[true, false]> : tensor<2xi1>"),
        (np.array(False), "dense<false> : tensor<i1>"),
        (np.zeros((0, 3), np.float32), "dense<> : tensor<0x3xf32>"),
        (rng.standard_normal((5, 20)).astype(np.float32), 'dense<"0x'),
        (rng.standard_normal(17), 'dense<"0x'),
        (rng.integers(-(2**62), 2**62, 40), 'dense<"0x'),
        (rng.integers(-(2**31), 2**31 - 1, 17).astype(np.int32), 'dense<"0x'),
        (rng.random(33) > 0.5, 'dense<"0x'),
        (weird_nan, "dense<[1.0, 0xFFC00001]> : tensor<2xf32>"),
        (np.asfortranarray(np.arange(6.0).reshape(2, 3)), "dense<[[0.0, 1.0, 2.0], [3.0, 4.0"),
    ],
)
def test_constants_round_trip_exactly(value, spelled):
    fn = function("c")
    with insertion_point(fn.block):
        create("constant", (), {"value": value})
    text = print_function(fn)
    assert spelled in text
    parsed = parse(text).functions[0].block.ops[0].attrs["value"]
    assert isinstance(parsed, np.ndarray) and parsed.dtype == value.dtype
    assert parsed.shape == value.shape and parsed.tobytes() == np.ascontiguousarray(value).tobytes()
    assert print_function(parse(text).functions[0]) == text


def test_attribute_values_round_trip_exactly():
    """Every kind of attribute value, through an op whose attributes are not type-checked."""
    odd = (1.5, float("nan"), float("inf"), float("-inf"), -0.0, 1e-300, 2**70, -3, None)
    name = (odd, True, False, 'quote " backslash \\ newline \n é', ((), ((None,),)), float32)
    fn = function("a")
    fn.block.append(
        Operation("placeholder", [], [F32], {"name": name, "shape": [], "dtype": "float32"})
    )
    text = print_function(fn)
    assert (
        "[1.5, 0x7FF8000000000000 : f64, 0x7FF0000000000000 : f64, 0xFFF0000000000000 : f64, "
        "-0.0, 1.0e-300, 1180591620717411303424 : i72, -3, unit]" in text
    )
    assert '"quote \\" backslash \\\\ newline \\n é"' in text
    assert ", f32]" in text and "[[], [[unit]]]" in text
    attrs = parse(text).functions[0].block.ops[0].attrs
    assert same_attr(name, attrs["name"]) and attrs["shape"] == ()
    assert math.copysign(1.0, attrs["name"][0][4]) == -1.0
    assert print_function(parse(text).functions[0]) == text


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
attr_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3).map(tuple))
arrays = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_]).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))
)


@settings(max_examples=200, deadline=None)
@given(name=attr_values, value=arrays)
def test_any_attribute_and_array_round_trip(name, value):
    fn = function("p")
    fn.block.append(Operation("placeholder", [], [F32], {"name": name, "shape": (), "dtype": 1}))
    with insertion_point(fn.block):
        create("constant", (), {"value": value})
    text = print_function(fn)
    parsed = parse(text).functions[0]
    assert print_function(parsed) == text
    assert same_attr(name, parsed.block.ops[0].attrs["name"])
    assert same_attr(value, parsed.block.ops[1].attrs["value"])


def test_hand_written_text_with_comments_and_defaults():
    text = """
    // a free layout: newlines mean nothing, comments are skipped
    module {
    func.func @f(%a: tensor<2xf32>) -> tensor<2xf32> {
      %s = "gj.reduce_sum"(%a) {axes = [0]} : (tensor<2xf32>) -> tensor<f32>  // keepdims = false
      %w:2 = "gj.while"(%s, %a) ({
      ^bb0(%x: tensor<f32>, %y: tensor<2xf32>): %t = "gj.constant"() {value = dense<true> :
          tensor<i1>} : () -> tensor<i1> "gj.condition"(%t) : (tensor<i1>) -> ()
      }, { ^bb0(%x2: tensor<f32>, %y2: tensor<2xf32>): "gj.yield"(%x2, %y2) : (tensor<f32>,
          tensor<2xf32>) -> () }) {taped} : (tensor<f32>, tensor<2xf32>) -> (tensor<f32>,
          tensor<2xf32>) loc("f.py":3:7)
      func.return %w#1 : tensor<2xf32>
    }
    }
    """
    module = parse(text)
    verify(module)
    ops = list(module.walk())
    assert ops[0].attrs == {"axes": (0,), "keepdims": False}
    assert ops[1].attrs == {"max_iterations": None, "taped": None}  # `{taped}` is taped = unit
    assert ops[1].loc == Location("f.py", 3)  # MLIR's column is dropped
    assert '%1:2 = "gj.while"(%0, %arg0) ({' in print_module(module)
    assert "}) : (tensor<f32>, tensor<2xf32>) -> (tensor<f32>, tensor<2xf32>)" in print_module(
        module
    )


def test_typed_numbers_and_splats_read_as_mlir_means_them():
    """What MLIR writes that graphjit does not print: typed integers and floats, a hex
    splat, an integer attribute too wide for i64 without a type."""
    text = body(
        '"gj.placeholder"() {dtype = "float32", name = [5 : i64, 2.5 : f32, 0x7FC00000 : f32, '
        "255 : ui8], shape = []} : () -> ()"
    )
    attrs = parse(text).functions[0].block.ops[0].attrs
    assert attrs["name"][:2] == (5, 2.5) and math.isnan(attrs["name"][2])
    assert attrs["name"][3] == 255
    value = parse(constant('dense<"0x0000C03F">', "tensor<2x2xf32>")).functions[0].block
    np.testing.assert_array_equal(value.ops[0].attrs["value"], np.full((2, 2), 1.5, np.float32))


def test_print_op_context_marks_the_op():
    fn = build_main()
    target = next(o for o in fn.walk() if o.name == "matmul")
    context = print_op_context(target, lines=2, function=fn)
    lines = context.splitlines()
    assert len(lines) == 5
    assert lines[2].startswith(">   %") and '= "gj.matmul"' in lines[2]
    assert all(line.startswith("  ") for i, line in enumerate(lines) if i != 2)
    assert print_op_context(target, lines=2) == context  # found without being told the fn
    nested = next(o for o in fn.walk() if o.name == "cond")
    context = print_op_context(nested).splitlines()
    assert '= "gj.cond"' in next(ln for ln in context if ln[0] == ">")


# ---- malformed text --------------------------------------------------------------------

HEAD = "func.func @f(%a: tensor<f32>) {\n"


def body(line: str) -> str:
    """A function whose second line is `line`."""
    return f"{HEAD}  {line}\n}}"


def constant(dense: str, type_text: str) -> str:
    return body(f'%0 = "gj.constant"() {{value = {dense} : {type_text}}} : () -> {type_text}')


F = "(tensor<f32>) -> tensor<f32>"
SPLIT = (
    '  %s:2 = "gj.split_like"(%a, %a, %a) {axis = 0} : (tensor<f32>, tensor<f32>, '
    "tensor<f32>) -> (tensor<f32>, tensor<f32>)\n"
)
BAD = [
    # (text, line of the error, text the column points at, words of the message)
    (body('%0 = "gj.frobnicate"() : () -> tensor<f32>'), 2, '"gj.frob', "unknown op"),
    (body('%0 = "arith.addf"() : () -> tensor<f32>'), 2, '"arith', "unknown op"),
    (body(f'%0 = "gj.neg"(%7) : {F}'), 2, "%7", "undefined value %7"),
    (body('%0 = "gj.neg"(%a) : (tensor<3xf33>) -> tensor<f32>'), 2, "tensor<3x", "element type"),
    (body('%0 = "gj.neg"(%a) : (tensor<f32>) -> tensor<-1xf32>'), 2, "tensor<-", "dimensions"),
    (body('%0 = "gj.neg"(%a) : (tensor<f32>) -> flt'), 2, "flt", "expected a type"),
    (body('%0 = "gj.neg"(%a) : (tensor<f32>) -> !gj.tape'), 2, "!gj", "expected a type"),
    (body('%0 = "gj.neg"(%a) : (tensor<f32>) tensor<i1>'), 2, "tensor<i1>", "'->'"),
    (body('%0 = "gj.argmax"(%a) {axis = @x} : (tensor<f32>) -> tensor<i64>'), 2, "@x", "value"),
    (body('%0 = "gj.argmax"(%a) {axis = 1, axis = 2} : ()'), 2, "axis = 2", "twice"),
    (body('%0 = "gj.argmax"(%a) {axis = 0x1} : ()'), 2, "0x1", "needs its type"),
    (body('%0 = "gj.argmax"(%a) {axis = 300 : i8} : ()'), 2, "300", "type i8"),
    (body('%0 = "gj.argmax"(%a) {axis = 1e5} : ()'), 2, "1e5", "needs a '.'"),
    (body('%0 = "gj.argmax"(%a) {axis = "\\q"} : ()'), 2, '"\\q"', "bad escape"),
    (body('%0 = "gj.argmax"(%a) {axis = "\\FF"} : ()'), 2, '"\\FF"', "not UTF-8"),
    (body(f'%0 = "gj.reduce_sum"(%a) {{bogus = 1}} : {F}'), 2, '"gj.reduce', "bogus"),
    (body('%0 = "gj.placeholder"() : () -> tensor<f32>'), 2, '"gj.placeholder', "needs attr"),
    (HEAD + f'  %0 = "gj.neg"(%a) : {F}\n', 3, "", "expected '}'"),
    (HEAD + "}\n}", 3, "}", "expected 'func.func'"),
    (body('%0:2 = "gj.neg"(%a) : (tensor<f32>) -> tensor<f32>'), 2, "%0", "names 2 result"),
    (body(f'"gj.neg"(%a) : {F}'), 2, '"gj.neg', "names 0 result"),
    (body('%0 = "gj.neg"(%a) : (tensor<i32>) -> tensor<f32>'), 2, "(tensor<i32>", "tensor<f32>"),
    (body('%0 = "gj.add"(%a) : (tensor<f32>, tensor<f32>) -> tensor<f32>'), 2, "(t", "1 operand"),
    (body(f'%a = "gj.neg"(%a) : {F}'), 2, "%a =", "defined twice"),
    (body('%0 = "gj.placeholder"() {name = "x'), 2, '"x', "unterminated string"),
    (body(f'%0 = "gj.neg"(%a) : {F} $'), 2, "$", "unexpected '$'"),
    (constant("dense<[1.0, 2.0]>", "tensor<3xf32>"), 2, "dense", "shape"),
    (constant("dense<[[1], [2, 3]]>", "tensor<2x2xi32>"), 2, "[[", "rows differ"),
    (constant("dense<[1, 0]>", "tensor<2xi1>"), 2, "dense", "true or false"),
    (constant("dense<3000000000>", "tensor<i32>"), 2, "dense", "bad element"),
    (constant("dense<0x7FC0000000>", "tensor<f32>"), 2, "dense", "not the bits of a f32"),
    (constant("dense<0x7F>", "tensor<i8>"), 2, "dense", "not the bits"),
    (constant("dense<[1.0, 1e5]>", "tensor<2xf32>"), 2, "1e5", "needs a '.'"),
    (constant("dense<>", "tensor<2xf32>"), 2, "dense", "empty"),
    (constant('dense<"0x000000">', "tensor<2xf32>"), 2, '"0x', "3 bytes"),
    (constant('dense<"0xZZ">', "tensor<2xf32>"), 2, '"0x', "bad hex"),
    (constant("dense<1.0>", "tensor<?xf32>"), 2, "tensor<?", "static shape"),
    (constant("dense<1.0>", "tensor<99999999999x99999999999xf32>"), 2, "dense", "too big"),
    (
        HEAD + '  %p = "gj.constant"() {value = dense<true> : tensor<i1>} : () -> tensor<i1>\n'
        '  %r = "gj.cond"(%p) ({\n'
        '    %in = "gj.neg"(%a) : (tensor<f32>) -> tensor<f32>\n'
        '    "gj.yield"(%in) : (tensor<f32>) -> ()\n'
        "  }, {\n"
        '    "gj.yield"(%in) : (tensor<f32>) -> ()\n'
        "  }) : (tensor<i1>) -> tensor<f32>\n}",
        7,
        "%in",
        "undefined value %in",
    ),
    (HEAD + SPLIT + "  func.return %s : tensor<f32>\n}", 3, "%s", "use %s#i"),
    (HEAD + SPLIT + "  func.return %s#2 : tensor<f32>\n}", 3, "2 :", "no result #2"),
    (HEAD + "  func.return %a : tensor<f32>\n}", 1, "@f", "declares results () but"),
    (
        "func.func @f(%a: tensor<f32>) -> tensor<i1> {\n  func.return %a : tensor<f32>\n}",
        1,
        "@f",
        "declares results (tensor<i1>) but its func.return returns (tensor<f32>)",
    ),
    # the syntax before graphjit's IR became MLIR: the error says what to write now
    ("func @f() {\n}", 1, "func", "func.func @name"),
    (body(f"%0 = neg %a : {F}"), 2, "neg", '"gj.neg"(%a, %b)'),
    (HEAD + "  return %a : (tensor<f32>)\n}", 2, "(tensor", "without parentheses"),
    (body('%0 = "gj.sort"(%a) {k = none} : ()'), 2, "none", "None is `unit`"),
    (body('%0 = "gj.cast"(%a) {dtype = dtype<f32>} : ()'), 2, "dtype<", "`dtype = f32`"),
    (body('%0 = "gj.neg"(%a) : (tensor<f32>) -> list<tensor<f32>>'), 2, "list", "!gj.list"),
    (body('%0 = "gj.sort"(%a) {k = nan} : ()'), 2, "nan", "bits in hex"),
    (constant("dense<[1.0, inf]>", "tensor<2xf32>"), 2, "inf", "bits in hex"),
    (constant('dense<"AACAPw==">', "tensor<f32>"), 2, '"AAC', "dense bytes are hex"),
]


@pytest.mark.parametrize("text, line, at, words", BAD)
def test_malformed_text_raises_parse_error_with_position(text, line, at, words):
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    source_line = (text.splitlines() + [""])[line - 1]
    column = source_line.index(at) + 1 if at else len(source_line) + 1
    assert (err.line, err.column) == (line, column), str(err)
    assert words in str(err)
    assert f"line {line}, column {column}" in str(err)
