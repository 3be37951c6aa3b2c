"""Row chains: consecutive kernels that work row by row over the same rows run as one
loop over the rows, each kernel in turn on the row, so that what one kernel writes the
next reads while it is still in cache.

Softmax over the last axis is three kernels (a row max; exp(x - max) and its row sum;
the division), each a pass over the whole tensor: on 4096 x 1024 float32 that is five
16 MiB streams through memory. As a chain, row r is read from memory once by the max,
and the exp, sum and division find it (and what the exp wrote) in cache: one stream in,
one out. Layer norm and both gradients are chains of the same kind.

The rows are the leading axis of the kernels' iteration space, and a kernel runs on
row r over the range of its outermost loop (after coalescing) that row r covers --
kernels take `lo, hi` over that loop for threads anyway. Every element is computed by
the same code in the same order as by the kernels run one after another, so results
are bit for bit the same; only the order *across* rows changes, which is safe when:

- each kernel reads and writes, in row r, only row r of every value with rows (a
  reduction in the chain keeps the leading axis: kernel.splits_by_rows, or sums over
  the rows alone: a column sum, below), and values without rows (a bias broadcast along
  them) are only read;
- no value a kernel writes shares bytes with another value of the chain unless they
  are the same buffer row for row (written in place): a buffer the memory plan reuses
  for a value of another shape would be overwritten in row r while a later row of the
  old value is still to be read. The backend plans memory with its chains as row groups
  (passes/memory.py), which keeps them apart; _fits checks the plan;
- the kernels need nothing per call that they share: no float32 scratch of a narrow
  reduction, no value checks whose faults must stop the run before the next kernel;
  and check_numerics (which checks after each kernel) keeps kernels apart.

A column sum (a float sum over the rows alone: a bias's gradient dy.sum(0), a layer
norm weight's (dy * normed).sum(0)) would cut the chain it sits in. As a member, it adds
each row into partial sums of the row's block (blocks of COLUMN_RUN rows, the blocks of
its own kernel's pairwise cascade), and after the chain the blocks' sums are combined
pairwise in the cascade's tree: the same additions in the same order, so the same bits.
No member may read a column sum: it is complete only after the chain.

Values that nothing after the chain reads (a layer norm's centred input, its normalised
one, the gradient's intermediates) are rows of scratch, one per block, not tensors in
memory: each row is written and read again in cache and never travels to memory.

Consecutive members that read none of each other's row folds share one loop over the
row (_groups): one kernel of their ops together (_one_row), at most one row fold in it,
last. Layer norm's gradient makes seven passes over each row (four row folds, two column
sums, the outputs); the bias's and weight's gradients and the fold of its first term read
the same rows and no fold of one another, so they run in one (4096 x 1024 float32: 4.27-4.36
-> 3.95-3.99 ms, best of 40). The fold is emitted as in its own kernel (a row folded in
a register, vectorised by LLVM); tests check that the bits are the separate kernels' at
rows of 64 to 1024, float32 and float64. A member that reads a fold of the group needs the whole row folded first
(softmax's division reads its sum) and starts a loop of its own.

A chain's rows are split over threads by blocks, each block run by one thread in order
(the bits do not depend on the thread count). Rows larger than
ROW_CACHE_BYTES (together, for all the chain's values) would not stay in cache, and
their kernels keep their own, finer, splitting; rows shorter than ROW_MIN_ELEMENTS would
make each kernel's vector loop a few elements long."""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from graphjit.codegen.layout import (
    broadcast_strides,
    iteration_space,
    keepdims_shape,
    nbytes,
    size_of,
)
from graphjit.codegen.llvm import sizes
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.kernel import (
    CHAIN,
    PAIRWISE,
    SCRATCH_ALIGN,
    accumulator_bytes,
    combine_pairwise,
    emit_kernel,
    outer_extent,
    splits_by_rows,
)
from graphjit.codegen.llvm.loops import for_range
from graphjit.codegen.llvm.parallel import call_split, chunk_count, kernel_work
from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Block, Operation, Region, Value
from graphjit.ir.ops import CONSTANT, REDUCTION
from graphjit.ir.ops.elementwise import value_checked_ops
from graphjit.ir.symbolic import hint, is_symbolic, known_multiple
from graphjit.passes.memory import ALIAS, ARENA, RowGroup

