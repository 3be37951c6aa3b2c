"""NaN and infinity checks in native code: `Session(check_numerics=True)` and the
`check_numerics` op.

Each checked op gets an index; a value's element gets the code `2 * index` when it is NaN,
`2 * index + 1` when it is ±inf, and FINITE otherwise. Taking the minimum code over all
elements names the first offending op (in program order) and prefers NaN over infinity
for it, as the interpreter does. Fused kernels keep that minimum in a register per inner
op result (so the error names the inner op, not the kernel) and fold it into a slot the
entry point reads after the call; other ops' results are scanned after they are computed.
A code found becomes the status word NUMERICS_STATUS + code, which the runner decodes."""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from graphjit.codegen.layout import size_of
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range
from graphjit.errors import NumericsError
from graphjit.ir.core import Operation, Value
from graphjit.ir.ops import CONSTANT, KERNEL
from graphjit.ir.ops.debug import numerics_message
from graphjit.ir.types import TensorType, is_float_array

NUMERICS_STATUS = 1 << 24  # status words from here on carry a numerics code
FINITE = 0x7FFFFFFF  # above every code: "nothing non-finite seen"
# Ops whose results the interpreter does not check either (region ops' results come from
# their regions' ops, which are checked), or that are checked in their own way.
_NOT_SCANNED = frozenset({"check_numerics"})  # (and constants and every region op)


def nonfinite_code(b: ir.IRBuilder, x: ir.Value, code: int) -> ir.Value:
    """i32: FINITE if the float x is finite, `code` if it is NaN, `code + 1` if ±inf."""
    fabs = b.module.declare_intrinsic("llvm.fabs", [x.type])
    finite = b.fcmp_ordered("<", b.call(fabs, [x]), ir.Constant(x.type, float("inf")))
    nan = b.fcmp_unordered("uno", x, x)
    bad = b.select(nan, ir.Constant(T.I32, code), ir.Constant(T.I32, code + 1))
    return b.select(finite, ir.Constant(T.I32, FINITE), bad)


def umin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_unsigned("<", x, y), x, y)


def scan(lowering, v: Value, code: int) -> ir.Value:
    """The minimum code over the elements of tensor value v (FINITE when all are finite)."""
    b, dtype = lowering.b, v.type.dtype
    acc = lowering.local(T.I32)
    b.store(ir.Constant(T.I32, FINITE), acc)
    ptr = lowering.typed(v)
    with for_range(b, size_of(v.type.shape), "scan") as i:
        element = T.load(b, b.gep(ptr, [i]), dtype)
        b.store(umin(b, b.load(acc), nonfinite_code(b, element, code)), acc)
    return b.load(acc)


def is_checked(v: Value) -> bool:
    return isinstance(v.type, TensorType) and v.type.dtype.is_floating


def op_check_numerics(lowering, op: Operation) -> None:
    """The `check_numerics` op: its result is its operand (a view in the memory plan);
    NaN or infinity in it stops the run with the op's message."""
    x = op.operands[0]
    lowering.copy_value(op.result, x)
    found = scan(lowering, x, 0)
    message = op.attrs["message"]
    for code, has_nan in ((0, True), (1, False)):
        is_code = lowering.b.icmp_unsigned("==", found, ir.Constant(T.I32, code))
        lowering.fail(numerics_message(message, has_nan), is_code, NumericsError, op)


class NumericsChecks:
    """The session-wide check (`check_numerics=True`) for one lowered function."""

    def __init__(self, lowering):
        self.low = lowering
        self.ops: list[Operation] = []  # code // 2 -> the op it names
        self.slot = None  # i32 the fused kernels fold their minimum code into

    def code(self, op: Operation) -> int:
        self.ops.append(op)
        return 2 * (len(self.ops) - 1)

    def error(self, code: int) -> NumericsError:
        op = self.ops[code // 2]
        what = "NaN" if code % 2 == 0 else "infinity"
        return NumericsError(f"check_numerics: {what} in the result of '{op.name}'", op=op)

    def kernel_slot(self) -> ir.Value:
        """The slot pointer a kernel call passes, reset to FINITE before the call."""
        if self.slot is None:
            self.slot = self.low.local(T.I32)
        self.low.b.store(ir.Constant(T.I32, FINITE), self.slot)
        return self.slot

    def after(self, op: Operation) -> None:
        """After `op` is lowered: stop the run if it produced NaN or infinity."""
        if op.opdef.has(KERNEL):
            self._fail_if(self.low.b.load(self.slot))
        elif op.opdef.has(CONSTANT):
            value = op.attrs["value"]
            if is_float_array(value) and not np.all(np.isfinite(value)):
                code = self.code(op) + (0 if np.isnan(value).any() else 1)
                self._fail_if(ir.Constant(T.I32, code))
        elif not op.regions and op.name not in _NOT_SCANNED:
            for r in op.results:
                if is_checked(r):
                    self._fail_if(scan(self.low, r, self.code(op)))

    def _fail_if(self, found: ir.Value) -> None:
        b = self.low.b
        with b.if_then(b.icmp_unsigned("!=", found, ir.Constant(T.I32, FINITE)), likely=False):
            b.store(b.add(found, ir.Constant(T.I32, NUMERICS_STATUS)), self.low.status)
            b.branch(self.low.cleanup)


class KernelChecks:
    """Inside one fused kernel: the running minimum code of its inner ops' results."""

    def __init__(self, b: ir.IRBuilder, numerics: NumericsChecks):
        self.b, self.numerics = b, numerics
        self.acc = b.alloca(T.I32)  # in the kernel's entry block: promoted to a register
        b.store(ir.Constant(T.I32, FINITE), self.acc)

    def check(self, inner: Operation, x: ir.Value) -> None:
        code = nonfinite_code(self.b, x, self.numerics.code(inner))
        self.b.store(umin(self.b, self.b.load(self.acc), code), self.acc)

    def check_buffer(self, inner: Operation, ptr: ir.Value, count: int) -> None:
        """A reduction's result, once complete (its running partials may pass through
        infinity legitimately: min starts from +inf)."""
        code = self.numerics.code(inner)
        with for_range(self.b, count, "check") as i:
            x = T.load(self.b, self.b.gep(ptr, [i]), inner.result.type.dtype)
            self.b.store(
                umin(self.b, self.b.load(self.acc), nonfinite_code(self.b, x, code)), self.acc
            )

    def publish(self, slot: ir.Value) -> None:
        """Fold this call's minimum into the shared slot (threads may share it)."""
        self.b.atomic_rmw("umin", slot, self.b.load(self.acc), "monotonic")
