"""dce: drop ops whose results nobody uses. Side effects (assign, group) stay, in order;
cond results and while loop values that nothing needs are removed from the region ops
too (so a forward-only run of a loop that autodiff taped does not fill its tapes)."""

from __future__ import annotations

from graphjit.ir.core import Block, Function, Operation, Value, captured_values
from graphjit.passes.manager import Pass


class DCE(Pass):
    name = "dce"

    def run(self, fn: Function) -> None:
        _sweep(fn.block, set())


def _sweep(block: Block, live: set) -> None:
    kept = []
    for op in reversed(block.ops):
        if not (
            op.opdef.is_terminator or op.opdef.side_effect or any(r in live for r in op.results)
        ):
            continue
        if op.opdef.is_branch:
            _drop_results(op, [i for i, r in enumerate(op.results) if r in live])
        elif op.opdef.is_loop:
            _drop_results(op, _live_loop_values(op, live))
        for region in op.regions:
            _sweep(region.block, live)
        live.update(op.operands)
        kept.append(op)
    block.ops = kept[::-1]


def _uses(block: Block, roots) -> set[Value]:
    """The values (block args and outer values) that computing `roots` in `block` reads."""
    producers = {r: op for op in block.ops for r in op.results}
    needed, stack = set(), list(roots)
    while stack:
        v = stack.pop()
        if v in needed:
            continue
        needed.add(v)
        op = producers.get(v)
        if op is not None:
            stack += op.operands + (captured_values(op) if op.regions else [])
    return needed


def _live_loop_values(op: Operation, live: set) -> list[int]:
    before, after = (r.block for r in op.regions)
    keep = {i for i, r in enumerate(op.results) if r in live}
    keep |= {i for i, a in enumerate(before.args) if a in _uses(before, before.terminator.operands)}
    while True:
        needed = _uses(after, [after.terminator.operands[i] for i in keep])
        grown = keep | {i for i, a in enumerate(after.args) if a in needed}
        if grown == keep:
            return sorted(keep)
        keep = grown


def _drop_results(op: Operation, keep: list[int]) -> None:
    """Keep only results `keep` of a branch or loop op, and what yields them. A loop's
    carried values go too (operands and block arguments); its first region yields only the
    predicate."""
    if len(keep) == len(op.results):
        return
    loop = op.opdef.is_loop
    op.results = _reindexed([op.results[i] for i in keep])
    for k, region in enumerate(op.regions):
        term = region.block.terminator
        if loop:
            region.block.args = _reindexed([region.block.args[i] for i in keep])
        if not (loop and k == 0):
            term.operands = [term.operands[i] for i in keep]
    if loop:
        op.operands = [op.operands[i] for i in keep]
        if "taped" in op.attrs:
            op.attrs["taped"] = None  # the tape layout is gone with the dropped values


def _reindexed(values: list[Value]) -> list[Value]:
    for i, v in enumerate(values):
        v.index = i
    return values
