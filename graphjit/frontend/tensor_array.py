"""TensorArray (TensorFlow 1's names: write, read, stack, unstack, size), backed by the
IR's tensor lists, differentiable and usable inside while_loop."""

from __future__ import annotations

__all__: list[str] = []
