"""Programs that more than one backend's tests run. A builder makes a graph and returns a
`Program`: what to fetch, the feeds to run it with and what plain Python expects of the
results. The llvm and cuda suites run each program on their backend against the
interpreter (the NumPy oracle) through `check(program, compare_backends)`, with their
own `compare_backends`; the interpreter's suites use the builders too.

`import programs` works from every test folder (tests/conftest.py puts tests/ on the
path), the simulated cuda process included: nothing here imports a backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir.ops import all_ops
from op_table import OP_TABLE, inputs_for


@dataclass
class Program:
    """A graph and what to fetch from it. `feeds` maps each case (a trip count, a flag, or
    None for a single one) to its feed dict; every case runs `runs` times in one Session
    (variables carry over), and `expect(results, case)`, where given, checks the results
    against plain Python. `name` labels failures."""

    graph: Any
    fetches: Any
    feeds: dict = field(default_factory=lambda: {None: {}})
    expect: Callable[[Any, Any], None] | None = None
    runs: int = 1
    name: str = ""


def check(program: Program, compare_backends: Callable, **tol) -> None:
    """Every case of `program` on a backend and on the interpreter, compared leaf by leaf
    by that backend's `compare_backends(graph, fetches, feed, runs=, what=, **tol)`; then
    the backend's results against `expect`."""
    for case, feed in program.feeds.items():
        what = program.name if case is None else f"{program.name} {case}".strip()
        got = compare_backends(
            program.graph, program.fetches, feed, runs=program.runs, what=what, **tol
        )
        if program.expect is not None:
            program.expect(got, case)


def check_expected(program: Program, backend: str = "interpreter") -> None:
    """Every case of `program` on one backend against `expect` alone (for the
    interpreter's own suites, where there is no oracle to compare with)."""
    for case, feed in program.feeds.items():
        with gj.Session(program.graph, backend=backend) as sess:
            got = [sess.run(program.fetches, feed) for _ in range(program.runs)]
        program.expect(got[0] if program.runs == 1 else got, case)


# ---- control flow: the canonical loop ----------------------------------------------------


def python_canonical(n: int, start) -> np.ndarray:
    result = np.array(start, np.float32)
    for _ in range(n):
        result = result * 2 if np.sum(result) > 0 else result + 1
    return result


def canonical_graph(n_const=None):
    """`for i in range(n): result = result * 2 if sum(result) > 0 else result + 1`."""
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, [], name="n") if n_const is None else gj.constant(n_const)
        result = gj.placeholder(gj.float32, [None], name="result")

        def body(i, r):
            return i + 1, gj.cond(gj.sum(r) > 0, lambda: r * 2, lambda: r + 1)

        _, out = gj.while_loop(lambda i, r: i < n, body, [0, result])
    return g, n, result, out


CANONICAL_CASES = [
    pytest.param(3, [1.0, 2.0], id="positive"),
    pytest.param(4, [-3.0, 0.5], id="negative-then-positive"),
    pytest.param(3, [-5.0, -1.0, -2.0], id="negative"),
    pytest.param(2, [0.0], id="zero-sum"),
    pytest.param(0, [-1.0, 4.0], id="zero-iterations"),
]


def canonical_loop(steps: int, start, constant_bound: bool = False) -> Program:
    """The canonical loop from `start` for `steps` iterations, its bound fed or constant."""
    g, n, result, out = canonical_graph(n_const=steps if constant_bound else None)
    feed = {result: np.array(start, np.float32)}
    if not constant_bound:
        feed[n] = steps

    def expect(got, _case):
        np.testing.assert_array_equal(got, python_canonical(steps, start))

    return Program(g, out, {None: feed}, expect)


def check_canonical_loop_in_one_session(backend: str, assert_matches=None) -> None:
    """The canonical loop, its bound fed, for every case in one Session of `backend`:
    against plain Python and, given `assert_matches(got, expected, what)`, against the
    interpreter too."""
    g, n, result, out = canonical_graph()
    with gj.Session(g, backend=backend) as sess:
        for case in CANONICAL_CASES:
            steps, start = case.values
            feed = {n: steps, result: np.array(start, np.float32)}
            got = sess.run(out, feed)
            if assert_matches is not None:
                with gj.Session(g, backend="interpreter") as oracle:
                    assert_matches(got, oracle.run(out, feed), case.id)
            np.testing.assert_array_equal(got, python_canonical(steps, start))


