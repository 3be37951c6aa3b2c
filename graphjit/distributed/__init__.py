"""`gj.distributed`: data-parallel training over MPI (mpi4py; `pip install
graphjit[distributed]` brings MPICH and its `mpiexec`). Launch with
`mpiexec -n 4 python train.py`; without mpiexec (or mpi4py) a script is a job of one
process and everything here still works. See docs/distributed.md."""

from graphjit.distributed.arrays import all_gather, all_reduce, broadcast
from graphjit.distributed.buckets import DEFAULT_BUCKET_BYTES, plan_buckets
from graphjit.distributed.data import DistributedSampler, shard
from graphjit.distributed.process import barrier, init, is_root, local_rank, rank, size
from graphjit.distributed.static import (
    DistributedOptimizer,
    average_gradients,
    broadcast_variables,
    save_checkpoint,
)
from graphjit.ir.ops.collectives import DistributedError

__all__ = [
    "DEFAULT_BUCKET_BYTES", "DistributedError", "DistributedOptimizer", "DistributedSampler",
    "all_gather", "all_reduce", "average_gradients", "barrier", "broadcast",
    "broadcast_variables", "init", "is_root", "local_rank", "plan_buckets", "rank",
    "save_checkpoint", "shard", "size",
]  # fmt: skip
