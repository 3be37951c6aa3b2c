"""float16/bfloat16 for the lowerings that compute in float32 only: the legalisation.

The reference kernels of convolutions, pooling and the scatter-adds compute a narrow op in
float32 and round each result once (ir/types.py `computes_in_float32`). Their lowerings are
written for float32/float64 registers, so an op of that table whose operands or results are
float16/bfloat16 is lowered as the same rewrite the reference applies:

    widen each narrow operand into a float32 copy   (exact)
    lower the op on the copies, in float32           (the op's own float32 lowering)
    round each narrow result once into its buffer    (nearest, ties to even)

The rewrite is done here, as the op is lowered, rather than as an IR pass inserting cast
ops: such a pass would have to run before fusion and memory planning, in the pipeline that
every backend shares (passes/pipeline.py; the interpreter and cuda run these ops on narrow
floats as they are, and need no casts), while by the time the llvm backend gets the
function its memory plan is fixed and has no buffers for new casts. Here the float32
copies are staging buffers in the arena's scratch region, which is sized after the plan
(`Lowering.scratch`), as `Lowering._narrow_gemm` stages a narrow matmul's operands; the
op's own lowering runs unchanged on float32 stand-in values of the same shapes.

Ops that only move narrow elements or round after every step are lowered on their 16-bit
storage directly instead: sort (sorting.py compares widened values, moves the bits),
cumsum (scan.py rounds each running sum, as the reference's np.cumsum in the narrow dtype
does) and the tensor lists (lists.py copies elements, and adds with one rounding per op)."""

from __future__ import annotations

from contextlib import contextmanager

from graphjit.codegen.layout import size_of
from graphjit.codegen.llvm import conv
from graphjit.ir.core import Operation, Value
from graphjit.ir.types import TensorType, float32

# Ops whose llvm lowering computes in float32 only, and whose reference kernel computes a
# narrow op in float32 with one rounding of each result: widened around their lowering.
LOWERED_IN_FLOAT32 = frozenset({*conv.LOWERINGS, "scatter_add", "scatter_add_along_axis"})


def _is_narrow(v: Value) -> bool:
    return isinstance(v.type, TensorType) and v.type.dtype.is_narrow_float


def _read_operands(op: Operation) -> list[tuple[int, Value]]:
    """(index, operand) of the operands whose data the op reads (not its shape alone)."""
    shape_only = op.opdef.shape_only_operands(len(op.operands))
    return [(i, v) for i, v in enumerate(op.operands) if i not in shape_only]


def needs_widening(op: Operation) -> bool:
    if op.name not in LOWERED_IN_FLOAT32:
        return False
    return any(_is_narrow(v) for v in [*(v for _, v in _read_operands(op)), *op.results])


def lower_in_float32(low, op: Operation, method) -> None:
    """Lower `op` (in LOWERED_IN_FLOAT32, some operand or result float16/bfloat16) with
    `method` on float32 copies of its narrow operands, rounding its narrow results once.
    An operand read for its shape alone (a `like`) is passed as it is."""
    widened = {i: Value(_float32(v), None, i) for i, v in _read_operands(op) if _is_narrow(v)}
    operands = [widened.get(i, v) for i, v in enumerate(op.operands)]
    narrow_results = [j for j, v in enumerate(op.results) if _is_narrow(v)]
    result_types = [_float32(v) if _is_narrow(v) else v.type for v in op.results]
    wide = Operation(op.name, operands, result_types, op.attrs, loc=op.loc)
    staged = [*widened.values(), *(wide.results[j] for j in narrow_results)]
    with _staging(low, [4 * size_of(v.type.shape) for v in staged]) as pointers:
        low.ptrs.update(zip(staged, pointers))
        for j, v in enumerate(op.results):
            if j not in narrow_results:  # (a result of another dtype: written in place)
                low.ptrs[wide.results[j]] = low.ptr(v)
        for i, stand_in in widened.items():
            _convert(low, op.operands[i], stand_in)
        method(low, wide)
        for j in narrow_results:
            _convert(low, wide.results[j], op.results[j])


def _float32(v: Value) -> TensorType:
    return TensorType(v.type.shape, float32)


def _convert(low, src: Value, dst: Value) -> None:
    """Every element of src into dst (same shape), converted: widened exactly, or rounded."""
    count = size_of(src.type.shape)
    low._convert(low.typed(src), src.type.dtype, low.typed(dst), dst.type.dtype, count)


@contextmanager
def _staging(low, sizes: list[int]):
    """Scratch buffers of these byte sizes that stay valid while the op is lowered: the
    scratch region is otherwise reused by every staging copy (im2col's matrix, sort's
    pairs), so the op's own scratch is placed after them, and the region grows to hold
    both."""
    before = low.scratch_bytes
    low.scratch_bytes = 0
    pointers = low.scratch(sizes)
    reserved = low.scratch_bytes  # (the sizes, each rounded up to the scratch alignment)
    low.scratch_base += reserved
    low.scratch_bytes = 0
    try:
        yield pointers
    finally:
        inner = low.scratch_bytes
        low.scratch_base -= reserved
        low.scratch_bytes = max(before, reserved + inner)
