"""What fusion makes of whole programs, counted with `sess.inspect(...).kernels`: the
seed's elementwise chain with its gradient is one kernel, and an MLP training step has
kernels only where matmuls, reductions or broadcasts force a boundary."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir.ops import REDUCTION

CONTAINERS = frozenset({"cond", "while"})
NOT_COMPUTE = frozenset({"constant", "assign", "group", "return", "yield", "condition"})


def outside_kernels(fn):
    """The ops of `fn` not inside a fused op (regions of cond and while included)."""
    stack = [fn.block]
    while stack:
        block = stack.pop()
        for op in block.ops:
            yield op
            if op.name in CONTAINERS:
                stack += [r.block for r in op.regions]


def final_function(report):
    """The function after the last pipeline stage, read back from the report's IR."""
    return gj.ir.parse(list(report.ir.values())[-1]).functions[0]


@pytest.mark.parametrize("shape", [(16,), (1000,), (8, 128)])
def test_seed_chain_and_its_gradient_are_one_kernel(shape):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape, name="x")
        y = gj.relu(x * 2 + 1)
        (dx,) = gj.gradients(gj.sum(y), [x])
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    with gj.Session(g, backend="interpreter", optimize=True) as sess:
        report = sess.inspect([y, dx], {x: data})
        got_y, got_dx = sess.run([y, dx], {x: data})
    assert report.kernels == 1, report.ir["fusion"]
    np.testing.assert_allclose(got_y, np.maximum(data * 2 + 1, 0), rtol=1e-6)
    np.testing.assert_array_equal(got_dx, np.where(data * 2 + 1 > 0, 2.0, 0.0))


def mlp_training_step():
    """Two layers (tanh), softmax cross-entropy, one SGD step; float32, small sizes."""
    rng = np.random.default_rng(0)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [8, 4], name="x")
        labels = gj.placeholder(gj.int64, [8], name="labels")
        w1 = gj.Variable(rng.normal(size=(4, 16)).astype(np.float32), name="w1")
        b1 = gj.Variable(np.zeros(16, np.float32), name="b1")
        w2 = gj.Variable(rng.normal(size=(16, 3)).astype(np.float32), name="w2")
        b2 = gj.Variable(np.zeros(3, np.float32), name="b2")
        hidden = gj.tanh(gj.matmul(x, w1) + b1)
        loss = gj.nn.softmax_cross_entropy(gj.matmul(hidden, w2) + b2, labels)
        step = gj.train.SGD(0.1).minimize(loss)
    feeds = {
        x: rng.normal(size=(8, 4)).astype(np.float32),
        labels: rng.integers(0, 3, 8),
    }
    return g, [loss, step], feeds


def test_mlp_training_step_kernels_sit_between_matmuls():
    g, fetches, feeds = mlp_training_step()
    with gj.Session(g, backend="interpreter", optimize=True) as sess:
        report = sess.inspect(fetches, feeds)
    fn = final_function(report)

    outside = [op for op in outside_kernels(fn) if op.name not in NOT_COMPUTE]
    stray = [op.name for op in outside if op.opdef.elementwise or op.opdef.has(REDUCTION)]
    assert not stray, f"elementwise/reduction ops outside fused kernels: {stray}"
    # Outside the kernels: 5 matmuls (2 forward; backward d(hidden), d(w2), d(w1) -- the
    # input needs no gradient; the backward ones read their operands transposed through
    # their flags, with no transpose copies; d(w2) and d(w1) are gemms that accumulate
    # the SGD step into the weights), and two expand_dims (views, no copies): the labels'
    # for one_hot, and one in the loss's backward pass, where the per-example select (NaN
    # for a label out of range, 0 for an ignored one) broadcasts its cotangent (the mean's
    # 0-d cotangent broadcasts as it is).
    assert Counter(op.name for op in outside if op.name != "fused") == {
        "matmul": 3,
        "gemm": 2,
        "expand_dims": 2,
    }
    matmuls = [op for op in outside if op.name in ("matmul", "gemm")]
    assert sum(op.attrs["transpose_a"] + op.attrs["transpose_b"] for op in matmuls) == 3
    # The fused kernels: 7 end in a reduction (softmax's max and sum, the cross-entropy's
    # two sums, the three sum_to's of the backward pass); the other 8 are bias+tanh after the first matmul, log(sum)+max and its gradient
    # (both [8, 1], broadcast to [8, 3] by their consumers), the scalar mean, and one SGD
    # update per variable (each reads a matmul or a sum_to, so it cannot join earlier).
    # With the 6 ops above, that is at most 5 kernels per matmul.
    n_matmuls = 5
    assert report.kernels <= 5 * n_matmuls, report.ir["fusion"]
    _assert_kernel_boundaries_are_forced(fn)


def _assert_kernel_boundaries_are_forced(fn):
    """A fused op reads another's result only where that kernel had to end: after a
    reduction, before a matmul (or transpose) that reads its results, or where the value
    is broadcast to a bigger iteration shape."""
    fused = [op for op in fn.block.ops if op.name == "fused"]
    computed = [op for op in fn.block.ops if op.name not in NOT_COMPUTE | {"fused"}]
    read_outside = {v for op in computed for v in op.operands}
    must_end = {
        op: any(inner.opdef.has(REDUCTION) for inner in op.regions[0].block.ops)
        or any(r in read_outside for r in op.results)
        for op in fused
    }
    for consumer in fused:
        body = consumer.regions[0].block
        iteration_size = max(v.type.size for op in body.ops for v in op.operands + op.results)
        for v in consumer.operands:
            producer = v.op
            if producer is None or producer.name != "fused":
                continue
            forced = must_end[producer] or v.type.size < iteration_size
            assert forced, f"fused result {v} feeds a kernel it could have joined"


def test_mlp_training_step_optimised_matches_unoptimised():
    g, fetches, feeds = mlp_training_step()
    results = []
    for optimize in (True, False):
        with gj.Session(g, backend="interpreter", optimize=optimize) as sess:
            losses = [sess.run(fetches, feeds)[0] for _ in range(3)]
            results.append((losses, dict(sess.variables)))
    (opt_losses, opt_vars), (ref_losses, ref_vars) = results
    np.testing.assert_allclose(opt_losses, ref_losses, rtol=1e-5)
    assert opt_losses[-1] < opt_losses[0]
    for name, value in ref_vars.items():
        np.testing.assert_allclose(opt_vars[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
