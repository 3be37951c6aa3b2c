"""Value-dependent errors inside fused kernels: an integer power with a negative exponent,
an integer division or modulo by zero (and, as the op set grows, an index out of range). A kernel cannot stop mid-loop without
losing vectorisation, so each inner op that can fail gets a bit; the kernel ORs the bits
of the checks that failed into a register (promoted from an alloca, as the numerics
checks do) and, after its loop, into a slot the entry point tests after the call. A
failed check turns into the same RuntimeCheckError the interpreter raises.

Which ops are checked is `ir/ops/elementwise.value_checked_ops` (one rule for every
backend); the table SCALAR_CHECKS says, per op name, when an element fails: (b, args, op)
-> an i1 that is true for a bad element."""

from __future__ import annotations

from llvmlite import ir

from graphjit.codegen.llvm import types as T
from graphjit.errors import RuntimeCheckError
from graphjit.ir.core import Operation
from graphjit.ir.ops.elementwise import VALUE_CHECKS

BITS = 32  # one bit per check in an i32; checks past the 31st share the last bit


def _negative_integer_exponent(b: ir.IRBuilder, args, op: Operation):
    if op.operands[1].type.dtype.np.kind == "u":  # (uint8 200 is i8 -56: never negative)
        return ir.Constant(T.I1, 0)
    return b.icmp_signed("<", args[1], ir.Constant(args[1].type, 0))


def _zero_divisor(b: ir.IRBuilder, args, op: Operation):
    """(The emitter divides by 1 there instead: sdiv by 0 would trap.)"""
    return b.icmp_signed("==", args[1], ir.Constant(args[1].type, 0))


# op name -> its condition (which ops are checked, and their messages: VALUE_CHECKS)
SCALAR_CHECKS = {
    "pow": _negative_integer_exponent,
    "floor_divide": _zero_divisor,
    "floor_mod": _zero_divisor,
}


class KernelFaults:
    """Inside one kernel: the running OR of the bits of the checks that failed."""

    def __init__(self, b: ir.IRBuilder, ops: list[Operation]):
        self.b, self.bits = b, {op: 1 << min(i, BITS - 1) for i, op in enumerate(ops)}
        self.acc = b.alloca(T.I32)  # in the kernel's entry block: promoted to a register
        b.store(ir.Constant(T.I32, 0), self.acc)

    def check(self, inner: Operation, args) -> None:
        if inner not in self.bits:
            return
        bad = SCALAR_CHECKS[inner.name](self.b, args, inner)
        bit = self.b.select(bad, ir.Constant(T.I32, self.bits[inner]), ir.Constant(T.I32, 0))
        self.b.store(self.b.or_(self.b.load(self.acc), bit), self.acc)

    def publish(self, slot: ir.Value) -> None:
        """Fold this call's bits into the shared slot (threads may share it)."""
        self.b.atomic_rmw("or", slot, self.b.load(self.acc), "monotonic")


def call_slot(lowering) -> ir.Value:
    """The i32 slot a kernel call passes, cleared before the call."""
    if lowering.fault_slot is None:
        lowering.fault_slot = lowering.local(T.I32)
    lowering.b.store(ir.Constant(T.I32, 0), lowering.fault_slot)
    return lowering.fault_slot


def fail_on_faults(lowering, ops: list[Operation]) -> None:
    """After a kernel call: stop the run with the first failed check's error."""
    b = lowering.b
    found = b.load(lowering.fault_slot)
    for i, op in enumerate(ops[:BITS]):
        bit = ir.Constant(T.I32, 1 << i)
        failed = b.icmp_unsigned("!=", b.and_(found, bit), ir.Constant(T.I32, 0))
        lowering.fail(VALUE_CHECKS[op.name], failed, RuntimeCheckError, op)
