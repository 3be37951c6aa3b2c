"""Matmul through BLAS: the Fortran sgemm/dgemm that SciPy exports (as Numba does), called
from generated code through their addresses."""

from __future__ import annotations

import ctypes

from llvmlite import ir

from graphjit.codegen.llvm.types import F32, F64, I8, I32, I64

_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]


def gemm_address(dtype_name: str) -> int:
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__["sgemm" if dtype_name == "float32" else "dgemm"]
    return _capsule_pointer(capsule, _capsule_name(capsule))


def call_gemm(b: ir.IRBuilder, local, dtype_name: str, a, bmat, c, m: int, n: int, k: int) -> None:
    """C (m×n) = A (m×k) @ B (k×n), all row-major: column-major BLAS computes Cᵀ = Bᵀ Aᵀ."""
    t = F32 if dtype_name == "float32" else F64
    tp = t.as_pointer()
    i32p, i8p = I32.as_pointer(), I8.as_pointer()
    fnty = ir.FunctionType(
        ir.VoidType(), [i8p, i8p, i32p, i32p, i32p, tp, tp, i32p, tp, i32p, tp, tp, i32p]
    )
    gemm = b.inttoptr(ir.Constant(I64, gemm_address(dtype_name)), fnty.as_pointer())

    def slot(value, typ):
        ptr = local(typ)
        b.store(ir.Constant(typ, value), ptr)
        return ptr

    no_trans = slot(ord("N"), I8)
    alpha, beta = slot(1.0, t), slot(0.0, t)
    args = [
        no_trans,
        no_trans,
        slot(n, I32),
        slot(m, I32),
        slot(k, I32),
        alpha,
        bmat,
        slot(n, I32),
        a,
        slot(k, I32),
        beta,
        c,
        slot(n, I32),
    ]
    b.call(gemm, args)
