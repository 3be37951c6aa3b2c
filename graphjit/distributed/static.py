"""Data-parallel training of static graphs, Horovod-style.

`DistributedOptimizer(opt).minimize(loss)` builds the same single update op as `opt`, with
each gradient replaced by its average over the job's processes: gradients are packed into
buckets (`buckets.py`), each bucket is one `all_reduce` op in the IR (flatten, concat,
all_reduce in place, split back), and the 1/size scale is a multiply that fusion folds into
the update kernel. Every process runs the same graph, so the collectives happen in the same
order everywhere."""

from __future__ import annotations

import numpy as np

from graphjit.distributed.buckets import DEFAULT_BUCKET_BYTES, plan_buckets
from graphjit.distributed.process import barrier, init
from graphjit.errors import GraphjitError
from graphjit.frontend import ops, shape_ops, train
from graphjit.ir.ops import bind
from graphjit.ir.ops.collectives import DistributedError, check_agreement


class DistributedOptimizer:
    """Wraps a gj.train optimizer: gradients are averaged across processes before its
    update. Everything else (learning rate, slots, ...) is the wrapped optimizer's."""

    def __init__(self, optimizer, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        if not isinstance(optimizer, train.Optimizer):
            raise GraphjitError(
                f"DistributedOptimizer wraps a gj.train optimizer, not {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.bucket_bytes = bucket_bytes
        init()

    def compute_gradients(self, loss, var_list=None) -> list:
        pairs = self.optimizer.compute_gradients(loss, var_list)
        return average_gradients(pairs, self.bucket_bytes)

    def apply_gradients(self, grads_and_vars, global_step=None):
        return self.optimizer.apply_gradients(grads_and_vars, global_step=global_step)

    def minimize(self, loss, global_step=None, var_list=None):
        # Optimizer.minimize only calls compute_gradients and apply_gradients: ours
        return train.Optimizer.minimize(self, loss, global_step, var_list)

    def __getattr__(self, name: str):
        return getattr(self.optimizer, name)


def average_gradients(grads_and_vars: list, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> list:
    """[(gradient averaged over processes, variable)]; None gradients stay None."""
    present = [i for i, (g, _) in enumerate(grads_and_vars) if g is not None]
    grads = [grads_and_vars[i][0] for i in present]
    sizes = [int(np.prod(g.type.shape)) * g.type.dtype.np.itemsize for g in grads]
    buckets = plan_buckets(sizes, [g.type.dtype for g in grads], bucket_bytes)
    averaged = list(grads_and_vars)
    scale = 1.0 / init().size
    for bucket in buckets:
        reduced = _sum_bucket([grads[k] for k in bucket])
        for k, total in zip(bucket, reduced):
            i = present[k]
            averaged[i] = (ops.mul(total, scale), grads_and_vars[i][1])
    return averaged


def _sum_bucket(grads: list) -> list:
    """One all_reduce (sum) for these gradients: alone in place, or packed flat."""
    if len(grads) == 1:
        return [bind("all_reduce", grads[0], op="sum")]
    flats = [shape_ops.reshape(g, [-1]) for g in grads]
    total = bind("all_reduce", shape_ops.concat(flats, axis=0), op="sum")
    pieces = bind("split_like", total, *flats, axis=0)
    return [shape_ops.reshape(p, list(g.type.shape)) for p, g in zip(pieces, grads)]


def broadcast_variables(session, root: int = 0, variables=None) -> None:
    """Set every process's variables (default: all of the session's graph) to root's
    values, in one broadcast per dtype. The variables' names, shapes and dtypes are first
    compared across processes: a different model on some rank is an error, not a hang."""
    group = init()
    if group.size == 1:
        return
    variables = list(session.graph.variables.values() if variables is None else variables)
    _check_same_variables(group, variables)
    values = session.run(variables)
    by_dtype: dict = {}
    for var, value in zip(variables, values):
        by_dtype.setdefault(np.asarray(value).dtype, []).append((var, np.asarray(value)))
    for dtype, members in by_dtype.items():
        flat = np.concatenate([v.reshape(-1) for _, v in members])
        check_agreement(flat.size, dtype.name, f"broadcast from {root}", "broadcast_variables")
        group.broadcast(flat, root)
        offset = 0
        for var, value in members:
            session.load_variable(var.name, flat[offset : offset + value.size].reshape(value.shape))
            offset += value.size


def _check_same_variables(group, variables) -> None:
    mine = [(v.name, tuple(v.shape), v.dtype.name) for v in variables]
    everyone = group.all_gather_objects(mine)
    for other_rank, theirs in enumerate(everyone):
        if theirs != mine:
            different = sorted(set(theirs) ^ set(mine))[:4]
            raise DistributedError(
                f"broadcast_variables: rank {other_rank} has other variables than rank "
                f"{group.rank} (differing: {different}); every process must build the same graph"
            )


def save_checkpoint(session, path: str, saver=None, root: int = 0, global_step=None) -> str:
    """Save a checkpoint from process `root` only (the others would write the same bytes to
    the same file); every process waits until it is written and gets the path."""
    group = init()
    written = None
    if group.rank == root:
        if saver is not None:
            written = saver.save(session, path, global_step=global_step)
        else:
            written = session.save(path if global_step is None else f"{path}-{global_step}")
    barrier()
    return group.all_gather_objects(written)[root]
