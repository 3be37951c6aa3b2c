"""layer_norm, batch_norm (training statistics, running averages, inference) and group_norm."""

from __future__ import annotations

__all__: list[str] = []
