"""The state of one import of upstream MLIR (see importer.py): which graphjit value each
MLIR value became, the block new ops go to, the op being read (for locations and errors),
and the helpers every family of import rules shares: types, creating ops, and tensors
whose contents nothing has needed yet.

Scalars (`f32`, `i1`, `index`) are read as 0-d tensors, so one rule serves an `arith` op
on scalars, on tensors and in a `linalg.generic` body; `index` is int64."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from graphjit.errors import GraphjitError, ParseError
from graphjit.ir import builder
from graphjit.ir.core import Block, Location, Value
from graphjit.ir.patterns import constant_value
from graphjit.ir.types import TensorType, dtype_from_short, int64

SOURCE = "<mlir>"  # the file name of imported ops' locations (their line is the text's)


class MLIRImportError(ParseError):
    """Upstream MLIR text graphjit does not read: malformed, or an op outside the subset it
    imports (docs/mlir.md). Carries the line and column of the op where there is one."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        if line is None:
            self.line = self.column = None
            GraphjitError.__init__(self, message)
        else:
            super().__init__(message, line, column)


_FILE_LINE_COLUMN = re.compile(r'^loc\(".*":(\d+):(\d+)\)$')


def line_and_column(location) -> tuple[int | None, int | None]:
    """Where an MLIR location points in the text; (None, None) for an unknown one."""
    m = _FILE_LINE_COLUMN.match(str(location))
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def element_dtype(text: str):
    if text == "index":
        return int64
    try:
        return dtype_from_short(text)
    except KeyError:
        raise GraphjitError(f"element type {text} has no graphjit dtype") from None


def tensor_type(mlir_type) -> TensorType:
    """An MLIR tensor or scalar type as graphjit's (a scalar is a 0-d tensor)."""
    text = str(mlir_type)
    if not text.startswith("tensor<"):
        return TensorType((), element_dtype(text))
    *dims, element = text[len("tensor<") : -1].split("x")
    if dims == ["*"]:
        return TensorType(None, element_dtype(element))
    return TensorType(tuple(None if d == "?" else int(d) for d in dims), element_dtype(element))


@dataclass
class Pending:
    """A tensor whose contents no op has read yet: `tensor.empty` (`fill` None: undefined,
    zeros once needed) or one scalar everywhere (`linalg.fill`, `tensor.splat`). Matmuls and
    reductions take such a fill as their starting value without building it."""

    type: TensorType
    dims: list  # per axis: its size, or the index value (from tensor.dim) that sizes it
    fill: Value | None = None
    block: Block | None = None  # where it was defined: it is built there when first read


@dataclass
class Deferred:
    """A value built only if something reads it (`make() -> Value`): the output operand of
    a linalg op inside its body, or a value that must not be read (make raises)."""

    make: object