def canonical_loop_fetching_its_input(constant_bound: bool = False) -> Program:
    """The loop's initial value is a fed array, fetched beside the loop and a value made
    from it: running the loop must not write to it. The bound is 3, fed or constant."""
    g, n, result, out = canonical_graph(n_const=3 if constant_bound else None)
    with g.as_default():
        doubled = result * 2
    start = np.array([1.0, -4.0, 2.5], np.float32)
    feed = {result: start} if constant_bound else {n: 3, result: start}

    def expect(got, _case):
        np.testing.assert_array_equal(got[0], start)
        np.testing.assert_array_equal(got[2], 2 * start)

    return Program(g, [result, out, doubled], {None: feed}, expect)


# ---- control flow: nesting -----------------------------------------------------------------


def nested_loops(n: int, size: int, scale: float) -> Program:
    """An inner loop whose bound is the outer loop's counter, carrying a scalar total and a
    vector of `size`, reading a fed `scale`; `n` outer iterations."""
    g = gj.Graph()
    with g.as_default():
        n_ph = gj.placeholder(gj.int32, [], name="n")
        scale_ph = gj.placeholder(gj.float64, [], name="scale")
        v = gj.placeholder(gj.float64, [size], name="v")

        def outer_body(i, total, vec):
            def inner_body(j, t, w):
                return j + 1, t + gj.cast(i * j + 1, gj.float64) * scale_ph, w * 0.5 + t

            _, total, vec = gj.while_loop(lambda j, t, w: j < i, inner_body, [0, total, vec])
            return i + 1, total, vec

        zero = gj.constant(0.0, gj.float64)
        out = gj.while_loop(lambda i, t, w: i < n_ph, outer_body, [0, zero, v])

    def expect(got, _case):
        count, total, _ = got
        assert count == n
        # the same additions in the same order, of values exact in float64
        assert total == sum((i * j + 1) * scale for i in range(n) for j in range(i))

    feed = {n_ph: n, scale_ph: scale, v: np.arange(float(size))}
    return Program(g, list(out), {None: feed}, expect)


def while_inside_cond_inside_while(iterations: int) -> Program:
    """An outer loop whose body alternates, through a cond, between an inner loop bounded
    by the outer counter and a negation."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3], name="x")

        def outer(i, even, a):
            def inner():
                return gj.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b + 1.0), [0, a])[1]

            return i + 1, gj.logical_not(even), gj.cond(even, inner, lambda: a * -1.0)

        out = gj.while_loop(lambda i, e, a: i < iterations, outer, [0, gj.constant(True), x])
    start = np.array([0.5, 1.0, -3.0], np.float32)

    def expect(got, _case):
        expected = start
        for i in range(iterations):
            expected = expected + i if i % 2 == 0 else -expected
        np.testing.assert_array_equal(got[2], expected)

    return Program(g, list(out), {None: {x: start}}, expect)


# ---- control flow: captures and variables ----------------------------------------------------


def check_captures_in_one_session(backend: str) -> None:
    """A cond and a loop read an outer placeholder, a constant (made outside a branch, and
    inside one) and a variable: before and after an assignment they see its current value."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3], name="x")
        v = gj.Variable(np.array([1.0, 2.0, 3.0], np.float32), name="v")
        offset = gj.constant(10.0)
        y = gj.cond(gj.sum(x) > 0, lambda: x * v, lambda: x + offset)
        y_inner = gj.cond(gj.sum(x) > 0, lambda: x * v, lambda: x + gj.constant(10.0))
        _, z = gj.while_loop(lambda i, a: i < 2, lambda i, a: (i + 1, a + v), [0, x])
        scale_v = v.assign(v * 10)
    pos, neg = np.ones(3, np.float32), -np.ones(3, np.float32)
    with gj.Session(g, backend=backend) as sess:
        for cond in (y, y_inner):
            np.testing.assert_array_equal(sess.run(cond, {x: pos}), [1, 2, 3])
            np.testing.assert_array_equal(sess.run(cond, {x: neg}), [9, 9, 9])
        np.testing.assert_array_equal(sess.run(z, {x: pos}), [3, 5, 7])
        sess.run(scale_v)
        for cond in (y, y_inner):
            np.testing.assert_array_equal(sess.run(cond, {x: pos}), [10, 20, 30])
        np.testing.assert_array_equal(sess.run(z, {x: pos}), [21, 41, 61])


