"""Copying IR: ops, blocks and regions into another block through a value map.

Result types are inferred again from the (possibly new) operand types, which is how the
Session specialises a graph with unknown dimensions to the shapes it was fed.
"""

from __future__ import annotations

from graphjit.ir import builder
from graphjit.ir.core import Block, Operation, Region


def clone_op(op: Operation, vmap: dict, block: Block, reinfer: bool = True) -> Operation:
    operands = [vmap.get(v, v) for v in op.operands]
    specs = op.opdef.regions
    regions = [
        clone_region(r, vmap, operands if spec.args == "operands" else None)
        for r, spec in zip(op.regions, specs, strict=True)
    ]
    types = None if reinfer else [v.type for v in op.results]
    new = builder.create(op.name, operands, op.attrs, regions, types, block=block, loc=op.loc)
    for old, fresh in zip(op.results, new.results):
        fresh.name_hint = old.name_hint
        vmap[old] = fresh
    return new


def clone_region(region: Region, vmap: dict, arg_like=None) -> Region:
    """Clone a region; `arg_like` gives new block-argument types (a while's new operands)."""
    src = region.block
    types = [v.type for v in arg_like] if arg_like is not None else [a.type for a in src.args]
    dst = Block(types, [a.name_hint for a in src.args])
    vmap.update(zip(src.args, dst.args))
    clone_ops(src.ops, vmap, dst)
    return Region(dst)


def clone_ops(ops, vmap: dict, block: Block) -> None:
    for op in ops:
        clone_op(op, vmap, block)
