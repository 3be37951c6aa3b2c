"""The parser against hostile text (issue 14): every malformed input is a ParseError with a
line and a column, never another exception, and nesting is limited explicitly.

Regression tests for each bug found, then a deterministic fuzzer that mutates printed IR
(truncation, byte flips, deleted, duplicated and swapped tokens, huge numbers, odd
dimensions and attribute values, deep nesting, invalid UTF-8 and NUL bytes) and checks
that parse either raises ParseError or returns a module that the verifier accepts or
rejects with a GraphjitError and that prints and reads back unchanged. The suite runs a
few hundred cases; `GRAPHJIT_PARSER_FUZZ=20000 pytest tests/ir/test_parser_hostile.py`
runs more.
"""

from __future__ import annotations

import os
import random
import re
import sys
import traceback

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import GraphjitError, ParseError
from graphjit.ir.ops import all_ops
from graphjit.ir.parser import MAX_NESTING, MAX_RANK, parse
from graphjit.ir.printer import print_module
from graphjit.ir.verifier import verify
from op_table import OP_TABLE

HEAD = "func.func @f(%a: tensor<f32>) {\n"
F = "(tensor<f32>) -> tensor<f32>"


def body(line: str) -> str:
    """A function whose second line is `line`."""
    return f"{HEAD}  {line}\n}}"


def constant(dense: str, type_text: str) -> str:
    return body(f'%0 = "gj.constant"() {{value = {dense} : {type_text}}} : () -> {type_text}')


def argmax(axis: str) -> str:
    return body(f'%0 = "gj.argmax"(%a) {{axis = {axis}}} : (tensor<f32>) -> tensor<i64>')


def result_type(type_text: str) -> str:
    return body(f'%0 = "gj.neg"(%a) : (tensor<f32>) -> {type_text}')


def nested_conds(depth: int) -> str:
    """A function whose body holds `depth` conds, each nested in the previous one's then
    region: depth + 1 regions counting the function's body."""
    yield_c = '"gj.yield"(%c) : (tensor<f32>) -> ()'
    inner = yield_c
    for k in range(depth):
        inner = (
            f'%r{k} = "gj.cond"(%p) ({{\n{inner}\n}}, {{\n{yield_c}\n}}) '
            f': (tensor<i1>) -> tensor<f32>\n"gj.yield"(%r{k}) : (tensor<f32>) -> ()'
        )
    inner = inner[: inner.rindex('"gj.yield"')] + f"func.return %r{depth - 1} : tensor<f32>"
    head = "func.func @f(%c: tensor<f32>, %p: tensor<i1>) -> tensor<f32>"
    return f"{head} {{\n{inner}\n}}\n"


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """Line and column of the `occurrence`-th `needle` in `text` after its first line."""
    at = text.index("\n")
    for _ in range(occurrence):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def assert_parse_error(text, line, column, *words):
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert f"line {line}, column {column}" in str(err)
    for word in words:
        assert word in str(err), str(err)
    return err


# ---- regressions: each was a raw exception (or silently wrong) before ---------------------

DIGITS = "9" * 5000  # beyond Python's 4300-digit limit for int()

