"""A fused elementwise kernel that the memory plan writes over one of its inputs (in place)
still vectorises: the kernel reaches both through one pointer, so LLVM sees that element i
is read and then written at the same address, instead of testing `out - in < 64` at run
time, a test that in place always failed and ran the scalar loop. The values stay the
interpreter's, with broadcast operands beside the overwritten one too."""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvm_helpers import compare_backends

import graphjit as gj
import graphjit.codegen.llvm as llvm_backend
from graphjit.codegen.llvm import jit, parallel

ROWS, COLS = 64, 256


def _graph(body):
    """x @ w, then `body` of it (a fused kernel the plan writes over the product), then
    another matmul, so that the kernel's result is not fetched (and may be in place)."""
    rng = np.random.default_rng(0)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [ROWS, COLS], name="x")
        w = gj.constant((rng.standard_normal((COLS, COLS)) * 0.05).astype(np.float32))
        y = body(x @ w, rng) @ w
    feeds = {x: rng.standard_normal((ROWS, COLS)).astype(np.float32)}
    return g, y, feeds


BODIES = {
    "tanh": lambda h, rng: gj.tanh(h),
    "gelu-like": lambda h, rng: h * 0.5 * (1.0 + gj.tanh(0.79788456 * (h + 0.044715 * h * h * h))),
    "row-bias": lambda h, rng: gj.relu(
        h + gj.constant(rng.standard_normal(COLS).astype(np.float32))
    ),
    "column-scale": lambda h, rng: gj.sigmoid(
        h * gj.constant(rng.standard_normal((ROWS, 1)).astype(np.float32)) - 0.25
    ),
}


def _optimised_ir(monkeypatch, g, y, feeds) -> str:
    """The O3-optimised LLVM IR of the program computing y."""
    runners = []
    compile_llvm = llvm_backend.compile_llvm
    monkeypatch.setattr(
        llvm_backend, "compile_llvm", lambda *a: runners.append(compile_llvm(*a)) or runners[-1]
    )
    with gj.Session(g, backend="llvm") as sess:
        sess.run(y, feeds)
    module = llvm.parse_assembly(runners[-1].llvm_ir)
    module.verify()
    jit.optimise(module)
    return str(module)


def _assert_vectorised_unchecked(what: str, text: str) -> None:
    assert "vector.body" in text, f"{what} is not vectorised:\n{text}"
    # the loop vectoriser's runtime overlap tests (pointer difference, or address ranges)
    assert "diff.check" not in text, f"{what} tests for overlap at run time:\n{text}"
    assert "found.conflict" not in text and "bound0" not in text, text


@pytest.mark.parametrize("name", sorted(BODIES))
def test_in_place_elementwise_kernel_vectorises_without_an_alias_check(monkeypatch, name):
    """Split over threads, as a large kernel is: each thread's trampoline passes the
    kernel its buffers as pointers loaded from a packet, which LLVM cannot tell apart
    (called directly with one pointer for both, an inlined kernel never had the test)."""
    g, y, feeds = _graph(BODIES[name])
    assert gj.Session(g).inspect(y, feeds).in_place >= 1  # the kernel is written in place
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 0)
    text = _optimised_ir(monkeypatch, g, y, feeds)
    assert "graphjit_parallel_run" in text  # the kernel runs in the threads' trampoline too
    _assert_vectorised_unchecked(name, text)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_in_place_elementwise_kernel_matches_the_interpreter(name):
    g, y, feeds = _graph(BODIES[name])
    compare_backends(g, y, feeds)


def test_in_place_kernels_of_a_training_step_match_the_interpreter():
    """Backward kernels write gradients over their inputs; SGD writes variables in place."""
    rng = np.random.default_rng(1)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [32, 48], name="x")
        w1 = gj.Variable((rng.standard_normal((48, 64)) * 0.1).astype(np.float32))
        b1 = gj.Variable(np.zeros(64, np.float32))
        w2 = gj.Variable((rng.standard_normal((64, 8)) * 0.1).astype(np.float32))
        h = gj.tanh(x @ w1 + b1)
        loss = gj.mean(gj.square(h @ w2))
        step = gj.train.SGD(0.1).minimize(loss)
    feeds = {x: rng.standard_normal((32, 48)).astype(np.float32)}
    compare_backends(g, [loss, step], feeds, runs=3)
