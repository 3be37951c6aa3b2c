"""What every kernel generator shares: the generated kernel's description, a small
indenting writer for its Python source, literals, and index arithmetic over static shapes.

Every kernel parameter is a flat, C-contiguous 1-D device array: shapes are known once
the Session has specialised them, so they are baked into the source as constants and a
multi-dimensional index is arithmetic on one flat index (div/mod by constants)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from graphjit.codegen.cuda.narrow import store
from graphjit.codegen.layout import contiguous_strides
from graphjit.ir.types import DType, float32

# graphjit dtype name -> the Numba type of its elements in kernel parameter arrays (a
# narrow float's 16-bit storage: narrow.py); the kernel namespace binds each by name
NUMBA_TYPES = {
    "float32": "float32",
    "float64": "float64",
    "float16": "float16",
    "bfloat16": "uint16",
    "int8": "int8",
    "uint8": "uint8",
    "int32": "int32",
    "int64": "int64",
    "bool": "boolean",
}
KERNEL = "kernel"  # the name every generated source gives its kernel function


@dataclass(frozen=True)
class KernelSource:
    """Python source defining `def kernel(...)` and the dtype of each of its parameters (all
    1-D C-contiguous arrays). Equal sources are one kernel, compiled once per process."""

    source: str
    params: tuple[str, ...]
    label: str = ""  # what it computes, for messages


@dataclass(eq=False, frozen=True)
class Scratch:
    """A kernel-private device buffer (a reduction's partial results), allocated once per
    compiled function and reused by every run."""

    dtype: DType
    size: int


@dataclass(frozen=True)
class Launch:
    """One kernel launch: `args` are IR values (their planned buffers) or Scratch buffers.
    A kernel that checks numerics also gets `flag` (one int64, reset before the launch): the
    smallest 2n (NaN) or 2n + 1 (infinity) over the results of `checks[n]` it found."""

    kernel: KernelSource
    grid: int
    block: int | tuple[int, int]
    args: tuple
    flag: Scratch | None = None
    checks: tuple = ()


class Writer:
    """Indented Python source, line by line."""

    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    @contextmanager
    def block(self, header: str):
        self.line(header + ":")
        self.depth += 1
        yield
        self.depth -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def kernel_source(w: Writer, params: list[tuple[str, DType]], label: str) -> KernelSource:
    return KernelSource(w.text(), tuple(d.name for _, d in params), label)


def header(params: list[tuple[str, DType]]) -> str:
    return f"def {KERNEL}({', '.join(name for name, _ in params)})"


def register_dtype(dtype: DType) -> DType:
    """The dtype a kernel computes `dtype` in: float32 for float16/bfloat16."""
    return float32 if dtype.is_narrow_float else dtype


def numba_type(dtype: DType) -> str:
    """The Numba type of `dtype`'s values in registers (casts, accumulators, shared memory)."""
    return NUMBA_TYPES[register_dtype(dtype).name]


def storage_np(dtype: DType) -> np.dtype:
    """The NumPy dtype of device arrays holding `dtype` (bfloat16: uint16)."""
    return np.dtype(NUMBA_TYPES[dtype.name]) if dtype.is_narrow_float else dtype.np


def literal(value, dtype: DType) -> str:
    """A scalar of `dtype` as source text (typed, so float32 code stays float32); a narrow
    float's is the float32 holding its value rounded to the narrow type."""
    if dtype.is_narrow_float:
        value, dtype = np.asarray(value).astype(dtype.np).astype(np.float64), float32
    if dtype.is_bool:
        return "True" if bool(value) else "False"
    ctor = numba_type(dtype)
    if dtype.is_floating:
        v = float(value)
        if math.isnan(v):
            text = "math.nan"
        elif math.isinf(v):
            text = "math.inf" if v > 0 else "-math.inf"
        else:
            text = repr(v)
        return f"{ctor}({text})"
    v = int(value)
    # the most negative integer has no literal (its magnitude overflows before negation)
    text = f"({v + 1} - 1)" if v == np.iinfo(dtype.np).min else str(v)
    return f"{ctor}({text})"


def stored_literal(value, dtype: DType) -> str:
    """A scalar of `dtype` as an element to store (a narrow float's 16-bit storage)."""
    return store(literal(value, dtype), dtype)


# ---- index arithmetic -----------------------------------------------------------------
# The geometry (strides, coalescing, sizes) is codegen/layout.py's, shared with the LLVM
# backend. What follows writes that geometry as source text.


def coordinates(w: Writer, index: str, shape, prefix: str) -> list[str]:
    """Emit `prefix<k> = ...`, the coordinates of flat (row-major) `index` over `shape`;
    returns their names."""
    names = []
    for k, stride in enumerate(contiguous_strides(shape)):
        name = f"{prefix}{k}"
        expr = index if stride == 1 else f"({index} // {stride})"
        if k > 0:
            expr = f"{expr} % {shape[k]}"
        w.line(f"{name} = {expr}")
        names.append(name)
    return names


def offset(coords: list[str], strides, base: int = 0) -> str:
    """The flat offset `base + sum(coord * stride)` as an expression."""
    terms = [c if s == 1 else f"{c} * {s}" for c, s in zip(coords, strides, strict=True) if s]
    if base or not terms:
        terms.append(str(base))
    return " + ".join(terms)