def loop_updating_a_variable() -> Program:
    """A variable read by a loop and assigned from its result, three runs in a row."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [4], name="x")
        v = gj.Variable(np.array([0.5, -1.0, 2.0, 0.0]), name="v")
        _, a = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 0.5 + v), [0, x])
        update = v.assign(a - v)

    def expect(got, _case):
        assert not np.array_equal(got[0][1], got[2][1])  # the variable did change

    feed = {x: np.array([1.0, 2.0, 3.0, 4.0])}
    return Program(g, [a, update], {None: feed}, expect, runs=3)


def cond_branches_returning_inputs_unchanged() -> Program:
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.bool_, [], name="p")
        x = gj.placeholder(gj.int32, [3], name="x")
        y = gj.placeholder(gj.int32, [3], name="y")
        a, b = gj.cond(p, lambda: (x, y), lambda: (y, x))
    data = {x: np.array([1, 2, 3], np.int32), y: np.array([4, 5, 6], np.int32)}

    def expect(got, flag):
        np.testing.assert_array_equal(got[0], [1, 2, 3] if flag else [4, 5, 6])

    feeds = {flag: {**data, p: flag} for flag in (True, False)}
    return Program(g, [a, b, x, y], feeds, expect)


# ---- control flow: max_iterations and loop variables -----------------------------------------


def max_iterations(limits) -> Program:
    """`while i < 6: a = a * 2` stopped after each of `limits` iterations (None: no limit),
    with the state so far."""
    g = gj.Graph()
    fetches = []
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        for limit in limits:
            fetches.append(
                gj.while_loop(
                    lambda i, a: i < 6, lambda i, a: (i + 1, a * 2), [0, x], max_iterations=limit
                )
            )
    counts = [6 if limit is None else min(limit, 6) for limit in limits]

    def expect(got, _case):
        for (count, acc), expected in zip(got, counts, strict=True):
            assert count == expected
            np.testing.assert_array_equal(acc, np.array([1.0, -3.0]) * 2**expected)

    return Program(g, fetches, {None: {x: np.array([1.0, -3.0], np.float32)}}, expect)


def loop_variables_of_different_dtypes() -> Program:
    g = gj.Graph()
    with g.as_default():
        loop_vars = (
            gj.constant(0, gj.int64),
            gj.constant([1.0, 2.0]),
            gj.constant(True),
            gj.constant(0.0, gj.float64),
            gj.constant([7, -3], gj.int32),
        )
        out = gj.while_loop(
            lambda i, f, b, d, k: i < 5,
            lambda i, f, b, d, k: (
                i + 1,
                f * 1.5,
                gj.logical_not(b),
                d + gj.cast(i, gj.float64),
                k * 2 - gj.cast(b, gj.int32),
            ),
            loop_vars,
        )

    def expect(got, _case):
        i, f, b, d, k = got
        assert (i.dtype, f.dtype, b.dtype, d.dtype, k.dtype) == (
            np.int64,
            np.float32,
            np.bool_,
            np.float64,
            np.int32,
        )
        assert i == 5 and b == np.False_ and d == 10.0
        np.testing.assert_allclose(f, np.array([1.0, 2.0]) * 1.5**5, rtol=1e-6)

    return Program(g, out, expect=expect)  # the tuple while_loop returns for a tuple


# ---- gradients -------------------------------------------------------------------------------

GRADIENT_CASES = [
    pytest.param(case, dtype, id=f"{case.name}-{dtype}")
    for case in OP_TABLE
    if case.grad
    for dtype in case.dtypes
    if dtype.startswith("float")
]


def op_gradient(case, dtype) -> Program:
    """One graph: for each of the record's shapes, the gradients of sum(fn(x) * w) with respect
    to every float input, w a fixed random cotangent of the output's dtype."""
    g = gj.Graph()
    fetches, feeds = [], {}
    rng = np.random.default_rng(1)
    with g.as_default():
        for j, shapes in enumerate(case.shapes):
            arrays = inputs_for(case, shapes, dtype, seed=j)
            xs = [gj.placeholder(a.dtype, a.shape, name=f"s{j}_x{i}") for i, a in enumerate(arrays)]
            feeds.update(zip(xs, arrays))
            y = case.fn(*xs)
            # (a value-shaped result, x[mask]: its length comes from the fed mask)
            shape = np.shape(case.ref(*arrays)) if None in y.shape else y.shape
            w = rng.uniform(-1.5, 1.5, shape).astype(y.dtype.np)
            wrt = [x for x in xs if x.dtype.is_floating]
            fetches += [d for d in gj.gradients(gj.sum(y * w), wrt) if d is not None]
    assert fetches, f"{case.name}: no gradient to compare"
    return Program(g, fetches, {None: feeds}, name=case.name)


