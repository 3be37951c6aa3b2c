"""graphjit's all_reduce op against mpi4py's Allreduce on the same 8 MiB buffer, in
interleaved rounds of one job (docs/distributed.md): mpiexec -n 2 python this_file.py

"graph" is the op as a job runs it by default: with the collective timeout on, through the
host callback and the watched communicator; "graph-symbol" calls MPI_Allreduce by symbol
(what GRAPHJIT_DISTRIBUTED_TIMEOUT=0 gives). Each is compared with mpi4py's Allreduce of
its own variable, round by round (the placement of a buffer alone moves its time by up to
~20% here, and the load drifts between rounds)."""

import time

import numpy as np
from mpi4py import MPI

import graphjit as gj
from graphjit.codegen.llvm import collectives as llvm_collectives

n = 2_109_450
c = MPI.COMM_WORLD
ROUNDS, CALLS = 15, 30


def all_reduce_in_place():
    """A Session that reduces a variable in place, and the variable's array."""
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.ones(n, np.float32))
        update = gj.group(v.assign(gj.distributed.all_reduce(v)))
    sess = gj.Session(g)
    sess.run(update)
    return lambda: sess.run(update), sess.variables[v.name]


def median_ms(f) -> float:
    f()
    ts = []
    for _ in range(CALLS):
        c.Barrier()
        s = time.perf_counter()
        f()
        ts.append(time.perf_counter() - s)
    return float(np.median(ts)) * 1e3


graph, var = all_reduce_in_place()  # (gj.distributed.all_reduce calls init() first)
llvm_collectives.set_call_mode("symbol")
graph_symbol, var_symbol = all_reduce_in_place()
ways = {
    "graph": graph,
    "mpi4py": lambda: c.Allreduce(MPI.IN_PLACE, var),
    "graph-symbol": graph_symbol,
    "mpi4py (symbol's variable)": lambda: c.Allreduce(MPI.IN_PLACE, var_symbol),
}
ms = {name: [] for name in ways}
for _ in range(ROUNDS):
    for name, way in ways.items():
        ms[name].append(median_ms(way))
if c.rank == 0:
    medians = {name: round(float(np.median(t)), 2) for name, t in ms.items()}
    print(f"medians of {ROUNDS} rounds of {CALLS} calls (ms): {medians}")
    for name, base in [("graph", "mpi4py"), ("graph-symbol", "mpi4py (symbol's variable)")]:
        ratio = np.median(np.array(ms[name]) / np.array(ms[base]))
        print(f"{name} / {base}, median of the rounds' ratios: {ratio:.3f}")
