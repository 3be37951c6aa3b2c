"""graphjit's all_reduce op against mpi4py's Allreduce on the same 8 MiB buffer, in
interleaved rounds of one job (docs/distributed.md): mpiexec -n 2 python this_file.py"""

import time

import numpy as np
from mpi4py import MPI

import graphjit as gj

n = 2_109_450
g = gj.Graph()
with g.as_default():
    v = gj.Variable(np.ones(n, np.float32))
    update = gj.group(v.assign(gj.distributed.all_reduce(v)))
sess = gj.Session(g)
sess.run(update)
var = sess.variables[v.name]
fresh = np.ones(n, np.float32)
c = MPI.COMM_WORLD


def t(f, k=40):
    f()
    ts = []
    for _ in range(k):
        c.Barrier()
        s = time.perf_counter()
        f()
        ts.append(time.perf_counter() - s)
    return np.median(ts) * 1e3


res = {k: [] for k in ("graph", "mpi4py-var", "mpi4py-fresh")}
for _ in range(5):
    res["graph"].append(t(lambda: sess.run(update)))
    res["mpi4py-var"].append(t(lambda: c.Allreduce(MPI.IN_PLACE, var)))
    res["mpi4py-fresh"].append(t(lambda: c.Allreduce(MPI.IN_PLACE, fresh)))
if c.rank == 0:
    print({k: [round(x, 2) for x in v] for k, v in res.items()})
