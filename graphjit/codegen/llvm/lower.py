"""A whole optimised function → one native entry point:

    i32 graphjit_entry(i8** inputs, i8** outputs, i8* arena, i64* dims)

Function arguments come from `inputs`; a constant is a global of the module, or, from
INLINE_CONSTANT_BYTES up, an array the runner keeps and passes in `inputs` after the
arguments (`Lowering.constants`); other values live in the arena at offsets fixed at
compile time (polynomials in the run's `dims` where sizes are the run's), and the
returned values are copied to `outputs`. `cond` and `while` become branches and loops in
the same function, fused regions become kernel functions it calls, and matmul calls BLAS.
Errors that only show at run time come back through the returned status word."""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from graphjit.codegen.layout import (
    broadcast_strides,
    contiguous_strides,
    iteration_space,
    nbytes,
    size_of,
    slice_geometry,
)
from graphjit.codegen.lists import list_lowerings
from graphjit.codegen.llvm import (
    collectives,
    conv,
    dynamic_slice,
    faults,
    indexing,
    interrupt,
    random,
    row_chains,
    scan,
    sizes,
    small_gemm,
    sorting,
    widen,
)
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.blas import call_gemm, single_threaded_gemm, split_matmul
from graphjit.codegen.llvm.control import op_cond, op_while
from graphjit.codegen.llvm.kernel import (
    accumulator_bytes,
    block_layout,
    combine_pairwise,
    emit_kernel,
    splits_by_blocks,
    takes_dims,
)
from graphjit.codegen.llvm.lists import ListLowering
from graphjit.codegen.llvm.loops import for_range, loop_nest, polls
from graphjit.codegen.llvm.numerics import NumericsChecks, op_check_numerics
from graphjit.codegen.llvm.parallel import PARALLEL_MIN_WORK, call_split, kernel_work
from graphjit.codegen.llvm.scalar import convert, identity
from graphjit.errors import BackendError, GraphjitError, RuntimeCheckError
from graphjit.ir.core import Block, Function, Operation, Value
from graphjit.ir.ops import CONSTANT, REDUCTION
from graphjit.ir.ops.control import runtime_shape_error
from graphjit.ir.ops.elementwise import value_checked_ops
from graphjit.ir.ops.linalg import matrix_dims
from graphjit.ir.printer import print_region
from graphjit.ir.symbolic import at_least_both, is_symbolic, round_up, size_key
from graphjit.ir.types import ListType, float32, float64, int64
from graphjit.passes.memory import ALIAS, ARENA, VARIABLE, plan_memory

ENTRY = "graphjit_entry"


def _pays(work) -> bool:
    """Whether threads may pay for a kernel: a size of the run's is decided when it runs
    (call_split), so its kernel is split by blocks whatever the size (the same bits)."""
    return is_symbolic(work) or work >= PARALLEL_MIN_WORK


@dataclass
class KernelCall:
    """A fused op's emitted kernel and how to call it: `kernel(*args, lo, hi)` over the
    outermost loop's [0, extent) (see kernel.emit_kernel)."""

    kernel: ir.Function
    args: list
    extent: int
    work: int  # parallel.kernel_work's estimate; 0 when it must not be split
    polls: bool  # it checks for Ctrl-C (may return early)
    fallible: list  # ops whose failed value checks it reports through its last slot


MXCSR_FTZ, MXCSR_DAZ = 1 << 15, 1 << 6  # flush results / treat inputs as zero if subnormal
ALIGN = 64
# A constant this large or larger is not written into the module: llvmlite escapes an
# array's bytes one by one into the IR text (three characters a byte), which the compile
# worker and this process then parse, and the object code carries them again. A 15 MiB
# constant made the first run 1.25 s and peaked at 386 MiB; the MLP with its weights as
# constants spent 0.39 s of a 1.0 s first run escaping them. Beside the code, a module no
# longer depends on its constants' values, so programs that differ only there share one
# compile (and one disk cache entry).
INLINE_CONSTANT_BYTES = 4096


