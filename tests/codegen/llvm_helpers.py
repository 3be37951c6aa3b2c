"""The llvm backend tests compare against the interpreter with tests/backend_check.py."""

from __future__ import annotations

import functools

from backend_check import assert_matches, compare_on, run_on

compare_backends = functools.partial(compare_on, "llvm")

__all__ = ["assert_matches", "compare_backends", "run_on"]
