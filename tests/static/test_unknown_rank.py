"""Placeholders of unknown rank (TF1's `tf.placeholder(tf.float32)`): the graph builds with
`tensor<*xf32>` values, the rank comes from the feed like any unknown dimension, and
what needs the rank when the graph is built is a clear ShapeError."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir import parse, print_module

BACKENDS = ["interpreter", "llvm"]


def _regression_graph():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, name="x")
        t = gj.placeholder(gj.float64, name="t")
        w = gj.Variable(np.float64(0.5), name="w")
        b = gj.Variable(np.float64(0.1), name="b")
        y = x * w + b
        loss = gj.reduce_mean(gj.square(y - t))
        grads = gj.gradients(loss, [w, b, x])
        train = gj.train.GradientDescentOptimizer(0.1).minimize(loss)
    return g, x, t, y, loss, grads, train


@pytest.mark.parametrize("backend", BACKENDS)
def test_feeds_of_any_rank_in_one_session(backend):
    g, x, t, y, loss, grads, train = _regression_graph()
    assert str(x.type) == "tensor<*xf64>" and str(y.type) == "tensor<*xf64>"
    assert loss.shape == ()  # a reduction over every axis has rank 0 whatever x's is
    with gj.Session(g, backend=backend) as sess:
        for x0 in (np.float64(3.0), np.arange(3.0), np.arange(6.0).reshape(2, 3)):
            t0 = 2.0 * x0 - 1.0
            got_y, got_loss, dw, db, dx = sess.run([y, loss, *grads], {x: x0, t: t0})
            r = 0.5 * x0 + 0.1 - t0
            np.testing.assert_allclose(got_y, 0.5 * x0 + 0.1)
            assert np.shape(got_y) == np.shape(x0)
            np.testing.assert_allclose(got_loss, np.mean(r**2))
            np.testing.assert_allclose(dw, np.mean(2 * r * x0))
            np.testing.assert_allclose(db, np.mean(2 * r))
            np.testing.assert_allclose(dx, 2 * r * 0.5 / np.size(x0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_matches_a_known_rank_graph(backend):
    x0 = np.linspace(-1.0, 1.0, 8).reshape(2, 4)
    t0 = 3.0 * x0 + 0.5
    g, x, t, _, loss, _, train = _regression_graph()
    with gj.Session(g, backend=backend) as sess:
        for _ in range(5):
            sess.run(train, {x: x0, t: t0})
        unranked = sess.run(loss, {x: x0, t: t0})
    w, b = 0.5, 0.1
    for _ in range(5):
        r = w * x0 + b - t0
        w, b = w - 0.1 * np.mean(2 * r * x0), b - 0.1 * np.mean(2 * r)
    np.testing.assert_allclose(unranked, np.mean((w * x0 + b - t0) ** 2))


def test_rank_independent_results_keep_their_rank():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, name="x")
        w = gj.Variable(np.ones((4, 3), np.float32), name="w")
        h = gj.matmul(gj.reshape(x, [-1, 4]), w)
        assert h.shape == (None, 3)
        size = gj.size(x)
        assert size.shape == () and gj.cast(x, gj.int32).type.rank is None
        (dw,) = gj.gradients(gj.reduce_sum(h), [w])
    x0 = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    with gj.Session(g, backend="llvm") as sess:
        got, size = sess.run([dw, size], {x: x0})
    np.testing.assert_allclose(got, np.repeat(x0.reshape(2, 4).sum(0)[:, None], 3, 1))
    assert size == 8


def test_what_needs_the_rank_is_a_clear_error():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, name="x")
        for build in (
            lambda: gj.concat([x, x], 0),
            lambda: gj.nn.softmax(x),
            lambda: gj.transpose(x),
            lambda: x[0],
            lambda: gj.reduce_sum(x, axis=1),
        ):
            with pytest.raises(gj.ShapeError, match="x:0 has an unknown rank.*shape=None"):
                build()
        shape = x.get_shape()
        assert shape.ndims is None and not shape.is_fully_defined()
        with pytest.raises(gj.ShapeError, match="unknown rank"):
            shape.as_list()


def test_a_shape_error_surfaces_when_fed_naming_the_op():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, name="x")
        y = x + gj.constant(np.ones(3, np.float32))
    with gj.Session(g, backend="llvm") as sess:
        assert sess.run(y, {x: np.ones((4, 3), np.float32)}).shape == (4, 3)
        with pytest.raises(gj.ShapeError, match="add.*test_unknown_rank.py"):
            sess.run(y, {x: np.ones((4, 5), np.float32)})


def test_unranked_types_print_and_parse():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, name="x")
        gj.exp(x) * 2.0
    text = g.as_text()
    assert "tensor<*xf32>" in text
    assert print_module(parse(text)) == text
