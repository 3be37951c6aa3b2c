"""Gradients of every differentiable op-table record against finite differences of its NumPy
reference (with known and with unknown dimensions), and the contract of `gj.gradients`:
unconnected and integer inputs, stop_gradient, grad_ys, missing VJP rules, multi-output ops."""

from __future__ import annotations

import numpy as np
import pytest
from fd import Compiled, assert_close, check_gradients, numeric_grad

import graphjit as gj
from graphjit.ir.ops import OpDef, bind, register
from graphjit.ir.ops.elementwise import elementwise_rule
from graphjit.ir.registry import _REGISTRY
from op_table import OP_TABLE, inputs_for

# References whose output is not float64 are differentiated through a float64 equivalent:
# finite differences of a float32 result would measure float32 rounding.
FD_REF = {"cast_f32": lambda x: x}

GRAD_CASES = [
    pytest.param(case, shapes, id=f"{case.name}-{shapes}")
    for case in OP_TABLE
    if case.grad and "float64" in case.dtypes
    for shapes in case.shapes
]
DYNAMIC_GRAD_CASES = [p for p in GRAD_CASES if p.values[0].dynamic]
FLOAT32_GRAD_CASES = [p for p in GRAD_CASES if "float32" in p.values[0].dtypes]


def float_inputs(arrays, float_dtype=np.float64) -> list[int]:
    return [i for i, a in enumerate(arrays) if a.dtype == float_dtype]


def weights_for(case, arrays):
    """Fixed random cotangent weights shaped like the output, rounded to its dtype."""
    out = np.asarray(case.ref(*arrays))
    w = np.random.default_rng(1).uniform(-1.5, 1.5, out.shape)
    return w.astype(out.dtype).astype(np.float64), out.dtype


def static_gradients(case, arrays, dynamic=False, float_dtype=np.float64):
    w, out_dtype = weights_for(case, arrays)
    wrt = float_inputs(arrays, float_dtype)

    def build(*xs):
        y = case.fn(*xs)
        assert y.dtype.np == out_dtype
        return gj.sum(y * gj.constant(w.astype(out_dtype)))

    fn = Compiled(build, arrays, dynamic=dynamic)
    return fn.gradients(wrt, arrays), wrt, w


def fd_gradients(case, arrays, w, wrt):
    ref = FD_REF.get(case.name, case.ref)
    return numeric_grad(lambda *a: np.sum(np.asarray(ref(*a), np.float64) * w), arrays, wrt)


def check_against_fd(case, shapes, dynamic):
    arrays = inputs_for(case, shapes, "float64")
    got, wrt, w = static_gradients(case, arrays, dynamic=dynamic)
    expected = fd_gradients(case, arrays, w, wrt)
    assert wrt, "a differentiable record needs a float input"
    for i, g, e in zip(wrt, got, expected):
        if g is None:  # an operand read for its shape alone: no gradient, and none is due
            np.testing.assert_allclose(e, 0, atol=1e-8, err_msg=f"x{i} got None")
        else:
            assert_close(g, e, f"{case.name} d/d x{i}")


@pytest.mark.parametrize("case, shapes", GRAD_CASES)
def test_gradient_matches_finite_differences(case, shapes):
    check_against_fd(case, shapes, dynamic=False)


@pytest.mark.parametrize("case, shapes", DYNAMIC_GRAD_CASES)
def test_gradient_with_unknown_dimensions(case, shapes):
    """Every dimension unknown when the gradient is built: sum_to/broadcast_like must undo
    broadcasting that is only known once the Session specialises the shapes."""
    check_against_fd(case, shapes, dynamic=True)


