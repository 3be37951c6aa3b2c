"""memory: bufferization, liveness, buffer reuse and in-place updates.

`plan_memory(fn)` gives each tensor value computed outside fused kernels a `Buffer`
(arguments and constants have none, tensor lists live outside the plan); the `PlanMemory`
pass attaches the plan as `fn.memory_plan` for the code generators.

Kinds. "arena": scratch at `offset` in one 64-byte aligned arena per run. "output": a
returned value, in an allocation of its own per run (a returned view is a copy). "alias":
shares the storage of `alias_of` (views: reshape, expand_dims, squeeze, reshape_like,
check_numerics; a while's body arguments and results share the loop-carried buffer of its
before-region argument). "variable": written into the storage of the argument `variable`.
Control flow: a while copies its operands into the carried buffers on entry and its yield
copies into them (reading first those operands that live in carried buffers: a parallel
copy); a returned while result is copied out; cond branches' yields copy into the results.

Liveness follows program order: every op of the top-level block and of cond/while regions
gets a position, a region op one before and one after its regions. A value lives from its
op to its last read; a read inside a region op of a value defined outside it counts at
the end of that op (a loop reads it again next iteration); carried buffers live for the
whole loop; operands read for their shape alone keep nothing alive. A storage (a value
and its aliases) lives from its first definition to its members' last read; storages
whose lives overlap never share bytes.

In place. A fused kernel without reductions (or an elementwise op) writes an output over
an input of the same type that it reads only pointwise when that storage's last read is
this op (`reuses`): the backend loads element i of its inputs before storing element i of
its outputs, in one loop nest, and does not mark the pair noalias. Other ops declare such
pairs in the registry (`OpDef.overwrites`: a gemm writes over its accumulator, which BLAS
reads and writes in place). In a loop body, a kernel that makes carried value j from body
argument j (read last there) writes straight into carried buffer j, so the yield copies
nothing.
An `assign`'s value is computed straight into the variable (the assign is then a no-op)
when it is the variable's only assign, its result is returned once, its value is made by
an op that would otherwise write an arena buffer and is not returned itself, and no read
of the variable's old value comes after that op (or only that op reads it, in place).

Row groups. A backend may run consecutive kernels row by row together, each in turn on
row r before any goes on to row r + 1 (the llvm backend's row chains: a softmax's or a
layer norm's kernels, so that a row read from memory once stays in cache for all of
them). It plans with `plan_memory(fn, row_groups)`: every value a group's ops read or
write lives over the whole group, so no two of them share bytes -- except an output a
member writes over an input in place, which is safe row for row when both are row-local
(`RowGroup.row_local`: read and written only row by row by every member) and the input
is read last by that member.

Offsets: greedy first fit by decreasing size, 64-byte aligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cmp_to_key

from graphjit.ir.core import Block, Function, Operation, Value
from graphjit.ir.ops import (
    CONSTANT,
    ENDS_FUNCTION,
    INDEX_MAP,
    KERNEL,
    REDUCTION,
    STATE_UPDATE,
    VIEW,
)
from graphjit.ir.printer import value_names
from graphjit.ir.symbolic import hint, is_symbolic, known_at_least, round_up, size_key
from graphjit.ir.types import TensorType
from graphjit.passes.manager import Pass

ARENA, OUTPUT, ALIAS, VARIABLE = "arena", "output", "alias", "variable"
_ARG, _CONST = "arg", "const"  # storages the plan does not allocate
ALIGNMENT = 64


@dataclass(frozen=True)
class Buffer:
    """Where one value lives. `offset` is the byte offset in the arena (kind "arena", or an
    alias of arena storage); None elsewhere, and when shapes are not known."""

    offset: int | None
    nbytes: int | None
    kind: str
    alias_of: Value | None = None  # alias: the value whose storage this one views
    reuses: Value | None = None  # the op's input whose bytes this output overwrites
    variable: Value | None = None  # variable: the function argument written in place


@dataclass
class MemoryPlan:
    """Every planned value's Buffer, in program order, and the arena's size."""

    buffers: dict[Value, Buffer]
    arena_bytes: int | None  # None while some planned shape is unknown
    unplanned_bytes: int | None  # one buffer per non-alias value, outputs included
    peak_live_bytes: int | None  # most arena bytes live at one point: a lower bound
    alignment: int = ALIGNMENT
    names: dict[Value, str] = field(default_factory=dict, repr=False)

    def of_kind(self, kind: str) -> list[Value]:
        return [v for v, b in self.buffers.items() if b.kind == kind]

    def arena_offsets(self) -> dict[Value, int]:
        """Value → byte offset, for every value whose bytes are in the arena (aliases too)."""
        return {v: b.offset for v, b in self.buffers.items() if b.offset is not None}

    @property
    def in_place(self) -> dict[Value, Value]:
        """Output → the input whose bytes it overwrites."""
        return {v: b.reuses for v, b in self.buffers.items() if b.reuses is not None}

    def describe(self) -> str:
        """A table: value, op, bytes, offset, kind, and what it shares or overwrites."""
        rows = [("value", "op", "bytes", "offset", "kind", "note")]
        rows += [self._row(v, b) for v, b in self.buffers.items()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if self.arena_bytes is None:
            return "\n".join(lines + ["arena size unknown until shapes are known"])
        saved = 1 - self.arena_bytes / self.unplanned_bytes if self.unplanned_bytes else 0.0
        lines.append(
            f"arena {self.arena_bytes} bytes, one buffer per value {self.unplanned_bytes} bytes"
            f" ({saved:.0%} saved), peak live {self.peak_live_bytes} bytes"
        )
        return "\n".join(lines)

    def _row(self, v: Value, b: Buffer) -> tuple:
        notes = [
            f"{label} {self.names.get(w, '?')}"
            for label, w in (("views", b.alias_of), ("into", b.variable), ("over", b.reuses))
            if w is not None
        ]
        op = v.op.name if v.op is not None else f"{v.owner.parent.parent.name} arg"
        offset = "-" if b.offset is None else str(b.offset)
        return (self.names.get(v, v.name), op, str(b.nbytes), offset, b.kind, ", ".join(notes))


@dataclass(frozen=True)
class RowGroup:
    """Consecutive ops of one block that a backend runs row by row together; `row_local`:
    the values that every one of them touching it reads or writes only row by row."""

    ops: tuple
    row_local: frozenset


class PlanMemory(Pass):
    name = "memory"

    def run(self, fn: Function) -> None:
        fn.memory_plan = plan_memory(fn)


def plan_memory(fn: Function, row_groups=()) -> MemoryPlan:
    """The memory plan of `fn` (pure analysis: the IR is not changed), for a backend that
    runs each of `row_groups` row by row (see RowGroup)."""
    return _Planner(fn, row_groups).plan()


def nbytes(v: Value) -> int | None:
    size = v.type.size
    return None if size is None else size * v.type.dtype.np.itemsize


def data_operands(op: Operation) -> list[Value]:
    """The operands whose data `op` reads (not those it reads for their shape alone)."""
    if op.opdef.has(KERNEL):
        body = op.regions[0].block
        read = {v for inner in body.ops for v in data_operands(inner)}
        return [v for v, a in zip(op.operands, body.args) if a in read]
    skip = op.opdef.shape_only_operands(len(op.operands))
    return [v for i, v in enumerate(op.operands) if i not in skip]


def in_place_pairs(op: Operation) -> list[tuple[int, int]]:
    """(result index, operand index) pairs where the result may overwrite the operand:
    same static type, the operand read only at the element being written."""
    if op.opdef.has(KERNEL):
        body = op.regions[0].block
        if any(inner.opdef.has(REDUCTION) for inner in body.ops):
            return []  # a backend may re-read inputs in several loop nests
        produced = {r for inner in body.ops for r in inner.results}
        outs = [j for j, y in enumerate(body.terminator.operands) if y in produced]
        ins = [i for i, a in enumerate(body.args) if _read_pointwise(a, body)]
        pairs = [(j, i) for j in outs for i in ins]
    elif op.opdef.elementwise and not op.regions:
        pairs = [(j, i) for j in range(len(op.results)) for i in range(len(op.operands))]
    else:
        pairs = op.opdef.overwrites  # declared by the op (a gemm's accumulator)
    return [
        (j, i)
        for j, i in pairs
        if _is_tensor(op.results[j])
        and op.results[j].type == op.operands[i].type
        and op.results[j].type.is_static
    ]


def _read_pointwise(arg: Value, body: Block) -> bool:
    users = [op for op in body.ops if arg in op.operands]
    return bool(users) and all(
        (op.opdef.elementwise or op.opdef.has(INDEX_MAP))
        and all(r.type.shape == arg.type.shape for r in op.results)
        for op in users
    )


def _is_tensor(v: Value) -> bool:
    return isinstance(v.type, TensorType)


class _Planner:
    def __init__(self, fn: Function, row_groups=()):
        self.fn = fn
        self.row_groups = row_groups
        self.group_of = {op: g for g in row_groups for op in g.ops}
        self.start: dict[Operation, int] = {}
        self.end: dict[Operation, int] = {}
        self.defined: dict[Value, int] = {}
        self.last_read: dict[Value, int] = {}
        self.scope: dict[Value, tuple] = {}  # the region ops enclosing a value's definition
        self.order: list[Value] = []  # every value, in program order
        self.ops: list[Operation] = []  # every op outside fused kernels, in program order
        self.root: dict[Value, Value] = {}  # union-find over storages
        self.members: dict[Value, list[Value]] = {}
        self.kind: dict[Value, str] = {}  # storage root -> kind
        self.alias_of: dict[Value, Value] = {}
        self.reuses: dict[Value, Value] = {}
        self.variable: dict[Value, Value] = {}
        self.ticks = 0

    def plan(self) -> MemoryPlan:
        for arg in self.fn.args:
            self._define(arg, 0, ())
        self._number(self.fn.block, ())
        self._record_reads(self.fn.block, ())
        self._make_storages()
        self._variables_in_place()
        self._loop_results_in_place()
        self._kernels_in_place()
        self._extend_over_row_groups()
        return self._result()

    # -- liveness -------------------------------------------------------------------------
    def _define(self, v: Value, pos: int, scope: tuple) -> None:
        self.defined[v] = self.last_read[v] = pos
        self.scope[v] = scope
        self.order.append(v)

    def _number(self, block: Block, scope: tuple) -> None:
        for op in block.ops:
            self.ops.append(op)
            self.ticks += 1
            self.start[op] = pos = self.ticks
            nested = bool(op.regions) and not op.opdef.has(KERNEL)
            inner = scope + (op,)
            for region in op.regions if nested else ():
                for arg in region.block.args:  # before the results: results may view them
                    self._define(arg, pos, inner)
            for r in op.results:
                self._define(r, pos, scope)
            for region in op.regions if nested else ():
                self._number(region.block, inner)
            self.ticks += nested
            self.end[op] = self.ticks

    def _record_reads(self, block: Block, scope: tuple) -> None:
        for op in block.ops:
            for v in data_operands(op):
                self._read(v, self.start[op], scope)
            if op.opdef.has(KERNEL):
                continue
            for region in op.regions:  # loop-carried buffers live for the whole loop
                for arg in region.block.args:
                    self.last_read[arg] = max(self.last_read[arg], self.end[op])
                self._record_reads(region.block, scope + (op,))

    def _read(self, v: Value, pos: int, scope: tuple) -> None:
        depth = len(self.scope.get(v, ()))
        if len(scope) > depth:  # read inside a region op that v is defined outside of
            pos = self.end[scope[depth]]
        self.last_read[v] = max(self.last_read.get(v, pos), pos)

    # -- storages -------------------------------------------------------------------------
    def _find(self, v: Value) -> Value:
        while self.root[v] is not v:
            v = self.root[v]
        return v

    def _join(self, v: Value, into: Value, kind: str | None = None) -> None:
        a, b = self._find(v), self._find(into)
        if a is not b:
            self.root[a] = b
            self.members[b] += self.members.pop(a)
            del self.kind[a]
        if kind is not None:
            self.kind[b] = kind

    def _lifetime(self, root: Value) -> tuple[int, int]:
        members = self.members[root]
        return min(self.defined[m] for m in members), max(self.last_read[m] for m in members)

    def _returned(self) -> list[Value]:
        term = self.fn.block.terminator
        return list(term.operands) if term is not None and term.opdef.has(ENDS_FUNCTION) else []

    def _make_storages(self) -> None:
        returned = set(self._returned())
        args = set(self.fn.args)
        for v in self.order:
            if not _is_tensor(v):
                continue
            self.root[v], self.members[v] = v, [v]
            source = None if v in returned else self._viewed(v)
            if source is not None:
                self.kind[v] = ALIAS  # replaced by the join below
                self.alias_of[v] = source
                self._join(v, source)
            elif v in args:
                self.kind[v] = _ARG
            elif v.op is not None and v.op.opdef.has(CONSTANT):
                self.kind[v] = _CONST
            else:
                self.kind[v] = OUTPUT if v in returned else ARENA

    def _viewed(self, v: Value) -> Value | None:
        """The value whose storage `v` shares, if any."""
        op = v.op
        if op is not None and op.opdef.has(VIEW):
            return op.operands[0]
        if op is not None and op.opdef.is_loop:
            return op.regions[0].block.args[v.index]
        owner = v.owner
        if op is None and owner.parent is not None and owner.parent.parent is not None:
            loop = owner.parent.parent
            if loop.opdef.is_loop and owner is loop.regions[1].block:
                return loop.regions[0].block.args[v.index]
        return None

    # -- in place -------------------------------------------------------------------------
    def _variable_args(self) -> dict[str, Value]:
        """Variable name -> function argument; only names that no two arguments share."""
        names = [a.name_hint for a in self.fn.args]
        return {n: a for n, a in zip(names, self.fn.args) if n and names.count(n) == 1}

    def _variables_in_place(self) -> None:
        assigns = [op for op in self.fn.block.ops if op.opdef.has(STATE_UPDATE)]
        targets = [op.attrs["var"] for op in assigns]
        values = [op.operands[0] for op in assigns]
        returned = self._returned()
        by_name = self._variable_args()
        for op, name, x in zip(assigns, targets, values):
            var = by_name.get(name)
            if (
                var is None
                or targets.count(name) != 1
                or values.count(x) != 1
                or returned.count(op.result) != 1
                or not _is_tensor(var)
                or x.type != var.type
            ):
                continue
            ok, reused = self._overwritable(var, x)
            if ok:
                for v in (x, op.result):
                    self._join(v, var, VARIABLE)
                    self.variable[v] = var
                if reused is not None:
                    self.reuses[x] = reused

    def _overwritable(self, var: Value, x: Value) -> tuple[bool, Value | None]:
        """Can x's producer write x into var's storage, and which operand of the producer
        does it then overwrite in place (None when var's old value is dead already)?"""
        if x not in self.root or self._find(x) is not x or self.kind[x] != ARENA:
            return False, None  # not computed into a buffer of its own
        producer = x.op
        if producer.parent is not self.fn.block:
            return False, None
        last = self._lifetime(self._find(var))[1]
        if last < self.start[producer]:
            return True, None
        reused = self._in_place_operand(producer, x, self._find(var))
        return last == self.start[producer] and reused is not None, reused

    def _in_place_operand(self, op: Operation, out: Value, storage: Value) -> Value | None:
        """The operand of `op` in `storage` that `out` may overwrite: the only operand of
        `op` in that storage, read pointwise."""
        sharing = [v for v in op.operands if v in self.root and self._find(v) is storage]
        if len(sharing) != 1:
            return None
        pairs = in_place_pairs(op)
        j, i = op.results.index(out), op.operands.index(sharing[0])
        return sharing[0] if (j, i) in pairs else None

    def _loop_results_in_place(self) -> None:
        """A kernel in a loop body that makes the value yielded as carried value j, reading
        body argument j pointwise and last, writes straight into carried buffer j: the
        value is then where the next iteration reads it, and the yield copies nothing."""
        for loop in self.ops:
            if not loop.opdef.is_loop:
                continue
            body = loop.regions[1].block
            yields = list(body.terminator.operands)
            for arg, y in zip(body.args, yields, strict=True):
                if not _is_tensor(y) or yields.count(y) != 1 or y.op is None:
                    continue
                if y.op.parent is not body or self._find(y) is not y or self.kind[y] != ARENA:
                    continue
                carried = self._find(arg)
                reused = self._in_place_operand(y.op, y, carried)
                if reused is None or self._read_after(carried, y.op, body):
                    continue
                self._join(y, carried)
                self.reuses[y] = reused

    def _read_after(self, storage: Value, op: Operation, block: Block) -> bool:
        """Does anything after `op` in `block` (the terminator and nested regions included)
        read a value in `storage`?"""
        members = set(self.members[storage])
        later = block.ops[block.ops.index(op) + 1 :]
        return any(
            v in members
            for after in later
            for inner in (after.walk() if not after.opdef.has(KERNEL) else [after])
            for v in inner.operands
        )

    def _kernels_in_place(self) -> None:
        for op in self.ops:
            taken: set[Value] = set()
            for j, i in in_place_pairs(op):
                out, v = op.results[j], op.operands[i]
                if out in self.reuses or self._find(out) is not out or self.kind[out] != ARENA:
                    continue
                storage = self._find(v)
                if storage in taken or self.kind[storage] != ARENA:
                    continue
                if self._lifetime(storage)[1] != self.start[op]:
                    continue
                group = self.group_of.get(op)
                if group is not None and not {out, v} <= group.row_local:
                    continue  # another member may still read v's other rows
                if self._in_place_operand(op, out, storage) is v:
                    self._join(out, storage)
                    self.reuses[out] = v
                    taken.add(storage)

    def _extend_over_row_groups(self) -> None:
        """Every value a row group's ops touch lives from the group's first op to past its
        last (after in place decisions, which the group's own rules govern)."""
        for group in self.row_groups:
            first, last = self.start[group.ops[0]], self.end[group.ops[-1]]
            for op in group.ops:
                for v in op.results:
                    if v in self.defined:
                        self.defined[v] = min(self.defined[v], first)
                for v in op.operands + op.results:
                    if v in self.last_read:
                        self.last_read[v] = max(self.last_read[v], last)

    # -- offsets and the plan -------------------------------------------------------------
    def _result(self) -> MemoryPlan:
        args = set(self.fn.args)
        planned = [v for v in self.root if v not in args and self.kind.get(v) != _CONST]
        sizes = {v: nbytes(v) for v in planned}
        static = all(s is not None for s in sizes.values())
        lives = {r: self._lifetime(r) for r, k in self.kind.items() if k == ARENA}
        offsets, arena = _first_fit(lives, sizes) if static else ({}, None)
        buffers = {v: self._buffer(v, sizes[v], offsets) for v in planned}
        if not static:
            return MemoryPlan(buffers, None, None, None, names=value_names(self.fn))
        return MemoryPlan(
            buffers,
            arena_bytes=arena,
            unplanned_bytes=sum(sizes[v] for v, b in buffers.items() if b.kind != ALIAS),
            peak_live_bytes=_peak(lives, sizes),
            names=value_names(self.fn),
        )

    def _buffer(self, v: Value, size: int | None, offsets: dict) -> Buffer:
        root = self._find(v)
        offset = offsets.get(root)
        if v in self.alias_of:
            return Buffer(offset, size, ALIAS, alias_of=self.alias_of[v])
        kind = self.kind[root]
        return Buffer(offset, size, kind, reuses=self.reuses.get(v), variable=self.variable.get(v))


def _align(n: int) -> int:
    return round_up(n, ALIGNMENT)


def _first_fit(lives: dict, sizes: dict) -> tuple[dict[Value, int], int]:
    """Offsets for storages, and the arena's size. Static storages first, largest first,
    each at the lowest aligned offset that no storage placed already and alive at the same
    time occupies. Storages whose size is known only when the program runs (ir/symbolic.py)
    go above them: first fit again where every decision it takes holds for all sizes (4096*B
    against 64*B); where one would depend on the sizes (B*T against 64*B), slots shared only
    by storages of one size (_by_size), so that no placement takes a guard."""
    symbolic = [r for r in lives if is_symbolic(sizes[r])]
    offsets = _pack([r for r in lives if r not in symbolic], lives, sizes, 0)
    top = max((offsets[r] + sizes[r] for r in offsets), default=0)
    if not symbolic:
        return offsets, top
    base = _align(top)
    try:
        placed = _pack(symbolic, lives, sizes, base, _certainly_at_most)
        top = _highest([placed[r] + sizes[r] for r in symbolic])
    except _Undecided:
        placed, top = _by_size(symbolic, lives, sizes, base)
    offsets.update(placed)
    return offsets, top


class _Undecided(Exception):
    """A placement decision that holds for some sizes of the run and not for others."""


def _at_most(a, b) -> bool:
    return a <= b


def _certainly_at_most(a, b) -> bool:
    """a <= b for every size of the run; _Undecided where that depends on them."""
    known = known_at_least(b, a)
    if known is None:
        raise _Undecided
    return known


def _highest(ends: list):
    top = ends[0]
    for end in ends[1:]:
        top = end if _certainly_at_most(top, end) else top
    return top


def _pack(roots: list, lives: dict, sizes: dict, base, at_most=_at_most) -> dict[Value, int]:
    placed: list[tuple] = []  # start, end, offset, size
    offsets = {}
    # (largest first at the compile's sizes: an order that only guides the packing, so it
    # takes no guard on sizes of the run)
    for root in sorted(roots, key=lambda r: (-hint(sizes[r]), lives[r][0])):
        (start, end), size = lives[root], sizes[root]
        busy = [(o, o + n) for s, e, o, n in placed if s <= end and start <= e]
        offset = base
        for lo, hi in _by_start(busy, at_most):
            if at_most(offset + size, lo):
                break
            high = _align(hi)
            offset = high if at_most(offset, high) else offset
        offsets[root] = offset
        placed.append((start, end, offset, size))
    return offsets


def _by_start(busy: list, at_most) -> list:
    if at_most is _at_most:
        return sorted(busy, key=lambda b: b[0])
    return sorted(busy, key=cmp_to_key(lambda x, y: 1 if at_most(y[0], x[0]) else -1))


def _by_size(roots: list, lives: dict, sizes: dict, base) -> tuple[dict[Value, int], object]:
    """Storages of one size (as polynomials: equal at every size) share slots, one
    storage a slot at a time; each size's slots sit above the last's. Decides nothing on
    the sizes of the run."""
    groups: dict = {}
    for root in sorted(roots, key=lambda r: lives[r]):
        groups.setdefault(size_key(sizes[root]), []).append(root)
    offsets = {}
    for members in groups.values():
        slot = _align(sizes[members[0]])
        free_from: list[int] = []  # each slot: when its last storage dies
        for root in members:
            start, end = lives[root]
            k = next((k for k, died in enumerate(free_from) if died < start), None)
            if k is None:
                k = len(free_from)
                free_from.append(end)
            free_from[k] = end
            offsets[root] = base + k * slot
        base = base + len(free_from) * slot
    return offsets, base


def _peak(lives: dict, sizes: dict) -> int:
    """The most bytes live at once (a report; where sizes are symbolic, at the moment
    that holds the most for the compile's sizes: chosen without guards)."""
    events = sorted(
        [(s, 0, sizes[r]) for r, (s, e) in lives.items()]
        + [(e, 1, -sizes[r]) for r, (s, e) in lives.items()],
        key=lambda event: event[:2],
    )
    peak = live = 0
    for _, _, delta in events:
        live += delta
        if hint(live) > hint(peak):
            peak = live
    return peak
