"""Figures for docs/distributed.md (not a test): run alone and with `mpiexec -n 2`.

    python tests/distributed/bench_distributed.py
    mpiexec -n 2 python tests/distributed/bench_distributed.py

1. the seed MLP's training step (1024-1024-1024-10, float32, SGD; llvm backend) with and
   without the gradient all-reduce, per-process batch 128 and 64;
2. the all-reduce of its 2.1M gradients as graphjit runs it (one all_reduce op in a graph,
   by symbol and by callback) against mpi4py's own Allreduce of the same buffer."""

from __future__ import annotations

import sys
import time

import numpy as np

import graphjit as gj
from graphjit.codegen.llvm import collectives as llvm_collectives

SHAPES = [(1024, 1024), (1024,), (1024, 1024), (1024,), (1024, 10), (10,)]
REPEATS = 30


def median_time(run, repeats=REPEATS) -> float:
    run()  # (compile, first-call checks)
    times = []
    for _ in range(repeats):
        gj.distributed.barrier()  # start together: a collective waits for the slowest rank
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def mlp_step(batch: int, distributed: bool):
    rng = np.random.default_rng(6)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 1024], name="x")
        labels = gj.placeholder(gj.int64, [None], name="labels")
        params = [gj.Variable((rng.normal(size=s) * 0.03).astype(np.float32)) for s in SHAPES]
        h = x
        for i in range(3):
            h = h @ params[2 * i] + params[2 * i + 1]
            h = gj.relu(h) if i < 2 else h
        optimizer = gj.train.SGD(0.01)
        if distributed:
            optimizer = gj.distributed.DistributedOptimizer(optimizer)
        train = optimizer.minimize(gj.nn.softmax_cross_entropy(h, labels))
    sess = gj.Session(g)
    feed = {
        x: rng.normal(size=(batch, 1024)).astype(np.float32),
        labels: rng.integers(0, 10, batch).astype(np.int64),
    }
    return lambda: sess.run(train, feed)


def graph_all_reduce(n: int, mode: str):
    if gj.distributed.size() > 1:
        llvm_collectives.set_call_mode(mode)
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.ones(n, np.float32) / gj.distributed.size())
        update = gj.group(v.assign(gj.distributed.all_reduce(v)))  # in place: MPI_IN_PLACE
    sess = gj.Session(g)
    return lambda: sess.run(update)


def mpi4py_all_reduce(n: int):
    group = gj.distributed.init()
    buffer = np.ones(n, np.float32)
    if group.mpi is None:
        return lambda: None
    comm = group.mpi.COMM_WORLD  # (not group.comm, which the collective timeout watches)
    return lambda: comm.Allreduce(group.mpi.IN_PLACE, buffer, group.mpi.SUM)


def main(all_reduce_only: bool, rounds: int) -> None:
    size, rank = gj.distributed.size(), gj.distributed.rank()
    n = sum(int(np.prod(s)) for s in SHAPES)
    lines = [f"processes {size}; {n} gradients ({4 * n / 2**20:.1f} MiB)"]
    for batch in () if all_reduce_only else (128, 64):
        with_comm = median_time(mlp_step(batch, True))
        local = median_time(mlp_step(batch, False))
        lines.append(
            f"MLP step, batch {batch}/process: {1e3 * with_comm:.2f} ms with all-reduce, "
            f"{1e3 * local:.2f} ms without ({1 - local / with_comm:.0%} communication)"
        )
    timings = {}
    for _ in range(rounds):  # interleaved rounds: the machine is shared, loads drift
        for name, make in [
            ("mpi4py Allreduce", lambda: mpi4py_all_reduce(n)),
            ("graphjit all_reduce (symbol)", lambda: graph_all_reduce(n, "symbol")),
            ("graphjit all_reduce (callback)", lambda: graph_all_reduce(n, "callback")),
        ]:
            timings.setdefault(name, []).append(median_time(make()))
    base = min(timings["mpi4py Allreduce"])
    for name, ts in timings.items():
        lines.append(f"{name}: {1e3 * min(ts):.3f} ms ({min(ts) / base:.2f}x mpi4py)")
    if rank == 0:
        print("\n".join(lines))


if __name__ == "__main__":
    main("--all-reduce-only" in sys.argv, rounds=7 if "--all-reduce-only" in sys.argv else 3)
