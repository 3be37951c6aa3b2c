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
  reduction in the chain keeps the leading axis: kernel.splits_by_rows), and values
  without rows (a bias broadcast along them) are only read;
- no value a kernel writes shares bytes with another value of the chain unless they
  are the same buffer row for row (written in place): a buffer the memory plan reuses
  for a value of another shape would be overwritten in row r while a later row of the
  old value is still to be read;
- the kernels need nothing per call that they share: no float32 scratch of a narrow
  reduction, no value checks whose faults must stop the run before the next kernel;
  and check_numerics (which checks after each kernel) keeps kernels apart.

A chain's rows are split over threads like one kernel's. Rows larger than
ROW_CACHE_BYTES (together, for all the chain's values) would not stay in cache, and
their kernels keep their own, finer, splitting; rows shorter than ROW_MIN_ELEMENTS would
make each kernel's vector loop a few elements long."""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from graphjit.codegen.layout import broadcast_strides, iteration_space, nbytes, size_of
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.kernel import accumulator_bytes, outer_extent, splits_by_rows
from graphjit.codegen.llvm.loops import for_range
from graphjit.ir.core import Operation, Value
from graphjit.ir.ops import CONSTANT, REDUCTION
from graphjit.ir.ops.elementwise import value_checked_ops
from graphjit.passes.memory import ALIAS, ARENA

ROW_CACHE_BYTES = 256 << 10  # a row of every value of a chain: within a core's L2
# A kernel's loop over a row is its vector loop: rows shorter than this would trade
# vectorised passes for per-row calls (a 1-d chain of 1-element rows ran 9x slower).
ROW_MIN_ELEMENTS = 64


@dataclass
class _Member:
    op: Operation
    rows: int
    row_local: set  # the values it reads or writes row by row (the others it broadcasts)
    reduces: bool  # it folds rows (what a chain is for: elementwise kernels fuse already)
    row_elements: int


def _member(op: Operation) -> _Member | None:
    """The op as a chain member, or None when it cannot run row by row."""
    if op.name != "fused" or accumulator_bytes(op):
        return None
    body = op.regions[0].block
    simple = all(
        o.opdef.elementwise or o.opdef.traits & {REDUCTION, CONSTANT} or o.opdef.is_terminator
        for o in body.ops
    )
    if not simple or value_checked_ops(body):
        return None
    space = iteration_space(body)
    if not space or space[0] < 2 or size_of(space) == 0 or outer_extent(body) % space[0]:
        return None
    reduction = next((o for o in body.ops if o.opdef.has(REDUCTION)), None)
    if reduction is not None and not splits_by_rows(body, reduction):
        return None
    row_local = {v for v in op.results}
    for v, inner in zip(op.operands, body.args, strict=True):
        if broadcast_strides(inner.type.shape, space)[0] != 0:
            row_local.add(v)
    if any(v.type.shape[0] != space[0] for v in row_local):
        return None
    return _Member(op, space[0], row_local, reduction is not None, size_of(space) // space[0])


def _region(low, v: Value) -> tuple:
    """(storage, first byte, bytes): arena values by their offsets, other storage (a
    function argument, an output, a variable, and views of them) by its pointer."""
    buf = low.plan.buffers.get(v)
    if buf is not None and buf.kind in (ARENA, ALIAS) and buf.offset is not None:
        return ("arena", buf.offset, nbytes(v))
    return (id(low.ptr(v)), 0, nbytes(v))


def _fits(low, members: list[_Member]) -> bool:
    """Whether the members may run row by row (see the module's docstring)."""
    values = {v for m in members for v in m.op.operands + m.op.results}
    values = [v for v in values if v.op is None or not v.op.opdef.has(CONSTANT)]
    row_local = {  # row by row in every member that touches it
        v
        for v in values
        if all(v in m.row_local for m in members if v in m.op.operands or v in m.op.results)
    }
    regions = {v: _region(low, v) for v in values}
    for m in members:
        for a in m.op.results:
            ra = regions[a]
            for b in values:
                rb = regions[b]
                if b is a or ra[0] != rb[0] or ra[1] + ra[2] <= rb[1] or rb[1] + rb[2] <= ra[1]:
                    continue
                if ra[1:] != rb[1:] or b not in row_local or a not in row_local:
                    return False  # sharing bytes, but not row for row
    row_bytes = {regions[v]: nbytes(v) // members[0].rows for v in row_local}
    return sum(row_bytes.values()) <= ROW_CACHE_BYTES


def plan_chains(low, ops: list[Operation]) -> dict[int, list[Operation]]:
    """{index of a chain's first op: the chain's ops}: runs of two or more consecutive
    ops of `ops` that can run row by row together, one of them a row reduction (kernels
    of elementwise ops alone were left apart by the fusion pass's size cap, and keep
    their own vector loops over the whole tensor)."""
    if low.numerics is not None:
        return {}
    chains: dict[int, list[Operation]] = {}
    i = 0
    while i < len(ops):
        first = _member(ops[i])
        members = [first] if first is not None else []
        j = i + 1
        while members and j < len(ops):
            nxt = _member(ops[j])
            if nxt is None or nxt.rows != first.rows or not _fits(low, members + [nxt]):
                break
            members.append(nxt)
            j += 1
        if _worth_it(members):
            chains[i] = [m.op for m in members]
            i = j
        else:
            i += 1
    return chains


def _worth_it(members: list[_Member]) -> bool:
    """Two or more kernels, one folding rows, and rows long enough for vector loops (a
    kernel over the rows' reduced values, one element a row, may ride along)."""
    return (
        len(members) >= 2
        and any(m.reduces for m in members)
        and max(m.row_elements for m in members) >= ROW_MIN_ELEMENTS
    )


def lower_chain(low, ops: list[Operation]) -> None:
    """One function over rows calling each op's kernel on the row, split over threads."""
    from graphjit.codegen.llvm.parallel import call_split

    calls = [low.kernel_call(op) for op in ops]
    rows = iteration_space(ops[0].regions[0].block)[0]
    arg_types = [a.type for call in calls for a in call.args]
    fn = ir.Function(
        low.module, ir.FunctionType(ir.VoidType(), arg_types + [T.I64, T.I64]), f"rows{low.kernels}"
    )
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    lo, hi = fn.args[-2:]
    with for_range(b, hi, "row", start=lo) as r:
        at = 0
        for call in calls:
            args = list(fn.args[at : at + len(call.args)])
            at += len(call.args)
            per_row = ir.Constant(T.I64, call.extent // rows)
            first = b.mul(r, per_row)
            b.call(call.kernel, args + [first, b.add(first, per_row)])
    b.ret_void()
    all_args = [a for call in calls for a in call.args]
    call_split(low, fn, all_args, rows, sum(call.work for call in calls))
    if any(call.polls for call in calls):  # a kernel may have returned early for a Ctrl-C
        low.poll_interrupt()
