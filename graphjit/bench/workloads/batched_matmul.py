"""Batched matrix products with a transpose between them: `relu(swapaxes(A @ B, -1, -2) @ C)`
on stacks of float32 matrices, A (batch, m, k), B (batch, k, n), C (batch, m, p), giving
(batch, n, p). Full size: 64 stacked 128 × 128 matrices each. The tiny size has four
different inner sizes, so a mix-up of axes cannot pass the check."""

from __future__ import annotations

import numpy as np

from graphjit.bench import peers
from graphjit.bench.core import Prepared, Workload
from graphjit.bench.workloads.common import (
    F32,
    gj_session,
    jax_call,
    rng,
    standard_builders,
    tf1_session,
    torch_jit,
)

SIZES = {
    "tiny": {"batch": 3, "m": 4, "k": 5, "n": 6, "p": 7},
    "quick": {"batch": 16, "m": 64, "k": 64, "n": 64, "p": 64},
    "full": {"batch": 64, "m": 128, "k": 128, "n": 128, "p": 128},
}
SWAP_LAST = (0, 2, 1)  # swapaxes(-1, -2) of a rank-3 value, as a transpose permutation


def make_data(params: dict) -> dict:
    generator = rng(64)
    batch, m, k, n, p = (params[key] for key in ("batch", "m", "k", "n", "p"))
    # scaled so that both products are of order 1 whatever the inner sizes k and m
    shapes = {"a": (batch, m, k), "b": (batch, k, n), "c": (batch, m, p)}
    scales = {"a": k**-0.25, "b": k**-0.25, "c": m**-0.5}
    return {
        name: (scales[name] * generator.normal(size=shape)).astype(F32)
        for name, shape in shapes.items()
    }


def build_numpy(data: dict) -> Prepared:
    a, b, c = data["a"], data["b"], data["c"]
    return Prepared(run=lambda: np.maximum(np.swapaxes(a @ b, -1, -2) @ c, F32(0)))


def gj_expression(a, b, c):
    """The workload in graphjit ops: a graph on placeholders, a value on eager tensors."""
    import graphjit as gj

    return gj.relu(gj.transpose(a @ b, SWAP_LAST) @ c)


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        inputs = [
            gj.placeholder(gj.float32, shape=[None, *data[name].shape[1:]], name=name)
            for name in ("a", "b", "c")
        ]
        y = gj_expression(*inputs)
    feeds = dict(zip(inputs, (data["a"], data["b"], data["c"])))
    return gj_session(graph, y, feeds, backend)


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    a, b, c = (gj.tensor(data[name]) for name in ("a", "b", "c"))
    return Prepared(run=lambda: gj_expression(a, b, c))


def build_function(data: dict) -> Prepared:
    import graphjit as gj

    expression = gj.function(gj_expression)
    a, b, c = data["a"], data["b"], data["c"]
    return Prepared(run=lambda: expression(a, b, c))


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    a, b, c = (torch.from_numpy(data[name]) for name in ("a", "b", "c"))
    expression = torch_jit(compiled)(lambda a, b, c: torch.relu((a @ b).transpose(-1, -2) @ c))
    return Prepared(run=lambda: expression(a, b, c))


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    jnp = jax.numpy
    expression = jax.jit(lambda a, b, c: jax.nn.relu(jnp.swapaxes(a @ b, -1, -2) @ c))
    return jax_call(expression, data["a"], data["b"], data["c"])


def build_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        inputs = [
            tf.placeholder(tf.float32, shape=[None, *data[name].shape[1:]], name=name)
            for name in ("a", "b", "c")
        ]
        a, b, c = inputs
        y = tf.nn.relu(tf.matmul(tf.linalg.matrix_transpose(tf.matmul(a, b)), c))
    feeds = dict(zip(inputs, (data["a"], data["b"], data["c"])))
    return tf1_session(graph, y, feeds)


WORKLOAD = Workload(
    name="batched_matmul",
    description="relu(swapaxes(A @ B, -1, -2) @ C), A, B, C 64 × 128 × 128 float32 (full size)",
    sizes=SIZES,
    make_data=make_data,
    builders={**standard_builders(globals()), "gj-function": build_function},
)
