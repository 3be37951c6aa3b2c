"""Sharding a data set across the processes of a job."""

from __future__ import annotations

import numpy as np

from graphjit.distributed.process import init
from graphjit.errors import GraphjitError


def _rank_and_size(rank, size) -> tuple[int, int]:
    if rank is None or size is None:
        group = init()
        rank = group.rank if rank is None else rank
        size = group.size if size is None else size
    if not 0 <= rank < size:
        raise GraphjitError(f"shard: rank {rank} is not in a job of {size} processes")
    return rank, size


def shard(n: int, rank: int | None = None, size: int | None = None) -> slice:
    """The contiguous part of range(n) that process `rank` of `size` takes (default: this
    process of this job), as np.array_split would cut it: parts differ by at most one.
    With mean losses, equal parts make the averaged gradient the whole batch's exactly."""
    rank, size = _rank_and_size(rank, size)
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


class DistributedSampler:
    """PyTorch's DistributedSampler: each process iterates over its own 1/size of the
    indices of a data set of `n` items, every epoch reshuffled with the same seed on every
    process (call `set_epoch`). Indices are padded by wrapping around so that every process
    gets as many (or, with `drop_last`, the tail is dropped)."""

    def __init__(self, n: int, rank=None, size=None, shuffle=True, seed=0, drop_last=False):
        self.n, self.shuffle, self.seed, self.drop_last = n, shuffle, seed, drop_last
        self.rank, self.size = _rank_and_size(rank, size)
        self.epoch = 0
        self.per_rank = n // self.size if drop_last else -(-n // self.size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        order = np.arange(self.n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        total = self.per_rank * self.size
        order = np.resize(order, total)  # wraps around to pad, or cuts the tail
        return order[self.rank : total : self.size]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.per_rank
