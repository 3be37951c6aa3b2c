"""Tensor factories, PyTorch's spellings and default dtypes: `gj.tensor`, `gj.zeros(2, 3)`,
`gj.randn(4)`, `gj.arange`, `gj.linspace`, `gj.eye`, `gj.full`, `gj.zeros_like(t)`, ...

Called while a graph is being built (`with g.as_default():`, a cond branch or loop body,
a gj.function trace) the deterministic factories build graph values, as `tf.zeros` does in
TF1, so `gj.zeros([1, 2]) + graph_value` works; `*_like` factories follow their argument
(a graph value gives a graph value whose shape comes from it when the graph runs, so
unknown dimensions work). Random factories refuse to run in a graph: there is no in-graph
random op, and a random constant baked into a graph would repeat the same numbers every run.

Random tensors come from one module-level NumPy generator that `gj.manual_seed` re-seeds.
`gj.empty` gives zeros: never uninitialised memory.
"""

from __future__ import annotations

import contextlib
import math
import numbers

import numpy as np

from graphjit import config
from graphjit.errors import DTypeError, GraphjitError, ResourceError, ShapeError
from graphjit.frontend import convert
from graphjit.frontend.convert import building_graph, graph_constant, is_tensor, unwrap
from graphjit.frontend.eager.tensor import Tensor, wrap
from graphjit.frontend.shape_ops import shape_args
from graphjit.ir import builder
from graphjit.ir.core import Block, Value, user_location
from graphjit.ir.ops import bind
from graphjit.ir.types import DType, as_dims, as_dtype, bool_, float32, ieee_results, int64

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the random factories and the counter-based random ops (gj.random, dropout)."""
    global _generator
    _generator = np.random.default_rng(seed)
    from graphjit.frontend import random  # (imports the eager mode: not at module level)

    random.manual_seed(seed)


def generator() -> np.random.Generator:
    return _generator


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new leaf holding a copy of `data`. Python floats become float32 and ints int64 (as in
    PyTorch); NumPy arrays keep their dtype. Always eager (use gj.constant in a graph)."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing `array`'s memory (PyTorch's torch.from_numpy): writes to either show
    in the other. Always eager: a graph constant cannot share memory."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    if not array.dtype.isnative:
        raise DTypeError(
            f"from_numpy: the array's byte order ({array.dtype.str}) is not the machine's; "
            "convert it with array.astype(array.dtype.newbyteorder('='))",
            location=user_location(),
        )
    as_dtype(array.dtype)  # raises DTypeError naming the supported dtypes
    return wrap(array)


# ---- shapes, sizes and the two modes -----------------------------------------------------


def _size(size: tuple) -> tuple:
    """`zeros(2, 3)` and `zeros((2, 3))` alike (as the shape methods take them)."""
    dims = as_dims(shape_args(size))
    if any(d < 0 for d in dims):
        raise ShapeError(f"negative dimension in shape {dims}", location=user_location())
    return dims


def _check_size(shape: tuple, np_dtype: np.dtype) -> None:
    """Refuse, before anything is allocated, a tensor that could not be (ones(2**20, 2**20)
    would meet the OOM killer or NumPy's MemoryError)."""
    nbytes = math.prod(shape) * np_dtype.itemsize
    if nbytes > config.tensor_bytes_limit():
        raise ResourceError(
            f"a {np_dtype} tensor of shape {shape} would take {nbytes} bytes, more than a "
            "tensor may take (GRAPHJIT_MAX_TENSOR_BYTES, else physical memory)",
            location=user_location(),
        )


def _leaf(array: np.ndarray, dtype, requires_grad: bool) -> Tensor:
    array = array.astype(as_dtype(dtype).np, copy=False)
    return wrap(array).requires_grad_(requires_grad) if requires_grad else wrap(array)


def _new(make, shape: tuple, dtype, requires_grad: bool) -> Tensor:
    """An eager leaf of `make(shape, np_dtype)`, size-checked first."""
    np_dtype = as_dtype(dtype).np
    _check_size(shape, np_dtype)
    try:
        return _leaf(make(shape, np_dtype), np_dtype, requires_grad)
    except MemoryError:
        raise ResourceError(
            f"out of memory making a tensor of shape {shape}", location=user_location()
        ) from None


def _no_requires_grad_in_graph(requires_grad: bool, what: str) -> None:
    if requires_grad:
        raise GraphjitError(
            f"{what}(requires_grad=True) while a graph is being built: graph values are "
            "differentiated with gj.gradients; use a gj.Variable for a trainable value",
            location=user_location(),
        )


def _made(make, shape: tuple, dtype, requires_grad: bool, what: str):
    """`make(shape, np_dtype)` as an eager leaf, or as a graph constant while a graph is
    being built."""
    if not building_graph():
        return _new(make, shape, dtype, requires_grad)
    _no_requires_grad_in_graph(requires_grad, what)
    np_dtype = as_dtype(dtype).np
    _check_size(shape, np_dtype)
    return graph_constant(make(shape, np_dtype).astype(np_dtype, copy=False), as_dtype(dtype))


def _filled(fill_value, shape: tuple, dtype, requires_grad: bool, what: str):
    """A tensor of `shape` holding `fill_value`: in a graph a broadcast scalar constant (the
    graph stays small whatever the shape)."""
    if not building_graph():
        if fill_value == 0:  # (np.zeros: calloc'd pages, faster than filling)
            return _new(np.zeros, shape, dtype, requires_grad)
        fill = lambda shape, np_dtype: ieee_results(np.full, shape, fill_value, np_dtype)
        return _new(fill, shape, dtype, requires_grad)
    _no_requires_grad_in_graph(requires_grad, what)
    scalar = graph_constant(fill_value, as_dtype(dtype))
    return bind("broadcast_to", scalar, shape=shape) if shape else scalar


def _refuse_in_graph(what: str) -> None:
    if building_graph():
        raise GraphjitError(
            f"{what} while a graph is being built: graphjit has no in-graph random op yet, "
            "and a random constant baked into the graph would give the same numbers on "
            "every run; make the samples outside and feed them through a placeholder (or "
            "pass them to the gj.function as an argument)",
            location=user_location(),
        )


def _fill_dtype(fill_value) -> DType:
    """PyTorch's full(): bool -> bool, int -> int64, float -> float32 (the default dtype)."""
    if isinstance(fill_value, (bool, np.bool_)):
        return bool_
    if isinstance(fill_value, np.generic):
        return as_dtype(fill_value.dtype)
    if isinstance(fill_value, numbers.Integral):
        return int64
    return float32


# ---- factories from a size ---------------------------------------------------------------


def zeros(*size, dtype="float32", requires_grad: bool = False):
    return _filled(0, _size(size), dtype, requires_grad, "zeros")


def ones(*size, dtype="float32", requires_grad: bool = False):
    return _filled(1, _size(size), dtype, requires_grad, "ones")


def empty(*size, dtype="float32", requires_grad: bool = False):
    """Zeros (PyTorch leaves the memory uninitialised; graphjit never hands out stale
    bytes)."""
    return _filled(0, _size(size), dtype, requires_grad, "empty")


def full(size, fill_value, dtype=None, requires_grad: bool = False):
    """`fill_value` everywhere; the dtype follows it when not given (as PyTorch's)."""
    dtype = dtype or _fill_dtype(fill_value)
    return _filled(fill_value, _size((size,)), dtype, requires_grad, "full")


def randn(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    _refuse_in_graph("randn")
    return _new(_sampled(_generator.standard_normal), _size(size), dtype, requires_grad)


def rand(*size, dtype="float32", requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    _refuse_in_graph("rand")
    return _new(_sampled(_generator.random), _size(size), dtype, requires_grad)


def randint(low, high=None, size=None, dtype="int64", requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high): `randint(high, size)` or `randint(low, high, size)`
    (PyTorch's signature; `size` is a tuple)."""
    _refuse_in_graph("randint")
    if size is None:  # randint(high, size)
        if high is None:
            raise TypeError("randint() needs high and size: randint(low=0, high, size)")
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if not low < high:
        raise ShapeError(f"randint: low ({low}) must be less than high ({high})")
    sample = lambda shape, _dtype: _generator.integers(low, high, shape)
    return _new(sample, _size((size,)), dtype, requires_grad)


def _sampled(sample):
    """Samples drawn as float64, then cast: the stream a seed gives stays the same."""
    return lambda shape, _dtype: sample(shape)


# ---- ranges and matrices -----------------------------------------------------------------


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False):
    """`arange(5)`, `arange(1, 4)`, `arange(0, 1, 0.25)`: int64 for integer arguments,
    float32 otherwise, as in PyTorch."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ShapeError("arange's step must not be 0", location=user_location())
    if (end - start) * step < 0:
        raise ShapeError(
            f"arange({start}, {end}, {step}): the bounds are inconsistent with the step's sign",
            location=user_location(),
        )
    length = max(0, math.ceil((end - start) / step))
    floats = any(isinstance(v, (float, np.floating)) for v in (start, end, step))
    dtype = dtype or ("float32" if floats else "int64")
    # (start + i * step, computed in float64 or int64 and then cast, as PyTorch does)
    make = lambda shape, _: start + np.arange(length) * step
    return _made(make, (length,), dtype, requires_grad, "arange")


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False):
    """`steps` values from start to end inclusive (float32 unless `dtype`), as PyTorch's:
    the first half counted up from start, the second down from end, so both ends are
    exact."""
    steps = int(steps)
    if steps < 0:
        raise ShapeError(f"linspace: number of steps must be non-negative, got {steps}")

    def make(shape, _):
        if steps == 1:
            return np.full(1, start, np.float64)
        i = np.arange(steps, dtype=np.float64)
        step = (end - start) / (steps - 1)
        return np.where(i < steps // 2, start + i * step, end - (steps - 1 - i) * step)

    return _made(make, (steps,), dtype or "float32", requires_grad, "linspace")


def eye(n: int, m: int | None = None, dtype="float32", requires_grad: bool = False):
    """An n x m (default n x n) matrix with ones on the diagonal."""
    shape = _size((n, n if m is None else m))
    return _made(lambda s, np_dtype: np.eye(*s, dtype=np_dtype), shape, dtype, requires_grad, "eye")


# ---- factories shaped like a tensor ------------------------------------------------------


def _like_argument(x):
    """`x` as a tensor of its own mode: a graph value (or Variable), an eager tensor, or
    data made into one in the mode of the context."""
    x = unwrap(x)
    return x if is_tensor(x) else convert.as_tensor(x, eager_ok=True)


def _filled_like(x, fill_value, dtype, requires_grad: bool, what: str):
    x = _like_argument(x)
    dtype = as_dtype(dtype or x.dtype)
    if isinstance(x, Value):  # shaped when the graph runs: unknown dimensions are fine
        _no_requires_grad_in_graph(requires_grad, what)
        with _in_graph_of(x):
            return bind("broadcast_like", graph_constant(fill_value, dtype), x)
    if fill_value == 0:
        return _new(np.zeros, x.shape, dtype, requires_grad)
    fill = lambda shape, np_dtype: np.full(shape, fill_value, np_dtype)
    return _new(fill, x.shape, dtype, requires_grad)


def _in_graph_of(x: Value):
    """Where a `*_like` op of graph value x goes: the graph being built, or with none (x
    used outside `with g.as_default()`) x's own graph, not the default one."""
    if building_graph():
        return contextlib.nullcontext()
    home = x.owner if isinstance(x.owner, Block) else x.owner.parent
    return builder.insertion_point(home)


def zeros_like(input, dtype=None, requires_grad: bool = False):
    return _filled_like(input, 0, dtype, requires_grad, "zeros_like")


def ones_like(input, dtype=None, requires_grad: bool = False):
    return _filled_like(input, 1, dtype, requires_grad, "ones_like")


def empty_like(input, dtype=None, requires_grad: bool = False):
    """Zeros, as `empty`."""
    return _filled_like(input, 0, dtype, requires_grad, "empty_like")


def full_like(input, fill_value, dtype=None, requires_grad: bool = False):
    """`fill_value` everywhere, in input's dtype unless `dtype` (as PyTorch's)."""
    return _filled_like(input, fill_value, dtype, requires_grad, "full_like")


def _random_like(input, sample, dtype, requires_grad: bool, what: str) -> Tensor:
    x = _like_argument(input)
    if isinstance(x, Value):
        _refuse_in_graph(what)  # (a graph value outside `as_default`: still a graph)
        raise GraphjitError(
            f"{what} of a graph value: graphjit has no in-graph random op yet",
            location=user_location(),
        )
    dtype = as_dtype(dtype or x.dtype)
    if not dtype.is_floating:
        raise DTypeError(f"{what} needs a floating-point dtype, got {dtype.name}")
    return _new(_sampled(sample), x.shape, dtype, requires_grad)


def rand_like(input, dtype=None, requires_grad: bool = False) -> Tensor:
    return _random_like(input, _generator.random, dtype, requires_grad, "rand_like")


def randn_like(input, dtype=None, requires_grad: bool = False) -> Tensor:
    return _random_like(input, _generator.standard_normal, dtype, requires_grad, "randn_like")
