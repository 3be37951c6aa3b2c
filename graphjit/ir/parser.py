"""MLIR-like text → IR: reads back what graphjit.ir.printer writes.

A regex lexer and a recursive-descent parser over the printer's single generic op form.
Newlines carry no meaning, and `//` starts a comment, so hand-written test IR may be laid
out freely. Values must be defined before they are used, and are visible in the block
that defines them and in the regions nested below it. Errors are ParseError with the line
and column of the offending token.

Hostile text gets a ParseError too, never another exception: nesting (regions, list
attributes, dense literals, list types) is limited to MAX_NESTING levels, tensor ranks to
MAX_RANK, dimensions to the int64 range, integers in a dense constant to its element type,
a finite float literal must not overflow to infinity, and bytes must be UTF-8.
"""

from __future__ import annotations

import base64
import json
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from graphjit.errors import GraphjitError, ParseError
from graphjit.ir.core import Block, Function, Location, Module, Operation, Region, Value
from graphjit.ir.ops import get_op
from graphjit.ir.printer import region_separator, scalars_to_array
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

_LEXER = re.compile(
    r"""
    (?P<skip>[ \t\r\n]+|//[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<type>tensor<[^<>\n]*>)
  | (?P<number>(?:-?(?:[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|[0-9]+|inf)|nan)(?![\w.]))
  | (?P<value>%\w+)
  | (?P<symbol>@[A-Za-z_][\w.$]*|@"(?:[^"\\\n]|\\.)*")
  | (?P<label>\^\w+)
  | (?P<ident>[A-Za-z_][\w.]*)
  | (?P<punct>->|[(){}\[\]<>,:=\#])
    """,
    re.VERBOSE,
)
_SHORTS = ", ".join(d.short for d in ALL_DTYPES)
_DIGITS = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass
class Token:
    kind: str  # a group name of _LEXER, or "eof"
    text: str
    line: int
    column: int


def parse(text: str | bytes) -> Module:
    """Parse a module: zero or more `func` definitions. Bytes must be UTF-8."""
    parser = _Parser(tokenize(_as_text(text)))
    try:
        return parser.module()
    except RecursionError:  # within MAX_NESTING, but called with little stack left
        raise parser.error("nesting too deep for the remaining Python stack") from None


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


