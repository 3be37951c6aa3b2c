"""Op-table records for indexing ops (issue 17); op_table.py adds them to OP_TABLE.

Index inputs come from the "index" domain (integers in [-4, 4): negative ones count from
the end in x[i] and take_along_axis, repeats make scatters add) or "label" ([0, 4): TF1's
and PyTorch's gathers, scatters and embeddings refuse negative indices), so every indexed axis here has
at least 4 entries; they are fixed to one integer dtype, so gradients are taken with
respect to the float inputs alone. Records whose shapes broadcast or shrink when known
are not built with unknown dimensions (dynamic=False)."""

from __future__ import annotations

import numpy as np

import graphjit as gj
from op_table import FLOATS, INTS, OpCase

INDEX = ("real", "index")  # (x[i] and take_along_axis: negative indices count from the end)
LABEL = ("real", "label")  # (TF1's and PyTorch's gathers and scatters refuse negative ones)
MASK = np.array([True, False, True, True])


def _scatter_add_ref(x, indices, updates, axis):
    """x with updates' slices added at indices along axis, one index at a time."""
    out = x.copy()
    lead = (slice(None),) * axis
    for j in np.ndindex(indices.shape):
        out[lead + (indices[j],)] += updates[lead + j]
    return out


def _scatter_add_along_ref(x, dim, index, src):
    """torch.scatter_add: x[..., index[p], ...] += src[p] for each position p of index."""
    out = x.copy()
    for p in np.ndindex(index.shape):
        at = list(p)
        at[dim] = index[p]
        out[tuple(at)] += src[p]
    return out


def _segment_sum_ref(data, ids, n):
    out = np.zeros((n,) + data.shape[ids.ndim :], data.dtype)
    np.add.at(out, ids, data)
    return out


def _gather_cases() -> list[OpCase]:
    return [
        OpCase(
            "gather",
            lambda p, i: gj.gather(p, i),
            lambda p, i: np.take(p, i, axis=0),
            [((5, 3), (4,)), ((4, 2, 3), (2, 3)), ((6,), ())],
            LABEL,
            fixed={1: "int64"},
        ),
        OpCase(
            "gather(axis=1)",
            lambda p, i: gj.gather(p, i, axis=1),
            lambda p, i: np.take(p, i, axis=1),
            [((3, 4, 2), (3,)), ((3, 4, 2), (5,)), ((2, 5), (2, 2))],
            LABEL,
            fixed={1: "int32"},
        ),
        OpCase(
            "gather(axis=-1) of integers",
            lambda p, i: gj.gather(p, i, axis=-1),
            lambda p, i: np.take(p, i, axis=-1),
            [((3, 4), (3,))],
            ("int", "label"),
            INTS,
            grad=False,
            fixed={1: "int64"},
        ),
        OpCase(
            "index_select",
            lambda x, i: gj.index_select(x, 1, i),
            lambda x, i: np.take(x, i, axis=1),
            [((3, 4), (6,))],
            LABEL,
            fixed={1: "int64"},
        ),
        OpCase(
            "embedding",
            lambda w, i: gj.embedding(i, w),
            lambda w, i: w[i],
            [((5, 3), (2, 3)), ((4, 2), (7,))],
            ("real", "label"),
            fixed={1: "int64"},
        ),
        OpCase(
            "take_along_axis",
            lambda x, i: gj.take_along_axis(x, i, axis=1),
            lambda x, i: np.take_along_axis(x, i, axis=1),
            [((3, 5), (3, 4)), ((2, 4, 3), (2, 6, 3))],
            INDEX,
            fixed={1: "int64"},
        ),
        OpCase(
            "take_along_axis broadcasting",
            lambda x, i: gj.take_along_axis(x, i, axis=0),
            lambda x, i: np.take_along_axis(x, i, axis=0),
            [((4, 3), (2, 1)), ((5, 1), (3, 2))],
            INDEX,
            fixed={1: "int64"},
            dynamic=False,
        ),
        OpCase(
            "gather_along (torch.gather)",
            lambda x, i: gj.gather_along(x, 1, i),
            lambda x, i: np.take_along_axis(x[: i.shape[0]], i, axis=1),
            [((3, 5), (3, 2)), ((4, 5), (2, 7))],
            LABEL,
            fixed={1: "int64"},
            dynamic=False,
        ),
    ]


