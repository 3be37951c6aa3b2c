"""Canonicalization patterns are declared with the op they are rooted at
(`OpDef.canonicalize`), as MLIR ops declare theirs: giving an op a new rewrite touches its
definition only, never the pass."""

from __future__ import annotations

import numpy as np

import graphjit as gj
from graphjit.ir import parse
from graphjit.ir.ops import all_ops, get_op
from graphjit.ir.printer import print_function
from graphjit.passes.canonicalize import Canonicalize

TWICE_ABS = """
func.func @main(%x: tensor<3xf64>) -> tensor<3xf64> {
  %a = "gj.abs"(%x) : (tensor<3xf64>) -> tensor<3xf64>
  %b = "gj.abs"(%a) : (tensor<3xf64>) -> tensor<3xf64>
  func.return %b : tensor<3xf64>
}
"""


def idempotent(op):
    """f(f(x)) -> f(x)."""
    inner = op.operands[0].op
    return [op.operands[0]] if inner is not None and inner.opdef is op.opdef else None


def canonical_text(source: str) -> str:
    fn = parse(source).functions[0]
    Canonicalize().run(fn)
    return print_function(fn)


def test_a_pattern_declared_on_the_op_is_applied_by_the_pass(monkeypatch):
    assert canonical_text(TWICE_ABS).count("abs") == 2
    monkeypatch.setattr(get_op("abs"), "canonicalize", (idempotent,))
    assert canonical_text(TWICE_ABS).count("abs") == 1


def test_declared_patterns_are_tuples_of_callables():
    for name, opdef in all_ops().items():
        assert isinstance(opdef.canonicalize, tuple), name
        assert all(callable(p) for p in opdef.canonicalize), name


def test_canonicalized_program_keeps_its_values():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [2, 3])
        y = -(-gj.transpose(gj.transpose(x, [1, 0]), [1, 0]) * 1.0 + 0.0)
        z = gj.reshape(gj.reshape(y, [3, 2]), [6])
    feed = np.arange(6.0).reshape(2, 3)
    with gj.Session(g) as sess:
        np.testing.assert_array_equal(sess.run(z, {x: feed}), feed.reshape(6))
