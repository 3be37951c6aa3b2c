"""Tape nodes (`grad_fn`): what backward needs to run one recorded op's VJP rule.

A node keeps its inputs' and outputs' arrays and version cells (with the version each had
when recorded), but not the tensors themselves: output -> grad_fn -> output would be a
reference cycle, and the tape would then outlive the user's tensors until the cycle collector
ran. Inputs and outputs are rebuilt from the arrays when a VJP rule reads them (a leaf that
requires grad is its own edge, and is passed as itself).

The node is the only object of a recorded op that the cycle collector tracks while the tape
lives: what it saved is kept in tuples of arrays, version cells (arrays too) and ints, which
the collector stops tracking at its first pass, and the nodes its edges lead to are in slots
of its own (a tuple holding them would stay tracked). Every tracked object alive makes every
later collection longer, and a tape of many of them triggers full collections of the whole
heap (CPython runs one once the objects promoted since the last exceed a quarter of the
heap): with seven per op, recording cost 2-4x more on long tapes than on short ones
(tests/eager/test_tape_gc.py counts them).

In-place ops overwrite storage (as PyTorch's do), so a saved input or output may have
changed by backward time; its version says so. Such a tensor is an error only if the VJP
rule reads its values, as PyTorch's saved-variable check is only for what the formula
saved: while the rule runs, the changed tensors are listed in STALE, and the eager handler
refuses an op that reads one (an operand read for its shape alone is fine). So
`y = x * 2; y.add_(1)` backpropagates (mul's rule does not read its output), and
`y = x.exp(); y.add_(1)` raises (exp's rule does).
"""

from __future__ import annotations

import itertools

from graphjit.errors import GradientError
from graphjit.frontend.eager.anomaly import where_built
from graphjit.frontend.eager.tensor import (
    MUTATIONS,
    Tensor,
    to_array,
    wrap,
    wrap_output,
    wrap_saved,
)
from graphjit.ir.core import user_location
from graphjit.ir.ops import OpDef, no_vjp_error

# Nodes are numbered in creation order; a node's inputs come from older nodes, so running
# nodes from the newest down is a valid order for backward.
next_sequence_nr = itertools.count().__next__


class Node:
    """Base of every grad_fn. Input i's cotangent goes to `edge_targets[i]`: None (the input
    needs no gradient), a node (its output `edge_indices[i]`) or a leaf tensor (index -1)."""

    # The first two edge targets have slots of their own, the others (ops with more inputs)
    # a tuple: see the module's docstring. `location` is set only under anomaly detection
    # (see anomaly.py); `hooks` only when a hook is registered on one of its outputs (see
    # register_tensor_hook).
    __slots__ = ("_target0", "_target1", "_more_targets", "edge_indices", "num_outputs",
                 "retained", "sequence_nr", "location", "hooks", "__weakref__")  # fmt: skip

    def set_edges(self, edges) -> None:
        """Set the edges from one entry per input: None, (node, index) or (leaf, -1)."""
        self.edge_indices = tuple([0 if e is None else e[1] for e in edges])
        self.set_targets([None if e is None else e[0] for e in edges])

    def set_targets(self, targets: list) -> None:
        self._more_targets = tuple(targets[2:]) if len(targets) > 2 else None
        self._target0, self._target1 = [*targets, None, None][:2]

    @property
    def edge_targets(self) -> tuple:
        n = len(self.edge_indices)
        if n == 1:
            return (self._target0,)
        if n == 2:
            return (self._target0, self._target1)
        if n == 0:
            return ()
        return (self._target0, self._target1, *self._more_targets)

    @property
    def edges(self) -> tuple:
        """The edges as set_edges takes them: None or (target, index) per input."""
        return tuple(
            None if target is None else (target, index)
            for target, index in zip(self.edge_targets, self.edge_indices)
        )

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def next_functions(self) -> tuple:
        """PyTorch's view of the edges: (grad_fn, or a leaf tensor, or None; output index)."""
        return tuple(
            (target, max(index, 0)) for target, index in zip(self.edge_targets, self.edge_indices)
        )

    def apply(self, cts: list) -> list:
        """Cotangents of the inputs (None where zero) from those of the outputs."""
        raise NotImplementedError

    def release(self) -> None:
        """Free what was saved for backward (unless the user asked to retain the graph)."""

    def __repr__(self) -> str:
        return f"<{self.name}>"


