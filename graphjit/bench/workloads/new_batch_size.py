"""What a user pays the first time a compiled function sees a new batch size: the MLP
forward pass of `mlp.py` (its loss), built and first called on the seed batch (the
**compile** column, the call that is checked against NumPy), then called once at each of
a series of batch sizes it has not seen: 17, 33, 65, 129, 257, then (for more than five
samples) the odd sizes between them, bisecting (25, 49, 97, 193, 21, 41, ...). Each timed
sample is one such first call (`Workload.fresh_inputs`: no warm-up, no inner loops), so
the median is the typical price of a new batch size, compilation included where a mode
compiles per shape.

A graphjit Session on the llvm backend compiles the batch dimension (a None of the
placeholders' shapes) as a size of the run: one compile serves every batch size its guards
admit (ir/symbolic.py). gj.function runs with `reduce_retracing=True` (TF2's option; off by
default): the first new size traces again with the batch dimension unknown, and that trace,
compiled once, serves the later sizes. jax.jit traces and compiles once per shape.
torch.compile (dynamic=None, its default) recompiles at the first new size with the batch
dimension dynamic, and reuses that graph for later sizes. TensorFlow 1 graphs run any batch
size without recompiling. Eager modes and NumPy pay the compute only.

The harness empties graphjit's in-process cache of native code before each graphjit mode
(as for every workload), so that each mode compiles its new sizes itself, as a fresh
process would: gj-function runs after
gj-llvm in the same process, and would otherwise reuse the kernels gj-llvm compiled at the
same sizes. (With GRAPHJIT_CACHE_DIR set, the on-disk cache can still serve them from an
earlier run; inductor's on-disk cache can serve torch.compile's dynamic graph likewise.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from graphjit.bench import peers
from graphjit.bench.core import Prepared, Workload
from graphjit.bench.workloads import mlp
from graphjit.bench.workloads.common import F32, rng, standard_builders, torch_jit

FIRST_FRESH_SIZES = (17, 33, 65, 129, 257)


def fresh_batch_sizes(first: tuple[int, ...] = FIRST_FRESH_SIZES) -> tuple[int, ...]:
    """`first`, then the midpoints of the gaps between the sizes so far, level by level,
    while a gap is 4 or more: from odd sizes, every midpoint is odd too, so none is the
    seed batch (even) and none repeats. 121 sizes from the default five."""
    order, known = list(first), sorted(first)
    while True:
        midpoints = [(lo + hi) // 2 for lo, hi in zip(known, known[1:]) if hi - lo >= 4]
        if not midpoints:
            return tuple(order)
        order += midpoints
        known = sorted(known + midpoints)


FRESH_SIZES = fresh_batch_sizes()


class FreshSizesExhausted(RuntimeError):
    """More timed samples were asked for than the workload has unseen batch sizes."""


def make_data(params: dict) -> dict:
    """The seed MLP's parameters (`mlp.make_data`) and a pool of input rows: the batch of
    size b is the pool's first b rows (and labels)."""
    seed = mlp.make_data(params)
    rows = max(params["batch"], *FRESH_SIZES)
    generator = rng(17)
    pool_x = generator.normal(size=(rows, params["inputs"])).astype(F32)
    pool_x[: params["batch"]] = seed["x"]
    pool_labels = generator.integers(0, params["classes"], size=rows).astype(np.int64)
    pool_labels[: params["batch"]] = seed["labels"]
    return {
        "params": seed["params"],
        "seed_batch": params["batch"],
        "pool_x": pool_x,
        "pool_labels": pool_labels,
    }


def batch_sizes(data: dict) -> Iterator[int]:
    """The batch size of each successive call: the seed batch, then each fresh size."""
    yield data["seed_batch"]
    yield from FRESH_SIZES
    raise FreshSizesExhausted(
        f"{len(FRESH_SIZES)} unseen batch sizes are all used: ask for at most "
        f"{len(FRESH_SIZES)} timed samples (--repeat)"
    )


def successive_calls(data: dict, forward: Callable, convert: Callable = lambda a: a) -> Callable:
    """A run() that calls `forward(x, labels)` on the next batch size each time, the
    inputs sliced from the pool and passed through `convert` (to a library's arrays)."""
    sizes = batch_sizes(data)

    def run():
        size = next(sizes)
        return forward(convert(data["pool_x"][:size]), convert(data["pool_labels"][:size]))

    return run


# ---- NumPy and graphjit -----------------------------------------------------------------


def numpy_loss(params, x, labels):
    log_probs = mlp._numpy_log_softmax(mlp._numpy_forward(params, x)[2])
    return -log_probs[np.arange(len(labels)), labels].mean()


