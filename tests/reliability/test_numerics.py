"""NaN and infinity checks, on the llvm backend and the interpreter alike.

`Session(check_numerics=True)` raises NumericsError naming the first op that produced NaN
or ±inf and the line of this file that built it, inside fused kernels (the inner op, not
the kernel), `cond` and `while_loop` too. `gj.check_numerics(x, message)` is an op that
raises with the message (TF's tf.debugging.check_numerics), whose gradient is the identity.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from reliability_helpers import BACKENDS, here

import graphjit as gj

FILE = os.path.basename(__file__)
F64 = np.float64


def assert_names(err: Exception, op: str, line: int, what: str) -> None:
    message = str(err)
    assert isinstance(err, gj.NumericsError), message
    assert f"'{op}'" in message and f"{FILE}:{line}" in message and what in message, message
    assert "'fused'" not in message, message


def checked(graph, backend):
    return gj.Session(graph, backend=backend, check_numerics=True)


def graph_with(fn):
    """A graph of fn(x) for a float64 placeholder x of any length; returns (g, x, out)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        out = fn(x)
    return g, x, out


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_nan_names_the_inner_op_of_a_fused_kernel(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        doubled = x * 2.0
        logged, line = gj.log(doubled), here()
        out = gj.exp(logged) + 1.0  # NaN from here on too: only the first op is named
    with checked(g, backend) as sess:
        if backend == "llvm":
            assert sess.inspect(out, {x: np.ones(3)}).kernels == 1  # all in one kernel
        np.testing.assert_allclose(sess.run(out, {x: np.ones(3)}), 3.0)
        with pytest.raises(gj.NumericsError) as info:
            sess.run(out, {x: np.array([1.0, -1.0, 2.0])})
        assert_names(info.value, "log", line, "NaN")
        np.testing.assert_allclose(sess.run(out, {x: np.full(2, 0.5)}), 2.0)  # still works


@pytest.mark.parametrize("backend", BACKENDS)
def test_infinity_is_reported_as_infinity(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        big, line = gj.exp(x), here()
    with checked(g, backend) as sess, pytest.raises(gj.NumericsError) as info:
        sess.run(big, {x: np.array([1.0, 800.0])})
    assert_names(info.value, "exp", line, "infinity")


@pytest.mark.parametrize("backend", BACKENDS)
def test_inside_cond_only_the_branch_taken_is_checked(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        root, line = (lambda: gj.sqrt(x - 1.0)), here()
        out = gj.cond(gj.sum(x) > 0, root, lambda: x * 2.0)
    with checked(g, backend) as sess:
        np.testing.assert_allclose(sess.run(out, {x: np.array([-1.0, -2.0])}), [-2.0, -4.0])
        with pytest.raises(gj.NumericsError) as info:
            sess.run(out, {x: np.array([0.5, 2.0])})
    assert_names(info.value, "sqrt", line, "NaN")


@pytest.mark.parametrize("backend", BACKENDS)
def test_inside_while_loop_the_iteration_that_overflows_stops_the_run(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        steps = gj.placeholder(gj.int32, [], name="steps")
        body, line = (lambda i, a: (i + 1, gj.exp(a))), here()
        _, out = gj.while_loop(lambda i, a: i < steps, body, [0, x])
    with checked(g, backend) as sess:
        # e^e^e^1 = 3.8e6 is fine; a fourth exp overflows float64
        assert np.isfinite(sess.run(out, {x: np.ones(2), steps: 3})).all()
        with pytest.raises(gj.NumericsError) as info:
            sess.run(out, {x: np.ones(2), steps: 4})
    assert_names(info.value, "exp", line, "infinity")


@pytest.mark.parametrize("backend", BACKENDS)
def test_reductions_are_checked_on_their_result_not_their_partials(backend):
    """min starts from +inf and max from -inf: finite data must not trip the check, an
    overflowing sum must, naming 'reduce_sum'."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, None], name="x")
        low, high = gj.min(x, axis=1), gj.max(x, axis=0)
        total, line = gj.sum(x), here()
    data = np.array([[1.0, 2.0], [3.0, 3e38]], np.float32)
    with checked(g, backend) as sess:
        lo, hi = sess.run([low, high], {x: data})
        np.testing.assert_array_equal(lo, [1.0, 3.0])
        with pytest.raises(gj.NumericsError) as info:
            sess.run(total, {x: np.full((2, 2), 3e38, np.float32)})
    assert_names(info.value, "reduce_sum", line, "infinity")


@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul_and_copies_are_checked(backend):
    g = gj.Graph()
    with g.as_default():
        a = gj.placeholder(F64, [2, 2], name="a")
        product, line = gj.matmul(a, a), here()
        flipped, flip_line = gj.transpose(a), here()
    with checked(g, backend) as sess:
        with pytest.raises(gj.NumericsError) as info:
            sess.run(product, {a: np.full((2, 2), 1e200)})
        assert_names(info.value, "matmul", line, "infinity")
        with pytest.raises(gj.NumericsError) as info:  # a fed NaN: its first reader is named
            sess.run(flipped, {a: np.array([[1.0, np.nan], [0.0, 1.0]])})
        assert_names(info.value, "transpose", flip_line, "NaN")


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_ops_are_named_at_the_gradients_call(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        (dx,), line = gj.gradients(gj.sum(gj.sqrt(x)), [x]), here()
    with checked(g, backend) as sess, pytest.raises(gj.NumericsError) as info:
        sess.run(dx, {x: np.array([0.0, 1.0])})  # d sqrt(x)/dx at 0 is 1/0
    assert_names(info.value, "div", line, "infinity")


def test_a_nan_made_from_constants_is_not_folded_away():
    """Constant folding keeps an op whose result is NaN/inf, so the check can name it."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        bad, line = gj.log(gj.constant(-1.0)), here()
        out = x + bad
    for backend in BACKENDS:
        with checked(g, backend) as sess, pytest.raises(gj.NumericsError) as info:
            sess.run(out, {x: np.ones(2)})
        assert_names(info.value, "log", line, "NaN")


def test_threads_of_a_split_kernel_report_a_late_nan():
    """Large kernels run on several threads; each folds its finding in."""
    g, x, out = graph_with(lambda x: gj.tanh(gj.sqrt(x) * 2.0))
    data = np.ones(1 << 19)
    data[-3] = -1.0  # in the last thread's share
    with checked(g, "llvm") as sess:
        with pytest.raises(gj.NumericsError, match="NaN in the result of 'sqrt'"):
            sess.run(out, {x: data})
        assert np.isfinite(sess.run(out, {x: np.ones(1 << 19)})).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_the_option_nan_flows_through_silently(backend):
    g, x, out = graph_with(lambda x: gj.log(x) * 2.0)
    with gj.Session(g, backend=backend) as sess:
        got = sess.run(out, {x: np.array([-1.0, 1.0, 0.0])})
    assert np.isnan(got[0]) and got[1] == 0.0 and got[2] == -np.inf


# ---- the gj.check_numerics op ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_numerics_op_raises_with_its_message(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        y, line = gj.check_numerics(gj.log(x), "log(x) went bad"), here()
        out = y * 3.0
    with gj.Session(g, backend=backend) as sess:
        np.testing.assert_allclose(sess.run(out, {x: np.array([1.0, np.e])}), [0.0, 3.0])
        with pytest.raises(gj.NumericsError) as info:
            sess.run(out, {x: np.array([1.0, 0.0])})
        assert_names(info.value, "check_numerics", line, "log(x) went bad")
        assert "infinite" in str(info.value)
        with pytest.raises(gj.NumericsError, match="log\\(x\\) went bad: the tensor has NaN"):
            sess.run(out, {x: np.array([-1.0])})
        assert sess.run(out, {x: np.array([1.0])}) == [0.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_numerics_op_in_cond_and_while(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [None], name="x")
        reciprocal, line = (lambda: gj.check_numerics(1.0 / x, "reciprocal")), here()
        picked = gj.cond(gj.sum(x) > 0, reciprocal, lambda: x)
        _, looped = gj.while_loop(
            lambda i, a: i < 3, lambda i, a: (i + 1, gj.check_numerics(a * a, "square")), [0, x]
        )
    with gj.Session(g, backend=backend) as sess:
        np.testing.assert_allclose(sess.run(picked, {x: np.array([-1.0, 0.0])}), [-1.0, 0.0])
        with pytest.raises(gj.NumericsError) as info:
            sess.run(picked, {x: np.array([2.0, 0.0])})
        assert_names(info.value, "check_numerics", line, "reciprocal")
        np.testing.assert_allclose(sess.run(looped, {x: np.array([2.0])}), [256.0])
        with pytest.raises(gj.NumericsError, match="square: the tensor has infinite"):
            sess.run(looped, {x: np.array([1e100])})


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_numerics_op_gradient_is_the_identity(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(F64, [3], name="x")
        plain = gj.sum(gj.tanh(x) * x)
        guarded = gj.sum(gj.check_numerics(gj.tanh(x), "t") * x)
        grads = gj.gradients([plain, guarded], [x]) + gj.gradients(guarded, [x])
    with gj.Session(g, backend=backend) as sess:
        both, alone = sess.run(grads, {x: np.array([0.5, -1.0, 2.0])})
    np.testing.assert_allclose(both, 2 * alone)


def test_check_numerics_op_in_eager_mode():
    x = gj.tensor([1.0, 4.0], requires_grad=True)
    y = gj.check_numerics(gj.sqrt(x), "root")
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.25])
    assert type(y.grad_fn).__name__.endswith("Backward")
    with pytest.raises(gj.NumericsError) as info, np.errstate(divide="ignore"):
        line = here() + 1
        gj.check_numerics(gj.log(gj.tensor([0.0])), "eager log")
    assert f"{FILE}:{line}" in str(info.value) and "eager log" in str(info.value)


def test_check_numerics_op_needs_floats():
    with gj.Graph().as_default():
        k = gj.placeholder(gj.int32, [2], name="k")
        with pytest.raises(gj.DTypeError) as info:
            line = here() + 1
            gj.check_numerics(k, "ints")
    assert f"{FILE}:{line}" in str(info.value) and "'check_numerics'" in str(info.value)