def edge_target(node: Node, i: int):
    """node.edge_targets[i], without making the tuple (the backward passes' hot loops)."""
    if i == 0:
        return node._target0
    return node._target1 if i == 1 else node._more_targets[i - 2]


def freed_error(what: str, location=None) -> GradientError:
    return GradientError(
        f"trying to backward through the graph a second time ({what} already freed its saved "
        "tensors); pass retain_graph=True to the first backward() or autograd.grad() call to "
        "backward through it again",
        location=location or user_location(),
    )


def modified_error(
    what: str, shape: tuple, version: int, saved_version: int, location=None
) -> GradientError:
    return GradientError(
        f"a tensor of shape {shape} saved by {what} for the gradient computation was modified "
        f"by an in-place operation (it is now at version {version}, expected version "
        f"{saved_version}; PyTorch: one of the variables needed for gradient computation has "
        "been modified by an inplace operation); clone it before modifying it in place",
        location=location or user_location(),
    )


# id(tensor) -> (tensor, error) for the saved tensors that changed in place since the node
# running its VJP rule saved them (see the module's docstring); empty outside such a rule.
STALE: dict = {}


def check_stale(opdef: OpDef, operands: list) -> None:
    """Called by the eager handler while STALE is not empty: refuse to read a changed value."""
    shape_only = None
    for i, x in enumerate(operands):
        entry = STALE.get(id(x))
        if entry is not None and entry[0] is x:
            if shape_only is None:
                shape_only = opdef.shape_only_operands(len(operands))
            if i not in shape_only:
                raise _StaleRead(entry[1])


class _StaleRead(Exception):
    """Carries the error out of the VJP rule, so that its traceback ends at backward's
    node rather than deep inside the rule."""

    def __init__(self, error: GradientError):
        super().__init__(str(error))
        self.error = error


