"""Calibrated timing and the busy-machine flag, with an injected fake clock (each call
advances it by a set cost), so nothing here depends on how fast this machine is; and the
runner's handling of a `fresh_inputs` workload (first calls only), and the flag in the
report and its tables."""

import time

import numpy as np
import pytest

from graphjit.bench import BenchConfig, Mode, Prepared, Workload, report, run_benchmarks
from graphjit.bench.modes import MODES
from graphjit.bench.runner import BenchRun, CellResult, WorkloadResult
from graphjit.bench.schema import validate
from graphjit.bench.timing import MAX_LOOPS, Timing, calibrate_loops, measure


class FakeClock:
    """A clock that moves only when a fake call says it took time."""

    def __init__(self):
        self.now, self.calls = 100.0, 0

    def __call__(self) -> float:
        return self.now

    def costing(self, seconds: float):
        def call():
            self.now += seconds
            self.calls += 1
            return seconds

        return call


# ---- calibration --------------------------------------------------------------------------


def test_a_fast_call_gets_more_inner_loops_than_a_slow_one():
    clock = FakeClock()
    fast = calibrate_loops(clock.costing(1e-6), 0.02, clock=clock)
    slow = calibrate_loops(clock.costing(0.05), 0.02, clock=clock)
    medium = calibrate_loops(clock.costing(1e-3), 0.02, clock=clock)
    assert slow == 1
    assert fast > medium > slow
    assert fast * 1e-6 >= 0.02 and medium * 1e-3 >= 0.02  # a sample lasts the minimum
    assert fast * 1e-6 < 0.05  # ... and not much more


def test_calibration_reuses_the_last_warm_up_and_can_be_turned_off():
    clock = FakeClock()
    slow = clock.costing(0.05)
    assert calibrate_loops(slow, 0.02, first_sample_s=0.05, clock=clock) == 1
    assert clock.calls == 0  # the warm-up's time sufficed: no extra call
    assert calibrate_loops(clock.costing(1e-6), 0.0, clock=clock) == 1
    assert clock.calls == 0


def test_calibration_stops_at_the_loop_cap():
    clock = FakeClock()
    assert calibrate_loops(clock.costing(1e-9), 1.0, max_loops=5000, clock=clock) == 5000
    assert calibrate_loops(clock.costing(0.0), 1.0, clock=clock) <= MAX_LOOPS


def test_a_real_trivial_callable_is_looped_and_a_sleeping_one_is_not():
    fast = measure(lambda: None, warmup=1, repeats=2, min_time_s=0.002)
    slow = measure(lambda: time.sleep(0.003), warmup=1, repeats=2, min_time_s=0.002)
    assert slow.loops == 1 and fast.loops > 10


def test_measure_times_per_call_and_syncs_every_call():
    clock, synced = FakeClock(), []
    timing = measure(
        clock.costing(1e-5), warmup=1, repeats=3, sync=synced.append, min_time_s=0.01, clock=clock
    )
    assert timing.loops * 1e-5 >= 0.01 and timing.repeats == 3 and timing.warmup == 1
    assert timing.median_s == pytest.approx(1e-5) and timing.min_s == pytest.approx(1e-5)
    assert len(synced) == clock.calls  # the asynchronous result of every call is waited for
    assert timing.busy is False and timing.spread == pytest.approx(0, abs=1e-9)


def test_a_sample_that_overruns_makes_the_next_ones_shorter():
    """Calibrated at 10 µs a call, the call then slows 100-fold (another process took the
    core): the first sample overruns 100×, the next ones drop to a loop count that lasts
    about the minimum time at the new rate, and figures stay per call."""
    rehearsal = FakeClock()
    loops = calibrate_loops(rehearsal.costing(1e-5), 0.01, clock=rehearsal)
    calibration_calls = rehearsal.calls  # the calls calibration makes, at 10 µs each
    clock = FakeClock()

    def call():
        clock.now += 1e-5 if clock.calls < calibration_calls else 1e-3
        clock.calls += 1

    timing = measure(call, warmup=0, repeats=3, min_time_s=0.01, clock=clock)
    assert timing.loops == loops and timing.sample_loops[0] == loops
    assert timing.sample_loops[1] == timing.sample_loops[2] == 11  # 0.01 s × 1.1 / 1 ms
    assert timing.median_s == pytest.approx(1e-3)
    assert report._loops_text(timing.to_json()) == f"{loops}→11"


