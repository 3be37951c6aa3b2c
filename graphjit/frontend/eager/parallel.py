"""`gj.nn.parallel.DistributedDataParallel`: data-parallel training of eager modules.

Each process runs the module on its shard of the batch; `.backward()` leaves every
parameter's `.grad` averaged over the job's processes, as in PyTorch's DDP. The
averaging rides on leaf-tensor hooks, which the backward pass runs at its end, once per
parameter with the parameter's whole gradient: each hook copies its gradient into its
bucket's flat buffer; a full bucket is reduced with one in-place MPI_Allreduce (buckets
in a fixed order, the same on every process). A hook cannot wait for the rest of its
bucket, so it hands the engine zeros (`.grad` gets `old + 0`, exactly `old`) and the
average is added into `.grad` when the bucket has been reduced; the hook that completes
a bucket returns its own parameter's average directly."""

from __future__ import annotations

import contextlib

import numpy as np

from graphjit.errors import GradientError
from graphjit.frontend.eager.module import Module
from graphjit.frontend.eager.tensor import bump_version, wrap
from graphjit.ir.ops.collectives import check_agreement

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """Parameters whose gradients share one flat buffer and one all_reduce."""

    def __init__(self, params: list):
        self.params = params
        self.offsets = np.cumsum([0] + [p._data.size for p in params]).tolist()
        self.flat = np.empty(self.offsets[-1], params[0]._data.dtype)
        self.arrived: set = set()

    def slot(self, index: int) -> np.ndarray:
        p = self.params[index]
        return self.flat[self.offsets[index] : self.offsets[index + 1]].reshape(p._data.shape)

    @property
    def complete(self) -> bool:
        return len(self.arrived) == len(self.params)


class DistributedDataParallel(Module):
    """Wraps `module`: its parameters (and buffers) start as process `root`'s, and every
    backward averages their gradients across processes. Every parameter that requires
    grad must get a gradient in each backward (as PyTorch's default)."""

    def __init__(self, module: Module, bucket_bytes: int | None = None, root: int = 0):
        super().__init__()
        from graphjit import distributed  # (the package sits above the eager mode)

        self.module = module
        self._group = distributed.init()
        self._synchronising = True
        params = [p for p in module.parameters() if p.requires_grad]
        for tensor in [*module.parameters(), *module.buffers()]:
            distributed.broadcast(tensor, root)
        if self._group.size == 1:
            self._buckets = []  # one process: its gradients are the average already
            return
        bucket_bytes = bucket_bytes or distributed.DEFAULT_BUCKET_BYTES
        ordered = params[::-1]  # last layers' gradients are ready first
        plan = distributed.plan_buckets(
            [p._data.nbytes for p in ordered], [p._data.dtype for p in ordered], bucket_bytes
        )
        self._buckets = [_Bucket([ordered[i] for i in members]) for members in plan]
        self._next = 0  # the next bucket to reduce: buckets go in order on every process
        for bucket in self._buckets:
            for index, p in enumerate(bucket.params):
                p.register_hook(self._hook_for(bucket, index))

    def forward(self, *args, **kwargs):
        self._check_previous_backward()
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate local gradients only (gradient accumulation:
        the next backward outside averages the sum)."""
        self._synchronising = False
        try:
            yield
        finally:
            self._synchronising = True

    # ---- the hooks ----------------------------------------------------------------------
    def _hook_for(self, bucket: _Bucket, index: int):
        def hook(grad):
            if not self._synchronising:
                return None
            bucket.slot(index)[...] = grad._data
            bucket.arrived.add(index)
            reduced = self._reduce_ready_buckets(current=bucket.params[index])
            if bucket in reduced:  # this parameter's average is ready: it is the gradient
                return wrap(bucket.slot(index))
            return wrap(np.zeros(grad.shape, grad._data.dtype))  # the average comes later

        return hook

    def _reduce_ready_buckets(self, current) -> list:
        """Reduce, in order, the buckets that are complete; `current` is the parameter
        whose hook is running (its gradient is not delivered yet)."""
        reduced = []
        while self._next < len(self._buckets) and self._buckets[self._next].complete:
            bucket = self._buckets[self._next]
            self._average(bucket)
            reduced.append(bucket)
            self._next += 1
        for bucket in reduced:
            self._add_to_delivered_grads(bucket, current)
        if self._next == len(self._buckets):
            self._start_next_backward()
        return reduced

    def _average(self, bucket: _Bucket) -> None:
        flat, group = bucket.flat, self._group
        check_agreement(flat.size, flat.dtype.name, "sum", "DistributedDataParallel")
        group.all_reduce(flat, flat, "sum")
        flat *= flat.dtype.type(1 / group.size)

    def _add_to_delivered_grads(self, bucket: _Bucket, current) -> None:
        """Members whose hooks already ran hold `old + 0` in .grad: add their average."""
        for index, p in enumerate(bucket.params):
            if p is not current:
                p._grad._data += bucket.slot(index)
                bump_version(p._grad)

    def _start_next_backward(self) -> None:
        self._next = 0
        for bucket in self._buckets:
            bucket.arrived.clear()

    def _check_previous_backward(self) -> None:
        if not self._buckets or (self._next == 0 and not self._buckets[0].arrived):
            return
        missing = [
            f"a parameter of shape {list(p.shape)}"
            for bucket in self._buckets[self._next :]
            for i, p in enumerate(bucket.params)
            if i not in bucket.arrived
        ]
        self._start_next_backward()
        raise GradientError(
            "DistributedDataParallel: the last backward gave no gradient to "
            f"{', '.join(missing[:3])}{' and more' if len(missing) > 3 else ''}; every "
            "parameter that requires grad must take part in the loss on every process"
        )