def gradients_of(build, arrays, second_order: bool = False, expect=None) -> Program:
    """y = build(*placeholders shaped like arrays) and its gradient with respect to every
    input (and, with second_order, the gradient of the sum of those). `expect(y, *grads)`
    gets the gradients in input order, None where an input has none."""
    arrays = [np.asarray(a) for a in arrays]
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype, a.shape, name=f"x{i}") for i, a in enumerate(arrays)]
        y = build(*xs)
        grads = gj.gradients(y, xs)
        if second_order:
            connected = [d for d in grads if d is not None]
            total = gj.sum(connected[0])
            for d in connected[1:]:
                total = total + gj.sum(d)
            grads += gj.gradients(total, xs)

    def in_input_order(got, _case):
        fetched = iter(got)
        results = [next(fetched)] + [None if d is None else next(fetched) for d in grads]
        expect(*results)

    fetches = [y] + [d for d in grads if d is not None]
    feeds = {None: dict(zip(xs, arrays))}
    return Program(g, fetches, feeds, None if expect is None else in_input_order)


def cond_gradient_to_values_captured_by_either_branch(pv: float) -> Program:
    def build(p, a, b, c):
        r = gj.cond(p > 0, lambda: a * b + gj.exp(a), lambda: c * c * b)
        return gj.sum(r * np.array([1.0, -3.0]))

    def expect(_y, _dp, da, _db, dc):
        np.testing.assert_array_equal(dc if pv > 0 else da, 0)

    a, b, c = np.array([0.5, -1.5]), np.array([2.0, 0.3]), np.array([1.2, -0.7])
    return gradients_of(build, [np.array(pv), a, b, c], expect=expect)


def second_derivative_through_cond(xv: float) -> Program:
    c = 1.7

    def build(x, c):
        return gj.cond(x > 0, lambda: x * x * x * c + 2 * x, lambda: 3 * x**4 - x * x * c)

    def expect(_y, _dx, _dc, d2x, d2c):
        if xv > 0:  # d/dx and d/dc of dy/dx + dy/dc = 3 c x^2 + 2 + x^3
            np.testing.assert_allclose([d2x, d2c], [6 * c * xv + 3 * xv**2, 3 * xv**2], rtol=1e-12)
        else:  # 12 x^3 - 2 c x - x^2
            expected = [36 * xv**2 - 2 * c - 2 * xv, -2 * xv]
            np.testing.assert_allclose([d2x, d2c], expected, rtol=1e-12)

    return gradients_of(build, [np.array(xv), np.array(c)], second_order=True, expect=expect)


W = np.array([1.5, 1.2, 1.1])
A0 = np.array([1.0, 2.0, 3.0])


def grow(w, a0, max_iterations=None):
    """while sum(a) < 50: a = a * w + 1 (a data-dependent trip count)."""
    (a,) = gj.while_loop(
        lambda a: gj.sum(a) < 50, lambda a: (a * w + 1,), [a0], max_iterations=max_iterations
    )
    return a


def data_dependent_while(scale: float = 1.0, max_iterations=None, second_order=False) -> Program:
    """The gradients of sum(grow(W, A0 * scale) ** 2): a larger start, fewer trips."""
    return gradients_of(
        lambda w, a0: gj.sum(gj.square(grow(w, a0, max_iterations))),
        [W, A0 * scale],
        second_order=second_order,
    )


def nested_while_inner_trip_count_is_outer_counter(outer_trips: int) -> Program:
    def build(w, a0):
        def outer_body(i, a):
            _, b = gj.while_loop(lambda j, b: j < i, lambda j, b: (j + 1, b * w + 0.5), [0, a])
            return i + 1, gj.tanh(b)

        _, a = gj.while_loop(lambda i, a: i < outer_trips, outer_body, [0, a0])
        return gj.sum(a * np.array([1.0, 2.0, -1.0]))

    return gradients_of(build, [np.array([0.9, 0.3, -0.7]), np.array([0.2, -0.4, 0.6])])


def cond_inside_loop_body(trips: int) -> Program:
    def build(w, a0):
        def body(i, a):
            return i + 1, gj.cond(gj.sum(a) > 2, lambda: a * w, lambda: a + w * w)

        _, a = gj.while_loop(lambda i, a: i < trips, body, [0, a0])
        return gj.sum(gj.square(a))

    return gradients_of(build, [np.array([0.8, 1.3]), np.array([0.4, 0.9])])


# ---- op-table records on a backend -------------------------------------------------------------

