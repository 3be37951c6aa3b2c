"""Runs the benchmark: for each workload, the reference result first; then each mode is
built, called once (its compile time), checked against the reference and only then timed.
Performance is measured here and never asserted."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from graphjit.bench import modes as mode_table
from graphjit.bench import peers
from graphjit.bench.check import compare
from graphjit.bench.core import Mode, ModeUnavailable, Prepared, Workload
from graphjit.bench.load import busy_processes
from graphjit.bench.progress import Progress
from graphjit.bench.timing import Timing, measure, timed_call
from graphjit.bench.workloads import WORKLOADS, select_workloads
from graphjit.bench.workloads.common import forget_compiled_code

# Defaults per size: how many timed samples, after how many warm-up runs, and the least
# time one sample lasts (the calibrated inner loops of a fast call make it up).
PRESETS = {
    "full": {"repeat": 7, "warmup": 1, "min_time_s": 0.02},
    "quick": {"repeat": 3, "warmup": 1, "min_time_s": 0.005},
    "tiny": {"repeat": 2, "warmup": 0, "min_time_s": 0.001},
}
DISPATCH_REPEATS = 50
# cores_used's clocks: the process's CPU time (every thread's) and the wall time
CPU_CLOCK, WALL_CLOCK = time.process_time, time.perf_counter


@dataclass
class BenchConfig:
    size: str = "full"
    repeat: int | None = None  # None: the size's preset (the number of timed samples)
    warmup: int | None = None
    min_time_s: float | None = None  # the least time of one sample; 0: one call per sample
    workloads: list[str] | None = None  # None: all
    modes: list[str] | None = None
    progress: bool = True
    torch_compile_backend: str = peers.DEFAULT_TORCH_COMPILE_BACKEND
    busy: int = 0  # > 0: time each cell again beside this many busy processes (load.py)

    def resolved(self) -> BenchConfig:
        if self.size not in PRESETS:
            raise ValueError(f"unknown size {self.size!r}; choose from {list(PRESETS)}")
        preset = PRESETS[self.size]
        repeat = preset["repeat"] if self.repeat is None else self.repeat
        warmup = preset["warmup"] if self.warmup is None else self.warmup
        min_time_s = preset["min_time_s"] if self.min_time_s is None else self.min_time_s
        if repeat < 1 or warmup < 0:
            raise ValueError("--repeat must be at least 1 and the warm-up count not negative")
        if self.busy < 0:
            raise ValueError("--busy must not be negative")
        if not min_time_s >= 0:  # (NaN too)
            raise ValueError("--min-time must not be negative")
        return dataclasses.replace(self, repeat=repeat, warmup=warmup, min_time_s=min_time_s)


@dataclass
class CellResult:
    """One workload in one mode. status: ok (timed), error (raised or computed a wrong
    result: not timed), skipped (the mode cannot run here, with the reason)."""

    mode: str
    status: str
    reason: str | None = None
    note: str = ""
    compile_s: float | None = None
    timing: Timing | None = None
    dispatch: Timing | None = None
    loaded: Timing | None = None  # timed beside config.busy busy processes
    cores: float | None = None  # the process's CPU time over wall time while timed
    loaded_cores: float | None = None
    max_abs_error: float | None = None
    speedup_vs_eager: float | None = None


@dataclass
class WorkloadResult:
    workload: Workload
    params: dict
    cells: list[CellResult] = field(default_factory=list)


@dataclass
class BenchRun:
    config: BenchConfig
    modes: list[Mode]
    unavailable: dict[str, str | None]
    results: list[WorkloadResult]
    started: float
    seconds: float
    load_average_start: list[float] | None = None


def run_benchmarks(
    config: BenchConfig | None = None,
    workloads: Sequence[Workload] = WORKLOADS,
    modes: Sequence[Mode] = mode_table.MODES,
) -> BenchRun:
    """Run the selected workloads in the selected modes (tests pass their own tables)."""
    config = (config or BenchConfig()).resolved()
    chosen_workloads = select_workloads(config.workloads, workloads)
    chosen_modes = mode_table.select_modes(config.modes, modes)
    started, clock, load = time.time(), time.perf_counter(), load_average()
    total = len(chosen_workloads) * len(chosen_modes)
    with (
        Progress(total, config.progress) as progress,
        peers.torch_compile_backend(config.torch_compile_backend),
    ):
        progress.start("checking which modes can run here")
        unavailable = mode_table.availability(chosen_modes)
        results = [
            run_workload(workload, chosen_modes, unavailable, config, progress)
            for workload in chosen_workloads
        ]
    seconds = time.perf_counter() - clock
    return BenchRun(config, chosen_modes, unavailable, results, started, seconds, load)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_workload(workload, modes, unavailable, config, progress) -> WorkloadResult:
    params = workload.sizes[config.size]
    data = workload.make_data(params)
    result = WorkloadResult(workload, params)
    progress.start(f"{workload.name}: reference ({mode_table.REFERENCE_MODE})")
    reference, reference_problem = _reference_values(workload, data)
    for mode in modes:
        progress.start(f"{workload.name}: {mode.label}")
        attempt = run_cell(workload, mode, data, unavailable.get(mode.name))
        cell = _checked_then_timed(attempt, workload, mode, reference, reference_problem, config)
        result.cells.append(cell)
        progress.advance()
    _add_speedups(result.cells)
    return result


def _reference_values(workload: Workload, data: dict) -> tuple[list | None, str]:
    try:
        prepared = workload.builders[mode_table.REFERENCE_MODE](data)
        output = prepared.run()
        return prepared.values(output), ""
    except Exception as error:
        return None, f"the reference ({mode_table.REFERENCE_MODE}) failed: {_describe(error)}"


@dataclass
class _Attempt:
    """A cell after its first call: the Prepared run and its result values."""

    cell: CellResult
    prepared: Prepared | None = None
    values: list | None = None


def run_cell(workload: Workload, mode: Mode, data: dict, skip_reason: str | None) -> _Attempt:
    note = workload.notes.get(mode.name, "")
    if skip_reason:
        return _Attempt(CellResult(mode.name, "skipped", skip_reason, note))
    builder = workload.builders.get(mode.name)
    if builder is None:
        return _Attempt(CellResult(mode.name, "skipped", "no builder for this mode", note))

    if mode.name.startswith("gj-"):
        # each graphjit mode's compile column is its own compile, not a hit on the native
        # code the mode before it compiled for the same graph (gj.function after gj-llvm)
        forget_compiled_code()

    def build_and_call():
        prepared = builder(data)
        output = prepared.run()
        prepared.sync(output)
        return prepared, output

    try:
        (prepared, output), compile_s = timed_call(build_and_call)
        values = prepared.values(output)
    except ModeUnavailable as reason:
        return _Attempt(CellResult(mode.name, "skipped", str(reason), note))
    except Exception as error:
        return _Attempt(CellResult(mode.name, "error", _describe(error), note))
    note = "; ".join(part for part in (note, prepared.note) if part)
    return _Attempt(CellResult(mode.name, "ok", note=note, compile_s=compile_s), prepared, values)


def _checked_then_timed(attempt, workload, mode, reference, reference_problem, config):
    cell = attempt.cell
    if cell.status != "ok":
        return cell
    if reference is None:
        cell.status, cell.reason = "error", reference_problem
        return cell
    outcome = compare(attempt.values, reference, workload.tolerance)
    cell.max_abs_error = outcome.max_abs_error
    if not outcome.ok:
        cell.status, cell.reason = "error", f"wrong result: {outcome.message}"
        return cell
    prepared = attempt.prepared
    try:
        config = dataclasses.replace(config, warmup=max(config.warmup, mode.warmup))
        cell.timing, cell.cores = cores_used(time_cell, prepared, workload, config)
        if mode.static and prepared.trivial is not None:
            cell.dispatch = measure(
                prepared.trivial, warmup=1, repeats=DISPATCH_REPEATS, judge=False
            )
        if config.busy and not workload.fresh_inputs:  # (whose inputs the first timing used)
            with busy_processes(config.busy):
                cell.loaded, cell.loaded_cores = cores_used(time_cell, prepared, workload, config)
    except Exception as error:
        cell.status, cell.reason = "error", _describe(error)
        cell.timing = cell.dispatch = cell.loaded = cell.cores = cell.loaded_cores = None
    return cell


def cores_used(timed, *args):
    """(timed(*args), the cores the process used meanwhile: its CPU time, every thread's,
    over the wall time). A mode that keeps two cores busy shows 2; one whose threads wait
    for a core the machine does not give them (another process holds it) shows less."""
    cpu, wall = CPU_CLOCK(), WALL_CLOCK()
    result = timed(*args)
    cpu, wall = CPU_CLOCK() - cpu, WALL_CLOCK() - wall
    return result, (cpu / wall if wall > 0 else None)


def time_cell(prepared: Prepared, workload: Workload, config: BenchConfig) -> Timing:
    """The timed samples of a checked cell: warm-up, inner loops calibrated to the minimum
    sample time, `repeat` samples; for a `fresh_inputs` workload, `repeat` single first
    calls, each at a new input (see `Workload`)."""
    run, sync = prepared.run, prepared.sync
    if workload.fresh_inputs:
        return measure(run, warmup=0, repeats=config.repeat, sync=sync, judge=False)
    return measure(
        run, warmup=config.warmup, repeats=config.repeat, sync=sync, min_time_s=config.min_time_s
    )


def _add_speedups(cells: list[CellResult]) -> None:
    baseline = next(
        (c for c in cells if c.mode == mode_table.BASELINE_MODE and c.status == "ok"), None
    )
    if baseline is None:
        return
    for cell in cells:
        if cell.status == "ok" and cell.timing.median_s > 0:
            cell.speedup_vs_eager = baseline.timing.median_s / cell.timing.median_s


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:400]