# ---- the busy flag ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "samples, busy",
    [
        ([1.0, 1.01, 0.99, 1.02, 1.0, 1.0, 1.01], False),  # a quiet machine
        ([1.0, 1.5, 1.0, 1.6, 1.1, 1.7, 1.2], True),  # IQR over 20% of the median
        ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.5], True),  # one sample 2.5x the fastest
        ([1.0], None),  # one sample: not judged
    ],
)
def test_the_busy_flag_follows_the_spread(samples, busy):
    assert Timing.from_samples(samples).busy is busy
    assert Timing.from_samples(samples, judge=False).busy is None


# ---- the runner and the report --------------------------------------------------------------


def counting_builder(calls: list):
    def build(data: dict) -> Prepared:
        def run():
            calls.append(len(calls))
            return np.float32(1.0)

        return Prepared(run=run)

    return build


def test_a_fresh_inputs_workload_is_timed_by_single_first_calls():
    calls: list = []
    workload = Workload(
        name="fresh",
        description="counts its calls",
        sizes={"tiny": {}},
        make_data=lambda params: {},
        builders={"numpy": counting_builder([]), "gj-eager": counting_builder(calls)},
        fresh_inputs=True,
    )
    config = BenchConfig(size="tiny", repeat=4, warmup=3, min_time_s=0.5, progress=False)
    run = run_benchmarks(config, workloads=[workload], modes=[m for m in MODES if m.name in
                                                            ("numpy", "gj-eager")])  # fmt: skip
    cell = next(c for c in run.results[0].cells if c.mode == "gj-eager")
    assert cell.status == "ok", cell.reason
    assert len(calls) == 1 + 4  # the checked first call, then one call per sample
    assert cell.timing.loops == 1 and cell.timing.warmup == 0 and cell.timing.busy is None
    assert report.to_json(run)["workloads"][0]["fresh_inputs"] is True


def synthetic_report() -> dict:
    modes = [Mode("numpy", "NumPy"), Mode("gj-eager", "graphjit eager")]
    quiet = Timing.from_samples([1e-3, 1.01e-3, 0.99e-3], loops=20, warmup=1)
    noisy = Timing.from_samples([1e-3, 3e-3, 1.1e-3], loops=20, warmup=1)
    cells = [
        CellResult("numpy", "ok", compile_s=0.01, timing=quiet, speedup_vs_eager=1.5),
        CellResult("gj-eager", "ok", compile_s=0.01, timing=noisy, speedup_vs_eager=1.0),
    ]
    workload = Workload("synthetic", "two rows", {"quick": {}}, lambda params: {}, {})
    config = BenchConfig(size="quick").resolved()
    run = BenchRun(config, modes, {}, [WorkloadResult(workload, {}, cells)], time.time(), 1.0)
    return report.to_json(run)


def test_a_busy_row_is_marked_in_the_tables_and_the_json():
    result = synthetic_report()
    validate(result)
    numpy_cell, eager_cell = result["workloads"][0]["results"]
    assert numpy_cell["timing"]["busy"] is False and eager_cell["timing"]["busy"] is True
    assert eager_cell["timing"]["loops"] == 20 and eager_cell["timing"]["spread"] > 0.2
    assert report.busy_rows(result) == ["synthetic gj-eager"]
    text = report.format_table(result)
    rows = text.split("\n\n")[0].splitlines()[1:]  # the table, without its header
    (eager_line,) = [line for line in rows if "graphjit eager" in line]
    (numpy_line,) = [line for line in rows if "NumPy" in line]
    assert "1.1 ms !" in eager_line and "!" not in numpy_line
    assert "! busy (1 row): the samples spread widely" in text
    assert "1.1 ms ! (1×)" in report.format_markdown(result)


def test_a_quiet_report_has_no_busy_line():
    result = synthetic_report()
    result["workloads"][0]["results"][1]["timing"]["busy"] = False
    assert "busy" not in report.format_table(result)
