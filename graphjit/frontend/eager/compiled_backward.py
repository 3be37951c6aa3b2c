"""Backward over a tape as compiled code, once the tape's shape is hot (PyTorch's compiled
autograd, made automatic as eager mode's other compiled paths are: eager_compiled.py).

A training loop records a tape of the same shape every step: the same ops on arrays of the
same shapes, wired the same way. The engine (engine.py) runs its VJP rules one node at a
time, each a few eager ops of Python (a matmul's node ~8 us, an add's ~5): an RNN's
backward through 100 steps, 500 nodes of 16 x 64 arrays, took 3.9-4.5 ms where PyTorch's
C++ engine takes 2.1-2.4. The VJP rules are the registry's, written with its binders, so
the same rules applied to graph values build the whole backward pass as one graph, which
the llvm backend compiles into one program: that RNN's backward then takes 1.3 ms, 0.4 of
them the program and 0.8 the Python that reads the tape to find the arrays to feed.

The tape's *signature* says everything the program depends on: each node's op, attributes,
edges (to which node's output or which leaf), what it saved (shapes, dtypes, and which
saved arrays are one array), the roots' cotangents' shapes, and which leaves are captured
(`autograd.grad`). It is counted as the other eager signatures are (HOT_CALLS eager runs
first: a tape run once never waits for a compile) and the program is kept per signature.
The program takes every distinct saved array and the roots' cotangents, and returns the
leaves' gradients; the engine's own bookkeeping follows: `.grad` accumulated (or the
captured gradients returned), and the nodes the eager pass would have run released.

Only plain tapes take this path; anything else runs the engine as before, so every error
and every hook is the eager one: create_graph, hooks, anomaly detection, retain_grad on a
non-leaf, a gradient captured at a non-leaf, custom Functions and compiled composites on
the tape, a saved tensor changed in place since it was saved (the engine decides whether
the rule may still run), a freed tape, tapes of fewer than MIN_NODES nodes or more than MAX_NODES,
a pass whose newest MIN_NODES nodes were recorded before the last pass (a retained tape
run again), and any signature whose program could not be built or failed to run. Gradients are the eager ones up to rounding
(the llvm backend is tested against the interpreter op by op; sums of cotangents are made
in the engine's order)."""

from __future__ import annotations

from graphjit import config
from graphjit.errors import ConfigError
from graphjit.frontend.eager.node import OpNode, edge_target, next_sequence_nr
from graphjit.frontend.eager.tensor import MUTATIONS, wrap
from graphjit.frontend.eager_compiled import _RAISED, _UNUSABLE, SIGNATURES, _hot
from graphjit.ir.types import BY_NP

# Tapes of MIN_NODES to MAX_NODES nodes (MIN_NODES of them reached from the first root).
# Reading a tape and calling its program cost ~30 us and ~2 us a node, the engine 3.5-6.5
# us a node (tanh(x * 0.9) repeated on 64 floats: 9 nodes 44 -> 47 us, 13 nodes 59 -> 54,
# 25 nodes 98 -> 77); above, the compile takes seconds (2000 nodes ~1 s, 6000 ~4.4 s).
MIN_NODES = 12
MAX_NODES = 4096
# A sequence number (node.next_sequence_nr) taken at the last backward pass: a root newer
# by fewer than MIN_NODES was recorded with fewer new nodes than that (a training step's
# small tape), so its pass is the engine's without a look at the tape.
_MARK = [0]


def run_compiled(pass_, tensors, root_cts) -> bool:
    """Run backward pass `pass_` (engine._BackwardPass: its captures, retain_graph) from
    `tensors` with cotangents `root_cts` as compiled code, if its tape is plain and hot:
    True when done (leaves' .grad accumulated, or pass_.found filled), False when the
    engine must run it."""
    # (the usual refusals first, and cheaply: a few nodes recorded since the last pass)
    mark, _MARK[0] = _MARK[0], next_sequence_nr()
    root = tensors[0]._grad_fn
    if root is None or root.sequence_nr - mark < MIN_NODES or not _large(root):
        return False
    tape = _Tape.read(tensors, root_cts, pass_.captures)
    if tape is None:
        return False
    compiled = _hot(tape.key, lambda: _Program.build(tape, pass_))
    if compiled is None:
        return False
    try:
        gradients = compiled.run(tape.arrays)
    except _RAISED:
        raise
    except Exception:  # (the engine gives the gradients, or the error)
        SIGNATURES.store(tape.key, _UNUSABLE)
        return False
    compiled.deliver(tape, gradients, pass_)
    return True


