"""Tensor factories, PyTorch's spellings: `gj.tensor`, `gj.zeros(2, 3)`, `gj.randn(4)`, ...

Random tensors come from one module-level NumPy generator that `gj.manual_seed` re-seeds.
"""

from __future__ import annotations

import math

import numpy as np

from graphjit import config
from graphjit.errors import ResourceError, ShapeError
from graphjit.frontend.eager.tensor import Tensor, wrap
from graphjit.frontend.operators import shape_args
from graphjit.ir.core import user_location
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
    """`zeros(2, 3)` and `zeros((2, 3))` alike (as the shape methods take them)."""
    return as_dims(shape_args(size))


def _leaf(array: np.ndarray, dtype, requires_grad: bool) -> Tensor:
    array = array.astype(as_dtype(dtype).np, copy=False)
    return wrap(array).requires_grad_(requires_grad) if requires_grad else wrap(array)


def _new(make, shape: tuple, dtype, requires_grad: bool) -> Tensor:
    """A leaf of `make(shape, np_dtype)`, refused with a ResourceError before anything is
    allocated if it could not be (ones(2**20, 2**20) would meet the OOM killer or NumPy's
    MemoryError)."""
    np_dtype = as_dtype(dtype).np
    nbytes = math.prod(shape) * np_dtype.itemsize
    if nbytes > config.tensor_bytes_limit():
        raise ResourceError(
            f"a {np_dtype} tensor of shape {shape} would take {nbytes} bytes, more than a "
            "tensor may take (GRAPHJIT_MAX_TENSOR_BYTES, else physical memory)",
            location=user_location(),
        )
    try:
        return _leaf(make(shape, np_dtype), np_dtype, requires_grad)
    except MemoryError:
        raise ResourceError(
            f"out of memory making a tensor of shape {shape}", location=user_location()
        ) from None


def _sampled(sample):
    """Samples drawn as float64, then cast: the stream a seed gives stays the same."""
    return lambda shape, _dtype: sample(shape)


def zeros(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    return _new(np.zeros, _size(size), dtype, requires_grad)


def ones(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    return _new(np.ones, _size(size), dtype, requires_grad)


def full(size, fill_value, dtype="float32", requires_grad: bool = False) -> Tensor:
    fill = lambda shape, np_dtype: np.full(shape, fill_value, np_dtype)
    return _new(fill, _size((size,)), dtype, requires_grad)


def randn(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    return _new(_sampled(_generator.standard_normal), _size(size), dtype, requires_grad)


def rand(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _new(_sampled(_generator.random), _size(size), dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """`arange(5)`, `arange(1, 4)`, `arange(0, 1, 0.25)`: int64 for integer arguments,
    float32 otherwise, as in PyTorch."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ShapeError("arange's step must not be 0", location=user_location())
    length = max(0, math.ceil((end - start) / step))
    floats = any(isinstance(v, (float, np.floating)) for v in (start, end, step))
    dtype = dtype or ("float32" if floats else "int64")
    return _new(lambda shape, _: np.arange(start, end, step), (length,), dtype, requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.zeros, t.shape, dtype or t.dtype, requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _new(np.ones, t.shape, dtype or t.dtype, requires_grad)