TRANSCENDENTAL = frozenset({"exp", "log", "tanh", "sigmoid", "erf", "log1p", "expm1"})
REDUCTIONS = frozenset(
    {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "sum_to", "argmax", "argmin"}
)
STRUCTURAL = frozenset({"placeholder", "constant", "return"})


def traced_ops(case) -> set[str]:
    """The primitives a record builds (graph construction only: nothing is compiled)."""
    g = gj.Graph()
    with g.as_default():
        xs = [
            gj.placeholder(a.dtype, a.shape, name=f"x{i}")
            for i, a in enumerate(inputs_for(case, case.shapes[0], case.dtypes[0]))
        ]
        case.fn(*xs)
    return {op.name for op in g.function.walk()} - STRUCTURAL


OPS = {id(case): traced_ops(case) for case in OP_TABLE}  # records may share a name


RECORD_CASES = [
    pytest.param(case, dtype, id=f"{case.name}-{dtype}")
    for case in OP_TABLE
    for dtype in case.dtypes
]


def is_elementwise(case) -> bool:
    ops = OPS[id(case)]
    return bool(ops) and all(all_ops()[name].elementwise for name in ops)


# the records with a reduction, and no transcendental (its accuracy is checked elsewhere)
REDUCTION_RECORDS = [
    c for c in OP_TABLE if OPS[id(c)] & REDUCTIONS and not OPS[id(c)] & TRANSCENDENTAL
]


def arity(case) -> int:
    return len(case.shapes[0])


def floats(case) -> list[str]:
    return [d for d in case.dtypes if d.startswith("float")]


def largest(shapes_list) -> tuple:
    return max(shapes_list, key=lambda shapes: sum(np.prod(s, dtype=int) for s in shapes))


def noncontiguous(a: np.ndarray, k: int = 1) -> np.ndarray:
    """The values of `a` as a view that is not C-contiguous: transposed (Fortran order) for
    an even `k`, or every other element of a bigger buffer along every axis (backwards
    when k % 4 == 3)."""
    if a.ndim == 0:
        return a
    if sum(d > 1 for d in a.shape) >= 2 and k % 2 == 0:
        view = np.asfortranarray(a)
    else:
        every_other = (slice(None, None, -2 if k % 4 == 3 else 2),) * a.ndim
        view = np.zeros(tuple(2 * d for d in a.shape), a.dtype)[every_other]
        view[...] = a
    assert a.size <= 1 or not view.flags.c_contiguous
    return view


def input_sets(
    case, dtype, *, seed: int, vary_layout: bool, elementwise_shapes, elementwise_seed: int
) -> list[list[np.ndarray]]:
    """The input arrays for every shape set one graph of `case` applies the record to: the
    record's own shapes; the largest of them again (drawn with `seed`) as non-contiguous
    views, which the Session must accept as they are (the layout varying by input with
    `vary_layout`, else every other element); and for an elementwise record, each shape
    set of `elementwise_shapes(arity)` (drawn with elementwise_seed + its index)."""
    sets = [inputs_for(case, shapes, dtype, seed=j) for j, shapes in enumerate(case.shapes)]
    big = inputs_for(case, largest(case.shapes), dtype, seed=seed)
    sets.append([noncontiguous(a, k if vary_layout else 1) for k, a in enumerate(big)])
    if is_elementwise(case):
        sets += [
            inputs_for(case, shapes, dtype, seed=elementwise_seed + j)
            for j, shapes in enumerate(elementwise_shapes(arity(case)))
        ]
    return sets


def record(case, sets) -> Program:
    """One graph: the record applied to the placeholders of each set of arrays; fetch j is
    set j's result."""
    g = gj.Graph()
    fetches, feeds = [], {}
    with g.as_default():
        for j, arrays in enumerate(sets):
            xs = [gj.placeholder(a.dtype, a.shape, name=f"s{j}_x{i}") for i, a in enumerate(arrays)]
            feeds.update(zip(xs, arrays))
            fetches.append(case.fn(*xs))
    return Program(g, fetches, {None: feeds}, name=case.name)


def special_inputs(case, dtype, values) -> list[np.ndarray]:
    """Input i varies along axis i over `values` (every combination once broadcast); a
    boolean input is a checkerboard over the whole space."""
    n, m = arity(case), len(values)
    arrays = []
    for i in range(n):
        if case.fixed.get(i) == "bool":
            arrays.append(np.indices((m,) * n).sum(0) % 2 == 0)
        else:
            shape = [1] * n
            shape[i] = m
            arrays.append(np.array(values, dtype).reshape(shape))
    return arrays
