"""Backward over the tape: `backward` accumulates into leaves' `.grad`, `grad` returns.

Nodes run newest first (by creation number, as PyTorch's engine does): a node's inputs come
from older nodes, so every node has all of its outputs' cotangents summed before its VJP rule
runs. During the pass grad mode is `create_graph`: VJP rules are written with the registry's
binders, so with create_graph=True the backward computation is itself recorded and can be
differentiated again.
"""

from __future__ import annotations

from heapq import heappop, heappush
from sys import getrefcount

import numpy as np

from graphjit.errors import GradientError
from graphjit.frontend.eager.anomaly import ANOMALY, check_finite_gradients
from graphjit.frontend.eager.compiled_backward import run_compiled
from graphjit.frontend.eager.grad_mode import _MODE
from graphjit.frontend.eager.node import HOOKS_ACTIVE, edge_target, run_hooks
from graphjit.frontend.eager.tensor import Tensor, bump_version, to_array, wrap
from graphjit.ir.ops import bind


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's `.grad` (PyTorch's
    torch.autograd.backward)."""
    tensors = _as_tuple(tensors)
    roots = _root_cotangents(tensors, grad_tensors)
    keep = create_graph if retain_graph is None else retain_graph
    _BackwardPass(keep, create_graph, captures=None).run(tensors, roots)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, materialize_grads=False) -> tuple:  # fmt: skip
    """d(outputs)/d(inputs), returned instead of accumulated (torch.autograd.grad).

    `outputs` and `inputs` are tensors or sequences of them; `grad_outputs` the cotangents
    of the outputs (None: ones, for one-element outputs). An input the outputs do not depend
    on is an error unless `allow_unused` (then its gradient is None) or `materialize_grads`
    (then zeros). With `create_graph` the gradients are recorded, for higher order; the tape
    is kept when `retain_graph` (default: `create_graph`)."""
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise GradientError(
                f"autograd.grad: input {i} ({_describe(x)}) does not require grad; every "
                "input must be a tensor that requires grad"
            )
    if allow_unused is None:
        allow_unused = materialize_grads
    elif materialize_grads and not allow_unused:
        raise GradientError("autograd.grad: materialize_grads=True needs allow_unused not False")
    captures = {_capture_key(x): i for i, x in enumerate(inputs)}
    keep = create_graph if retain_graph is None else retain_graph
    pass_ = _BackwardPass(keep, create_graph, captures)
    found = pass_.run(outputs, _root_cotangents(outputs, grad_outputs))
    for i, (x, g) in enumerate(zip(inputs, found)):
        if g is None and not allow_unused:
            raise GradientError(
                f"autograd.grad: input {i} ({_describe(x)}) was not used to compute the "
                "outputs; pass allow_unused=True to get None for it, or "
                "materialize_grads=True to get zeros"
            )
    if materialize_grads:
        found = [wrap(np.zeros_like(x._data)) if g is None else g for x, g in zip(inputs, found)]
    return tuple(found)


def _describe(x) -> str:
    if not isinstance(x, Tensor):
        return f"a {type(x).__name__}, not a tensor"
    kind = "a leaf" if x.grad_fn is None else f"the output of {x.grad_fn.name}"
    return f"{kind} of shape {tuple(x.shape)} and dtype {x.dtype.name}"


def _as_tuple(x) -> tuple:
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _capture_key(x: Tensor):
    return id(x) if x.grad_fn is None else (x.grad_fn, x._output_nr)


def _root_cotangents(tensors: tuple, gradients) -> list:
    if gradients is None or isinstance(gradients, Tensor):
        gradients = [gradients] * len(tensors) if gradients is None else [gradients]
    if len(gradients) != len(tensors):
        raise GradientError(f"got {len(gradients)} gradients for {len(tensors)} tensors")
    return [_root_cotangent(t, g) for t, g in zip(tensors, gradients)]


def _root_cotangent(t: Tensor, gradient) -> Tensor:
    if not isinstance(t, Tensor) or not t.requires_grad:
        raise GradientError(
            "backward: the tensor does not require grad and has no grad_fn (no input of the "
            "computation requires grad, or it ran under no_grad)"
        )
    if gradient is None:
        if t._data.size != 1:
            raise GradientError(
                f"backward: a gradient can be created implicitly only for one-element outputs; "
                f"pass gradient= for this output of shape {t.shape}"
            )
        return wrap(np.ones_like(t._data))
    gradient = gradient if isinstance(gradient, Tensor) else wrap(to_array(gradient))
    if gradient.shape != t.shape:
        raise GradientError(f"gradient has shape {gradient.shape}, output has shape {t.shape}")
    if gradient._data.dtype != t._data.dtype:
        gradient = wrap(gradient._data.astype(t._data.dtype))
    return gradient


class _BackwardPass:
    """One backward traversal. With `captures` (grad()), the cotangents of the given inputs
    are collected and no `.grad` is touched; otherwise leaves accumulate."""

    def __init__(self, retain_graph: bool, create_graph: bool, captures: dict | None):
        self.retain_graph, self.create_graph = retain_graph, create_graph
        self.captures = captures
        self.found = [None] * len(captures) if captures is not None else None
        # whether a captured input is a node's output (a non-leaf): keyed (node, index)
        self.captures_outputs = captures is not None and any(type(key) is tuple for key in captures)
        self.buffers: dict = {}  # node -> list of summed cotangents, one per output
        # Nodes with a buffer, newest first: a node's inputs come from older nodes, so by the
        # time a node is popped every cotangent of its outputs has arrived.
        self.ready: list = []
        self.needed = None  # with captures: the nodes from which a captured input is reached
        # Hooked leaves' cotangents, summed until the end of the pass, so that each leaf's
        # hooks see its whole gradient once (PyTorch runs them in AccumulateGrad).
        self.hooks_active = HOOKS_ACTIVE[0] > 0
        self.hooked_leaves: dict = {}  # id(leaf) -> [leaf, summed cotangent]

    def run(self, tensors, root_cts) -> list | None:
        previous = _MODE.enabled
        _MODE.enabled = self.create_graph
        try:
            # (IEEE results without NumPy's floating-point warnings, as compiled code and
            # PyTorch give them: a cotangent g / 0 is inf, not a warning -- or, under
            # `-W error`, an error; one context for the whole pass, ~1 us)
            with np.errstate(all="ignore"):
                if self.plain() and run_compiled(self, tensors, root_cts):
                    return self.found
                for t, ct in zip(tensors, root_cts):
                    if t.grad_fn is None:
                        self.deliver_to_leaf(t, ct)
                    else:
                        self.add_to_buffer(t.grad_fn, t._output_nr, ct)
                if self.captures is not None:
                    self.needed = self.nodes_reaching_captures(list(self.buffers))
                self.drain()
                self.deliver_hooked_leaves()
        finally:
            _MODE.enabled = previous
        return self.found

    def plain(self) -> bool:
        """Whether the pass may run as compiled code (compiled_backward.py), as far as the
        pass itself says: nothing recorded, no hook to call, no gradient at a non-leaf."""
        return not (self.create_graph or self.hooks_active or ANOMALY[0] or self.captures_outputs)

    def nodes_reaching_captures(self, roots: list) -> set:
        """The nodes from which a captured input is reached: one depth-first walk from the
        roots, each node decided when its last edge is done (its targets decided before
        it: the tape has no cycles), and passing a yes on to the node below it.

        The walk's stack is three flat lists, and edges are read from the nodes' slots: it
        makes no object per node, since every object the cycle collector tracks counts
        towards its next collection, which walks the tape's nodes too."""
        captures, captures_outputs = self.captures, self.captures_outputs
        needed, seen = set(), set()
        nodes, positions, reaches = [], [], []  # the stack: node, next edge, reaches so far
        for root in roots:
            if root in seen:  # (reached from an earlier root: decided)
                continue
            seen.add(root)
            nodes.append(root)
            positions.append(0)
            reaches.append(False)
            while nodes:
                node, i = nodes[-1], positions[-1]
                indices = node.edge_indices
                while i < len(indices):
                    target = edge_target(node, i)
                    index = indices[i]
                    i += 1
                    if target is None:
                        continue
                    if index < 0:  # a leaf
                        if id(target) in captures:
                            reaches[-1] = True
                    elif target in needed:
                        reaches[-1] = True
                    elif target not in seen:
                        seen.add(target)
                        positions[-1] = i
                        nodes.append(target)
                        positions.append(0)
                        reaches.append(False)
                        break
                else:
                    nodes.pop()
                    positions.pop()
                    if reaches.pop() or (
                        captures_outputs
                        and any((node, i) in captures for i in range(node.num_outputs))
                    ):
                        needed.add(node)
                        if reaches:
                            reaches[-1] = True
        return needed

    def drain(self) -> None:
        """Run nodes newest first until none is left (the hot loop of backward)."""
        ready, buffers, needed = self.ready, self.buffers, self.needed
        hooks_active, release = self.hooks_active, not self.retain_graph
        captures_outputs = self.captures_outputs
        while ready:
            node = heappop(ready)[1]
            cts = buffers.pop(node)
            if needed is not None and node not in needed:
                continue
            if hooks_active:
                self.run_output_hooks(node, cts)
            if node.retained:
                self.retain(node, cts)
            if captures_outputs:
                self.capture_outputs(node, cts)
            in_cts = node.apply(cts)
            if ANOMALY[0]:
                check_finite_gradients(node, in_cts)
            if release:
                node.release()
            if type(in_cts) is not list:
                in_cts = list(in_cts)
            indices = node.edge_indices
            count = len(indices)
            if count == 1:  # (node.edge_targets, without the property's call)
                targets = (node._target0,)
            elif count == 2:
                targets = (node._target0, node._target1)
            else:
                targets = node.edge_targets
            for i in range(count):  # (not zip: its cached pair would hold on to ct)
                target, ct = targets[i], in_cts[i]
                if target is None or ct is None:
                    continue
                index = indices[i]
                if index < 0:
                    in_cts[i] = None  # (ct is now held by this frame alone, unless shared)
                    # (counted on a line of its own: as an argument beside ct, ct's count
                    # would include its place on the stack)
                    unshared = _ref_counts(ct) == _UNSHARED_COUNTS
                    self.deliver_to_leaf(target, ct, unshared)
                    continue
                buffer = buffers.get(target)  # add_to_buffer, inlined
                if buffer is None:
                    buffer = buffers[target] = [None] * target.num_outputs
                    heappush(ready, (-target.sequence_nr, target))
                buffer[index] = ct if buffer[index] is None else self.sum(buffer[index], ct)

    def add_to_buffer(self, node, index: int, ct: Tensor) -> None:
        buffer = self.buffers.get(node)
        if buffer is None:
            buffer = self.buffers[node] = [None] * node.num_outputs
            heappush(self.ready, (-node.sequence_nr, node))
        buffer[index] = ct if buffer[index] is None else self.sum(buffer[index], ct)

    def sum(self, a: Tensor, b: Tensor) -> Tensor:
        if self.create_graph:
            return bind("add", a, b)
        return wrap(a._data + b._data)

    def run_output_hooks(self, node, cts: list) -> None:
        """The hooks registered on node's outputs (non-leaf tensors) replace their
        cotangents before anything reads them (.grad, captures, the node's VJP)."""
        per_output = getattr(node, "hooks", None)
        for index, hooks in (per_output or {}).items():
            if hooks and cts[index] is not None:
                cts[index] = run_hooks(hooks, cts[index], f"an output of {node.name}")

    def deliver_to_leaf(self, leaf: Tensor, ct: Tensor, unshared: bool = False) -> None:
        """`unshared`: nothing but the engine holds ct or its array (see _calibrate)."""
        if self.hooks_active and getattr(leaf, "_hooks", None):
            if self.captures is None or id(leaf) in self.captures:
                pending = self.hooked_leaves.setdefault(id(leaf), [leaf, None])
                pending[1] = ct if pending[1] is None else self.sum(pending[1], ct)
            return
        self.deliver_summed(leaf, ct, unshared)

    def deliver_hooked_leaves(self) -> None:
        for leaf, ct in self.hooked_leaves.values():
            self.deliver_summed(leaf, run_hooks(leaf._hooks, ct, "a leaf tensor"))

    def deliver_summed(self, leaf: Tensor, ct: Tensor, unshared: bool = False) -> None:
        if self.captures is None:
            accumulate_grad(leaf, ct, self.create_graph, unshared)
            return
        index = self.captures.get(id(leaf))
        if index is not None:
            self.found[index] = ct if self.found[index] is None else self.sum(self.found[index], ct)

    def capture_outputs(self, node, cts: list) -> None:
        for i, ct in enumerate(cts):
            index = self.captures.get((node, i))
            if index is not None and ct is not None:
                self.found[index] = ct

    def retain(self, node, cts: list) -> None:
        for index, ref in node.retained.items():
            tensor = ref()
            if tensor is not None and cts[index] is not None:
                accumulate_grad(tensor, cts[index], self.create_graph)


