"""One fused region op → one LLVM function: a loop nest over the iteration space that
evaluates the region element by element with the scalar emitter table.

    void kernel(T0* noalias in0, ..., U0* noalias out0, ...)

Inputs broadcast to the iteration space by their strides (0 along broadcast axes); a
reduction (always the region's last op) accumulates into its output, which is first set
to the reduction's identity.

Float sums are summed pairwise by blocks, for NumPy's accuracy (error O(log n * eps)
rather than O(n * eps)) at the speed of a vectorised loop. A sum in one register per
output, in order, loses about n * eps: 1.5e-3 relative for a mean of 16M values. So:
- a reduced innermost axis is summed in a register from zero, in rows of at most
  ROW_CHUNK elements (a long axis is cut into chunks): LLVM vectorises that sum (the
  adds allow reassociation) into a vector accumulator: 64 elements a lane for float32
  on AVX-512 (asking LLVM for 4 interleaved accumulators, 16 a lane, was 5-10% faster
  in cache but 15-25% slower on a sum streamed from memory);
- no output slot receives more than CHAIN partial sums one after another: a reduced
  axis that would give more is cut into blocks of rows, each summed into a zeroed
  buffer of partial sums (one per output it touches), and the blocks' sums are combined
  pairwise (a binary tree of blocks, one buffer per level, in the caller's scratch).
  Along an outer axis this vectorises across the kept axes inside it, like the plain
  sum, so the cost is the buffer's zeroing and merging, once per block.
The order is fixed by the shapes and the target's vector width, never by the run (a
reduction kernel runs on one thread, or on several by whole rows of a kept outermost
axis, each folded by one thread in the same order, or by the blocks of an outermost
cascade, whose sums are combined in the cascade's own tree: splits_by_blocks): results
are deterministic.
Products stay in order: every rounding of a product scales the result by (1 + delta)
whatever the order, so pairing them gains nothing; max and min are exact in any order;
integer sums are exact (wrapping). A float max/min along a row folds integer keys that
order as the floats do, NaN's key winning (scalar.order_key): LLVM vectorises an integer
max into one instruction a vector, a NaN-propagating float max into five dependent ones,
and NumPy's compare-and-select not at all.

float16 and bfloat16 values are float32 registers (types.py): every inner op computes in
float32 and its narrow result is rounded at once, so that each intermediate value is the
one the interpreter (NumPy's float16, ml_dtypes' bfloat16) has. A narrow reduction
accumulates in float32 instead, in a scratch buffer the caller passes after the outputs
(`accumulator_bytes`, which also holds the pairwise sums' partial sums), and rounds once
into its output at the end, as PyTorch does."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from llvmlite import ir

from graphjit.codegen.layout import (
    broadcast_strides,
    coalesce,
    contiguous_strides,
    iteration_space,
    keepdims_shape,
    size_of,
)
from graphjit.codegen.llvm import interrupt, mathlib, sizes
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.faults import KernelFaults
from graphjit.codegen.llvm.loops import (
    accumulate_range,
    for_range,
    interleave_loops,
    loop_nest,
    outer_range,
    polls,
)
from graphjit.codegen.llvm.numerics import KernelChecks
from graphjit.codegen.llvm.scalar import (
    SCALAR_EMITTERS,
    combine,
    fold_keys,
    from_order_key,
    identity,
    is_keyed,
    order_key,
)
from graphjit.errors import BackendError
from graphjit.ir.core import Operation
from graphjit.ir.ops import CONSTANT, REDUCTION
from graphjit.ir.ops.elementwise import value_checked_ops
from graphjit.ir.symbolic import has_symbolic_dims, hint, is_symbolic, round_up
from graphjit.ir.types import DType, float32

# Ops whose narrow-float result is one of their operands' values (already rounded)
EXACT_ON_NARROW = frozenset(
    {"select", "stop_gradient", "broadcast_like", "broadcast_to", "neg", "abs"}
)


def _reduction(body):
    return next((o for o in body.ops if o.opdef.has(REDUCTION)), None)


def accumulator_bytes(op: Operation) -> int:
    """The scratch a fused op's kernel takes after its outputs (0: none): a float16/bfloat16
    reduction's float32 sums, then the partial sums of a pairwise float sum."""
    body = op.regions[0].block
    reduction = _reduction(body)
    if reduction is None:
        return 0
    return _scratch_layout(body, reduction)[2]


def _scratch_layout(body, reduction) -> tuple[int, int, int]:
    """(bytes of the narrow accumulator, byte offset of the partial sums, total bytes)."""
    narrow = reduction.result.type.dtype.is_narrow_float
    wide = 4 * size_of(reduction.result.type.shape) if narrow else 0
    partials = _reduction_axes(body, reduction)[1] * _accumulator_dtype(reduction).np.itemsize
    start = round_up(wide, SCRATCH_ALIGN)
    return wide, start, (start + partials if partials else wide)


