"""Ops that stand for others (OpDef.decompose: tanh_grad, sigmoid_grad, reduce_mean) are
replaced by them when a program is built: no program holds one, the ops keep the location
of the op they replace, and eager mode's one kernel gives the bits the static programs
give."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir.ops import all_ops, bind
from graphjit.runtime.program import build_program

DECOMPOSED = sorted(name for name, op in all_ops().items() if op.decompose is not None)


def test_the_activations_cotangents_and_mean_decompose():
    assert DECOMPOSED == ["reduce_mean", "sigmoid_grad", "tanh_grad"]


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


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), (1, True), ((0, 1), True)])
def test_mean_is_the_sum_divided_by_the_count_in_every_mode(dtype, axis, keepdims):
    """mean binds one op, which programs replace by the reduce_sum, count and div it bound
    before (so the interpreter's bits are the division of NumPy's sum by the count, as
    before), and whose eager kernel and gradient give those same bits."""
    a = np.random.default_rng(1).normal(size=(37, 53)).astype(dtype)
    wide = a.astype(np.float32) if dtype == "float16" else a  # (narrow: float32 within)
    count = a.size if axis is None else np.prod([a.shape[i] for i in np.atleast_1d(axis)])
    want = (np.add.reduce(wide, axis=axis, keepdims=keepdims) / wide.dtype.type(count)).astype(
        dtype
    )
    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(getattr(gj, dtype), [None, 53])
        mean = gj.mean(x, axis=axis, keepdims=keepdims)
        (grad,) = gj.gradients(gj.sum(mean * mean), [x])
    assert [op.name for op in graph.block.ops].count("reduce_mean") == 1  # (float16: in float32)
    program = build_program(graph, [mean, grad], [], {})
    names = [op.name for op in program.function.walk()]
    assert "reduce_mean" not in names and {"reduce_sum", "count", "div"} <= set(names)
    static, static_grad = gj.Session(graph, backend="interpreter").run([mean, grad], {x: a})
    np.testing.assert_array_equal(static, want)
    t = gj.tensor(a, requires_grad=True)
    eager = gj.mean(t, axis=axis, keepdims=keepdims)
    gj.sum(eager * eager).backward()
    if dtype != "float16":  # (narrow: float32 within, then a cast)
        assert eager.grad_fn.name == "ReduceMeanBackward"
    np.testing.assert_array_equal(eager.numpy(), want)
    np.testing.assert_array_equal(t.grad.numpy(), static_grad)


def test_mean_of_integers_is_a_float64_mean_and_reduce_mean_refuses_them():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(gj.mean(gj.tensor(a), axis=1).numpy(), a.mean(axis=1))
    with pytest.raises(gj.DTypeError, match="reduce_mean needs a floating-point"):
        bind("reduce_mean", gj.tensor(a), axes=(1,), keepdims=False)
