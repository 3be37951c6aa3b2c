"""Loss functions: softmax cross entropy in PyTorch's and TensorFlow 1's forms, and the
sigmoid and L2 losses."""

from __future__ import annotations

__all__: list[str] = []
