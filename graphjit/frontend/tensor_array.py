"""TensorArray (TensorFlow 1's names: write, read, stack, unstack, size, gather), backed by
the IR's tensor lists, differentiable and usable inside while_loop.

In a graph a TensorArray of `size` elements is a tensor list holding `size` zeros; `write`
adds the value at its index (`list_add_at`, whose gradient reads the cotangent back), `read`
is `list_get`. Every method returns a new TensorArray or a tensor (value semantics, as in
TensorFlow 1, where `ta = ta.write(i, x)` is the idiom). In eager mode a Python list of
tensors stands underneath, and the eager tape differentiates it.

Differences from TensorFlow 1, each for a reason:
- In a graph, writing an index twice adds the values (TensorFlow 1 raises); a correct
  TensorFlow 1 program never does it, and the tensor list's add is what has a gradient.
- In a graph the element shape must be known before the TensorArray is a while_loop
  variable (pass `element_shape`, or write or unstack once before the loop): the loop
  carries a list whose element type is fixed when the loop is built.
- In a graph `dynamic_size=True` needs `size`, taken as the largest number of elements;
  a write beyond it is a run-time index error.
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import ControlFlowError, ShapeError
from graphjit.frontend import shape_ops
from graphjit.frontend.control_flow import while_loop
from graphjit.frontend.convert import as_tensor, building_graph, unwrap
from graphjit.ir.core import Value, user_location
from graphjit.ir.ops import P, bind
from graphjit.ir.types import TensorType, as_dtype

__all__ = ["TensorArray"]


class TensorArray:
    """`TensorArray(dtype, size=0, dynamic_size=False, clear_after_read=True,
    element_shape=None)`, as `tf.TensorArray`. `clear_after_read` is accepted and has no
    effect: reads never clear (value semantics make a cleared element unobservable)."""

    def __init__(
        self,
        dtype,
        size=0,
        dynamic_size=False,
        clear_after_read=True,
        tensor_array_name=None,
        element_shape=None,
        infer_shape=True,
        name=None,
    ):
        del clear_after_read, tensor_array_name, infer_shape, name  # TensorFlow 1's, unused
        self.dtype = as_dtype(dtype)
        self.dynamic_size = bool(dynamic_size)
        self._size = unwrap(size)
        self._element_shape = None if element_shape is None else _shape_tuple(element_shape)
        self._graph = building_graph() or isinstance(self._size, Value)
        self._list = None  # graph: the tensor list, made when the element type is known
        self._items: list = []  # eager: one tensor (or None, unwritten) per element
        if self._graph:
            if self.dynamic_size and _static_int(self._size) == 0:
                raise ControlFlowError(
                    "a graph TensorArray with dynamic_size=True needs size (the largest "
                    "number of elements it will hold): its tensor list is made that long",
                    location=user_location(),
                )
            if self._element_shape is not None and None not in self._element_shape:
                self._list = self._zeros_list(TensorType(self._element_shape, self.dtype))
        else:
            self._items = [None] * int(np.asarray(self._size))

    # -- TensorFlow 1's methods ---------------------------------------------------------------
    def write(self, index, value, name=None) -> TensorArray:
        """A new TensorArray with `value` at `index`."""
        value = as_tensor(value, self.dtype, eager_ok=not self._graph)
        if not self._graph:
            return self._eager_write(index, value)
        lst = self._list if self._list is not None else self._zeros_list(value.type)
        elem = lst.type.elem
        if value.type != elem:
            raise ShapeError(
                f"TensorArray.write: a value of type {value.type} into a TensorArray of "
                f"{elem} elements",
                location=user_location(),
            )
        return self._with_list(P.list_add_at(lst, _index(index), value))

    def read(self, index, name=None):
        if not self._graph:
            return self._eager_read(index)
        return P.list_get(self._require_list("read"), _index(index))

    def stack(self, name=None):
        """The elements stacked along a new first axis."""
        if not self._graph:
            return shape_ops.stack([self._eager_read(i) for i in range(len(self._items))])
        lst = self._require_list("stack")
        n = _static_int(self._size)
        if n is None:
            return _stack_at_run_time(lst, self.size())
        if n == 0:
            return P.broadcast_to(as_tensor(0, self.dtype), shape=(0, *lst.type.elem.shape))
        return shape_ops.stack([P.list_get(lst, as_tensor(k)) for k in range(n)])

    def gather(self, indices, name=None):
        """The elements at `indices` (Python ints or a NumPy array), stacked."""
        indices = np.asarray(indices).reshape(-1)
        return shape_ops.stack([self.read(int(k)) for k in indices])

    def unstack(self, value, name=None) -> TensorArray:
        """A new TensorArray whose elements are `value`'s slices along its first axis."""
        value = as_tensor(value, self.dtype, eager_ok=not self._graph)
        n = value.shape[0] if len(value.shape) else None
        if n is None:
            raise ShapeError(
                "TensorArray.unstack needs a value whose first dimension is known when the "
                f"graph is built, got shape {list(value.shape)}",
                location=user_location(),
            )
        out = TensorArray(self.dtype, n, self.dynamic_size, element_shape=value.shape[1:])
        for k in range(n):
            out = out.write(k, value[k])
        return out

    def size(self, name=None):
        if not self._graph:
            return len(self._items)
        if isinstance(self._size, Value):
            return self._size
        return as_tensor(int(self._size))

    @property
    def element_shape(self):
        if self._list is not None:
            return self._list.type.elem.shape
        return self._element_shape

    # -- graph helpers ----------------------------------------------------------------------
    def _zeros_list(self, elem: TensorType) -> Value:
        """A tensor list of `size` zeros of type `elem` (pushed by a loop, so a size known
        only at run time works too)."""
        zeros = P.broadcast_to(as_tensor(0, elem.dtype), shape=elem.shape)
        empty = P.list_new(zeros)
        size = self._size if isinstance(self._size, Value) else int(self._size)
        body = lambda k, lst: (k + 1, P.list_push(lst, zeros))  # noqa: E731
        return while_loop(lambda k, lst: k < size, body, [0, empty])[1]

    def _with_list(self, lst: Value) -> TensorArray:
        out = object.__new__(TensorArray)
        out.__dict__.update(self.__dict__)
        out._list = lst
        return out

    def _require_list(self, what: str) -> Value:
        if self._list is None:
            given = "" if self._element_shape is None else f" (given: {list(self._element_shape)})"
            raise ControlFlowError(
                f"TensorArray.{what} before anything was written: its element shape must be "
                f"fully known{given}; pass element_shape with every dimension, or write or "
                "unstack a value before",
                location=user_location(),
            )
        return self._list

    # -- eager helpers ----------------------------------------------------------------------
    def _eager_write(self, index, value) -> TensorArray:
        i = int(np.asarray(unwrap(index)))
        items = list(self._items)
        if i >= len(items) and self.dynamic_size:
            items += [None] * (i + 1 - len(items))
        if not 0 <= i < len(items):
            raise ShapeError(
                f"TensorArray.write: index {i} out of range (size {len(items)})",
                location=user_location(),
            )
        items[i] = value
        out = object.__new__(TensorArray)
        out.__dict__.update(self.__dict__)
        out._items = items
        return out

    def _eager_read(self, index):
        i = int(np.asarray(unwrap(index)))
        if not 0 <= i < len(self._items) or self._items[i] is None:
            if 0 <= i < len(self._items) and self.element_shape is not None:
                return as_tensor(np.zeros(self.element_shape), self.dtype, eager_ok=True)
            raise ShapeError(
                f"TensorArray.read: index {i} has not been written (size {len(self._items)})",
                location=user_location(),
            )
        return self._items[i]

    # -- nest node: a while_loop carries the tensor list ------------------------------------
    def _nest_flatten(self):
        if not self._graph:
            return [self], "eager"
        return [self._require_list("use as a while_loop variable")], _Meta(self)

    @classmethod
    def _nest_unflatten(cls, meta, leaves):
        if meta == "eager":
            return leaves[0]
        out = object.__new__(TensorArray)
        out.__dict__.update(meta.fields)
        out._list = leaves[0]
        return out

    def __repr__(self) -> str:
        size = self._size if not isinstance(self._size, Value) else "?"
        return f"<gj.TensorArray {self.dtype.name} size={size} elements={self.element_shape}>"


