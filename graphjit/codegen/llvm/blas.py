"""Matmul through BLAS's Fortran sgemm/dgemm, called from generated code by name.

Which BLAS: NumPy's own OpenBLAS when its wheel bundles one (scipy-openblas, 64-bit
integers), else the gemm SciPy exports to Cython (as Numba uses). Sharing NumPy's library
matters twice over: two OpenBLAS builds in one process keep two thread pools spinning
against each other on the same cores, and NumPy's newer build is ~1.5x faster than
SciPy's on the MLP's 128x1024 @ 1024x1024 here. Generated code calls `graphjit_sgemm` /
`graphjit_dgemm`, bound to the library's address in this process (llvm.add_symbol), so the
IR and any cached object code stay valid across processes and address-space layouts."""

from __future__ import annotations

import ctypes
import functools
import glob
import os
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from graphjit import config
from graphjit.codegen.llvm.types import F32, F64, I8, I32, I64

# (symbol pattern, integer width) of the Fortran gemm in NumPy's bundled OpenBLAS builds
_NUMPY_GEMMS = (("scipy_{}gemm_64_", I64), ("{}gemm_64_", I64), ("scipy_{}gemm_", I32))


@dataclass(frozen=True)
class Gemm:
    """A Fortran ?gemm: where it is and how wide its integer arguments are."""

    symbol: str  # the name generated code calls it by
    provider: str
    address: int
    int_type: ir.IntType


def _numpy_openblas() -> ctypes.CDLL | None:
    """The OpenBLAS NumPy's wheel bundles (already loaded: opening it again shares it)."""
    import numpy

    root = os.path.dirname(numpy.__file__)
    patterns = [
        os.path.join(root + ".libs", "lib*openblas*.so*"),  # Linux wheels
        os.path.join(root, ".dylibs", "lib*openblas*.dylib"),  # macOS wheels
    ]
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _scipy_gemm_address(letter: str) -> int:
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[f"{letter}gemm"]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


@functools.cache
def gemm(dtype_name: str) -> Gemm:
    """The gemm for float32/float64, registered with LLVM under its symbol."""
    letter = "s" if dtype_name == "float32" else "d"
    symbol = f"graphjit_{letter}gemm"
    found = None
    library = None if config.blas() == "scipy" else _numpy_openblas()
    for pattern, int_type in _NUMPY_GEMMS if library is not None else ():
        function = getattr(library, pattern.format(letter), None)
        if function is not None:
            address = ctypes.cast(function, ctypes.c_void_p).value
            found = Gemm(symbol, "numpy-openblas", address, int_type)
            break
    if found is None:
        found = Gemm(symbol, "scipy-cython-blas", _scipy_gemm_address(letter), I32)
    llvm.add_symbol(found.symbol, found.address)
    return found


def call_gemm(b: ir.IRBuilder, local, dtype_name: str, pointers, sizes, transposed, scaling):
    """C (m×n) = alpha·op(A) @ op(B) (+ C when accumulating), row-major, op a transpose
    where `transposed` says so (A is k×m, B n×k then). Column-major BLAS computes
    Cᵀ = op(B)ᵀ op(A)ᵀ: B's row-major storage is its transpose in column-major, so the
    flags carry over unchanged."""
    (a, bmat, c), (m, n, k), (ta, tb), (alpha, accumulate) = pointers, sizes, transposed, scaling
    t = F32 if dtype_name == "float32" else F64
    blas = gemm(dtype_name)
    tp, ip, i8p = t.as_pointer(), blas.int_type.as_pointer(), I8.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i8p, ip, ip, ip, tp, tp, ip, tp, ip, tp, tp, ip])
    module = b.module
    function = module.globals.get(blas.symbol) or ir.Function(module, fnty, blas.symbol)

    def slot(value, typ):
        ptr = local(typ)
        b.store(ir.Constant(typ, value), ptr)
        return ptr

    def integer(value):
        return slot(value, blas.int_type)

    def flag(transposed):
        return slot(ord("T" if transposed else "N"), I8)

    beta = slot(1.0 if accumulate else 0.0, t)
    args = [flag(tb), flag(ta), integer(n), integer(m), integer(k), slot(alpha, t), bmat]
    args += [integer(k if tb else n), a, integer(m if ta else k), beta, c, integer(n)]
    b.call(function, args)


# Thread-count setters of NumPy's bundled OpenBLAS builds (the library gemm() calls)
_THREAD_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads")
_THREAD_SETTERS += ("openblas_set_num_threads64_", "openblas_set_num_threads")


def set_blas_threads(n: int) -> bool:
    """Run BLAS calls on `n` threads; False where the BLAS graphjit calls has no known
    setter (SciPy's, chosen with GRAPHJIT_BLAS=scipy: use threadpoolctl for it)."""
    library = None if config.blas() == "scipy" else _numpy_openblas()
    for name in _THREAD_SETTERS if library is not None else ():
        setter = getattr(library, name, None)
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            setter(n)
            return True
    return False
