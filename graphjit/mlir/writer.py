"""The text builder every emitter writes through: SSA names, indentation, MLIR types and
the few structural helpers (constants, `tensor.empty`, dimensions, casts, reshapes) that
more than one emitter needs."""

from __future__ import annotations

import numpy as np

from graphjit.errors import GraphjitError, RuntimeCheckError
from graphjit.ir.types import TensorType

# graphjit dtype name -> MLIR element type. MLIR's integers are signless (arith ops say
# whether they are signed), so only the signed types and bool map; uint8 has no entry.
ELEMENT_TYPES = {
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "int8": "i8",
    "int32": "i32",
    "int64": "i64",
    "bool": "i1",
}


class ExportError(GraphjitError):
    """A graph (or one of its ops) has no form in the upstream MLIR dialects."""


def element_type(dtype) -> str:
    try:
        return ELEMENT_TYPES[dtype.name]
    except KeyError:
        raise ExportError(f"dtype {dtype.name} has no upstream MLIR export") from None


def tensor_type(t) -> str:
    if not isinstance(t, TensorType):
        raise ExportError(f"type {t} has no upstream MLIR form (tensor lists do not export)")
    dims = "".join(("?" if d is None else str(d)) + "x" for d in t.shape)
    return f"tensor<{dims}{element_type(t.dtype)}>"


def with_shape(t: TensorType, shape) -> TensorType:
    return TensorType(tuple(shape), t.dtype)


CHECK_PREFIX = "graphjit check "  # what a cf.assert's message starts with, then its number


