"""The one timing function, with `time.perf_counter`: warm-up runs, then the number of
inner loops per sample is calibrated so that one sample lasts at least a minimum time,
then N samples are timed. Each sample's time is divided by its loops: the figures are
seconds per call. Medians, minima and the samples' spread are what the reports quote;
a wide spread flags a figure taken while the machine was busy (as pyperf warns)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Calibration: grow the inner loops until a sample lasts `min_time_s`; aim a little above
# it, grow at most GROWTH-fold per round (a too-fast estimate cannot make one sample run
# for ages), give up after MAX_ROUNDS rounds, and never run more than MAX_LOOPS calls.
MAX_LOOPS = 1_000_000
MAX_ROUNDS = 4
GROWTH = 100
MARGIN = 1.1
# A sample that overruns the minimum time this many times (a busy machine: on two shared
# cores a BLAS call can take 100× its quiet time) makes the next samples use fewer loops,
# scaled to the rate just seen, so a busy stretch cannot multiply a row's run time by its
# loops. Figures are per call, so samples of different loops stay comparable.
OVERRUN = 4.0

# A row is flagged busy when its samples (each already at least the minimum time, so
# timer resolution is no excuse) spread this widely: the interquartile range over this
# fraction of the median, or the slowest sample over this multiple of the fastest.
BUSY_SPREAD = 0.2
BUSY_MAX_OVER_MIN = 2.0
BUSY_EXPLANATION = (
    f"the samples spread widely (IQR over {BUSY_SPREAD:.0%} of the median, or the slowest "
    f"over {BUSY_MAX_OVER_MIN:g}× the fastest): the machine was probably busy (other "
    "processes, frequency changes) while they ran, so the median is less trustworthy; the "
    "min is the least disturbed figure. Rerun those rows (--only) on a quieter machine, or "
    "with more --repeat"
)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median, the interquartile range (q1, q3), the extremes, every
    sample (each a sample's time divided by its loops: `sample_loops`; `loops` is the
    calibrated count, which later samples lower after an overrun), and the warm-up calls
    made before calibrating. `busy` is
    whether the spread says the machine was busy; None where it is not judged (a single
    sample, or samples that are meant to differ, such as first calls at new sizes)."""

    median_s: float
    q1_s: float
    q3_s: float
    min_s: float
    max_s: float
    repeats: int
    samples_s: list[float]
    loops: int = 1
    busy: bool | None = None
    warmup: int = 0
    sample_loops: list[int] | None = None  # None: `loops` for every sample

    @classmethod
    def from_samples(
        cls,
        samples: list[float],
        loops: int = 1,
        judge: bool = True,
        warmup: int = 0,
        sample_loops: list[int] | None = None,
    ) -> Timing:
        q1, median, q3 = np.percentile(samples, [25, 50, 75])
        low, high = float(min(samples)), float(max(samples))
        busy = None
        if judge and len(samples) > 1:
            busy = is_busy(float(median), float(q1), float(q3), low, high)
        return cls(
            median_s=float(median),
            q1_s=float(q1),
            q3_s=float(q3),
            min_s=low,
            max_s=high,
            repeats=len(samples),
            samples_s=[float(s) for s in samples],
            loops=loops,
            busy=busy,
            warmup=warmup,
            sample_loops=list(sample_loops or [loops] * len(samples)),
        )

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s

    @property
    def spread(self) -> float:
        """The interquartile range relative to the median (0 for a zero median)."""
        return self.iqr_s / self.median_s if self.median_s > 0 else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "spread": self.spread}


def is_busy(median: float, q1: float, q3: float, low: float, high: float) -> bool:
    """Whether samples with these statistics spread as they do on a busy machine."""
    if median <= 0 or low <= 0:
        return False
    return (q3 - q1) / median > BUSY_SPREAD or high / low > BUSY_MAX_OVER_MIN


def _ignore(_output: Any) -> None:
    return None


def time_sample(
    fn: Callable[[], Any],
    loops: int = 1,
    sync: Callable[[Any], Any] = _ignore,
    clock: Clock = time.perf_counter,
) -> float:
    """The wall time of `loops` calls of `fn`, each waited for (`sync` of its output)."""
    start = clock()
    for _ in range(loops):
        sync(fn())
    return clock() - start


def calibrate_loops(
    fn: Callable[[], Any],
    min_time_s: float,
    *,
    sync: Callable[[Any], Any] = _ignore,
    first_sample_s: float | None = None,
    max_loops: int = MAX_LOOPS,
    clock: Clock = time.perf_counter,
) -> int:
    """How many calls of `fn` one sample needs to last at least `min_time_s`: a cheap
    function gets many, one slower than `min_time_s` gets 1. `first_sample_s`, the time of
    one call already made (the last warm-up), saves the first round's call. Every round
    after the first times `fn` (those calls warm it up further)."""
    if min_time_s <= 0:
        return 1
    loops, elapsed = 1, first_sample_s
    for _ in range(MAX_ROUNDS):
        if elapsed is None:
            elapsed = time_sample(fn, loops, sync, clock)
        if elapsed >= min_time_s or loops >= max_loops:
            return loops
        per_call = max(elapsed / loops, 1e-9)
        wanted = math.ceil(min_time_s * MARGIN / per_call)
        loops = min(max_loops, max(loops + 1, min(wanted, loops * GROWTH)))
        elapsed = None
    return loops


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    repeats: int = 5,
    sync: Callable[[Any], Any] = _ignore,
    min_time_s: float = 0.0,
    max_loops: int = MAX_LOOPS,
    judge: bool = True,
    clock: Clock = time.perf_counter,
) -> Timing:
    """Time `fn()` (and `sync` of its output, for asynchronous libraries): `warmup` calls,
    the inner loops calibrated to `min_time_s` per sample (0: one call per sample), then
    `repeats` samples (fewer loops after a sample that overran, see OVERRUN).
    `judge=False` leaves `busy` unset (samples meant to differ)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    last = None
    for _ in range(warmup):
        last = time_sample(fn, 1, sync, clock)
    loops = calibrate_loops(
        fn, min_time_s, sync=sync, first_sample_s=last, max_loops=max_loops, clock=clock
    )
    samples, sample_loops, current = [], [], loops
    for _ in range(repeats):
        elapsed = time_sample(fn, current, sync, clock)
        samples.append(elapsed / current)
        sample_loops.append(current)
        if current > 1 and elapsed > OVERRUN * min_time_s:
            current = max(1, min(current - 1, math.ceil(current * min_time_s * MARGIN / elapsed)))
    return Timing.from_samples(
        samples, loops=loops, judge=judge, warmup=warmup, sample_loops=sample_loops
    )


def timed_call(fn: Callable[[], Any]) -> tuple[Any, float]:
    """One call and its wall time: used for the first call, which includes compilation."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
