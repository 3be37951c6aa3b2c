"""Slices with run-time bounds: gj.slice (TF1), dynamic_slice and dynamic_update_slice (JAX), and
x[i:i + b] with i a graph value (dynamic_getitem, which shape_ops.getitem calls)."""

from __future__ import annotations

__all__: list[str] = []