def _accumulator_dtype(reduction) -> DType:
    dtype = reduction.result.type.dtype
    return float32 if dtype.is_narrow_float else dtype


def _kernel_strides(body, reduction, space) -> list[list[int]]:
    """Element strides over `space` of each buffer: the inputs, then the outputs."""
    strides = [broadcast_strides(v.type.shape, space) for v in body.args]
    for v in body.terminator.operands:
        if reduction is not None and v is reduction.result:
            strides.append(broadcast_strides(keepdims_shape(reduction, space), space))
        else:
            strides.append(contiguous_strides(space))
    return strides


def emit_kernel(
    module: ir.Module, op: Operation, name: str, shared=(), numerics=None, by_blocks=False
):
    """Returns (function, outer extent, splittable). The function takes the buffers, then
    `i64 lo, i64 hi`: the range of the outermost loop (after coalescing) to run, so that
    threads can share a kernel without a reduction, or one whose outermost loop is a
    kept axis (rows: see splits_by_rows). `shared`: groups of parameter indices
    that point at the same storage (an output written over an input in place); see
    _buffer_pointers for how the kernel reaches them. With
    `numerics` (a NumericsChecks), an `i32*` slot comes before lo and hi: the kernel folds
    into it the code of the first inner op that made NaN or infinity. When inner ops can
    fail on their values (faults.py), another `i32*` slot follows for their bits; the
    fourth result lists those ops. With `by_blocks` (a kernel that splits_by_blocks), lo
    and hi select blocks of its cascade, each folded into partial sums of its own in a
    buffer that comes after the others."""
    body = op.regions[0].block
    outputs = body.terminator.operands
    space = iteration_space(body)
    reduction = _reduction(body)
    fallible = value_checked_ops(body)
    arg_types = [T.storage_type(v.type.dtype).as_pointer() for v in body.args + outputs]
    scratch_bytes = 0 if by_blocks else accumulator_bytes(op)
    if scratch_bytes:
        arg_types.append(T.F32.as_pointer())
    if by_blocks:  # the blocks' partial sums (see splits_by_blocks)
        arg_types.append(T.storage_type(_accumulator_dtype(reduction)).as_pointer())
    slot_type = [T.I32.as_pointer()] * ((numerics is not None) + bool(fallible))
    dims_type = [T.I64.as_pointer()] if takes_dims(op) else []
    fn = ir.Function(
        module,
        ir.FunctionType(ir.VoidType(), arg_types + slot_type + dims_type + [T.I64, T.I64]),
        name,
    )
    fn.linkage = "internal"
    if dims_type:  # the run's sizes, for the kernel's symbolic extents and strides
        sizes.register(fn, fn.args[-3])
    if sum(o.name in mathlib.MATH_FUNCTIONS for o in body.ops) >= mathlib.OUT_OF_LINE_CALLS:
        mathlib.mark_out_of_line(fn)  # (a long chain of tanh compiles 9x faster)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    n_buffers = len(body.args) + len(outputs)
    buffers = _buffer_pointers(b, fn.args[: len(arg_types)], shared)
    checks = KernelChecks(b, numerics) if numerics is not None else None  # before any loop
    faults = KernelFaults(b, fallible) if fallible else None
    in_ptrs, out_ptrs = buffers[: len(body.args)], buffers[len(body.args) : n_buffers]
    scratch = fn.args[n_buffers] if scratch_bytes or by_blocks else None
    n_buffers += bool(scratch_bytes or by_blocks)
    lo, hi = fn.args[-2:]
    strides = _kernel_strides(body, reduction, space)
    poll = interrupt.returning_poll(b, module) if polls(space) else None
    evaluate = _Evaluator(b, body, in_ptrs, out_ptrs, reduction, checks, faults)
    if reduction is None:
        with loop_nest(b, space, strides, outer=(lo, hi), poll=poll) as offsets:
            evaluate(offsets)
        coalesced, _ = coalesce(space, strides)
        extent = coalesced[0] if coalesced else 1
    elif by_blocks:
        extent = _emit_blocks(b, body, reduction, scratch, evaluate, (lo, hi), poll)
    else:
        extent = _emit_reduction(b, body, reduction, out_ptrs, scratch, evaluate, (lo, hi), poll)
    if checks is not None:
        if reduction is not None and reduction.result.type.dtype.is_floating:
            j = outputs.index(reduction.result)
            first, count = _output_slots(b, body, reduction, lo, hi)
            checks.check_buffer(reduction, b.gep(out_ptrs[j], [first]), count)
        checks.publish(fn.args[n_buffers])
    if faults is not None:
        faults.publish(fn.args[n_buffers + (checks is not None)])
    b.ret_void()
    if mathlib.is_out_of_line(fn):
        interleave_loops(fn, 2)  # (chains of calls: see interleave_loops)
    splittable = by_blocks or reduction is None or splits_by_rows(body, reduction)
    return fn, extent, splittable, fallible