class Lowering:
    """Builds the LLVM module for one function; `LOWERINGS` maps op names to methods."""

    def __init__(
        self,
        fn: Function,
        name: str = "graphjit",
        check_numerics: bool = False,
        flush_denormals: bool = False,
    ):
        self.fn = fn
        self.flush_denormals = flush_denormals
        self.plan = getattr(fn, "memory_plan", None)
        if self.plan is None:  # the pipeline runs in one place: runtime/executable.py
            raise BackendError(
                "the llvm backend lowers an optimised function with a memory plan: compile "
                "it with runtime.executable.compile_program (the pipeline's fusion and "
                "memory passes), not by calling the backend directly"
            )
        if self.plan.arena_bytes is None:
            raise runtime_shape_error(fn, "llvm") or BackendError(
                "the llvm backend needs every shape known (specialise first)"
            )
        if not check_numerics:  # (which keeps kernels apart: no row chains)
            groups = row_chains.row_groups(fn)
            if groups:  # planned again, the chains' values kept apart (row_chains.py)
                self.plan = fn.memory_plan = plan_memory(fn, groups)
        # Scratch for staging copies lives in the arena after the plan's buffers: nothing
        # the size of a tensor may go on the native stack (8 MiB, and threads get less).
        self.scratch_base = round_up(self.plan.arena_bytes, ALIGN)
        self.scratch_bytes = 0
        self.module = ir.Module(name)
        entry_type = ir.FunctionType(
            T.I32, [T.I8P.as_pointer(), T.I8P.as_pointer(), T.I8P, T.I64.as_pointer()]
        )
        self.entry = ir.Function(self.module, entry_type, ENTRY)
        self.b = ir.IRBuilder(self.entry.append_basic_block("entry"))
        sizes.register(self.entry, compute=lambda b, n: self.i64(n))
        self.ptrs: dict[Value, ir.Value] = {}
        self.constants: list[np.ndarray] = []  # passed in `inputs` after the arguments
        self.arena_pointers: dict[int, ir.Value] = {}
        self.size_values: dict = {}  # SymInt -> its i64, computed in the entry block
        self.returned = {}  # value -> index of the output slot it is computed into
        for j, v in enumerate(fn.block.terminator.operands):
            self.returned.setdefault(v, j)
        self.kernels = 0
        self.outlined_functions: dict = {}  # (name, argument types, key) -> function
        self.block_readers: dict = {}  # block -> value -> its readers (row_chains._readers)
        self.kernels_by_key: dict = {}  # kernel_key -> (kernel, extent, splittable)
        self.errors: list[tuple] = []  # status word - 1 -> (error class, message, op)
        self.lists = ListLowering(self)
        self.numerics = NumericsChecks(self) if check_numerics else None
        self.fault_slot = None  # i32 that kernels with value checks OR their bits into
        self.interrupt_start = None  # the interrupt counter as the call began (if polled)
        self.interrupt_status = None

    # -- buffers ------------------------------------------------------------------------
    def ptr(self, v: Value) -> ir.Value:
        """The i8* where tensor value v lives, as the memory plan says."""
        if v not in self.ptrs:
            self.ptrs[v] = self._storage(v)
        return self.ptrs[v]

    def _storage(self, v: Value) -> ir.Value:
        if v.op is not None and v.op.opdef.has(CONSTANT):
            return self._constant_pointer(v)
        buf = self.plan.buffers.get(v)
        if buf is None:
            raise BackendError(f"llvm backend: the memory plan has no buffer for {v!r}", op=v.op)
        if buf.kind == ARENA:
            return self._arena_pointer(buf.offset)
        if buf.kind == ALIAS:
            return self.ptr(buf.alias_of)
        if buf.kind == VARIABLE:
            return self.ptr(buf.variable)
        return self._output_pointer(self.returned[v])

    def shares_storage(self, a: Value, b: Value) -> bool:
        return self.ptr(a) is self.ptr(b)

    def _output_pointer(self, j: int) -> ir.Value:
        with self.b.goto_entry_block():
            return self.b.load(self.b.gep(self.entry.args[1], [ir.Constant(T.I64, j)]))

    def local(self, typ: ir.Type) -> ir.Value:
        """Stack space allocated once in the entry block (never inside a loop)."""
        with self.b.goto_entry_block():
            return self.b.alloca(typ)

    @property
    def arena_bytes(self) -> int:
        return (
            self.scratch_base + self.scratch_bytes if self.scratch_bytes else self.plan.arena_bytes
        )

    def scratch(self, sizes: list[int]) -> list[ir.Value]:
        """Pointers to scratch buffers of these byte sizes, live until the next call (the
        region is shared by every staging copy: each is used and done before the next)."""
        pointers, offset = [], self.scratch_base
        for size in sizes:
            pointers.append(self._arena_pointer(offset))
            offset += round_up(size, ALIGN)
        self.scratch_bytes = at_least_both(self.scratch_bytes, offset - self.scratch_base)
        return pointers

    def typed(self, v: Value) -> ir.Value:
        return T.typed_pointer(self.b, self.ptr(v), v.type.dtype)

    @property
    def dims(self) -> ir.Value:
        """The entry's `i64* dims`: the run's sizes (sizes.py)."""
        return self.entry.args[3]

    def i64(self, n) -> ir.Value:
        """A size as an i64 of the entry function: a constant, or for a SymInt (a size of
        the run, symbolic.py) its polynomial evaluated from the entry's `dims` argument."""
        if isinstance(n, ir.Value):
            return n
        if not is_symbolic(n):
            return ir.Constant(T.I64, n)
        if self.b.function is not self.entry:
            raise BackendError("a size of the run was asked for outside the entry point")
        key = size_key(n)
        if key not in self.size_values:
            with self.b.goto_entry_block():
                self.size_values[key] = sizes.run_size(self.b, self.dims, n)
        return self.size_values[key]

    def _arena_pointer(self, offset: int) -> ir.Value:
        """One pointer per offset: values the plan puts at the same offset (in place, or
        reusing dead storage) must share it, or shares_storage would call them distinct
        and a kernel would mark an input it overwrites noalias (LLVM then hoisted a loop
        body's loads of a carried buffer out of the loop)."""
        key = size_key(offset)
        if key not in self.arena_pointers:
            at = self.i64(offset)  # (first: llvmlite's goto_block does not nest)
            with self.b.goto_entry_block():
                arena = self.entry.args[2]
                self.arena_pointers[key] = self.b.gep(arena, [at], inbounds=True)
        return self.arena_pointers[key]

    def _constant_pointer(self, v: Value) -> ir.Value:
        value = np.ascontiguousarray(v.op.attrs["value"], dtype=v.type.dtype.np)
        if value.nbytes < INLINE_CONSTANT_BYTES:
            return self._global_constant(value)
        slot = len(self.fn.args) + len(self.constants)
        self.constants.append(value)
        with self.b.goto_entry_block():
            return self.b.load(self.b.gep(self.entry.args[0], [ir.Constant(T.I64, slot)]))

    def _global_constant(self, value: np.ndarray) -> ir.Value:
        data = bytearray(value.tobytes()) or bytearray(1)
        g = ir.GlobalVariable(self.module, ir.ArrayType(T.I8, len(data)), f"const{len(self.ptrs)}")
        g.global_constant = True
        g.linkage = "private"
        g.align = ALIGN
        g.initializer = ir.Constant(ir.ArrayType(T.I8, len(data)), data)
        with self.b.goto_entry_block():
            return self.b.bitcast(g, T.I8P)

    # -- driving ------------------------------------------------------------------------
    def lower(self) -> ir.Module:
        inputs = self.entry.args[0]
        with self.b.goto_entry_block():
            self.status = self.b.alloca(T.I32)
            self.b.store(ir.Constant(T.I32, 0), self.status)
            for i, arg in enumerate(self.fn.args):
                self.ptrs[arg] = self.b.load(self.b.gep(inputs, [ir.Constant(T.I64, i)]))
        self.cleanup = self.entry.append_basic_block("cleanup")
        restore_fp = self.flush_subnormals() if self.flush_denormals else None
        returned = self.lower_block(self.fn.block)
        for j, v in enumerate(returned):
            if (
                self.returned.get(v) == j
                and self.plan.buffers.get(v)
                and self.plan.buffers[v].kind != ARENA
            ):
                continue  # computed in place in its output slot, or in its variable
            self.memcpy(self._output_pointer(j), self.ptr(v), nbytes(v))
        self.b.branch(self.cleanup)
        self.b.position_at_end(self.cleanup)
        self.lists.free_all()
        if restore_fp is not None:
            restore_fp()
        self.b.ret(self.b.load(self.status))
        self.keep_calls_out_of_line()
        return self.module

    def keep_calls_out_of_line(self) -> None:
        """The functions the entry point calls once a run (kernels, copies) stay functions:
        inlined, their loops would make the entry's loop passes cost as the copies' did (see
        `outlined`). Those it calls inside a loop of the program (a while loop's body) may
        be inlined, as before: a call per iteration of kernels over 256 floats made the
        cond_loop bench 28 -> 33 us. (The math bodies, always inlined, are not called here.)"""
        in_loops = _loop_blocks(self.entry)
        inlinable, once = set(), []
        for block in self.entry.blocks:
            for instruction in block.instructions:
                callee = getattr(instruction, "callee", None)
                if isinstance(callee, ir.Function) and callee.linkage == "internal":
                    if block in in_loops:
                        inlinable.add(callee.name)
                    else:
                        once.append(callee)
        for callee in once:
            if callee.name not in inlinable and "alwaysinline" not in callee.attributes:
                callee.attributes.add("noinline")

    def flush_subnormals(self):
        """Set x86's FTZ and DAZ bits for this call (pool workers copy them per job); returns
        what restores the caller's MXCSR on the way out. Elsewhere: nothing to do."""
        if not llvm.get_process_triple().startswith(("x86_64", "i386", "i686")):
            return None
        store, load = (
            T.external_function(self.module, name, ir.VoidType(), [T.I8P])
            for name in ("llvm.x86.sse.stmxcsr", "llvm.x86.sse.ldmxcsr")
        )
        saved, flushed = self.local(T.I32), self.local(T.I32)
        with self.b.goto_entry_block():
            self.b.call(store, [self.b.bitcast(saved, T.I8P)])
            ftz_daz = ir.Constant(T.I32, MXCSR_FTZ | MXCSR_DAZ)
            self.b.store(self.b.or_(self.b.load(saved), ftz_daz), flushed)
            self.b.call(load, [self.b.bitcast(flushed, T.I8P)])
        return lambda: self.b.call(load, [self.b.bitcast(saved, T.I8P)])

    def fail(self, message: str, condition: ir.Value, error=RuntimeCheckError, op=None) -> None:
        """If `condition` holds at run time, stop with a status that the runner turns into
        `error(message, op=op)`."""
        self.errors.append((error, message, op))
        with self.b.if_then(condition, likely=False):
            self.b.store(ir.Constant(T.I32, len(self.errors)), self.status)
            self.b.branch(self.cleanup)

    def poll_interrupt(self, b: ir.IRBuilder | None = None) -> None:
        """Stop the run if a SIGINT arrived since the call began (see interrupt.py)."""
        b = b or self.b
        if self.interrupt_start is None:
            current = b.block
            b.position_at_start(self.entry.entry_basic_block)
            self.interrupt_start = interrupt.read_counter(b, self.module)
            b.position_at_end(current)
            self.errors.append((KeyboardInterrupt, "interrupted", None))
            self.interrupt_status = len(self.errors)
        with b.if_then(interrupt.interrupted(b, self.module, self.interrupt_start), likely=False):
            b.store(ir.Constant(T.I32, self.interrupt_status), self.status)
            b.branch(self.cleanup)

    def lower_block(self, block: Block) -> list[Value]:
        """Lower the ops of a block; return its terminator's operands."""
        chains = row_chains.plan_chains(self, block.ops)
        skip = 0
        for i, op in enumerate(block.ops):
            if skip:
                skip -= 1
                continue
            if op.opdef.is_terminator:
                return list(op.operands)
            if i in chains:  # kernels that run row by row together (row_chains.py)
                row_chains.lower_chain(self, chains[i])
                skip = len(chains[i]) - 1
                continue
            method = LOWERINGS.get(op.name)
            if method is None:
                raise BackendError(f"the llvm backend cannot lower op '{op.name}'", op=op)
            try:
                if widen.needs_widening(op):  # narrow floats, float32-only lowering: widen.py
                    widen.lower_in_float32(self, op, method)
                else:
                    method(self, op)
            except GraphjitError:
                raise
            except Exception as e:  # name the IR op being lowered, as Numba's lowering does
                raise BackendError(f"lowering '{op.name}' failed: {e}", op=op) from e
            if self.numerics is not None:
                self.numerics.after(op)
        return []

    def memcpy(self, dst, src, size: int) -> None:
        if size:
            fn = self.module.declare_intrinsic("llvm.memcpy", [T.I8P, T.I8P, T.I64])
            self.b.call(fn, [dst, src, self.i64(size), ir.Constant(T.I1, 0)])

    def copy_value(self, dst: Value, src: Value) -> None:
        if isinstance(src.type, ListType):
            self.lists.copy_handle(dst, src)
        elif not self.shares_storage(dst, src):
            self.memcpy(self.ptr(dst), self.ptr(src), nbytes(src))

    def strided_copy(
        self, src: Value, dst: Value, space, src_strides, dst_strides, src_base=0, dst_base=0
    ):
        """dst[dst_base + i · dst_strides] = src[src_base + i · src_strides] over `space`, by
        a function of its own (see `outlined`), which returns early on Ctrl-C."""

        def copy(b, sp, dp):
            poll = interrupt.returning_poll(b, self.module) if polls(space) else None
            with loop_nest(b, space, [src_strides, dst_strides], "copy", poll=poll) as (so, do):
                so = b.add(so, sizes.i64(src_base, b))
                do = b.add(do, sizes.i64(dst_base, b))
                b.store(b.load(b.gep(sp, [so])), b.gep(dp, [do]))

        geometry = (tuple(space), tuple(src_strides), tuple(dst_strides), src_base, dst_base)
        self.outlined("copy", geometry, [self.typed(src), self.typed(dst)], copy)
        if polls(space):
            self.poll_interrupt()

    def outlined(self, name: str, key, args: list, emit) -> None:
        """Call `void nameN(args..., i64* dims)`, whose body `emit(b, *params)` writes: one
        function per `name`, the types of `args` and `key` (what else the body depends on),
        so the layers of a model share theirs. The entry point keeps no loop of its own this
        way: LLVM's loop passes cost in proportion to the size of the function for each loop
        in it, and a transformer's training step of 8 layers held 466 copy loops and 120
        loops combining partial sums in an entry point of 21435 lines: 5 s of its compile,
        0.7 s for each other part. keep_calls_out_of_line keeps them out (a call costs
        nothing beside their loops)."""
        key = (name, tuple(str(a.type) for a in args), key)
        try:
            fn = self.outlined_functions.get(key)
        except TypeError:  # (a size that does not hash: a function of its own)
            key, fn = None, None
        if fn is None:
            fnty = ir.FunctionType(ir.VoidType(), [a.type for a in args] + [T.I64.as_pointer()])
            fn = ir.Function(self.module, fnty, f"{name}{len(self.module.globals)}")
            fn.linkage = "internal"
            *params, dims = fn.args
            sizes.register(fn, dims)
            b = ir.IRBuilder(fn.append_basic_block("entry"))
            emit(b, *params)
            b.ret_void()
            if key is not None:
                self.outlined_functions[key] = fn
        self.b.call(fn, [*args, self.dims])

    # -- ops ----------------------------------------------------------------------------
    def op_fused(self, op: Operation) -> None:
        if self._splits_by_blocks(op):
            self._fused_by_blocks(op)
            return
        call = self.kernel_call(op)
        call_split(self, call.kernel, call.args, call.extent, call.work)
        if call.polls:  # it may have returned early for a Ctrl-C
            self.poll_interrupt()
        if call.fallible:
            faults.fail_on_faults(self, call.fallible)

    def _splits_by_blocks(self, op: Operation) -> bool:
        """A large float sum whose outermost loop is its pairwise cascade (kernel.py's
        splits_by_blocks): threads fold its blocks (a kernel without value checks, in a run
        without check_numerics, large enough for threads to pay)."""
        body = op.regions[0].block
        reduction = next((o for o in body.ops if o.opdef.has(REDUCTION)), None)
        return (
            reduction is not None
            and self.numerics is None
            and not value_checked_ops(body)
            and splits_by_blocks(body, reduction)
            and _pays(kernel_work(body, size_of(iteration_space(body))))
        )

    def _fused_by_blocks(self, op: Operation) -> None:
        """The kernel over blocks, each into partial sums of its own, split over threads;
        then the partial sums combined in the cascade's tree and added to the identity in
        the result, as the single call's cascade does."""
        body = op.regions[0].block
        reduction = next(o for o in body.ops if o.opdef.has(REDUCTION))
        blocks, width, stride = block_layout(body, reduction)
        dtype = reduction.result.type.dtype
        (raw,) = self.scratch([blocks * stride * dtype.np.itemsize])
        partials = T.typed_pointer(self.b, raw, dtype)
        call = self.kernel_call(op, partials)
        call_split(self, call.kernel, call.args, call.extent, call.work)
        if call.polls:  # it may have returned early for a Ctrl-C
            self.poll_interrupt()
        out = self.typed(op.results[body.terminator.operands.index(reduction.result)])
        zero = identity(reduction.name, dtype)

        def combine(b, partials, out, count):
            combine_pairwise(
                b, partials, blocks if isinstance(blocks, int) else count, stride, width
            )
            with for_range(b, width, "root") as k:  # identity + root, as _merge adds it
                b.store(b.fadd(zero, b.load(b.gep(partials, [k]))), b.gep(out, [k]))

        key = (blocks, stride, width, reduction.name)
        self.outlined("combine", key, [partials, out, self.i64(blocks)], combine)

    def storage_groups(self, values: list[Value], skip: int = -1) -> list[list[int]]:
        """Indices of `values` (but `skip`) grouped by storage: a value written over another
        in place shares its group."""
        groups: list[list[int]] = []
        for i, v in enumerate(values):
            if i == skip:
                continue
            group = next((g for g in groups if self.shares_storage(values[g[0]], v)), None)
            if group is None:
                groups.append([i])
            else:
                group.append(i)
        return groups

    def kernel_call(self, op: Operation, partials=None) -> KernelCall:
        """A fused op's kernel, emitted, and the arguments to call it with (before lo, hi);
        with `partials`, the kernel over blocks (see _fused_by_blocks)."""
        by_blocks = partials is not None
        values = op.operands + op.results
        shared = tuple(frozenset(g) for g in self.storage_groups(values) if len(g) > 1)
        key = self.kernel_key(op, shared, by_blocks)
        made = self.kernels_by_key.get(key) if key is not None else None
        if made is None:
            made = emit_kernel(
                self.module, op, f"kernel{self.kernels}", shared, self.numerics, by_blocks
            )[:3]
            self.kernels += 1
            if key is not None:
                self.kernels_by_key[key] = made
        kernel, extent, splittable = made
        fallible = value_checked_ops(op.regions[0].block)  # (this op's: its errors name them)
        args = [self.typed(v) for v in values]
        if accumulator_bytes(op) and not by_blocks:  # float16/bfloat16 sums in float32
            (scratch,) = self.scratch([accumulator_bytes(op)])
            args.append(self.b.bitcast(scratch, T.F32.as_pointer()))
        if by_blocks:
            args.append(partials)
        if self.numerics is not None:
            args.append(self.numerics.kernel_slot())
        if fallible:
            args.append(faults.call_slot(self))
        if takes_dims(op):
            args.append(self.dims)
        space = iteration_space(op.regions[0].block)
        work = kernel_work(op.regions[0].block, size_of(space)) if splittable else 0
        return KernelCall(kernel, args, extent, work, polls(space), fallible)

    def kernel_key(self, op: Operation, shared: tuple, by_blocks: bool):
        """What a fused op's kernel is a function of: its region as the printer writes it
        (ops, attributes and types, values numbered in order), which of its buffers share
        storage, and whether it runs by blocks; None where the text would not tell two
        kernels apart (sizes of the run print as `?`) or the kernel is the op's alone
        (check_numerics reports which op made a NaN). A model's layers repeat their kernels:
        an 8-layer transformer step lowered 435 fused ops into 55 different kernels."""
        if self.numerics is not None or takes_dims(op):
            return None
        try:
            text = print_region(op.regions[0].block)
        except TypeError:  # (an attribute the printer cannot write: a kernel of its own)
            return None
        return (text, shared, by_blocks)

    def op_copy(self, op: Operation) -> None:
        """reshape-like ops: the same bytes in a new shape (a view when the plan allows)."""
        self.copy_value(op.result, op.operands[0])

    def op_assign(self, op: Operation) -> None:
        self.copy_value(op.result, op.operands[0])

    def op_nothing(self, op: Operation) -> None:
        pass

    def op_transpose(self, op: Operation) -> None:
        x, out = op.operands[0], op.result
        src = contiguous_strides(x.type.shape)
        perm = op.attrs["perm"]
        self.strided_copy(
            x, out, out.type.shape, [src[p] for p in perm], contiguous_strides(out.type.shape)
        )

    def op_broadcast(self, op: Operation) -> None:
        x, out = op.operands[0], op.result
        space = out.type.shape
        self.strided_copy(
            x, out, space, broadcast_strides(x.type.shape, space), contiguous_strides(space)
        )

    def op_slice(self, op: Operation) -> None:
        x, out = op.operands[0], op.result
        base, steps = slice_geometry(x.type.shape, op.attrs["spec"])
        self.strided_copy(
            x, out, out.type.shape, steps, contiguous_strides(out.type.shape), src_base=base
        )

    def op_unslice(self, op: Operation) -> None:
        g, out = op.operands[0], op.result
        self.b.call(
            self.module.declare_intrinsic("llvm.memset", [T.I8P, T.I64]),
            [
                self.ptr(out),
                ir.Constant(T.I8, 0),
                self.i64(nbytes(out)),
                ir.Constant(T.I1, 0),
            ],
        )
        base, steps = slice_geometry(out.type.shape, op.attrs["spec"])
        self.strided_copy(
            g, out, g.type.shape, contiguous_strides(g.type.shape), steps, dst_base=base
        )

    def _pieces(self, whole: Value, parts: list[Value], axis: int):
        """(part, offset into whole) for parts laid side by side along `axis`."""
        stride = contiguous_strides(whole.type.shape)[axis]
        start = 0
        for part in parts:
            yield part, start * stride
            start += part.type.shape[axis]

    def op_concat(self, op: Operation) -> None:
        out, axis = op.result, op.attrs["axis"]
        dst_strides = contiguous_strides(out.type.shape)
        for part, offset in self._pieces(out, op.operands, axis):
            shape = part.type.shape
            self.strided_copy(
                part, out, shape, contiguous_strides(shape), dst_strides, dst_base=offset
            )

    def op_split_like(self, op: Operation) -> None:
        g, axis = op.operands[0], op.attrs["axis"]
        src_strides = contiguous_strides(g.type.shape)
        for part, offset in self._pieces(g, op.results, axis):
            shape = part.type.shape
            self.strided_copy(
                g, part, shape, src_strides, contiguous_strides(shape), src_base=offset
            )

    def op_count(self, op: Operation) -> None:
        x, out = op.operands[0], op.result
        n = size_of([x.type.shape[a] for a in op.attrs["axes"]])
        if is_symbolic(n):  # a size of the run: converted as the interpreter's count is
            value = convert(self.b, self.i64(n), int64, out.type.dtype)
        else:
            value = T.constant(out.type.dtype, n)
        T.store(self.b, value, self.typed(out), out.type.dtype)

    def op_arg_extremum(self, op: Operation) -> None:
        """argmax/argmin: the index of the first extremum along the axis (or first NaN)."""
        x, out, axis = op.operands[0], op.result, op.attrs["axis"]
        pred = ARG_EXTREMA[op.name]
        shape = x.type.shape
        strides = contiguous_strides(shape)
        outer = [d for i, d in enumerate(shape) if i != axis]
        outer_strides = [s for i, s in enumerate(strides) if i != axis]
        b, xp, op_ = self.b, self.typed(x), self.typed(out)
        with loop_nest(
            b, outer, [outer_strides, contiguous_strides(outer)], "am", poll=self.poll_interrupt
        ) as (xo, oo):
            best_i = self.local(T.I64)
            best_v = self.local(T.register_type(x.type.dtype))
            b.store(ir.Constant(T.I64, 0), best_i)
            b.store(T.load(b, b.gep(xp, [xo]), x.type.dtype), best_v)
            with for_range(b, shape[axis], "am.axis") as i:
                v = T.load(
                    b,
                    b.gep(xp, [b.add(xo, b.mul(i, self.i64(strides[axis])))]),
                    x.type.dtype,
                )
                best = b.load(best_v)
                if x.type.dtype.is_floating:  # the first NaN wins, as in NumPy
                    better = b.or_(
                        b.fcmp_ordered(pred, v, best),
                        b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("==", best, best)),
                    )
                elif x.type.dtype.np.kind == "u":  # (uint8 200 is i8 -56)
                    better = b.icmp_unsigned(pred, v, best)
                else:
                    better = b.icmp_signed(pred, v, best)
                with b.if_then(better):
                    b.store(v, best_v)
                    b.store(i, best_i)
            b.store(b.load(best_i), b.gep(op_, [oo]))

    def op_matmul(self, op: Operation) -> None:
        """matmul, and gemm: its accumulator is first copied into the result (unless the
        plan put the result in the accumulator's storage), then BLAS adds alpha·A·B."""
        a, bm, out = op.operands[0], op.operands[1], op.result
        ta, tb = op.attrs["transpose_a"], op.attrs["transpose_b"]
        alpha, accumulate = op.attrs.get("alpha", 1.0), op.name == "gemm"
        if accumulate:
            self.copy_value(out, op.operands[2])
        m, k = matrix_dims(a.type.shape, ta)
        n = matrix_dims(bm.type.shape, tb)[1]
        batch = out.type.shape[:-2]
        a_strides = broadcast_strides(a.type.shape[:-2], batch)
        b_strides = broadcast_strides(bm.type.shape[:-2], batch)
        dtype = out.type.dtype

        def direct():
            with loop_nest(
                self.b, batch, [a_strides, b_strides, contiguous_strides(batch)], "mm"
            ) as offs:
                ap = self.b.gep(self.typed(a), [self.b.mul(offs[0], self.i64(m * k))])
                bp = self.b.gep(self.typed(bm), [self.b.mul(offs[1], self.i64(k * n))])
                cp = self.b.gep(self.typed(out), [self.b.mul(offs[2], self.i64(m * n))])
                self.gemm(dtype, ap, bp, cp, (m, n, k), (ta, tb), (alpha, accumulate))

        if dtype in (float32, float64):
            pointers = (self.typed(a), self.typed(bm), self.typed(out))
            strides = (a_strides, b_strides)
            scaling = (alpha, accumulate)
            split_matmul(
                self, dtype.name, pointers, batch, strides, (m, n, k), (ta, tb), scaling, direct
            )
        else:
            direct()

    def gemm(self, dtype, a, bm, c, sizes, transposed, scaling=(1.0, False)) -> None:
        """One matrix product C = alpha op(A) op(B) (+ C) on the calling thread: BLAS for
        float32/64 (single-threaded where there is such a BLAS), widened for float16/
        bfloat16, a triple loop for integers."""
        m, n, k = sizes
        if dtype.is_narrow_float:
            self._narrow_gemm(dtype, a, bm, c, sizes, transposed, scaling)
            return
        if small_gemm.takes(dtype.name, sizes, transposed):
            small_gemm.call_small_gemm(self.b, dtype.name, (a, bm, c), sizes, transposed, scaling)
            return
        if dtype.name in ("float32", "float64") and m and n and k:
            # (a matmul too small to split: the same single-threaded BLAS, where there is one,
            # so that NumPy's OpenBLAS threads are not woken to spin beside graphjit's)
            blas = single_threaded_gemm(dtype.name, sizes)
            call_gemm(
                self.b,
                self.local,
                dtype.name,
                (a, bm, c),
                sizes,
                transposed,
                scaling,
                None,
                blas,
                self.dims,
            )
            return
        if scaling[1]:
            return  # a gemm (floats only) with k = 0 adds nothing to its accumulator
        b = self.b  # integers (or empty shapes): a plain triple loop

        def element(ptr, row, col, rows, cols, flipped):
            """ptr[row, col] of a row-major rows×cols matrix, stored transposed if flipped."""
            row, col, width = (col, row, rows) if flipped else (row, col, cols)
            return b.load(b.gep(ptr, [b.add(b.mul(row, ir.Constant(T.I64, width)), col)]))

        with for_range(b, m, "mi") as i, for_range(b, n, "nj") as j:
            acc = self.local(T.register_type(dtype))
            b.store(T.constant(dtype, 0), acc)
            with for_range(b, k, "kk") as p:
                x = element(a, i, p, m, k, transposed[0])
                y = element(bm, p, j, k, n, transposed[1])
                prod = b.fmul(x, y) if dtype.is_floating else b.mul(x, y)
                b.store(
                    b.fadd(b.load(acc), prod) if dtype.is_floating else b.add(b.load(acc), prod),
                    acc,
                )
            b.store(b.load(acc), b.gep(c, [b.add(b.mul(i, ir.Constant(T.I64, n)), j)]))

    def _narrow_gemm(self, dtype, a, bm, c, sizes, transposed, scaling) -> None:
        """float16/bfloat16 (PyTorch's CPU rule): the operands widened into float32 scratch
        in the arena (never the native stack: they are matrices), sgemm, and the float32
        product rounded once into c."""
        m, n, k = sizes
        wide = [
            self.b.bitcast(p, T.F32.as_pointer())
            for p in self.scratch([4 * m * k, 4 * k * n, 4 * m * n])
        ]
        self._convert(a, dtype, wide[0], float32, m * k)
        self._convert(bm, dtype, wide[1], float32, k * n)
        if scaling[1]:  # a gemm: its accumulator (already in c) takes part in float32 too
            self._convert(c, dtype, wide[2], float32, m * n)
        self.gemm(float32, *wide, sizes, transposed, scaling)
        self._convert(wide[2], float32, c, dtype, m * n)

    def _convert(self, src, src_dtype, dst, dst_dtype, count: int) -> None:
        """count elements from src to dst, converted (a narrow float: rounded) on the way."""
        b = self.b
        with for_range(b, count, "convert") as i:
            value = T.load(b, b.gep(src, [i]), src_dtype)
            T.store(b, value, b.gep(dst, [i]), dst_dtype)