class Writer:
    """Lines of one function body. `names` maps graphjit values to their SSA names;
    `checks` holds the (message, op, error class) of each run-time check, numbered in
    order; with `check_numerics` every op's float results are checked (Session's flag).
    `own_math`: the (function, dtype name) pairs written in `arith` by graphjit
    (own_math.py) rather than as `math` ops, and `linalg_ext`: IREE's own
    `iree_linalg_ext` ops where upstream has none (a scan): the IREE backend's choices."""

    def __init__(
        self,
        check_numerics: bool = False,
        own_math: frozenset = frozenset(),
        linalg_ext: bool = False,
    ):
        self.check_numerics = check_numerics
        self.own_math = own_math
        self.linalg_ext = linalg_ext
        self.lines: list[str] = []
        self.depth = 2
        self.counter = 0
        self.names: dict = {}
        self.checks: list[tuple] = []
        self.pending: list[int] = []  # numbers of the checks not asserted yet
        self.flags: dict[int, str] = {}  # check number -> its flag

    # -- names and lines ---------------------------------------------------------------
    def fresh(self, hint: str = "v") -> str:
        self.counter += 1
        return f"%{hint}{self.counter}"

    def emit(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def op(self, text: str, hint: str = "v") -> str:
        """Emit `%name = text` and return the new name."""
        name = self.fresh(hint)
        self.emit(f"{name} = {text}")
        return name

    def name(self, value) -> str:
        return self.names[value]

    def check(self, flag: str, message: str, op, error=RuntimeCheckError) -> None:
        """A run-time check: `flag` is a tensor<1xi1>, true when it passes. It waits in
        `pending` until emit_checks.flush asserts the pending checks together; the
        runner raises `error(message, op=op)` for the first that fails (emit_checks'
        check_all and check_scalar make the flags)."""
        number = self.numbered(message, op, error)
        self.flags[number] = flag
        self.pending.append(number)

    def numbered(self, message: str, op, error=RuntimeCheckError) -> int:
        """The number of a new check (what the runner reads back from its cf.assert)."""
        self.checks.append((message, op, error))
        return len(self.checks) - 1

    def assert_(self, condition: str, number: int) -> None:
        """`cf.assert` for check `number`: "graphjit check k: its message" (the words
        serve whoever runs the exported module elsewhere)."""
        message = mlir_string(f"{CHECK_PREFIX}{number}: {self.checks[number][0]}")
        self.emit(f"cf.assert {condition}, {message}")

    # -- constants -----------------------------------------------------------------------
    def index(self, i: int) -> str:
        return self.op(f"arith.constant {i} : index", "c")

    def scalar(self, value, dtype) -> str:
        """A scalar constant of graphjit `dtype` (floats in hex: exact, NaN and inf too)."""
        elem = element_type(dtype)
        if dtype.is_bool:
            return self.op(f"arith.constant {'true' if value else 'false'}", "c")
        if dtype.is_floating:
            bits = np.asarray(value, dtype.np).view(f"u{dtype.np.itemsize}")
            return self.op(f"arith.constant 0x{int(bits):0{2 * dtype.np.itemsize}X} : {elem}", "c")
        return self.op(f"arith.constant {int(value)} : {elem}", "c")

    def tensor_constant(self, array: np.ndarray, t: TensorType) -> str:
        return self.op(f"arith.constant {dense(array, t)} : {tensor_type(t)}", "cst")

    # -- shapes ----------------------------------------------------------------------------
    def dim(self, ssa: str, t: TensorType, axis: int):
        """Dimension `axis` of `ssa`: an int when static, else an SSA index from tensor.dim."""
        if t.shape[axis] is not None:
            return t.shape[axis]
        return self.op(f"tensor.dim {ssa}, {self.index(axis)} : {tensor_type(t)}", "d")

    def empty(self, t: TensorType, dims: list) -> str:
        """`tensor.empty` of type `t`; `dims` gives each dimension (SSA names for `?`)."""
        dynamic = [d for d, s in zip(dims, t.shape, strict=True) if s is None]
        return self.op(f"tensor.empty({', '.join(dynamic)}) : {tensor_type(t)}", "e")

    def filled(self, t: TensorType, dims: list, value) -> str:
        """A tensor of type `t` whose every element is `value`."""
        init = self.scalar(value, t.dtype)
        out = self.empty(t, dims)
        ty = tensor_type(t)
        return self.op(
            f"linalg.fill ins({init} : {element_type(t.dtype)}) outs({out} : {ty}) -> {ty}"
        )

    def cast(self, ssa: str, source, target) -> str:
        """`ssa` as type `target` (tensor.cast between static and `?` dimensions)."""
        if tensor_type(source) == tensor_type(target):
            return ssa
        return self.op(f"tensor.cast {ssa} : {tensor_type(source)} to {tensor_type(target)}")

    def expand_units(self, ssa: str, source, target, axes, dims: list) -> str:
        """Insert unit axes: `target` is `source` with 1s at `axes`; `dims`: target's sizes."""
        groups = unit_groups(len(target.shape), axes)
        sizes = ", ".join(str(d) for d in dims)
        return self.op(
            f"tensor.expand_shape {ssa} {groups} output_shape [{sizes}] : "
            f"{tensor_type(source)} into {tensor_type(target)}"
        )

    def collapse_units(self, ssa: str, source, target, axes) -> str:
        """Drop unit axes: `target` is `source` without the 1s at `axes`."""
        groups = unit_groups(len(source.shape), axes)
        return self.op(
            f"tensor.collapse_shape {ssa} {groups} : {tensor_type(source)} into "
            f"{tensor_type(target)}"
        )

    def reshape(self, ssa: str, source: TensorType, target: TensorType) -> str:
        """A row-major reshape between static shapes: collapse to one axis, expand again."""
        if not (source.is_static and target.is_static):
            raise ExportError("a reshape exports only with known shapes: pass feed_dict")
        if tuple(source.shape) == tuple(target.shape):
            return ssa
        flat = with_shape(source, (int(np.prod(source.shape, dtype=np.int64)),))
        if not source.shape:  # a 0-d tensor grows its one axis: an expand, not a collapse
            ssa = self.op(
                f"tensor.expand_shape {ssa} [] output_shape [1] : {tensor_type(source)} into "
                f"{tensor_type(flat)}"
            )
        elif len(source.shape) != 1:
            groups = f"[[{', '.join(map(str, range(len(source.shape))))}]]"
            ssa = self.op(
                f"tensor.collapse_shape {ssa} {groups} : {tensor_type(source)} into "
                f"{tensor_type(flat)}"
            )
        if len(target.shape) == 1:
            return ssa
        if not target.shape:
            return self.op(
                f"tensor.collapse_shape {ssa} [] : {tensor_type(flat)} into {tensor_type(target)}"
            )
        groups = f"[[{', '.join(map(str, range(len(target.shape))))}]]"
        sizes = ", ".join(map(str, target.shape))
        return self.op(
            f"tensor.expand_shape {ssa} {groups} output_shape [{sizes}] : "
            f"{tensor_type(flat)} into {tensor_type(target)}"
        )


def mlir_string(text: str) -> str:
    """`text` as an MLIR string literal: quotes, backslashes and control characters as
    two-digit hex escapes."""
    escaped = "".join(f"\\{ord(c):02X}" if c in '"\\' or ord(c) < 32 else c for c in text)
    return f'"{escaped}"'


def unit_groups(rank: int, unit_axes) -> str:
    """The reassociation between a rank-`rank` shape and the same shape without its
    `unit_axes`: each kept axis takes the unit axes before it (the last takes those after)."""
    kept = [i for i in range(rank) if i not in set(unit_axes)]
    if not kept:
        return "[]"
    groups, pending = [], []
    for i in range(rank):
        pending.append(i)
        if i in kept:
            groups.append(pending)
            pending = []
    groups[-1].extend(pending)
    return "[" + ", ".join("[" + ", ".join(map(str, g)) + "]" for g in groups) + "]"


def dense(array: np.ndarray, t: TensorType) -> str:
    """A dense elements attribute: hex bytes for numbers (exact; NaN and inf included),
    literals for booleans."""
    array = np.asarray(array, t.dtype.np)
    if t.dtype.is_bool:
        if array.size and (array.all() or not array.any()):
            return f"dense<{'true' if array.flat[0] else 'false'}>"
        return f"dense<{_bool_literal(array)}>"
    if array.size and (array == array.flat[0]).all() and not np.isnan(array.flat[0]):
        array = array.flat[:1]  # a splat: one element
    return f'dense<"0x{np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes().hex().upper()}">'


def _bool_literal(array: np.ndarray) -> str:
    if array.ndim == 0:
        return "true" if array else "false"
    return "[" + ", ".join(_bool_literal(x) for x in array) + "]"
