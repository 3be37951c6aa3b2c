"""Graphs: text and Graphviz output, the default graph, graphs kept apart, and the source
locations recorded on ops."""

from __future__ import annotations

import os
import re
import sys
from collections import Counter

import numpy as np
import pytest

import graphjit as gj

FILE = os.path.basename(__file__)


def next_line() -> int:
    """The line after the caller's: where the call a test points at sits."""
    return sys._getframe(1).f_lineno + 1


@pytest.fixture
def fresh_default_graph():
    gj.reset_default_graph()
    yield gj.get_default_graph()
    gj.reset_default_graph()


def small_graph() -> gj.Graph:
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3], name="x")
        w = gj.Variable(np.ones((3, 1), np.float32), name="w")
        y = gj.cond(gj.sum(x) > 0, lambda: gj.exp(x @ w), lambda: x @ w)
        gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2.0), [0, y])
    return g


def test_as_text_and_print_show_the_ops(capsys):
    g = small_graph()
    text = g.as_text()
    for op in ["placeholder", "variable", "matmul", "exp", "reduce_sum", "cond", "while"]:
        assert re.search(rf"\b{op}\b", text), op
    assert '"x"' in text and '"w"' in text
    print(g)
    assert capsys.readouterr().out.strip() == text.strip()


def test_to_dot_is_graphviz_with_one_node_per_op():
    g = small_graph()
    dot = g.to_dot()
    assert dot.startswith("digraph")
    assert dot.count("{") == dot.count("}") and dot.rstrip().endswith("}")
    nodes = [re.match(r'\s*n\d+ \[label="(\w+)', line) for line in dot.splitlines()]
    labels = [m.group(1) for m in nodes if m and "ellipse" not in m.string]  # not block args
    assert Counter(labels) == Counter(op.name for op in g.function.walk())
    edges = re.findall(r"^\s*(n\d+) -> (n\d+);$", dot, flags=re.M)
    declared = set(re.findall(r"^\s*(n\d+) \[", dot, flags=re.M))
    assert edges and all(a in declared and b in declared for a, b in edges)


def test_ops_outside_any_graph_go_to_the_global_default(fresh_default_graph):
    x = gj.constant([1.0, 2.0])
    y = gj.exp(x)
    assert gj.get_default_graph() is fresh_default_graph
    assert {x.op, y.op} <= set(fresh_default_graph.ops)
    g = gj.Graph()
    with g.as_default():
        assert gj.get_default_graph() is g
        z = gj.constant(3.0)
    assert gj.get_default_graph() is fresh_default_graph
    assert z.op in g.ops and z.op not in fresh_default_graph.ops
    with gj.Session(backend="interpreter") as sess:  # the default graph's session
        np.testing.assert_allclose(sess.run(y), np.exp([1.0, 2.0]), rtol=1e-6)


def test_two_graphs_do_not_mix():
    g1, g2 = gj.Graph(), gj.Graph()
    with g1.as_default():
        a = gj.placeholder(gj.float32, [2], name="a")
        b = a * 2
    with g2.as_default():
        c = gj.placeholder(gj.float32, [2], name="a")  # the same name, another graph
        d = gj.sum(c)
        with pytest.raises(gj.GraphjitError) as info:
            line = next_line()
            _ = c + a
        with pytest.raises(gj.GraphjitError):
            gj.cond(d > 0, lambda: c + b, lambda: c)  # a capture from another graph
    assert f"{FILE}:{line}" in str(info.value)
    assert set(g1.ops).isdisjoint(g2.ops)
    assert c.op.attrs["name"] == "a" and g2.placeholders["a"] is c
    with gj.Session(g2, backend="interpreter") as sess:
        assert sess.run(d, {"a": [1.0, 2.0]}) == 3.0


def test_ops_record_the_users_source_line():
    g = gj.Graph()
    with g.as_default():
        line = next_line()
        x = gj.placeholder(gj.float32, [2], name="x")
        v_line = next_line()
        v = gj.Variable(np.zeros(2, np.float32), name="v")
        branch_line = next_line()
        y = gj.cond(gj.sum(x) > 0, lambda: gj.log(x), lambda: x + v)
    assert os.path.basename(x.op.loc.file) == FILE
    assert x.op.loc.line == line
    assert v.value.op.loc.line == v_line
    assert y.op.loc.line == branch_line
    inner = [op for op in y.op.walk() if op.name in ("log", "add")]
    assert len(inner) == 2 and all(op.loc.line == branch_line for op in inner)
