"""MLIR text → IR: reads back what graphjit.ir.printer writes.

The text is MLIR: `func.func` functions whose ops are in the `gj` dialect in MLIR's
generic form (`%0 = "gj.add"(%a, %b) : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>`)
and end in `func.return`, optionally inside a `module { ... }`. A regex lexer and a
recursive-descent parser over that one form. Newlines carry no meaning, and `//` starts a
comment, so hand-written test IR may be laid out freely. Values must be defined before
they are used, and are visible in the block that defines them and in the regions nested
below it (so sibling regions may reuse a name, as MLIR's printer does). Errors are
ParseError with the line and column of the offending token; text in the syntax graphjit
printed before its IR became MLIR gets an error that says what changed.

Hostile text gets a ParseError too, never another exception: nesting (regions, list
attributes, dense literals, list types) is limited to MAX_NESTING levels, tensor ranks to
MAX_RANK, dimensions to the int64 range, integers in a dense constant to its element type,
splats to MAX_SPLAT_BYTES, a finite float literal must not overflow to infinity, and bytes
(and the bytes a string escapes) must be UTF-8.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from graphjit.errors import GraphjitError, ParseError
from graphjit.ir.core import Block, Function, Location, Module, Operation, Region, Value
from graphjit.ir.ops import get_op
from graphjit.ir.printer import DIALECT, RETURN_OP, ends_function, scalars_to_array
from graphjit.ir.types import ALL_DTYPES, DType, ListType, TensorType, dtype_from_short

# How deep regions, list attributes, dense literals and list types may nest, each counted on
# its own. The parser recurses once per level; this keeps it (and the verifier, printer and
# passes that walk the result) far from Python's recursion limit.
MAX_NESTING = 64
# The most dimensions a tensor type may have: NumPy's limit for an array.
MAX_RANK = 64
# Dimensions, result counts and indices, and location lines must fit in int64.
MAX_INDEX = 2**63 - 1
# Integer attribute literals may be any Python int up to this many digits (Python's own
# limit for converting text to int).
MAX_INT_DIGITS = 4300
# A splat (`dense<1.0> : tensor<1000xf32>`) is expanded to an array: this bounds the
# memory a few characters of text may ask for.
MAX_SPLAT_BYTES = 2**32
# The widest integer type an attribute may name (MLIR's own limit).
MAX_INT_WIDTH = 2**24

_LEXER = re.compile(
    r"""
    (?P<skip>[ \t\r\n]+|//[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<type>tensor<[^<>\n]*>)
  | (?P<number>(?:0x[0-9A-Fa-f]+|-?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)(?![\w.]))
  | (?P<value>%[\w$.]+)
  | (?P<symbol>@[A-Za-z_][\w.$]*|@"(?:[^"\\\n]|\\.)*")
  | (?P<label>\^[\w$.]+)
  | (?P<dialect_type>![A-Za-z_][\w.]*)
  | (?P<ident>[A-Za-z_][\w.$]*)
  | (?P<punct>->|[(){}\[\]<>,:=\#])
    """,
    re.VERBOSE,
)
_SHORTS = ", ".join(d.short for d in ALL_DTYPES)
_DIGITS = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"-?[0-9]+")
_INT_TYPE = re.compile(r"(?:i|si|ui)([0-9]{1,8})")
_HEX = re.compile(r"0x[0-9A-Fa-f]+")
_STRING_ESCAPE = re.compile(r'\\(?:([0-9A-Fa-f]{2})|(["\\nt]))')
_NAMED_ESCAPES = {'"': b'"', "\\": b"\\", "n": b"\n", "t": b"\t"}

# What the syntax before graphjit's IR became MLIR wrote differently (a word where MLIR has
# another): the error for old text says what to write now.
MLIR_NOW = "graphjit's IR text is MLIR now"
_OLD_WORDS = {
    "func": "functions are `func.func @name(%arg0: type) -> result types {`",
    "none": "None is `unit`",
    "dtype": "a dtype attribute is the type itself: `dtype = f32`",
    "list": "the tensor list type is `!gj.list<tensor<...>>`",
    "inf": "infinities and NaN are their bits in hex: `0x7FF0000000000000 : f64`, "
    "`dense<0x7F800000> : tensor<f32>`",
}
_OLD_WORDS["nan"] = _OLD_WORDS["inf"]


@dataclass
class Token:
    kind: str  # a group name of _LEXER, or "eof"
    text: str
    line: int
    column: int


def parse(text: str | bytes) -> Module:
    """Parse a module: `func.func` definitions, optionally in a `module { }`. Bytes must be
    UTF-8. Text that graphjit's parser rejects but that has ops of a dialect a reader is
    registered for, in MLIR's custom form (upstream MLIR as MLIR prints it: graphjit.mlir
    registers its importer), is that reader's to read."""
    text = _as_text(text)
    try:
        return _parse_graphjit(text)
    except ParseError:
        reader = _foreign_reader(text)
        if reader is None:
            raise
    return reader(text)


def _parse_graphjit(text: str) -> Module:
    parser = _Parser(tokenize(text))
    try:
        return parser.module()
    except RecursionError:  # within MAX_NESTING, but called with little stack left
        raise parser.error("nesting too deep for the remaining Python stack") from None


# Readers of MLIR in dialects other than graphjit's: dialect name -> reader(text) -> Module.
# graphjit.mlir registers its importer of upstream dialects (arith, linalg, ...) here: the
# IR sits below it and never imports it.
_FOREIGN_READERS: dict = {}
# The dialect of an op name in custom form, where MLIR puts one (a line's start or after
# `=`). graphjit's own text has only generic-form (quoted) op names there, and its errors
# for those stay its own.
_OP_DIALECT = re.compile(r"(?m)(?:^|=)[ \t]*([A-Za-z_]\w*)\.[A-Za-z_]")


def register_dialect_reader(dialects, reader) -> None:
    """Text with ops in `dialects` that graphjit's parser rejects goes to `reader(text)`."""
    _FOREIGN_READERS.update(dict.fromkeys(dialects, reader))


def _foreign_reader(text: str):
    for m in _OP_DIALECT.finditer(text):
        if m.group(1) in _FOREIGN_READERS:
            return _FOREIGN_READERS[m.group(1)]
    return None


def _as_text(text) -> str:
    if isinstance(text, str):
        return text
    if not isinstance(text, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse() takes str or bytes, not {type(text).__name__}")
    data = bytes(text)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        line_start = data.rfind(b"\n", 0, e.start) + 1
        column = len(data[line_start : e.start].decode("utf-8", "replace")) + 1
        raise ParseError(f"invalid UTF-8 byte 0x{data[e.start]:02x}", line, column) from None


def tokenize(text: str) -> list[Token]:
    tokens, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        m = _LEXER.match(text, pos)
        if m is None:
            what = "unterminated string" if text[pos] == '"' else f"unexpected {text[pos]!r}"
            raise ParseError(what, line, pos - line_start + 1)
        if m.lastgroup != "skip":
            tokens.append(Token(m.lastgroup, m.group(), line, pos - line_start + 1))
        newlines = m.group().count("\n")
        if newlines:
            line += newlines
            line_start = pos + m.group().rindex("\n") + 1
        pos = m.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


def unquote(tok: Token) -> str:
    """An MLIR string literal's text: escapes are `\\"`, `\\\\`, `\\n`, `\\t` and `\\XX`
    (a byte in hex), and the bytes must be UTF-8."""
    body = tok.text[1:-1]
    out, end = bytearray(), 0
    for m in _STRING_ESCAPE.finditer(body):
        out += body[end : m.start()].encode("utf-8", "surrogatepass")
        out += bytes.fromhex(m.group(1)) if m.group(1) else _NAMED_ESCAPES[m.group(2)]
        end = m.end()
    rest = body[end:]
    if "\\" in rest:
        bad = rest[rest.index("\\") : rest.index("\\") + 2]
        raise ParseError(
            f"bad escape {bad!r} in string {tok.text[:40]}: MLIR strings escape bytes as \\XX "
            '(two hex digits), or as \\n \\t \\\\ \\"',
            tok.line,
            tok.column,
        )
    out += rest.encode("utf-8", "surrogatepass")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(
            f"string {tok.text[:40]} is not UTF-8: {e}", tok.line, tok.column
        ) from None


def graphjit_op_name(mlir_name: str) -> str | None:
    """The graphjit op an MLIR op name stands for (`gj.add` → `add`), or None."""
    if mlir_name == RETURN_OP:
        return "return"
    dialect, dot, name = mlir_name.partition(".")
    return name if dialect == DIALECT and dot else None


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.pos = 0
        self.scopes: list[dict[str, list[Value]]] = []  # innermost block last
        self.pending_args: list[Token] = []  # names of the next block's arguments
        self.depths: dict[str, int] = {}  # how deep each kind of nesting is at the moment

    # ---- token helpers ------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def error(self, message: str, tok: Token | None = None) -> ParseError:
        tok = tok or self.tok
        return ParseError(message, tok.line, tok.column)

    def at(self, text: str) -> bool:
        return self.tok.kind in ("punct", "ident") and self.tok.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> Token:
        if not self.at(text):
            raise self.unexpected(f"'{text}'")
        return self.next()

    def expect_kind(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.unexpected(what)
        return self.next()

    def unexpected(self, wanted: str) -> ParseError:
        if self.tok.kind == "ident" and self.tok.text in _OLD_WORDS:
            return self.old_syntax(_OLD_WORDS[self.tok.text])
        found = "end of input" if self.tok.kind == "eof" else repr(self.tok.text)
        return self.error(f"expected {wanted} but found {found}")

    def old_syntax(self, now: str, tok: Token | None = None) -> ParseError:
        return self.error(f"{MLIR_NOW}: {now}", tok)

    def next(self) -> Token:
        tok = self.tok
        self.pos += 1
        return tok

    @contextmanager
    def nested(self, what: str):
        """One level deeper in `what` (regions, ...); a ParseError past MAX_NESTING."""
        depth = self.depths.get(what, 0) + 1
        if depth > MAX_NESTING:
            raise self.error(f"nesting deeper than {MAX_NESTING} ({what})")
        self.depths[what] = depth
        try:
            yield
        finally:
            self.depths[what] = depth - 1

    def index(self, tok: Token, what: str) -> int:
        """A non-negative integer token that must fit in int64 (a count, index, line)."""
        if not _DIGITS.fullmatch(tok.text) or len(tok.text) > 19 or int(tok.text) > MAX_INDEX:
            raise self.error(f"{what} must be an integer from 0 to {MAX_INDEX}", tok)
        return int(tok.text)

    def sequence(self, opener: str, closer: str, item) -> list:
        """`opener item, item, ... closer`, the shape of every list in the format."""
        self.expect(opener)
        items = []
        while not self.at(closer):
            if items:
                self.expect(",")
            items.append(item())
        self.expect(closer)
        return items

    def comma_list(self, item) -> list:
        """`item, item, ...` (at least one), as func.return writes its operands and types."""
        items = [item()]
        while self.accept(","):
            items.append(item())
        return items

    # ---- structure ----------------------------------------------------------------------

    def module(self) -> Module:
        module = Module()
        wrapped = self.accept("module")  # MLIR prints its modules so
        if wrapped:
            self.expect("{")
        while self.tok.kind != "eof" and not (wrapped and self.at("}")):
            self.expect("func.func")
            module.functions.append(self.function())
        if wrapped:
            self.expect("}")
            self.expect_kind("eof", "the end of the input after the module")
        return module

    def function(self) -> Function:
        tok = self.expect_kind("symbol", "a function name such as @main")
        name = tok.text[1:]
        if name.startswith('"'):
            name = unquote(Token(tok.kind, name, tok.line, tok.column + 1))
        args = self.typed_args()
        declared = self.result_types() if self.accept("->") else []
        fn = Function(name, self.region(Block(args)))
        self.check_results(fn, declared, tok)
        return fn

    def check_results(self, fn: Function, declared: list, name_tok: Token) -> None:
        """func.func declares the types its func.return returns: they must agree."""
        last = fn.block.ops[-1] if fn.block.ops else None
        returned = [v.type for v in last.operands] if last and ends_function(last) else []
        if returned != declared:
            raise self.error(
                f"function {name_tok.text} declares results ({_types(declared)}) but its "
                f"func.return returns ({_types(returned)})",
                name_tok,
            )

    def typed_args(self) -> list:
        """`(%a: type, ...)`; block_ops binds the names once the block exists."""
        pairs = self.sequence("(", ")", self.typed_arg)
        self.pending_args = [tok for tok, _ in pairs]
        return [t for _, t in pairs]

    def typed_arg(self) -> tuple[Token, object]:
        tok = self.expect_kind("value", "a block argument")
        self.expect(":")
        return tok, self.type()

    def region(self, first: Block | None = None) -> Region:
        """`{ ops }`; a region's first block and any later ones start with a label."""
        with self.nested("regions"):
            return self._region(first)

    def _region(self, first: Block | None) -> Region:
        self.expect("{")
        if first is None:
            first = self.labelled_block() if self.tok.kind == "label" else Block()
        region = Region(first)
        self.block_ops(first)
        while self.tok.kind == "label":
            block = self.labelled_block()
            block.parent = region
            region.blocks.append(block)
            self.block_ops(block)
        self.expect("}")
        return region

    def labelled_block(self) -> Block:
        self.next()
        block = Block(self.typed_args())
        self.expect(":")
        return block

    def block_ops(self, block: Block) -> None:
        self.scopes.append({})
        for tok, arg in zip(self.pending_args, block.args):
            self.define(tok, [arg])
        self.pending_args = []
        while not self.at("}") and self.tok.kind not in ("label", "eof"):
            self.op(block)
        self.scopes.pop()

    def define(self, tok: Token, values: list[Value]) -> None:
        """Binds a name in the current block. A name may not be bound twice where both are
        visible, but sibling regions may reuse one (MLIR prints `%arg0` in each)."""
        name = tok.text
        if any(name in scope for scope in self.scopes):
            raise self.error(f"value {name} is defined twice", tok)
        self.scopes[-1][name] = values

    # ---- operations ---------------------------------------------------------------------

    def op(self, block: Block) -> None:
        start = self.tok
        result_tok, count = self.result_names()
        is_return = self.at(RETURN_OP) or self.at("return")  # MLIR's own short spelling
        op = self.return_op() if is_return else self.generic_op()
        if count != len(op.results):
            raise self.error(
                f"op '{op.name}' names {count} result(s) but its type lists {len(op.results)}",
                start,
            )
        block.append(op)
        if result_tok is not None:
            self.define(result_tok, op.results)

    def generic_op(self) -> Operation:
        """`"gj.name"(operands) ({regions}) {attributes} : (types) -> types loc(...)`."""
        name_tok = self.op_name()
        name = graphjit_op_name(unquote(name_tok))
        try:
            opdef = get_op(name or "")
        except GraphjitError:
            raise self.error(f"unknown op {name_tok.text}", name_tok) from None
        operands = self.sequence("(", ")", self.use)
        regions = self.regions() if self.at("(") else []
        attrs = self.attr_dict() if self.at("{") else {}
        self.expect(":")
        result_types = self.signature(name, operands)
        loc = self.location() if self.at("loc") else None
        try:
            attrs = opdef.normalize_attrs(attrs)
        except GraphjitError as e:
            raise self.error(e.raw_message, name_tok) from None
        return Operation(name, operands, result_types, attrs, regions, loc)

    def op_name(self) -> Token:
        """The quoted op name; a bare graphjit op name is the syntax before MLIR's."""
        tok = self.tok
        if tok.kind == "ident" and tok.text not in _OLD_WORDS and _is_op(tok.text):
            raise self.old_syntax(
                f'ops are in MLIR\'s generic form: `"{DIALECT}.{tok.text}"(%a, %b) {{attrs}} '
                ": (types) -> types`"
            )
        return self.expect_kind("string", f'an op name such as "{DIALECT}.add"')

    def return_op(self) -> Operation:
        """`func.return %a, %b : type, type loc(...)`, or `func.return` alone; `return` too,
        as MLIR prints it inside a func.func."""
        self.next()
        operands = self.comma_list(self.use) if self.tok.kind == "value" else []
        if operands:
            self.expect(":")
            if self.at("("):
                raise self.old_syntax("func.return lists its types without parentheses")
            self.check_operand_types("return", operands, self.comma_list(self.type))
        loc = self.location() if self.at("loc") else None
        return Operation("return", operands, [], {}, (), loc)

    def result_names(self) -> tuple[Token | None, int]:
        """`%3 =` or `%3:2 =` or nothing (an op without results)."""
        if self.tok.kind != "value":
            return None, 0
        tok, count = self.next(), 1
        if self.accept(":"):
            count_tok = self.expect_kind("number", "a result count")
            count = self.index(count_tok, "a result count")
            if count < 1:
                raise self.error("result count must be a positive integer", count_tok)
        self.expect("=")
        return tok, count

    def use(self) -> Value:
        tok = self.expect_kind("value", "a value such as %0")
        values = next((s[tok.text] for s in reversed(self.scopes) if tok.text in s), None)
        if values is None:
            raise self.error(f"use of undefined value {tok.text}", tok)
        if self.accept("#"):
            index_tok = self.expect_kind("number", "a result index")
            index = self.index(index_tok, "a result index")
            if index >= len(values):
                raise self.error(f"{tok.text} has no result #{index_tok.text}", index_tok)
            return values[index]
        if len(values) != 1:
            raise self.error(f"{tok.text} has {len(values)} results; use {tok.text}#i", tok)
        return values[0]

    def signature(self, op_name: str, operands: list[Value]) -> list:
        """`(operand types) -> type`, `-> (types)` or `-> ()`. The operand types repeat what
        the operands' definitions say; a disagreement means the text was edited
        inconsistently. Returns the result types."""
        start = self.tok
        self.check_operand_types(op_name, operands, self.type_tuple(), start)
        self.expect("->")
        return self.result_types()

    def check_operand_types(self, op_name, operands, types, start: Token | None = None):
        start = start or self.tok
        if len(types) != len(operands):
            raise self.error(
                f"op '{op_name}' has {len(operands)} operand(s) but its type lists {len(types)}",
                start,
            )
        for i, (v, t) in enumerate(zip(operands, types)):
            if v.type != t:
                raise self.error(f"operand #{i} of '{op_name}' has type {v.type}, not {t}", start)

    def result_types(self) -> list:
        """`type` or `(types)`: what follows `->`."""
        return self.type_tuple() if self.at("(") else [self.type()]

    def type_tuple(self) -> list:
        return self.sequence("(", ")", self.type)

    def location(self) -> Location:
        """`loc("file":line)`, or MLIR's `loc("file":line:column)` (the column is dropped)."""
        self.expect("loc")
        self.expect("(")
        file_tok = self.expect_kind("string", "a file name string")
        self.expect(":")
        line = self.index(self.expect_kind("number", "a line number"), "a line number")
        if self.accept(":"):
            self.index(self.expect_kind("number", "a column number"), "a column number")
        self.expect(")")
        return Location(unquote(file_tok), line)

    def regions(self) -> list[Region]:
        """`({...}, {...})`: the regions of a region op, in MLIR's generic form."""
        return self.sequence("(", ")", self.region)

    # ---- types --------------------------------------------------------------------------

    def type(self):
        if self.tok.kind == "type":
            return self.tensor_type(self.next())
        if self.tok.kind == "dialect_type" and self.tok.text == f"!{DIALECT}.list":
            with self.nested("list types"):
                self.next()
                self.expect("<")
                elem = self.type()
                self.expect(">")
            return ListType(elem)
        raise self.unexpected("a type")

    def tensor_type(self, tok: Token) -> TensorType:
        *dims, short = tok.text[len("tensor<") : -1].split("x")
        dtype = self.dtype(short, tok)
        if dims == ["*"]:
            return TensorType(None, dtype)  # unranked
        if not all(d == "?" or _DIGITS.fullmatch(d) for d in dims):
            raise self.error(f"bad dimensions in {tok.text}: use digits or ?", tok)
        if len(dims) > MAX_RANK:
            raise self.error(f"rank {len(dims)} exceeds the limit of {MAX_RANK}", tok)
        if any(d != "?" and (len(d) > 19 or int(d) > MAX_INDEX) for d in dims):
            raise self.error(f"a dimension of {tok.text[:80]} exceeds {MAX_INDEX}", tok)
        return TensorType(tuple(None if d == "?" else int(d) for d in dims), dtype)

    def dtype(self, short: str, tok: Token) -> DType:
        try:
            return dtype_from_short(short)
        except KeyError:
            raise self.error(f"bad element type {short!r} (use {_SHORTS})", tok) from None

    # ---- attributes ---------------------------------------------------------------------

    def attr_dict(self) -> dict:
        attrs: dict = {}
        for key_tok, key, value in self.sequence("{", "}", self.attr_entry):
            if key in attrs:
                raise self.error(f"attribute '{key}' given twice", key_tok)
            attrs[key] = value
        return attrs

    def attr_entry(self) -> tuple:
        """`key = value`, or a key alone: MLIR's spelling of `key = unit`."""
        key_tok = self.next()
        if key_tok.kind not in ("ident", "string"):
            raise self.error("expected an attribute name", key_tok)
        key = unquote(key_tok) if key_tok.kind == "string" else key_tok.text
        if self.at(",") or self.at("}"):
            return key_tok, key, None
        self.expect("=")
        return key_tok, key, self.attr_value()

    def attr_value(self):
        tok = self.tok
        if tok.kind == "number":
            return self.number(self.next())
        if tok.kind == "string":
            return unquote(self.next())
        if self.at("["):
            with self.nested("list attributes"):
                return tuple(self.sequence("[", "]", self.attr_value))
        words = {"unit": None, "true": True, "false": False}
        if tok.kind == "ident" and tok.text in words:
            return words[self.next().text]
        if self.accept("dense"):
            return self.dense(tok)
        if tok.kind == "ident" and tok.text in _OLD_WORDS:
            raise self.old_syntax(_OLD_WORDS[tok.text])
        if tok.kind == "ident":
            return self.dtype(self.next().text, tok)
        raise self.error(f"bad attribute value {tok.text or 'end of input'!r}")

    def number(self, tok: Token) -> int | float:
        """An attribute's number: an integer (an i64, or as wide as its type says), a float
        (an f64), or a float's bits in hex followed by its type."""
        if self.accept(":"):
            return self.typed_number(tok, self.expect_kind("ident", "a number's type"))
        if _HEX.fullmatch(tok.text):
            raise self.error(f"a hex number needs its type: {tok.text} : f64", tok)
        return self.untyped_number(tok)

    def untyped_number(self, tok: Token) -> int | float:
        text = tok.text
        if _INTEGER.fullmatch(text):
            try:  # int() has its own limit, which a program may have set lower
                if len(text.lstrip("-")) <= MAX_INT_DIGITS:
                    return int(text)
            except ValueError:
                pass
            raise self.error(f"integer literal longer than {MAX_INT_DIGITS} digits", tok)
        if "." not in text:
            raise self.error(f"float literal {text[:40]} needs a '.' (MLIR: 1.0e5, not 1e5)", tok)
        value = float(text)
        if math.isinf(value):
            raise self.error(f"float literal {text[:40]} is out of range", tok)
        return value

    def typed_number(self, tok: Token, type_tok: Token) -> int | float:
        """`N : i128` (an integer that fits the type), `1.5 : f32`, `0x7FC00000 : f32`."""
        width = _INT_TYPE.fullmatch(type_tok.text)
        if width:
            return self.typed_integer(tok, type_tok, int(width.group(1)))
        dtype = self.dtype(type_tok.text, type_tok)
        if not dtype.is_floating:
            raise self.error("a number's type must be an integer or float type", type_tok)
        if _HEX.fullmatch(tok.text):
            return self.float_bits(tok, dtype)
        with np.errstate(over="ignore"):
            value = float(np.array(self.untyped_number(tok), dtype=dtype.np))
        if math.isinf(value):
            raise self.error(f"{tok.text[:40]} is out of the range of {dtype.short}", tok)
        return value

    def typed_integer(self, tok: Token, type_tok: Token, width: int) -> int:
        if not 1 <= width <= MAX_INT_WIDTH:
            raise self.error(
                f"integer type {type_tok.text} is wider than i{MAX_INT_WIDTH}", type_tok
            )
        value = int(tok.text, 16) if _HEX.fullmatch(tok.text) else self.untyped_number(tok)
        if not isinstance(value, int) or value.bit_length() > width:
            raise self.error(f"{tok.text[:40]} is not an integer of type {type_tok.text}", tok)
        return value

    def float_bits(self, tok: Token, dtype: DType) -> float:
        """A float written as its bits in hex (how MLIR writes NaN and the infinities)."""
        return float(self.hex_element(tok, dtype).astype(np.float64)[0])

    def hex_element(self, tok: Token, dtype: DType) -> np.ndarray:
        size = dtype.np.itemsize
        if len(tok.text) > 2 + 2 * size:
            raise self.error(f"{tok.text[:40]} has more bits than a {dtype.short}", tok)
        return np.array([int(tok.text, 16)], dtype=f"<u{size}").view(dtype.np)

    # ---- dense constants ----------------------------------------------------------------

    def dense(self, start: Token) -> np.ndarray:
        """`dense<literal> : type`, `dense<"0xHEX"> : type` or `dense<> : type`: a literal
        of the type's shape or a splat (one element for all), as MLIR reads them."""
        self.expect("<")
        if self.at(">"):
            body = None
        else:
            body = self.next() if self.tok.kind == "string" else self.literal()
        self.expect(">")
        self.expect(":")
        type_tok = self.expect_kind("type", "the constant's tensor type")
        ttype = self.tensor_type(type_tok)
        if None in ttype.shape:
            raise self.error("a dense constant needs a static shape", type_tok)
        if body is None:
            if ttype.size:
                raise self.error(f"dense<> is empty but a {ttype} has {ttype.size} elements", start)
            return np.zeros(ttype.shape, ttype.dtype.np)
        if isinstance(body, Token):
            return self.dense_bytes(body, ttype)
        shape, scalars = body
        array = self.literal_array(scalars, ttype, start)
        if shape == ttype.shape:
            return array.reshape(shape)
        if shape == ():
            return self.splat(array, ttype, start)
        raise self.error(f"dense literal has shape {shape} but its type is {ttype}", start)

    def literal_array(self, scalars: list[str], ttype: TensorType, start: Token) -> np.ndarray:
        self.check_scalars(scalars, ttype, start)
        try:
            with np.errstate(over="ignore"):
                array = scalars_to_array(scalars, ttype.dtype)
        except (ValueError, OverflowError) as e:
            raise self.error(f"bad element in dense literal of {ttype}: {e}", start) from None
        if ttype.dtype.is_floating:
            decimal = np.array([not s.startswith("0x") for s in scalars])
            if np.any(decimal & np.isinf(array.astype(np.float64))):
                raise self.error(
                    f"bad element in dense literal of {ttype}: a finite float overflows", start
                )
        return array

    def check_scalars(self, scalars: list[str], ttype: TensorType, start: Token) -> None:
        """Integer elements within the element type's range (before NumPy sees them); hex
        elements only for floats, of at most their width."""
        dtype = ttype.dtype
        for s in scalars:
            if s.startswith("0x") and (not dtype.is_floating or len(s) > 2 + 2 * dtype.np.itemsize):
                raise self.error(
                    f"bad element in dense literal of {ttype}: hex {s[:40]} is not the bits "
                    f"of a {dtype.short}",
                    start,
                )
        if not dtype.is_integer:
            return
        info = np.iinfo(dtype.np)
        for s in scalars:
            if _INTEGER.fullmatch(s) and (len(s) > 21 or not info.min <= int(s) <= info.max):
                raise self.error(
                    f"bad element in dense literal of {ttype}: {s[:40]} is out of the range "
                    f"of {dtype.short} [{info.min}, {info.max}]",
                    start,
                )

    def splat(self, one: np.ndarray, ttype: TensorType, start: Token) -> np.ndarray:
        nbytes = ttype.size * one.dtype.itemsize
        if nbytes > MAX_SPLAT_BYTES:
            raise self.error(f"a splat {ttype} of {nbytes} bytes is too big to hold", start)
        return np.full(ttype.shape, one.reshape(-1)[0], dtype=one.dtype)

    def dense_bytes(self, tok: Token, ttype: TensorType) -> np.ndarray:
        """`"0x..."`: the elements' little-endian bytes, or one element's for a splat."""
        text = unquote(tok)
        if not text.startswith("0x"):
            raise self.old_syntax('dense bytes are hex: dense<"0x0000803F">', tok)
        try:
            data = bytes.fromhex(text[2:])
        except ValueError as e:
            raise self.error(f"bad hex data: {e}", tok) from None
        little = ttype.dtype.np.newbyteorder("<")
        if len(data) == little.itemsize and ttype.size != 1:
            one = np.frombuffer(data, dtype=little).astype(ttype.dtype.np)
            return self.splat(one, ttype, tok)
        if len(data) != ttype.size * little.itemsize:
            raise self.error(f"{len(data)} bytes do not hold a {ttype}", tok)
        try:  # an empty array of gigantic dimensions is still too big for NumPy
            return np.frombuffer(data, dtype=little).astype(ttype.dtype.np).reshape(ttype.shape)
        except ValueError as e:
            raise self.error(f"cannot hold a {ttype}: {e}", tok) from None

    def literal(self) -> tuple[tuple, list[str]]:
        """A scalar or nested rectangular list: its shape and its elements in order."""
        if self.tok.kind == "number" or self.at("true") or self.at("false"):
            return (), [self.element(self.next())]
        if self.tok.kind == "ident" and self.tok.text in ("inf", "nan"):
            raise self.old_syntax(_OLD_WORDS["inf"])
        with self.nested("dense literals"):
            start = self.expect("[")
            parts = [self.literal()]
            while self.accept(","):
                parts.append(self.literal())
            self.expect("]")
        if any(shape != parts[0][0] for shape, _ in parts):
            raise self.error("dense literal rows differ in shape", start)
        return (len(parts),) + parts[0][0], [s for _, scalars in parts for s in scalars]

    def element(self, tok: Token) -> str:
        text = tok.text
        if tok.kind == "number" and not _HEX.fullmatch(text) and "e" in text.lower():
            if "." not in text:
                raise self.error(
                    f"float literal {text[:40]} needs a '.' (MLIR: 1.0e5, not 1e5)", tok
                )
        return text


def _is_op(name: str) -> bool:
    try:
        get_op(name)
    except GraphjitError:
        return False
    return True


def _types(types: list) -> str:
    return ", ".join(str(t) for t in types)