def _scatter_cases() -> list[OpCase]:
    return [
        OpCase(
            "scatter_add",
            lambda x, i, u: gj.scatter_add(x, i, u),
            lambda x, i, u: _scatter_add_ref(x, i, u, 0),
            [((5, 3), (6,), (6, 3)), ((4,), (2, 3), (2, 3))],
            ("real", "label", "real"),
            fixed={1: "int64"},
        ),
        OpCase(
            "scatter_add(axis=1)",
            lambda x, i, u: gj.scatter_add(x, i, u, axis=1),
            lambda x, i, u: _scatter_add_ref(x, i, u, 1),
            [((2, 4, 3), (2, 2), (2, 2, 2, 3))],
            ("real", "label", "real"),
            fixed={1: "int32"},
        ),
        OpCase(
            "scatter_add of integers",
            lambda x, i, u: gj.scatter_add(x, i, u),
            lambda x, i, u: _scatter_add_ref(x, i, u, 0),
            [((4, 2), (5,), (5, 2))],
            ("int", "label", "int"),
            INTS,
            grad=False,
            fixed={1: "int64"},
        ),
        OpCase(
            "index_add",
            lambda x, i, s: gj.index_add(x, 0, i, s, alpha=2),
            lambda x, i, s: _scatter_add_ref(x, i, 2 * s, 0),
            [((4, 3), (5,), (5, 3))],
            ("real", "label", "real"),
            fixed={1: "int64"},
        ),
        OpCase(
            "scatter_add_along (torch.scatter_add)",
            lambda x, i, s: gj.scatter_add_along(x, 1, i, s),
            lambda x, i, s: _scatter_add_along_ref(x, 1, i, s[: i.shape[0], : i.shape[1]]),
            [((3, 5), (3, 4), (3, 4)), ((4, 4), (2, 6), (3, 6))],
            ("real", "label", "real"),
            fixed={1: "int64"},
            dynamic=False,
        ),
        OpCase(
            "unsorted_segment_sum",
            lambda d, i: gj.unsorted_segment_sum(d, i, 5),
            lambda d, i: _segment_sum_ref(d, i, 5),
            [((6, 3), (6,)), ((2, 3, 2), (2, 3)), ((4,), (4,))],
            ("real", "label"),
            fixed={1: "int64"},
        ),
        OpCase(
            "segment_sum",
            lambda d, i: gj.segment_sum(d, i, num_segments=4),
            lambda d, i: _segment_sum_ref(d, i, 4),
            [((5, 2), (5,))],
            ("real", "label"),
            fixed={1: "int32"},
        ),
    ]


def _getitem_cases() -> list[OpCase]:
    """x[key] with integer-array keys (tensors, lists) and constant masks."""
    one_index = [
        ("x[i]", lambda x, i: x[i], [((5, 3), (4,)), ((6, 2, 2), (2, 3))]),
        ("x[:, i]", lambda x, i: x[:, i], [((3, 5), (4,)), ((2, 4, 3), (2, 2))]),
        ("x[i, 1:]", lambda x, i: x[i, 1:], [((5, 3), (4,))]),
        ("x[0, :, i]", lambda x, i: x[0, :, i], [((2, 3, 4), (5,))]),
    ]
    cases = [
        OpCase(name, fn, fn, shapes, INDEX, FLOATS, fixed={1: "int64"})
        for name, fn, shapes in one_index
    ]
    cases += [
        OpCase(
            "x[i, j]",
            lambda x, i, j: x[i, j],
            lambda x, i, j: x[i, j],
            [((4, 5), (3,), (3,)), ((4, 4, 2), (2, 1), (3,))],
            ("real", "index", "index"),
            fixed={1: "int64", 2: "int32"},
            dynamic=False,
        ),
        OpCase(
            "x[i, :, j]",
            lambda x, i, j: x[i, :, j],
            lambda x, i, j: x[i, :, j],
            [((4, 3, 5), (2,), (2,))],
            ("real", "index", "index"),
            fixed={1: "int64", 2: "int64"},
            dynamic=False,
        ),
        OpCase(
            "x[[0, 2, -1]]",
            lambda x: x[[0, 2, -1]],
            lambda x: x[[0, 2, -1]],
            [((4, 3),), ((5,),)],
        ),
        OpCase(
            "x[numpy mask]",
            lambda x: x[MASK],
            lambda x: x[MASK],
            [((4, 3),), ((4,),)],
        ),
        OpCase(
            "boolean_mask(axis=1)",
            lambda x: gj.boolean_mask(x, MASK, axis=1),
            lambda x: x[:, MASK],
            [((2, 4, 3),)],
        ),
        # masks that are tensors too (graph values: a flatnonzero, whose length the
        # backends learn when it runs)
        OpCase(
            "x[tensor mask]",
            lambda x, m: x[m],
            lambda x, m: x[m],
            [((4, 3), (4, 3)), ((4, 3), (4,))],
            domains=("real", "bool"),
            fixed={1: "bool"},
            dynamic=False,  # (a 2-d mask's coordinates need its shape)
        ),
        OpCase(
            "boolean_mask(tensor mask, axis=1)",
            lambda x, m: gj.boolean_mask(x, m, axis=1),
            lambda x, m: x[:, m],
            [((2, 4, 3), (4,))],
            domains=("real", "bool"),
            fixed={1: "bool"},
        ),
        OpCase(
            "where(tensor condition)",
            lambda m: gj.where(m),
            lambda m: np.argwhere(m),
            [((3, 4),), ((5,),)],
            domains=("bool",),
            dtypes=("bool",),
            grad=False,
            dynamic=False,
        ),
    ]
    return cases


INDEXING_CASES: list = _gather_cases() + _scatter_cases() + _getitem_cases()
