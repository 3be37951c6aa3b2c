"""TensorFlow 1's names and argument names (reduce_sum(axis=, keepdims=), clip_by_value, ...),
so that a TF1 program ports by changing its import."""

from __future__ import annotations

__all__: list[str] = []