def accumulate_grad(t: Tensor, ct: Tensor, create_graph: bool, unshared: bool = False) -> None:
    """`t.grad += ct`. Without create_graph the stored gradient is a private detached copy,
    so that accumulating in place never changes a tensor somebody else holds; with it, the
    gradient keeps its history (out-of-place sums).

    The copy is skipped where ct is `unshared` (nobody but the engine holds the tensor or
    its array, as a VJP rule's fresh result usually is): ct's own array is then already
    private, and becomes the gradient. PyTorch's AccumulateGrad steals such a gradient
    too; copying a layer's weight gradient is a full pass over its memory per step."""
    if ct._data.dtype != t._data.dtype:
        ct = bind("cast", ct, dtype=t.dtype.name)
        unshared = True  # (a fresh array, held only here)
    if t._grad is None:
        if create_graph and ct._base is not None:  # a view (of a cotangent somebody holds)
            ct = bind("cast", ct, dtype=ct.dtype.name)  # a copy that stays on the tape
        if create_graph:
            t._grad = ct
        elif unshared and _owns_c_contiguous(ct._data):
            t._grad = wrap(ct._data)
        else:
            t._grad = wrap(ct._data.copy())
    elif create_graph or t._grad._requires_grad:
        t._grad = bind("add", t._grad, ct)
    else:
        t._grad._data += ct._data
        bump_version(t._grad)


def _owns_c_contiguous(array: np.ndarray) -> bool:
    """Whether `array` owns its memory (a view's base may be held elsewhere) and is laid out
    as `.copy()` would make it, writable (the gradient is accumulated into in place)."""
    flags = array.flags
    return array.base is None and flags.c_contiguous and flags.writeable and flags.aligned


def _ref_counts(ct: Tensor) -> tuple:
    """How many references ct and its array have, as `drain` sees them."""
    return getrefcount(ct), getrefcount(ct._data)


def _calibrate() -> tuple:
    """What _ref_counts gives for a tensor held by one local variable of its caller alone,
    its array by the tensor alone. Measured, as it depends on the interpreter (how it passes
    arguments), and called exactly as `drain` calls it: `drain` finds more (a hook, a
    custom Function's ctx, a list, the tape, a view or another tensor over the same array
    holding on to it) or the same, and only the same means no user code can see ct."""
    ct = wrap(np.empty(1))
    return _ref_counts(ct)


_UNSHARED_COUNTS = _calibrate()
