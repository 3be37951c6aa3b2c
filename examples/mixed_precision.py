"""Mixed-precision training: an MLP keeps float32 master weights, runs its forward and
backward passes in a 16-bit float, and updates the float32 weights; static and eager.

Each step casts the master weights to the 16-bit dtype, so the matmuls, activations and
their gradients are float16/bfloat16 (matmuls and sums accumulate in float32 inside, as
PyTorch's do), and the cast's gradient brings each weight's gradient back to float32 for
the update: small updates that a 16-bit weight would round away still add up. The loss
is computed from the logits in float32. bfloat16 has float32's range and needs no loss
scaling; float16's small range does, so its run multiplies the loss by a constant scale
before the backward pass and divides the gradients by it after.

Run: python examples/mixed_precision.py (GRAPHJIT_EXAMPLE_QUICK=1: fewer steps; bfloat16
needs the ml_dtypes package: pip install ml_dtypes)"""

import importlib.util
import os

import numpy as np

import graphjit as gj

QUICK = os.environ.get("GRAPHJIT_EXAMPLE_QUICK") == "1"
STEPS, LR, HIDDEN = (60 if QUICK else 300), 0.5, 32
FLOAT16_LOSS_SCALE = 1024.0


def two_moons(n: int, seed: int):
    """Two interleaving half circles with noise; label 1 is the lower one."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    lower = rng.random(n) < 0.5
    points = np.stack([np.where(lower, 1 - np.cos(t), np.cos(t)),
                       np.where(lower, 0.5 - np.sin(t), np.sin(t))], axis=1)  # fmt: skip
    return (points + rng.normal(0, 0.15, (n, 2))).astype(np.float32), lower.astype(np.int64)


def initial_weights():
    """float32 master weights: (weight, bias) per layer, the same for every run."""
    rng = np.random.default_rng(0)
    sizes = [2, HIDDEN, HIDDEN, 2]
    return [
        (rng.normal(0, 1 / np.sqrt(m), (m, n)).astype(np.float32), np.zeros(n, np.float32))
        for m, n in zip(sizes[:-1], sizes[1:])
    ]


def forward(x, params, dtype):
    """The logits, computed in `dtype` from float32 master parameters, as float32."""
    h = gj.cast(x, dtype)
    for i, (w, b) in enumerate(params):
        h = h @ gj.cast(w, dtype) + gj.cast(b, dtype)
        h = gj.tanh(h) if i < len(params) - 1 else h
    return gj.cast(h, gj.float32)


train_x, train_y = two_moons(256, seed=0)


def train_static(dtype, loss_scale=1.0):
    """A graph: Variables hold the master weights; the update runs in the graph, in float32."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 2], name="x")
        labels = gj.placeholder(gj.int64, [None], name="labels")
        params = [(gj.Variable(w), gj.Variable(b)) for w, b in initial_weights()]
        loss = gj.nn.softmax_cross_entropy(forward(x, params, dtype), labels)
        flat = [p for pair in params for p in pair]
        grads = gj.gradients(loss * loss_scale, flat)  # float32: the casts' gradients
        train = gj.group(*[p.assign(p - LR * (g / loss_scale)) for p, g in zip(flat, grads)])
    losses = []
    with gj.Session(g) as sess:
        for _ in range(STEPS):
            value, _ = sess.run([loss, train], {x: train_x, labels: train_y})
            losses.append(float(value))
    return losses


def train_eager(dtype, loss_scale=1.0):
    """Eager mode: float32 leaf parameters, a 16-bit forward/backward, an SGD update."""
    params = [(gj.tensor(w, requires_grad=True), gj.tensor(b, requires_grad=True))
              for w, b in initial_weights()]  # fmt: skip
    flat = [p for pair in params for p in pair]
    optimizer = gj.optim.SGD(flat, lr=LR)
    x, labels = gj.tensor(train_x), gj.tensor(train_y)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = gj.nn.functional.cross_entropy(forward(x, params, dtype), labels)
        (loss * loss_scale).backward()
        for p in flat:
            assert p.grad.dtype == gj.float32  # the master weights' gradients
            p.grad = p.grad / loss_scale
        optimizer.step()
        losses.append(float(loss))
    return losses


def report(name, losses):
    print(f"{name:34s} loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    assert losses[-1] < 0.75 * losses[0], f"{name}: the loss did not decrease"


if __name__ == "__main__":
    runs = {"float16 (loss scale 1024)": (gj.float16, FLOAT16_LOSS_SCALE)}
    if importlib.util.find_spec("ml_dtypes"):  # (without it, float16 alone)
        runs = {"bfloat16": (gj.bfloat16, 1.0), **runs}
    for label, (dtype, scale) in runs.items():
        static, eager = train_static(dtype, scale), train_eager(dtype, scale)
        report(f"static, {label}", static)
        report(f"eager, {label}", eager)
        # the same arithmetic in both modes: the curves agree to 16-bit rounding
        np.testing.assert_allclose(static, eager, rtol=0.05, atol=0.02)