ROW_CACHE_BYTES = 256 << 10  # a row of every value of a chain: within a core's L2
# The longest chain: checking a candidate costs time in its length (its values against
# each other), so runs grown without a bound made compiling a long backward pass cubic in
# its length (an eager tape of 1000 steps of tanh(x * w), compiled whole: 152 s). The
# longest chain in the bench's programs has 11.
MAX_MEMBERS = 32
# A kernel's loop over a row is its vector loop: rows shorter than this would trade
# vectorised passes for per-row calls (a 1-d chain of 1-element rows ran 9x slower).
ROW_MIN_ELEMENTS = 64
# A column sum's partial sums (one buffer of a row's length per block of COLUMN_RUN rows)
# may take at most this much scratch; a bigger one keeps its own kernel.
COLUMN_SCRATCH_BYTES = 16 << 20
# Each value's row of scratch is followed by this many spare bytes, so that rows of 4 KiB
# (1024 floats) do not all start at one offset modulo 4 KiB, where they compete for the
# same L1 sets. Rows back to back made softmax over 4096 x 1024 float32 run in 1.20 ms
# (best of 30, one process, the variants interleaved, two rounds) against 1.09 with 192
# spare bytes (1.08 with 128); its gradient 2.06-2.15 against 1.98-2.12 ms, layer norm's
# 3.68-3.79 against 3.59-3.68. (The rows' order used to follow a set's: a row fold's one
# line between two rows happened to stagger them in some processes.)
ROW_STAGGER = 192


@dataclass
class _Member:
    op: Operation
    rows: int
    row_local: set  # the values it reads or writes row by row (the others it broadcasts)
    reduces: bool  # it folds rows (what a chain is for: elementwise kernels fuse already)
    row_elements: int
    column: Value | None = None  # its result that sums over the rows (see _column_sum)
    fold: Value | None = None  # its result that folds each row (complete after the row)