REGRESSIONS = [
    # (name, text, text at the error's column (first occurrence), words of the message)
    # ValueError from int(): integers beyond Python's int-string conversion limit
    ("long attribute integer", argmax(DIGITS), "99", "longer than 4300 digits"),
    ("long result count", body(f'%0:{DIGITS} = "gj.neg"(%a) : () -> tensor<f32>'), "99", "count"),
    ("long result index", body(f'%0 = "gj.neg"(%a#{DIGITS}) : () -> tensor<f32>'), "99", "index"),
    (
        "long location line",
        body(f'%0 = "gj.neg"(%a) : (tensor<f32>) -> tensor<f32> loc("x.py":{DIGITS})'),
        "99",
        "line number",
    ),
    ("long dense integer", constant(f"dense<{DIGITS}>", "tensor<i64>"), "dense", "range of i64"),
    # ValueError from int(): str.isdigit() accepts digits int() does not read
    ("superscript dimension", result_type("tensor<\u00b2xf32>"), "tensor<\u00b2", "dimensions"),
    # \d matched other scripts' digits: `axis = ١` read as 1
    ("arabic-indic digit", argmax("\u0661"), "\u0661", "unexpected"),
    # dimensions beyond int64, and empty constants too big for NumPy (ValueError)
    ("dimension beyond int64", result_type("tensor<99999999999999999999xf32>"), "tensor<9", "2"),
    (
        "empty constant of gigantic shape",
        constant('dense<"0x">', "tensor<0x99999999999x99999999999xf32>"),
        '"0x"',
        "cannot hold",
    ),
    ("rank beyond MAX_RANK", result_type(f"tensor<{'1x' * 65}f32>"), "tensor<1", "rank 65"),
    # ValueError from bytes.fromhex on non-ASCII text
    ("non-ascii hex", constant('dense<"0xé">', "tensor<f32>"), '"0x', "bad hex"),
    # finite literals that overflowed silently to inf (f32 with a RuntimeWarning)
    ("f32 overflow", constant("dense<1.0e39>", "tensor<f32>"), "dense", "overflows"),
    ("f64 overflow", constant("dense<[1.0, 1.0e309]>", "tensor<2xf64>"), "dense", "overflows"),
    ("long float digits", constant(f"dense<{DIGITS}>", "tensor<f32>"), "dense", "overflows"),
    ("attribute float overflow", argmax("1.0e999"), "1.0e999", "out of range"),
    ("typed float overflow", argmax("1.0e39 : f32"), "1.0e39", "range of f32"),
    ("integer type too wide", argmax("1 : i99999999"), "i99", "wider than"),
    # integers beyond the element type, named before NumPy sees them
    ("i32 overflow", constant("dense<[1, 2147483648]>", "tensor<2xi32>"), "dense", "range of i32"),
    ("i64 overflow", constant("dense<-9223372036854775809>", "tensor<i64>"), "dense", "i64"),
    # RecursionError at ~300 levels: now a ParseError past MAX_NESTING
    ("deep list attribute", argmax("[" * 1000 + "]" * 1000), "[", "nesting deeper than 64"),
    (
        "deep dense literal",
        constant("dense<" + "[" * 1000 + "1.0" + "]" * 1000 + ">", "tensor<f32>"),
        "[",
        "nesting deeper than 64",
    ),
    (
        "deep list type",
        result_type("!gj.list<" * 1000 + "tensor<f32>" + ">" * 1000),
        "!gj.list<",
        "nesting deeper than 64",
    ),
    ("deep regions", nested_conds(400), "{", "nesting deeper than 64 (regions)"),
]


def deep_offset(name: str) -> int:
    """Which occurrence of the opener the error points at: the first one too deep."""
    if name == "deep regions":
        return MAX_NESTING  # the function's body, on the first line, is the first region
    return MAX_NESTING + 1 if name.startswith("deep") else 1


@pytest.mark.parametrize("name, text, at, words", REGRESSIONS, ids=[r[0] for r in REGRESSIONS])
def test_hostile_text_is_a_parse_error_at_its_position(name, text, at, words):
    line, column = position(text, at, deep_offset(name))
    assert_parse_error(text, line, column, words)


def test_verifier_reports_shape_rules_that_overflow():
    """int(inf) in a shape rule (broadcast_to, reshape) escaped the verifier as
    OverflowError."""
    text = body(
        '%0 = "gj.broadcast_to"(%a) {shape = [0x7FF0000000000000 : f64]} : (tensor<f32>) -> '
        'tensor<3xf32>\n  %1 = "gj.reshape"(%a) {shape = [0x7FF0000000000000 : f64]} : '
        "(tensor<f32>) -> tensor<f32>"
    )
    module = parse(text)
    with pytest.raises(GraphjitError, match="shape rule"):
        verify(module)


@pytest.mark.parametrize("dtype", [",ool", "i4,(2", "("])
def test_verifier_reports_dtype_strings_numpy_cannot_read(dtype):
    """np.dtype(",ool") raises SyntaxError (it reads comma strings with ast), which escaped
    as_dtype and so the verifier (found by the fuzzer)."""
    text = body(
        f'%0 = "gj.placeholder"() {{dtype = "{dtype}", name = "p", shape = []}} : () -> tensor<i1>'
    )
    with pytest.raises(GraphjitError, match="not a dtype"):
        verify(parse(text))


# ---- the limits themselves ------------------------------------------------------------


