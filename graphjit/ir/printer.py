"""IR → MLIR text. The format is the contract the parser reads back exactly, and MLIR's
own parser accepts it (with unregistered dialects allowed; tests/ir/test_mlir_syntax.py).

    func.func @main(%arg0: tensor<?x3xf32>, %arg1: tensor<i1>) -> tensor<?x3xf32> {
      %0 = "gj.constant"() {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>} : () -> tensor<3xf32>
      %1 = "gj.mul"(%arg0, %0) : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
      %2:2 = "gj.split_like"(%1, %arg0, %arg0) {axis = 0} : (...) -> (tensor<?x3xf32>, ...)
      %3 = "gj.cond"(%arg1) ({
        "gj.yield"(%2#0) : (tensor<?x3xf32>) -> ()
      }, {
        "gj.yield"(%2#1) : (tensor<?x3xf32>) -> ()
      }) : (tensor<i1>) -> tensor<?x3xf32>
      %4 = "gj.while"(%3) ({
      ^bb0(%arg2: tensor<?x3xf32>):
        ...
        "gj.condition"(%5) : (tensor<i1>) -> ()
      }, {
      ^bb0(%arg3: tensor<?x3xf32>):
        "gj.yield"(%arg3) : (tensor<?x3xf32>) -> ()
      }) {max_iterations = 10} : (tensor<?x3xf32>) -> tensor<?x3xf32>
      func.return %4 : tensor<?x3xf32>
    }

Every op but the function's return prints in MLIR's generic form, the only form MLIR can
read for ops of a dialect it does not know, so the parser needs no per-op syntax: results,
the quoted name in the `gj` dialect, operands, regions, sorted attributes, `: (operand
types) -> result types`, an optional location. `func.func` and `func.return` are MLIR's
own ops in their custom form. Values are numbered per function in textual order; ops with
several results define `%2:2` and are used as `%2#1`; block arguments are `%argN`.

Attributes are MLIR attributes: integers, floats (NaN and the infinities as their bits in
hex, `0x7FF8000000000000 : f64`), strings, `true`/`false`, arrays `[...]`, dtypes as
types (`dtype = f32`), constants as `dense<...> : tensor<...>` (a literal, one element for
a splat, or the little-endian bytes in hex, `dense<"0x0000803F...">`), and None as `unit`;
an optional attribute (its default is None) that is None is left out, as MLIR leaves out
an unset optional attribute. Tensor lists are `!gj.list<tensor<...>>`.
"""

from __future__ import annotations

import math
import re
import struct

import numpy as np

from graphjit.errors import GraphjitError
from graphjit.ir.core import Block, Function, Module, Operation, Value
from graphjit.ir.ops import ENDS_FUNCTION, get_op
from graphjit.ir.types import DType, ListType, TensorType, as_dtype

DIALECT = "gj"  # graphjit's ops print as "gj.<name>"
RETURN_OP = "func.return"  # graphjit's `return` is MLIR's func.return
# Arrays up to this many elements print as literals; larger ones as hex of their bytes
# (a splat, all elements the same, prints as its one element whatever its size).
MAX_LITERAL_ELEMENTS = 16
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # an integer attribute without a type is i64
UNKNOWN_VALUE = "%<unknown>"  # a use of a value this function never defines (broken IR)
INDENT = "  "

_BARE_SYMBOL = re.compile(r"[A-Za-z_][\w.$]*\Z")
_BARE_KEY = re.compile(r"[A-Za-z_][\w.$]*\Z")
# Characters a string prints as they are; MLIR reads any other byte as `\XX` (hex).
_STRING_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def print_module(module: Module, locations: bool = False) -> str:
    """The module's functions, separated by blank lines."""
    return "\n".join(print_function(fn, locations) for fn in module.functions)


def print_function(fn: Function, locations: bool = False) -> str:
    printer = _Printer(fn.body.blocks, locations)
    printer.function(fn.name, fn.body.blocks)
    return printer.text()