class _Meta:
    """What a graph TensorArray is besides its list; equal for TensorArrays of one kind."""

    def __init__(self, ta: TensorArray):
        self.fields = {k: v for k, v in ta.__dict__.items() if k != "_list"}
        self.key = (ta.dtype, ta.dynamic_size, id(ta._size), ta._list.type)
        if not isinstance(ta._size, Value):
            self.key = (ta.dtype, ta.dynamic_size, int(ta._size), ta._list.type)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Meta) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def _stack_at_run_time(lst: Value, size: Value):
    """Stack a list whose length is known only at run time: a loop that grows the result by
    one row per element (a shape invariant with a None first dimension)."""
    elem = lst.type.elem
    row = lambda k: bind("expand_dims", P.list_get(lst, k), axes=(0,))  # noqa: E731
    first = P.broadcast_to(as_tensor(0, elem.dtype), shape=(0, *elem.shape))
    _, out = while_loop(
        lambda k, acc: k < size,
        lambda k, acc: (k + 1, shape_ops.concat([acc, row(k)], 0)),
        [0, first],
        shape_invariants=[None, (None, *elem.shape)],
    )
    return out


def _index(index):
    i = as_tensor(index)
    if i.shape != () or not i.dtype.is_integer:
        raise ShapeError(
            f"a TensorArray index must be an integer scalar, got {i.dtype.name}{list(i.shape)}",
            location=user_location(),
        )
    return i


def _static_int(size):
    return None if isinstance(size, Value) else int(np.asarray(size))


def _shape_tuple(shape) -> tuple:
    if hasattr(shape, "as_list"):
        shape = shape.as_list()
    return tuple(None if d is None else int(d) for d in shape)
