"""gj.random: normal, uniform, bernoulli in graphs and eager, seeded, from a counter-based
generator; TF1's random_normal/truncated_normal/random_uniform; dropout.

Each random op reads an rng pair (seed, step) and has a key attribute (ir/ops/random.py);
where they come from depends on the mode:

- eager: a process-wide (seed, step) that `gj.manual_seed` resets; each random call takes
  the next step, so calls differ and a seeded program repeats itself.
- gj.function: the traced graph reads a hidden placeholder that each call feeds with the
  eager (seed, step), the k-th random op of the trace using step + k, and the eager step
  advances by the number of random ops. So a function draws what the same code run
  eagerly would, bit for bit, and the backward trace of a call (`with_rng`) sees the
  forward call's numbers.
- a static graph (TF1): a hidden int64 Variable (0, step) and one assign that adds 1 to
  the step; random ops read the assign's result, so every Session run that computes one
  advances the step once (new numbers each run; a new Session starts again from 0). The
  key mixes TF1's graph-level seed (`set_random_seed`) and op-level seed, as TF1 does:
  one of them given -> deterministic; neither -> a random seed.

Inside a graph while_loop body a random op reads (seed, 2**63 + step * 2**32 + count)
instead, `count` the loop's draw counter (frontend/control_flow.py), which differs between
all iterations of all loops of a nest: so each iteration draws fresh numbers, the same on
every backend for the same seed and step, and a loop's gradient, which reads each
iteration's count back from autodiff's tape, recomputes each iteration's dropout mask. For
one op (one key) the folded steps are distinct as long as counts stay below 2**32 per run
and steps below 2**31: step * 2**32 + count then lies in [0, 2**63), one value per (step,
count), and the added 2**63 sets the top bit that no plain step has (plain steps are
non-negative), so iterations never replay a draw outside a loop either (this matters to
gj.function, whose ops share one key and tell themselves apart by the step). Inside
gj.function a loop draws per iteration too, but not what the same loop run eagerly would
(that takes one eager step per draw, a number known only when the loop has run). A random
op in a loop's condition draws the same numbers in each test of one loop run.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from contextlib import contextmanager

import numpy as np

from graphjit.errors import DTypeError, GraphjitError, ShapeError
from graphjit.frontend import ops
from graphjit.frontend.control_flow import draw_counter
from graphjit.frontend.convert import building_graph, is_tensor, unwrap
from graphjit.ir import builder
from graphjit.ir.core import Value, user_location
from graphjit.ir.ops import bind
from graphjit.ir.types import as_dims, as_dtype, float32, float64, int64

__all__ = ["random_normal", "truncated_normal", "random_uniform", "set_random_seed"]

DEFAULT_GRAPH_SEED = 87654321  # TF1's, for an op seed given without a graph seed
STATE_NAME = "random_state"  # the hidden Variable / placeholder holding (seed, step)
_UINT64 = (1 << 64) - 1
# rng * STEP_SCALE + count * COUNT_LANE + ITERATION_TAG = (seed, 2**63 + step * 2**32 + count)
# in int64 arithmetic, which wraps the same way on every backend (see the module doc)
STEP_SCALE = np.array([1, 1 << 32], np.int64)
COUNT_LANE = np.array([0, 1], np.int64)
ITERATION_TAG = np.array([0, -(1 << 63)], np.int64)


# ---- keys ---------------------------------------------------------------------------------


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _UINT64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _UINT64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _UINT64
    return x ^ (x >> 31)


def op_key(*seeds) -> int:
    """An op's key attribute from its seeds: well mixed, so that nearby seeds give unrelated
    streams, as a signed int64 (what the IR's integer attributes hold)."""
    h = 0
    for s in seeds:
        h = _splitmix64(h ^ (int(s) & _UINT64))
    return h - (1 << 64) if h >= 1 << 63 else h


# ---- where the rng comes from: eager, a trace, a TF1 graph -----------------------------------


class _EagerState:
    def __init__(self):
        self.lock = threading.Lock()
        self.seed = secrets.randbits(63)  # (unseeded: different each process, as NumPy's)
        self.step = 0

    def take(self, steps: int = 1) -> np.ndarray:
        """(seed, first step) for `steps` random ops, and advance past them."""
        with self.lock:
            rng = np.array([self.seed, self.step], np.int64)
            self.step += steps
        return rng


_EAGER = _EagerState()


def manual_seed(seed: int) -> None:
    """Reset eager randomness (and gj.function's) to `seed`, step 0 (`gj.manual_seed`)."""
    seed = int(seed) & _UINT64
    with _EAGER.lock:
        _EAGER.seed = seed - (1 << 64) if seed >= 1 << 63 else seed
        _EAGER.step = 0


def next_rng(steps: int = 1) -> np.ndarray:
    """The eager (seed, step) for `steps` random ops; the eager step moves past them."""
    return _EAGER.take(steps)


class _Source:
    """Gives the rng of random ops built while it is active (innermost wins)."""

    def __init__(self, graph, base=None):
        self.graph, self.base, self.count = graph, base, 0

    def rng(self):
        if self.base is None:
            from graphjit.frontend.graph import placeholder

            with builder.insertion_point(self.graph.block):
                self.base = placeholder(int64, [2], name=STATE_NAME)
        k, self.count = self.count, self.count + 1
        return self.base if k == 0 else ops.add(self.base, np.array([0, k], np.int64))


_local = threading.local()


def _sources() -> list:
    if not hasattr(_local, "sources"):
        _local.sources = []
    return _local.sources


@contextmanager
def traced_rng(graph):
    """While gj.function traces into `graph`: random ops read a placeholder (created on
    first use) that the caller feeds with `next_rng(source.count)` each call."""
    source = _Source(graph)
    _sources().append(source)
    try:
        yield source
    finally:
        _sources().pop()


@contextmanager
def with_rng(graph, rng):
    """Random ops built inside read `rng` (a graph value of `graph`, an int64 pair), the
    k-th at step + k: a backward trace that replays the forward call's numbers."""
    source = _Source(graph, base=rng)
    _sources().append(source)
    try:
        yield source
    finally:
        _sources().pop()


class _GraphState:
    """A TF1 graph's randomness: its graph-level seed, how many random ops it has (the op
    seed of those given none), and the rng value they read (built on first use)."""

    def __init__(self):
        self.seed = None
        self.ops = 0
        self.rng = None
        self.fallback = None  # the graph seed when neither seed is given: random, once

    def graph_seed(self, op_seed):
        if self.seed is not None:
            return self.seed
        if op_seed is not None:
            return DEFAULT_GRAPH_SEED
        if self.fallback is None:
            self.fallback = secrets.randbits(63)
        return self.fallback


_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _graph_state(graph) -> _GraphState:
    state = _GRAPHS.get(graph)
    if state is None:
        state = _GRAPHS[graph] = _GraphState()
    return state


def _current_graph():
    from graphjit.frontend.graph import get_default_graph

    return get_default_graph()


def _graph_rng(graph, state: _GraphState):
    """The hidden (0, step) Variable's value after this run's increment (built once, at the
    graph's top level, so random ops inside cond/while bodies capture it)."""
    if state.rng is None:
        from graphjit.frontend.graph import Variable

        with builder.insertion_point(graph.block):
            var = Variable(np.zeros(2, np.int64), name=STATE_NAME, trainable=False)
            advanced = ops.add(var.value, np.array([0, 1], np.int64))
            state.rng = builder.create("assign", [advanced], {"var": var.name}).result
            state.rng.name_hint = f"{var.name}/assign"
    return state.rng


def _rng_and_key(seed, graph_mode: bool):
    """The rng operand and key attribute of a new random op."""
    if not graph_mode:
        from graphjit.frontend.eager.tensor import wrap

        return wrap(next_rng()), op_key(seed or 0)
    rng, key = _graph_rng_and_key(seed)
    return _in_iteration(rng), key


def _graph_rng_and_key(seed):
    graph = _current_graph()
    sources = _sources()
    if sources and sources[-1].graph is graph:
        return sources[-1].rng(), op_key(seed or 0)
    state = _graph_state(graph)
    op_seed = seed if seed is not None else (1 << 32) + state.ops  # (apart from user seeds)
    state.ops += 1
    return _graph_rng(graph, state), op_key(state.graph_seed(seed), op_seed)


def _in_iteration(rng):
    """`rng` with the draw counter of the loop body being built folded into its step (see
    the module doc), or `rng` itself outside loop bodies."""
    count = draw_counter()
    if count is None:
        return rng
    tagged_count = ops.add(ops.mul(count, COUNT_LANE), ITERATION_TAG)
    return ops.add(ops.mul(rng, STEP_SCALE), tagged_count)


def _static_shape(shape) -> tuple:
    if isinstance(unwrap(shape), Value) or is_tensor(unwrap(shape)):
        raise ShapeError(
            "random ops need a static shape (Python ints); for a shape known only at run "
            "time use gj.random.dropout or a random op of the largest shape and slice it",
            location=user_location(),
        )
    dims = as_dims(shape)
    if any(d < 0 for d in dims):
        raise ShapeError(f"negative dimension in shape {dims}", location=user_location())
    return dims


def _float_dtype(dtype, what: str):
    dtype = as_dtype(dtype)
    if dtype not in (float32, float64):
        raise DTypeError(f"{what}: dtype must be float32 or float64, got {dtype.name}")
    return dtype


def _random(name: str, shape, dtype, seed, graph_mode=None):
    graph_mode = building_graph() if graph_mode is None else graph_mode
    rng, key = _rng_and_key(seed, graph_mode)
    return bind(name, rng, shape=_static_shape(shape), dtype=as_dtype(dtype).name, key=key)


def _affine(x, scale, shift):
    """x * scale + shift, skipping the Python-number identities."""
    if not (isinstance(scale, (int, float)) and scale == 1):
        x = ops.mul(x, scale)
    if not (isinstance(shift, (int, float)) and shift == 0):
        x = ops.add(x, shift)
    return x


# ---- public API ---------------------------------------------------------------------------


def normal(shape, dtype=float32, seed=None, mean=0.0, stddev=1.0):
    """Normally distributed floats (Box-Muller on Philox), in a graph while one is being
    built, else eager (PyTorch's randn with JAX's arguments)."""
    z = _random("random_normal", shape, _float_dtype(dtype, "normal"), seed)
    return _affine(z, stddev, mean)


def uniform(shape, dtype=float32, seed=None, minval=0.0, maxval=1.0):
    """Floats uniform in [minval, maxval) (JAX's jax.random.uniform arguments)."""
    u = _random("random_uniform", shape, _float_dtype(dtype, "uniform"), seed)
    return _affine(u, _difference(maxval, minval), minval)


def _difference(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a - b
    return ops.sub(a, b)


def bernoulli(p, shape=None, seed=None):
    """Booleans that are True with probability p (JAX's jax.random.bernoulli); `shape`
    defaults to p's (p a Python number or a tensor of static shape)."""
    p = unwrap(p)
    graph_mode = isinstance(p, Value) or (not is_tensor(p) and building_graph())
    dtype = p.dtype if is_tensor(p) and p.dtype == float64 else float32
    if shape is None:
        shape = tuple(p.shape) if is_tensor(p) else ()
    u = _random("random_uniform", shape, dtype, seed, graph_mode)
    return ops.less(u, p)


def random_normal(shape, mean=0.0, stddev=1.0, dtype=float32, seed=None, name=None):
    """TF1's tf.random_normal."""
    return _named(normal(shape, dtype, seed, mean, stddev), name)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=float32, seed=None, name=None):
    """TF1's tf.truncated_normal: normal values, those more than 2 standard deviations
    from the mean redrawn."""
    z = _random("random_truncated_normal", shape, _float_dtype(dtype, "truncated_normal"), seed)
    return _named(_affine(z, stddev, mean), name)


def random_uniform(shape, minval=0, maxval=None, dtype=float32, seed=None, name=None):
    """TF1's tf.random_uniform: floats in [minval, maxval) (maxval defaults to 1), or for
    integer dtypes integers in [minval, maxval) (maxval required)."""
    dtype = as_dtype(dtype)
    if dtype.is_floating:
        out = uniform(shape, dtype, seed, minval, 1.0 if maxval is None else maxval)
    else:
        out = _uniform_integers(shape, minval, maxval, dtype, seed)
    return _named(out, name)


def _uniform_integers(shape, minval, maxval, dtype, seed):
    """floor(u * (maxval - minval)) + minval from a float64 uniform: unbiased to 2**-52
    (TF1 takes bits modulo the range, biased for ranges not a power of 2)."""
    if maxval is None:
        raise GraphjitError(f"random_uniform: maxval must be given for dtype {dtype.name}")
    if not all(isinstance(v, (int, np.integer)) for v in (minval, maxval)):
        raise DTypeError("random_uniform: integer bounds must be Python or NumPy integers")
    span = int(maxval) - int(minval)
    if span <= 0:
        raise GraphjitError(f"random_uniform: need minval < maxval, got [{minval}, {maxval})")
    u = _random("random_uniform", shape, float64, seed)
    picked = ops.minimum(ops.cast(ops.mul(u, float(span)), int64), span - 1)
    return ops.cast(ops.add(picked, int(minval)), dtype)


def _named(value, name):
    if name is None or not isinstance(value, Value):
        return value
    from graphjit.frontend.graph import named

    return named(value, name)


def set_random_seed(seed: int) -> None:
    """TF1's tf.set_random_seed: the graph-level seed of the default graph; random ops
    built after it are deterministic (each a different stream)."""
    state = _graph_state(_current_graph())
    state.seed = int(seed)
    state.ops = 0  # (TF1 counts from the seed on too: rebuilding repeats the numbers)


def dropout(x, p: float = 0.5, training=True, seed=None):
    """PyTorch's F.dropout: zero each element with probability p and scale the rest by
    1 / (1 - p); x itself when not training. The gradient recomputes the same mask."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise GraphjitError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = ops.as_tensor(x)
    symbolic = is_tensor(unwrap(training))  # a boolean tensor chooses at run time
    if (not symbolic and not training) or p == 0.0:
        return x
    rng, key = _rng_and_key(seed, isinstance(x, Value))
    dropped = bind("dropout", x, rng, p=p, key=key)
    return ops.where(training, dropped, x) if symbolic else dropped