def print_op_context(op: Operation, lines: int = 3, function: Function | None = None) -> str:
    """The function around `op`, `lines` lines either side, the op's line marked with `>`.

    Verifier errors use it so a reader sees the op in its surroundings. Without `function`
    the op's outermost block is printed (functions hold no back-pointer to themselves)."""
    blocks = function.body.blocks if function is not None else _root_blocks(op)
    if blocks is None:
        return f"> (op '{op.name}' is not in any block)"
    printer = _Printer(blocks, locations=False)
    printer.function(function.name if function is not None else "?", blocks)
    at = printer.op_lines.get(op)
    if at is None:
        return f"> (op '{op.name}' is not in the printed function)"
    lo, hi = max(0, at - lines), min(len(printer.lines), at + lines + 1)
    return "\n".join(("> " if i == at else "  ") + printer.lines[i] for i in range(lo, hi))


def print_region(block: Block) -> str:
    """A region's block as a function of its arguments, its values numbered from 0: two
    regions of the same ops, attributes and types print alike (the llvm backend keys its
    kernels by it)."""
    printer = _Printer([block], locations=False)
    printer.function("region", [block])
    return printer.text()


def value_names(fn: Function) -> dict[Value, str]:
    """How the printer spells each value of `fn` where it is used (`%3`, `%3#1`, `%arg0`)."""
    return _name_values(fn.body.blocks)


def mlir_op_name(name: str) -> str:
    """The MLIR name of a graphjit op: `func.return`, or the op in the gj dialect."""
    return RETURN_OP if name == "return" else f"{DIALECT}.{name}"


def _root_blocks(op: Operation) -> list[Block] | None:
    block = op.parent
    while block is not None and block.parent is not None and block.parent.parent is not None:
        block = block.parent.parent.parent
    if block is None:
        return None
    return block.parent.blocks if block.parent is not None else [block]


def _name_values(blocks: list[Block]) -> dict[Value, str]:
    """Numbers values in textual order: an op's results before the ops in its regions."""
    names: dict[Value, str] = {}
    counters = {"arg": 0, "op": 0}

    def visit(block: Block) -> None:
        for arg in block.args:
            names[arg] = f"%arg{counters['arg']}"
            counters["arg"] += 1
        for op in block.ops:
            if op.results:
                base = f"%{counters['op']}"
                counters["op"] += 1
                many = len(op.results) > 1
                for i, r in enumerate(op.results):
                    names[r] = f"{base}#{i}" if many else base
            for region in op.regions:
                for inner in region.blocks:
                    visit(inner)

    for block in blocks:
        visit(block)
    return names


class _Printer:
    """Accumulates lines and remembers which line each op starts on."""

    def __init__(self, blocks: list[Block], locations: bool):
        self.names = _name_values(blocks)
        self.locations = locations
        self.lines: list[str] = []
        self.op_lines: dict[Operation, int] = {}

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def function(self, name: str, blocks: list[Block]) -> None:
        args = self._arg_list(blocks[0].args)
        results = _function_results(blocks)
        self.lines.append(f"func.func {format_symbol(name)}({args}){results} {{")
        self._blocks(blocks, depth=1, first_has_label=False)
        self.lines.append("}")

    def _arg_list(self, args: list[Value]) -> str:
        return ", ".join(f"{self.names[a]}: {format_type(a.type)}" for a in args)

    def _blocks(self, blocks: list[Block], depth: int, first_has_label: bool) -> None:
        for i, block in enumerate(blocks):
            if i > 0 or (first_has_label and block.args):
                label = f"^bb{i}({self._arg_list(block.args)}):"
                self.lines.append(INDENT * (depth - 1) + label)
            for op in block.ops:
                self._op(op, depth)

    def _op(self, op: Operation, depth: int) -> None:
        indent = INDENT * depth
        self.op_lines[op] = len(self.lines)
        if ends_function(op):  # func.return: MLIR's own op, in its short form
            self.lines.append(indent + self._return(op))
            return
        head = indent + self._results(op) + self._generic_call(op)
        if not op.regions:
            self.lines.append(head + self._trailer(op))
            return
        self.lines.append(head + " ({")
        for i, region in enumerate(op.regions):
            if i:
                self.lines.append(indent + "}, {")
            self._blocks(region.blocks, depth + 1, first_has_label=True)
        self.lines.append(indent + "})" + self._trailer(op))

    def _results(self, op: Operation) -> str:
        """`%3 = `, `%3:2 = `, or nothing for an op without results."""
        if not op.results:
            return ""
        first = self.names[op.results[0]]
        n = len(op.results)
        return (first.split("#")[0] + f":{n}" if n > 1 else first) + " = "

    def _generic_call(self, op: Operation) -> str:
        return f'"{mlir_op_name(op.name)}"({self._uses(op.operands)})'

    def _uses(self, values: list[Value]) -> str:
        return ", ".join(self.names.get(v, UNKNOWN_VALUE) for v in values)

    def _trailer(self, op: Operation) -> str:
        """What follows the operands (and regions): attributes, signature, location."""
        attrs = printed_attrs(op)
        text = (" " + format_attr_dict(attrs) if attrs else "") + " : " + format_signature(op)
        return text + self._location(op)

    def _return(self, op: Operation) -> str:
        """func.return in its custom form: `func.return %0, %1 : tensor<f32>, tensor<i1>`."""
        text = RETURN_OP
        if op.operands:
            types = ", ".join(_operand_type(v) for v in op.operands)
            text += f" {self._uses(op.operands)} : {types}"
        return text + self._location(op)

    def _location(self, op: Operation) -> str:
        if not self.locations or op.loc is None:
            return ""
        return f" loc({format_string(op.loc.file)}:{op.loc.line})"


