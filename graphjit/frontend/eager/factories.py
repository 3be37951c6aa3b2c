"""Tensor factories, PyTorch's spellings: `gj.tensor`, `gj.zeros(2, 3)`, `gj.randn(4)`, ...

Random tensors come from one module-level NumPy generator that `gj.manual_seed` re-seeds.
"""

from __future__ import annotations

import numpy as np

from graphjit.frontend.eager.tensor import Tensor, wrap
from graphjit.ir.types import as_dims, as_dtype

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    global _generator
    _generator = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _generator


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new leaf holding a copy of `data`. Python floats become float32 and ints int64 (as in
    PyTorch); NumPy arrays keep their dtype."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def _size(size: tuple) -> tuple:
    """`zeros(2, 3)` and `zeros((2, 3))` alike."""
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        return as_dims(size[0])
    return as_dims(size)


def _leaf(array: np.ndarray, dtype, requires_grad: bool) -> Tensor:
    array = array.astype(as_dtype(dtype).np, copy=False)
    return wrap(array).requires_grad_(requires_grad) if requires_grad else wrap(array)


def zeros(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    return _leaf(np.zeros(_size(size)), dtype, requires_grad)


def ones(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    return _leaf(np.ones(_size(size)), dtype, requires_grad)


def full(size, fill_value, dtype="float32", requires_grad: bool = False) -> Tensor:
    return _leaf(np.full(_size((size,)), fill_value), dtype, requires_grad)


def randn(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    return _leaf(_generator.standard_normal(_size(size)), dtype, requires_grad)


def rand(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _leaf(_generator.random(_size(size)), dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """`arange(5)`, `arange(1, 4)`, `arange(0, 1, 0.25)`: int64 for integer arguments,
    float32 otherwise, as in PyTorch."""
    if end is None:
        start, end = 0, start
    array = np.arange(start, end, step)
    default = "float32" if array.dtype.kind == "f" else "int64"
    return _leaf(array, dtype or default, requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.zeros(t.shape), dtype or t.dtype, requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _leaf(np.ones(t.shape), dtype or t.dtype, requires_grad)
