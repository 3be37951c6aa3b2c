"""Reliability tests: hypothesis profiles and the long-run switch.

GRAPHJIT_FUZZ=long selects the "graphjit-long" profile (>= 10,000 fuzz cases, the full
leak runs); otherwise "graphjit-ci" runs a few hundred cases, derandomized so that the
default suite is deterministic. The terminal summary says how many fuzz cases ran.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from reliability_helpers import COUNTS, LONG

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "graphjit-ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=_SLOW_OK
)
settings.register_profile(
    "graphjit-long", max_examples=4000, deadline=None, suppress_health_check=_SLOW_OK
)


def pytest_terminal_summary(terminalreporter) -> None:
    if COUNTS:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items()))
        mode = "long" if LONG else "ci"
        terminalreporter.write_line(f"graphjit fuzz ({mode} profile): {parts}")
