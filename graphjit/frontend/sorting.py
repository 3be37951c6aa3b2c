"""sort, argsort, topk, kthvalue (PyTorch's names, (values, indices) results) and TF1's
tf.math.top_k / tf.sort, for graph values and eager tensors.

Every function is one `sort` primitive (ir/ops/sorting.py: stable, NaN largest) and at
most a static slice. Indices are int64 (PyTorch's; TF1's are int32). Sorting is always
stable, so `stable=False` gives one of the orders PyTorch may give, and ties in `topk` and
`kthvalue` resolve to the first occurrence (PyTorch leaves which one unspecified).

`gj.sort` follows PyTorch: `sort(x, dim)` is the named tuple `(values, indices)`. TF1's
spelling `sort(x, axis=, direction=)` gives the values alone, as `tf.sort` does (the
spelling selects the result, as for `gj.max(x, dim=)` and `gj.max(x, axis=)`).
"""

from __future__ import annotations

import operator

from graphjit.errors import ShapeError
from graphjit.frontend.ops import ValuesIndices, as_tensor, normalize_axes
from graphjit.frontend.shape_ops import getitem, reshape
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind

__all__ = ["sort", "argsort", "topk", "kthvalue", "top_k"]

_DIRECTIONS = {"ASCENDING": False, "DESCENDING": True}


def _sort(x, dim, descending: bool, k: int | None = None) -> ValuesIndices:
    """The sort primitive along `dim`: (values, indices), of the first k positions only
    when k is given. A scalar sorts as a one-element vector (as in PyTorch)."""
    x = as_tensor(x)
    if x.ndim == 0:
        values, indices = _sort(reshape(x, (1,)), 0, descending, k)
        return ValuesIndices(reshape(values, ()), reshape(indices, ()))
    (axis,) = normalize_axes(dim, x.ndim)
    values, indices = bind("sort", x, axis=axis, descending=bool(descending), k=k)
    return ValuesIndices(values, indices)


def _descending(direction: str) -> bool:
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'ASCENDING' or 'DESCENDING', got {direction!r}")
    return _DIRECTIONS[direction]


def sort(x, dim=-1, descending=False, stable=True, *, axis=None, direction=None):
    """PyTorch's torch.sort: the named tuple `(values, indices)` along `dim`, stable
    whatever `stable` says (a stable order is one an unstable sort may give). TF1's
    tf.sort(values, axis=-1, direction="ASCENDING"): with `axis=` or `direction=`, the
    sorted values alone."""
    if axis is None and direction is None:
        return _sort(x, dim, descending)
    if direction is not None:
        descending = _descending(direction)
    return _sort(x, dim if axis is None else axis, descending).values


def argsort(x, dim=-1, descending=False, stable=True, *, axis=None, direction=None):
    """PyTorch's torch.argsort (and TF1's tf.argsort with `axis=`, `direction=`): the
    int64 positions that sort x along `dim`, stably."""
    if direction is not None:
        descending = _descending(direction)
    return _sort(x, dim if axis is None else axis, descending).indices


def _count(k, what: str) -> int:
    try:
        return operator.index(k)
    except TypeError:
        raise TypeError(f"{what}: k must be an integer, got {k!r}") from None


def topk(x, k, dim=-1, largest=True, sorted=True):  # noqa: A002 (PyTorch's keyword)
    """PyTorch's torch.topk: the k largest (or smallest) elements along `dim` and their
    positions, largest first (smallest first); always sorted. NaN counts as the largest."""
    return _sort(x, dim, bool(largest), _count(k, "topk"))


def kthvalue(x, k, dim=-1, keepdim=False):
    """PyTorch's torch.kthvalue: the k-th smallest element along `dim` (k counts from 1)
    and its position."""
    k = _count(k, "kthvalue")
    if k < 1:
        raise ShapeError(f"kthvalue: k counts from 1, got {k}", location=user_location())
    x = as_tensor(x)
    values, indices = _sort(x, dim, False, k)
    if x.ndim == 0:
        return ValuesIndices(values, indices)
    (axis,) = normalize_axes(dim, x.ndim)
    key = (slice(None),) * axis + ((slice(k - 1, k),) if keepdim else (k - 1,))
    return ValuesIndices(getitem(values, key), getitem(indices, key))


def top_k(input, k=1, sorted=True, name=None):  # noqa: A002 (TF1's keywords)
    """TF1's tf.math.top_k / tf.nn.top_k: the k largest entries along the last axis,
    largest first, as the named tuple `(values, indices)`."""
    return topk(input, k, dim=-1, largest=True, sorted=sorted)
