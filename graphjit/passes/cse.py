"""cse: ops with the same name, operands, attributes and types compute the same value.

Scoped like dominance: an op inside a region may reuse an equal op from above the region,
never one from a sibling region. Side effects and tensor lists are never merged."""

from __future__ import annotations

import numpy as np

from graphjit.ir.core import Block, Function, Operation
from graphjit.ir.ops import FEED, STATE
from graphjit.ir.types import TensorType
from graphjit.passes.manager import Pass
from graphjit.passes.rewrite import Substitution


def _hashable(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (tuple, list)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, float) and value != value:
        return ("nan",)
    return value


def op_key(op: Operation):
    if op.regions or op.opdef.side_effect or op.opdef.traits & {FEED, STATE}:
        return None
    if not op.results or not all(isinstance(r.type, TensorType) for r in op.results):
        return None
    attrs = tuple(sorted((k, _hashable(v)) for k, v in op.attrs.items()))
    return (op.name, tuple(op.operands), attrs, tuple(r.type for r in op.results))


class CSE(Pass):
    name = "cse"

    def run(self, fn: Function) -> None:
        self._block(fn.block, {}, Substitution())

    def _block(self, block: Block, seen: dict, subst: Substitution) -> None:
        kept = []
        for op in block.ops:
            op.operands = [subst.resolve(v) for v in op.operands]
            for region in op.regions:
                self._block(region.block, dict(seen), subst)
            key = op_key(op)
            if key is not None and key in seen:
                subst.update(zip(op.results, seen[key].results, strict=True))
                continue
            if key is not None:
                seen[key] = op
            kept.append(op)
        block.ops = kept
