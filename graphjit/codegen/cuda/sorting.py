"""The cuda lowerings of ir/ops/sorting.py: op name -> lowering(low, op)."""

from __future__ import annotations

LOWERINGS: dict = {}
