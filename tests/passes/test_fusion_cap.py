"""Fusion caps the ops of one kernel (issue 18: LLVM's compile time grows faster than
linearly in a kernel's size): a longer chain becomes ceil(N / cap) kernels, joins stop
merging groups past the cap, and the split program computes what the interpreter does."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphjit as gj
from graphjit.codegen.llvm import compile_llvm
from graphjit.passes.dce import DCE
from graphjit.passes.fusion import MAX_KERNEL_OPS, Fusion
from graphjit.passes.memory import PlanMemory
from graphjit.passes.pipeline import optimize
from graphjit.runtime.program import build_program

NOT_COUNTED = frozenset({"constant", "yield"})  # scalar constants are copied into kernels


def alternating_chain(x, n: int):
    """n cheap ops (LLVM compiles them fast): x*0.5, +0.25, alternately."""
    for i in range(n):
        x = x * 0.5 if i % 2 == 0 else x + 0.25
    return x


def kernels(fn):
    return [op for op in fn.block.ops if op.name == "fused"]


def kernel_sizes(fn) -> list[int]:
    return [
        sum(inner.name not in NOT_COUNTED for inner in k.regions[0].block.ops) for k in kernels(fn)
    ]


def interpreted(graph, fetch, feeds):
    with gj.Session(graph, backend="interpreter") as sess:
        return sess.run(fetch, feeds)


def fused_with_cap(graph, fetch, x, data, max_ops: int):
    """The program of `fetch`, fused with `max_ops`, planned, and its llvm runner."""
    program = build_program(graph, [fetch], [], {x: x.type.with_shape(data.shape)})
    optimize(program.function, verify_each=True, passes=[Fusion(max_ops), DCE(), PlanMemory()])
    return program, compile_llvm(program)


@pytest.mark.parametrize("n, cap", [(10, 4), (12, 4), (7, 1), (5, 8)])
def test_chain_splits_into_ceil_n_over_cap_kernels(n, cap):
    data = np.random.default_rng(0).normal(size=64).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [64], "x")
        y = alternating_chain(x, n)
    program, runner = fused_with_cap(g, y, x, data, cap)
    sizes = kernel_sizes(program.function)
    assert len(sizes) == math.ceil(n / cap) and max(sizes) <= cap and sum(sizes) == n
    (got,) = runner.run([data])
    np.testing.assert_allclose(got, interpreted(g, y, {x: data}), rtol=1e-6)


def test_joins_do_not_merge_past_the_cap():
    """Two 3-op chains meeting at an add: one 7-op kernel uncapped; with a cap of 4 the
    add joins one chain and reads the other's kernel's output."""
    data = np.random.default_rng(1).normal(size=32).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [32], "x")
        y = alternating_chain(x, 3) + gj.tanh(alternating_chain(x, 2))
    assert kernel_sizes(fused_with_cap(g, y, x, data, 8)[0].function) == [7]
    program, runner = fused_with_cap(g, y, x, data, 4)
    assert sorted(kernel_sizes(program.function)) == [3, 4]
    (got,) = runner.run([data])
    np.testing.assert_allclose(got, interpreted(g, y, {x: data}), rtol=1e-6)


def test_session_splits_a_long_chain_at_the_default_cap():
    n = 2 * MAX_KERNEL_OPS + 10
    data = np.random.default_rng(2).normal(size=256).astype(np.float32)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [256], "x")
        y = alternating_chain(x, n)
    with gj.Session(g, backend="llvm") as sess:
        assert sess.inspect(y, {x: data}).kernels == math.ceil(n / MAX_KERNEL_OPS)
        got = sess.run(y, {x: data})
    np.testing.assert_allclose(got, interpreted(g, y, {x: data}), rtol=1e-6)


def test_a_kernel_must_hold_an_op():
    with pytest.raises(ValueError, match="at least one op"):
        Fusion(0)