@pytest.mark.parametrize("case, shapes", FLOAT32_GRAD_CASES)
def test_float32_gradient_is_float32_and_matches_float64(case, shapes):
    arrays = inputs_for(case, shapes, "float64")
    expected, wrt, _ = static_gradients(case, arrays)
    arrays32 = [a.astype(np.float32) if i in wrt else a for i, a in enumerate(arrays)]
    got, wrt32, _ = static_gradients(case, arrays32, float_dtype=np.float32)
    assert wrt32 == wrt
    for i, g, e in zip(wrt, got, expected):
        assert (g is None) == (e is None), f"x{i}"
        if g is not None:
            assert g.dtype == np.float32, f"x{i}: {g.dtype}"
            np.testing.assert_allclose(g, e, rtol=2e-4, atol=2e-5, err_msg=f"x{i}")


def test_every_differentiable_record_is_checked():
    """The filter above keeps the records it should (a typo would silently test nothing)."""
    names = {p.values[0].name for p in GRAD_CASES}
    expected = "exp pow where matmul concat softmax_cross_entropy sum_to unslice split_like"
    assert set(expected.split()) <= names
    assert "max(axis=1, keepdims=False)" in names and "sign" not in names
    assert len(DYNAMIC_GRAD_CASES) < len(GRAD_CASES)


@pytest.mark.parametrize("case, shapes", GRAD_CASES)
def test_eager_gradient_equals_static(case, shapes):
    arrays = inputs_for(case, shapes, "float64")
    static, wrt, w = static_gradients(case, arrays)
    tensors = [gj.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    y = case.fn(*tensors)
    loss = gj.sum(y * gj.tensor(w.astype(np.asarray(case.ref(*arrays)).dtype)))
    loss.backward()
    for i, s in zip(wrt, static):
        grad = tensors[i].grad
        if s is None:
            assert grad is None or np.all(grad.numpy() == 0), f"x{i}"
        else:
            assert grad is not None, f"eager gave no gradient for x{i}"
            np.testing.assert_allclose(grad.numpy(), s, rtol=1e-12, atol=1e-12)


# ---- the gradients contract ----------------------------------------------------------------


def test_unconnected_input_gives_none():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        z = gj.placeholder(gj.float64, [3], name="z")
        y = gj.sum(x * x)
        dx, dz = gj.gradients(y, [x, z])
        assert dz is None
        assert gj.gradients(y, z) == [None]
    with gj.Session(g, backend="interpreter") as sess:
        xv = np.array([1.0, -2.0, 3.0])
        np.testing.assert_allclose(sess.run(dx, {x: xv}), 2 * xv)


def test_integer_inputs_get_no_gradient():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        n = gj.placeholder(gj.int64, [3], name="n")
        y = gj.sum(x * gj.cast(n, gj.float64))
        # a float input whose only path to y goes through an integer is unconnected
        through_int = gj.sum(gj.cast(gj.cast(x, gj.int32), gj.float64))
        dx, dn = gj.gradients(y, [x, n])
        assert dn is None
        assert gj.gradients(through_int, [x]) == [None]
        assert gj.gradients(gj.sum(n), [n]) == [None]
    with gj.Session(g, backend="interpreter") as sess:
        np.testing.assert_array_equal(
            sess.run(dx, {x: np.ones(3), n: np.array([1, 2, 3])}), [1.0, 2.0, 3.0]
        )


def test_stop_gradient_blocks():
    xv = np.array([0.5, -1.0, 2.0])
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        (dx,) = gj.gradients(gj.sum(x * gj.stop_gradient(x)), [x])
        assert gj.gradients(gj.sum(gj.stop_gradient(x * x)), [x]) == [None]
    with gj.Session(g, backend="interpreter") as sess:
        np.testing.assert_allclose(sess.run(dx, {x: xv}), xv)  # not 2x


def test_grad_ys_scales():
    xv = np.array([[0.5, -1.0], [2.0, 0.25]])
    gv = np.array([[2.0, -3.0], [0.5, 7.0]])
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [2, 2], name="x")
        gy = gj.placeholder(gj.float64, [2, 2], name="gy")
        y1, y2 = gj.exp(x), x * x
        (d1,) = gj.gradients(y1, [x], grad_ys=gy)
        (d2,) = gj.gradients([y1, y2], [x], grad_ys=[gy, None])  # None: ones
        with pytest.raises(gj.ShapeError):
            gj.gradients(y1, [x], grad_ys=np.ones((3, 2)))
        with pytest.raises(gj.GradientError):
            gj.gradients([y1, y2], [x], grad_ys=[gy])
    with gj.Session(g, backend="interpreter") as sess:
        r1, r2 = sess.run([d1, d2], {x: xv, gy: gv})
    np.testing.assert_allclose(r1, gv * np.exp(xv))
    np.testing.assert_allclose(r2, gv * np.exp(xv) + 2 * xv)


