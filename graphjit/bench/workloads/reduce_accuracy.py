"""`mean(exp(a + b))` over an n x n broadcast of an n x 1 and a 1 x n float32 vector:
the speed of a fused reduction, and its accuracy. Each mode's note gives its error
relative to a float64 reference; a sum in one float32 accumulator, in order, is about
n * n * eps off (1.5e-3 at n = 4096), a pairwise sum a few eps."""

from __future__ import annotations

from functools import partial

import numpy as np

from graphjit.bench import peers
from graphjit.bench.core import Prepared, Workload
from graphjit.bench.workloads.common import (
    F32,
    jax_call,
    rng,
    standard_builders,
    tf1_session,
    torch_jit,
)


def make_data(params: dict) -> dict:
    generator = rng(18)
    n = params["n"]
    return {
        "a": generator.normal(size=(n, 1)).astype(F32),
        "b": generator.normal(size=(1, n)).astype(F32),
    }


def _reference(data: dict) -> float:
    return float(np.mean(np.exp(data["a"].astype(np.float64) + data["b"].astype(np.float64))))


def _with_error(prepared: Prepared, data: dict) -> Prepared:
    """The prepared run, its note saying how far one run's result is from float64's."""
    output = prepared.run()
    prepared.sync(output)
    got = float(prepared.values(output)[0])
    expected = _reference(data)
    prepared.note = f"relative error {abs(got - expected) / abs(expected):.1e}"
    return prepared


def build_numpy(data: dict) -> Prepared:
    a, b = data["a"], data["b"]
    return _with_error(Prepared(run=lambda: np.mean(np.exp(a + b))), data)


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        a = gj.placeholder(gj.float32, shape=[None, 1], name="a")
        b = gj.placeholder(gj.float32, shape=[1, None], name="b")
        y = gj.mean(gj.exp(a + b))
        trivial = gj.constant(F32(0), name="bench_trivial")
    session = gj.Session(graph, backend=backend)
    feeds = {a: data["a"], b: data["b"]}
    prepared = Prepared(run=lambda: session.run(y, feeds), trivial=lambda: session.run(trivial))
    return _with_error(prepared, data)


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    a, b = gj.tensor(data["a"]), gj.tensor(data["b"])
    return _with_error(Prepared(run=lambda: gj.mean(gj.exp(a + b))), data)


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    a, b = torch.from_numpy(data["a"]), torch.from_numpy(data["b"])
    mean_exp = torch_jit(compiled)(lambda a, b: torch.mean(torch.exp(a + b)))
    return _with_error(Prepared(run=lambda: mean_exp(a, b)), data)


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    jnp = jax.numpy
    mean_exp = jax.jit(lambda a, b: jnp.mean(jnp.exp(a + b)))
    return _with_error(jax_call(mean_exp, data["a"], data["b"]), data)


def build_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        a = tf.placeholder(tf.float32, shape=[None, 1], name="a")
        b = tf.placeholder(tf.float32, shape=[1, None], name="b")
        y = tf.reduce_mean(tf.exp(a + b))
    return _with_error(tf1_session(graph, y, {a: data["a"], b: data["b"]}), data)


WORKLOAD = Workload(
    name="reduce_accuracy",
    description="mean(exp(a + b)), an n x 1 + 1 x n float32 broadcast; error vs float64",
    sizes={"tiny": {"n": 64}, "quick": {"n": 1024}, "full": {"n": 4096}},
    make_data=make_data,
    builders={**standard_builders(globals()), "gj-iree": partial(build_static, backend="iree")},
)
