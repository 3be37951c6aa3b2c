"""fusion: elementwise ops, broadcasts and reductions with their elementwise producers
become one `fused` region op: one loop nest, no temporaries between its ops.

Groups form in program order: an op joins its operands' groups when their iteration
shape is its own and nothing outside them has read their values yet, so no work is ever
duplicated; a reduction is the last op of its group. Scalar constants are copied into
the regions that use them. Matmul, shape ops and control flow stay outside (matmul goes to
BLAS); every elementwise or reduction op ends up inside some `fused` op, so code
generators only meet those ops inside kernels."""

from __future__ import annotations

from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Block, Function, Operation, Region, Value, captured_values
from graphjit.ir.ops import CONSTANT, INDEX_MAP, KERNEL, REDUCTION
from graphjit.ir.types import TensorType
from graphjit.passes.manager import Pass


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

    def run(self, fn: Function) -> None:
        _fuse_block(fn.block)


def _fuse_block(block: Block) -> None:
    for op in block.ops:
        if op.opdef.has(KERNEL):
            continue  # already a kernel: fusing its body again would nest kernels
        for region in op.regions:
            _fuse_block(region.block)
    _outline(block, _group(block))


def _group(block: Block) -> list[list[Operation]]:
    """Greedy, in program order: a fusible op joins the groups of its operands whose
    iteration shape is its own and whose values nothing outside them has used yet (such a
    user would sit between the group's ops: outlining would make a cycle). When it joins
    several, they merge, so two chains meeting at an op become one kernel. A reduction
    closes its group."""
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


def _reads(op: Operation) -> list[Value]:
    return op.operands + (captured_values(op) if op.regions else [])


def _outline(block: Block, groups: list[list[Operation]]) -> None:
    """Replace each group by one fused op at the position of its last op."""
    last = {ops[-1]: ops for ops in groups}
    member = {op for ops in groups for op in ops}
    replaced: dict[Value, Value] = {}
    new_ops = []
    for op in block.ops:
        if op in last:
            fused, outputs = _make_fused(block, last[op])
            replaced.update(zip(outputs, fused.results, strict=True))
            new_ops.append(fused)
        elif op not in member:
            new_ops.append(op)
    block.ops = new_ops
    for op in block.walk():
        op.operands = [replaced.get(v, v) for v in op.operands]


def _make_fused(block: Block, ops: list[Operation]) -> tuple[Operation, list[Value]]:
    """The fused op for `ops`, and the values of theirs that are used outside the group."""
    defined = {r for op in ops for r in op.results}
    members = set(ops)
    outputs = [r for op in ops for r in op.results if _used_outside(r, members, block)]
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


def _used_outside(v: Value, members: set, block: Block) -> bool:
    for op in block.ops:
        if op not in members and v in _reads(op):
            return True
    return False