def ends_function(op: Operation) -> bool:
    """op is its function's terminator (func.return); False for an op the registry does not
    know (printed for the verifier's message about it)."""
    try:
        return op.opdef.has(ENDS_FUNCTION)
    except GraphjitError:
        return False


def _function_results(blocks: list[Block]) -> str:
    """` -> type` or ` -> (types)` from the body's return (func.func declares what its
    return returns); nothing for a function without results or without a return."""
    last = blocks[0].ops[-1] if blocks[0].ops else None
    if last is None or not ends_function(last) or not last.operands:
        return ""
    return " -> " + format_type_list([_operand_type(v) for v in last.operands])


def _operand_type(value) -> str:
    return format_type(getattr(value, "type", None))


def format_type(t) -> str:
    if isinstance(t, ListType):
        return f"!{DIALECT}.list<{format_type(t.elem)}>"
    return "?" if t is None else str(t)


def format_type_list(types: list[str]) -> str:
    """One type alone, several (or none) in parentheses: MLIR's result type list."""
    return types[0] if len(types) == 1 else f"({', '.join(types)})"


def format_symbol(name: str) -> str:
    return "@" + (name if _BARE_SYMBOL.match(name) else format_string(name))


def format_signature(op: Operation) -> str:
    """`(operand types) -> result types`, `-> ()` for an op without results."""
    operands = "(" + ", ".join(_operand_type(v) for v in op.operands) + ")"
    return f"{operands} -> " + format_type_list([format_type(r.type) for r in op.results])


def printed_attrs(op: Operation) -> dict:
    """The attributes the printer shows: all but the unset (None) optional ones."""
    try:
        defaults = get_op(op.name).attrs
    except GraphjitError:
        defaults = {}  # an unknown op (the printer also prints broken IR, for errors)
    return {
        k: v
        for k, v in op.attrs.items()
        if not (v is None and k in defaults and defaults[k] is None)
    }


def format_attr_dict(attrs: dict) -> str:
    items = []
    for key in sorted(attrs):
        spelled = key if _BARE_KEY.match(key) else format_string(key)
        items.append(f"{spelled} = {format_attr(attrs[key])}")
    return "{" + ", ".join(items) + "}"


def format_attr(value) -> str:
    """One attribute value. bool is tested before int because bool is an int."""
    if value is None:
        return "unit"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return format_int(int(value))
    if isinstance(value, (float, np.floating)):
        return format_float(float(value))
    if isinstance(value, str):
        return format_string(value)
    if isinstance(value, DType):
        return value.short
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        return format_dense(value)
    raise TypeError(f"cannot print attribute value {value!r} of type {type(value).__name__}")


