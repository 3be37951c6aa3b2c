"""An MLP classifier on two interleaving half-moons, trained three ways from the same
initial weights with the same Adam updates: a static graph in a Session, eager mode with a
tape, and gj.function (the eager model's training step traced and compiled). They reach the
same accuracy. Run: python examples/mlp_three_ways.py"""

import time

import numpy as np

import graphjit as gj

STEPS, LR, HIDDEN = 300, 0.01, 32


def two_moons(n: int, noise: float, seed: int):
    """Two interleaving half circles with Gaussian noise (generated here: no dataset
    package needed). Label 0: the upper moon, 1: the lower one."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    lower = rng.random(n) < 0.5
    x = np.where(lower, 1 - np.cos(t), np.cos(t))
    y = np.where(lower, 0.5 - np.sin(t), np.sin(t))
    points = np.stack([x, y], axis=1) + rng.normal(0, noise, (n, 2))
    return points.astype(np.float32), lower.astype(np.int64)


def make_model():
    gj.manual_seed(0)  # the same initial weights for every way
    return gj.nn.Sequential(
        gj.nn.Linear(2, HIDDEN), gj.nn.Tanh(), gj.nn.Linear(HIDDEN, HIDDEN), gj.nn.Tanh(),
        gj.nn.Linear(HIDDEN, 2),
    )  # fmt: skip


def accuracy(logits, labels) -> float:
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == labels))


train_x, train_y = two_moons(400, 0.15, seed=0)
test_x, test_y = two_moons(200, 0.15, seed=1)


def train_static():
    """TensorFlow 1 style: placeholders, Variables, gradients and Adam built into a graph."""
    init = make_model().state_dict()
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 2], name="x")
        labels = gj.placeholder(gj.int64, [None], name="labels")
        h = x
        for i in range(3):
            w = gj.Variable(init[f"{2 * i}.weight"], name=f"w{i}")
            b = gj.Variable(init[f"{2 * i}.bias"], name=f"b{i}")
            h = h @ gj.transpose(w) + b
            h = gj.tanh(h) if i < 2 else h
        loss = gj.nn.softmax_cross_entropy(h, labels)
        train = gj.train.Adam(LR).minimize(loss)
    with gj.Session(g) as sess:
        for _ in range(STEPS):
            final_loss, _ = sess.run([loss, train], {x: train_x, labels: train_y})
        return float(final_loss), sess.run(h, {x: test_x})


def train_eager():
    """PyTorch style: modules, a tape, .backward() and an optimizer."""
    model = make_model()
    optimizer = gj.optim.Adam(model.parameters(), lr=LR)
    x, labels = gj.tensor(train_x), gj.tensor(train_y)
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = gj.nn.softmax_cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
    with gj.no_grad():
        return loss.item(), model(gj.tensor(test_x)).numpy()


def train_function():
    """The eager model, with its whole training step compiled: the module's parameters become
    graph Variables, Adam's update runs in the graph and is copied back into them."""
    model = make_model()

    @gj.function
    def train_step(model, x, labels):
        loss = gj.nn.softmax_cross_entropy(model(x), labels)
        gj.train.Adam(LR).minimize(loss)  # its moment estimates live in the compiled graph
        return loss

    for _ in range(STEPS):
        loss = train_step(model, train_x, train_y)
    assert train_step.trace_count == 1
    return float(loss), gj.function(model)(test_x)


results = {}
for name, train in [
    ("static", train_static),
    ("eager", train_eager),
    ("gj.function", train_function),
]:
    start = time.perf_counter()
    loss, test_logits = train()
    results[name] = (loss, accuracy(test_logits, test_y))
    print(f"{name:12s} final loss {loss:.4f}  test accuracy {results[name][1]:.3f}  "
          f"({time.perf_counter() - start:.2f} s)")  # fmt: skip

losses, accuracies = zip(*results.values())
assert min(accuracies) > 0.95, accuracies
assert max(accuracies) - min(accuracies) <= 0.01, accuracies  # the same model, trained alike
assert max(losses) - min(losses) < 1e-3, losses
print("all three reach the same accuracy")
