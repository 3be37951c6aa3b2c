"""Backward over the tape: `backward` accumulates into leaves' `.grad`, `grad` returns.

Nodes run newest first (by creation number, as PyTorch's engine does): a node's inputs come
from older nodes, so every node has all of its outputs' cotangents summed before its VJP rule
runs. During the pass grad mode is `create_graph`: VJP rules are written with the registry's
binders, so with create_graph=True the backward computation is itself recorded and can be
differentiated again.
"""

from __future__ import annotations

from heapq import heappop, heappush

import numpy as np

from graphjit.errors import GradientError
from graphjit.frontend.eager.anomaly import ANOMALY, check_finite_gradients
from graphjit.frontend.eager.grad_mode import is_grad_enabled, set_grad_enabled
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
         allow_unused=False) -> tuple:  # fmt: skip
    """d(outputs)/d(inputs), returned instead of accumulated (torch.autograd.grad)."""
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    for x in inputs:
        if not isinstance(x, Tensor) or not x._requires_grad:
            raise GradientError("autograd.grad: every input must be a tensor that requires grad")
    captures = {_capture_key(x): i for i, x in enumerate(inputs)}
    keep = create_graph if retain_graph is None else retain_graph
    pass_ = _BackwardPass(keep, create_graph, captures)
    found = pass_.run(outputs, _root_cotangents(outputs, grad_outputs))
    if not allow_unused and any(g is None for g in found):
        raise GradientError(
            "autograd.grad: an input was not used to compute the outputs; pass "
            "allow_unused=True to get None for it"
        )
    return tuple(found)


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


def post_order(start_nodes) -> list:
    """Nodes reachable from `start_nodes`, each after every node it sends cotangents to."""
    order, seen = [], set()
    for start in start_nodes:
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(start.edges))]
        while stack:
            node, edges = stack[-1]
            for edge in edges:
                if edge is not None and edge[1] >= 0 and edge[0] not in seen:
                    seen.add(edge[0])
                    stack.append((edge[0], iter(edge[0].edges)))
                    break
            else:
                order.append(node)
                stack.pop()
    return order


class _BackwardPass:
    """One backward traversal. With `captures` (grad()), the cotangents of the given inputs
    are collected and no `.grad` is touched; otherwise leaves accumulate."""

    def __init__(self, retain_graph: bool, create_graph: bool, captures: dict | None):
        self.retain_graph, self.create_graph = retain_graph, create_graph
        self.captures = captures
        self.found = [None] * len(captures) if captures is not None else None
        self.buffers: dict = {}  # node -> list of summed cotangents, one per output
        # Nodes with a buffer, newest first: a node's inputs come from older nodes, so by the
        # time a node is popped every cotangent of its outputs has arrived.
        self.ready: list = []
        self.needed = None  # with captures: the nodes from which a captured input is reached

    def run(self, tensors, root_cts) -> list | None:
        previous = is_grad_enabled()
        set_grad_enabled(self.create_graph)
        try:
            for t, ct in zip(tensors, root_cts):
                if t.grad_fn is None:
                    self.deliver_to_leaf(t, ct)
                else:
                    self.add_to_buffer(t.grad_fn, t._output_nr, ct)
            if self.captures is not None:
                self.needed = self.nodes_reaching_captures(post_order(list(self.buffers)))
            self.drain()
        finally:
            set_grad_enabled(previous)
        return self.found

    def nodes_reaching_captures(self, order: list) -> set:
        needed: set = set()
        for node in order:  # children first, so `needed` is complete for each node's edges
            if self.reaches_capture(node, needed):
                needed.add(node)
        return needed

    def reaches_capture(self, node, needed: set) -> bool:
        if any((node, i) in self.captures for i in range(node.num_outputs)):
            return True
        for edge in node.edges:
            if edge is not None:
                target, index = edge
                if (target in needed) if index >= 0 else (id(target) in self.captures):
                    return True
        return False

    def drain(self) -> None:
        """Run nodes newest first until none is left (the hot loop of backward)."""
        ready, buffers, needed = self.ready, self.buffers, self.needed
        while ready:
            node = heappop(ready)[1]
            cts = buffers.pop(node)
            if needed is not None and node not in needed:
                continue
            if node.retained:
                self.retain(node, cts)
            if self.captures is not None:
                self.capture_outputs(node, cts)
            in_cts = node.apply(cts)
            if ANOMALY[0]:
                check_finite_gradients(node, in_cts)
            if not self.retain_graph:
                node.release()
            for edge, ct in zip(node.edges, in_cts):
                if edge is None or ct is None:
                    continue
                target, index = edge
                if index < 0:
                    self.deliver_to_leaf(target, ct)
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

    def deliver_to_leaf(self, leaf: Tensor, ct: Tensor) -> None:
        if self.captures is None:
            accumulate_grad(leaf, ct, self.create_graph)
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


def accumulate_grad(t: Tensor, ct: Tensor, create_graph: bool) -> None:
    """`t.grad += ct`. Without create_graph the stored gradient is a private detached copy,
    so that accumulating in place never changes a tensor somebody else holds; with it, the
    gradient keeps its history (out-of-place sums)."""
    if ct._data.dtype != t._data.dtype:
        ct = bind("cast", ct, dtype=t.dtype.name)
    if t._grad is None:
        if create_graph and ct._base is not None:  # a view (of a cotangent somebody holds)
            ct = bind("cast", ct, dtype=ct.dtype.name)  # a copy that stays on the tape
        t._grad = ct if create_graph else wrap(ct._data.copy())
    elif create_graph or t._grad._requires_grad:
        t._grad = bind("add", t._grad, ct)
    else:
        t._grad._data += ct._data
        bump_version(t._grad)