def format_int(n: int) -> str:
    """An i64 bare (MLIR's default integer type); a wider one with a type wide enough."""
    if INT64_MIN <= n <= INT64_MAX:
        return str(n)
    return f"{n} : i{n.bit_length() + 1}"


def format_float(x: float) -> str:
    """An f64 attribute: repr round-trips every finite float; NaN and the infinities are
    their bits in hex with the type, as MLIR writes them."""
    if not math.isfinite(x):
        (bits,) = struct.unpack("<Q", struct.pack("<d", x))
        return f"0x{bits:016X} : f64"
    return decimal_float(repr(x))


def decimal_float(text: str) -> str:
    """A finite float's text with the `.` MLIR's float literals need (`1e-05` → `1.0e-05`)."""
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + e + exponent


def format_string(text: str) -> str:
    """An MLIR string literal: printable characters as they are, other bytes as `\\XX`."""
    out = []
    for ch in text:
        if ch in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            out.extend(f"\\{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return '"' + "".join(out) + '"'


def format_dense(array: np.ndarray) -> str:
    """`dense<literal> : type`: a splat's one element, a short array's nested elements, or
    the little-endian bytes of a long one in hex (`dense<"0x...">`), MLIR's three forms.
    An empty array is `dense<>`."""
    dtype = as_dtype(array.dtype)
    type_text = str(TensorType(array.shape, dtype))
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.size == 0:
        return f"dense<> : {type_text}"
    if is_splat(flat):
        return f"dense<{format_element(flat[:1])}> : {type_text}"
    if flat.size <= MAX_LITERAL_ELEMENTS:
        scalars = [format_element(flat[i : i + 1]) for i in range(flat.size)]
        return f"dense<{_nest(scalars, array.shape)}> : {type_text}"
    data = flat.astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
    return f'dense<"0x{data.hex().upper()}"> : {type_text}'


def is_splat(flat: np.ndarray) -> bool:
    """Every element has the same bytes (so -0.0 and 0.0, or two NaNs, are not a splat)."""
    if flat.size < 2:
        return False
    raw = flat.view(np.dtype(f"V{flat.dtype.itemsize}"))
    return bool(np.all(raw == raw[0]))


def format_element(one: np.ndarray) -> str:
    """The element of a one-element array: the shortest text that reads back as its very
    bits, or (NaN, infinities) its bits in hex, as MLIR writes them."""
    dtype = as_dtype(one.dtype)
    x = one[0]
    if dtype.is_bool:
        return "true" if x else "false"
    if dtype.is_integer:
        return str(int(x))
    if not np.isfinite(np.float32(x) if dtype.np.kind == "V" else x):
        bits = int(one.view(np.dtype(f"<u{one.dtype.itemsize}"))[0])
        return f"0x{bits:0{2 * one.dtype.itemsize}X}"
    return decimal_float(_shortest(x, dtype))


def _shortest(x, dtype: DType) -> str:
    if dtype.np in (np.float32, np.float16):
        return str(x)  # NumPy's shortest text that reads back as this float32 or float16
    return repr(float(x))  # float64, and bfloat16 through float64


def scalars_to_array(scalars: list[str], dtype: DType) -> np.ndarray:
    """Reads literal elements back (the parser's half of format_element): decimal text, or
    a float's bits in hex."""
    if dtype.is_bool:
        if any(s not in ("true", "false") for s in scalars):
            raise ValueError("boolean elements are spelled true or false")
        return np.array([s == "true" for s in scalars], dtype=np.bool_)
    if dtype.is_integer:
        return np.array([int(s) for s in scalars], dtype=dtype.np)
    out = np.array([0.0 if s.startswith("0x") else float(s) for s in scalars], dtype=dtype.np)
    bits = out.view(np.dtype(f"<u{dtype.np.itemsize}"))
    for i, s in enumerate(scalars):
        if s.startswith("0x"):
            bits[i] = int(s, 16)
    return out


def _nest(scalars: list[str], shape: tuple) -> str:
    if not shape:
        return scalars[0]
    step = len(scalars) // shape[0]
    rows = [_nest(scalars[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
    return "[" + ", ".join(rows) + "]"
