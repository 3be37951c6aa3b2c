"""The static graph: Graph, default graphs, placeholders, constants and Variables.

A Graph is an open IR function: ops are appended to its block as the user builds them.
Placeholders and variables live at its top level; the Session turns them into the
arguments of the function it compiles.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager

import numpy as np

from graphjit.errors import DTypeError, FeedError, FetchError, GraphjitError, ShapeError
from graphjit.frontend import ops
from graphjit.frontend.convert import (
    _top_block,
    default_dtype,
    graph_constant,
    is_tensor,
    operands,
    unwrap,
)
from graphjit.ir import builder
from graphjit.ir.core import Function, Module, Value, user_location
from graphjit.ir.ops import bind
from graphjit.ir.types import array_of, as_dims, as_dtype, exact_array_of
from graphjit.runtime.session import get_default_session, set_default_graph_provider


class Graph:
    """A dataflow graph being built; `with g.as_default():` makes new ops land in it."""

    _ids = itertools.count()

    def __init__(self):
        self.function = Function("graph")
        self.variables: dict[str, Variable] = {}
        self.placeholders: dict[str, Value] = {}
        self._name_counts: dict[str, int] = {}
        self.id = next(Graph._ids)

    @property
    def block(self):
        return self.function.block

    @contextmanager
    def as_default(self):
        _graph_stack().append(self)
        try:
            with builder.insertion_point(self.block):
                yield self
        finally:
            _graph_stack().pop()

    def unique_name(self, base: str) -> str:
        count = self._name_counts.get(base, 0)
        self._name_counts[base] = count + 1
        return base if count == 0 else f"{base}_{count}"

    def as_module(self) -> Module:
        return Module([self.function])

    def as_text(self, locations: bool = False) -> str:
        from graphjit.ir.printer import print_module

        return print_module(self.as_module(), locations=locations)

    def __str__(self) -> str:
        return self.as_text()

    def to_dot(self) -> str:
        from graphjit.frontend.graphviz import graph_to_dot

        return graph_to_dot(self.function)

    @property
    def ops(self):
        return list(self.block.ops)


_state = threading.local()
_global_default = Graph()


def _graph_stack() -> list:
    if not hasattr(_state, "graphs"):
        _state.graphs = []
    return _state.graphs


def get_default_graph() -> Graph:
    stack = _graph_stack()
    return stack[-1] if stack else _global_default


def reset_default_graph() -> None:
    global _global_default
    _global_default = Graph()


builder.set_default_block_provider(lambda: get_default_graph().block)
set_default_graph_provider(get_default_graph)  # Session() with no graph uses it


def _top_level(name: str, attrs: dict) -> Value:
    graph = get_default_graph()
    return builder.create(name, (), attrs, block=graph.block).result


def placeholder(dtype, shape=None, name: str | None = None) -> Value:
    """A graph input fed at run time; None in `shape` is a dimension of any size, and
    `shape=None` a tensor of any rank (TF1's default): the feed gives it."""
    graph = get_default_graph()
    name = graph.unique_name(name or "placeholder")
    if shape is not None:
        shape = tuple(None if d == -1 else d for d in as_dims(shape, unknown=True))
    if shape is not None and any(d is not None and d < 0 for d in shape):
        raise ShapeError(
            f"placeholder '{name}' has a negative dimension in {shape}", location=user_location()
        )
    value = _top_level("placeholder", {"name": name, "shape": shape, "dtype": as_dtype(dtype).name})
    value.name_hint = name
    graph.placeholders[name] = value
    return value


def constant(value, dtype=None, name: str | None = None) -> Value:
    """A constant tensor; Python floats default to float32 and ints to int32 (as in TF1)."""
    return named(graph_constant(value, dtype), name)


def named(value, name: str | None):
    """`value` under `name` (made unique in the default graph, as TF1 does: "loss", "loss_1"),
    so that `sess.run("loss:0")` finds it. A value that already has a name (a placeholder, a
    variable) or is not its op's first result keeps it: the new name goes to an identity of
    it. Eager tensors have no names.
    A tuple or list of the results of one op (top_k's values and indices) is named as TF1
    names an op's outputs: "name:0", "name:1"."""
    if isinstance(value, (tuple, list)) and name is not None:
        return _named_outputs(value, name)
    if name is None or not isinstance(value, Value):
        return value
    if value.name_hint is not None or value.index != 0:  # (an op's second result: "name:1")
        value = bind("reshape_like", value, value)  # the identity (canonicalize drops it)
    value.name_hint = get_default_graph().unique_name(name)
    return value


def _named_outputs(values, name: str):
    producers = {id(v.op) if isinstance(v, Value) else None for v in values}
    if len(producers) == 1 and None not in producers and all(v.name_hint is None for v in values):
        unique = get_default_graph().unique_name(name)
        for v in values:
            v.name_hint = unique
    return values


def _value_at_creation(value: Value, graph) -> np.ndarray:
    """A graph value given as a Variable's initial value, computed once now (on the NumPy
    interpreter): it must not depend on placeholders. TF1 computes it when the initializer
    runs, so re-running the initializer there draws a random initial value again; here the
    Variable keeps the value drawn when it was made."""
    from graphjit.runtime.session import Session

    try:
        with Session(graph, backend="interpreter") as sess:
            return sess.run(value)
    except FeedError as e:
        raise FeedError(
            f"a Variable's initial value must not depend on placeholders: {e.raw_message}",
            location=user_location(),
        ) from None


class Variable:
    """Graph state that keeps its value between Session runs (TensorFlow 1's Variable)."""

    def __init__(self, initial_value, dtype=None, name: str | None = None, trainable=True):
        graph = get_default_graph()
        if isinstance(initial_value, Value):  # tf.Variable(tf.zeros(...)), (tf.random_normal(...))
            initial_value = _value_at_creation(initial_value, graph)
        # Python numbers default to float32 / int32 as constants do (TF1); arrays keep theirs.
        try:
            array = array_of(initial_value, as_dtype(dtype or default_dtype(initial_value)))
        except DTypeError as e:
            raise DTypeError(f"Variable: {e.raw_message}", location=user_location()) from None
        self.initial_value = array
        self.dtype = as_dtype(array.dtype)
        self.shape = array.shape
        self.name = graph.unique_name(name or "Variable")
        self.graph = graph
        self.trainable = trainable
        self.value = _top_level(
            "variable", {"name": self.name, "shape": array.shape, "dtype": self.dtype.name}
        )
        self.value.name_hint = self.name
        graph.variables[self.name] = self

    def __graphjit_value__(self) -> Value:
        return self.value

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def assign(self, value) -> Value:
        """An op that sets the variable; its result is the new value. A tensor must have the
        variable's dtype, and a constant must convert to it exactly, as in TF1 (a cast
        would silently truncate 2.5 into an int32 variable or wrap 2**40)."""
        self._check_building_here()
        new = self._assigned(value)
        if tuple(new.shape) != tuple(self.shape):
            if not _broadcasts_to(new.shape, self.shape):
                raise ShapeError(
                    f"cannot assign a value of shape {new.shape} to variable '{self.name}' "
                    f"of shape {self.shape}",
                    location=user_location(),
                )
            new = bind("broadcast_to", new, shape=self.shape)
        out = builder.create("assign", [new], {"var": self.name}).result
        out.name_hint = f"{self.name}/assign"
        return out

    def _assigned(self, value) -> Value:
        """`value` as a tensor of the variable's dtype (see `assign`)."""
        value = unwrap(value)
        if is_tensor(value):
            if value.dtype != self.dtype:
                raise DTypeError(
                    f"cannot assign a value of dtype {value.dtype.name} to variable "
                    f"'{self.name}' of dtype {self.dtype.name}: cast it first (gj.cast(value, "
                    f"gj.{self.dtype.name}))",
                    location=user_location(),
                )
            (new,) = operands(value)
            return new
        try:
            array = exact_array_of(value, self.dtype)
        except DTypeError as e:
            raise DTypeError(
                f"cannot assign to variable '{self.name}': {e.raw_message}",
                location=user_location(),
            ) from None
        return graph_constant(array, self.dtype)

    def _check_building_here(self) -> None:
        """An assign is built at the top level of the variable's own graph."""
        here = builder.current_block()
        if here is self.graph.block:
            return
        if _top_block(here) not in (None, self.graph.block):  # another graph's top level
            raise GraphjitError(
                f"variable '{self.name}' belongs to another graph than the one ops are being "
                "built in (outside `with g.as_default():` that is the default graph): build "
                "its assign inside `with g.as_default():` for the variable's graph",
                location=user_location(),
            )
        raise GraphjitError(
            f"assign to variable '{self.name}' inside cond/while_loop is not supported: "
            "return the new value from the branch or loop and assign it after",
            location=user_location(),
        )

    def assign_add(self, delta) -> Value:
        """`assign(v + delta)`, delta of the variable's dtype as for `assign`."""
        return self.assign(ops.add(self.value, self._assigned(delta)))

    def assign_sub(self, delta) -> Value:
        """`assign(v - delta)`, delta of the variable's dtype as for `assign`."""
        return self.assign(ops.sub(self.value, self._assigned(delta)))

    @property
    def initializer(self):
        """TF1's `v.initializer`: an op that sets the variable back to its initial value."""
        return initializer_op([self])

    def get_shape(self) -> TensorShape:
        return TensorShape(self.shape)

    def eval(self, session=None, feed_dict=None):
        """The variable's value in `session` (default: the innermost `with Session(...)`)."""
        return _session_or_default(session, self.name).run(self.value, feed_dict)

    def load(self, value, session=None) -> None:
        """Set the variable's value in `session` (default: the innermost `with Session(...)`)
        without building an op, as TF1's `Variable.load`; dtype and shape must fit."""
        _session_or_default(session, self.name).load_variable(self.name, value)

    def __repr__(self) -> str:
        return f"<gj.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}>"


def _broadcasts_to(shape, target) -> bool:
    if None in shape:
        return False
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:  # not broadcastable at all
        return False


def initializer_op(variables):
    """One op that sets each of `variables` to its initial value (a constant in the graph)."""
    return group(*[v.assign(v.initial_value) for v in variables])


class TensorShape(tuple):
    """A static shape (None for an unknown dimension) with TF1's TensorShape methods.
    Dimensions are ints or None, not TF1's Dimension objects (no `.value`)."""

    def as_list(self) -> list:
        return list(self)

    @property
    def ndims(self) -> int:
        return len(self)

    rank = ndims

    @property
    def dims(self) -> list:
        return list(self)

    def is_fully_defined(self) -> bool:
        return None not in self

    def num_elements(self) -> int | None:
        return int(np.prod(self, dtype=np.int64)) if self.is_fully_defined() else None


def _session_or_default(session, what: str):
    session = session if session is not None else get_default_session()
    if session is None:
        raise FetchError(
            f"cannot evaluate {what}: no session given and no default session; pass "
            "session=sess, or call it inside `with gj.Session(graph) as sess:`",
            location=user_location(),
        )
    return session


class UnknownShape:
    """TF1's TensorShape(None): the shape of a tensor whose rank is unknown until fed."""

    ndims = rank = dims = None

    def as_list(self):
        raise ShapeError("as_list() is not defined on a shape of unknown rank (shape=None)")

    def is_fully_defined(self) -> bool:
        return False

    def num_elements(self):
        return None

    def __repr__(self) -> str:
        return "TensorShape(None)"


def _value_get_shape(self) -> TensorShape | UnknownShape:
    """TF1's `tensor.get_shape()`: the static shape, None for unknown dimensions."""
    return UnknownShape() if self.type.shape is None else TensorShape(self.shape)


def _value_eval(self, session=None, feed_dict=None):
    """TF1's `tensor.eval()`: run it in `session` (default: the innermost `with Session`)."""
    return _session_or_default(session, f"'{self.name}'").run(self, feed_dict)


# TF1's methods of graph tensors; the ir layer below the frontend knows no Session.
Value.get_shape = _value_get_shape
Value.eval = _value_eval


def group(*ops):
    """One op that runs all of `ops` (assigns, other groups); fetching it returns None."""
    values = []
    for op in ops:
        if isinstance(op, Value):
            values.append(op)
        elif hasattr(op, "operands"):  # an Operation such as another group
            values.extend(op.operands)
        else:
            raise GraphjitError(
                f"group takes tensors and ops, got {type(op).__name__}", location=user_location()
            )
    return builder.create("group", values)