class _Tape:
    """What one backward pass reads of a tape: its nodes newest first (the engine's
    order), the signature, the arrays to feed (each distinct saved array once, then the
    roots' cotangents), and the leaves in order of first use."""

    __slots__ = ("nodes", "key", "arrays", "leaves", "roots", "root_outputs")

    @classmethod
    def read(cls, tensors, root_cts, captures) -> _Tape | None:
        roots = [t._grad_fn for t in tensors]
        nodes = _reachable(roots)
        if nodes is None or len(nodes) < MIN_NODES or not config.eager_compile():
            return None
        tape = cls()
        tape.nodes, tape.roots = nodes, roots
        tape.root_outputs = [t._output_nr for t in tensors]
        if not tape._sign(tensors, root_cts, captures):
            return None
        return tape

    def _sign(self, tensors, root_cts, captures) -> bool:
        """Set key, arrays and leaves; False where a saved array cannot be fed.

        The key is flat (one tuple of small parts: ~1 us a node, the hot loop of this
        path) and says how many parts follow wherever a count varies (nodes, edges, saved
        arrays, roots), so that two tapes never give one key: per node its op, attributes,
        outputs, edges (None, a leaf as -1 - its number, or (node's position, output)),
        then its saved inputs and outputs, each an array's number, after (shape, dtype) the
        first time it appears; the inputs' shapes where it saved none of them."""
        nodes = self.nodes
        position = {node: i for i, node in enumerate(nodes)}
        arrays, array_index, leaves, leaf_index = [], {}, [], {}
        key = [_Tape, len(nodes)]  # (apart from eager_compiled's ops' and composites')
        add = key.append
        for node in nodes:
            attrs = node.attrs
            add(node.opdef)
            add(tuple(attrs.items()) if attrs else ())
            add(node.num_outputs)
            indices = node.edge_indices
            count = len(indices)
            add(count)
            if count == 1:
                targets = (node._target0,)
            elif count == 2:
                targets = (node._target0, node._target1)
            else:
                targets = node.edge_targets
            for target, index in zip(targets, indices):
                if target is None:
                    add(None)
                elif index < 0:
                    k = leaf_index.get(id(target))
                    if k is None:
                        k = leaf_index[id(target)] = len(leaves)
                        leaves.append(target)
                    add(-1 - k)
                else:
                    add((position[target], index))
            saved = node.saved_inputs
            if saved:
                if not _sign_arrays(saved, add, arrays, array_index):
                    return False
            else:
                add(0)
                add(node.input_shapes)
            saved = node.saved_outputs
            if not saved:
                add(0)
            elif not _sign_arrays(saved, add, arrays, array_index):
                return False
        add(len(tensors))
        for t, ct in zip(tensors, root_cts):
            array = ct._data
            arrays.append(array)
            add((position[t._grad_fn], t._output_nr, array.shape, array.dtype.char))
        add(None if captures is None else tuple(captures.get(id(leaf)) for leaf in leaves))
        self.key, self.arrays, self.leaves = tuple(key), arrays, leaves
        try:
            hash(self.key)
        except TypeError:  # (an attribute given as a list)
            return False
        return True


def _sign_arrays(saved: tuple, add, arrays: list, array_index: dict) -> bool:
    """_Tape._sign's part for a node's saved arrays (OpNode's flat layout: array, version
    cell, version): how many, then each one's number, after its (shape, dtype) the first
    time; False for an array of a dtype no program takes."""
    add(len(saved))
    for j in range(0, len(saved), 3):
        array = saved[j]
        k = array_index.get(id(array))
        if k is None:
            if array.dtype not in BY_NP:
                return False
            k = array_index[id(array)] = len(arrays)
            arrays.append(array)
            add((array.shape, array.dtype.char))
        add(k)
    return True


