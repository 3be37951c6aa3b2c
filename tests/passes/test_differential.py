"""The optimisation pipeline must not change results: every op-table record, its gradient
graph, and control-flow graphs run in an interpreter Session with and without the passes
(exact for integers and booleans, rtol 1e-12 for float64)."""

from __future__ import annotations

import numpy as np
import pytest
from static.test_control_flow import canonical_graph

import graphjit as gj
from op_table import OP_TABLE, inputs_for


def run_both(graph, fetches, feed_dict=None):
    """(optimised, unoptimised) results, and the report on the optimised program."""
    results = []
    for optimize in (True, False):
        with gj.Session(graph, backend="interpreter", optimize=optimize) as sess:
            results.append(sess.run(fetches, feed_dict))
            if optimize:
                report = sess.inspect(fetches, feed_dict)
    return results[0], results[1], report


def final_ir(report) -> str:
    return list(report.ir.values())[-1]


def assert_same(optimized, reference, ir=""):
    optimized, reference = np.asarray(optimized), np.asarray(reference)
    assert optimized.shape == reference.shape, ir
    assert optimized.dtype == reference.dtype, ir
    if reference.dtype.kind == "f":
        np.testing.assert_allclose(optimized, reference, rtol=1e-12, atol=0, err_msg=ir)
    else:
        np.testing.assert_array_equal(optimized, reference, err_msg=ir)


def _dtypes(case) -> list[str]:
    """float64 for float records, every integer dtype, and bool for boolean records."""
    picked = ["float64"] if any(d.startswith("float") for d in case.dtypes) else []
    return picked + [d for d in case.dtypes if not d.startswith("float")]


OP_CASES = [
    pytest.param(case, dtype, id=f"{case.name}-{dtype}")
    for case in OP_TABLE
    for dtype in _dtypes(case)
]
GRAD_CASES = [pytest.param(case, id=case.name) for case in OP_TABLE if case.grad]


def _build(case, arrays, as_constants: bool):
    g = gj.Graph()
    with g.as_default():
        if as_constants:
            xs, feeds = [gj.constant(a) for a in arrays], {}
        else:
            xs = [gj.placeholder(a.dtype, a.shape, name=f"x{i}") for i, a in enumerate(arrays)]
            feeds = dict(zip(xs, arrays))
        out = case.fn(*xs)
    return g, xs, out, feeds


# Records whose constant inputs do not fold to one literal: their results broadcast the
# inputs to more elements (a broadcast is not folded into a bigger literal), or are built
# from tensor lists (never constants).
NOT_FOLDED = {"broadcast_to", "broadcast_like", "one_hot", "softmax_cross_entropy", "tensor_lists",
              "sparse_softmax_cross_entropy_with_logits",
              "softmax_cross_entropy(reduction='none')"}  # fmt: skip


@pytest.mark.parametrize("as_constants", [False, True], ids=["fed", "constant"])
@pytest.mark.parametrize("case, dtype", OP_CASES)
def test_op_forward_optimized_matches_unoptimized(case, dtype, as_constants):
    """Fed inputs exercise fusion; constant inputs exercise folding through the kernels."""
    arrays = inputs_for(case, case.shapes[0], dtype)
    g, _, out, feeds = _build(case, arrays, as_constants)
    optimized, reference, report = run_both(g, out, feeds)
    assert_same(optimized, reference, final_ir(report))
    if as_constants and case.name not in NOT_FOLDED:
        assert report.kernels == 0, f"not folded:\n{final_ir(report)}"


@pytest.mark.parametrize("case", GRAD_CASES)
def test_op_gradient_optimized_matches_unoptimized(case):
    """gj.gradients of sum(fn(x) * w), w a fixed random cotangent, for every float input."""
    arrays = inputs_for(case, case.shapes[0], "float64")
    g, xs, out, feeds = _build(case, arrays, as_constants=False)
    with g.as_default():
        w = np.random.default_rng(1).uniform(-1, 1, np.shape(case.ref(*arrays)))
        float_xs = [x for x in xs if x.dtype.is_floating]
        grads = [d for d in gj.gradients(gj.sum(out * w), float_xs) if d is not None]
    assert grads, f"{case.name}: no gradient to compare"
    optimized, reference, report = run_both(g, grads, feeds)
    for got, expected in zip(optimized, reference, strict=True):
        assert_same(got, expected, final_ir(report))


# ---- control flow --------------------------------------------------------------------------


def canonical():
    """The seed's loop: a cond inside a while with a fed bound."""
    g, n, result, out = canonical_graph()
    return g, out, {n: 4, result: np.array([-3.0, 0.5], np.float32)}


def canonical_constant_bound():
    """The same with a constant bound: the loop condition folds around a constant."""
    g, _, result, out = canonical_graph(n_const=3)
    return g, out, {result: np.array([-1.0, 4.0], np.float32)}


def nested_loops():
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        scale = gj.placeholder(gj.float64, [], name="scale")

        def outer_body(i, total):
            def inner_body(j, t):
                return j + 1, t + gj.cast(i * j + 1, gj.float64) * scale * 1.0 + 0.0

            _, total = gj.while_loop(lambda j, t: j < i, inner_body, [0, total])
            return i + 1, total

        out = gj.while_loop(lambda i, t: i < n, outer_body, [0, gj.constant(0.0, gj.float64)])
    return g, list(out), {n: 5, scale: 0.5}


