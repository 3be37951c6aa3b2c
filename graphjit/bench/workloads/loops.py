"""Two loops without gradients. `loop_add`: `n` iterations of `x = x + 1` on a small
tensor. `cond_loop`: `for i in range(n): x = x * 2 if sum(x) > 0 else x + 1`, a branch
inside a loop. Static graphs and jax.jit compile the whole loop (`while_loop`, `cond`);
eager modes and NumPy run a Python loop; torch.compile compiles the loop body (the branch
through `torch.cond`) and the loop stays in Python."""

from __future__ import annotations

from functools import partial

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

TORCH_COMPILE_NOTE = "torch.compile compiles the loop body; the loop runs in Python"


def make_add_data(params: dict) -> dict:
    return {"x": rng(2).normal(size=params["size"]).astype(F32), "n": params["n"]}


def make_cond_data(params: dict) -> dict:
    """Start with a negative sum, so the loop adds 1 until the sum turns positive and then
    doubles for the last `doublings` iterations (few enough to stay finite in float32)."""
    n, doublings = params["n"], min(100, params["n"] // 2)
    start = rng(3).normal(size=params["size"]) - (n - doublings)
    return {"x": start.astype(F32), "n": n}


# ---- loop_add -------------------------------------------------------------------------


def add_numpy(data: dict) -> Prepared:
    x0, n = data["x"], data["n"]

    def loop():
        x = x0
        for _ in range(n):
            x = x + F32(1)
        return x

    return Prepared(run=loop)


def add_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x, n = placeholders(gj, data, "x", "n")
        start = [gj.constant(0, gj.int32), x]
        _, y = gj.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, v + 1), start)
    return gj_session(graph, y, {x: data["x"], n: np.int32(data["n"])}, backend)


def add_eager(data: dict) -> Prepared:
    import graphjit as gj

    x0, n = gj.tensor(data["x"]), data["n"]

    def loop():
        x = x0
        for _ in range(n):
            x = x + 1
        return x

    return Prepared(run=loop)


def add_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    x0, n = torch.from_numpy(data["x"]), data["n"]
    step = torch_jit(compiled)(lambda x: x + 1)

    def loop():
        x = x0
        for _ in range(n):
            x = step(x)
        return x

    return Prepared(run=loop)


def add_jax(data: dict) -> Prepared:
    jax = peers.jax()
    loop = jax.jit(lambda x, n: jax.lax.fori_loop(0, n, lambda i, v: v + 1, x))
    return jax_call(loop, data["x"], np.int32(data["n"]))


def add_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x, n = placeholders(tf, data, "x", "n")
        _, y = tf.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, v + 1), [0, x])
    return tf1_session(graph, y, {x: data["x"], n: data["n"]})


# ---- cond_loop ------------------------------------------------------------------------


def cond_numpy(data: dict) -> Prepared:
    x0, n = data["x"], data["n"]

    def loop():
        x = x0
        for _ in range(n):
            x = x * F32(2) if x.sum() > 0 else x + F32(1)
        return x

    return Prepared(run=loop)


def cond_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x, n = placeholders(gj, data, "x", "n")

        def body(i, v):
            return i + 1, gj.cond(gj.sum(v) > 0, lambda: v * 2, lambda: v + 1)

        _, y = gj.while_loop(lambda i, v: i < n, body, [gj.constant(0, gj.int32), x])
    return gj_session(graph, y, {x: data["x"], n: np.int32(data["n"])}, backend)


def cond_eager(data: dict) -> Prepared:
    import graphjit as gj

    x0, n = gj.tensor(data["x"]), data["n"]

    def loop():
        x = x0
        for _ in range(n):
            x = x * 2 if x.sum().item() > 0 else x + 1
        return x

    return Prepared(run=loop)


def cond_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    x0, n = torch.from_numpy(data["x"]), data["n"]
    if compiled:
        branches = (lambda v: v * 2, lambda v: v + 1)
        step = peers.torch_compile(lambda x: torch.cond(x.sum() > 0, *branches, (x,)))
    else:
        step = lambda x: x * 2 if x.sum() > 0 else x + 1

    def loop():
        x = x0
        for _ in range(n):
            x = step(x)
        return x

    return Prepared(run=loop)


def cond_jax(data: dict) -> Prepared:
    jax = peers.jax()
    lax = jax.lax

    def body(i, x):
        return lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: v + 1, x)

    loop = jax.jit(lambda x, n: lax.fori_loop(0, n, body, x))
    return jax_call(loop, data["x"], np.int32(data["n"]))


def cond_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x, n = placeholders(tf, data, "x", "n")

        def body(i, v):
            return i + 1, tf.cond(tf.reduce_sum(v) > 0, lambda: v * 2, lambda: v + 1)

        _, y = tf.while_loop(lambda i, v: i < n, body, [0, x])
    return tf1_session(graph, y, {x: data["x"], n: data["n"]})


LOOP_ADD = Workload(
    name="loop_add",
    description="n iterations of x = x + 1 on a small tensor (while_loop / Python loop)",
    sizes={
        "tiny": {"size": 4, "n": 20},
        "quick": {"size": 16, "n": 1000},
        "full": {"size": 16, "n": 1000},
    },
    make_data=make_add_data,
    builders={
        **standard_builders(globals(), prefix="add_"),
        "gj-iree": partial(add_static, backend="iree"),
    },
    notes={"torch-compile": TORCH_COMPILE_NOTE},
)

COND_LOOP = Workload(
    name="cond_loop",
    description="for i in range(n): x = x*2 if sum(x) > 0 else x+1 (cond inside a loop)",
    sizes={
        "tiny": {"size": 4, "n": 20},
        "quick": {"size": 256, "n": 1000},
        "full": {"size": 256, "n": 1000},
    },
    make_data=make_cond_data,
    builders={
        **standard_builders(globals(), prefix="cond_"),
        "gj-iree": partial(cond_static, backend="iree"),
    },
    notes={"torch-compile": TORCH_COMPILE_NOTE + " (the branch as torch.cond)"},
)