@pytest.fixture(scope="module")
def op_without_vjp():
    """Module-scoped, so the op outlives the graphs built with it (tests/conftest.py verifies
    every graph after each test) and is gone before the op-table coverage test runs."""
    name = "test_autodiff_no_vjp_op"
    register(OpDef(name, elementwise_rule(), lambda x: x * 2, None, elementwise=True))
    yield name
    del _REGISTRY[name]


def test_missing_vjp_rule_names_the_op(op_without_vjp):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        y = gj.exp(bind(op_without_vjp, x))
        with pytest.raises(gj.GradientError, match=op_without_vjp) as info:
            gj.gradients(gj.sum(y), [x])
    assert isinstance(info.value, gj.GraphjitError)
    assert "test_op_gradients.py" in str(info.value)  # where the op was built
    # an op off the path between ys and xs needs no rule
    with g.as_default():
        z = gj.placeholder(gj.float64, [3], name="z")
        (dz,) = gj.gradients(gj.sum(y) + gj.sum(z * z), [z])
    with gj.Session(g, backend="interpreter") as sess:
        feed = {x: np.ones(3), z: np.arange(3.0)}
        np.testing.assert_allclose(sess.run(dz, feed), 2 * np.arange(3.0))


def test_multi_output_op():
    """split_like has one result per piece; cotangents of unused pieces are zeros."""
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=(2, 5)), rng.normal(size=(2, 2)), rng.normal(size=(2, 3))]
    w0, w1 = rng.normal(size=(2, 2)), rng.normal(size=(2, 3))

    def both(x, a, b):
        p0, p1 = bind("split_like", x, a, b, axis=1)
        return gj.sum(p0 * w0) + gj.sum(gj.exp(p1) * w1)

    (dx,) = check_gradients(both, arrays, wrt=[0])
    np.testing.assert_allclose(dx, np.concatenate([w0, np.exp(arrays[0][:, 2:]) * w1], 1))

    def second_only(x, a, b):
        return gj.sum(bind("split_like", x, a, b, axis=1)[1] * w1)

    (dx,) = check_gradients(second_only, arrays, wrt=[0])
    np.testing.assert_array_equal(dx[:, :2], 0)


def test_concat_gradient_and_its_gradient():
    """concat's VJP is split_like, whose VJP is concat: second order goes through both."""
    rng = np.random.default_rng(4)
    xv, yv = rng.normal(size=(2, 3)), rng.normal(size=(2, 2))
    wv, vv = rng.normal(size=(2, 5)), rng.normal(size=(2, 3))
    check_gradients(lambda x, y: gj.sum(gj.concat([x * x, gj.tanh(y)], 1) * wv), [xv, yv])
    fn = Compiled(lambda x, y: gj.sum(gj.concat([x * x, gj.tanh(y)], 1) * wv), [xv, yv])
    with fn.graph.as_default():
        dx, dy = gj.gradients(fn.y, fn.xs)
        hvp_x = gj.gradients(gj.sum(dx * vv), fn.xs)
    got_dx, got_dy = fn.run([dx, dy], [xv, yv])
    np.testing.assert_allclose(got_dx, 2 * xv * wv[:, :3])
    np.testing.assert_allclose(got_dy, (1 - np.tanh(yv) ** 2) * wv[:, 3:])
    assert hvp_x[1] is None
    np.testing.assert_allclose(fn.run(hvp_x[0], [xv, yv]), 2 * wv[:, :3] * vv)
