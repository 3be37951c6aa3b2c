"""Op-table records for sorting ops (issue 16); op_table.py adds them to OP_TABLE.

`sort` has two results, and a record returns one tensor: the values and the indices get
records of their own (the indices' with grad=False). Index records sample small integers,
so that rows have ties and the stable order is what is checked; their references sort
stably with NumPy, descending as a stable sort of the negated values (exact for these
inputs: no NaN, no integer minimum)."""

from __future__ import annotations

import numpy as np

import graphjit as gj
from op_table import FLOATS, INTS, OpCase

SHAPES = [((7,),), ((3, 4),), ((2, 3, 4),)]
ROWS = [((3, 4),), ((2, 3, 4),)]


def _stable(x, axis, descending=False):
    return np.argsort(-x if descending else x, axis=axis, kind="stable")


def _descending_values(x, axis):
    return np.take_along_axis(x, _stable(x, axis, descending=True), axis)


SORTING_CASES: list = [
    OpCase("sort_values", lambda x: gj.sort(x).values, lambda x: np.sort(x, axis=-1), SHAPES),
    OpCase(
        "sort_values(dim=0, descending)",
        lambda x: gj.sort(x, dim=0, descending=True).values,
        lambda x: _descending_values(x, 0),
        SHAPES,
        dtypes=FLOATS + INTS,
        domains=("small_int",),
        grad=False,
    ),
    OpCase(
        "sort_values(dim=0, descending)",
        lambda x: gj.sort(x, dim=0, descending=True).values,
        lambda x: _descending_values(x, 0),
        SHAPES,
    ),
    OpCase(
        "sort_indices",
        lambda x: gj.sort(x, dim=1).indices,
        lambda x: _stable(x, 1),
        ROWS,
        ("small_int",),
        FLOATS + INTS,
        grad=False,
    ),
    OpCase(
        "argsort(descending)",
        lambda x: gj.argsort(x, dim=-1, descending=True),
        lambda x: _stable(x, -1, descending=True),
        SHAPES,
        ("small_int",),
        FLOATS + INTS,
        grad=False,
    ),
    OpCase(
        "topk_values",
        lambda x: gj.topk(x, 2).values,
        lambda x: _descending_values(x, -1)[..., :2],
        SHAPES,
    ),
    OpCase(
        "topk_indices(largest=False, dim=0)",
        lambda x: gj.topk(x, 2, dim=0, largest=False).indices,
        lambda x: _stable(x, 0)[:2],
        ROWS,
        ("small_int",),
        FLOATS + INTS,
        grad=False,
    ),
    OpCase(
        "kthvalue_values(keepdim)",
        lambda x: gj.kthvalue(x, 2, dim=1, keepdim=True).values,
        lambda x: np.sort(x, axis=1)[:, 1:2],
        ROWS,
    ),
    OpCase(
        "top_k(tf1)",
        lambda x: gj.top_k(x, k=3).values,
        lambda x: _descending_values(x, -1)[..., :3],
        [((4,),), ((3, 5),)],
    ),
]
