"""One process of a test job (run by tests/distributed/test_distributed.py through the
mpich wheel's mpiexec, or alone as a job of one process): trains the seed MLP (the
benchmark's relu MLP, small) on this rank's shard of one batch, static and eager, and
rank 0 writes the final weights of every way to an .npz.

    python worker.py train OUT.npz        python worker.py raise|exit|hang OUT.npz

raise, exit and hang make rank 1 fail in step 2 of the static training: a Python error,
os._exit(3) (no error at all), or a sleep that never ends.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import graphjit as gj
from graphjit.codegen.llvm import collectives as llvm_collectives

BATCH, INPUTS, HIDDEN, CLASSES = 16, 12, 32, 4
STEPS, LR, MOMENTUM = 4, 0.1, 0.9
NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


def seed_mlp():
    """The benchmark MLP's data and initial weights (bench/workloads/mlp.py), small."""
    rng = np.random.default_rng(6)
    weights = []
    for fan_in, fan_out in [(INPUTS, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, CLASSES)]:
        weights.append((rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32))
        weights.append((0.01 * rng.normal(size=fan_out)).astype(np.float32))
    x = rng.normal(size=(BATCH, INPUTS)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=BATCH).astype(np.int64)
    return x, labels, weights


def fail(how: str) -> None:
    if how == "raise":
        raise RuntimeError("rank 1 fails on purpose in step 2")
    if how == "exit":
        os._exit(3)
    time.sleep(3600)  # "hang": the others wait in the step's all_reduce


def train_static(x, labels, weights, backend="llvm", fail_at=None, how="raise") -> list:
    g = gj.Graph()
    with g.as_default():
        xp = gj.placeholder(gj.float32, [None, INPUTS], name="x")
        lp = gj.placeholder(gj.int64, [None], name="labels")
        # every rank but 0 starts from other weights: broadcast_variables must fix that
        offset = np.float32(gj.distributed.rank())
        params = [gj.Variable(w + offset, name=n) for n, w in zip(NAMES, weights)]
        h = xp
        for i in range(3):
            h = h @ params[2 * i] + params[2 * i + 1]
            h = gj.relu(h) if i < 2 else h
        loss = gj.nn.softmax_cross_entropy(h, lp)
        sgd = gj.train.SGD(LR, momentum=MOMENTUM)
        train = gj.distributed.DistributedOptimizer(sgd, bucket_bytes=2048).minimize(loss)
    with gj.Session(g, backend=backend) as sess:
        gj.distributed.broadcast_variables(sess)
        for step in range(STEPS):
            if step == fail_at and gj.distributed.rank() == 1:
                fail(how)
            sess.run(train, {xp: x, lp: labels})
        return sess.run(params)


def train_eager(x, labels) -> list:
    gj.manual_seed(gj.distributed.rank())  # other weights per rank: DDP broadcasts rank 0's
    model = gj.nn.Sequential(
        gj.nn.Linear(INPUTS, HIDDEN), gj.nn.ReLU(), gj.nn.Linear(HIDDEN, HIDDEN), gj.nn.ReLU(),
        gj.nn.Linear(HIDDEN, CLASSES),
    )  # fmt: skip
    ddp = gj.nn.parallel.DistributedDataParallel(model, bucket_bytes=2048)
    optimizer = gj.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    for _ in range(STEPS):
        optimizer.zero_grad()
        gj.nn.softmax_cross_entropy(ddp(gj.tensor(x)), gj.tensor(labels)).backward()
        optimizer.step()
    return [p.numpy() for p in model.parameters()]


def main(task: str, out: str) -> None:
    gj.distributed.init()
    x, labels, weights = seed_mlp()
    mine = gj.distributed.shard(BATCH)
    x, labels = x[mine], labels[mine]
    if task in ("raise", "exit", "hang"):
        train_static(x, labels, weights, fail_at=2, how=task)
        return
    results = {"eager": train_eager(x, labels)}
    results["interpreter"] = train_static(x, labels, weights, backend="interpreter")
    for mode in ("symbol", "callback") if gj.distributed.size() > 1 else ("symbol",):
        if gj.distributed.size() > 1:
            llvm_collectives.set_call_mode(mode)
        results[f"llvm-{mode}"] = train_static(x, labels, weights)
    flat = {f"{way}/{i}": w for way, ws in results.items() for i, w in enumerate(ws)}
    for key, value in flat.items():  # every rank ends with rank 0's weights
        if not np.array_equal(gj.distributed.broadcast(value.copy()), value):
            raise AssertionError(f"rank {gj.distributed.rank()} ends with other weights: {key}")
    if gj.distributed.rank() == 0:
        np.savez(out, **flat)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
