"""Integer and bitwise arithmetic with NumPy's semantics (bitwise ops, floor division, modulo)
and the reductions prod and argmin, for graph values and eager tensors alike."""

from __future__ import annotations

__all__: list[str] = []
