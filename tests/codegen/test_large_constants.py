"""Large constants beside the code (codegen/llvm/lower.py, INLINE_CONSTANT_BYTES): from
that size a constant is an array the runner keeps and passes with the inputs instead of a
global in the module. The values are the interpreter's either way, on every path that
reads a constant (kernels, BLAS, loops and branches, sizes of the run), and the module no
longer holds, nor depends on, the constant's bytes."""

from __future__ import annotations

import numpy as np
import pytest
from llvm_helpers import compare_backends, record_llvm_ir, run_on

import graphjit as gj
from graphjit.codegen.llvm.lower import INLINE_CONSTANT_BYTES

LARGE = 1 << 20  # elements: 4 MiB of float32, 12 MiB of IR text were it inlined


def _scaled(values: np.ndarray, batch=None):
    """y = x * c + sum(x * c) over rows of c's length (nothing folds c away)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(values.dtype, (batch, values.size), name="x")
        c = gj.constant(values)
        y = x * c + gj.reduce_sum(x * c, axis=1, keepdims=True)
    return g, x, y


def test_a_large_constant_stays_out_of_the_module(monkeypatch):
    texts = record_llvm_ir(monkeypatch)
    values = np.linspace(-1, 1, LARGE, dtype=np.float32)
    g, x, y = _scaled(values)
    compare_backends(g, y, {x: np.full((2, LARGE), 0.5, np.float32)})
    assert texts and len(texts[0]) < 200_000  # (the kernels only: no 4 MiB array)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "bool", "int8"])
def test_both_sides_of_the_threshold(monkeypatch, dtype):
    texts = record_llvm_ir(monkeypatch)
    itemsize = np.dtype(dtype).itemsize
    rng = np.random.default_rng(3)
    for elements, inline in (
        (INLINE_CONSTANT_BYTES // itemsize - 1, True),
        (INLINE_CONSTANT_BYTES // itemsize, False),
    ):
        values = (rng.normal(size=elements) * 50).astype(dtype)
        g = gj.Graph()
        with g.as_default():
            x = gj.placeholder(dtype, (elements,), name="x")
            c = gj.constant(values)
            y = gj.where(x == c, c, x) if dtype == "bool" else x + c
        feed = (rng.normal(size=elements) * 50).astype(dtype)
        compare_backends(g, y, {x: feed})
        ir_text = texts[-1]
        assert ("private constant [" in ir_text) == inline, (elements, inline)


def test_programs_differing_only_in_a_large_constant_share_their_module(monkeypatch):
    texts = record_llvm_ir(monkeypatch)
    feed = np.ones((3, 4096), np.float32)
    results = []
    for seed in (1, 2):
        values = np.random.default_rng(seed).normal(size=4096).astype(np.float32)
        g, x, y = _scaled(values)
        results.append(compare_backends(g, y, {x: feed}))
    assert texts[0] == texts[1]
    assert not np.array_equal(results[0], results[1])


def test_constant_weights_in_matmuls_and_a_batch_of_any_size():
    """The MLP with its weights as constants (the BLAS path reads them), compiled once for
    every batch size (the constants' pointers sit after the arguments whatever the sizes)."""
    rng = np.random.default_rng(4)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (None, 256), name="x")
        h = x
        for fan_in, fan_out in ((256, 256), (256, 64)):
            w = gj.constant((rng.normal(size=(fan_in, fan_out)) / 16).astype(np.float32))
            b = gj.constant((rng.normal(size=fan_out) / 16).astype(np.float32))
            h = gj.nn.relu(gj.matmul(h, w) + b)
    sess = gj.Session(g, backend="llvm")
    for batch in (3, 129, 0):
        feed = {x: rng.normal(size=(batch, 256)).astype(np.float32)}
        expected = run_on("interpreter", g, h, feed)
        np.testing.assert_allclose(sess.run(h, feed), expected, rtol=1e-5, atol=1e-5)
    report = sess.inspect(h, feed)  # (the two weights; the biases are under 4 KiB)
    assert report.constant_bytes == (256 * 256 + 256 * 64) * 4
    assert f"constants:        {report.constant_bytes} bytes beside the code" in str(report)


def test_large_constants_inside_a_loop_and_a_branch():
    rng = np.random.default_rng(5)
    table = rng.normal(size=2048).astype(np.float64)
    other = rng.normal(size=2048).astype(np.float64)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, (2048,), name="x")
        flag = gj.placeholder(gj.bool_, (), name="flag")
        c, d = gj.constant(table), gj.constant(other)

        def body(i, acc):
            return i + 1, gj.cond(flag, lambda: acc * 0.5 + c, lambda: acc - d)

        _, y = gj.while_loop(lambda i, acc: i < 5, body, [gj.constant(0), x])
    for f in (True, False):
        compare_backends(g, y, {x: rng.normal(size=2048), flag: np.bool_(f)}, runs=2)
