"""The llvm lowerings of ir/ops/dynamic_slice.py: op name -> lowering(low, op)."""

from __future__ import annotations

LOWERINGS: dict = {}