def test_nesting_up_to_the_limit_parses_verifies_and_round_trips():
    texts = [
        nested_conds(MAX_NESTING - 1),  # plus the function's body
        argmax("[" * MAX_NESTING + "]" * MAX_NESTING),
        result_type("!gj.list<" * MAX_NESTING + "tensor<f32>" + ">" * MAX_NESTING),
        constant(
            "dense<" + "[" * MAX_RANK + "1.5" + "]" * MAX_RANK + ">",
            "tensor<" + "1x" * MAX_RANK + "f32>",
        ),
    ]
    for text in texts:
        module = parse(text)
        again = print_module(module)
        assert print_module(parse(again)) == again
    verify(parse(texts[0]))
    verify(parse(texts[3]))
    assert parse(texts[3]).functions[0].block.ops[0].attrs["value"].ndim == MAX_RANK


@pytest.mark.parametrize("extra", [1, 2, 10])
def test_one_level_too_deep_points_at_that_opener(extra):
    depth = MAX_NESTING + extra
    text = argmax("[" * depth + "]" * depth)
    assert_parse_error(text, *position(text, "[", MAX_NESTING + 1), "nesting deeper than 64")
    text = nested_conds(MAX_NESTING - 1 + extra)
    assert_parse_error(text, *position(text, "{", MAX_NESTING), "(regions)")


def _with_frames_left(left: int, fn):
    """fn() called where only about `left` frames remain below the recursion limit."""

    def down():
        depth, frame = 0, sys._getframe()
        while frame is not None:
            depth, frame = depth + 1, frame.f_back
        return down() if depth < sys.getrecursionlimit() - left else fn()

    return down()


def test_parse_with_little_stack_left_is_a_parse_error():
    """Within MAX_NESTING, but called so deep in the caller's stack that the recursion
    limit is reached anyway: still a ParseError, not a RecursionError."""
    text = argmax("[" * MAX_NESTING + "]" * MAX_NESTING)
    assert _with_frames_left(400, lambda: parse(text).functions[0].block.ops)
    with pytest.raises(ParseError, match="remaining Python stack") as info:
        _with_frames_left(40, lambda: parse(text))
    assert info.value.line == 2


def test_gigantic_shapes_do_not_allocate():
    """A constant of a gigantic type fails on its byte count, a placeholder of one parses:
    nothing is allocated for either."""
    giant = "tensor<99999999999x99999999999xf32>"
    text = constant('dense<"0x000000">', giant)
    assert_parse_error(text, *position(text, '"0x'), "3 bytes do not hold")
    text = constant("dense<[1.0, 2.0]>", giant)
    assert_parse_error(text, *position(text, "dense"), "shape")
    text = constant("dense<1.0>", giant)  # a splat: its size is checked before it is made
    assert_parse_error(text, *position(text, "dense"), "too big")
    text = body(
        '%0 = "gj.placeholder"() {dtype = "float32", name = "x", '
        f"shape = [99999999999, 99999999999]}} : () -> {giant}"
    )
    verify(parse(text))


def test_boundary_values_still_parse():
    values = [
        (constant("dense<[-2147483648, 2147483647]>", "tensor<2xi32>"), [-(2**31), 2**31 - 1]),
        (constant("dense<-9223372036854775808>", "tensor<i64>"), -(2**63)),
        (constant("dense<3.4028235e+38>", "tensor<f32>"), np.finfo(np.float32).max),
        (
            constant("dense<[0x7FF0000000000000, 0xFFF0000000000000, 1.0e-400]>", "tensor<3xf64>"),
            [np.inf, -np.inf, 0.0],
        ),
    ]
    for text, expected in values:
        array = parse(text).functions[0].block.ops[0].attrs["value"]
        np.testing.assert_array_equal(array, expected)
    dims = result_type("tensor<9223372036854775807xf32>")
    assert parse(dims).functions[0].block.ops[0].results[0].type.shape == (2**63 - 1,)
    big = argmax(str(10**4299))  # any Python int of up to 4300 digits is an attribute
    assert parse(big).functions[0].block.ops[0].attrs["axis"] == 10**4299


