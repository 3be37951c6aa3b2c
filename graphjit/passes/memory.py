"""memory: bufferization and liveness-based buffer reuse (being written)."""

from __future__ import annotations

from dataclasses import dataclass

from graphjit.ir.core import Function
from graphjit.ir.types import TensorType


@dataclass
class MemoryPlan:
    arena_bytes: int
    unplanned_bytes: int


def plan_memory(fn: Function) -> MemoryPlan:
    """Placeholder analysis until the planner lands: no reuse (arena = one buffer each)."""
    total = sum(
        r.type.size * r.type.dtype.np.itemsize
        for op in fn.walk()
        for r in op.results
        if isinstance(r.type, TensorType) and r.type.is_static
    )
    return MemoryPlan(total, total)
