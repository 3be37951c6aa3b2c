"""Errors in static graphs: each is a gj.GraphjitError whose message names the op (or
placeholder) and the line of this file where the offending op was built or called."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import FeedDTypeError, FeedShapeError

FILE = os.path.basename(__file__)


def next_line() -> int:
    """The line after the caller's: where the call a test points at sits."""
    return sys._getframe(1).f_lineno + 1


def assert_points_at(err: Exception, line: int, *names: str) -> None:
    message = str(err)
    assert isinstance(err, gj.GraphjitError)
    assert f"{FILE}:{line}" in message, message
    for name in names:
        assert name in message, message


def run(graph, fetches, feed_dict=None):
    with gj.Session(graph, backend="interpreter") as sess:
        return sess.run(fetches, feed_dict)


# ---- feeds and fetches -------------------------------------------------------------------


def test_wrong_feed_shape():
    g = gj.Graph()
    with g.as_default():
        line = next_line()
        x = gj.placeholder(gj.float32, [None, 3], name="x")
        y = x * 2
    with pytest.raises(FeedShapeError) as info:
        run(g, y, {x: np.ones((2, 4), np.float32)})
    assert isinstance(info.value, ValueError)
    assert_points_at(info.value, line, "'x'", "(2, 4)")


def test_wrong_feed_dtype():
    g = gj.Graph()
    with g.as_default():
        line = next_line()
        k = gj.placeholder(gj.int32, [2], name="k")
        y = k + 1
    with pytest.raises(FeedDTypeError) as info:
        run(g, y, {k: np.array([1.5, 2.0])})
    assert isinstance(info.value, TypeError)
    assert_points_at(info.value, line, "'k'", "float64")


def test_ragged_feed_is_a_feed_error():
    g = gj.Graph()
    with g.as_default():
        line = next_line()
        x = gj.placeholder(gj.float32, [None, 2], name="x")
    with pytest.raises(gj.FeedError) as info:
        run(g, x, {x: [[1.0, 2.0], [3.0]]})
    assert_points_at(info.value, line, "'x'")


def test_missing_feed_names_the_placeholder():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        line = next_line()
        hidden = gj.placeholder(gj.float32, [2], name="hidden")
        y = gj.cond(gj.sum(x) > 0, lambda: x + hidden, lambda: x)  # used only in a branch
    with pytest.raises(gj.FeedError) as info:
        run(g, y, {x: np.ones(2, np.float32)})
    assert_points_at(info.value, line, "'hidden'")


def test_feed_of_an_unknown_name():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
    with gj.Session(g, backend="interpreter") as sess:
        with pytest.raises(gj.FeedError) as info:
            line = next_line()
            sess.run(x, {"nope": np.ones(2)})
    assert_points_at(info.value, line, "'nope'")


def test_fetch_of_a_python_object():
    g = gj.Graph()
    with g.as_default():
        gj.constant(1.0)
    with gj.Session(g, backend="interpreter") as sess:
        with pytest.raises(gj.FetchError) as info:
            line = next_line()
            sess.run([object()])
    assert_points_at(info.value, line, "object")


def test_fetch_of_a_tensor_of_another_graph():
    g, other = gj.Graph(), gj.Graph()
    with g.as_default():
        gj.constant(1.0)
    with other.as_default():
        line = next_line()
        foreign = gj.exp(gj.constant(1.0))
    with pytest.raises(gj.FetchError) as info:
        run(g, foreign)
    assert_points_at(info.value, line, "'exp'")