def build_numpy(data: dict) -> Prepared:
    params = data["params"]
    return Prepared(run=successive_calls(data, lambda x, labels: numpy_loss(params, x, labels)))


def gj_loss(params, x, labels):
    """The loss in graphjit ops: a graph on placeholders, a value on eager tensors."""
    import graphjit as gj

    w1, b1, w2, b2, w3, b3 = params
    h = gj.relu(gj.relu(x @ w1 + b1) @ w2 + b2)
    return gj.nn.softmax_cross_entropy(h @ w3 + b3, labels)


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, shape=[None, data["pool_x"].shape[1]], name="x")
        labels = gj.placeholder(gj.int64, shape=[None], name="labels")
        params = [gj.Variable(p, name=n) for p, n in zip(data["params"], mlp.PARAMETER_NAMES)]
        loss = gj_loss(params, x, labels)
        trivial = gj.constant(F32(0), name="bench_trivial")
    session = gj.Session(graph, backend=backend)
    run = successive_calls(data, lambda xs, ys: session.run(loss, {x: xs, labels: ys}))
    return Prepared(run=run, trivial=lambda: session.run(trivial))


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    params = [gj.tensor(p) for p in data["params"]]
    forward = gj.no_grad()(lambda x, labels: gj_loss(params, x, labels))
    return Prepared(run=successive_calls(data, forward, gj.tensor))


def build_function(data: dict) -> Prepared:
    import graphjit as gj

    loss = gj.function(lambda x, labels, *params: gj_loss(params, x, labels), reduce_retracing=True)
    params = data["params"]
    return Prepared(run=successive_calls(data, lambda x, labels: loss(x, labels, *params)))


# ---- peers ------------------------------------------------------------------------------


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    params = [torch.from_numpy(p) for p in data["params"]]

    def loss_fn(x, labels, w1, b1, w2, b2, w3, b3):
        h = torch.relu(torch.relu(x @ w1 + b1) @ w2 + b2)
        return torch.nn.functional.cross_entropy(h @ w3 + b3, labels)

    loss_fn = torch_jit(compiled)(loss_fn)
    forward = torch.no_grad()(lambda x, labels: loss_fn(x, labels, *params))
    return Prepared(run=successive_calls(data, forward, torch.from_numpy))


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    jnp = jax.numpy

    @jax.jit
    def loss_fn(params, x, labels):
        w1, b1, w2, b2, w3, b3 = params
        h = jax.nn.relu(jax.nn.relu(x @ w1 + b1) @ w2 + b2)
        log_probs = jax.nn.log_softmax(h @ w3 + b3)
        return -jnp.take_along_axis(log_probs, labels[:, None], axis=1).mean()

    params = tuple(jnp.asarray(p) for p in data["params"])
    run = successive_calls(
        {**data, "pool_labels": data["pool_labels"].astype(np.int32)},
        lambda x, labels: loss_fn(params, x, labels),
        jnp.asarray,
    )
    return Prepared(run=run, sync=jax.block_until_ready)


def build_tf1(data: dict) -> Prepared:
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, shape=[None, data["pool_x"].shape[1]], name="x")
        labels = tf.placeholder(tf.int64, shape=[None], name="labels")
        params = [tf.Variable(p, name=n) for p, n in zip(data["params"], mlp.PARAMETER_NAMES)]
        w1, b1, w2, b2, w3, b3 = params
        h = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2)
        logits = tf.matmul(h, w3) + b3
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        loss = tf.reduce_mean(per_example)
        trivial = tf.constant(F32(0), name="bench_trivial")
        init = tf.global_variables_initializer()
    session = tf.Session(graph=graph)
    session.run(init)
    run = successive_calls(data, lambda xs, ys: session.run(loss, {x: xs, labels: ys}))
    return Prepared(run=run, trivial=lambda: session.run(trivial))


SIZES = {size: dict(params) for size, params in mlp.SIZES.items()}

WORKLOAD = Workload(
    name="new_batch_size",
    description=(
        "first call of the mlp_forward model at each new batch size (17, 33, 65, 129, "
        "257, ...) after it was built for batch 128 (full size)"
    ),
    sizes=SIZES,
    make_data=make_data,
    builders={**standard_builders(globals()), "gj-function": build_function},
    notes={
        "gj-llvm": "a Session compiles once for every batch size (a size of the run)",
        "gj-interp": "a Session prepares a program per input shape",
        "gj-function": "reduce_retracing=True: the first new size traces again with the "
        "batch dimension unknown, later sizes reuse it",
        "torch-compile": "dynamic=None (default): the first new size recompiles with a "
        "dynamic batch dimension, later sizes reuse it",
        "jax-jit": "traced and compiled once per input shape: each new batch size",
        "tf1": "one graph for any batch size: no recompilation",
    },
    fresh_inputs=True,
)
