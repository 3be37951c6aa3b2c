"""Sorting along an axis: sort (values and the stable permutation), and top-k."""

from __future__ import annotations
