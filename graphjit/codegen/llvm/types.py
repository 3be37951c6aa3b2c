"""graphjit dtypes as LLVM types: registers (bool is i1) and storage (bool is one byte)."""

from __future__ import annotations

from llvmlite import ir

from graphjit.ir.types import DType

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
I8P = I8.as_pointer()

_REGISTER = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I1}


def register_type(dtype: DType) -> ir.Type:
    return _REGISTER[dtype.name]


def storage_type(dtype: DType) -> ir.Type:
    return I8 if dtype.is_bool else _REGISTER[dtype.name]


def typed_pointer(b: ir.IRBuilder, raw: ir.Value, dtype: DType) -> ir.Value:
    return b.bitcast(raw, storage_type(dtype).as_pointer())


def load(b: ir.IRBuilder, ptr: ir.Value, dtype: DType) -> ir.Value:
    """Load one element through a typed pointer as a register value."""
    value = b.load(ptr)
    return b.icmp_unsigned("!=", value, ir.Constant(I8, 0)) if dtype.is_bool else value


def store(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, dtype: DType) -> None:
    b.store(b.zext(value, I8) if dtype.is_bool else value, ptr)


def constant(dtype: DType, value) -> ir.Constant:
    t = register_type(dtype)
    if dtype.is_floating:
        return ir.Constant(t, float(value))
    return ir.Constant(t, int(bool(value)) if dtype.is_bool else int(value))