def _large(node) -> bool:
    """Whether MIN_NODES nodes are reached from `node` (a leaf's None: no), a node reached
    on two paths counted twice (`x * x`'s once): the test a small tape fails without
    reading all of it (reading it added 15% to an engine's pass of two nodes; this, ~3%)."""
    stack, count = [node], 0
    while stack:
        node = stack.pop()
        if not isinstance(node, OpNode):
            return False
        count += 1
        if count >= MIN_NODES:
            return True
        indices = node.edge_indices  # (edges read from the slots, as the engine's drain)
        if node._target0 is not None and indices[0] >= 0:
            stack.append(node._target0)
        if len(indices) > 1:
            second = node._target1
            if second is not None and indices[1] >= 0 and second is not node._target0:
                stack.append(second)
            if len(indices) > 2:
                more = zip(node._more_targets, indices[2:])
                stack += [t for t, i in more if t is not None and i >= 0]
    return False


def _reachable(roots: list) -> list | None:
    """The nodes reached from the roots, newest first; None if there are more than
    MAX_NODES or one is not plain: not a registry op's node, freed, retaining a gradient,
    or holding a tensor changed in place since it was saved (the engine then decides
    whether its rule may run)."""
    epoch = MUTATIONS[0]
    seen, stack = set(roots), list(roots)
    while stack:
        node = stack.pop()
        if (
            not isinstance(node, OpNode)
            or node.saved_inputs is None
            or node.retained
            or (node.epoch != epoch and _changed_since(node))
        ):
            return None
        indices = node.edge_indices
        for i in range(len(indices)):
            target = edge_target(node, i)
            if target is not None and indices[i] >= 0 and target not in seen:
                seen.add(target)
                stack.append(target)
        if len(seen) > MAX_NODES:
            return None
    nodes = list(seen)
    nodes.sort(key=_newest_first)
    return nodes


def _changed_since(node) -> bool:
    """Whether a tensor the node saved changed since (made only for a node recorded before
    some in-place op or `.data` assignment: a BatchNorm's running statistics, updated in
    every training step's forward, would otherwise keep each tape from this path): in
    place (the engine's test: its version), or a leaf given a new array by `.data = `
    (the engine's rule reads a leaf input's array as it is now, the program the saved)."""
    saved = node.saved_inputs
    for kept in (saved, node.saved_outputs):
        for j in range(0, len(kept), 3):
            if kept[j + 1][0] != kept[j + 2]:  # (its version cell against its version)
                return True
    for j, index in enumerate(node.edge_indices):
        if index < 0 and saved and saved[3 * j] is not edge_target(node, j)._data:
            return True
    return False


def _newest_first(node) -> int:
    return -node.sequence_nr


class _Program:
    """One signature's compiled backward: a callable of the tape's arrays returning the
    gradients of `leaves_out` (positions in the tape's leaves), and the positions of the
    nodes the engine would have run (to release them as it would)."""

    def __init__(self, call, fed: list, leaves_out: list, ran: list):
        self.call, self.fed, self.leaves_out, self.ran = call, fed, leaves_out, ran

    @classmethod
    def build(cls, tape: _Tape, pass_):
        """The program for `tape`'s signature (compiled at its first run), or _UNUSABLE
        where a VJP rule cannot build it in a graph."""
        from graphjit.frontend.graph import Graph, placeholder
        from graphjit.runtime.session import Session

        graph = Graph()
        try:
            with graph.as_default():
                feeds = [placeholder(BY_NP[a.dtype], shape=a.shape) for a in tape.arrays]
                gradients, ran = _trace(tape, feeds, pass_)
            leaves_out = [k for k, g in enumerate(gradients) if g is not None]
            fetches = [gradients[k] for k in leaves_out]
            fed = _read_by(fetches, feeds)
            session = Session(graph, flush_denormals=False, dynamic=False, held_buffer_bytes=0)
            call = session.make_callable(fetches, [feeds[i] for i in fed])
        except ConfigError:
            raise
        except Exception:
            return _UNUSABLE
        return cls(call, fed, leaves_out, ran)

    def run(self, arrays: list) -> list:
        return self.call(*[arrays[i] for i in self.fed])

    def deliver(self, tape: _Tape, gradients: list, pass_) -> None:
        """The engine's bookkeeping after its drain: the gradients to the leaves (or to
        pass_.found), and the nodes that ran released unless the graph is retained."""
        leaves = tape.leaves
        for k, array in zip(self.leaves_out, gradients):
            # (each output is a fresh array of its own: the leaf's .grad may be it)
            pass_.deliver_summed(leaves[k], wrap(array), True)
        if not pass_.retain_graph:
            nodes = tape.nodes
            for i in self.ran:
                nodes[i].release()


