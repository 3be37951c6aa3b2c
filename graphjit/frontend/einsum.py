"""einsum and bmm: contractions lowered to batched matmul plus transposes and reshapes."""

from __future__ import annotations

__all__: list[str] = []
