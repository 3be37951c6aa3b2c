"""Tensor lists with value semantics: the tapes that while-loop gradients record.

The forward loop pushes each iteration's loop values; the backward loop reads them back in
reverse with `list_get`. A list's cotangent is a list of the same length, so the VJP rules
below let gradients of gradients flow through tapes too.
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, RuntimeCheckError
from graphjit.ir.ops import NONDIFF, OpDef, P, register
from graphjit.ir.types import ListType


class TensorList:
    """The interpreter's list value. Pushing onto the newest version appends in place and
    shares storage (amortised O(1)); pushing onto an older version copies, so every version
    keeps its contents (value semantics)."""

    __slots__ = ("items", "length")

    def __init__(self, items: list, length: int):
        self.items, self.length = items, length

    def push(self, x: np.ndarray) -> TensorList:
        if self.length == len(self.items):
            self.items.append(x)
            return TensorList(self.items, self.length + 1)
        return TensorList(self.items[: self.length] + [x], self.length + 1)

    def get(self, i) -> np.ndarray:
        i = int(i)
        if not 0 <= i < self.length:
            raise RuntimeCheckError(f"tensor list index {i} out of range (length {self.length})")
        return self.items[i]

    def elements(self) -> list:
        return self.items[: self.length]

    def replaced(self, i: int, x) -> TensorList:
        items = self.elements()
        items[int(i)] = x
        return TensorList(items, self.length)


def _list_of(t) -> ListType:
    if not isinstance(t, ListType):
        raise DTypeError(f"expected a tensor list, got {t}")
    return t


def _push_infer(types, attrs):
    lst, x = types
    if _list_of(lst).elem != x:
        raise DTypeError(f"cannot push {x} onto {lst}")
    return [lst]


def _add_at_infer(types, attrs):
    lst, index, x = types
    if _list_of(lst).elem != x or index.shape != () or not index.dtype.is_integer:
        raise DTypeError(f"list_add_at({lst}, {index}, {x}) is ill-typed")
    return [lst]


def _get_infer(types, attrs):
    lst, index = types
    if index.shape != () or not index.dtype.is_integer:
        raise DTypeError(f"list index must be an integer scalar, got {index}")
    return [_list_of(lst).elem]


def _zeros(x):
    return (
        TensorList([_zeros(e) for e in x.elements()], x.length)
        if isinstance(x, TensorList)
        else np.zeros_like(x)
    )


def _add(a, b):
    if isinstance(a, TensorList):
        return TensorList([_add(x, y) for x, y in zip(a.elements(), b.elements())], a.length)
    return a + b


# An empty list whose elements have the type of the operand (read for its type alone).
register(
    OpDef(
        "list_new",
        lambda t, a: [ListType(t[0])],
        lambda like: TensorList([], 0),
        NONDIFF,
        shape_only=(0,),
    )
)
register(OpDef("list_push", _push_infer, lambda lst, x: lst.push(x), None))
register(
    OpDef(
        "list_get",
        _get_infer,
        lambda lst, i: lst.get(i),
        lambda cts, ins, outs, a: [P.list_add_at(P.list_zeros_like(ins[0]), ins[1], cts[0]), None],
    )
)
register(
    OpDef(
        "list_zeros_like",
        lambda t, a: [_list_of(t[0])],
        _zeros,
        NONDIFF,
    )
)
register(
    OpDef(
        "list_add_at",
        _add_at_infer,
        lambda lst, i, x: lst.replaced(i, _add(lst.get(i), x)),
        lambda cts, ins, outs, a: [cts[0], None, P.list_get(cts[0], ins[1])],
    )
)
register(
    OpDef(
        "list_add",
        lambda t, a: [_list_of(t[0])] if t[0] == t[1] else _mismatch(t),
        _add,
        lambda cts, ins, outs, a: [cts[0], cts[0]],
    )
)


def _mismatch(types):
    raise DTypeError(f"cannot add lists of different types {types[0]} and {types[1]}")
