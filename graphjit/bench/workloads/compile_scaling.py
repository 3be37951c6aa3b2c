"""Compile time against graph size: a chain of N elementwise ops on 256 float32 values,
`x*0.9`, `+0.1`, `tanh` over and over. The figure that matters is each mode's
**compile** column (build and first call); the timed runs are the compiled chain's speed.

One workload per rung of N (the harness times one program per workload), so the rows of
`compile_scaling_1` … `compile_scaling_4` read as one curve; `params` gives the N. The
chain contracts (|d/dy| <= 0.9 per step), so float32 rounding does not grow along it.

torch.compile's inductor keeps compiled graphs on disk between processes (its FX graph
cache): a second `graphjit bench` run on the same machine can report a cache hit for it,
not a compile."""

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

ELEMENTS = 256
# N per rung, for each size: the full sizes are those of issue 18.
CHAIN_LENGTHS = {
    "tiny": (5, 10, 20, 40),
    "quick": (10, 30, 100, 300),
    "full": (10, 100, 1000, 3000),
}
SCALE, SHIFT = 0.9, 0.1


def chain(x, n: int, tanh):
    """The n-op chain on `x`, with any library's tanh (its operators do the rest)."""
    for i in range(n):
        step = i % 3
        if step == 0:
            x = x * SCALE
        elif step == 1:
            x = x + SHIFT
        else:
            x = tanh(x)
    return x


def make_data(params: dict) -> dict:
    return {"x": rng(18).normal(size=ELEMENTS).astype(F32), "n": params["n"]}


def build_numpy(data: dict) -> Prepared:
    x, n = data["x"], data["n"]
    return Prepared(run=lambda: chain(x, n, np.tanh))


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, shape=[ELEMENTS], name="x")
        y = chain(x, data["n"], gj.tanh)
    return gj_session(graph, y, {x: data["x"]}, backend)


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    x, n = gj.tensor(data["x"]), data["n"]
    return Prepared(run=lambda: chain(x, n, gj.tanh))


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    x, n = torch.from_numpy(data["x"]), data["n"]
    run = torch_jit(compiled)(lambda x: chain(x, n, torch.tanh))
    return Prepared(run=lambda: run(x))


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    n = data["n"]
    return jax_call(jax.jit(lambda x: chain(x, n, jax.numpy.tanh)), data["x"])


def build_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, shape=[ELEMENTS], name="x")
        y = chain(x, data["n"], tf.tanh)
    return tf1_session(graph, y, {x: data["x"]})


def _rung(index: int) -> Workload:
    lengths = ", ".join(f"{size} {ns[index]}" for size, ns in CHAIN_LENGTHS.items())
    return Workload(
        name=f"compile_scaling_{index + 1}",
        description=(
            f"first call (compile column) of a chain of N elementwise ops on {ELEMENTS} "
            f"float32; N: {lengths}"
        ),
        sizes={size: {"n": ns[index]} for size, ns in CHAIN_LENGTHS.items()},
        make_data=make_data,
        builders=standard_builders(globals()),
    )


WORKLOADS: tuple[Workload, ...] = tuple(_rung(i) for i in range(4))
