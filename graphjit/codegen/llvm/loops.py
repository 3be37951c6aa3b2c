"""Loop nests over static shapes, with strides per buffer, for kernels and copies. The
geometry (strides, coalescing, sizes) is codegen/layout.py's, shared with the CUDA backend;
this module only emits the LLVM loops that walk it."""

from __future__ import annotations

from contextlib import contextmanager

from llvmlite import ir

from graphjit.codegen.layout import coalesce, size_of
from graphjit.codegen.llvm.sizes import i64
from graphjit.codegen.llvm.types import I32, I64
from graphjit.ir.symbolic import hint, is_symbolic


class Carried:
    """The value a loop carries from one iteration to the next (see accumulate_range):
    `value` is this iteration's, the body sets `next`; after the loop, `value` is the
    last one (the initial value when the loop ran no iteration)."""

    def __init__(self, index: ir.Value, value: ir.Value | None):
        self.index, self.value, self.next = index, value, None


@contextmanager
def _counted_loop(b: ir.IRBuilder, count, name: str, start, step: int, init=None):
    """`for (i = start; i < count; i += step)`, carrying one value when `init` is given."""
    count, start = i64(count, b), i64(start, b)
    pre = b.block
    header = b.append_basic_block(f"{name}.header")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start, pre)
    value = None
    if init is not None:
        value = b.phi(init.type, name=f"{name}.value")
        value.add_incoming(init, pre)
    b.cbranch(b.icmp_signed("<", index, count), body, done)
    b.position_at_end(body)
    carried = Carried(index, value)
    yield carried
    index.add_incoming(b.add(index, i64(step, b), flags=("nsw", "nuw")), b.block)
    if value is not None:
        value.add_incoming(carried.next, b.block)
    b.branch(header)
    b.position_at_end(done)
    carried.value = value


@contextmanager
def for_range(b: ir.IRBuilder, count, name: str = "i", start=0, step: int = 1):
    """`with for_range(b, n) as i:` emits `for (i = start; i < n; i += step) { body }`; n,
    start and step are Python ints or i64 values (a step > 0)."""
    with _counted_loop(b, count, name, start, step) as carried:
        yield carried.index


@contextmanager
def accumulate_range(b: ir.IRBuilder, count, init: ir.Value, name: str = "acc", start=0):
    """`with accumulate_range(b, n, init) as c:` emits `for (i = start; i < n; i++)` with a
    value carried in a register (c.index, c.value; the body assigns c.next): a reduction
    from its own start value, which LLVM vectorises when the combining op allows
    reassociation."""
    with _counted_loop(b, count, name, start, 1, init) as carried:
        yield carried


@contextmanager
def loop_nest(b: ir.IRBuilder, space, strides_list, name="k", outer=None, poll=None):
    """Loops over `space`; yields one i64 element offset per buffer's strides. `outer`
    (lo, hi) restricts the outermost loop after coalescing (a thread's share). `poll(b)`
    emits a check that may leave the loop nest (Ctrl-C): a nest of more than
    `poll_elements` elements runs its outermost loop in chunks and polls between them, so
    the inner loops stay free of it (and vectorise)."""
    space, strides_list = coalesce(space, strides_list)
    offsets = [ir.Constant(I64, 0) for _ in strides_list]
    with _nest(b, space, strides_list, offsets, 0, name, outer, poll) as result:
        yield result


POLL_ELEMENTS = 1 << 16  # about 0.1-1 ms of kernel work between two polls


def polls(space) -> bool:
    """Whether a loop nest over `space` is long enough to poll for Ctrl-C: one whose size
    is known only when it runs (ir/symbolic.py) may be, and polls (in chunks)."""
    size = size_of(space)
    return is_symbolic(size) or size > POLL_ELEMENTS


@contextmanager
def outer_range(b, lo, hi, name, space, poll):
    """The outermost loop, in chunks with a poll before each when the nest is long."""
    if poll is None or not polls(space):
        with for_range(b, hi, name, start=lo) as i:
            yield i
        return
    rows = max(1, POLL_ELEMENTS // max(1, hint(size_of(space[1:]))))
    hi = i64(hi, b)
    with for_range(b, hi, f"{name}.chunk", start=lo, step=rows) as first:
        poll(b)
        end = b.add(first, ir.Constant(I64, rows))
        end = b.select(b.icmp_signed("<", end, hi), end, hi)
        with for_range(b, end, name, start=first) as i:
            yield i


@contextmanager
def _nest(b, space, strides_list, offsets, axis, name, outer=None, poll=None):
    if axis == len(space):
        yield offsets
        return
    lo, hi = outer if axis == 0 and outer is not None else (0, space[axis])
    loop = (
        outer_range(b, lo, hi, f"{name}{axis}", space, poll)
        if axis == 0
        else for_range(b, hi, f"{name}{axis}", start=lo)
    )
    with loop as i:
        inner = [
            off if s[axis] == 0 else b.add(off, b.mul(i, i64(s[axis], b)), flags=("nsw",))
            for off, s in zip(offsets, strides_list, strict=True)
        ]
        with _nest(b, space, strides_list, inner, axis + 1, name) as result:
            yield result


def interleave_loops(fn: ir.Function, count: int) -> None:
    """Ask LLVM's loop vectoriser for `count` vectors an iteration of each of `fn`'s loops
    (llvm.loop.interleave.count on its back edge; a loop it does not vectorise ignores
    it). On its own it interleaves no loop of under 128 iterations, nor one whose body is
    this large: a kernel calling its math out of line (mathlib.OUT_OF_LINE_CALLS) is a
    chain of dependent calls a vector, latency-bound, and two independent vectors an
    iteration overlap. The 300-op tanh chain: 256 floats 33 -> 31 us, 4112 floats 272 ->
    188 us, 100000 floats 5.7 -> 4.1 ms; the 3000-op chain 289-317 -> 195-233 us. Every
    lane computes what it did: the same bits."""
    module = fn.module
    name = ir.MetaDataString(module, "llvm.loop.interleave.count")
    option = module.add_metadata([name, ir.Constant(I32, count)])
    order = {block: i for i, block in enumerate(fn.blocks)}
    for block in fn.blocks:
        branch = block.terminator
        if type(branch) is ir.Branch and order[branch.operands[0]] <= order[block]:
            loop_id = ir.MDValue(module, [option], name=str(len(module.metadata)))
            loop_id.operands = (loop_id, option)  # (a loop's ID names itself: LLVM's rule)
            branch.set_metadata("llvm.loop", loop_id)