def takes_dims(op: Operation) -> bool:
    """Whether a fused op's kernel takes the run's sizes (an `i64* dims` before lo and
    hi): when a size it loops over is known only when the program runs (symbolic.py)."""
    return any(has_symbolic_dims(v.type) for v in op.operands + op.results)


def outer_extent(body) -> int:
    """The extent of a fused region's outermost loop after coalescing: what the `lo, hi`
    of its kernel select a range of (emit_kernel returns the same number)."""
    reduction = _reduction(body)
    if reduction is not None:
        axes, _ = _reduction_axes(body, reduction)
        return axes[0].extent if axes else 1
    space = iteration_space(body)
    coalesced, _ = coalesce(space, _kernel_strides(body, None, space))
    return coalesced[0] if coalesced else 1


def _buffer_pointers(b: ir.IRBuilder, args, shared) -> list[ir.Value]:
    """The pointer the kernel accesses each buffer parameter through. All the parameters
    of a `shared` group point at the same storage, so the kernel reaches them all through
    its first one (cast to each one's element type), which alone is noalias: its loads and
    stores then share one base, and LLVM sees that an in-place elementwise kernel reads
    and writes element i at the same address (distance 0) and vectorises it unchecked.
    (Two noalias-free parameters instead made the vectoriser test `out - in < 64` at run
    time, which in place is always true: the scalar loop ran.) A read at another index
    (a broadcast) is then a dependence LLVM sees and respects: no claim is made for it.
    The group's other parameters are never accessed."""
    pointers = list(args)
    aliased = set()
    for group in shared:
        first, *rest = sorted(group)
        for i in rest:
            aliased.add(i)
            same = args[first]
            pointers[i] = same if same.type == args[i].type else b.bitcast(same, args[i].type)
    for i, arg in enumerate(args):
        if i not in aliased:
            arg.add_attribute("noalias")
    return pointers


def _fill(b, ptr, count, value, dtype) -> None:
    with for_range(b, count, "fill") as i:
        T.store(b, value, b.gep(ptr, [i]), dtype)


def _round_into(b, acc, out, count, dtype) -> None:
    with for_range(b, count, "round") as i:
        T.store(b, T.load(b, b.gep(acc, [i]), float32), b.gep(out, [i]), dtype)


class _Evaluator:
    """Emits the region's ops for one element at given buffer offsets (inputs, then
    outputs): stores the outputs that are not the reduction's and returns the value the
    reduction folds (None without a reduction)."""

    def __init__(self, b, body, in_ptrs, out_ptrs, reduction, checks=None, faults=None):
        self.b, self.body, self.reduction = b, body, reduction
        self.in_ptrs, self.out_ptrs = in_ptrs, out_ptrs
        self.checks, self.faults = checks, faults

    def __call__(self, offsets):
        b, body, reduction = self.b, self.body, self.reduction
        env, loaded = {}, {}

        def value(v):
            if v in env:
                return env[v]
            i = body.args.index(v)
            if i not in loaded:
                loaded[i] = T.load(b, b.gep(self.in_ptrs[i], [offsets[i]]), v.type.dtype)
            return loaded[i]

        folded = None
        for inner in body.ops[:-1]:
            if inner is reduction:
                folded = value(inner.operands[0])
                continue
            if inner.opdef.has(CONSTANT):
                value_attr = inner.attrs["value"].reshape(())
                env[inner.result] = T.constant(inner.result.type.dtype, value_attr)
            else:
                env[inner.result] = self._emit(inner, value)
            if self.checks is not None and inner.result.type.dtype.is_floating:
                self.checks.check(inner, env[inner.result])
        n_in = len(body.args)
        for j, v in enumerate(body.terminator.operands):
            if reduction is None or v is not reduction.result:
                ptr = b.gep(self.out_ptrs[j], [offsets[n_in + j]])
                T.store(b, value(v), ptr, v.type.dtype)
        return folded

    def _emit(self, inner, value):
        emit = SCALAR_EMITTERS.get(inner.name)
        if emit is None:
            raise BackendError(f"llvm backend has no scalar rule for '{inner.name}'", op=inner)
        shape_only = inner.opdef.shape_only_operands(len(inner.operands))
        args = [value(v) for k, v in enumerate(inner.operands) if k not in shape_only]
        try:
            result = emit(self.b, args, inner)
        except BackendError:
            raise
        except Exception as e:  # name the op inside the kernel, not just 'fused'
            raise BackendError(f"emitting '{inner.name}' failed: {e}", op=inner) from e
        dtype = inner.result.type.dtype
        if dtype.is_narrow_float and inner.name not in EXACT_ON_NARROW:
            result = T.quantize(self.b, result, dtype)
        if self.faults is not None:
            self.faults.check(inner, args)
        return result


