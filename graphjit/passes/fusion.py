"""fusion: elementwise ops, broadcasts and reductions with their elementwise producers
become one `fused` region op: one loop nest, no temporaries between its ops.

Groups form in program order: an op joins its operands' groups when their iteration
shape is its own and nothing outside them has read their values yet, so no work is ever
duplicated; a reduction is the last op of its group. Scalar constants are copied into
the regions that use them. Matmul, shape ops and control flow stay outside (matmul goes to
BLAS); every elementwise or reduction op ends up inside some `fused` op, so code
generators only meet those ops inside kernels.

A group holds at most MAX_KERNEL_OPS ops: a longer chain becomes several kernels, one
intermediate buffer between each two. LLVM's optimisation and code generation grow
faster than linearly in the size of a loop body (one basic block per kernel), so one
kernel of thousands of ops took seconds to compile (issue 18); an extra buffer costs a
pass over memory, which a kernel of that many ops per element hides."""

from __future__ import annotations

from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Block, Function, Operation, Region, Value, captured_values
from graphjit.ir.ops import CONSTANT, INDEX_MAP, KERNEL, REDUCTION
from graphjit.ir.types import TensorType
from graphjit.passes.manager import Pass

# The most ops one kernel may hold, chosen by measurement (LLVM 22, AVX-512, float32; the
# bench workload compile_scaling): O3 and code generation cost about 2 ms per op of an
# add/mul/tanh mix up to ~300 ops in one kernel, then grow (7 ms per op at 1000); all tanh
# on a tensor large enough to be split over threads (loop bounds unknown: LLVM emits the
# body three times, vector, vector epilogue and scalar) grows past ~50-100. A 3000-op
# chain compiled fastest with 128 (5.5 s of LLVM; 64: 5.9 s, 256: 6.4 s, 512: 8.7 s).
MAX_KERNEL_OPS = 128


def fusible(op: Operation) -> bool:
    if any(not isinstance(r.type, TensorType) for r in op.results + op.operands):
        return False
    opdef = op.opdef
    return opdef.elementwise or opdef.has(REDUCTION) or opdef.has(INDEX_MAP)


def _iteration_shape(op: Operation) -> tuple:
    return op.operands[0].type.shape if op.opdef.has(REDUCTION) else op.result.type.shape


def _is_inlinable_constant(v: Value) -> bool:
    return v.op is not None and v.op.opdef.has(CONSTANT) and v.type.size == 1


class Fusion(Pass):
    name = "fusion"

    def __init__(self, max_ops: int = MAX_KERNEL_OPS):
        if max_ops < 1:
            raise ValueError(f"a kernel must be allowed at least one op, not {max_ops}")
        self.max_ops = max_ops

    def run(self, fn: Function) -> None:
        _fuse_block(fn.block, self.max_ops)


def _fuse_block(block: Block, max_ops: int) -> None:
    for op in block.ops:
        if op.opdef.has(KERNEL):
            continue  # already a kernel: fusing its body again would nest kernels
        for region in op.regions:
            _fuse_block(region.block, max_ops)
    _outline(block, _group(block, max_ops))


def _group(block: Block, max_ops: int) -> list[list[Operation]]:
    """Greedy, in program order: a fusible op joins the groups of its operands whose
    iteration shape is its own and whose values nothing outside them has used yet (such a
    user would sit between the group's ops: outlining would make a cycle). When it joins
    several, they merge, so two chains meeting at an op become one kernel. A reduction
    closes its group, and so does reaching `max_ops` ops."""
    group_of: dict[Value, int] = {}
    groups: list[list[Operation]] = []
    shapes: list[tuple] = []
    sealed: set[int] = set()
    for op in block.ops:
        used = {group_of[v] for v in _reads(op) if v in group_of}
        target = None
        if fusible(op):
            shape = _iteration_shape(op)
            candidates = [g for g in sorted(used) if g not in sealed and shapes[g] == shape]
            candidates = _within_cap(candidates, groups, max_ops)
            if candidates and all(d is not None for d in shape):
                target, *others = candidates
                for other in others:
                    for member in groups[other]:
                        group_of.update(dict.fromkeys(member.results, target))
                    groups[target] += groups[other]
                    groups[other] = []
            else:
                target = len(groups)
                groups.append([])
                shapes.append(shape)
            groups[target].append(op)
            group_of.update(dict.fromkeys(op.results, target))
            if op.opdef.has(REDUCTION):
                sealed.add(target)
        sealed |= used - {target}
    position = {op: i for i, op in enumerate(block.ops)}
    return [sorted(ops, key=position.__getitem__) for ops in groups if ops]


def _within_cap(candidates: list[int], groups: list[list], max_ops: int) -> list[int]:
    """The candidate groups an op may join without its merged group passing `max_ops`
    ops (itself included): taken in order while they fit. A group left out becomes an
    input of the op's kernel instead (and is sealed, as any group read from outside)."""
    chosen, size = [], 1
    for g in candidates:
        if size + len(groups[g]) <= max_ops:
            chosen.append(g)
            size += len(groups[g])
    return chosen


def _reads(op: Operation) -> list[Value]:
    return op.operands + (captured_values(op) if op.regions else [])


def _outline(block: Block, groups: list[list[Operation]]) -> None:
    """Replace each group by one fused op at the position of its last op."""
    last = {ops[-1]: ops for ops in groups}
    member = {op for ops in groups for op in ops}
    readers = _readers(block)
    replaced: dict[Value, Value] = {}
    new_ops = []
    for op in block.ops:
        if op in last:
            fused, outputs = _make_fused(block, last[op], readers)
            replaced.update(zip(outputs, fused.results, strict=True))
            new_ops.append(fused)
        elif op not in member:
            new_ops.append(op)
    block.ops = new_ops
    for op in block.walk():
        op.operands = [replaced.get(v, v) for v in op.operands]


def _readers(block: Block) -> dict[Value, list[Operation]]:
    """The ops of `block` that read each value (operands, or captured by their regions).
    Built once per block: asking afresh walked the block for each value, quadratic in a
    long chain (a 3000-op chain: 0.9 s as one kernel, 2.6 s as 24; now 0.1 s)."""
    readers: dict[Value, list[Operation]] = {}
    for op in block.ops:
        for v in dict.fromkeys(_reads(op)):
            readers.setdefault(v, []).append(op)
    return readers


def _make_fused(
    block: Block, ops: list[Operation], readers: dict[Value, list[Operation]]
) -> tuple[Operation, list[Value]]:
    """The fused op for `ops`, and the values of theirs that are used outside the group."""
    defined = {r for op in ops for r in op.results}
    members = set(ops)
    outputs = [
        r
        for op in ops
        for r in op.results
        if any(user not in members for user in readers.get(r, ()))
    ]
    inputs: dict[Value, None] = {}
    for op in ops:
        for v in op.operands:
            if v not in defined and not _is_inlinable_constant(v):
                inputs.setdefault(v, None)
    inputs_list = list(inputs)
    body = Block([v.type for v in inputs_list])
    vmap = dict(zip(inputs_list, body.args, strict=True))
    with builder.insertion_point(body):
        for op in ops:
            for v in op.operands:
                if _is_inlinable_constant(v) and v not in vmap:
                    clone_op(v.op, vmap, body)
            clone_op(op, vmap, body, reinfer=False)
        builder.create("yield", [vmap[r] for r in outputs])
    fused = builder.create(
        "fused", inputs_list, regions=[Region(body)], block=Block(), loc=ops[-1].loc
    )
    fused.parent = block
    return fused, outputs
