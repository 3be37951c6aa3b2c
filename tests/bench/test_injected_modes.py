"""Modes injected through the API: a wrong result is an error and is not timed; a raising
builder is an error; an unavailable peer is skipped, never a failure."""

import numpy as np
import pytest

from graphjit.bench import MODES, BenchConfig, Mode, ModeUnavailable, Prepared, run_benchmarks
from graphjit.bench.workloads import elementwise, loops

WRONG = Mode("wrong", "deliberately wrong")


def off_by_one(data: dict) -> Prepared:
    correct = elementwise.build_numpy(data)
    return Prepared(run=lambda: correct.run() + np.float32(1))


def raises(data: dict) -> Prepared:
    raise RuntimeError("this builder is broken")


def needs_missing_peer(data: dict) -> Prepared:
    raise ModeUnavailable("somepeer is not installed")


def unavailable_probe() -> None:
    raise ModeUnavailable("nopeer is not installed")


def run_with(workload, extra_modes, mode_names) -> dict:
    config = BenchConfig(size="tiny", repeat=2, warmup=0, modes=mode_names, progress=False)
    run = run_benchmarks(config, workloads=[workload], modes=[*MODES, *extra_modes])
    (result,) = run.results
    return {cell.mode: cell for cell in result.cells}


def test_a_wrong_result_is_reported_as_an_error_and_not_timed():
    workload = elementwise.WORKLOAD.with_builder("wrong", off_by_one)
    cells = run_with(workload, [WRONG], ["numpy", "gj-eager", "wrong"])
    assert cells["wrong"].status == "error"
    assert cells["wrong"].reason.startswith("wrong result")
    assert cells["wrong"].timing is None and cells["wrong"].speedup_vs_eager is None
    assert cells["wrong"].max_abs_error == pytest.approx(1.0)
    assert cells["numpy"].status == cells["gj-eager"].status == "ok"


def test_a_raising_builder_is_reported_as_an_error():
    workload = loops.LOOP_ADD.with_builder("wrong", raises)
    cells = run_with(workload, [WRONG], ["gj-eager", "wrong"])
    assert cells["wrong"].status == "error"
    assert "RuntimeError: this builder is broken" in cells["wrong"].reason
    assert cells["gj-eager"].status == "ok"


def test_a_peer_missing_at_build_time_is_skipped():
    workload = loops.LOOP_ADD.with_builder("wrong", needs_missing_peer)
    cells = run_with(workload, [WRONG], ["wrong"])
    assert cells["wrong"].status == "skipped"
    assert cells["wrong"].reason == "somepeer is not installed"


def test_a_mode_whose_probe_fails_is_skipped_with_the_reason():
    absent = Mode("absent", "a peer that is not installed", probe=unavailable_probe)
    workload = loops.LOOP_ADD.with_builder("absent", off_by_one)
    cells = run_with(workload, [absent], ["numpy", "absent"])
    assert cells["absent"].status == "skipped"
    assert cells["absent"].reason == "nopeer is not installed"
    assert cells["numpy"].status == "ok"


def test_a_mode_without_a_builder_for_the_workload_is_skipped():
    cells = run_with(loops.LOOP_ADD, [WRONG], ["wrong"])
    assert cells["wrong"].status == "skipped"
    assert "no builder" in cells["wrong"].reason


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown mode"):
        run_benchmarks(BenchConfig(size="tiny", modes=["nonesuch"], progress=False))
    with pytest.raises(ValueError, match="unknown workload"):
        run_benchmarks(BenchConfig(size="tiny", workloads=["nonesuch"], progress=False))
    with pytest.raises(ValueError, match="unknown size"):
        run_benchmarks(BenchConfig(size="huge", progress=False))