# -- reductions ------------------------------------------------------------------------------
# A reduced innermost axis is summed in registers from zero in rows of at most ROW_CHUNK
# elements: vectorised 16 wide (float32, AVX-512), that is 64 additions per lane.
ROW_CHUNK = 1024
# At most this many partial sums are added one after another into one output slot before
# the pairwise cascade takes over (NumPy's pairwise sum has 16 per accumulator).
CHAIN = 16
SCRATCH_ALIGN = 64  # bytes: each level of partial sums starts on a cache line
PAIRWISE = frozenset({"reduce_sum", "sum_to"})


@dataclass
class _Axis:
    """One loop of a reduction kernel (after coalescing)."""

    extent: int
    strides: list  # element strides of each buffer: the inputs, then the outputs
    reduced: bool  # the reduction's output does not move along it
    row: bool = False  # the innermost reduced axis: folded in a register from the identity
    cuts_row: int = 0  # the length of the row this axis cuts into chunks of ROW_CHUNK (0: no)
    block: int = 0  # > 0: folded in blocks of this many steps, combined pairwise
    levels: int = 0  # the pairwise tree's height: 2**levels blocks cover the axis
    width: int = 1  # partial sums per level: the extents of the kept axes inside this one
    scratch: int = 0  # element offset of its levels in the partial sums' scratch

    def level_stride(self):
        """Elements from one level's buffer to the next (a whole cache line apart; a size
        of the run where the kept axes' are)."""
        return round_up(self.width, 16)


def _pairwise(reduction) -> bool:
    return reduction.name in PAIRWISE and reduction.result.type.dtype.is_floating


def _reduction_axes(body, reduction) -> tuple[list[_Axis], int]:
    """The loops of a reduction kernel, outermost first, and the elements of scratch its
    pairwise cascades take."""
    space = iteration_space(body)
    space, strides = coalesce(space, _kernel_strides(body, reduction, space))
    out = len(body.args) + body.terminator.operands.index(reduction.result)
    axes = [_Axis(n, [s[k] for s in strides], strides[out][k] == 0) for k, n in enumerate(space)]
    if axes and axes[-1].reduced:
        axes[-1:] = _row_axes(axes[-1])
    return axes, (_plan_blocks(axes) if _pairwise(reduction) else 0)


def _row_axes(last: _Axis) -> list[_Axis]:
    """The innermost reduced axis as a row folded in a register; a long one becomes chunks
    of ROW_CHUNK (the last one shorter), each a row: a pairwise sum combines the chunks,
    and a long kernel polls for Ctrl-C between them."""
    if not is_symbolic(last.extent) and last.extent <= ROW_CHUNK:
        last.row = True
        return [last]  # (a size of the run is always cut: the same bits, and no guard)
    chunks = (last.extent + ROW_CHUNK - 1) // ROW_CHUNK  # (a SymInt's stays symbolic)
    chunk_strides = [s * ROW_CHUNK for s in last.strides]
    cut = _Axis(chunks, chunk_strides, reduced=True, cuts_row=last.extent)
    return [cut, _Axis(ROW_CHUNK, last.strides, reduced=True, row=True)]


def _plan_blocks(axes: list[_Axis]) -> int:
    """Blocks the reduced axes along which more than CHAIN partial sums would reach one
    output slot in turn; returns the scratch their levels take, in elements."""
    chain = 1  # partial sums one visit of the loops inside adds into each slot, in turn
    width = 1
    scratch = 0
    for axis in reversed(axes):
        if not axis.reduced:
            width *= axis.extent
        elif axis.row:
            chain = 1
        elif not is_symbolic(axis.extent) and axis.extent * chain <= CHAIN:
            chain *= axis.extent  # (a size of the run always cascades: no guard on it)
        else:
            axis.block = CHAIN // chain
            axis.width, axis.scratch = width, scratch
            axis.levels = _tree_height(axis.extent, axis.block, axis.level_stride())
            scratch += (axis.levels + 1) * axis.level_stride()
            chain = 1
    return scratch


