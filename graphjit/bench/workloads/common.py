"""Scaffolding the workload modules share: wrapping a graphjit or TF1 session, a jitted
JAX function or a torch function into a Prepared run, and the standard builder table."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from graphjit.bench import peers
from graphjit.bench.core import Builder, Prepared

F32 = np.float32


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def gj_session(graph, fetches, feed_dict, backend: str, readout_fetches=None) -> Prepared:
    """Run `fetches` in a graphjit Session; `readout_fetches` (variables, after a training
    step) are fetched only for the result check."""
    import graphjit as gj

    with graph.as_default():
        trivial = gj.constant(F32(0), name="bench_trivial")
    session = gj.Session(graph, backend=backend)
    readout = None
    if readout_fetches is not None:
        readout = lambda _output: session.run(readout_fetches)
    return Prepared(
        run=lambda: session.run(fetches, feed_dict),
        readout=readout,
        trivial=lambda: session.run(trivial),
    )


def tf1_session(graph, fetches, feed_dict, readout_fetches=None) -> Prepared:
    """Run `fetches` in a tf.compat.v1 Session on `graph`, variables initialised."""
    tf = peers.tf1()
    with graph.as_default():
        trivial = tf.constant(F32(0), name="bench_trivial")
        init = tf.global_variables_initializer()
    session = tf.Session(graph=graph)
    session.run(init)
    readout = None
    if readout_fetches is not None:
        readout = lambda _output: session.run(readout_fetches)
    return Prepared(
        run=lambda: session.run(fetches, feed_dict),
        readout=readout,
        trivial=lambda: session.run(trivial),
    )


def jax_call(fn: Callable, *args, note: str = "") -> Prepared:
    """A jitted function on device arrays; `sync` waits for jax's asynchronous dispatch."""
    jax = peers.jax()
    device_args = [jax.numpy.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    return Prepared(run=lambda: fn(*device_args), sync=jax.block_until_ready, note=note)


def torch_jit(compiled: bool) -> Callable:
    """`torch.compile` for the torch-compile mode, the identity for PyTorch eager."""
    if compiled:
        return peers.torch_compile
    return lambda fn: fn


def torch_tensors(*arrays, requires_grad: bool = False) -> list:
    torch = peers.torch()
    return [torch.tensor(a, requires_grad=requires_grad) for a in arrays]


def standard_builders(
    *,
    static: Callable,
    eager: Builder,
    numpy: Builder,
    torch: Callable,
    jax: Builder,
    tf1: Builder,
) -> dict[str, Builder]:
    """The builder table for the modes of `modes.MODES`: `static(data, backend)` serves
    both graphjit static modes and `torch(data, compiled)` both PyTorch modes."""
    return {
        "gj-llvm": functools.partial(static, backend="llvm"),
        "gj-interp": functools.partial(static, backend="interpreter"),
        "gj-eager": eager,
        "numpy": numpy,
        "torch": functools.partial(torch, compiled=False),
        "torch-compile": functools.partial(torch, compiled=True),
        "jax-jit": jax,
        "tf1": tf1,
    }