# ---- control flow ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "true_fn, false_fn",
    [
        pytest.param(lambda x: x, lambda x: gj.cast(x, gj.int32), id="dtype"),
        pytest.param(lambda x: x, lambda x: x[0], id="shape"),
        pytest.param(lambda x: (x, x), lambda x: x, id="tuple-vs-tensor"),
        pytest.param(lambda x: (x, x), lambda x: [x, x], id="tuple-vs-list"),
        pytest.param(lambda x: (x, [x]), lambda x: (x, x), id="nested"),
    ],
)
def test_mismatched_cond_branches(true_fn, false_fn):
    with gj.Graph().as_default():
        x = gj.placeholder(gj.float32, [2, 3], name="x")
        with pytest.raises((gj.ControlFlowError, gj.DTypeError)) as info:
            line = next_line()
            gj.cond(gj.sum(x) > 0, lambda: true_fn(x), lambda: false_fn(x))
    assert_points_at(info.value, line, "cond")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda a: gj.concat([a, a], axis=0), id="shape"),
        pytest.param(lambda a: gj.cast(a, gj.float64), id="dtype"),
        pytest.param(lambda a: (a, a), id="count"),
    ],
)
def test_loop_body_that_changes_a_loop_variable(body):
    with gj.Graph().as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        with pytest.raises(gj.ControlFlowError) as info:
            line = next_line()
            gj.while_loop(lambda a: gj.sum(a) < 10, body, [x])
    assert_points_at(info.value, line, "while_loop")


def test_python_if_on_a_graph_tensor_points_to_cond():
    with gj.Graph().as_default():
        x = gj.placeholder(gj.float32, [], name="x")
        with pytest.raises(gj.GraphjitError) as info:
            line = next_line()
            _ = x * 2 if x > 0 else x
    assert_points_at(info.value, line, "gj.cond", "greater")


# ---- shapes ------------------------------------------------------------------------------


def test_incompatible_matmul():
    with gj.Graph().as_default():
        a = gj.placeholder(gj.float32, [2, 3], name="a")
        with pytest.raises(gj.ShapeError) as info:
            line = next_line()
            gj.matmul(a, a)
    assert isinstance(info.value, ValueError)
    assert_points_at(info.value, line, "'matmul'")


def test_non_broadcastable_add():
    with gj.Graph().as_default():
        a = gj.placeholder(gj.float32, [2, 3], name="a")
        with pytest.raises(gj.ShapeError) as info:
            line = next_line()
            _ = a + np.ones(4, np.float32)
    assert_points_at(info.value, line, "'add'")


def test_shape_mismatch_found_at_specialisation_names_the_building_line():
    g = gj.Graph()
    with g.as_default():
        a = gj.placeholder(gj.float32, [None, None], name="a")
        b = gj.placeholder(gj.float32, [None, None], name="b")
        line = next_line()
        product = a @ b
        out = gj.sum(product)
    feeds = {a: np.ones((2, 3), np.float32), b: np.ones((4, 2), np.float32)}
    with pytest.raises(gj.ShapeError) as info:
        run(g, out, feeds)
    assert_points_at(info.value, line, "'matmul'")
    feeds[b] = np.ones((3, 2), np.float32)  # the same graph runs once the shapes agree
    assert run(g, out, feeds) == 12.0


def test_impossible_reshape():
    with gj.Graph().as_default():
        x = gj.placeholder(gj.float32, [2, 3], name="x")
        with pytest.raises(gj.ShapeError) as info:
            line = next_line()
            gj.reshape(x, [4, 2])
    assert_points_at(info.value, line, "'reshape'")


def test_impossible_reshape_found_at_specialisation():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3], name="x")
        line = next_line()
        y = gj.reshape(x, [-1, 4])
    with pytest.raises(gj.ShapeError) as info:
        run(g, y, {x: np.ones((3, 3), np.float32)})
    assert_points_at(info.value, line, "'reshape'")


def test_shape_and_dtype_errors_are_value_and_type_errors():
    assert issubclass(gj.ShapeError, ValueError) and issubclass(gj.DTypeError, TypeError)
    for cls in [gj.FeedError, gj.FetchError, gj.ControlFlowError, gj.NumericsError]:
        assert issubclass(cls, gj.GraphjitError)


def test_mixing_graph_and_eager_tensors_names_the_op_and_line():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3])
        with pytest.raises(gj.GraphjitError, match="mixes a graph tensor") as err:
            x + gj.tensor([1.0, 2.0, 3.0])  # the offending line
    assert "test_errors.py" in str(err.value) and "'add'" in str(err.value)
