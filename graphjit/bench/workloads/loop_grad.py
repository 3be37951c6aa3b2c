"""Reverse mode through a data-dependent loop: `while i < n: x = tanh(x * w)`, then the
gradient of `sum(x)` with respect to `w`. The trip count `n` is a runtime input for the
static graphs; JAX cannot reverse-differentiate a `while_loop`, so its `n` is static
(a `fori_loop` of known length, which jit recompiles for every new `n`)."""

from __future__ import annotations

import numpy as np

from graphjit.bench import peers
from graphjit.bench.core import Prepared, Workload
from graphjit.bench.workloads.common import (
    F32,
    gj_session,
    jax_call,
    placeholders,
    rng,
    standard_builders,
    tf1_session,
    torch_jit,
)


def make_data(params: dict) -> dict:
    """w > 1 keeps every component away from zero (no denormals) and the map contracting."""
    generator = rng(4)
    return {
        "x": generator.normal(size=params["size"]).astype(F32),
        "w": generator.uniform(1.05, 1.5, size=params["size"]).astype(F32),
        "n": params["n"],
    }


def build_numpy(data: dict) -> Prepared:
    x0, w, n = data["x"], data["w"], data["n"]

    def loss_and_grad():
        xs = [x0]
        for _ in range(n):
            xs.append(np.tanh(xs[-1] * w))
        cotangent, grad_w = np.ones_like(x0), np.zeros_like(w)
        for k in range(n, 0, -1):
            pre = cotangent * (F32(1) - xs[k] * xs[k])
            grad_w += pre * xs[k - 1]
            cotangent = pre * w
        return np.sum(xs[-1]), grad_w

    return Prepared(run=loss_and_grad)


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x, w, n = placeholders(gj, data, "x", "w", "n")
        start = [gj.constant(0, gj.int32), x]
        _, y = gj.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, gj.tanh(v * w)), start)
        loss = gj.sum(y)
        (grad_w,) = gj.gradients(loss, [w])
    feeds = {x: data["x"], w: data["w"], n: np.int32(data["n"])}
    return gj_session(graph, [loss, grad_w], feeds, backend)


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    x0, w, n = gj.tensor(data["x"]), gj.tensor(data["w"], requires_grad=True), data["n"]

    def loss_and_grad():
        x = x0
        for _ in range(n):
            x = gj.tanh(x * w)
        loss = x.sum()
        (grad_w,) = gj.autograd.grad(loss, [w])
        return loss, grad_w

    return Prepared(run=loss_and_grad)


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    x0, w, n = torch.from_numpy(data["x"]), torch.tensor(data["w"], requires_grad=True), data["n"]
    step = torch_jit(compiled)(lambda x, w: torch.tanh(x * w))

    def loss_and_grad():
        x = x0
        for _ in range(n):
            x = step(x, w)
        loss = x.sum()
        (grad_w,) = torch.autograd.grad(loss, [w])
        return loss, grad_w

    return Prepared(run=loss_and_grad)


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    n = data["n"]

    def loss(w, x):
        return jax.lax.fori_loop(0, n, lambda i, v: jax.numpy.tanh(v * w), x).sum()

    return jax_call(jax.jit(jax.value_and_grad(loss)), data["w"], data["x"])


def build_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x, w, n = placeholders(tf, data, "x", "w", "n")
        _, y = tf.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, tf.tanh(v * w)), [0, x])
        loss = tf.reduce_sum(y)
        (grad_w,) = tf.gradients(loss, [w])
    return tf1_session(graph, [loss, grad_w], {x: data["x"], w: data["w"], n: data["n"]})


WORKLOAD = Workload(
    name="loop_grad",
    description="gradient w.r.t. w of sum(x) after n steps of x = tanh(x*w) (while_loop)",
    sizes={
        "tiny": {"size": 8, "n": 10},
        "quick": {"size": 256, "n": 200},
        "full": {"size": 256, "n": 1000},
    },
    make_data=make_data,
    builders=standard_builders(globals()),
    tolerance=10.0,  # a thousand float32 steps forward and back
    notes={
        "jax-jit": "trip count static (lax.fori_loop, recompiled per n): JAX cannot "
        "reverse-differentiate a while_loop with a data-dependent trip count",
        "torch-compile": "torch.compile compiles the loop body; the loop runs in Python",
    },
)
