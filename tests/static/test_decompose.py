"""Ops that stand for others (OpDef.decompose: tanh_grad, sigmoid_grad) are replaced by
them when a program is built: no program holds one, the ops keep the location of the op
they replace, and eager mode's one kernel gives the bits the static programs give."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir.ops import all_ops
from graphjit.runtime.program import build_program

DECOMPOSED = sorted(name for name, op in all_ops().items() if op.decompose is not None)


def test_the_activations_cotangents_decompose():
    assert DECOMPOSED == ["sigmoid_grad", "tanh_grad"]


@pytest.mark.parametrize("activation", [gj.tanh, gj.sigmoid])
def test_a_gradient_program_holds_no_op_that_decomposes_and_names_the_users_line(activation):
    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, [4])
        (grad,) = gj.gradients(gj.sum(activation(x)), [x])  # the line the ops must name
    line = test_a_gradient_program_holds_no_op_that_decomposes_and_names_the_users_line
    made = [op for op in graph.block.ops if op.name in DECOMPOSED]
    assert len(made) == 1 and made[0].loc.line > line.__code__.co_firstlineno
    program = build_program(graph, [grad], [], {})
    ops = list(program.function.walk())
    assert not [op for op in ops if op.opdef.decompose is not None]
    arithmetic = [op for op in ops if op.name in ("mul", "sub")]
    assert arithmetic and all(op.loc == made[0].loc for op in arithmetic)


@pytest.mark.parametrize("activation", [gj.tanh, gj.sigmoid])
def test_eager_and_interpreted_gradients_are_the_same_bits(activation):
    """The reference interpreter runs the decomposed ops with NumPy, eager mode the op's one
    kernel of the same NumPy operations: the same bits (llvm's tanh and sigmoid are its
    own, equal up to rounding: the op table checks it)."""
    a = np.random.default_rng(0).normal(size=(3, 50)).astype(np.float32)
    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, a.shape)
        (grad,) = gj.gradients(gj.sum(activation(x) * 3.0), [x])
    static = gj.Session(graph, backend="interpreter").run(grad, {x: a})
    t = gj.tensor(a, requires_grad=True)
    gj.sum(activation(t) * 3.0).backward()
    np.testing.assert_array_equal(t.grad.numpy(), static)
