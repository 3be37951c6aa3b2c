"""`graphjit bench --busy N`: each row timed again beside N busy processes that the bench
starts for that timing alone and always stops."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphjit import cli
from graphjit.bench import MODES, BenchConfig, Mode, Prepared, run_benchmarks
from graphjit.bench.load import BUSY_LOOP, busy_processes
from graphjit.bench.report import TABLE_HEADER, format_markdown, format_table, table_rows, to_json
from graphjit.bench.schema import validate
from graphjit.bench.workloads import elementwise, new_batch_size

CHILDREN = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
needs_children_file = pytest.mark.skipif(
    not CHILDREN.exists(), reason="no /proc/PID/task/TID/children here"
)


def children() -> set[int]:
    return {int(pid) for pid in CHILDREN.read_text().split()}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@needs_children_file
def test_the_busy_processes_run_while_the_block_does_and_are_gone_after_it():
    before = children()
    with busy_processes(2) as processes:
        assert all(p.poll() is None for p in processes)
        assert {p.pid for p in processes} <= children() - before
        deadline = time.monotonic() + 20  # (a loaded machine gives each a share of a core)
        while time.monotonic() < deadline and min(cpu_seconds(p.pid) for p in processes) < 0.1:
            time.sleep(0.05)
        assert all(cpu_seconds(p.pid) >= 0.1 for p in processes)  # busy, not asleep
    assert all(p.returncode is not None for p in processes)
    assert children() == before


def test_the_busy_processes_are_stopped_when_the_block_raises():
    with pytest.raises(KeyboardInterrupt), busy_processes(1) as processes:
        raise KeyboardInterrupt
    assert processes[0].returncode is not None


def test_no_busy_processes_for_zero_and_an_error_for_a_negative_count():
    with busy_processes(0) as processes:
        assert processes == []
    with pytest.raises(ValueError, match="must not be negative"), busy_processes(-1):
        pass


def test_a_busy_loop_exits_when_the_bench_that_started_it_is_gone():
    # a parent killed outright runs no cleanup: the loop must notice on its own, even
    # when the parent dies before the loop's interpreter has started
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            f"p = subprocess.Popen([sys.executable, '-c', {BUSY_LOOP!r}, str(os.getpid())])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    loop = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(loop):
        time.sleep(0.05)
    exited = not _alive(loop)
    if not exited:
        os.kill(loop, signal.SIGKILL)  # (not left spinning by a failed test)
    assert exited


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:  # (reaped by init; or no /proc: fall back to a signal)
        if Path("/proc").exists():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


COUNTING = Mode("counting", "counts the busy processes beside each call")


@needs_children_file
def test_each_row_is_timed_quiet_then_beside_the_busy_processes():
    seen, before = [], children()  # (the run may have children of its own: the CUDA suite)

    def counting(data: dict) -> Prepared:
        correct = elementwise.build_numpy(data)

        def run():
            seen.append(len(children() - before))
            return correct.run()

        return Prepared(run=run)

    workload = elementwise.WORKLOAD.with_builder("counting", counting)
    modes = ["numpy", "counting"]
    config = BenchConfig("tiny", 3, 0, 0, modes=modes, busy=2, progress=False)
    run = run_benchmarks(config, workloads=[workload], modes=[*MODES, COUNTING])
    cells = {cell.mode: cell for cell in run.results[0].cells}
    assert all(cell.status == "ok" and cell.loaded is not None for cell in cells.values())
    # the first call (checked against NumPy) and the three quiet samples, then three loaded
    assert seen == [0, 0, 0, 0, 2, 2, 2]
    assert children() - before == set()

    report = to_json(run)
    validate(report)
    assert report["settings"]["busy_processes"] == 2
    cell = report["workloads"][0]["results"][1]
    assert cell["loaded"]["repeats"] == 3
    table = format_table(report)
    assert "loaded" in table.splitlines()[0] and "slowdown" in table.splitlines()[0]
    assert "beside 2 busy processes" in table
    ratio = cell["loaded"]["median_s"] / cell["timing"]["median_s"]
    assert f"{ratio:.2f}×" in table
    assert "; loaded " in format_markdown(report)


def test_without_busy_processes_the_report_has_no_loaded_column():
    workload = elementwise.WORKLOAD
    config = BenchConfig(size="tiny", repeat=1, warmup=0, modes=["numpy"], progress=False)
    report = to_json(run_benchmarks(config, workloads=[workload]))
    validate(report)
    assert report["workloads"][0]["results"][0]["loaded"] is None
    table = format_table(report)
    assert "loaded" not in table and "slowdown" not in table


def test_a_workload_of_fresh_inputs_is_not_timed_loaded():
    # its timing used every unseen batch size; a second timing would find none left
    config = BenchConfig(size="tiny", repeat=2, modes=["numpy"], busy=1, progress=False)
    run = run_benchmarks(config, workloads=[new_batch_size.WORKLOAD])
    (cell,) = run.results[0].cells
    assert cell.status == "ok" and cell.timing is not None and cell.loaded is None
    assert "new_batch_size not loaded" in format_table(to_json(run))


def test_the_command_line_takes_busy_and_rejects_a_negative_count(tmp_path, capsys):
    path = tmp_path / "bench.json"
    argv = ["bench", "--tiny", "--modes", "numpy", "--only", "loop_add", "--no-progress"]
    assert cli.main([*argv, "--repeat", "1", "--busy", "1", "--json", str(path)]) == 0
    written = json.loads(path.read_text())
    validate(written)
    assert written["workloads"][0]["results"][0]["loaded"]["repeats"] == 1
    assert cli.main([*argv, "--busy", "-1"]) == 2
    assert "--busy must not be negative" in capsys.readouterr().err


def test_the_tables_still_read_a_report_written_before_the_load_was_measured():
    config = BenchConfig(size="tiny", repeat=1, warmup=0, modes=["numpy"], progress=False)
    report = to_json(run_benchmarks(config, workloads=[elementwise.WORKLOAD]))
    report["schema"] = "graphjit-bench/2"
    del report["settings"]["busy_processes"]
    for workload in report["workloads"]:
        for cell in workload["results"]:
            del cell["loaded"], cell["cores"], cell["loaded_cores"]
    assert "slowdown" not in format_table(report) + format_markdown(report)
    cores = TABLE_HEADER.index("cores")
    assert all(row[cores] == "-" for row in table_rows(report))  # (not measured then)


SLEEPING = Mode("sleeping", "waits instead of computing")


def test_cores_are_the_process_cpu_time_over_the_wall_time(monkeypatch):
    from graphjit.bench import runner

    cpu, wall = iter([10.0, 13.0]), iter([100.0, 102.0])  # 3 s of CPU time in 2 s
    monkeypatch.setattr(runner, "CPU_CLOCK", lambda: next(cpu))
    monkeypatch.setattr(runner, "WALL_CLOCK", lambda: next(wall))
    assert runner.cores_used(lambda x: x + 1, 1) == (2, 1.5)


def test_a_mode_that_waits_uses_no_core_and_the_table_says_so():
    def sleeping(data: dict) -> Prepared:
        correct = elementwise.build_numpy(data)
        return Prepared(run=lambda: (time.sleep(0.003), correct.run())[1])

    workload = elementwise.WORKLOAD.with_builder("sleeping", sleeping)
    config = BenchConfig("tiny", 3, 0, 0, modes=["sleeping"], busy=1, progress=False)
    run = run_benchmarks(config, workloads=[workload], modes=[*MODES, SLEEPING])
    (cell,) = run.results[0].cells
    assert cell.cores < 0.3 and cell.loaded_cores < 0.3  # (whatever else runs: it sleeps)
    report = to_json(run)
    validate(report)
    reported = report["workloads"][0]["results"][0]  # (the table formats these, rounded)
    assert f"{reported['cores']:.2f}→{reported['loaded_cores']:.2f}" in format_table(report)
