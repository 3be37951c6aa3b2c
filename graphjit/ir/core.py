"""The IR's structure, shaped like MLIR: Module → Function → Region → Block → Operation.

Values are SSA: each is a result of one operation or an argument of one block. Regions of
control-flow ops may use values defined above them (captures).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from graphjit.ir.registry import OpDef, get_op

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Location:
    """The user's source line where an op was built."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def user_location() -> Location | None:
    """The innermost stack frame outside the graphjit package: the user's line."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and not filename.startswith("<frozen"):
            return Location(filename, frame.f_lineno)
        frame = frame.f_back
    return None


class Value:
    """An SSA value: a result of an operation or an argument of a block."""

    __slots__ = ("type", "owner", "index", "name_hint", "__weakref__")

    def __init__(self, type, owner, index: int, name_hint: str | None = None):
        self.type = type
        self.owner = owner  # Operation or Block
        self.index = index
        self.name_hint = name_hint

    @property
    def op(self) -> Operation | None:
        return self.owner if isinstance(self.owner, Operation) else None

    @property
    def shape(self) -> tuple:
        shape = self.type.shape
        if shape is None:
            raise self._unknown_rank()
        return shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _unknown_rank(self):
        from graphjit.errors import ShapeError  # (errors sits below the IR)

        return ShapeError(
            f"{self.name} has an unknown rank until it is fed (a placeholder with "
            "shape=None), and this needs its rank: give the placeholder a shape, with None "
            "for dimensions of any size ([None, None] for rank 2)",
            location=user_location(),
        )

    @property
    def name(self) -> str:
        op = self.op
        base = self.name_hint or (op.name if op else "arg")
        return f"{base}:{self.index}"

    def __repr__(self) -> str:
        return f"<gj.Value {self.name} {self.type}>"

    __hash__ = object.__hash__


class Operation:
    """One op: name, operands, results, attributes, regions, and where the user built it."""

    __slots__ = ("name", "operands", "results", "attrs", "regions", "loc", "parent", "__weakref__")

    def __init__(self, name, operands, result_types, attrs=None, regions=(), loc=None, names=None):
        self.name = name
        self.operands = list(operands)
        self.attrs = dict(attrs or {})
        self.regions = list(regions)
        for region in self.regions:
            region.parent = self
        self.loc = loc
        self.parent: Block | None = None
        names = names or [None] * len(result_types)
        self.results = [Value(t, self, i, n) for i, (t, n) in enumerate(zip(result_types, names))]

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise ValueError(f"op '{self.name}' has {len(self.results)} results, not one")
        return self.results[0]

    @property
    def opdef(self) -> OpDef:
        return get_op(self.name)

    def walk(self) -> Iterator[Operation]:
        """This op, then every op nested in its regions, in order."""
        yield self
        for region in self.regions:
            yield from region.walk()

    def __repr__(self) -> str:
        return f"<gj.Operation {self.name} at {self.loc}>"


class Block:
    """A list of ops with block arguments; the last op of a region's block is its terminator."""

    __slots__ = ("args", "ops", "parent")

    def __init__(self, arg_types=(), arg_names=None):
        names = arg_names or [None] * len(arg_types)
        self.args = [Value(t, self, i, n) for i, (t, n) in enumerate(zip(arg_types, names))]
        self.ops: list[Operation] = []
        self.parent: Region | None = None

    def append(self, op: Operation) -> Operation:
        op.parent = self
        self.ops.append(op)
        return op

    @property
    def terminator(self) -> Operation | None:
        return self.ops[-1] if self.ops else None

    def walk(self) -> Iterator[Operation]:
        for op in self.ops:
            yield from op.walk()


class Region:
    """A region holds one block (graphjit's control flow needs no CFG)."""

    __slots__ = ("blocks", "parent")

    def __init__(self, block: Block | None = None):
        self.blocks = [block or Block()]
        self.blocks[0].parent = self
        self.parent: Operation | None = None

    @property
    def block(self) -> Block:
        return self.blocks[0]

    def walk(self) -> Iterator[Operation]:
        for block in self.blocks:
            yield from block.walk()


@dataclass
class Function:
    """A function: its body region's block arguments are its parameters; `return` ends it."""

    name: str
    body: Region = field(default_factory=Region)

    @property
    def block(self) -> Block:
        return self.body.block

    @property
    def args(self) -> list[Value]:
        return self.block.args

    def walk(self) -> Iterator[Operation]:
        return self.body.walk()


@dataclass
class Module:
    functions: list[Function] = field(default_factory=list)

    def get(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def walk(self) -> Iterator[Operation]:
        for f in self.functions:
            yield from f.walk()


def defined_values(block: Block) -> set[Value]:
    """Every value defined in a block and the blocks nested inside it."""
    out = set(block.args)
    for op in block.ops:
        out.update(op.results)
        for region in op.regions:
            for inner in region.blocks:
                out |= defined_values(inner)
    return out


def captured_values(op: Operation) -> list[Value]:
    """Values used inside an op's regions but defined outside it, in first-use order."""
    inside: set[Value] = set()
    for region in op.regions:
        for block in region.blocks:
            inside |= defined_values(block)
    seen: dict[Value, None] = {}
    for region in op.regions:
        for inner in region.walk():
            for v in inner.operands:
                if v not in inside:
                    seen.setdefault(v, None)
    return list(seen)
