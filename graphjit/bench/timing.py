"""The one timing function: warm-up runs, then N timed repetitions with
`time.perf_counter`; medians and spread are what the reports quote."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Seconds: the median, the interquartile range (q1, q3), the extremes, every sample."""

    median_s: float
    q1_s: float
    q3_s: float
    min_s: float
    max_s: float
    repeats: int
    samples_s: list[float]

    @classmethod
    def from_samples(cls, samples: list[float]) -> Timing:
        q1, median, q3 = np.percentile(samples, [25, 50, 75])
        return cls(
            median_s=float(median),
            q1_s=float(q1),
            q3_s=float(q3),
            min_s=float(min(samples)),
            max_s=float(max(samples)),
            repeats=len(samples),
            samples_s=[float(s) for s in samples],
        )

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s

    def to_json(self) -> dict:
        return asdict(self)


def _ignore(_output: Any) -> None:
    return None


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    repeats: int = 5,
    sync: Callable[[Any], Any] = _ignore,
) -> Timing:
    """Time `fn()` (and `sync` of its output, for asynchronous libraries)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        sync(fn())
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(fn())
        samples.append(time.perf_counter() - start)
    return Timing.from_samples(samples)


def timed_call(fn: Callable[[], Any]) -> tuple[Any, float]:
    """One call and its wall time: used for the first call, which includes compilation."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
