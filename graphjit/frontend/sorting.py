"""sort, argsort, topk, kthvalue (PyTorch's names, (values, indices) results) and TF1's
tf.math.top_k / tf.sort, for graph values and eager tensors."""

from __future__ import annotations

__all__: list[str] = []