class OpNode(Node):
    """One primitive application; its class is named after the op (`mul` -> MulBackward)."""

    # `saved_inputs` and `saved_outputs`: three entries per tensor, flat (one tuple per side
    # is all the collector sees per op, once): its array, its version cell (shared with its
    # views and aliases) and the version it had when saved (a view's may not start at 0).
    # `input_shapes`: set only where the rule reads no input, so that its cotangents are
    # still checked: one input's shape itself (a tuple of ints, which the collector stops
    # tracking at once; a tuple holding it would stay tracked a collection longer), else
    # a tuple of the inputs' shapes.
    __slots__ = ("opdef", "attrs", "saved_inputs", "saved_outputs", "epoch", "input_shapes")

    def __init__(self, opdef: OpDef, attrs: dict, inputs: list, results: list):
        self.num_outputs, self.retained = len(results), None
        self.sequence_nr = next_sequence_nr()
        self.epoch = MUTATIONS[0]
        self.opdef, self.attrs = opdef, attrs
        # The edges, and what the VJP rule reads of the inputs and outputs (see _rebuilt;
        # an empty tuple where it reads none of them); for one or two inputs (most ops)
        # without a loop.
        reads = opdef.vjp_reads_inputs
        count = len(inputs)
        if count == 1:
            t = inputs[0]
            self._target0, index = _edge(t)
            self._target1 = self._more_targets = None
            self.edge_indices = (index,)
            if reads:
                cell = t._version
                self.saved_inputs = (t._data, cell, cell[0])
            else:
                self.saved_inputs, self.input_shapes = (), t._data.shape
        elif count == 2:
            t, u = inputs
            self._target0, index = _edge(t)
            self._target1, second = _edge(u)
            self._more_targets = None
            self.edge_indices = (index, second)
            if reads:
                cell, other = t._version, u._version
                self.saved_inputs = (t._data, cell, cell[0], u._data, other, other[0])
            else:
                self.saved_inputs, self.input_shapes = (), (t._data.shape, u._data.shape)
        else:  # (no inputs, or three or more)
            self.set_edges([_edge(t) for t in inputs])
            if reads:
                self.saved_inputs = tuple(_saved(inputs))
            else:
                self.saved_inputs, self.input_shapes = (), tuple(t._data.shape for t in inputs)
        if not opdef.vjp_reads_outputs:
            self.saved_outputs = ()
        elif len(results) == 1:  # (most ops: skip the loop)
            out = results[0]
            cell = out._version
            self.saved_outputs = (out._data, cell, cell[0])
        else:
            self.saved_outputs = tuple(_saved(results))

    def _inputs(self) -> list:
        """The inputs as the VJP rule sees them (see _rebuilt), where it reads them."""
        saved, indices = self.saved_inputs, self.edge_indices
        n = len(indices)
        if n == 2:  # (most ops: no loop)
            first = _rebuilt(self._target0, indices[0], saved[0], saved[1])
            if saved[3] is saved[0] and saved[4] is saved[1] and self._target1 is self._target0:
                return [first, first]  # (`x * x`: one tensor twice, as it was recorded)
            return [first, _rebuilt(self._target1, indices[1], saved[3], saved[4])]
        if n == 1:
            return [_rebuilt(self._target0, indices[0], saved[0], saved[1])]
        targets = self.edge_targets
        return [
            _rebuilt(targets[i], indices[i], saved[3 * i], saved[3 * i + 1])
            for i in range(len(indices))
        ]

    def _outputs(self) -> list:
        saved = self.saved_outputs
        if len(saved) == 3:  # (most ops: skip the comprehension)
            return [wrap_output(saved[0], saved[1], self, 0)]
        return [
            wrap_output(saved[3 * i], saved[3 * i + 1], self, i) for i in range(len(saved) // 3)
        ]

    def apply(self, cts: list) -> list:
        saved = self.saved_inputs
        if saved is None:
            raise freed_error(self.name, where_built(self))
        vjp = self.opdef.vjp
        if not callable(vjp):
            raise no_vjp_error(self.opdef, where_built(self))
        inputs = self._inputs() if saved else [None] * len(self.edge_indices)
        outs = self._outputs() if self.saved_outputs else [None] * self.num_outputs
        stale = None
        if self.epoch != MUTATIONS[0] and (saved or self.saved_outputs):
            stale = self._changed(inputs, outs)  # (something changed in place somewhere)
        if stale:
            in_cts = _run_guarded(vjp, cts, inputs, outs, self.attrs, stale)
        else:
            in_cts = vjp(cts, inputs, outs, self.attrs)
        if len(in_cts) != len(inputs):
            check_cotangents(self.name, in_cts, inputs)
        if saved:
            for ct, x in zip(in_cts, inputs):
                if ct is not None and ct._data.shape != x._data.shape:
                    check_cotangents(self.name, in_cts, [x.shape for x in inputs])
        elif len(in_cts) == 1:  # (one input: input_shapes is its shape)
            ct = in_cts[0]
            if ct is not None and ct._data.shape != self.input_shapes:
                check_cotangents(self.name, in_cts, (self.input_shapes,))
        else:
            for ct, shape in zip(in_cts, self.input_shapes):
                if ct is not None and ct._data.shape != shape:
                    check_cotangents(self.name, in_cts, self.input_shapes)
        return in_cts

    def _changed(self, inputs: list, outs: list) -> dict:
        """The saved inputs and outputs changed in place since recording, as STALE entries."""
        changed = {}
        for tensor, version in zip(inputs, self.saved_inputs[2::3]):
            if tensor._version[0] != version:
                error = modified_error(
                    self.name, tensor.shape, tensor._version[0], version, where_built(self)
                )
                changed[id(tensor)] = (tensor, error)
        for out, version in zip(outs, self.saved_outputs[2::3]):
            if out._version[0] != version:
                name = f"{self.name} (as its output)"
                error = modified_error(name, out.shape, out._version[0], version, where_built(self))
                changed[id(out)] = (out, error)
        return changed

    def release(self) -> None:
        # (a node that kept nothing can run again, as PyTorch's: `y = -x` backward twice)
        if self.saved_inputs or self.saved_outputs:
            self.saved_inputs = self.saved_outputs = None


def _edge(t: Tensor) -> tuple:
    """Where input `t`'s cotangent goes: (None, 0) if it needs none, (t, -1) for a leaf
    that requires grad, else (its grad_fn, its output index)."""
    if not t._requires_grad:
        return None, 0
    if t._grad_fn is None:
        return t, -1
    return t._grad_fn, t._output_nr


def _rebuilt(target, index: int, data, cell) -> Tensor:
    """A saved input, from its edge, array and version cell: a leaf that requires grad is
    the tensor itself (gradients recorded with create_graph must reach it); any other input
    a new tensor over the same array and cell, with the history it had when recorded."""
    if target is None:
        return wrap_saved(data, cell)
    if index < 0:
        return target
    return wrap_output(data, cell, target, index)


def _saved(tensors: list) -> list:
    """Array, version cell and version of each tensor, flat (OpNode's saved_* layout)."""
    saved = []
    for t in tensors:
        cell = t._version
        saved += (t._data, cell, cell[0])
    return saved


def _run_guarded(vjp, cts, inputs, outs, attrs, stale: dict) -> list:
    previous = dict(STALE)
    STALE.update(stale)
    try:
        return vjp(cts, inputs, outs, attrs)
    except _StaleRead as stale_read:
        raise stale_read.error from None
    finally:
        STALE.clear()
        STALE.update(previous)


def check_cotangents(what: str, cts, shapes) -> None:
    """A rule returning the wrong number or shape of cotangents is a bug in the rule: say so
    here, naming the node, rather than failing later in some unrelated accumulation. `shapes`
    are the inputs' shapes (None where not checked)."""
    if len(cts) != len(shapes):
        raise GradientError(f"{what} returned {len(cts)} gradients for {len(shapes)} inputs")
    for i, (ct, shape) in enumerate(zip(cts, shapes)):
        if ct is not None and shape is not None and ct.shape != shape:
            raise GradientError(
                f"{what} returned a gradient of shape {ct.shape} for input {i} of shape {shape}"
            )


# ---- tensor hooks (Tensor.register_hook) -------------------------------------------------
# A leaf's hooks live on the tensor (`_hooks`), a non-leaf's on its grad_fn (`hooks`, per
# output), as in PyTorch: a hook registered before an in-place change stays with the old
# history. Both slots are left unset until a hook is registered, so that making tensors and
# nodes costs nothing more; HOOKS_ACTIVE counts the hooks registered and not removed, and
# backward looks for hooks only while it is not zero.
HOOKS_ACTIVE = [0]
_next_hook_id = itertools.count().__next__


class RemovableHandle:
    """What register_hook returns: `handle.remove()` unregisters the hook (once)."""

    __slots__ = ("_table", "_id")

    def __init__(self, table: dict, hook_id: int):
        self._table, self._id = table, hook_id

    def remove(self) -> None:
        if self._table.pop(self._id, None) is not None:
            HOOKS_ACTIVE[0] -= 1

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()


def add_hook(table: dict, hook) -> RemovableHandle:
    if not callable(hook):
        raise TypeError(f"register_hook needs a callable, got {type(hook).__name__}")
    hook_id = _next_hook_id()
    table[hook_id] = hook
    HOOKS_ACTIVE[0] += 1
    return RemovableHandle(table, hook_id)


def node_hooks(node: Node, index: int) -> dict:
    """The (mutable) table of hooks on output `index` of `node`."""
    try:
        per_output = node.hooks
    except AttributeError:  # (the slot is unset until the first hook)
        per_output = node.hooks = {}
    return per_output.setdefault(index, {})


def run_hooks(hooks: dict, grad, what: str):
    """Call each hook in registration order; a returned tensor replaces the gradient."""
    for hook in list(hooks.values()):
        result = hook(grad)
        if result is None:
            continue
        if not isinstance(result, Tensor):
            result = wrap(to_array(result, grad.dtype))
        if result.shape != grad.shape:
            raise GradientError(
                f"a hook registered on {what} returned a gradient of shape {result.shape} for "
                f"one of shape {grad.shape}; it must return None or a tensor of the same shape"
            )
        grad = result
    return grad


_NODE_CLASSES: dict[str, type] = {}


def node_class(op_name: str) -> type:
    """The grad_fn class of an op: `reduce_sum` -> ReduceSumBackward (made once per op)."""
    cls = _NODE_CLASSES.get(op_name)
    if cls is None:
        camel = "".join(part.capitalize() for part in op_name.split("_"))
        cls = type(f"{camel}Backward", (OpNode,), {"__slots__": ()})
        _NODE_CLASSES[op_name] = cls
    return cls
