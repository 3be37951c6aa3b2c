"""One fused region op → one LLVM function: a loop nest over the iteration space that
evaluates the region element by element with the scalar emitter table.

    void kernel(T0* noalias in0, ..., U0* noalias out0, ...)

Inputs broadcast to the iteration space by their strides (0 along broadcast axes); a
reduction (always the region's last op) accumulates into its output, which is first set
to the reduction's identity.

float16 and bfloat16 values are float32 registers (types.py): every inner op computes in
float32 and its narrow result is rounded at once, so that each intermediate value is the
one the interpreter (NumPy's float16, ml_dtypes' bfloat16) has. A narrow reduction
accumulates in float32 instead, in a scratch buffer the caller passes after the outputs
(`accumulator_bytes`), and rounds once into its output at the end, as PyTorch does."""

from __future__ import annotations

from llvmlite import ir

from graphjit.codegen.layout import (
    broadcast_strides,
    coalesce,
    contiguous_strides,
    iteration_space,
    keepdims_shape,
    size_of,
)
from graphjit.codegen.llvm import interrupt
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.faults import KernelFaults
from graphjit.codegen.llvm.loops import for_range, loop_nest, polls
from graphjit.codegen.llvm.numerics import KernelChecks
from graphjit.codegen.llvm.scalar import SCALAR_EMITTERS, combine, identity
from graphjit.errors import BackendError
from graphjit.ir.core import Operation
from graphjit.ir.ops import CONSTANT, REDUCTION
from graphjit.ir.ops.elementwise import value_checked_ops
from graphjit.ir.types import float32

# Ops whose narrow-float result is one of their operands' values (already rounded)
EXACT_ON_NARROW = frozenset(
    {"select", "stop_gradient", "broadcast_like", "broadcast_to", "neg", "abs"}
)


def _narrow_reduction(op: Operation):
    """The region's reduction when its result is float16/bfloat16 (float32 accumulator)."""
    body = op.regions[0].block
    reduction = next((o for o in body.ops if o.opdef.has(REDUCTION)), None)
    if reduction is not None and reduction.result.type.dtype.is_narrow_float:
        return reduction
    return None


def accumulator_bytes(op: Operation) -> int:
    """The float32 scratch a fused op's kernel takes after its outputs (0: none)."""
    reduction = _narrow_reduction(op)
    return 4 * size_of(reduction.result.type.shape) if reduction is not None else 0


def emit_kernel(module: ir.Module, op: Operation, name: str, shared=frozenset(), numerics=None):
    """Returns (function, outer extent, splittable). The function takes the buffers, then
    `i64 lo, i64 hi`: the range of the outermost loop (after coalescing) to run, so that
    threads can share a kernel without a reduction. `shared`: parameter indices that point
    at the same storage (an output written over an input in place): not noalias. With
    `numerics` (a NumericsChecks), an `i32*` slot comes before lo and hi: the kernel folds
    into it the code of the first inner op that made NaN or infinity. When inner ops can
    fail on their values (faults.py), another `i32*` slot follows for their bits; the
    fourth result lists those ops."""
    body = op.regions[0].block
    outputs = body.terminator.operands
    space = iteration_space(body)
    reduction = next((o for o in body.ops if o.opdef.has(REDUCTION)), None)
    fallible = value_checked_ops(body)
    arg_types = [T.storage_type(v.type.dtype).as_pointer() for v in body.args + outputs]
    narrow_reduction = _narrow_reduction(op)
    if narrow_reduction is not None:
        arg_types.append(T.F32.as_pointer())
    slot_type = [T.I32.as_pointer()] * ((numerics is not None) + bool(fallible))
    fn = ir.Function(
        module, ir.FunctionType(ir.VoidType(), arg_types + slot_type + [T.I64, T.I64]), name
    )
    fn.linkage = "internal"
    for i, arg in enumerate(fn.args[: len(arg_types)]):
        if i not in shared:
            arg.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    checks = KernelChecks(b, numerics) if numerics is not None else None  # before any loop
    faults = KernelFaults(b, fallible) if fallible else None
    n_buffers = len(body.args) + len(outputs)
    in_ptrs, out_ptrs = fn.args[: len(body.args)], list(fn.args[len(body.args) : n_buffers])
    accumulated = {}  # output index -> (the buffer the reduction accumulates in, its type)
    if narrow_reduction is not None:
        j = outputs.index(narrow_reduction.result)
        accumulated[j] = (fn.args[n_buffers], narrow_reduction.result.type.with_dtype(float32))
        n_buffers += 1
    lo, hi = fn.args[-2:]
    strides = [broadcast_strides(v.type.shape, space) for v in body.args]
    for j, v in enumerate(outputs):
        if reduction is not None and v is reduction.result:
            strides.append(broadcast_strides(keepdims_shape(reduction, space), space))
            ptr, t = accumulated.get(j, (out_ptrs[j], v.type))
            _fill(b, ptr, t, identity(reduction.name, t.dtype))
        else:
            strides.append(contiguous_strides(space))
    poll = _interrupt_poll(b, module) if polls(space) else None
    reduce_into = [accumulated.get(j, (p, None))[0] for j, p in enumerate(out_ptrs)]
    with loop_nest(b, space, strides, outer=(lo, hi), poll=poll) as offsets:
        _evaluate(b, body, in_ptrs, reduce_into, offsets, reduction, checks, faults)
    for j, (acc, t) in accumulated.items():  # round the float32 sums once
        _round_into(b, acc, out_ptrs[j], t.shape, outputs[j].type.dtype)
    if checks is not None:
        if reduction is not None and reduction.result.type.dtype.is_floating:
            j = outputs.index(reduction.result)
            checks.check_buffer(reduction, out_ptrs[j], size_of(reduction.result.type.shape))
        checks.publish(fn.args[n_buffers])
    if faults is not None:
        faults.publish(fn.args[n_buffers + (checks is not None)])
    b.ret_void()
    coalesced, _ = coalesce(space, strides)
    return fn, (coalesced[0] if coalesced else 1), reduction is None, fallible


