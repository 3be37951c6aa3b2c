"""gather, index_select, take_along_axis, scatter_add, segment sums, and x[idx] with integer or
boolean arrays (advanced_getitem, which shape_ops.getitem calls), for graph values and eager tensors."""

from __future__ import annotations

__all__: list[str] = []
