"""Data-parallel training of the seed MLP (the benchmark's relu MLP) over MPI, static and
eager: each process trains on its shard of every batch, gradients are averaged across
processes, and every process ends with the same weights as one process training on the
whole batch.

    mpiexec -n 2 python examples/distributed_mlp.py     (the mpich wheel's mpiexec)
    python examples/distributed_mlp.py                  (a job of one process)

Needs `pip install graphjit[distributed]` for more than one process."""

import os
import time

import numpy as np

import graphjit as gj

QUICK = os.environ.get("GRAPHJIT_EXAMPLE_QUICK") == "1"
INPUTS, HIDDEN, CLASSES = (64, 64, 10) if QUICK else (1024, 1024, 10)
BATCH, STEPS, LR = 128, 5 if QUICK else 30, 0.05


def seed_mlp():
    """Data and initial weights as the benchmark makes them (bench/workloads/mlp.py)."""
    rng = np.random.default_rng(6)
    weights = []
    for fan_in, fan_out in [(INPUTS, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, CLASSES)]:
        weights.append((rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32))
        weights.append((0.01 * rng.normal(size=fan_out)).astype(np.float32))
    x = rng.normal(size=(BATCH, INPUTS)).astype(np.float32)
    labels = (x[:, :CLASSES].argmax(axis=1)).astype(np.int64)  # learnable labels
    return x, labels, weights


def train_static(x, labels, weights):
    """TF1 style: DistributedOptimizer puts the gradients' all-reduce into the graph."""
    g = gj.Graph()
    with g.as_default():
        xp = gj.placeholder(gj.float32, [None, INPUTS], name="x")
        lp = gj.placeholder(gj.int64, [None], name="labels")
        params = [gj.Variable(w) for w in weights]
        h = xp
        for i in range(3):
            h = h @ params[2 * i] + params[2 * i + 1]
            h = gj.relu(h) if i < 2 else h
        loss = gj.nn.softmax_cross_entropy(h, lp)
        optimizer = gj.distributed.DistributedOptimizer(gj.train.SGD(LR))
        train = optimizer.minimize(loss)
    with gj.Session(g) as sess:
        gj.distributed.broadcast_variables(sess)  # every rank starts from rank 0's weights
        losses = [sess.run([loss, train], {xp: x, lp: labels})[0] for _ in range(STEPS)]
        return losses, sess.run(params)


def train_eager(x, labels):
    """PyTorch style: DistributedDataParallel averages gradients in .backward()."""
    gj.manual_seed(0)
    model = gj.nn.Sequential(
        gj.nn.Linear(INPUTS, HIDDEN), gj.nn.ReLU(), gj.nn.Linear(HIDDEN, HIDDEN), gj.nn.ReLU(),
        gj.nn.Linear(HIDDEN, CLASSES),
    )  # fmt: skip
    ddp = gj.nn.parallel.DistributedDataParallel(model)
    optimizer = gj.optim.SGD(model.parameters(), lr=LR)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = gj.nn.softmax_cross_entropy(ddp(gj.tensor(x)), gj.tensor(labels))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, [p.numpy() for p in model.parameters()]


def same_on_every_rank(arrays) -> bool:
    return all(np.array_equal(gj.distributed.broadcast(a.copy()), a) for a in arrays)


gj.distributed.init()  # (a rank that raises now ends the whole job, with its traceback)
rank, size = gj.distributed.rank(), gj.distributed.size()
x, labels, weights = seed_mlp()
mine = gj.distributed.shard(BATCH)  # this rank's rows of every batch
xs, ys = x[mine], labels[mine]
ways = {"static": lambda: train_static(xs, ys, weights), "eager": lambda: train_eager(xs, ys)}
for name, train in ways.items():
    start = time.perf_counter()
    losses, final = train()
    seconds = time.perf_counter() - start
    mean_loss = gj.distributed.all_reduce(np.array(losses, np.float32), op="mean")
    assert mean_loss[-1] < mean_loss[0], mean_loss
    assert same_on_every_rank(final), "ranks diverged"
    if rank == 0:
        print(f"{name:6s} {size} process(es): loss {mean_loss[0]:.4f} -> {mean_loss[-1]:.4f} "
              f"in {STEPS} steps ({seconds:.2f} s, rows {BATCH // size}/process)")  # fmt: skip
if rank == 0:
    print("every rank ends with the same weights")