def _unquote(tok: Token, text: str) -> str:
    try:
        return json.loads(text)
    except ValueError as e:
        raise ParseError(f"bad string literal {tok.text}: {e}", tok.line, tok.column) from None


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.pos = 0
        self.scopes: list[dict[str, list[Value]]] = []  # innermost block last
        self.defined: set[str] = set()  # every name defined in the current function
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
        found = "end of input" if self.tok.kind == "eof" else repr(self.tok.text)
        return self.error(f"expected {wanted} but found {found}")

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

    # ---- structure ----------------------------------------------------------------------

    def module(self) -> Module:
        module = Module()
        while self.tok.kind != "eof":
            self.expect("func")
            module.functions.append(self.function())
        return module

    def function(self) -> Function:
        tok = self.expect_kind("symbol", "a function name such as @main")
        name = _unquote(tok, tok.text[1:]) if tok.text[1:2] == '"' else tok.text[1:]
        self.defined = set()
        return Function(name, self.region(Block(self.typed_args())))

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
        name = tok.text
        if name in self.defined:
            raise self.error(f"value {name} is defined twice", tok)
        self.defined.add(name)
        self.scopes[-1][name] = values

    # ---- operations ---------------------------------------------------------------------

    def op(self, block: Block) -> None:
        start = self.tok
        result_tok, count = self.result_names()
        name_tok = self.expect_kind("ident", "an op name")
        try:
            opdef = get_op(name_tok.text)
        except GraphjitError:
            raise self.error(f"unknown op '{name_tok.text}'", name_tok) from None
        operands = self.operand_uses()
        attrs = self.attr_dict() if self.at("{") else {}
        self.expect(":")
        result_types = self.signature(name_tok.text, operands)
        if count != len(result_types):
            raise self.error(
                f"op '{name_tok.text}' names {count} result(s) but its type lists "
                f"{len(result_types)}",
                start,
            )
        loc = self.location() if self.at("loc") else None
        regions = self.regions(name_tok.text)
        try:
            attrs = opdef.normalize_attrs(attrs)
        except GraphjitError as e:
            raise self.error(e.raw_message, name_tok) from None
        op = block.append(Operation(name_tok.text, operands, result_types, attrs, regions, loc))
        if result_tok is not None:
            self.define(result_tok, op.results)

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

    def operand_uses(self) -> list[Value]:
        operands = []
        if self.tok.kind == "value":
            operands.append(self.use())
            while self.accept(","):
                operands.append(self.use())
        return operands

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
        """`(operand types)` then, if the op has results, `-> type` or `-> (types)`. The
        operand types repeat what the operands' definitions say; a disagreement means the
        text was edited inconsistently. Returns the result types."""
        start = self.tok
        operand_types = self.type_tuple()
        if len(operand_types) != len(operands):
            raise self.error(
                f"op '{op_name}' has {len(operands)} operand(s) but its type lists "
                f"{len(operand_types)}",
                start,
            )
        for i, (v, t) in enumerate(zip(operands, operand_types)):
            if v.type != t:
                raise self.error(f"operand #{i} of '{op_name}' has type {v.type}, not {t}", start)
        if not self.accept("->"):
            return []
        return self.type_tuple() if self.at("(") else [self.type()]

    def type_tuple(self) -> list:
        return self.sequence("(", ")", self.type)

    def location(self) -> Location:
        self.expect("loc")
        self.expect("(")
        file_tok = self.expect_kind("string", "a file name string")
        self.expect(":")
        line = self.index(self.expect_kind("number", "a line number"), "a line number")
        self.expect(")")
        return Location(_unquote(file_tok, file_tok.text), line)

    def regions(self, op_name: str) -> list[Region]:
        regions = []
        if not self.at("{"):
            return regions
        regions.append(self.region())
        while (
            self.at(region_separator(op_name, len(regions)))
            and self.tokens[self.pos + 1].text == "{"
        ):
            self.next()
            regions.append(self.region())
        return regions

    # ---- types --------------------------------------------------------------------------

    def type(self):
        if self.tok.kind == "type":
            return self.tensor_type(self.next())
        if self.at("list"):
            with self.nested("list types"):
                self.next()
                self.expect("<")
                elem = self.type()
                self.expect(">")
            return ListType(elem)
        raise self.error(f"expected a type but found {self.tok.text or 'end of input'!r}")

    def tensor_type(self, tok: Token) -> TensorType:
        *dims, short = tok.text[len("tensor<") : -1].split("x")
        dtype = self.dtype(short, tok)
        if not all(d == "?" or _DIGITS.fullmatch(d) for d in dims):
            raise self.error(f"bad dimensions in {tok.text}: use digits or ?", tok)
        if len(dims) > MAX_RANK:
            raise self.error(f"rank {len(dims)} exceeds the limit of {MAX_RANK}", tok)
        if any(d != "?" and (len(d) > 19 or int(d) > MAX_INDEX) for d in dims):
            raise self.error(f"a dimension of {tok.text[:80]} exceeds {MAX_INDEX}", tok)
        return TensorType(tuple(None if d == "?" else int(d) for d in dims), dtype)

    # ---- attributes ---------------------------------------------------------------------

    def attr_dict(self) -> dict:
        attrs: dict = {}
        for key_tok, key, value in self.sequence("{", "}", self.attr_entry):
            if key in attrs:
                raise self.error(f"attribute '{key}' given twice", key_tok)
            attrs[key] = value
        return attrs

    def attr_entry(self) -> tuple:
        key_tok = self.next()
        if key_tok.kind not in ("ident", "string"):
            raise self.error("expected an attribute name", key_tok)
        key = _unquote(key_tok, key_tok.text) if key_tok.kind == "string" else key_tok.text
        self.expect("=")
        return key_tok, key, self.attr_value()

    def attr_value(self):
        tok = self.tok
        if tok.kind == "number":
            return self.number(self.next())
        if tok.kind == "string":
            return _unquote(tok, self.next().text)
        if self.at("["):
            with self.nested("list attributes"):
                return tuple(self.sequence("[", "]", self.attr_value))
        words = {"none": None, "true": True, "false": False}
        if tok.kind == "ident" and tok.text in words:
            return words[self.next().text]
        if self.accept("dense"):
            return self.dense(tok)
        if self.accept("dtype"):
            return self.dtype_attr()
        raise self.error(f"bad attribute value {tok.text or 'end of input'!r}")

    def dtype_attr(self) -> DType:
        self.expect("<")
        tok = self.expect_kind("ident", "an element type")
        self.expect(">")
        return self.dtype(tok.text, tok)

    def dtype(self, short: str, tok: Token) -> DType:
        try:
            return dtype_from_short(short)
        except KeyError:
            raise self.error(f"bad element type {short!r} (use {_SHORTS})", tok) from None

    def dense(self, start: Token) -> np.ndarray:
        """`dense<literal> : type` or `dense<"base64"> : type`."""
        self.expect("<")
        body = self.next() if self.tok.kind == "string" else self.literal()
        self.expect(">")
        self.expect(":")
        type_tok = self.expect_kind("type", "the constant's tensor type")
        ttype = self.tensor_type(type_tok)
        if None in ttype.shape:
            raise self.error("a dense constant needs a static shape", type_tok)
        if isinstance(body, Token):
            return self.dense_bytes(body, ttype)
        shape, scalars = body
        if shape != ttype.shape:
            raise self.error(f"dense literal has shape {shape} but its type is {ttype}", start)
        self.check_scalars(scalars, ttype, start)
        try:
            with np.errstate(over="ignore"):
                array = scalars_to_array(scalars, ttype.dtype).reshape(shape)
        except (ValueError, OverflowError) as e:
            raise self.error(f"bad element in dense literal of {ttype}: {e}", start) from None
        if ttype.dtype.is_floating:
            finite = np.array([s not in ("inf", "-inf", "nan") for s in scalars])
            if np.any(finite & np.isinf(array.reshape(-1))):
                raise self.error(
                    f"bad element in dense literal of {ttype}: a finite float overflows", start
                )
        return array

    def check_scalars(self, scalars: list[str], ttype: TensorType, start: Token) -> None:
        """Integer elements within the element type's range (before NumPy sees them)."""
        if not ttype.dtype.is_integer:
            return
        info = np.iinfo(ttype.dtype.np)
        for s in scalars:
            if _INTEGER.fullmatch(s) and (len(s) > 21 or not info.min <= int(s) <= info.max):
                raise self.error(
                    f"bad element in dense literal of {ttype}: {s[:40]} is out of the range "
                    f"of {ttype.dtype.short} [{info.min}, {info.max}]",
                    start,
                )

    def dense_bytes(self, tok: Token, ttype: TensorType) -> np.ndarray:
        try:
            data = base64.b64decode(_unquote(tok, tok.text), validate=True)
        except ValueError as e:  # binascii.Error, or non-ASCII text
            raise self.error(f"bad base64 data: {e}", tok) from None
        little = ttype.dtype.np.newbyteorder("<")
        if len(data) != ttype.size * little.itemsize:
            raise self.error(f"{len(data)} bytes do not hold a {ttype}", tok)
        try:  # an empty array of gigantic dimensions is still too big for NumPy
            return np.frombuffer(data, dtype=little).astype(ttype.dtype.np).reshape(ttype.shape)
        except ValueError as e:
            raise self.error(f"cannot hold a {ttype}: {e}", tok) from None

    def literal(self) -> tuple[tuple, list[str]]:
        """A scalar or nested rectangular list: its shape and its elements in order."""
        if self.tok.kind == "number" or self.at("true") or self.at("false"):
            return (), [self.next().text]
        with self.nested("dense literals"):
            start = self.expect("[")
            parts = [self.literal()]
            while self.accept(","):
                parts.append(self.literal())
            self.expect("]")
        if any(shape != parts[0][0] for shape, _ in parts):
            raise self.error("dense literal rows differ in shape", start)
        return (len(parts),) + parts[0][0], [s for _, scalars in parts for s in scalars]

    def number(self, tok: Token) -> int | float:
        """An attribute's number: a Python int (of at most MAX_INT_DIGITS digits) or float;
        a float written finite must not overflow to infinity."""
        text = tok.text
        if _INTEGER.fullmatch(text):
            try:  # int() has its own limit, which a program may have set lower
                if len(text.lstrip("-")) <= MAX_INT_DIGITS:
                    return int(text)
            except ValueError:
                pass
            raise self.error(f"integer literal longer than {MAX_INT_DIGITS} digits", tok)
        value = float(text)
        if math.isinf(value) and "inf" not in text:
            raise self.error(f"float literal {text[:40]} is out of range", tok)
        return value
