"""Scans along an axis: cumsum (and its transpose, a reversed cumsum)."""

from __future__ import annotations