def while_inside_cond():
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n")
        x = gj.placeholder(gj.float64, [2], name="x")

        def repeat_add():
            return gj.while_loop(lambda i, a: i < n, lambda i, a: (i + 1, a + x), [0, x])[1]

        y = gj.cond(n > 0, repeat_add, lambda: gj.neg(-x) * 1.0)
    return g, y, {n: 3, x: np.array([1.0, -2.0])}


def captures_and_dead_loop_values():
    """A loop carrying a value nothing reads, a constant predicate, duplicated maths."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")

        def body(i, a, unused):
            return i + 1, gj.exp(a * 0.5) + gj.exp(a * 0.5), unused * 2

        _, a, _ = gj.while_loop(lambda i, a, u: i < 3, body, [0, x, x])
        y = gj.cond(gj.constant(True), lambda: a - x, lambda: a + x)
    return g, y, {x: np.array([0.1, -0.2, 0.3])}


def mixed_dtypes():
    g = gj.Graph()
    with g.as_default():
        loop_vars = (
            gj.constant(0, gj.int64),
            gj.constant([1.0, 2.0], gj.float64),
            gj.constant(True),
            gj.constant(0.0, gj.float64),
        )
        out = gj.while_loop(
            lambda i, f, b, d: i < 5,
            lambda i, f, b, d: (i + 1, f * 1.5, gj.logical_not(b), d + gj.cast(i, gj.float64)),
            loop_vars,
        )
    return g, list(out), {}


def grow(w, a0):
    (a,) = gj.while_loop(lambda a: gj.sum(a) < 50, lambda a: (a * w + 1,), [a0])
    return a


def data_dependent_loop_gradients():
    """Gradients through a taped loop with a data-dependent trip count."""
    g = gj.Graph()
    with g.as_default():
        w = gj.placeholder(gj.float64, [3], name="w")
        a0 = gj.placeholder(gj.float64, [3], name="a0")
        y = gj.sum(gj.square(grow(w, a0)))
        grads = gj.gradients(y, [w, a0])
    return g, [y, *grads], {w: np.array([1.5, 1.2, 1.1]), a0: np.array([1.0, 2.0, 3.0])}


def nested_loop_gradients():
    g = gj.Graph()
    with g.as_default():
        w = gj.placeholder(gj.float64, [3], name="w")
        a0 = gj.placeholder(gj.float64, [3], name="a0")

        def outer_body(i, a):
            _, b = gj.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b * w + 0.5), [0, a])
            return i + 1, gj.tanh(b)

        _, a = gj.while_loop(lambda i, a: i < 4, outer_body, [0, a0])
        y = gj.sum(a * np.array([1.0, 2.0, -1.0]))
        grads = gj.gradients(y, [w, a0])
    return g, [y, *grads], {w: np.array([0.9, 0.3, -0.7]), a0: np.array([0.2, -0.4, 0.6])}


def cond_in_loop_second_order():
    """d²/dx² through a cond inside a while loop."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [2], name="x")

        def body(i, a):
            return i + 1, gj.cond(gj.sum(a) > 0, lambda: gj.tanh(a) * a, lambda: a * a + 1)

        _, a = gj.while_loop(lambda i, a: i < 3, body, [0, x])
        y = gj.sum(a)
        (dx,) = gj.gradients(y, [x])
        (ddx,) = gj.gradients(gj.sum(dx), [x])
    return g, [y, dx, ddx], {x: np.array([0.3, -0.1])}


CONTROL_FLOW = [
    canonical,
    canonical_constant_bound,
    nested_loops,
    while_inside_cond,
    captures_and_dead_loop_values,
    mixed_dtypes,
    data_dependent_loop_gradients,
    nested_loop_gradients,
    cond_in_loop_second_order,
]


@pytest.mark.parametrize("build", CONTROL_FLOW, ids=lambda f: f.__name__)
def test_control_flow_optimized_matches_unoptimized(build):
    g, fetches, feeds = build()
    optimized, reference, report = run_both(g, fetches, feeds)
    if not isinstance(fetches, list):
        optimized, reference = [optimized], [reference]
    for got, expected in zip(optimized, reference, strict=True):
        assert_same(got, expected, final_ir(report))


def test_algebraic_identities_keep_ieee_special_values():
    """-0.0, infinities and NaN through the identities canonicalize knows (and the ones it
    must not apply): 1/(x + 0) tells -0.0 from +0.0, x*0 and x-x give NaN for inf."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [5], name="x")
        fetches = [
            1.0 / (x + 0.0),
            1.0 / (0.0 + x),
            1.0 / (x - 0.0),
            1.0 / (x - (-0.0)),
            1.0 / (x * 1.0),
            1.0 / gj.neg(-x),
            x * 0.0,
            x - x,
        ]
    data = np.array([-0.0, 0.0, np.inf, -np.inf, np.nan])
    optimized, reference, report = run_both(g, fetches, {x: data})
    for got, expected in zip(optimized, reference, strict=True):
        assert_same(got, expected, final_ir(report))


def test_a_kernel_that_fails_on_constants_is_not_folded():
    """pow(2, -1) in integers raises; in an untaken branch it must not stop compilation."""
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.bool_, [], name="p")
        two, minus_one = gj.constant(np.int32(2)), gj.constant(np.int32(-1))
        y = gj.cond(p, lambda: gj.pow(two, minus_one), lambda: two)
    optimized, reference, _ = run_both(g, y, {p: False})
    assert optimized == reference == 2
