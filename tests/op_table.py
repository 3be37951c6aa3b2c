"""One record per op: drives the forward, gradient and backend tests of every mode.

A record applies a public function (or a primitive through `bind`) to tensors and names a
NumPy reference. Which registry primitives a record exercises is found by tracing it, so
the coverage test knows when a newly registered op has no record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.special

import graphjit as gj
from graphjit.ir.ops import bind

FLOATS = ("float64", "float32")
INTS = ("int32", "int64")


@dataclass
class OpCase:
    name: str
    fn: Callable  # fn(*tensors) -> tensor, written with the gj namespace
    ref: Callable  # ref(*arrays) -> array
    shapes: list  # one tuple of input shapes per case
    domains: tuple = ("real",)  # a sampler per input (the last one repeats)
    dtypes: tuple = FLOATS  # the dtype of the (non-fixed) inputs
    grad: bool = True  # differentiable with respect to its float inputs
    fixed: dict = field(default_factory=dict)  # input index -> dtype that does not vary
    dynamic: bool = True  # can be built with every dimension unknown

    def domain(self, i: int) -> str:
        return self.domains[min(i, len(self.domains) - 1)]


def swap(shape: tuple, transposed: bool) -> tuple:
    """`shape` with its last two axes swapped when `transposed`."""
    return shape[:-2] + shape[:-3:-1] if transposed else shape


def sample(domain: str, shape, dtype, rng) -> np.ndarray:
    """Inputs away from kinks and singularities, so finite differences are meaningful."""
    if domain == "real":
        x = rng.uniform(-2, 2, shape)
    elif domain == "positive":
        x = rng.uniform(0.5, 2, shape)
    elif domain == "nonzero":
        magnitude = (
            rng.integers(1, 4, shape)
            if np.dtype(dtype).kind in "iu"
            else rng.uniform(0.5, 2, shape)
        )
        x = magnitude * rng.choice([-1, 1], shape)
    elif domain == "small_int":
        x = rng.integers(-3, 4, shape)
    elif domain == "int":  # integers of both signs with enough bits set to tell ops apart
        x = rng.integers(-100, 101, shape)
    elif domain == "label":
        x = rng.integers(0, 4, shape)
    elif domain == "index":  # gather indices of both signs, for an indexed axis of 4 or more
        x = rng.integers(-4, 4, shape)
    elif domain == "bool":
        x = rng.integers(0, 2, shape).astype(bool)
    else:
        raise ValueError(domain)
    return np.asarray(x).astype(dtype)


def inputs_for(case: OpCase, shapes, dtype, seed=0) -> list:
    rng = np.random.default_rng(seed)
    return [sample(case.domain(i), s, case.fixed.get(i, dtype), rng) for i, s in enumerate(shapes)]


UNARY_SHAPES = [((),), ((7,),), ((3, 4),), ((2, 3, 4),)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (3,))]
REDUCE_SHAPES = [((3, 4),), ((2, 3, 4),)]


def _unary(name, np_fn, domain="real", grad=True, dtypes=FLOATS):
    return OpCase(name, getattr(gj, name), np_fn, UNARY_SHAPES, (domain,), dtypes, grad)


def _binary(name, np_fn, domains=("real",), grad=True, dtypes=FLOATS):
    return OpCase(name, getattr(gj, name), np_fn, BINARY_SHAPES, domains, dtypes, grad)


def _reduce(name, np_fn, axis, keepdims=False, grad=True):
    return OpCase(
        f"{name}(axis={axis}, keepdims={keepdims})",
        lambda x: getattr(gj, name)(x, axis=axis, keepdims=keepdims),
        lambda x: np.asarray(np_fn(x, axis=axis, keepdims=keepdims)),
        REDUCE_SHAPES if axis in (None, 0, -1, 1) else [((2, 3, 4),)],
        grad=grad,
    )


def _softmax_ref(x, axis=-1):
    return scipy.special.softmax(x, axis=axis)


OP_TABLE: list[OpCase] = [
    _unary("neg", np.negative),
    _unary("exp", np.exp),
    _unary("log", np.log, "positive"),
    _unary("sqrt", np.sqrt, "positive"),
    _unary("abs", np.abs, "nonzero"),
    _unary("sign", np.sign, "nonzero", grad=False),
    _unary("sin", np.sin),
    _unary("cos", np.cos),
    _unary("tanh", np.tanh),
    _unary("sigmoid", scipy.special.expit),
    *[  # (tanh's and sigmoid's cotangents from their results, g and y: one op eagerly)
        OpCase(
            name,
            lambda g, y, name=name: bind(name, g, y),
            ref,
            [((3, 4), (3, 4)), ((2, 3), (3,)), ((), (2, 2))],
        )
        for name, ref in [
            ("tanh_grad", lambda g, y: g * (1 - y * y)),
            ("sigmoid_grad", lambda g, y: g * (y * (1 - y))),
        ]
    ],
    _unary("square", np.square),
    _unary("relu", lambda x: np.maximum(x, 0), "nonzero"),
    _unary("neg", np.negative, "small_int", grad=False, dtypes=INTS),
    _binary("add", np.add),
    _binary("sub", np.subtract),
    _binary("mul", np.multiply),
    _binary("div", np.divide, ("real", "nonzero")),
    _binary("maximum", np.maximum),
    _binary("minimum", np.minimum),
    _binary("pow", np.power, ("positive", "real")),
    _binary("add", np.add, ("small_int",), grad=False, dtypes=INTS),
    _binary("mul", np.multiply, ("small_int",), grad=False, dtypes=INTS),
    _binary("maximum", np.maximum, ("small_int",), grad=False, dtypes=INTS),
    _binary("div", np.divide, ("small_int", "nonzero"), grad=False, dtypes=INTS),
    *[
        _binary(n, getattr(np, n), ("small_int",), grad=False, dtypes=FLOATS + INTS)
        for n in ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]
    ],
    _binary("logical_and", np.logical_and, ("bool",), grad=False, dtypes=("bool",)),
    _binary("logical_or", np.logical_or, ("bool",), grad=False, dtypes=("bool",)),
    _unary("logical_not", np.logical_not, "bool", grad=False, dtypes=("bool",)),
    OpCase(
        "where",
        gj.where,
        np.where,
        [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()), ((4,), (2, 4), (4,))],
        ("bool", "real"),
        fixed={0: "bool"},
    ),
    OpCase(
        "cast_f32", lambda x: gj.cast(x, gj.float32), lambda x: x.astype(np.float32), UNARY_SHAPES
    ),
    OpCase(
        "cast_i32",
        lambda x: gj.cast(x, "int32"),
        lambda x: x.astype(np.int32),
        UNARY_SHAPES,
        grad=False,
    ),
    OpCase("stop_gradient", gj.stop_gradient, lambda x: x, UNARY_SHAPES, grad=False),
    *[
        _reduce(n, f, a, k)
        for n, f in [("sum", np.sum), ("mean", np.mean)]
        for a, k in [(None, False), (0, False), (-1, True), ((0, 2), False)]
    ],
    *[
        _reduce(n, f, a, k)
        for n, f in [("max", np.max), ("min", np.min)]
        for a, k in [(None, False), (1, False), (-1, True)]
    ],
    _reduce("argmax", np.argmax, None, grad=False),
    _reduce("argmax", np.argmax, 1, grad=False),
    OpCase(
        "sum_int",
        lambda x: gj.sum(x, axis=0),
        lambda x: np.sum(x, axis=0),
        REDUCE_SHAPES,
        ("small_int",),
        INTS,
        grad=False,
    ),
    OpCase("mean_int", gj.mean, np.mean, REDUCE_SHAPES, ("small_int",), INTS, grad=False),
    OpCase(
        "logsumexp",
        lambda x: gj.logsumexp(x, axis=-1),
        lambda x: scipy.special.logsumexp(x, axis=-1),
        REDUCE_SHAPES,
    ),
    OpCase("softmax", gj.softmax, _softmax_ref, REDUCE_SHAPES),
    OpCase(
        "log_softmax",
        gj.log_softmax,
        lambda x: scipy.special.log_softmax(x, axis=-1),
        REDUCE_SHAPES,
    ),
    OpCase(
        "reshape",
        lambda x: gj.reshape(x, (4, -1)),
        lambda x: x.reshape(4, -1),
        [((2, 3, 4),), ((3, 4),)],
    ),
    OpCase("transpose", gj.transpose, np.transpose, REDUCE_SHAPES),
    OpCase(
        "transpose_perm",
        lambda x: gj.transpose(x, (1, 2, 0)),
        lambda x: np.transpose(x, (1, 2, 0)),
        [((2, 3, 4),)],
    ),
    OpCase(
        "broadcast_to",
        lambda x: gj.broadcast_to(x, (2, 3, 4)),
        lambda x: np.broadcast_to(x, (2, 3, 4)),
        [((4,),), ((3, 1),), ((),)],
    ),
    OpCase(
        "expand_dims",
        lambda x: gj.expand_dims(x, -1),
        lambda x: np.expand_dims(x, -1),
        UNARY_SHAPES,
    ),
    OpCase("squeeze", gj.squeeze, np.squeeze, [((3, 1, 4),), ((1, 1),)], dynamic=False),
    OpCase("squeeze_axis", lambda x: gj.squeeze(x, 1), lambda x: np.squeeze(x, 1), [((3, 1, 4),)]),
    OpCase(
        "concat",
        lambda x, y: gj.concat([x, y], axis=1),
        lambda x, y: np.concatenate([x, y], axis=1),
        [((2, 3), (2, 5)), ((2, 1, 4), (2, 2, 4))],
    ),
    OpCase(
        "stack",
        lambda x, y: gj.stack([x, y], axis=-1),
        lambda x, y: np.stack([x, y], axis=-1),
        [((3,), (3,)), ((2, 3), (2, 3))],
    ),
    *[
        OpCase(f"getitem{key!r}", lambda x, k=key: x[k], lambda x, k=key: x[k], [((4, 5, 6),)])
        for key in [
            1,
            -1,
            (slice(1, 3),),
            (slice(None), 2),
            (Ellipsis, slice(None, None, -2)),
            (None, 0, slice(1, None)),
            (slice(-3, None), None, Ellipsis, 1),
        ]
    ],
    OpCase(
        "matmul",
        gj.matmul,
        np.matmul,
        [
            ((3, 4), (4, 5)),
            ((2, 3, 4), (4, 2)),
            ((2, 1, 3, 4), (3, 4, 2)),
            ((2, 3, 2, 4), (4, 5)),  # (a batch of rows times one matrix: one product)
            ((4,), (4, 3)),
            ((3, 4), (4,)),
        ],
    ),
    *[
        OpCase(
            f"matmul_transpose_{'a' * ta}{'b' * tb}",
            lambda a, b, ta=ta, tb=tb: gj.matmul(a, b, transpose_a=ta, transpose_b=tb),
            lambda a, b, ta=ta, tb=tb: np.matmul(
                np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b
            ),
            [
                (swap((3, 4), ta), swap((4, 5), tb)),
                (swap((2, 3, 4), ta), swap((4, 2), tb)),
                (swap((2, 1, 3, 4), ta), swap((3, 4, 2), tb)),
            ],
            dtypes=FLOATS + INTS,
        )
        for ta, tb in [(True, False), (False, True), (True, True)]
    ],
    OpCase(
        "gemm",
        lambda a, b, c: bind("gemm", a, b, c, alpha=-0.5, transpose_b=True),
        lambda a, b, c: c - 0.5 * np.matmul(a, np.swapaxes(b, -1, -2)),
        [
            ((3, 4), (5, 4), (3, 5)),
            ((2, 3, 4), (2, 4), (2, 3, 2)),
            ((2, 1, 3, 4), (3, 2, 4), (2, 3, 3, 2)),
        ],
    ),
    OpCase(
        "one_hot",
        lambda i: gj.one_hot(i, 4),
        lambda i: np.eye(4, dtype=np.float32)[i],
        [((5,),), ((2, 3),)],
        ("label",),
        INTS,
        grad=False,
    ),
    OpCase(
        "softmax_cross_entropy",
        gj.nn.softmax_cross_entropy,
        lambda z, y: -np.mean(scipy.special.log_softmax(z, -1)[np.arange(len(y)), y]),
        [((5, 4), (5,))],
        ("real", "label"),
        fixed={1: "int64"},
        dynamic=False,
    ),
    # primitives the public functions reach only through gradients
    OpCase(
        "sum_to",
        lambda x, r: bind("sum_to", x, r),
        lambda x, r: _sum_to(x, r.shape),
        [((2, 3, 4), (3, 1)), ((3, 4), ()), ((3, 4), (3, 4))],
    ),
    OpCase(
        "broadcast_like",
        lambda x, r: bind("broadcast_like", x, r),
        lambda x, r: np.broadcast_to(x, np.broadcast_shapes(x.shape, r.shape)),
        [((3, 1), (2, 3, 4)), ((), (3,))],
    ),
    OpCase(
        "reshape_like",
        lambda x, r: bind("reshape_like", x, r),
        lambda x, r: x.reshape(r.shape),
        [((3, 4), (2, 6)), ((6,), (2, 3))],
    ),
    OpCase(
        "unslice",
        lambda g, r: bind("unslice", g, r, spec=((1, 3, None), (None, None, 2))),
        lambda g, r: _unslice(g, r, (slice(1, 3), slice(None, None, 2))),
        [((2, 2), (4, 4))],
    ),
    OpCase(
        "split_like",
        lambda x, a, b: bind("split_like", x, a, b, axis=1)[1],
        lambda x, a, b: x[:, a.shape[1] :],
        [((2, 5), (2, 2), (2, 3))],
    ),
    OpCase(
        "tensor_lists",
        lambda x, y: _list_ops(x, y),
        lambda x, y: 3 * x + 2 * y,
        [((3,), (3,)), ((2, 2), (2, 2))],
        grad=False,
    ),
    OpCase(
        "count",
        lambda x: bind("count", x, axes=(0, 2)),
        lambda x: np.asarray(x.shape[0] * x.shape[2], x.dtype),
        [((2, 3, 4),)],
        grad=False,
    ),
]

# Records kept beside the work that added them; imported here so that every table-driven
# test (forward, gradients, backends, gj.function, parser round trips) runs them too.
from op_table_conv import CONV_CASES  # noqa: E402
from op_table_dynamic import DYNAMIC_CASES  # noqa: E402
from op_table_indexing import INDEXING_CASES  # noqa: E402
from op_table_integers import INTEGER_CASES  # noqa: E402
from op_table_math import MATH_CASES  # noqa: E402
from op_table_random import RANDOM_CASES  # noqa: E402
from op_table_sorting import SORTING_CASES  # noqa: E402
from op_table_tf1 import TF1_CASES  # noqa: E402

OP_TABLE += INTEGER_CASES + TF1_CASES + INDEXING_CASES + DYNAMIC_CASES + CONV_CASES
OP_TABLE += MATH_CASES + RANDOM_CASES + SORTING_CASES


def _list_ops(x, y):
    """Push x and y onto a list, add x at index 1, add the list and zeros to that, and
    return the sum of the two elements: (2x) + (2y + x) = 3x + 2y."""
    lst = bind("list_push", bind("list_push", bind("list_new", x), x), y)
    one, zero = np.int64(1), np.int64(0)
    bumped = bind("list_add_at", lst, one, x)
    total = bind("list_add", bind("list_add", bumped, lst), bind("list_zeros_like", lst))
    return bind("add", bind("list_get", total, one), bind("list_get", total, zero))


def _sum_to(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1)
    return np.sum(x, axis=axes, keepdims=True).reshape(shape)


def _unslice(g, r, key):
    out = np.zeros(r.shape, g.dtype)
    out[key] = g
    return out


# Ops that no single-op record can exercise; each is tested where named.
COVERED_ELSEWHERE = {
    "constant": "every record (constants) and tests/static/test_graph.py",
    "placeholder": "every record run as a graph",
    "variable": "tests/static/test_session.py",
    "assign": "tests/static/test_session.py",
    "group": "tests/static/test_session.py",
    "cond": "tests/static/test_control_flow.py",
    "while": "tests/static/test_control_flow.py",
    "shape_invariant": "tests/static/test_tf1_loops.py (while_loop's shape_invariants)",
    "yield": "tests/static/test_control_flow.py",
    "condition": "tests/static/test_control_flow.py",
    "return": "every Session run (the compiled function's terminator)",
    "fused": "tests/passes (made by the fusion pass, run by every optimised Session)",
    **dict.fromkeys(
        ["random_uniform", "random_normal", "random_truncated_normal", "dropout"],
        "tests/static/test_random.py (the reference is Philox itself: known answers)",
    ),
    "check_numerics": "tests/reliability/test_numerics.py (raises on NaN/inf; the cuda "
    "backend has no lowering for it yet)",
    "all_reduce": "tests/distributed (jobs of 1, 2 and 4 processes under mpiexec)",
}


def tolerance(dtype) -> dict:
    return (
        {"rtol": 1e-5, "atol": 1e-6} if str(dtype) == "float32" else {"rtol": 1e-12, "atol": 1e-12}
    )
