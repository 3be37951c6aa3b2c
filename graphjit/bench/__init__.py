"""The static-vs-dynamic benchmark harness behind `graphjit bench`.

Workloads (`graphjit.bench.workloads`) each have a builder per mode (`modes.MODES`); the
runner checks every mode's result against NumPy's, then times it (`timing.measure`).
`run_benchmarks(BenchConfig(...))` is the API; `report.to_json` turns its result into the
documented JSON (`schema.REPORT_SCHEMA`). Peer libraries are imported only when used.
"""

from graphjit.bench.core import Mode, ModeUnavailable, Prepared, Workload
from graphjit.bench.modes import MODES
from graphjit.bench.runner import BenchConfig, BenchRun, run_benchmarks
from graphjit.bench.timing import Timing, measure
from graphjit.bench.workloads import WORKLOADS

__all__ = [
    "MODES",
    "WORKLOADS",
    "BenchConfig",
    "BenchRun",
    "Mode",
    "ModeUnavailable",
    "Prepared",
    "Timing",
    "Workload",
    "measure",
    "run_benchmarks",
]