# argmax/argmin: how an element beats the best so far
ARG_EXTREMA = {"argmax": ">", "argmin": "<"}

LOWERINGS = {
    "fused": Lowering.op_fused,
    "matmul": Lowering.op_matmul,
    "gemm": Lowering.op_matmul,
    "reshape": Lowering.op_copy,
    "reshape_like": Lowering.op_copy,
    "expand_dims": Lowering.op_copy,
    "squeeze": Lowering.op_copy,
    "shape_invariant": Lowering.op_copy,  # a runtime-sized one is refused in __init__
    "transpose": Lowering.op_transpose,
    "broadcast_to": Lowering.op_broadcast,
    "broadcast_like": Lowering.op_broadcast,
    "slice": Lowering.op_slice,
    "unslice": Lowering.op_unslice,
    "concat": Lowering.op_concat,
    "split_like": Lowering.op_split_like,
    "argmax": Lowering.op_arg_extremum,
    "argmin": Lowering.op_arg_extremum,
    "count": Lowering.op_count,
    "check_numerics": op_check_numerics,
    "assign": Lowering.op_assign,
    "constant": Lowering.op_nothing,
    "group": Lowering.op_nothing,
    "cond": op_cond,
    "while": op_while,
    **list_lowerings(),
    # op families lowered in their own modules
    **indexing.LOWERINGS,
    **dynamic_slice.LOWERINGS,
    **conv.LOWERINGS,
    **random.LOWERINGS,
    **scan.LOWERINGS,
    **sorting.LOWERINGS,
    **collectives.LOWERINGS,
}


