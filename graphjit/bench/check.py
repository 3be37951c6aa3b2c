"""The result check every mode passes before it is timed: same number of values, same
shapes, and values within per-dtype tolerances of the reference (NumPy's) result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (relative, absolute) tolerance per dtype; the absolute part is scaled by the largest
# magnitude in the reference value (at least 1), and a workload may scale both.
TOLERANCES = {
    "float16": (1e-2, 1e-3),
    "float32": (1e-3, 1e-5),
    "float64": (1e-9, 1e-12),
}


@dataclass(frozen=True)
class CheckOutcome:
    ok: bool
    max_abs_error: float | None
    message: str = ""


def tolerance_for(dtype: np.dtype, scale: float = 1.0) -> tuple[float, float]:
    """(rtol, atol) for a dtype; integers and booleans must match exactly."""
    rtol, atol = TOLERANCES.get(np.dtype(dtype).name, (0.0, 0.0))
    return rtol * scale, atol * scale


def compare(actual: list, expected: list, scale: float = 1.0) -> CheckOutcome:
    """Check `actual` against the reference values `expected`, value by value."""
    if len(actual) != len(expected):
        return CheckOutcome(False, None, f"{len(actual)} values returned, {len(expected)} expected")
    worst = 0.0
    for index, (got, want) in enumerate(zip(actual, expected)):
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            return CheckOutcome(
                False, None, f"value {index}: shape {got.shape}, expected {want.shape}"
            )
        error, problem = _compare_one(got, want, scale)
        worst = max(worst, error)
        if problem:
            return CheckOutcome(False, worst, f"value {index}: {problem}")
    return CheckOutcome(True, worst)


def _compare_one(got: np.ndarray, want: np.ndarray, scale: float) -> tuple[float, str]:
    rtol, atol = tolerance_for(want.dtype, scale)
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    if not np.array_equal(np.isnan(got64), np.isnan(want64)):
        return float("nan"), "NaN where the reference has none (or the reverse)"
    finite = np.isfinite(want64)
    if not np.array_equal(got64[~finite], want64[~finite]):
        return float("inf"), "infinities differ from the reference"
    if not finite.any():
        return 0.0, ""
    difference = np.abs(got64[finite] - want64[finite])
    magnitude = np.abs(want64[finite])
    allowed = atol * max(1.0, float(magnitude.max())) + rtol * magnitude
    error = float(difference.max())
    if np.all(difference <= allowed):
        return error, ""
    worst = int(np.argmax(difference - allowed))
    return error, (
        f"max |difference| {error:.3g} exceeds the tolerance (rtol {rtol:g}, atol {atol:g}); "
        f"worst element {got64[finite][worst]:.6g} vs reference {want64[finite][worst]:.6g}"
    )
