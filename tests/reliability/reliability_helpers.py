"""Shared by the reliability tests: the long-run switch, fuzz case counts, where a line of
the calling test is, and comparisons with the interpreter (the oracle)."""

from __future__ import annotations

import os
import sys
from collections import Counter

import numpy as np
from hypothesis import settings

LONG = os.environ.get("GRAPHJIT_FUZZ", "") == "long"
COUNTS: Counter = Counter()  # what the fuzz tests ran, for the terminal summary
BACKENDS = ("llvm", "interpreter")


def fuzz_settings(ci_examples: int, long_examples: int) -> settings:
    """The active hypothesis profile (see conftest.py) with this test's example count."""
    profile = settings.get_profile("graphjit-long" if LONG else "graphjit-ci")
    return settings(profile, max_examples=long_examples if LONG else ci_examples)


def here() -> int:
    """The caller's line: `y, line = gj.exp(x), here()` records where `exp` was built."""
    return sys._getframe(1).f_lineno


def tolerance(dtype) -> dict:
    if np.dtype(dtype) == np.float32:
        return {"rtol": 2e-3, "atol": 2e-4}
    return {"rtol": 1e-7, "atol": 1e-9}


def assert_close(got, want, what: str) -> None:
    """Same shape and dtype; floats within tolerance (NaN where NaN), others exactly."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, equal_nan=True, err_msg=what, **tolerance(want.dtype))
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)
