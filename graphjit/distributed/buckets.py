"""Gradient buckets: which gradients share one all_reduce.

Small gradients are packed together so that a step makes a few collective calls (each
costs a latency: microseconds on one machine, tens of microseconds across a network); a
gradient of at least `bucket_bytes` is reduced alone, in its own storage, since packing it
would only add two copies to a transfer that is bandwidth-bound anyway. Buckets hold one
dtype each and keep the order given (the reverse of the forward pass for eager, whose
last layers' gradients are ready first)."""

from __future__ import annotations

DEFAULT_BUCKET_BYTES = 1 << 20  # 1 MiB: a few calls per step, copies only of small tensors


def plan_buckets(sizes: list[int], dtypes: list, bucket_bytes: int) -> list[list[int]]:
    """Indices grouped into buckets, given each tensor's size in bytes and its dtype."""
    buckets: list[list[int]] = []
    open_bucket: dict = {}  # dtype -> (index into buckets, bytes so far)
    for i, (nbytes, dtype) in enumerate(zip(sizes, dtypes)):
        if nbytes >= bucket_bytes:
            buckets.append([i])
            continue
        where = open_bucket.get(dtype)
        if where is None or where[1] + nbytes > bucket_bytes:
            buckets.append([])
            where = (len(buckets) - 1, 0)
        buckets[where[0]].append(i)
        open_bucket[dtype] = (where[0], where[1] + nbytes)
    return buckets
