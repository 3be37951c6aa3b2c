"""A forward graph's backward as a program of its own (AOTAutograd's partition, in
small): the gradient ops are added to the graph, the forward also returns the values the
backward reads that would cost a product or a reduction to make again, and the backward
reads those instead of computing the forward a second time. Used by gj.function's tape
node (tracing.py) and eager mode's compiled composites (eager_compiled.py).

Why: gj.function's gradient replayed the whole forward inside its backward program (its
VJP is a traced function of the forward and its gradients): a compiled model trained
eagerly ran its forward twice a step (MLP 1024x1024x1024x10, batch 128: 6.4-6.6 ms a
step; split, 5.0-5.2). For attention that is both products and the softmax again: eager
causal attention over a transformer's heads (16x4x128x32, views of one projection),
forward and backward, 4.7-6.3 ms; split, 4.0-4.3.

What is made again rather than kept (`_MadeAgain`): elementwise values, constants, views
and broadcasts made from the sources (inputs and parameters, kept anyway) or from smaller
values (row statistics): the backward's fused kernels compute them from values they read
anyway, where keeping them would cost a pass over memory to write and one to read (GELU
keeps its input alone, layer norm its input and row statistics). A value made from one as
large that is kept (a product's result) is kept itself: attention keeps its softmax, not
its scores. Everything else the backward reads (products, reductions) is kept, one array
each: no more than the eager ops would keep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from graphjit.frontend.gradients import gradients
from graphjit.frontend.graph import Graph, placeholder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Value
from graphjit.ir.ops import BROADCAST, CONSTANT, FEED, INDEX_MAP, STATE_UPDATE, VIEW
from graphjit.ir.types import TensorType
from graphjit.runtime.session import Session

_MADE_AGAIN = (CONSTANT, VIEW, BROADCAST, INDEX_MAP)


@dataclass
class Split:
    """The backward half of a forward graph: `kept_sources` (indices into the sources) and
    `kept_values` (forward values, to fetch beside the outputs) are what it reads;
    `backward(*kept sources, *kept values, *cotangents of the float outputs)` -> the
    gradient of each x, None where no output depends on it. `forward`, where the split made
    it: `forward(*sources)` -> the outputs, then the kept values."""

    kept_sources: list
    kept_values: list
    backward: object
    forward: object = None
    programs: tuple = ()  # (session, fetches, feeds) of each program made here: to inspect


def split(graph: Graph, sources: list, outputs: list, xs: list, **session_options):
    """The backward of `outputs` (values of `graph`, computed from `sources`: its
    placeholders and Variables' values) with respect to `xs` (some of the sources), as a
    program of its own that reads what `_partition` keeps. Adds the cotangents'
    placeholders and the gradient ops to `graph` (as tf.gradients does). None where the
    graph has control flow or assigns (the caller differentiates the way it did)."""
    if any(_not_pure(op) for op in graph.block.ops):
        return None
    floats = [y for y in outputs if y.dtype.is_floating]
    with graph.as_default():
        cotangents = [placeholder(y.dtype, shape=y.type.shape) for y in floats]
        grads = gradients(floats, xs, cotangents) if floats else [None] * len(xs)
    found = [g for g in grads if g is not None]
    backward_ops, kept = _partition(graph.block.ops, cotangents, found, sources)
    kept_sources = [sources.index(v) for v in kept if v in sources]
    kept_values = [v for v in kept if v not in sources]
    fed = [sources[i] for i in kept_sources] + kept_values + cotangents
    program = _backward_program(backward_ops, fed, found, session_options)
    run = program[0].make_callable(*program[1:])

    def backward(*arrays):
        it = iter(run(*arrays) if found else ())
        return [None if g is None else next(it) for g in grads]

    return Split(kept_sources, kept_values, backward, programs=(program,))


def split_composite(fn, arguments: dict, tensors: dict, wanted: list) -> Split | None:
    """`split` for a composite: `fn(**arguments)` traced with each argument named in
    `tensors` ({name: (dtype, shape)}) a placeholder, differentiated with respect to the
    `wanted` ones, with a forward program made too. None where it cannot be (an output
    that is not a float tensor, control flow)."""
    graph = Graph()
    with graph.as_default():
        inputs = {name: placeholder(dtype, shape=shape) for name, (dtype, shape) in tensors.items()}
        result = fn(**{**arguments, **inputs})
    outputs = list(result) if isinstance(result, tuple) else [result]
    if not all(isinstance(y, Value) and y.dtype.is_floating for y in outputs):
        return None
    sources = list(inputs.values())
    found = split(graph, sources, outputs, [inputs[name] for name in wanted], **_EAGER)
    if found is None:
        return None
    forward = (Session(graph, **_EAGER), outputs + found.kept_values, sources)
    found.forward = forward[0].make_callable(*forward[1:])
    found.programs = (forward, *found.programs)
    return found


# As eager_compiled's programs: subnormals kept, no working memory held between runs.
_EAGER = {"flush_denormals": False, "dynamic": False, "held_buffer_bytes": 0}


def _not_pure(op) -> bool:
    """Control flow (regions: their values are not split here), an assign, or a value that
    is not a tensor (a tensor list): what this split leaves to the traced VJP."""
    if op.regions or op.opdef.has(STATE_UPDATE):
        return True
    return any(not isinstance(v.type, TensorType) for v in op.results)


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
    from, down to the sources (inputs and parameters: kept anyway) and values smaller than
    v (kept, cheaply). A value made from one as large that the forward computed otherwise
    (a product) is kept itself: making it again would read that one, kept, as large, and
    write it again (attention's softmax, made of its scores)."""

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


def _backward_program(ops, fed: list, grads: list, session_options: dict) -> tuple:
    """(session, fetches, feeds) of the backward: a graph of its ops, each value of `fed`
    a placeholder."""
    graph = Graph()
    with graph.as_default():
        feeds = [placeholder(v.dtype, shape=v.type.shape) for v in fed]
        vmap = dict(zip(fed, feeds))
        for op in ops:
            clone_op(op, vmap, graph.block)
    return Session(graph, **session_options), [vmap[g] for g in grads], feeds