def _interrupt_poll(b: ir.IRBuilder, module: ir.Module):
    """A long kernel returns early on Ctrl-C (the entry point then stops the run): it reads
    the interrupt counter as it starts and compares between chunks of its loop."""
    start = interrupt.read_counter(b, module)

    def poll(b: ir.IRBuilder) -> None:
        with b.if_then(interrupt.interrupted(b, module, start), likely=False):
            b.ret_void()

    return poll


def _fill(b, ptr, t, value) -> None:
    with for_range(b, size_of(t.shape), "fill") as i:
        T.store(b, value, b.gep(ptr, [i]), t.dtype)


def _round_into(b, acc, out, shape, dtype) -> None:
    with for_range(b, size_of(shape), "round") as i:
        T.store(b, T.load(b, b.gep(acc, [i]), float32), b.gep(out, [i]), dtype)


def _evaluate(b, body, in_ptrs, out_ptrs, offsets, reduction, checks=None, faults=None):
    n_in = len(body.args)
    env = {}
    loaded = {}

    def value(v):
        if v in env:
            return env[v]
        i = body.args.index(v)
        if i not in loaded:
            loaded[i] = T.load(b, b.gep(in_ptrs[i], [offsets[i]]), v.type.dtype)
        return loaded[i]

    outputs = body.terminator.operands
    for inner in body.ops[:-1]:
        if inner.opdef.has(CONSTANT):
            env[inner.result] = T.constant(
                inner.result.type.dtype, inner.attrs["value"].reshape(())
            )
        elif inner is reduction:
            j = outputs.index(inner.result)
            ptr = b.gep(out_ptrs[j], [offsets[n_in + j]])
            dtype = inner.result.type.dtype
            dtype = float32 if dtype.is_narrow_float else dtype  # (its accumulator)
            acc = T.load(b, ptr, dtype)
            T.store(b, combine(b, inner.name, acc, value(inner.operands[0]), dtype), ptr, dtype)
        else:
            emit = SCALAR_EMITTERS.get(inner.name)
            if emit is None:
                raise BackendError(f"llvm backend has no scalar rule for '{inner.name}'", op=inner)
            shape_only = inner.opdef.shape_only_operands(len(inner.operands))
            args = [value(v) for k, v in enumerate(inner.operands) if k not in shape_only]
            try:
                env[inner.result] = emit(b, args, inner)
            except BackendError:
                raise
            except Exception as e:  # name the op inside the kernel, not just 'fused'
                raise BackendError(f"emitting '{inner.name}' failed: {e}", op=inner) from e
            dtype = inner.result.type.dtype
            if dtype.is_narrow_float and inner.name not in EXACT_ON_NARROW:
                env[inner.result] = T.quantize(b, env[inner.result], dtype)
            if faults is not None:
                faults.check(inner, args)
        if checks is not None and inner is not reduction and inner.result.type.dtype.is_floating:
            checks.check(inner, env[inner.result])
    for j, v in enumerate(outputs):
        if reduction is None or v is not reduction.result:
            T.store(b, value(v), b.gep(out_ptrs[j], [offsets[n_in + j]]), v.type.dtype)
