"""The MLP: input-hidden-hidden-classes, relu, softmax cross-entropy, float32. Two
workloads: the forward pass (the loss) and one SGD training step (the loss before the
step is returned; the parameters after it are checked)."""

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
    torch_tensors,
)

LEARNING_RATE = 0.01
PARAMETER_NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


def make_data(params: dict) -> dict:
    generator = rng(6)
    batch, inputs, hidden, classes = (params[k] for k in ("batch", "inputs", "hidden", "classes"))
    shapes = [(inputs, hidden), (hidden, hidden), (hidden, classes)]
    weights = {}
    for layer, (fan_in, fan_out) in enumerate(shapes, start=1):
        weights[f"w{layer}"] = (generator.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)).astype(
            F32
        )
        weights[f"b{layer}"] = (0.01 * generator.normal(size=fan_out)).astype(F32)
    return {
        "x": generator.normal(size=(batch, inputs)).astype(F32),
        "labels": generator.integers(0, classes, size=batch).astype(np.int64),
        "params": [weights[name] for name in PARAMETER_NAMES],
    }


# ---- NumPy, with the backward pass written out -------------------------------------


def _numpy_forward(params, x):
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.maximum(x @ w1 + b1, F32(0))
    h2 = np.maximum(h1 @ w2 + b2, F32(0))
    return h1, h2, h2 @ w3 + b3


def _numpy_log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _numpy_loss_and_grads(params, x, labels):
    w1, b1, w2, b2, w3, b3 = params
    h1, h2, logits = _numpy_forward(params, x)
    log_probs = _numpy_log_softmax(logits)
    rows = np.arange(len(labels))
    loss = -log_probs[rows, labels].mean()
    d_logits = np.exp(log_probs)
    d_logits[rows, labels] -= F32(1)
    d_logits /= F32(len(labels))
    d_h2 = (d_logits @ w3.T) * (h2 > 0)
    d_h1 = (d_h2 @ w2.T) * (h1 > 0)
    grads = [x.T @ d_h1, d_h1.sum(0), h1.T @ d_h2, d_h2.sum(0), h2.T @ d_logits, d_logits.sum(0)]
    return loss, grads


def build_numpy(data: dict, train: bool) -> Prepared:
    x, labels = data["x"], data["labels"]
    state = {"params": [p.copy() for p in data["params"]]}
    if not train:
        rows = np.arange(len(labels))
        forward = lambda: (
            -_numpy_log_softmax(_numpy_forward(state["params"], x)[2])[rows, labels].mean()
        )
        return Prepared(run=forward)

    def step():
        loss, grads = _numpy_loss_and_grads(state["params"], x, labels)
        state["params"] = [p - F32(LEARNING_RATE) * g for p, g in zip(state["params"], grads)]
        return loss

    return Prepared(run=step, readout=lambda _loss: state["params"])


# ---- graphjit ---------------------------------------------------------------------------


def build_static(data: dict, backend: str, train: bool) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, shape=[None, data["x"].shape[1]], name="x")
        labels = gj.placeholder(gj.int64, shape=[None], name="labels")
        params = [gj.Variable(p, name=n) for p, n in zip(data["params"], PARAMETER_NAMES)]
        w1, b1, w2, b2, w3, b3 = params
        h = gj.relu(x @ w1 + b1)
        h = gj.relu(h @ w2 + b2)
        loss = gj.nn.softmax_cross_entropy(h @ w3 + b3, labels)
        feeds = {x: data["x"], labels: data["labels"]}
        if not train:
            return gj_session(graph, loss, feeds, backend)
        step = gj.train.SGD(LEARNING_RATE).minimize(loss)
    return gj_session(graph, [step, loss], feeds, backend, readout_fetches=params)


def build_eager(data: dict, train: bool) -> Prepared:
    import graphjit as gj

    x, labels = gj.tensor(data["x"]), gj.tensor(data["labels"])
    params = [gj.tensor(p, requires_grad=True) for p in data["params"]]

    def loss_fn():
        w1, b1, w2, b2, w3, b3 = params
        h = gj.relu(gj.relu(x @ w1 + b1) @ w2 + b2)
        return gj.nn.softmax_cross_entropy(h @ w3 + b3, labels)

    if not train:
        return Prepared(run=gj.no_grad()(loss_fn))
    optimizer = gj.optim.SGD(params, lr=LEARNING_RATE)

    def step():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        return loss

    return Prepared(run=step, readout=lambda _loss: params)