@pytest.mark.parametrize(
    "name, text, at, words",
    [
        ("unknown op", body('%0 = "gj.frob"(%a) : (tensor<f32>) -> tensor<f32>'), '"gj', "unknown"),
        ("unknown dtype", result_type("tensor<f17>"), "tensor<f17", "f17"),
        ("unknown dtype attr", argmax("q8"), "q8", "element type"),
        ("negative dimension", result_type("tensor<-5xf32>"), "tensor<-", "dimensions"),
        ("NUL byte", body('%0 = "gj.neg"\x00(%a) : (tensor<f32>) -> tensor<f32>'), "\x00", "x00"),
        (
            "duplicate name",
            body(f'%0 = "gj.neg"(%a) : {F}\n  %0 = "gj.abs"(%a) : {F}'),
            '%0 = "gj.abs',
            "defined twice",
        ),
        (
            "use before definition",
            body(f'%1 = "gj.neg"(%0) : {F}\n  %0 = "gj.neg"(%a) : {F}'),
            "%0)",
            "undefined value %0",
        ),
        ("dense length", constant("dense<[1.0, 2.0]>", "tensor<3xf32>"), "dense", "shape"),
        ("hex length", constant('dense<"0x00000000">', "tensor<3xf64>"), '"0x', "4 bytes"),
    ],
)
def test_other_malformed_text(name, text, at, words):
    assert_parse_error(text, *position(text, at), words)


# ---- bytes ----------------------------------------------------------------------------


def test_bytes_are_read_as_utf8():
    text = body(
        '%0 = "gj.placeholder"() {dtype = "float32", name = "é", shape = []} : () -> tensor<f32>'
    )
    module = parse(text.encode("utf-8"))
    assert module.functions[0].block.ops[0].attrs["name"] == "é"
    assert print_module(module) == print_module(parse(text))


@pytest.mark.parametrize(
    "data, line, column",
    [
        (b"func.func @f() {\n  \xff }", 2, 3),
        (b'func.func @f() {\n  "\xc3\xa9\xc3" }', 2, 5),  # a truncated sequence after é
        (b"\xed\xa0\x80", 1, 1),  # an encoded surrogate is not UTF-8
        (b"func.func @f() {\n}\n\xf4\x90\x80\x80", 3, 1),  # beyond U+10FFFF
    ],
)
def test_invalid_utf8_is_a_parse_error_at_the_byte(data, line, column):
    assert_parse_error(data, line, column, "invalid UTF-8")


def test_parse_rejects_non_text():
    with pytest.raises(TypeError, match="str or bytes"):
        parse(None)


# ---- the fuzzer -------------------------------------------------------------------------

_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|tensor<[^<>\n]*>|%\w+|@\w+|\^\w+|![\w.]+|[\w.+-]+|->|\S')
_HUGE = [
    "99999999999999999999",
    "-9223372036854775809",
    "9223372036854775808",
    "2147483648",
    "-2147483649",
    "18446744073709551616",
    "9" * 4301,
    "1e999",
    "-1e999",
    "1" * 400 + ".5",
    "3.5e38",
    "1e-400",
    "nan",
    "-inf",
    "-1",
    "0",
    "1.5",
]
_ODD_DIMS = ["99999999999x99999999999x", "-1x", "0x", "x", "?x?x", "1x" * 70, "\u00b2x", ""]
_ODD_ATTRS = [
    "0x7FF0000000000000 : f64",
    "0x7FF8000000000000 : f64",
    "0x7FC00000 : f32",
    "0x1 : i1",
    "-1",
    "99999999999999999999",
    "99999999999999999999 : i66",
    "1.5 : f16",
    '"s"',
    '"\\FF\\00"',
    "unit",
    "true",
    "[]",
    "[[1]]",
    "[unit]",
    "[0x7FF0000000000000 : f64]",
    "[-1, -1]",
    "[99999999999999999999]",
    "[" + ", ".join(["0"] * 70) + "]",
    "f32",
    "bf16",
    "dense<1.0> : tensor<f32>",
    "dense<1.0> : tensor<99999x99999xf32>",
    'dense<"0x0000803F"> : tensor<4xf32>',
    "dense<> : tensor<0xi1>",
    "[[unit, 2, unit]]",
    "[[0x7FF0000000000000 : f64, 0x7FF0000000000000 : f64]]",
]
_ODD_CHARS = ["\x00", "\ud800", "\u00b2", "\u0663", "é", "{", "}", "[", "]", "<", ">", "%", "#"]
_ODD_CHARS += [":", "=", ",", '"', "\\", "\n", "x", "9", "-", "?", "^", "@"]
_ODD_TYPES = ["tensor<f32>", "tensor<i1>", "tensor<99999999999x99999999999xf32>"]
_ODD_TYPES += ["!gj.list<tensor<f32>>", "tensor<0xf32>", "tensor<?xi64>", "!gj.other"]
_SNIPPETS = [
    '"\\ud800"',
    '"\\x"',
    '"\\ED\\A0\\80"',
    '@"\\q"',
    'dense<"0xAAAA">',
    'dense<"AAAA">',
    "dense<0x7FC0>",
    "dtype<q>",
    'loc("f":99999999999999999999999)',
    'loc("f":1:99999999999999999999999)',
    "^bb0(%z: tensor<f32>):",
    "()",
    "->",
    "-> ()",
    "module {",
    ' ({\n^bb0(%q: tensor<f32>):\n "gj.yield"(%q) : (tensor<f32>) -> ()\n})',
    " ({\n}, {\n})",
    "func.return",
]
_BAD_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xe2\x82", b"\xf4\x90\x80\x80"]


