"""A composite's forward and backward as two programs from one trace of both (AOTAutograd's
partition, in small): the forward also returns the values the backward reads that would
cost a product or a reduction to make again, and the backward reads those instead of
computing the forward a second time.

Why: gj.function's gradient replays the whole forward inside its backward program (its VJP
is a traced function of the forward and its gradients). For attention that is both
products and the softmax again: eager causal attention over a transformer's heads
(16x4x128x32, views of one projection), forward and backward, 4.7-6.3 ms; split, 4.0-4.3.

What is made again rather than kept (`_MadeAgain`): elementwise values, constants, views
and broadcasts made from the composite's inputs (kept anyway) or from smaller values (row
statistics): the backward's fused kernels compute them from values they read anyway, where
keeping them would cost a pass over memory to write and one to read (GELU keeps its input
alone, layer norm its input and row statistics). A value made from one as large that is
kept (a product's result) is kept itself: attention keeps its softmax, not its scores.
Everything else the backward reads (products, reductions) is kept, one array each: no
more than the eager ops would keep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from graphjit.frontend.gradients import gradients
from graphjit.frontend.graph import Graph, placeholder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Value
from graphjit.ir.ops import BROADCAST, CONSTANT, FEED, INDEX_MAP, STATE, STATE_UPDATE, VIEW
from graphjit.runtime.session import Session

_MADE_AGAIN = (CONSTANT, VIEW, BROADCAST, INDEX_MAP)


@dataclass
class Split:
    """`forward(*inputs)` -> outputs, then the kept values (arrays); `backward(*kept,
    *cotangents)` -> the gradient of each input in `wanted` (one per index), where `kept`
    are the inputs at `kept_inputs` (indices into the inputs) followed by forward's kept
    values, in order."""

    forward: object
    backward: object
    outputs: int
    kept_inputs: list
    programs: tuple  # ((session, fetches, feeds) of the forward, of the backward): to inspect


def split(fn, arguments: dict, tensors: dict, wanted: list) -> Split | None:
    """Trace `fn(**arguments)` with each argument named in `tensors` ({name: (dtype,
    shape)}) a placeholder, differentiate its outputs with respect to the `wanted` ones,
    and split the two; None where it cannot (an output that is not a float tensor, control
    flow or state in the trace, an input nothing depends on)."""
    graph = Graph()
    with graph.as_default():
        inputs = {name: placeholder(dtype, shape=shape) for name, (dtype, shape) in tensors.items()}
        result = fn(**{**arguments, **inputs})
        outputs = list(result) if isinstance(result, tuple) else [result]
        if not all(isinstance(y, Value) and y.dtype.is_floating for y in outputs):
            return None
        cotangents = [placeholder(y.dtype, shape=y.shape) for y in outputs]
        grads = gradients(outputs, [inputs[name] for name in wanted], cotangents)
    if any(g is None for g in grads) or any(_not_pure(op) for op in graph.block.ops):
        return None
    placeholders = list(inputs.values())
    backward_ops, kept = _partition(graph.block.ops, cotangents, grads, placeholders)
    kept_inputs = [placeholders.index(v) for v in kept if v in placeholders]
    kept_values = [v for v in kept if v not in placeholders]
    forward = (_session(graph), outputs + kept_values, placeholders)
    backward = _backward_program(backward_ops, kept_inputs, placeholders, kept_values,
                                 cotangents, grads)  # fmt: skip
    return Split(
        forward[0].make_callable(*forward[1:]),
        backward[0].make_callable(*backward[1:]),
        len(outputs),
        kept_inputs,
        (forward, backward),
    )


def _not_pure(op) -> bool:
    """Control flow (regions: their values are not split here) or state."""
    return bool(op.regions) or op.opdef.has(STATE) or op.opdef.has(STATE_UPDATE)


def _partition(ops: list, cotangents: list, grads: list, inputs: list) -> tuple[list, list]:
    """(the ops the backward program runs, in order; the forward values it reads, kept).
    An op is the backward's if it reads a cotangent, or if the backward reads its result
    and `_MadeAgain` says so; any other value the backward reads is kept. Walks from the
    gradients, so nothing they do not need is run."""
    tangent = set(cotangents)
    for op in ops:
        if any(v in tangent for v in op.operands):
            tangent.update(op.results)
    cheap = _MadeAgain(set(inputs))
    run, kept, seen = set(), {}, set(cotangents)  # (cotangents: fed to the backward)
    stack = list(grads)
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in tangent or cheap(v):
            run.add(v.op)
            stack.extend(v.op.operands)
        else:
            kept[v] = None
    return [op for op in ops if op in run], list(kept)


class _MadeAgain:
    """Whether the backward computes forward value v again rather than reading it kept:
    v is elementwise (or a constant, a view, a broadcast), and so is everything it is made
    from, down to the composite's inputs (kept anyway) and values smaller than v (kept,
    cheaply). A value made from one as large that the forward computed otherwise (a
    product, a reduction over nothing) is kept itself: making it again would read that
    one, kept, as large, and write it again (attention's softmax, made of its scores)."""

    def __init__(self, inputs: set):
        self.inputs, self.known = inputs, {}

    def __call__(self, v: Value) -> bool:
        answer = self.known.get(v)
        if answer is None:
            answer = self.known[v] = _is_cheap(v.op) and all(
                self._from_small_or_input(u, _elements(v)) for u in v.op.operands
            )
        return answer

    def _from_small_or_input(self, u: Value, elements: float) -> bool:
        if u in self.inputs or _elements(u) < elements:
            return True
        return self(u)


def _is_cheap(op) -> bool:
    opdef = op.opdef
    if opdef.has(FEED):
        return False
    return opdef.elementwise or any(opdef.has(trait) for trait in _MADE_AGAIN)


def _elements(v: Value) -> float:
    """v's element count; infinite where a dimension is unknown."""
    shape = v.type.shape
    if shape is None or None in shape:
        return math.inf
    return math.prod(shape)


def _backward_program(ops, kept_inputs, placeholders, kept_values, cotangents, grads):
    """(session, fetches, feeds) of (the kept inputs, the kept values, the cotangents) ->
    the gradients: a graph of the backward's ops reading placeholders where they read kept
    values."""
    graph = Graph()
    vmap = {}
    with graph.as_default():
        fed = [placeholders[i] for i in kept_inputs] + kept_values + cotangents
        feeds = [placeholder(v.dtype, shape=v.shape) for v in fed]
        vmap.update(zip(fed, feeds))
        for op in ops:
            clone_op(op, vmap, graph.block)
    return _session(graph), [vmap[g] for g in grads], feeds


def _session(graph: Graph) -> Session:
    """As eager_compiled's programs: subnormals kept, no working memory held between runs."""
    return Session(graph, flush_denormals=False, dynamic=False, held_buffer_bytes=0)
