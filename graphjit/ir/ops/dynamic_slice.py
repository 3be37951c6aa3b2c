"""Slices whose start is a run-time value: dynamic_slice and dynamic_update_slice (JAX's names), the
slices of `x[i:i + b]` with `i` a graph value, differentiable."""

from __future__ import annotations
