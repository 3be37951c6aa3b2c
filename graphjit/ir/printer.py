"""IR → MLIR-like text. The format is the contract the parser reads back exactly.

    func @main(%arg0: tensor<?x3xf32>) {
      %0 = constant {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>} : () -> tensor<3xf32>
      %1 = mul %arg0, %0 : (tensor<?x3xf32>, tensor<3xf32>) -> tensor<?x3xf32>
      %2:2 = split_like %1, %arg0, %arg0 {axis = 0} : (...) -> (tensor<?x3xf32>, ...)
      %3 = cond %p : (tensor<i1>) -> tensor<f32> {
        yield %x : (tensor<f32>)
      } else {
        yield %y : (tensor<f32>)
      }
      %4:2 = while %i, %x {max_iterations = none} : (...) -> (...) {
      ^bb0(%arg1: tensor<i32>, %arg2: tensor<f32>):
        condition %5 : (tensor<i1>)
      } do {
      ^bb0(%arg3: tensor<i32>, %arg4: tensor<f32>):
        yield %arg3, %arg4 : (tensor<i32>, tensor<f32>)
      }
      return %1 : (tensor<?x3xf32>)
    }

Every op prints in one generic form, so the parser needs no per-op syntax: results, name,
operands, sorted attributes, `: (operand types) -> result types`, an optional location,
then regions. Values are numbered per function in textual order; ops with several
results define `%2:2` and are used as `%2#1`; block arguments are `%argN`.
"""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np

from graphjit.errors import GraphjitError
from graphjit.ir.core import Block, Function, Module, Operation, Value
from graphjit.ir.ops import get_op
from graphjit.ir.types import DType, TensorType, as_dtype

DEFAULT_REGION_SEPARATOR = ","  # between regions of ops that declare no keyword: `}, {`


def region_separator(op_name: str, i: int) -> str:
    """The word before region i of an op (`} else {`): its OpDef's region_keywords, or a
    comma (unknown ops too: the printer also prints broken IR, for error messages)."""
    try:
        keywords = get_op(op_name).region_keywords
    except GraphjitError:
        keywords = ()
    return keywords[i - 1] if i - 1 < len(keywords) else DEFAULT_REGION_SEPARATOR


# Arrays up to this many elements print as literals; larger ones as base64 of their bytes.
MAX_LITERAL_ELEMENTS = 16
UNKNOWN_VALUE = "%<unknown>"  # a use of a value this function never defines (broken IR)
INDENT = "  "

_BARE_SYMBOL = re.compile(r"[A-Za-z_][\w.$]*\Z")
_BARE_KEY = re.compile(r"[A-Za-z_]\w*\Z")


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


def value_names(fn: Function) -> dict[Value, str]:
    """How the printer spells each value of `fn` where it is used (`%3`, `%3#1`, `%arg0`)."""
    return _name_values(fn.body.blocks)


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
        self.lines.append(f"func {format_symbol(name)}({args}) {{")
        self._blocks(blocks, depth=1, first_has_label=False)
        self.lines.append("}")

    def _arg_list(self, args: list[Value]) -> str:
        return ", ".join(f"{self.names[a]}: {a.type}" for a in args)

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
        head = indent + self._header(op)
        if not op.regions:
            self.lines.append(head)
            return
        self.lines.append(head + " {")
        for i, region in enumerate(op.regions):
            if i:
                separator = region_separator(op.name, i)
                joint = "}, {" if separator == "," else f"}} {separator} {{"
                self.lines.append(indent + joint)
            self._blocks(region.blocks, depth + 1, first_has_label=True)
        self.lines.append(indent + "}")

    def _header(self, op: Operation) -> str:
        parts = []
        if op.results:
            first = self.names[op.results[0]]
            n = len(op.results)
            parts.append((first.split("#")[0] + f":{n}" if n > 1 else first) + " =")
        parts.append(op.name)
        if op.operands:
            parts.append(", ".join(self.names.get(v, UNKNOWN_VALUE) for v in op.operands))
        if op.attrs:
            parts.append(format_attr_dict(op.attrs))
        parts.append(":")
        parts.append(format_signature(op))
        if self.locations and op.loc is not None:
            parts.append(f"loc({json.dumps(op.loc.file)}:{op.loc.line})")
        return " ".join(parts)


def format_symbol(name: str) -> str:
    return "@" + (name if _BARE_SYMBOL.match(name) else json.dumps(name))


def format_signature(op: Operation) -> str:
    """`(operand types) -> result types`; ops without results drop the arrow."""
    operands = "(" + ", ".join(str(getattr(v, "type", "?")) for v in op.operands) + ")"
    results = [str(r.type) for r in op.results]
    if not results:
        return operands
    return f"{operands} -> " + (results[0] if len(results) == 1 else f"({', '.join(results)})")


def format_attr_dict(attrs: dict) -> str:
    items = []
    for key in sorted(attrs):
        spelled = key if _BARE_KEY.match(key) else json.dumps(key)
        items.append(f"{spelled} = {format_attr(attrs[key])}")
    return "{" + ", ".join(items) + "}"


def format_attr(value) -> str:
    """One attribute value. bool is tested before int because bool is an int."""
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_float(float(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, DType):
        return f"dtype<{value.short}>"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        return format_dense(value)
    raise TypeError(f"cannot print attribute value {value!r} of type {type(value).__name__}")


def format_float(x: float) -> str:
    """repr round-trips every finite float; nan and the infinities get bare words."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def format_dense(array: np.ndarray) -> str:
    """`dense<literal> : type`, or `dense<"base64"> : type` where a literal is too long or
    would not read back to the very same bytes (NaN payloads, say)."""
    dtype = as_dtype(array.dtype)
    type_text = str(TensorType(array.shape, dtype))
    if 0 < array.size <= MAX_LITERAL_ELEMENTS:
        scalars = [_format_scalar(x, dtype) for x in array.reshape(-1).tolist()]
        if scalars_to_array(scalars, dtype).tobytes() == array.tobytes():
            return f"dense<{_nest(scalars, array.shape)}> : {type_text}"
    data = np.ascontiguousarray(array, dtype=dtype.np.newbyteorder("<")).tobytes()
    return f'dense<"{base64.b64encode(data).decode("ascii")}"> : {type_text}'


def _format_scalar(x, dtype: DType) -> str:
    if dtype.is_bool:
        return "true" if x else "false"
    if dtype.is_integer:
        return str(int(x))
    if dtype.np == np.float32 and math.isfinite(x):
        return str(np.float32(x))  # the shortest text that reads back as this float32
    return format_float(x)


def scalars_to_array(scalars: list[str], dtype: DType) -> np.ndarray:
    """Reads literal elements back; shared with the parser so the printer can check that
    a literal round-trips before choosing it."""
    if dtype.is_bool:
        if any(s not in ("true", "false") for s in scalars):
            raise ValueError("boolean elements are spelled true or false")
        return np.array([s == "true" for s in scalars], dtype=np.bool_)
    if dtype.is_integer:
        return np.array([int(s) for s in scalars], dtype=dtype.np)
    return np.array([float(s) for s in scalars], dtype=dtype.np)


def _nest(scalars: list[str], shape: tuple) -> str:
    if not shape:
        return scalars[0]
    step = len(scalars) // shape[0]
    rows = [_nest(scalars[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
    return "[" + ", ".join(rows) + "]"
