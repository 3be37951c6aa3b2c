"""Scaffolding the workload modules share: placeholders shaped like a workload's data,
wrapping a graphjit or TF1 session, a jitted JAX function or a torch function into a
Prepared run, and the standard builder table."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from graphjit.bench import peers
from graphjit.bench.core import Builder, Prepared

F32 = np.float32


def forget_compiled_code() -> None:
    """Empty graphjit's process-wide in-memory cache of compiled native code (modules
    still in use stay alive): the next compile of any program is a real one."""
    from graphjit.codegen.llvm import cache

    cache.memory_clear()


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def gj_session(graph, fetches, feed_dict, backend: str, readout_fetches=None) -> Prepared:
    """Run `fetches` in a graphjit Session; `readout_fetches` (variables, after a training
    step) are fetched only for the result check."""
    import graphjit as gj

    with graph.as_default():
        trivial = gj.constant(F32(0), name="bench_trivial")
    session = gj.Session(graph, backend=backend)
    return _session_runs(session, fetches, feed_dict, trivial, readout_fetches)


def tf1_session(graph, fetches, feed_dict, readout_fetches=None) -> Prepared:
    """Run `fetches` in a tf.compat.v1 Session on `graph`, variables initialised."""
    tf = peers.tf1()
    with graph.as_default():
        trivial = tf.constant(F32(0), name="bench_trivial")
        init = tf.global_variables_initializer()
    session = tf.Session(graph=graph)
    session.run(init)
    return _session_runs(session, fetches, feed_dict, trivial, readout_fetches)


def _session_runs(session, fetches, feed_dict, trivial, readout_fetches) -> Prepared:
    """The runs of a graphjit or TF1 session: `fetches`, the `trivial` constant (dispatch
    overhead) and, for the check only, `readout_fetches`."""
    readout = None
    if readout_fetches is not None:
        readout = lambda _output: session.run(readout_fetches)
    return Prepared(
        run=lambda: session.run(fetches, feed_dict),
        readout=readout,
        trivial=lambda: session.run(trivial),
    )


def placeholders(framework, data: dict, *names: str) -> list:
    """A placeholder of `framework` (graphjit, or TF1's `tf.compat.v1`) for each named
    input in `data`, in the graph being built: the array's dtype and shape, or an int32
    scalar for an int (a trip count, a length)."""
    made = []
    for name in names:
        value = data[name]
        if isinstance(value, int):
            dtype, shape = framework.int32, []
        else:
            dtype, shape = getattr(framework, value.dtype.name), value.shape
        made.append(framework.placeholder(dtype, shape=shape, name=name))
    return made


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


MODE_BUILDERS = ("static", "eager", "numpy", "torch", "jax", "tf1")


def standard_builders(namespace: dict, prefix: str = "build_", **bound) -> dict[str, Builder]:
    """The builder table for the modes of `modes.MODES`, from a workload module's builders
    `{prefix}static`, `{prefix}eager`, `{prefix}numpy`, `{prefix}torch`, `{prefix}jax`
    and `{prefix}tf1`, looked up in `namespace` (the module's `globals()`):
    `static(data, backend)` serves both graphjit static modes and `torch(data, compiled)`
    both PyTorch modes. Keyword arguments in `bound` (such as `train=True`) are passed to
    every builder."""
    build = {kind: functools.partial(namespace[prefix + kind], **bound) for kind in MODE_BUILDERS}
    return {
        "gj-llvm": functools.partial(build["static"], backend="llvm"),
        "gj-interp": functools.partial(build["static"], backend="interpreter"),
        "gj-eager": build["eager"],
        "numpy": build["numpy"],
        "torch": functools.partial(build["torch"], compiled=False),
        "torch-compile": functools.partial(build["torch"], compiled=True),
        "jax-jit": build["jax"],
        "tf1": build["tf1"],
    }
