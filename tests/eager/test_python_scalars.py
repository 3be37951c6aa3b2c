"""Python and NumPy constants in eager ops: they take the mode of the tensors they meet, and
with none, the mode of the context (eager unless a graph is being built)."""

import numpy as np
import pytest

import graphjit as gj

T = gj.Tensor


def _mask():
    return gj.tensor([0.5, 2.0, -1.0]) < 1


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda t, m: gj.logical_and(True, m), [True, False, True]),
        (lambda t, m: gj.logical_and(m, False), [False, False, False]),
        (lambda t, m: gj.logical_or(np.bool_(True), t), [True, True, True]),
        (lambda t, m: gj.logical_or(False, m), [True, False, True]),
        (lambda t, m: gj.logical_and(np.array([True, False, True]), m), [True, False, True]),
        (lambda t, m: m & True, [True, False, True]),
        (lambda t, m: True & m, [True, False, True]),
        (lambda t, m: m | False, [True, False, True]),
        (lambda t, m: False | m, [True, False, True]),
        (lambda t, m: np.bool_(True) & m, [True, False, True]),
        (lambda t, m: ~m, [False, True, False]),
        (lambda t, m: gj.logical_not(m), [False, True, False]),
    ],
)
def test_logical_ops_with_python_and_numpy_booleans_stay_eager(build, expected):
    t = gj.tensor([0.5, 2.0, -1.0])
    out = build(t, t < 1)
    assert isinstance(out, T) and out.dtype == gj.bool_
    assert out.tolist() == expected


def test_where_with_constant_condition_and_branches():
    t = gj.tensor([0.5, 2.0])
    out = gj.where(True, t, 0.0)
    assert isinstance(out, T) and out.tolist() == [0.5, 2.0]
    out = gj.where(np.bool_(False), t, 0.0)
    assert isinstance(out, T) and out.tolist() == [0.0, 0.0]
    out = gj.where(np.array([True, False]), 1.0, t)
    assert isinstance(out, T) and out.tolist() == [1.0, 2.0]
    out = gj.where(t < 1, 1.0, 0.0)
    assert isinstance(out, T) and out.tolist() == [1.0, 0.0]


def test_where_gradient_with_a_constant_condition():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    gj.where(False, 0.0, x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_ops_on_python_values_alone_compute_eagerly_outside_a_graph():
    graph = gj.get_default_graph()
    before = len(graph.ops)
    out = gj.logical_not(True)
    assert isinstance(out, T) and out.item() is False
    assert isinstance(gj.logical_and(True, np.bool_(False)), T)
    assert isinstance(gj.where(True, 1.0, 0.0), T)
    three = gj.add(1, 2)
    assert isinstance(three, T) and three.item() == 3 and three.dtype == gj.int64
    half = gj.mul(1, 0.5)
    assert half.dtype == gj.float32 and half.item() == 0.5
    e = gj.exp(1.0)
    assert isinstance(e, T) and e.dtype == gj.float32
    np.testing.assert_allclose(e.item(), np.e, rtol=1e-6)
    assert gj.exp(np.float64(0.0)).dtype == gj.float64  # NumPy values keep their dtype
    assert gj.reshape(np.arange(6), (2, 3)).shape == (2, 3)
    assert len(graph.ops) == before  # nothing was added to the default graph


def test_inside_a_graph_context_python_values_build_graph_nodes():
    g = gj.Graph()
    with g.as_default():
        out = gj.logical_not(True)
        total = gj.add(1, 2)
        chosen = gj.where(True, 1.0, 0.0)
    assert all(isinstance(v, gj.ir.Value) for v in (out, total, chosen))
    assert total.dtype == gj.int32  # graph constants keep TensorFlow 1's defaults
    with gj.Session(g) as sess:
        assert sess.run(out).item() is False
        assert sess.run(total).item() == 3
        assert sess.run(chosen).item() == 1.0


def test_graph_tensors_with_python_booleans_stay_graph():
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.float32, [2], name="p")
        outs = [(p < 1) & True, True & (p < 1), gj.logical_or(np.bool_(False), p < 1)]
        outs.append(gj.where(True, p, 0.0))
    assert all(isinstance(v, gj.ir.Value) for v in outs)
    with gj.Session(g) as sess:
        got = sess.run(outs, {p: np.array([0.5, 2.0], np.float32)})
    assert [list(a) for a in got[:3]] == [[True, False]] * 3
    assert list(got[3]) == [0.5, 2.0]


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda t: t + 1, [1.5, 3.0]),
        (lambda t: 1 + t, [1.5, 3.0]),
        (lambda t: t - 1, [-0.5, 1.0]),
        (lambda t: 1 - t, [0.5, -1.0]),
        (lambda t: t * 2, [1.0, 4.0]),
        (lambda t: 2 * t, [1.0, 4.0]),
        (lambda t: t / 2, [0.25, 1.0]),
        (lambda t: 1 / t, [2.0, 0.5]),
        (lambda t: t**2, [0.25, 4.0]),
        (lambda t: 2**t, [2**0.5, 4.0]),
        (lambda t: np.float32(2) * t, [1.0, 4.0]),
        (lambda t: t * np.float32(2), [1.0, 4.0]),
        (lambda t: gj.maximum(1.0, t), [1.0, 2.0]),
        (lambda t: gj.minimum(t, 1), [0.5, 1.0]),
        (lambda t: gj.add(True, t), [1.5, 3.0]),
    ],
)
def test_arithmetic_with_python_scalars_on_either_side(build, expected):
    out = build(gj.tensor([0.5, 2.0]))
    assert isinstance(out, T) and out.dtype == gj.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_comparisons_with_python_scalars_on_either_side():
    t = gj.tensor([0.5, 2.0])
    assert (t < 1).tolist() == [True, False]
    assert (1 > t).tolist() == [True, False]
    assert (1.0 <= t).tolist() == [False, True]
    assert gj.equal(2.0, t).tolist() == [False, True]


def test_integer_tensor_with_python_scalars():
    t = gj.tensor([1, 2])
    assert (t + 1).dtype == gj.int64 and (t + 1).tolist() == [2, 3]
    assert (t * 0.5).dtype.is_floating and (t * 0.5).tolist() == [0.5, 1.0]  # NumPy's rule
    # NumPy: & is bitwise on integers (1 & 1, 2 & 1), logical on booleans
    assert (t & True).dtype == gj.int64 and (t & True).tolist() == [1, 0]


def test_the_mixing_error_names_both_modes_only_when_both_occur():
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.float32, [2], name="p")
        with pytest.raises(gj.GraphjitError, match="mixes"):
            gj.tensor([1.0, 2.0]) * p
        with pytest.raises(gj.GraphjitError, match="mixes"):
            p * gj.tensor([1.0, 2.0])
        # Python values combined with an eager tensor inside a graph context stay eager
        out = gj.logical_and(True, gj.tensor([True, False]))
        assert isinstance(out, T) and out.tolist() == [True, False]
        assert isinstance(gj.where(True, gj.tensor([1.0]), 0.0), T)