# A cascade over an axis whose length is a size of the run (ir/symbolic.py) runs as
# _ReductionNest._carried, which reaches the levels this run's length needs: its scratch
# holds as many as SYMBOLIC_LEVEL_ELEMENTS of partial sums allow, up to SYMBOLIC_LEVELS
# (2**40 blocks: any length), and a longer axis than they cover compiles again (a guard).
SYMBOLIC_LEVEL_ELEMENTS = 1 << 20
SYMBOLIC_LEVELS = 40


def _tree_height(extent, block: int, level_stride: int) -> int:
    """Levels of a pairwise tree over ceil(extent / block) blocks."""
    needed = (-(-hint(extent) // block) - 1).bit_length()
    if not is_symbolic(extent):
        return needed
    affordable = SYMBOLIC_LEVEL_ELEMENTS // hint(level_stride) - 1  # (an estimate: no guard)
    levels = max(needed + 1, min(SYMBOLIC_LEVELS, affordable))
    if not extent <= block << levels:  # (a guard: longer axes compile again)
        raise BackendError("a cascade's length outgrew its own hint")  # (cannot happen)
    return levels


def _tree_height_at_run_time(b: ir.IRBuilder, blocks: ir.Value) -> ir.Value:
    """_tree_height's levels for `blocks` blocks, at least 1 (level 1 takes each block's
    sums in _carried): bit_length(blocks - 1)."""
    bits = b.sub(_i64(64), b.ctlz(b.sub(blocks, _i64(1)), ir.Constant(T.I1, 0)))
    return b.select(b.icmp_unsigned("<=", blocks, _i64(2)), _i64(1), bits)


def _emit_reduction(b, body, reduction, out_ptrs, scratch, evaluate, bounds, poll) -> int:
    """The loops of a kernel whose region ends in `reduction`; returns the outermost
    loop's extent (what `bounds`, lo and hi, select a range of)."""
    axes, _ = _reduction_axes(body, reduction)
    extent = axes[0].extent if axes else 1
    if size_of(reduction.result.type.shape) == 0:
        return extent  # then the space is empty too: nothing to compute, nor any scratch
    j = body.terminator.operands.index(reduction.result)
    dtype = _accumulator_dtype(reduction)
    target = out_ptrs[j]
    wide, partials_at, _ = _scratch_layout(body, reduction)
    if wide:  # float16/bfloat16: float32 sums in the scratch, rounded at the end
        target = scratch
    partials = None
    if scratch is not None:
        raw = b.gep(b.bitcast(scratch, T.I8P), [sizes.i64(partials_at, b)])
        partials = b.bitcast(raw, T.storage_type(dtype).as_pointer())
    # only the slots of this call's rows: other threads may be folding into the rest
    first, count = _output_slots(b, body, reduction, *bounds)
    _fill(b, b.gep(target, [first]), count, identity(reduction.name, dtype), dtype)
    nest = _ReductionNest(b, body, reduction, axes, evaluate, partials, poll)
    nest.run(target, *bounds)
    if wide:  # round the float32 sums once
        out = b.gep(out_ptrs[j], [first])
        _round_into(b, b.gep(target, [first]), out, count, reduction.result.type.dtype)
    return extent


def splits_by_rows(body, reduction) -> bool:
    """Whether threads may share a reduction kernel by ranges of its outermost loop: when
    that loop is a kept axis (softmax's and layer norm's rows), each output slot is folded
    by one call alone, in the same order whatever the range, so the split changes neither
    the result nor its determinism. Not when a pairwise cascade needs scratch partial sums
    (the threads would share one buffer of them)."""
    axes, partials = _reduction_axes(body, reduction)
    return bool(axes) and not axes[0].reduced and partials == 0


def splits_by_blocks(body, reduction) -> bool:
    """Whether threads may share a reduction kernel by blocks of its outermost loop: when
    that loop is a float sum's pairwise cascade (a column sum, a sum over everything) and
    no loop inside it cascades too. Each block is then folded into partial sums of its own
    (emit_kernel's by_blocks), and the blocks' sums are combined after, pairwise in the
    cascade's tree (combine_pairwise): the same additions in the same order as on one
    thread, so the same bits, whatever the thread count. (float16/bfloat16 sums, which
    accumulate in float32 scratch, keep their single call.)"""
    if reduction.result.type.dtype.is_narrow_float:
        return False
    axes, _ = _reduction_axes(body, reduction)
    return bool(axes) and axes[0].block > 0 and not any(axis.block for axis in axes[1:])


def block_layout(body, reduction) -> tuple[int, int, int]:
    """(blocks, elements of partial sums per block, elements from one block's to the
    next's) of a kernel that splits_by_blocks."""
    axis = _reduction_axes(body, reduction)[0][0]
    blocks = (axis.extent + axis.block - 1) // axis.block  # (a size of the run's: symbolic)
    return blocks, axis.width, axis.level_stride()


def _emit_blocks(b, body, reduction, partials, evaluate, bounds, poll) -> int:
    """The loops of a kernel that splits_by_blocks, over blocks [lo, hi): each block's
    elements folded into its partial sums (zeroed first), as the cascade's first level
    folds them. Returns the count of blocks."""
    axes, _ = _reduction_axes(body, reduction)
    nest = _ReductionNest(b, body, reduction, axes, evaluate, None, poll)
    nest.run_blocks(partials, *bounds)
    return block_layout(body, reduction)[0]


def combine_pairwise(b: ir.IRBuilder, partials, count: int, stride: int, width: int) -> None:
    """partials[0 : width] = the pairwise sum of `count` buffers of `width` values, `stride`
    apart: neighbours first, then pairs of pairs, ...: the tree of _ReductionNest._cascade
    (left + right at every node, a missing right half skipped), so the same bits. A count
    known only when the program runs (an i64 value) takes the same steps in a loop."""
    if isinstance(count, ir.Value):
        _combine_at_run_time(b, partials, count, stride, width)
        return
    step = 1
    while step < count:
        _combine_level(b, partials, count, step, stride, width)
        step *= 2


def _combine_level(b, partials, count, step, stride: int, width: int) -> None:
    """partials[c] += partials[c + step] for c = 0, 2 step, 4 step, ... below count - step
    (count and step ints, or i64 values)."""
    if isinstance(count, ir.Value):
        end, pairs = b.sub(count, step), b.add(step, step)
    else:
        end, pairs = count - step, 2 * step
    with for_range(b, end, "pairs", step=pairs) as c:
        left = b.gep(partials, [b.mul(c, sizes.i64(stride, b))])
        right = b.gep(partials, [b.mul(b.add(c, sizes.i64(step, b)), sizes.i64(stride, b))])
        with for_range(b, width, "pair") as k:
            at = b.gep(left, [k])
            b.store(b.fadd(b.load(at), b.load(b.gep(right, [k]))), at)


def _combine_at_run_time(b, partials, count: ir.Value, stride: int, width: int) -> None:
    """combine_pairwise's levels in a loop: for (step = 1; step < count; step *= 2)."""
    before = b.block
    header, body, done = (b.append_basic_block(f"levels.{n}") for n in ("header", "body", "done"))
    b.branch(header)
    b.position_at_end(header)
    step = b.phi(T.I64, name="step")
    step.add_incoming(_i64(1), before)
    b.cbranch(b.icmp_signed("<", step, count), body, done)
    b.position_at_end(body)
    _combine_level(b, partials, count, step, stride, width)
    step.add_incoming(b.shl(step, _i64(1)), b.block)
    b.branch(header)
    b.position_at_end(done)


def _output_slots(b, body, reduction, lo, hi) -> tuple[ir.Value, ir.Value]:
    """(first, count): the reduction's output slots that a call over [lo, hi) of the
    outermost loop writes. Along a kept outermost axis they are contiguous (the output is
    laid out like the kept axes); otherwise a call covers all of them."""
    axes, _ = _reduction_axes(body, reduction)
    if not axes or axes[0].reduced:
        return _i64(0), sizes.i64(size_of(reduction.result.type.shape), b)
    out = len(body.args) + body.terminator.operands.index(reduction.result)
    per_step = sizes.i64(axes[0].strides[out], b)
    lo, hi = _as_i64(b, lo), _as_i64(b, hi)
    return b.mul(lo, per_step), b.mul(b.sub(hi, lo), per_step)


class _ReductionNest:
    """Emits the loops of a reduction kernel over its `_Axis` list: each element's value
    is folded into its slot of a target buffer (the output, or a level of partial sums),
    whose offset moves with the output's strides along the kept axes."""

    def __init__(self, b, body, reduction, axes, evaluate, partials, poll):
        self.b, self.name = b, reduction.name
        self.dtype = _accumulator_dtype(reduction)
        self.axes, self.evaluate, self.partials, self.poll = axes, evaluate, partials, poll
        self.buffers = len(body.args) + len(body.terminator.operands)
        self.out = len(body.args) + body.terminator.operands.index(reduction.result)
        self.identity = identity(reduction.name, self.dtype)
        # the pairwise combination's own additions keep their order: no reassociation
        self.ordered = _pairwise(reduction)

    def run(self, target, lo, hi) -> None:
        zero = _i64(0)
        self._walk(0, [zero] * self.buffers, target, zero, lo, hi)

    def run_blocks(self, partials, lo, hi) -> None:
        """Blocks [lo, hi) of the outermost (cascading) axis, each folded into its own
        partial sums from the identity, as _level folds a block into level 0."""
        b, axis, zero = self.b, self.axes[0], _i64(0)
        with for_range(b, hi, "block", start=_as_i64(b, lo)) as block:
            target = b.gep(partials, [b.mul(block, sizes.i64(axis.level_stride(), b))])
            self._clear(target, axis.width)
            start = b.mul(block, _i64(axis.block))
            end = _min(b, b.add(start, _i64(axis.block)), sizes.i64(axis.extent, b))
            if self.poll is not None:
                self.poll(b)
            with for_range(b, end, "r0.block", start=start) as i:
                self._step(0, i, [zero] * self.buffers, target, zero)

    def _walk(self, a, offsets, target, slot, lo, hi) -> None:
        """Fold the elements of axes a... (axis a over [lo, hi)) into target[slot + ...]."""
        lo, hi = _as_i64(self.b, lo), _as_i64(self.b, hi)
        if a == len(self.axes):
            self._fold_into(target, slot, self.evaluate(offsets))
            return
        axis = self.axes[a]
        if axis.row:
            self._fold_into(target, slot, self._row(axis, offsets, lo, hi))
        elif axis.block:
            self._cascade(a, offsets, target, slot, lo, hi)
        else:
            with self._range(a, lo, hi) as i:
                self._step(a, i, offsets, target, slot)

    def _range(self, a, lo, hi):
        if a == 0 and self.poll is not None:
            extents = [axis.extent for axis in self.axes]
            return outer_range(self.b, lo, hi, "r0", extents, self.poll)
        return for_range(self.b, hi, f"r{a}", start=lo)

    def _step(self, a, i, offsets, target, slot) -> None:
        """The loops inside axis a, at its index i."""
        b, axis = self.b, self.axes[a]
        offsets = [_advance(b, off, i, s) for off, s in zip(offsets, axis.strides, strict=True)]
        if not axis.reduced:
            slot = _advance(b, slot, i, axis.strides[self.out])
        hi = self.axes[a + 1].extent if a + 1 < len(self.axes) else None
        if axis.cuts_row:  # the last chunk is what is left of the row
            left = b.sub(sizes.i64(axis.cuts_row, b), b.mul(i, _i64(ROW_CHUNK)))
            hi = b.select(b.icmp_signed("<", left, _i64(ROW_CHUNK)), left, _i64(ROW_CHUNK))
        self._walk(a + 1, offsets, target, slot, 0, hi)

    def _row(self, axis, offsets, lo, hi):
        """The fold of a row's elements [lo, hi) in a register, from the identity (a float
        max/min folds integer keys, which LLVM vectorises best: scalar.order_key)."""
        b, name = self.b, self.name
        keyed = is_keyed(name, self.dtype)
        start = order_key(b, name, self.identity) if keyed else self.identity
        with accumulate_range(b, hi, start, "row", start=lo) as acc:
            at = [
                _advance(b, off, acc.index, s) for off, s in zip(offsets, axis.strides, strict=True)
            ]
            x = self.evaluate(at)
            if keyed:
                acc.next = fold_keys(b, name, acc.value, order_key(b, name, x))
            else:
                acc.next = combine(b, name, acc.value, x, self.dtype)
        return from_order_key(b, name, acc.value, self.identity.type) if keyed else acc.value

    def _cascade(self, a, offsets, target, slot, lo, hi) -> None:
        """Axis a in blocks of `block` steps, each folded into a zeroed buffer of partial
        sums; two neighbouring blocks' sums are added, then two such pairs, and so on up
        a tree of `levels` levels, whose root is added into the target."""
        axis = self.axes[a]
        if is_symbolic(axis.extent):
            self._carried(a, offsets, target, slot, lo, hi)
            return
        levels = [
            self.b.gep(self.partials, [sizes.i64(axis.scratch + k * axis.level_stride(), self.b)])
            for k in range(axis.levels + 1)
        ]
        # every merge leaves its source zeroed for the next block: one clear here suffices
        self._clear(levels[0], (axis.levels + 1) * axis.level_stride())
        self._level(a, axis.levels, levels, offsets, lo, hi)
        self._merge(target, slot, levels[-1], axis.width)

    def _carried(self, a, offsets, target, slot, lo, hi) -> None:
        """_cascade for a length of the run: _level's tree and additions as one loop over
        the blocks, its code the same for any height (nested a loop a level, 10 deep, LLVM
        took 0.8 s over them). Block t is folded into level 0, merged into level 1; level
        k into level k + 1 whenever t + 1 is a multiple of 2**k (its subtree complete,
        where _level merges it). After the last block each level up to this run's height
        is merged into the next, from the bottom (the subtrees the end cut short), and that
        root into the target: the tree of a compile for this length, the same bits."""
        b, axis = self.b, self.axes[a]
        base = b.gep(self.partials, [sizes.i64(axis.scratch, b)])
        stride = sizes.i64(axis.level_stride(), b)
        blocks = b.udiv(b.add(b.sub(hi, lo), _i64(axis.block - 1)), _i64(axis.block))
        height = _tree_height_at_run_time(b, blocks)

        def level(k: ir.Value) -> ir.Value:
            return b.gep(base, [b.mul(k, stride)])

        def merge_up(k: ir.Value) -> None:
            self._merge(level(b.add(k, _i64(1))), _i64(0), level(k), axis.width)

        self._clear(base, b.mul(b.add(height, _i64(1)), stride))  # (the levels it reaches)
        with for_range(b, hi, f"r{a}.blocks", start=lo, step=axis.block) as start:
            if self.poll is not None:
                self.poll(b)
            end = _min(b, b.add(start, _i64(axis.block)), hi)
            with for_range(b, end, f"r{a}.block", start=start) as i:
                self._step(a, i, offsets, base, _i64(0))
            done = b.add(b.udiv(b.sub(start, lo), _i64(axis.block)), _i64(1))
            with _while(b, _i64(0), "carry") as (k, go):
                complete = b.and_(done, b.sub(b.shl(_i64(1), k), _i64(1)))
                go(b.and_(b.icmp_signed("<", k, height), b.icmp_signed("==", complete, _i64(0))))
                merge_up(k)
        with for_range(b, height, "flush", start=_i64(1)) as k:
            merge_up(k)
        self._merge(target, slot, level(height), axis.width)

    def _level(self, a, k, levels, offsets, start, hi) -> None:
        """Level k's buffer (zero) += the sum of axis a's steps [start, start + block *
        2**k), clipped at hi."""
        b, axis = self.b, self.axes[a]
        span = axis.block << k
        end = _min(b, b.add(start, _i64(span)), hi)
        if k == 0:
            if self.poll is not None:
                self.poll(b)
            with for_range(b, end, f"r{a}.block", start=start) as i:
                self._step(a, i, offsets, levels[0], _i64(0))
            return
        with for_range(b, end, f"r{a}.level{k}", start=start, step=span // 2) as half:
            self._level(a, k - 1, levels, offsets, half, hi)
            self._merge(levels[k], _i64(0), levels[k - 1], axis.width)

    def _fold_into(self, target, slot, value) -> None:
        ptr = self.b.gep(target, [slot])
        self.b.store(self._fold(self.b.load(ptr), value), ptr)

    def _fold(self, acc, value):
        if self.ordered:
            return self.b.fadd(acc, value)
        return combine(self.b, self.name, acc, value, self.dtype)

    def _merge(self, target, slot, partial, width) -> None:
        """target[slot + w] += partial[w], then partial[w] = 0, for w < width."""
        if width == 1:
            self._fold_into(target, slot, self.b.load(partial))
            self.b.store(self.identity, partial)
            return
        with for_range(self.b, width, "merge") as w:
            source = self.b.gep(partial, [w])
            self._fold_into(target, self.b.add(slot, w), self.b.load(source))
            self.b.store(self.identity, source)

    def _clear(self, buffer, width) -> None:
        if width == 1:
            self.b.store(self.identity, buffer)
            return
        with for_range(self.b, width, "clear") as w:
            self.b.store(self.identity, self.b.gep(buffer, [w]))


def _i64(n: int) -> ir.Constant:
    return ir.Constant(T.I64, n)


def _advance(b, offset, i, stride):
    """offset + i * stride (offset unchanged along a stride of 0)."""
    if stride == 0:
        return offset
    return b.add(offset, b.mul(i, sizes.i64(stride, b)), flags=("nsw",))


def _as_i64(b, n):
    return None if n is None else sizes.i64(n, b)


@contextmanager
def _while(b: ir.IRBuilder, first: ir.Value, name: str):
    """`with _while(b, first) as (k, go):` emits `for (k = first; cond; k++) { body }`:
    the body calls go(cond) first, then emits what runs while cond holds."""
    before = b.block
    header, body, done = (b.append_basic_block(f"{name}.{n}") for n in ("header", "body", "done"))
    b.branch(header)
    b.position_at_end(header)
    k = b.phi(T.I64, name=name)
    k.add_incoming(first, before)

    def go(condition):
        b.cbranch(condition, body, done)
        b.position_at_end(body)

    yield k, go
    k.add_incoming(b.add(k, _i64(1)), b.block)
    b.branch(header)
    b.position_at_end(done)


def _min(b, x, hi):
    return b.select(b.icmp_signed("<", x, hi), x, hi)
