"""`relu(x*2+1) * sigmoid(x) + tanh(x)` on a large float32 vector: what fusion buys."""

from __future__ import annotations

from functools import partial

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


def make_data(params: dict) -> dict:
    return {"x": rng(1).normal(size=params["n"]).astype(F32)}


def build_numpy(data: dict) -> Prepared:
    x = data["x"]

    def chain():
        return np.maximum(x * F32(2) + F32(1), F32(0)) / (F32(1) + np.exp(-x)) + np.tanh(x)

    return Prepared(run=chain)


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, shape=[None], name="x")
        y = gj.relu(x * 2 + 1) * gj.sigmoid(x) + gj.tanh(x)
    return gj_session(graph, y, {x: data["x"]}, backend)


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    x = gj.tensor(data["x"])
    return Prepared(run=lambda: gj.relu(x * 2 + 1) * gj.sigmoid(x) + gj.tanh(x))


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    x = torch.from_numpy(data["x"])
    chain = torch_jit(compiled)(lambda x: torch.relu(x * 2 + 1) * torch.sigmoid(x) + torch.tanh(x))
    return Prepared(run=lambda: chain(x))


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    jnp = jax.numpy
    chain = jax.jit(lambda x: jax.nn.relu(x * 2 + 1) * jax.nn.sigmoid(x) + jnp.tanh(x))
    return jax_call(chain, data["x"])


def build_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, shape=[None], name="x")
        y = tf.nn.relu(x * 2 + 1) * tf.sigmoid(x) + tf.tanh(x)
    return tf1_session(graph, y, {x: data["x"]})


WORKLOAD = Workload(
    name="elementwise",
    description="relu(x*2+1)*sigmoid(x)+tanh(x) on a float32 vector",
    sizes={"tiny": {"n": 1000}, "quick": {"n": 1 << 20}, "full": {"n": 1 << 24}},
    make_data=make_data,
    builders={**standard_builders(globals()), "gj-iree": partial(build_static, backend="iree")},
)