def _trace(tape: _Tape, feeds: list, pass_) -> tuple:
    """The backward pass over the tape's nodes as graph values, as the engine's drain runs
    it: (each leaf's summed gradient or None, the positions of the nodes that ran)."""
    from graphjit.frontend.eager.node import check_cotangents
    from graphjit.ir.ops import P

    nodes = tape.nodes
    fed = {id(a): v for a, v in zip(tape.arrays, feeds)}  # (saved arrays: one value each)
    buffers = {}
    root_cts = feeds[len(feeds) - len(tape.roots) :]
    for node, index, ct in zip(tape.roots, tape.root_outputs, root_cts):
        buffer = buffers.setdefault(node, [None] * node.num_outputs)
        buffer[index] = ct if buffer[index] is None else P.add(buffer[index], ct)
    needed = None if pass_.captures is None else pass_.nodes_reaching_captures(tape.roots)
    gradients, leaf_index = [None] * len(tape.leaves), {id(x): k for k, x in enumerate(tape.leaves)}
    ran = []
    for i, node in enumerate(nodes):
        cts = buffers.pop(node, None)
        if cts is None or (needed is not None and node not in needed):
            continue
        ran.append(i)
        saved, kept = node.saved_inputs, node.saved_outputs
        inputs = [fed[id(saved[j])] for j in range(0, len(saved), 3)]
        outputs = [fed[id(kept[j])] for j in range(0, len(kept), 3)]
        in_cts = node.opdef.vjp(
            cts,
            inputs or [None] * len(node.edge_indices),
            outputs or [None] * node.num_outputs,
            node.attrs,
        )
        shapes = [v.type.shape for v in inputs] if inputs else _input_shapes(node)
        check_cotangents(node.name, in_cts, shapes)
        for target, index, ct in zip(node.edge_targets, node.edge_indices, in_cts):
            if target is None or ct is None:
                continue
            if index < 0:
                k = leaf_index[id(target)]
                gradients[k] = ct if gradients[k] is None else P.add(gradients[k], ct)
                continue
            buffer = buffers.setdefault(target, [None] * target.num_outputs)
            buffer[index] = ct if buffer[index] is None else P.add(buffer[index], ct)
    return gradients, ran


def _read_by(fetches: list, feeds: list) -> list:
    """The positions of the feeds that the fetches are computed from. Most saved arrays
    are read for their shapes alone (an add's operands, to sum a broadcast cotangent), and
    feeding each costs the call a check."""
    position = {id(v): i for i, v in enumerate(feeds)}
    used, seen, stack = set(), set(), list(fetches)
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if id(value) in position:
            used.add(position[id(value)])
        op = value.op
        if op is not None:
            stack += op.operands
            for region in op.regions:  # (values a region reads from outside it)
                for inner in region.walk():
                    stack += inner.operands
    return sorted(used)


def _input_shapes(node) -> list:
    """The inputs' shapes a node without saved inputs kept (OpNode.input_shapes)."""
    shapes = node.input_shapes
    return [shapes] if len(node.edge_indices) == 1 else list(shapes)