def _member(op: Operation) -> _Member | None:
    """The op as a chain member, or None when it cannot run row by row."""
    if op.name != "fused":
        return None
    body = op.regions[0].block
    simple = all(
        o.opdef.elementwise or o.opdef.traits & {REDUCTION, CONSTANT} or o.opdef.is_terminator
        for o in body.ops
    )
    if not simple or value_checked_ops(body):
        return None
    space = iteration_space(body)
    if not space or space[0] < 2 or size_of(space) == 0:
        return None
    if is_symbolic(size_of(space[1:])):  # (rows of a length known only when it runs: each
        return None  # op keeps its own kernel, which computes that length; no guard on it)
    reduction = next((o for o in body.ops if o.opdef.has(REDUCTION)), None)
    column = None
    if _column_sum(body, reduction, space):
        column = op.results[body.terminator.operands.index(reduction.result)]
    elif (
        accumulator_bytes(op)
        or not known_multiple(outer_extent(body), space[0])  # (no guard: else not a member)
        or (reduction is not None and not splits_by_rows(body, reduction))
    ):
        return None
    row_local = set(op.results) - {column}
    for v, inner in zip(op.operands, body.args, strict=True):
        if broadcast_strides(inner.type.shape, space)[0] != 0:
            row_local.add(v)
    if any(v.type.shape[0] != space[0] for v in row_local):
        return None
    rows = space[0]
    fold = None
    if reduction is not None and column is None:
        fold = op.results[body.terminator.operands.index(reduction.result)]
    reduces = reduction is not None
    return _Member(op, rows, row_local, reduces, size_of(space) // rows, column, fold)


# -- column sums (see the module's docstring) -----------------------------------------------
# Rows a block adds one after another into its partial sums: the blocks of kernel.py's
# pairwise cascade along an outer reduced axis.
COLUMN_RUN = CHAIN


def _column_sum(body, reduction, space) -> bool:
    """Whether the region's reduction is a float32/float64 sum over the leading axis alone
    that its kernel sums by blocks of rows."""
    if reduction is None or reduction.name not in PAIRWISE:
        return False
    dtype = reduction.result.type.dtype
    if not dtype.is_floating or dtype.is_narrow_float:
        return False  # (float16/bfloat16 sums accumulate in float32 scratch: their own kernel)
    kept = keepdims_shape(reduction, space)
    if kept[0] != 1 or tuple(kept[1:]) != tuple(space[1:]):
        return False
    rows, width = space[0], size_of(space[1:])
    if width < 2:
        return False  # (its kernel folds it in a register, not by blocks of rows)
    if any(is_symbolic(d) for d in space):
        return False  # (its blocks' count is known only when it runs: a kernel of its own)
    # ceil(rows / COLUMN_RUN) blocks' partial sums fit: compared, not divided, so that a
    # size of the run (ir/symbolic.py) is guarded by a range
    return rows <= COLUMN_RUN * (COLUMN_SCRATCH_BYTES // (width * dtype.np.itemsize))


def _one_row(members: list[_Member]) -> tuple[Operation, list[Value], list[Value]]:
    """The members' fused ops as one over a single row: (that op, its operands, its
    results). Each column sum becomes `acc + x`, an elementwise op over an operand `acc`
    of its own (the block's partial sums, after the operands), which its result is written
    over (in place); a member's row reduction, at most one, comes last (_mergeable: no
    member reads it). A value one member writes and a later one reads is passed inside
    the op (and still written, for whatever else reads it)."""
    space = iteration_space(members[0].op.regions[0].block)
    made = {v for m in members for v in m.op.results}
    operands = list(dict.fromkeys(v for m in members for v in m.op.operands if v not in made))
    results = [v for m in members for v in m.op.results]
    row_local = {v for m in members for v in m.row_local}

    def row_type(v: Value):
        return v.type.with_shape((1, *v.type.shape[1:])) if v in row_local else v.type

    accs = [m for m in members if m.column is not None]
    acc_types = [m.column.type.with_shape((1, *space[1:])) for m in accs]
    types = [row_type(v) for v in operands] + acc_types
    outer, inner = Block(types), Block(types)
    at = dict(zip(operands, inner.args, strict=False))  # graph value -> its value inside
    acc_of = {m.op: inner.args[len(operands) + k] for k, m in enumerate(accs)}
    last = None  # (the row reduction, the member's map)
    for m in members:
        body = m.op.regions[0].block
        vmap = {arg: at[v] for arg, v in zip(body.args, m.op.operands, strict=True)}
        for o in body.ops[:-1]:
            if not o.opdef.has(REDUCTION):
                clone_op(o, vmap, inner)
            elif m.column is not None:
                add = builder.create("add", [acc_of[m.op], vmap[o.operands[0]]], block=inner)
                vmap[o.result] = add.result
            else:
                last = (o, vmap)
        for v, inside in zip(m.op.results, body.terminator.operands, strict=True):
            at[v] = vmap.get(inside, inside)
    if last is not None:
        reduction, vmap = last
        clone_op(reduction, vmap, inner)
        for v, inside in list(at.items()):
            if inside is reduction.result:
                at[v] = vmap[reduction.result]
    builder.create("yield", [at[v] for v in results], block=inner)
    first = members[0].op
    op = builder.create(
        "fused", outer.args, first.attrs, [Region(inner)], block=outer, loc=first.loc
    )
    return op, operands, results


def _mergeable(group: list[_Member], member: _Member) -> bool:
    """Whether `member` may join `group` in one loop over each row: the same row, no more
    than one row reduction among them, and none of the group's row reductions read by it
    (complete only after the row)."""

    def row_space(m):
        return iteration_space(m.op.regions[0].block)[1:]

    if row_space(member) != row_space(group[0]):
        return False
    folds = [m.fold for m in group + [member] if m.fold is not None]
    if len(folds) > 1:
        return False
    return not any(m.fold in member.op.operands for m in group if m.fold is not None)


def _groups(members: list[_Member]) -> list[list[_Member]]:
    """The chain's members as runs that share one loop over each row (_mergeable)."""
    groups: list[list[_Member]] = []
    for m in members:
        if groups and _mergeable(groups[-1], m):
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _region(low, v: Value) -> tuple:
    """(storage, first byte, bytes): arena values by their offsets, other storage (a
    function argument, an output, a variable, and views of them) by its pointer."""
    buf = low.plan.buffers.get(v)
    if buf is not None and buf.kind in (ARENA, ALIAS) and buf.offset is not None:
        return ("arena", buf.offset, nbytes(v))
    return (id(low.ptr(v)), 0, nbytes(v))


def _values(members: list[_Member]) -> list[Value]:
    """The members' operands and results, in the order they first appear: the order the
    chain's scratch rows are laid out in, so the same program makes the same module (a
    set's order made two builds of one program differ, and miss the compile caches)."""
    values = dict.fromkeys(v for m in members for v in m.op.operands + m.op.results)
    return [v for v in values if v.op is None or not v.op.opdef.has(CONSTANT)]


def _row_local(members: list[_Member]) -> set[Value]:
    """The values every member that touches them reads or writes row by row."""
    broadcast = set()  # (one pass over the members: a test per value and member was
    for m in members:  # quadratic in a chain's length)
        broadcast.update(v for v in m.op.operands if v not in m.row_local)
        broadcast.update(v for v in m.op.results if v not in m.row_local)
    return {v for v in _values(members) if v not in broadcast}


def _shapes_fit(members: list[_Member]) -> bool:
    """What the IR alone says: no member reads a column sum of the chain (complete only
    after it), and a row of every row-local value fits in cache together."""
    columns = {m.column for m in members if m.column is not None}
    if any(v in columns for m in members for v in m.op.operands):
        return False
    row_bytes = sum(nbytes(v) for v in _row_local(members)) // members[0].rows
    return row_bytes <= ROW_CACHE_BYTES


def _fits(low, members: list[_Member]) -> bool:
    """Whether the members may run row by row (see the module's docstring): as the IR
    says, and no two values share bytes unless row for row (the memory plan, made with
    the chains as row groups, should see to that; this checks it)."""
    if not _shapes_fit(members):
        return False
    values, row_local = _values(members), _row_local(members)
    columns = {m.column for m in members if m.column is not None}
    regions = {v: _region(low, v) for v in values}
    for m in members:
        for a in m.op.results:
            if a in columns:
                continue  # written after the chain, when every row has been read
            ra = regions[a]
            for b in values:
                rb = regions[b]
                if b is a or ra[0] != rb[0] or ra[1] + ra[2] <= rb[1] or rb[1] + rb[2] <= ra[1]:
                    continue
                if ra[1:] != rb[1:] or b not in row_local or a not in row_local:
                    return False  # sharing bytes, but not row for row
    return True


def row_groups(fn) -> list[RowGroup]:
    """The chains the IR allows, in every block of `fn`, as row groups for the memory plan
    (passes/memory.py), so that it keeps their values apart (row for row in place aside)."""
    groups = []
    for block in _blocks(fn.block):
        for members in _runs(block.ops, _shapes_fit).values():
            ops = tuple(m.op for m in members)
            groups.append(RowGroup(ops, frozenset(_row_local(members))))
    return groups


def _blocks(block):
    yield block
    for op in block.ops:
        if op.name != "fused":
            for region in op.regions:
                yield from _blocks(region.block)


def plan_chains(low, ops: list[Operation]) -> dict[int, list[Operation]]:
    """{index of a chain's first op: the chain's ops}: runs of two or more consecutive
    ops of `ops` that can run row by row together, one of them a row reduction (kernels
    of elementwise ops alone were left apart by the fusion pass's size cap, and keep
    their own vector loops over the whole tensor)."""
    if low.numerics is not None:
        return {}
    runs = _runs(ops, lambda members: _fits(low, members))
    return {i: [m.op for m in members] for i, members in runs.items()}


def _runs(ops: list[Operation], fits) -> dict[int, list[_Member]]:
    """Greedy runs of consecutive members that `fits` accepts and that are worth it. A
    start from which no run can fold rows is passed over without checking a candidate:
    growing runs of elementwise kernels from every start only to drop them made compiling
    a long program quadratic in its length (each check is itself linear in the run)."""
    members = [_member(op) for op in ops]
    runs: dict[int, list[_Member]] = {}
    i = 0
    while i < len(ops):
        first = members[i]
        if not _may_fold(members, i):
            i += 1
            continue
        run = [first]
        j = i + 1
        while j < len(ops) and len(run) < MAX_MEMBERS:
            nxt = members[j]
            if nxt is None or nxt.rows != first.rows or not fits(run + [nxt]):
                break
            run.append(nxt)
            j += 1
        if _worth_it(run):
            runs[i] = run
            i = j
        else:
            i += 1
    return runs


def _may_fold(members: list, start: int) -> bool:
    """Whether a run from `start` could hold a member that folds rows: one within
    MAX_MEMBERS, before a non-member or a member of other rows ends every run."""
    first = members[start]
    if first is None:
        return False
    for m in members[start : start + MAX_MEMBERS]:
        if m is None or m.rows != first.rows:
            return False
        if m.reduces:
            return True
    return False


def _worth_it(members: list[_Member]) -> bool:
    """Two or more kernels, one folding rows, and rows long enough for vector loops (a
    kernel over the rows' reduced values, one element a row, may ride along)."""
    return (
        len(members) >= 2
        and any(m.reduces for m in members)
        and max(m.row_elements for m in members) >= ROW_MIN_ELEMENTS
    )


def lower_chain(low, ops: list[Operation]) -> None:
    """One function over blocks of rows calling each op's kernel on each row in turn, split
    over threads by blocks (see _Blocks). Values that only the chain reads live in a row of
    scratch per block, not in memory (_RowScratch); a column sum's partial sums, one buffer
    per block, are combined after it (_ColumnStep)."""
    members = [_member(op) for op in ops]
    blocks = _Blocks(members)
    internal = _RowScratch(low, members, blocks.count)
    columns = [m for m in members if m.column is not None]
    scratch_bytes = [_partials_bytes(m, blocks.count) for m in columns] + [internal.bytes]
    *partials, row_scratch = low.scratch(scratch_bytes)
    partials = iter(partials)
    steps = []
    for group in _groups(members):
        if len(group) == 1 and group[0].column is None:
            steps.append(_RowStep(low, group[0]))
            continue
        mine = [next(partials) for m in group if m.column is not None]
        steps.append(_GroupStep(low, group, mine, blocks))
    arg_types = [a.type for step in steps for a in step.args] + [T.I8P, T.I64.as_pointer()]
    fn = ir.Function(
        low.module, ir.FunctionType(ir.VoidType(), arg_types + [T.I64, T.I64]), f"rows{low.kernels}"
    )
    low.kernels += 1  # (its steps' kernels may be shared ones: the name must be its own)
    fn.linkage = "internal"
    sizes.register(fn, fn.args[-3])  # (the run's sizes: rows known only when it runs)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    lo, hi = fn.args[-2:]
    with for_range(b, hi, "block", start=lo) as block:
        scratch = internal.block_rows(b, fn.args[-4], block)
        with blocks.rows(b, block) as r:
            at = 0
            for step in steps:
                args = list(fn.args[at : at + len(step.args)])
                at += len(step.args)
                for i, v in enumerate(step.values):
                    if v in internal.values:
                        args[i] = internal.pointer(b, scratch, v, r)
                step.emit_row(b, args, r, block)
    b.ret_void()
    for step in steps:
        step.before()
    all_args = [a for step in steps for a in step.args] + [row_scratch, low.dims]
    call_split(low, fn, all_args, blocks.count, sum(step.work for step in steps), blocks.count)
    if any(step.polls for step in steps):
        low.poll_interrupt()  # a kernel may have returned early for a Ctrl-C
    for step in steps:
        step.after()


class _RowStep:
    """A member whose own kernel runs on row r: over its outermost loop's share of the row."""

    def __init__(self, low, member: _Member):
        call = low.kernel_call(member.op)
        self.kernel, self.args, self.work, self.polls = (
            call.kernel,
            call.args,
            call.work,
            call.polls,
        )
        self.per_row = _i64(call.extent // member.rows)
        self.values = member.op.operands + member.op.results

    def emit_row(self, b: ir.IRBuilder, args: list, r, block) -> None:
        first = b.mul(r, self.per_row)
        b.call(self.kernel, args + [first, b.add(first, self.per_row)])

    def before(self) -> None:
        pass

    def after(self) -> None:
        pass


class _Blocks:
    """The chain's rows in `count` blocks of `size` rows (the last ones shorter, or empty):
    what threads take, one block at a time, and what owns scratch. A chain with a column
    sum has blocks of COLUMN_RUN rows, the blocks of the column sum's own kernel (kernel.py's
    pairwise cascade), so that it adds the same numbers in the same order; any other, as
    many blocks as call_split makes chunks by default."""

    def __init__(self, members: list[_Member]):
        self.total = members[0].rows
        if any(m.column is not None for m in members):
            self.size = COLUMN_RUN
        else:  # (rows known only when it runs: blocks sized at the hint; the same bits)
            self.size = -(-hint(self.total) // chunk_count(hint(self.total)))
        self.count = (self.total + self.size - 1) // self.size

    def rows(self, b: ir.IRBuilder, block):
        """`with blocks.rows(b, block) as r`: the loop over the block's rows."""
        first = b.mul(block, _i64(self.size))
        end = b.add(first, _i64(self.size))
        total = sizes.i64(self.total, b)
        end = b.select(b.icmp_signed("<", end, total), end, total)
        return for_range(b, end, "row", start=first)


class _RowScratch:
    """The chain's values that nothing after it reads (written by a member, read only by
    later members, not returned): each block of rows keeps one row of each in scratch of
    its own, written and read again while in cache, instead of a whole tensor written to
    memory and read back (layer norm's gradient has four such 16 MiB values). A block runs
    on one thread, its rows one after another, so its row of scratch is free again when the
    next row starts. Kernels index a value from its base pointer by the row's elements, so
    the base passed for row r is the scratch row minus r rows. Values that share storage
    (one written over another in place) share a row; a storage that any value read after
    the chain has stays in memory."""

    def __init__(self, low, members: list[_Member], blocks: int):
        self.rows = members[0].rows
        self.offsets: dict[tuple, int] = {}  # storage region -> byte offset in a block's rows
        self.values: dict[Value, tuple] = {}
        chain = {m.op for m in members}
        readers = _readers(low, members[0].op.parent)

        def read_after(v) -> bool:  # (by an op of the block outside the chain)
            return any(op not in chain for op in readers.get(v, ()))

        produced = {v for m in members for v in m.op.results} - {m.column for m in members}
        row_local = _row_local(members)
        by_region: dict[tuple, list[Value]] = {}
        for v in _values(members):
            by_region.setdefault(_region(low, v), []).append(v)
        size = 0
        for region, vs in by_region.items():
            if region[0] != "arena" or any(
                v not in produced or v not in row_local or read_after(v) or v in low.returned
                for v in vs
            ):
                continue
            self.offsets[region] = size
            size += -(-region[2] // self.rows // SCRATCH_ALIGN) * SCRATCH_ALIGN + ROW_STAGGER
            self.values.update((v, region) for v in vs)
        self.block_bytes = size
        self.bytes = size * blocks

    def block_rows(self, b: ir.IRBuilder, scratch: ir.Value, block):
        """The block's rows of scratch."""
        return b.gep(scratch, [b.mul(block, _i64(self.block_bytes))]) if self.values else None

    def pointer(self, b: ir.IRBuilder, block_rows, v: Value, r):
        """The base pointer to pass for v on row r: its row of scratch, minus r rows."""
        row = b.gep(block_rows, [_i64(self.offsets[self.values[v]])])
        typed = T.typed_pointer(b, row, v.type.dtype)
        return b.gep(typed, [b.mul(r, _i64(-(size_of(v.type.shape) // self.rows)))])


def _readers(low, block) -> dict:
    """value -> the ops of `block` that read it (themselves or in their regions), worked out
    once a block for all its chains (per chain, a walk of every op was quadratic: 0.26 s of
    an 8-layer transformer step's compile)."""
    found = low.block_readers.get(block)
    if found is None:
        found = low.block_readers[block] = {}
        for op in block.ops:
            for inner in op.walk():
                for v in inner.operands:
                    found.setdefault(v, set()).add(op)
    return found


def _partials_bytes(member: _Member, blocks: int) -> int:
    return blocks * size_of(member.column.type.shape) * member.column.type.dtype.np.itemsize


class _GroupStep:
    """Members that share one loop over each row (_groups), or a column-summing member
    alone: their one-row kernel (_one_row), the arguments the chain function passes it
    (each column sum's partial sums, one buffer per block, for its result), and the
    column sums' combination after the chain."""

    def __init__(self, low, members: list[_Member], partials: list, blocks: _Blocks):
        self.low, self.members, self.blocks = low, members, blocks.count
        op, self.operands, self.results = _one_row(members)
        self.columns = [m.column for m in members if m.column is not None]
        self.partials = [
            T.typed_pointer(low.b, p, c.type.dtype) for p, c in zip(partials, self.columns)
        ]
        n_in, n_acc = len(self.operands), len(self.columns)
        # the one-row op's buffers: the operands, the accs, the results (columns over accs)
        values = self.operands + self.results
        moved = [i if i < n_in else i + n_acc for i in range(len(values))]
        skip = {values.index(c) for c in self.columns}
        shared = [
            frozenset(moved[i] for i in group if i not in skip)
            for group in low.storage_groups(values)
        ]
        shared = [g for g in shared if len(g) > 1]
        for k, c in enumerate(self.columns):
            shared.append(frozenset({n_in + k, n_in + n_acc + self.results.index(c)}))
        self.kernel, self.extent, _, _ = emit_kernel(
            low.module, op, f"kernel{low.kernels}", tuple(shared)
        )
        low.kernels += 1
        partial_of = dict(zip(self.columns, self.partials, strict=True))
        self.values = values
        self.args = [partial_of[v] if v in partial_of else low.typed(v) for v in values]
        row_local = {v for m in members for v in m.row_local}
        self.locals = [v in row_local for v in values]
        self.acc_at = [n_in + self.results.index(c) for c in self.columns]
        self.work = sum(
            kernel_work(m.op.regions[0].block, m.rows * m.row_elements) for m in members
        )
        self.polls = False  # (a row of the one-row kernel is short)

    def emit_row(self, b: ir.IRBuilder, args: list, r, block) -> None:
        """Row r (of `block`): its elements through the members, column sums added into
        the block's partial sums."""
        rows = self.members[0].rows
        pointers = []
        for i, (v, ptr) in enumerate(zip(self.values, args, strict=True)):
            if i in self.acc_at:
                width = size_of(v.type.shape)
                pointers.append(b.gep(ptr, [b.mul(block, _i64(width))]))
            elif self.locals[i]:
                pointers.append(b.gep(ptr, [b.mul(r, _i64(size_of(v.type.shape) // rows))]))
            else:
                pointers.append(ptr)
        n_in = len(self.operands)
        accs = [pointers[i] for i in self.acc_at]
        b.call(self.kernel, [*pointers[:n_in], *accs, *pointers[n_in:], _i64(0), _i64(self.extent)])

    def before(self) -> None:
        """Zero the partial sums before the chain runs."""
        b = self.low.b
        memset = self.low.module.declare_intrinsic("llvm.memset", [T.I8P, T.I64])
        for column, partials in zip(self.columns, self.partials, strict=True):
            size = self.blocks * size_of(column.type.shape) * column.type.dtype.np.itemsize
            raw = b.bitcast(partials, T.I8P)
            b.call(memset, [raw, ir.Constant(T.I8, 0), _i64(size), ir.Constant(T.I1, 0)])

    def after(self) -> None:
        """The column sums: the blocks' partial sums combined in the cascade's tree into
        block 0's, copied out."""
        b = self.low.b
        for column, partials in zip(self.columns, self.partials, strict=True):
            width = size_of(column.type.shape)
            blocks = self.blocks  # (an int, or a size of the run: then the count's argument)

            def combine(b, partials, count, width=width):
                static = blocks if isinstance(blocks, int) else count
                combine_pairwise(b, partials, static, width, width)

            key = (blocks, width)
            self.low.outlined("combine", key, [partials, self.low.i64(blocks)], combine)
            out = self.low.ptr(column)
            self.low.memcpy(out, b.bitcast(partials, T.I8P), nbytes(column))


def _i64(n: int) -> ir.Constant:
    return ir.Constant(T.I64, n)
