"""Gather and scatter: gather/take_along_axis, scatter_add (gather's transpose) and segment sums, with
out-of-range indices checked when the op runs (a RuntimeCheckError, never a read out of bounds)."""

from __future__ import annotations