# ---- peers ------------------------------------------------------------------------------


def build_torch(data: dict, compiled: bool, train: bool) -> Prepared:
    torch = peers.torch()
    functional = torch.nn.functional
    x, labels = torch_tensors(data["x"], data["labels"])
    params = torch_tensors(*data["params"], requires_grad=True)

    def loss_fn(x, labels, w1, b1, w2, b2, w3, b3):
        h = torch.relu(torch.relu(x @ w1 + b1) @ w2 + b2)
        return functional.cross_entropy(h @ w3 + b3, labels)

    loss_fn = torch_jit(compiled)(loss_fn)
    if not train:
        return Prepared(run=torch.no_grad()(lambda: loss_fn(x, labels, *params)))
    optimizer = torch.optim.SGD(params, lr=LEARNING_RATE)

    def step():
        optimizer.zero_grad()
        loss = loss_fn(x, labels, *params)
        loss.backward()
        optimizer.step()
        return loss

    return Prepared(run=step, readout=lambda _loss: params)


def build_jax(data: dict, train: bool) -> Prepared:
    jax = peers.jax()
    jnp = jax.numpy

    def loss_fn(params, x, labels):
        w1, b1, w2, b2, w3, b3 = params
        h = jax.nn.relu(jax.nn.relu(x @ w1 + b1) @ w2 + b2)
        log_probs = jax.nn.log_softmax(h @ w3 + b3)
        return -jnp.take_along_axis(log_probs, labels[:, None], axis=1).mean()

    labels = data["labels"].astype(np.int32)
    state = {"params": tuple(jnp.asarray(p) for p in data["params"])}
    if not train:
        forward = jax.jit(loss_fn)
        return jax_call(lambda x, y: forward(state["params"], x, y), data["x"], labels)

    @jax.jit
    def update(params, x, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, labels)
        return loss, tuple(p - LEARNING_RATE * g for p, g in zip(params, grads))

    def step(x, labels):
        loss, state["params"] = update(state["params"], x, labels)
        return loss, state["params"]

    prepared = jax_call(step, data["x"], labels)
    prepared.readout = lambda output: output[1]
    return prepared


def build_tf1(data: dict, train: bool) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, shape=[None, data["x"].shape[1]], name="x")
        labels = tf.placeholder(tf.int64, shape=[None], name="labels")
        params = [tf.Variable(p, name=n) for p, n in zip(data["params"], PARAMETER_NAMES)]
        w1, b1, w2, b2, w3, b3 = params
        h = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2)
        logits = tf.matmul(h, w3) + b3
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        loss = tf.reduce_mean(per_example)
        feeds = {x: data["x"], labels: data["labels"]}
        if not train:
            return tf1_session(graph, loss, feeds)
        step = tf.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
    return tf1_session(graph, [step, loss], feeds, readout_fetches=params)


SIZES = {
    "tiny": {"batch": 8, "inputs": 16, "hidden": 16, "classes": 10},
    "quick": {"batch": 64, "inputs": 256, "hidden": 256, "classes": 10},
    "full": {"batch": 128, "inputs": 1024, "hidden": 1024, "classes": 10},
}

FORWARD = Workload(
    name="mlp_forward",
    description="MLP forward: loss of a 1024-1024-1024-10 relu net, batch 128 (full size)",
    sizes=SIZES,
    make_data=make_data,
    builders={
        **standard_builders(globals(), train=False),
        "gj-iree": partial(build_static, backend="iree", train=False),
    },
)

TRAIN_STEP = Workload(
    name="mlp_train_step",
    description="MLP SGD training step: forward, backward, parameter update",
    sizes=SIZES,
    make_data=make_data,
    builders={
        **standard_builders(globals(), train=True),
        "gj-iree": partial(build_static, backend="iree", train=True),
    },
    notes={
        "torch-compile": "torch.compile compiles the loss (AOTAutograd its backward); the update is eager"
    },
)
