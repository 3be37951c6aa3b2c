"""Linear regression: `epochs` epochs of full-batch gradient descent on a small dataset,
loss `mean((X @ w + b - y)**2)`. Every mode runs one optimiser step per epoch from the
host: the static graphs make one `Session.run` of the train op per epoch (TF1 style),
jax.jit calls a jitted step per epoch. The result checked is (w, b) after the epochs."""

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

LEARNING_RATE = 0.05


def make_data(params: dict) -> dict:
    generator = rng(5)
    samples, features = params["samples"], params["features"]
    x = generator.normal(size=(samples, features)).astype(F32)
    true_w = generator.normal(size=(features, 1)).astype(F32)
    y = x @ true_w + F32(0.5) + F32(0.1) * generator.normal(size=(samples, 1)).astype(F32)
    return {
        "x": x,
        "y": y.astype(F32),
        "w": np.zeros((features, 1), F32),
        "b": np.zeros((1,), F32),
        "epochs": params["epochs"],
    }


def build_numpy(data: dict) -> Prepared:
    x, y, epochs = data["x"], data["y"], data["epochs"]
    params = {"w": data["w"].copy(), "b": data["b"].copy()}
    scale = F32(2 / y.size)

    def train():
        w, b = params["w"], params["b"]
        for _ in range(epochs):
            residual = x @ w + b - y
            w = w - F32(LEARNING_RATE) * (x.T @ residual) * scale
            b = b - F32(LEARNING_RATE) * residual.sum(axis=0) * scale
        params.update(w=w, b=b)
        return w, b

    return Prepared(run=train)


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x, y = placeholders(gj, data, "x", "y")
        w, b = gj.Variable(data["w"], name="w"), gj.Variable(data["b"], name="b")
        loss = gj.mean(gj.square(x @ w + b - y))
        step = gj.train.SGD(LEARNING_RATE).minimize(loss)
    prepared = gj_session(graph, step, {x: data["x"], y: data["y"]}, backend, [w, b])
    return _repeat_steps(prepared, data["epochs"])


def _repeat_steps(prepared: Prepared, epochs: int) -> Prepared:
    """One Session.run of the train op per epoch; the variables are read only to check."""
    one_step = prepared.run

    def train():
        for _ in range(epochs):
            one_step()

    prepared.run = train
    return prepared


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    x, y, epochs = gj.tensor(data["x"]), gj.tensor(data["y"]), data["epochs"]
    w = gj.tensor(data["w"], requires_grad=True)
    b = gj.tensor(data["b"], requires_grad=True)
    optimizer = gj.optim.SGD([w, b], lr=LEARNING_RATE)

    def train():
        for _ in range(epochs):
            optimizer.zero_grad()
            gj.mean(gj.square(x @ w + b - y)).backward()
            optimizer.step()
        return w, b

    return Prepared(run=train)


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    x, y, epochs = torch.from_numpy(data["x"]), torch.from_numpy(data["y"]), data["epochs"]
    w = torch.tensor(data["w"], requires_grad=True)
    b = torch.tensor(data["b"], requires_grad=True)
    optimizer = torch.optim.SGD([w, b], lr=LEARNING_RATE)
    loss_fn = torch_jit(compiled)(lambda w, b: torch.mean(torch.square(x @ w + b - y)))

    def train():
        for _ in range(epochs):
            optimizer.zero_grad()
            loss_fn(w, b).backward()
            optimizer.step()
        return w, b

    return Prepared(run=train)


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    jnp = jax.numpy
    x, y, epochs = jnp.asarray(data["x"]), jnp.asarray(data["y"]), data["epochs"]

    def loss(params):
        w, b = params
        return jnp.mean(jnp.square(x @ w + b - y))

    @jax.jit
    def step(params):
        grads = jax.grad(loss)(params)
        return tuple(p - LEARNING_RATE * g for p, g in zip(params, grads))

    state = {"params": (jnp.asarray(data["w"]), jnp.asarray(data["b"]))}

    def train():
        params = state["params"]
        for _ in range(epochs):
            params = step(params)
        state["params"] = params
        return params

    return jax_call(train)


def build_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x, y = placeholders(tf, data, "x", "y")
        w, b = tf.Variable(data["w"], name="w"), tf.Variable(data["b"], name="b")
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
        step = tf.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
    prepared = tf1_session(graph, step, {x: data["x"], y: data["y"]}, [w, b])
    return _repeat_steps(prepared, data["epochs"])


WORKLOAD = Workload(
    name="linreg",
    description="linear regression, full-batch gradient descent, one step per epoch",
    sizes={
        "tiny": {"samples": 16, "features": 3, "epochs": 5},
        "quick": {"samples": 256, "features": 8, "epochs": 100},
        "full": {"samples": 256, "features": 8, "epochs": 1000},
    },
    make_data=make_data,
    builders=standard_builders(globals()),
    notes={
        "gj-llvm": "one Session.run of the train op per epoch",
        "gj-interp": "one Session.run of the train op per epoch",
        "tf1": "one Session.run of the train op per epoch",
        "jax-jit": "one call of a jitted step per epoch",
        "torch-compile": "torch.compile compiles the loss (AOTAutograd its backward); the update is eager",
    },
)