def _seeds() -> list[str]:
    """Printed IR of graphs with control flow, gradients, tensor lists, constants of every
    dtype, one graph per op of the op table, and hand-written text with multi-result ops,
    labels and locations."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3], name="x")
        n = gj.placeholder(gj.int32, [], name="n")
        w = gj.Variable(np.ones((3, 3), np.float32), name="w")
        y = gj.tanh(gj.matmul(x, w)) * 2.0

        def loop_body(i, a):
            return i + 1, gj.cond(gj.sum(a) > 0, lambda: a * 0.5, lambda: -a)

        _, z = gj.while_loop(lambda i, a: i < n, loop_body, [0, y])
        gj.gradients(gj.sum(z * z), [w])
        gj.constant(np.arange(20, dtype=np.int64).reshape(4, 5))
        gj.constant(np.array([True, False]))
        gj.constant(np.linspace(0, 1, 40))
    seeds = [g.as_text(), g.as_text(locations=True)]
    for case in OP_TABLE[::3]:
        g = gj.Graph()
        with g.as_default():
            args = [
                gj.placeholder(case.fixed.get(i, case.dtypes[0]), list(shape), name=f"p{i}")
                for i, shape in enumerate(case.shapes[0])
            ]
            case.fn(*args)
        seeds.append(g.as_text())
    seeds.append(
        "module {\nfunc.func @f(%a: tensor<4xf32>, %l: !gj.list<tensor<4xf32>>) -> "
        "(tensor<2xf32>, tensor<2xf32>) {\n"
        '  %0 = "gj.constant"() {value = dense<[0, 0]> : tensor<2xi32>} : () -> tensor<2xi32>\n'
        '  %1:2 = "gj.split_like"(%a, %0, %0) {axis = 0} : (tensor<4xf32>, tensor<2xi32>, '
        "tensor<2xi32>) -> (tensor<2xf32>, tensor<2xf32>)\n"
        '  func.return %1#1, %1#0 : tensor<2xf32>, tensor<2xf32> loc("a.py":3:1)\n}\n'
        '\nfunc.func @"odd \\"name\\""() {\n^bb1():\n}\n}\n'
    )
    return seeds


def _mutate(text: str, rng: random.Random) -> str | bytes:
    spans = [m.span() for m in _TOKENS.finditer(text)] or [(0, 0)]
    s, e = spans[rng.randrange(len(spans))]
    kind = rng.randrange(19)
    if kind == 0:  # truncation
        return text[: rng.randrange(len(text) + 1)]
    if kind == 1:  # one character replaced
        i = rng.randrange(max(len(text), 1))
        return text[:i] + rng.choice(_ODD_CHARS) + text[i + 1 :]
    if kind == 2:  # a token deleted
        return text[:s] + text[e:]
    if kind == 3:  # a token duplicated
        return text[:e] + " " + text[s:e] + text[e:]
    if kind == 4:  # a token replaced by another
        s2, e2 = spans[rng.randrange(len(spans))]
        return text[:s] + text[s2:e2] + text[e:]
    if kind == 5:  # a line duplicated elsewhere
        lines = text.split("\n")
        lines.insert(rng.randrange(len(lines)), rng.choice(lines))
        return "\n".join(lines)
    if kind == 6:  # a number replaced by a huge or odd one
        numbers = list(
            re.finditer(r"(?<![\w%#^])-?(?:0x[0-9A-F]+|\d+(?:\.\d*)?(?:e[+-]?\d+)?)", text)
        )
        if numbers:
            m = rng.choice(numbers)
            return text[: m.start()] + rng.choice(_HUGE) + text[m.end() :]
    if kind == 7:  # a tensor type with odd dimensions or element type
        types = list(re.finditer(r"tensor<[^<>\n]*>", text))
        if types:
            m = rng.choice(types)
            short = rng.choice(["f32", "f64", "i32", "i64", "i1", "f16", "u8", ""])
            return text[: m.start()] + f"tensor<{rng.choice(_ODD_DIMS)}{short}>" + text[m.end() :]
    if kind == 8:  # an attribute's value replaced
        attrs = list(re.finditer(r"\w+ = ([^,}\[]+|\[[^=]*?\])(?=[,}])", text))
        if attrs:
            m = rng.choice(attrs)
            return text[: m.start(1)] + rng.choice(_ODD_ATTRS) + text[m.end(1) :]
    if kind == 9:  # a result type replaced
        results = list(re.finditer(r"-> (tensor<[^>]*>|!gj\.list<tensor<[^>]*>>)", text))
        if results:
            m = rng.choice(results)
            return text[: m.start(1)] + rng.choice(_ODD_TYPES) + text[m.end(1) :]
    if kind == 10:  # an op name replaced
        names = list(re.finditer(r'(?<="gj\.)[a-z_0-9]+(?=")', text))
        if names:
            m = rng.choice(names)
            return text[: m.start()] + rng.choice(sorted(all_ops()) + ["frob"]) + text[m.end() :]
    if kind == 11:  # a value name replaced
        uses = list(re.finditer(r"%\w+(?:#\d+)?", text))
        if uses:
            m = rng.choice(uses)
            other = rng.choice([u.group() for u in uses] + ["%999", "%0#99999999999999999999"])
            return text[: m.start()] + other + text[m.end() :]
    if kind == 12:  # a token wrapped in deep brackets
        n = rng.choice([3, MAX_NESTING, MAX_NESTING + 1, 1000])
        return text[:s] + "[" * n + text[s:e] + "]" * n + text[e:]
    if kind == 13:  # deep regions
        return text[:s] + nested_conds(rng.choice([2, MAX_NESTING, 200])).split("\n", 1)[1]
    if kind == 14:  # deep list types
        n = rng.choice([2, MAX_NESTING + 1, 1000])
        return text[:s] + "!gj.list<" * n + "tensor<f32>" + ">" * n + text[e:]
    if kind == 15:  # a deep dense literal
        n = rng.choice([2, MAX_NESTING + 1, 300])
        dense = "dense<" + "[" * n + "1" + "]" * n + "> : tensor<" + "1x" * n + "f32>"
        return text[:s] + dense + text[e:]
    if kind == 16:  # a snippet of odd syntax
        return text[:s] + rng.choice(_SNIPPETS) + text[e:]
    if kind == 17:  # a region moved: the text from a token on repeated
        return text[:e] + text[s:]
    if kind == 18:  # invalid UTF-8 or NUL bytes
        data = text.encode("utf-8", "surrogatepass")
        i = rng.randrange(len(data) + 1)
        return data[:i] + rng.choice(_BAD_BYTES) + data[i:]
    return text


def _check(text: str | bytes) -> str:
    """ParseError, or a module the verifier accepts or rejects with a GraphjitError and
    that prints and reads back unchanged."""
    try:
        module = parse(text)
    except ParseError as err:
        lines = (text.count(b"\n") if isinstance(text, bytes) else text.count("\n")) + 1
        assert 1 <= err.line <= lines and err.column >= 1, str(err)
        return "parse error"
    try:
        verify(module)
    except GraphjitError:
        return "verification error"
    printed = print_module(module)
    assert print_module(parse(printed)) == printed
    return "ok"


def fuzz(cases: int, seed: int = 0) -> dict:
    """Runs `cases` mutated texts; returns the outcome counts, or fails with the first text
    that raised anything else."""
    rng = random.Random(seed)
    seeds = _seeds()
    outcomes: dict[str, int] = {}
    for _ in range(cases):
        text = rng.choice(seeds)
        for _ in range(rng.choice([1, 1, 2, 3])):
            text = _mutate(text, rng)
            if isinstance(text, bytes):
                break
        try:
            outcome = _check(text)
        except Exception:
            pytest.fail(f"{traceback.format_exc()}\ntext: {text[:3000]!r}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def test_fuzzed_text_is_parsed_or_a_parse_error():
    cases = int(os.environ.get("GRAPHJIT_PARSER_FUZZ", "400"))
    outcomes = fuzz(cases, seed=int(os.environ.get("GRAPHJIT_PARSER_FUZZ_SEED", "14")))
    assert sum(outcomes.values()) == cases
    assert outcomes.get("parse error", 0) > cases // 2  # the mutations do break the text
    assert outcomes.get("ok", 0) + outcomes.get("verification error", 0) > 0
