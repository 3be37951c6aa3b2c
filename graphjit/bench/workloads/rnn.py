"""A small RNN, `h = tanh(x_t @ wx + h @ wh + b)`, over a variable-length sequence: the
inputs are padded to `steps` and only the first `length` (a runtime input) are used,
with a `while_loop` in the static graphs. Two workloads: the forward pass (loss
`mean(h**2)`) and forward plus backward (the loss and its gradients for wx, wh, b)."""

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
    torch_tensors,
)


def make_data(params: dict) -> dict:
    generator = rng(7)
    steps, batch, inputs, hidden = (params[k] for k in ("steps", "batch", "inputs", "hidden"))
    return {
        "xs": generator.normal(size=(steps, batch, inputs)).astype(F32),
        "length": params["length"],
        "params": [
            (generator.normal(size=(inputs, hidden)) / np.sqrt(inputs)).astype(F32),
            (0.5 * generator.normal(size=(hidden, hidden)) / np.sqrt(hidden)).astype(F32),
            (0.1 * generator.normal(size=hidden)).astype(F32),
        ],
        "h0": np.zeros((batch, hidden), F32),
    }


def build_numpy(data: dict, backward: bool) -> Prepared:
    xs, length, h0 = data["xs"], data["length"], data["h0"]
    wx, wh, b = data["params"]

    def run():
        hs = [h0]
        for t in range(length):
            hs.append(np.tanh(xs[t] @ wx + hs[-1] @ wh + b))
        loss = np.mean(hs[-1] ** 2)
        if not backward:
            return loss
        d_h = F32(2 / hs[-1].size) * hs[-1]
        grads = [np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)]
        for t in range(length - 1, -1, -1):
            d_pre = d_h * (F32(1) - hs[t + 1] ** 2)
            grads[0] += xs[t].T @ d_pre
            grads[1] += hs[t].T @ d_pre
            grads[2] += d_pre.sum(axis=0)
            d_h = d_pre @ wh.T
        return loss, grads

    return Prepared(run=run)


def build_static(data: dict, backend: str, backward: bool) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        xs, length = placeholders(gj, data, "xs", "length")
        params = [gj.placeholder(gj.float32, shape=p.shape) for p in data["params"]]
        wx, wh, b = params

        def cell(t, h):
            return t + 1, gj.tanh(xs[t] @ wx + h @ wh + b)

        start = [gj.constant(0, gj.int32), gj.constant(data["h0"])]
        _, h = gj.while_loop(lambda t, h: t < length, cell, start)
        loss = gj.mean(gj.square(h))
        fetches = [loss, gj.gradients(loss, params)] if backward else loss
    feeds = {xs: data["xs"], length: np.int32(data["length"])}
    feeds.update(zip(params, data["params"]))
    return gj_session(graph, fetches, feeds, backend)


def build_eager(data: dict, backward: bool) -> Prepared:
    import graphjit as gj

    xs, length, h0 = gj.tensor(data["xs"]), data["length"], gj.tensor(data["h0"])
    params = [gj.tensor(p, requires_grad=backward) for p in data["params"]]

    def run():
        wx, wh, b = params
        h = h0
        for t in range(length):
            h = gj.tanh(xs[t] @ wx + h @ wh + b)
        loss = gj.mean(gj.square(h))
        return (loss, gj.autograd.grad(loss, params)) if backward else loss

    return Prepared(run=run)


def build_torch(data: dict, compiled: bool, backward: bool) -> Prepared:
    torch = peers.torch()
    xs, h0 = torch_tensors(data["xs"], data["h0"])
    params, length = torch_tensors(*data["params"], requires_grad=backward), data["length"]
    cell = torch_jit(compiled)(lambda x, h, wx, wh, b: torch.tanh(x @ wx + h @ wh + b))

    def run():
        h = h0
        for t in range(length):
            h = cell(xs[t], h, *params)
        loss = torch.mean(torch.square(h))
        return (loss, torch.autograd.grad(loss, params)) if backward else loss

    return Prepared(run=run)


def build_jax(data: dict, backward: bool) -> Prepared:
    jax = peers.jax()
    jnp = jax.numpy

    def loss_fn(params, xs, h0, length):
        wx, wh, b = params
        cell = lambda t, h: jnp.tanh(xs[t] @ wx + h @ wh + b)
        return jnp.mean(jnp.square(jax.lax.fori_loop(0, length, cell, h0)))

    params = tuple(jnp.asarray(p) for p in data["params"])
    if not backward:
        return jax_call(jax.jit(loss_fn), params, data["xs"], data["h0"], np.int32(data["length"]))
    length = data["length"]  # static: see the note
    gradient = jax.jit(jax.value_and_grad(lambda p, xs, h0: loss_fn(p, xs, h0, length)))
    return jax_call(gradient, params, data["xs"], data["h0"])


def build_tf1(data: dict, backward: bool) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        xs, length = placeholders(tf, data, "xs", "length")
        params = [tf.placeholder(tf.float32, shape=p.shape) for p in data["params"]]
        wx, wh, b = params

        def cell(t, h):
            return t + 1, tf.tanh(tf.matmul(xs[t], wx) + tf.matmul(h, wh) + b)

        _, h = tf.while_loop(lambda t, h: t < length, cell, [0, tf.constant(data["h0"])])
        loss = tf.reduce_mean(tf.square(h))
        fetches = [loss, tf.gradients(loss, params)] if backward else loss
    feeds = {xs: data["xs"], length: data["length"]}
    feeds.update(zip(params, data["params"]))
    return tf1_session(graph, fetches, feeds)


SIZES = {
    "tiny": {"steps": 6, "length": 4, "batch": 2, "inputs": 3, "hidden": 4},
    "quick": {"steps": 64, "length": 50, "batch": 16, "inputs": 32, "hidden": 64},
    "full": {"steps": 128, "length": 100, "batch": 16, "inputs": 32, "hidden": 64},
}
COMMON_NOTES = {"torch-compile": "torch.compile compiles the cell; the loop runs in Python"}

FORWARD = Workload(
    name="rnn_forward",
    description="tanh RNN (hidden 64, input 32, batch 16) over a variable-length sequence",
    sizes=SIZES,
    make_data=make_data,
    builders=standard_builders(globals(), backward=False),
    notes=COMMON_NOTES,
)

BACKWARD = Workload(
    name="rnn_backward",
    description="the RNN's loss and its gradients for wx, wh, b (backprop through time)",
    sizes=SIZES,
    make_data=make_data,
    builders=standard_builders(globals(), backward=True),
    tolerance=3.0,
    notes={
        **COMMON_NOTES,
        "jax-jit": "sequence length static (fori_loop, recompiled per length): JAX cannot "
        "reverse-differentiate a while_loop with a data-dependent trip count",
    },
)
