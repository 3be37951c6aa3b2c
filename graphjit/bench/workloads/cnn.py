"""LeNet-5 on 1×28×28 images, one SGD training step: conv 6@5×5 (padding 2) → relu →
max-pool 2 → conv 16@5×5 → relu → max-pool 2 → fc 120 → relu → fc 84 → relu → fc 10,
softmax cross-entropy, float32, PyTorch's NCHW layout (conv weights [out, in, kh, kw], dense
weights [in, out]). The loss before the step is returned; the parameters after it are
checked."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
KERNEL, PAD1, POOL = 5, 2, 2  # the first conv pads by 2 so that 28×28 stays 28×28 (LeNet-5)
PARAMETER_NAMES = ("w1", "b1", "w2", "b2", "w3", "b3", "w4", "b4", "w5", "b5")


def flat_features(params: dict) -> int:
    """The length of a flattened image after the two conv/pool stages."""
    side = params["image"] // POOL  # conv1 keeps the side, pool halves it
    side = (side - KERNEL + 1) // POOL
    return params["channels2"] * side * side


def parameter_shapes(params: dict) -> list[tuple[int, ...]]:
    c1, c2, f1, f2, classes = (
        params[k] for k in ("channels1", "channels2", "fc1", "fc2", "classes")
    )
    flat = flat_features(params)
    return [
        (c1, 1, KERNEL, KERNEL), (c1,),
        (c2, c1, KERNEL, KERNEL), (c2,),
        (flat, f1), (f1,),
        (f1, f2), (f2,),
        (f2, classes), (classes,),
    ]  # fmt: skip


def make_data(params: dict) -> dict:
    generator = rng(7)
    weights = []
    for shape in parameter_shapes(params):
        if len(shape) == 1:
            weights.append((0.01 * generator.normal(size=shape)).astype(F32))
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            weights.append((generator.normal(size=shape) / np.sqrt(fan_in)).astype(F32))
    batch, side = params["batch"], params["image"]
    return {
        "x": generator.normal(size=(batch, 1, side, side)).astype(F32),
        "labels": generator.integers(0, params["classes"], size=batch).astype(np.int64),
        "params": weights,
    }


# ---- NumPy, with the backward pass written out (im2col through a strided view) ------------


def _np_conv(x, w, pad):
    """Cross-correlation, stride 1: [N, C, H, W] * [O, C, k, k] -> [N, O, H', W']."""
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(padded, w.shape[2:], axis=(2, 3))  # N, C, H', W', k, k
    return np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def _np_conv_backward(x, w, pad, d_out):
    """(d_x, d_w) of _np_conv: d_w correlates the input with d_out; d_x is the full
    correlation of d_out with the flipped kernel, cropped by the padding."""
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(padded, w.shape[2:], axis=(2, 3))
    d_w = np.tensordot(d_out, windows, axes=([0, 2, 3], [0, 2, 3]))
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    d_padded = _np_conv(d_out, np.ascontiguousarray(flipped), w.shape[2] - 1)
    height, width = x.shape[2:]
    return d_padded[:, :, pad : pad + height, pad : pad + width], d_w


def _np_pool(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // POOL, POOL, w // POOL, POOL).max(axis=(3, 5))


def _np_pool_backward(x, d_pooled):
    """Each window's gradient goes to its first maximum, as PyTorch and graphjit route it
    (relu's zeros tie often)."""
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // POOL, POOL, w // POOL, POOL).transpose(0, 1, 2, 4, 3, 5)
    first_max = windows.reshape(n, c, h // POOL, w // POOL, POOL * POOL).argmax(axis=-1)
    routed = (np.arange(POOL * POOL) == first_max[..., None]) * d_pooled[..., None]
    routed = routed.reshape(n, c, h // POOL, w // POOL, POOL, POOL).transpose(0, 1, 2, 4, 3, 5)
    return routed.reshape(x.shape).astype(d_pooled.dtype)


def _np_log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _np_forward(params, x):
    """Every intermediate the backward pass needs, by name."""
    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = params
    act = {"x": x}
    act["c1"] = np.maximum(_np_conv(x, w1, PAD1) + b1[:, None, None], F32(0))
    act["p1"] = _np_pool(act["c1"])
    act["c2"] = np.maximum(_np_conv(act["p1"], w2, 0) + b2[:, None, None], F32(0))
    act["p2"] = _np_pool(act["c2"])
    act["flat"] = act["p2"].reshape(len(x), -1)
    act["h1"] = np.maximum(act["flat"] @ w3 + b3, F32(0))
    act["h2"] = np.maximum(act["h1"] @ w4 + b4, F32(0))
    act["logits"] = act["h2"] @ w5 + b5
    return act


def _np_loss_and_grads(params, x, labels):
    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = params
    act = _np_forward(params, x)
    log_probs = _np_log_softmax(act["logits"])
    rows = np.arange(len(labels))
    loss = -log_probs[rows, labels].mean()
    d_logits = np.exp(log_probs)
    d_logits[rows, labels] -= F32(1)
    d_logits /= F32(len(labels))
    d_h2 = (d_logits @ w5.T) * (act["h2"] > 0)
    d_h1 = (d_h2 @ w4.T) * (act["h1"] > 0)
    d_p2 = (d_h1 @ w3.T).reshape(act["p2"].shape)
    d_c2 = _np_pool_backward(act["c2"], d_p2) * (act["c2"] > 0)
    d_p1, d_w2 = _np_conv_backward(act["p1"], w2, 0, d_c2)
    d_c1 = _np_pool_backward(act["c1"], d_p1) * (act["c1"] > 0)
    _, d_w1 = _np_conv_backward(x, w1, PAD1, d_c1)
    grads = [
        d_w1, d_c1.sum((0, 2, 3)), d_w2, d_c2.sum((0, 2, 3)),
        act["flat"].T @ d_h1, d_h1.sum(0), act["h1"].T @ d_h2, d_h2.sum(0),
        act["h2"].T @ d_logits, d_logits.sum(0),
    ]  # fmt: skip
    return loss, grads


def build_numpy(data: dict) -> Prepared:
    x, labels = data["x"], data["labels"]
    state = {"params": [p.copy() for p in data["params"]]}

    def step():
        loss, grads = _np_loss_and_grads(state["params"], x, labels)
        state["params"] = [p - F32(LEARNING_RATE) * g for p, g in zip(state["params"], grads)]
        return loss

    return Prepared(run=step, readout=lambda _loss: state["params"])


# ---- graphjit: one model for the static graph, eager and gj.function ----------------------


def gj_loss(params, x, labels):
    """The loss in graphjit ops, which build graph ops on graph values and compute at once
    on eager tensors."""
    import graphjit as gj

    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = params
    h = gj.nn.max_pool2d(gj.relu(gj.nn.conv2d(x, w1, b1, padding=PAD1)), POOL)
    h = gj.nn.max_pool2d(gj.relu(gj.nn.conv2d(h, w2, b2)), POOL)
    h = gj.reshape(h, [-1, w3.shape[0]])
    h = gj.relu(gj.relu(h @ w3 + b3) @ w4 + b4)
    return gj.nn.softmax_cross_entropy(h @ w5 + b5, labels)


def build_static(data: dict, backend: str) -> Prepared:
    import graphjit as gj

    graph = gj.Graph()
    with graph.as_default():
        x = gj.placeholder(gj.float32, shape=[None, *data["x"].shape[1:]], name="x")
        labels = gj.placeholder(gj.int64, shape=[None], name="labels")
        params = [gj.Variable(p, name=n) for p, n in zip(data["params"], PARAMETER_NAMES)]
        loss = gj_loss(params, x, labels)
        step = gj.train.SGD(LEARNING_RATE).minimize(loss)
    feeds = {x: data["x"], labels: data["labels"]}
    return gj_session(graph, [step, loss], feeds, backend, readout_fetches=params)


def build_eager(data: dict) -> Prepared:
    import graphjit as gj

    x, labels = gj.tensor(data["x"]), gj.tensor(data["labels"])
    params = [gj.tensor(p, requires_grad=True) for p in data["params"]]
    optimizer = gj.optim.SGD(params, lr=LEARNING_RATE)

    def step():
        optimizer.zero_grad()
        loss = gj_loss(params, x, labels)
        loss.backward()
        optimizer.step()
        return loss

    return Prepared(run=step, readout=lambda _loss: params)


def build_function(data: dict) -> Prepared:
    """The whole step under gj.function: the parameters, held by a module, become graph
    Variables that the traced SGD update assigns (and gj.function copies back)."""
    import graphjit as gj

    class LeNetParameters(gj.nn.Module):
        def __init__(self, arrays):
            super().__init__()
            for name, array in zip(PARAMETER_NAMES, arrays):
                setattr(self, name, gj.nn.Parameter(gj.tensor(array.copy())))

        def forward(self, x, labels):
            return gj_loss([getattr(self, n) for n in PARAMETER_NAMES], x, labels)

    model = LeNetParameters(data["params"])

    @gj.function
    def train_step(model, x, labels):
        loss = model(x, labels)
        gj.train.SGD(LEARNING_RATE).minimize(loss)
        return loss

    x, labels = data["x"], data["labels"]
    readout = lambda _loss: [getattr(model, n) for n in PARAMETER_NAMES]
    return Prepared(run=lambda: train_step(model, x, labels), readout=readout)


# ---- peers ------------------------------------------------------------------------------


def build_torch(data: dict, compiled: bool) -> Prepared:
    torch = peers.torch()
    functional = torch.nn.functional
    x, labels = torch_tensors(data["x"], data["labels"])
    params = torch_tensors(*data["params"], requires_grad=True)

    def loss_fn(x, labels, w1, b1, w2, b2, w3, b3, w4, b4, w5, b5):
        h = functional.max_pool2d(torch.relu(functional.conv2d(x, w1, b1, padding=PAD1)), POOL)
        h = functional.max_pool2d(torch.relu(functional.conv2d(h, w2, b2)), POOL)
        h = torch.relu(torch.relu(h.flatten(1) @ w3 + b3) @ w4 + b4)
        return functional.cross_entropy(h @ w5 + b5, labels)

    loss_fn = torch_jit(compiled)(loss_fn)
    optimizer = torch.optim.SGD(params, lr=LEARNING_RATE)

    def step():
        optimizer.zero_grad()
        loss = loss_fn(x, labels, *params)
        loss.backward()
        optimizer.step()
        return loss

    return Prepared(run=step, readout=lambda _loss: params)


def build_jax(data: dict) -> Prepared:
    jax = peers.jax()
    jnp, lax = jax.numpy, jax.lax

    def conv(x, w, pad):
        return lax.conv_general_dilated(
            x, w, (1, 1), [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW")
        )

    def pool(x):
        window = (1, 1, POOL, POOL)
        return lax.reduce_window(x, -jnp.inf, lax.max, window, window, "VALID")

    def loss_fn(params, x, labels):
        w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = params
        h = pool(jax.nn.relu(conv(x, w1, PAD1) + b1[:, None, None]))
        h = pool(jax.nn.relu(conv(h, w2, 0) + b2[:, None, None]))
        h = jax.nn.relu(jax.nn.relu(h.reshape(h.shape[0], -1) @ w3 + b3) @ w4 + b4)
        log_probs = jax.nn.log_softmax(h @ w5 + b5)
        return -jnp.take_along_axis(log_probs, labels[:, None], axis=1).mean()

    @jax.jit
    def update(params, x, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, labels)
        return loss, tuple(p - LEARNING_RATE * g for p, g in zip(params, grads))

    state = {"params": tuple(jnp.asarray(p) for p in data["params"])}

    def step(x, labels):
        loss, state["params"] = update(state["params"], x, labels)
        return loss, state["params"]

    prepared = jax_call(step, data["x"], data["labels"].astype(np.int32))
    prepared.readout = lambda output: output[1]
    return prepared


def build_tf1(data: dict) -> Prepared:
    """TF1's CPU convolutions and pooling take NHWC images and HWIO kernels: the graph
    transposes into that layout and back before flattening, so the variables keep the
    NCHW-layout values the other modes are checked with."""
    tf = peers.tf1()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, shape=[None, *data["x"].shape[1:]], name="x")
        labels = tf.placeholder(tf.int64, shape=[None], name="labels")
        params = [tf.Variable(p, name=n) for p, n in zip(data["params"], PARAMETER_NAMES)]
        w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = params

        def conv_relu_pool(h, w, b, pad):
            h = tf.pad(h, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            h = tf.nn.conv2d(h, tf.transpose(w, [2, 3, 1, 0]), [1, 1, 1, 1], "VALID")
            window = [1, POOL, POOL, 1]
            return tf.nn.max_pool(tf.nn.relu(h + b), window, window, "VALID")

        h = conv_relu_pool(tf.transpose(x, [0, 2, 3, 1]), w1, b1, PAD1)
        h = conv_relu_pool(h, w2, b2, 0)
        h = tf.reshape(tf.transpose(h, [0, 3, 1, 2]), [-1, data["params"][4].shape[0]])
        h = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(h, w3) + b3), w4) + b4)
        logits = tf.matmul(h, w5) + b5
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        loss = tf.reduce_mean(per_example)
        step = tf.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
    feeds = {x: data["x"], labels: data["labels"]}
    return tf1_session(graph, [step, loss], feeds, readout_fetches=params)


LENET5 = {"image": 28, "channels1": 6, "channels2": 16, "fc1": 120, "fc2": 84, "classes": 10}
SIZES = {
    "tiny": {"batch": 2, "image": 12, "channels1": 2, "channels2": 3, "fc1": 8, "fc2": 6,
             "classes": 10},
    "quick": {**LENET5, "batch": 16},
    "full": {**LENET5, "batch": 64},
}  # fmt: skip


TRAIN_STEP = Workload(
    name="cnn_train_step",
    description="LeNet-5 SGD training step on 1×28×28 images, batch 64 (full size)",
    sizes=SIZES,
    make_data=make_data,
    builders={**standard_builders(globals()), "gj-function": build_function},
    notes={
        "torch-compile": "torch.compile compiles the loss (AOTAutograd its backward); the update is eager",
        "tf1": "NHWC convolutions: the graph transposes the NCHW images and OIHW kernels",
    },
)