class Importer:
    """Reads MLIR ops into graphjit ops through `rules` (MLIR op name -> rule(im, op) ->
    one graphjit value or Pending per result)."""

    def __init__(self, rules: dict, ir):
        self.rules = rules
        self.ir = ir  # iree.compiler.ir, MLIR's Python bindings
        self.env: dict = {}  # MLIR value -> graphjit Value | Pending | Deferred
        self.block: Block | None = None  # where new ops go
        self.op = None  # the MLIR op being read
        self.loop = None  # the loop space of the linalg body being read (import_linalg)
        self.dim_sources: dict = {}  # index value of a tensor.dim -> (tensor, axis)

    # ---- errors and locations ---------------------------------------------------------

    def where(self, op=None) -> tuple[int | None, int | None]:
        op = op or self.op
        return line_and_column(op.location) if op is not None else (None, None)

    def error(self, message: str, op=None) -> MLIRImportError:
        return MLIRImportError(message, *self.where(op))

    def unsupported(self, what: str, op=None) -> MLIRImportError:
        return self.error(f"{what} is not in the upstream subset graphjit imports", op)

    def location(self) -> Location | None:
        line = self.where()[0]
        return None if line is None else Location(SOURCE, line)

    # ---- reading ops ------------------------------------------------------------------

    def read_block(self, block, args: list, skip=frozenset()):
        """Bind `block`'s arguments to `args`, read its ops into self.block (but those
        whose first result is in `skip`) and return its terminator, unread."""
        for arg, value in zip(block.arguments, args, strict=True):
            self.env[arg] = value
        ops = [op.operation for op in block.operations]
        for op in ops[:-1]:
            if not (op.results and op.results[0] in skip):
                self.read_op(op)
        return ops[-1]

    def read_op(self, op) -> None:
        rule = self.rules.get(op.name)
        if rule is None:
            raise self.unsupported(f"op '{op.name}'", op)
        outer, self.op = self.op, op
        try:
            for result, value in zip(op.results, rule(self, op), strict=True):
                self.env[result] = self._checked(value, result.type)
        except MLIRImportError:
            raise
        except GraphjitError as e:
            raise self.error(f"op '{op.name}' does not import: {e.raw_message}") from None
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
            # (a form of the op the rule does not expect: never a bare Python error)
            raise self.error(f"op '{op.name}' does not import: {type(e).__name__}: {e}") from None
        finally:
            self.op = outer

    def _checked(self, value, mlir_type):
        if isinstance(value, Pending):
            value.block = self.block
            return value
        return self.conform(value, mlir_type)

    @contextmanager
    def into(self, block: Block):
        outer, self.block = self.block, block
        try:
            yield block
        finally:
            self.block = outer

    # ---- values -------------------------------------------------------------------------

    def value(self, mlir_value) -> Value:
        """The graphjit value of an MLIR value, building it if it is pending or deferred."""
        value = self.env[mlir_value]
        if isinstance(value, Pending):
            with self.into(value.block):  # (not in a region read since: it may be used after)
                value = self.env[mlir_value] = self.materialize(value)
        elif isinstance(value, Deferred):
            value = self.env[mlir_value] = value.make()
        return value

    def values(self, mlir_values) -> list[Value]:
        return [self.value(v) for v in mlir_values]

    def pending(self, mlir_value) -> Pending | None:
        value = self.env[mlir_value]
        return value if isinstance(value, Pending) else None

    def unreadable(self, what: str) -> Deferred:
        """A value whose reading is `what` graphjit does not import."""

        def fail():
            raise self.unsupported(what)

        return Deferred(fail)

    def create(self, name: str, operands=(), regions=(), **attrs):
        """The op `name` in self.block; its one result (or the op when it has others)."""
        op = builder.create(name, operands, attrs, regions, block=self.block, loc=self.location())
        return op.results[0] if len(op.results) == 1 else op

    def constant(self, array) -> Value:
        return self.create("constant", value=np.asarray(array))

    def cast(self, value: Value, dtype) -> Value:
        return (
            value if value.type.dtype == dtype else self.create("cast", [value], dtype=dtype.name)
        )

    def conform(self, value: Value, mlir_type, exact: bool = False) -> Value:
        """`value` with the type MLIR declares: dimensions MLIR knows and graphjit's rule
        left unknown are fixed with a shape_invariant; `exact` also forgets what MLIR
        declares unknown (a tensor.cast, a loop's carried type). Inside a linalg body the
        values span the loop space, so only the dtype must agree."""
        want, have = tensor_type(mlir_type), value.type
        if have == want:
            return value
        if not self._agree(have, want):  # (a rule's mistake, or a form it misread)
            raise self.error(f"reads as {have}, but MLIR declares {want}")
        if self.loop is not None or None in (have.shape, want.shape):
            return value
        shape = tuple(w if exact or h is None else h for h, w in zip(have.shape, want.shape))
        return (
            value if shape == have.shape else self.create("shape_invariant", [value], shape=shape)
        )

    def _agree(self, have: TensorType, want: TensorType) -> bool:
        if have.dtype != want.dtype:
            return False
        if self.loop is not None or None in (have.shape, want.shape):
            return True
        return len(have.shape) == len(want.shape) and all(
            h is None or w is None or h == w for h, w in zip(have.shape, want.shape)
        )

    # ---- pending tensors ------------------------------------------------------------------

    def materialize(self, pending: Pending) -> Value:
        """A pending tensor built: its fill (zeros for tensor.empty) broadcast to its static
        dimensions, then to each dynamic one through the tensor its tensor.dim read."""
        t = pending.type
        fill = pending.fill if pending.fill is not None else self.constant(np.zeros((), t.dtype.np))
        fill = self.cast(fill, t.dtype)
        static = tuple(d if isinstance(d, int) else 1 for d in pending.dims)
        if fill.type.shape != static:
            fill = self.create("broadcast_to", [fill], shape=static)
        for axis, size in enumerate(pending.dims):
            if not isinstance(size, int):
                reference = self.axis_reference(size, axis, len(static))
                fill = self.create("broadcast_like", [fill, reference])
        return fill

    def axis_reference(self, size: Value, axis: int, rank: int) -> Value:
        """A rank-`rank` tensor of 1s but at `axis`, whose size there is `size` (one axis of
        the tensor `size` was read from)."""
        if size not in self.dim_sources:
            raise self.unsupported("a tensor sized by computed index arithmetic")
        x, source_axis = self.dim_sources[size]
        spec = tuple(
            (None, None, None) if i == source_axis else (None, 1, None) for i in range(x.type.rank)
        )
        line = self.create("slice", [x], spec=spec) if x.type.rank > 1 else x
        return self.create(
            "reshape", [line], shape=tuple(-1 if i == axis else 1 for i in range(rank))
        )

    def is_fill_of(self, pending: Pending, number) -> bool:
        """Whether a pending tensor holds `number` everywhere (an empty one counts: its
        contents are undefined, so any starting value is right)."""
        if pending.fill is None:
            return True
        value = constant_value(pending.fill)
        return value is not None and bool(np.all(value == number))


def static_ints(attr) -> list[int]:
    """A DenseI64ArrayAttr (offsets, sizes, permutation, dimensions) as Python ints."""
    return [int(v) for v in attr]
