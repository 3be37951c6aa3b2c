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

from graphjit.codegen.layout import contiguous_strides
from graphjit.errors import BackendError
from graphjit.ir.types import DType

# graphjit dtype name -> the Numba type name the kernel namespace binds (casts, shared memory)
NUMBA_TYPES = {
    "float32": "float32",
    "float64": "float64",
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


def numba_type(dtype: DType, op=None) -> str:
    check_supported(dtype, op)
    return NUMBA_TYPES[dtype.name]


def check_supported(dtype: DType, op=None) -> None:
    """float16 and bfloat16 are not generated for yet (kernels would need float32 compute
    with a rounding per op, and bfloat16 has no Numba type): a BackendError while the
    Session is built, naming the dtype and the op, never a wrong answer at run time."""
    if dtype.name not in NUMBA_TYPES:
        what = f" (op '{op.name}')" if op is not None else ""
        raise BackendError(
            f"the cuda backend does not support {dtype.name}{what} yet; run float16/bfloat16 "
            "graphs on the llvm backend or the interpreter",
            op=op,
        )


def literal(value, dtype: DType) -> str:
    """A scalar of `dtype` as source text (typed, so float32 code stays float32)."""
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