def _loop_blocks(function: ir.Function) -> set:
    """The blocks of `function` inside a loop of its control flow: the natural loop of each
    back edge (a branch to a block on the depth-first path that reached it), that is the
    blocks that reach the edge's source without passing through its target."""
    successors = {
        block: [op for op in block.terminator.operands if isinstance(op, ir.Block)]
        for block in function.blocks
        if block.terminator is not None
    }
    predecessors: dict = {block: [] for block in function.blocks}
    for block, targets in successors.items():
        for target in targets:
            predecessors[target].append(block)
    back_edges, on_path, seen = [], set(), set()
    stack = [(function.entry_basic_block, iter(successors.get(function.entry_basic_block, ())))]
    seen.add(function.entry_basic_block)
    on_path.add(function.entry_basic_block)
    while stack:
        block, targets = stack[-1]
        target = next(targets, None)
        if target is None:
            stack.pop()
            on_path.discard(block)
        elif target in on_path:
            back_edges.append((block, target))
        elif target not in seen:
            seen.add(target)
            on_path.add(target)
            stack.append((target, iter(successors.get(target, ()))))
    inside: set = set()
    for source, header in back_edges:
        loop, work = {header}, [source]
        while work:
            block = work.pop()
            if block not in loop:
                loop.add(block)
                work.extend(predecessors[block])
        inside |= loop
    return inside
