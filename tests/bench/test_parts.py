"""The harness's parts on their own: the timing function, the result check, the schema
validator and the progress fallback."""

import builtins
import sys

import numpy as np
import pytest

from graphjit.bench.check import compare, tolerance_for
from graphjit.bench.progress import Progress
from graphjit.bench.schema import SchemaError, validate
from graphjit.bench.timing import Timing, measure

# ---- timing -----------------------------------------------------------------------------


def test_measure_warms_up_then_times_each_repeat():
    calls, synced = [], []
    timing = measure(lambda: calls.append(1) or len(calls), warmup=2, repeats=5, sync=synced.append)
    assert len(calls) == 7 and synced == [1, 2, 3, 4, 5, 6, 7]
    assert timing.repeats == 5 and len(timing.samples_s) == 5
    assert timing.min_s <= timing.q1_s <= timing.median_s <= timing.q3_s <= timing.max_s


def test_timing_statistics():
    timing = Timing.from_samples([4.0, 1.0, 3.0, 2.0])
    assert (timing.median_s, timing.min_s, timing.max_s) == (2.5, 1.0, 4.0)
    assert (timing.q1_s, timing.q3_s) == (1.75, 3.25)
    assert timing.iqr_s == 1.5


def test_measure_needs_a_repeat():
    with pytest.raises(ValueError):
        measure(lambda: None, repeats=0)


# ---- result check -----------------------------------------------------------------------


def test_values_within_the_float32_tolerance_pass():
    want = [np.float32(2.0), np.linspace(-1, 1, 5, dtype=np.float32)]
    got = [np.float32(2.0 * (1 + 1e-4)), want[1] + np.float32(1e-6)]
    outcome = compare(got, want)
    assert outcome.ok and outcome.max_abs_error < 1e-3


def test_values_outside_the_tolerance_fail_with_the_worst_element():
    outcome = compare([np.array([1.0, 2.0], np.float32)], [np.array([1.0, 2.1], np.float32)])
    assert not outcome.ok and "exceeds the tolerance" in outcome.message
    assert outcome.max_abs_error == pytest.approx(0.1, rel=1e-5)


def test_a_workload_scale_loosens_the_tolerance():
    got, want = [np.float32(1.005)], [np.float32(1.0)]
    assert not compare(got, want).ok
    assert compare(got, want, scale=10.0).ok


def test_shape_count_and_nan_mismatches_fail():
    assert "shape" in compare([np.zeros(3)], [np.zeros(4)]).message
    assert "2 values returned" in compare([1.0, 2.0], [1.0]).message
    assert "NaN" in compare([np.array([np.nan])], [np.array([1.0])]).message
    assert compare([np.array([np.inf])], [np.array([np.inf])]).ok


def test_integers_must_match_exactly():
    assert tolerance_for(np.int64) == (0.0, 0.0)
    assert not compare([np.array([3])], [np.array([4])]).ok


# ---- schema validator -------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["status", "items"],
    "additionalProperties": False,
    "properties": {
        "status": {"enum": ["ok", "error"]},
        "items": {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 1},
        "note": {"type": ["string", "null"]},
    },
}


def test_the_validator_accepts_a_matching_value():
    validate({"status": "ok", "items": [0, 1.5], "note": None}, SCHEMA)


@pytest.mark.parametrize(
    "value, message",
    [
        ({"items": [1]}, "missing required key 'status'"),
        ({"status": "fine", "items": [1]}, "not one of"),
        ({"status": "ok", "items": []}, "fewer than 1 items"),
        ({"status": "ok", "items": [-1]}, "below the minimum"),
        ({"status": "ok", "items": [True]}, "expected number"),
        ({"status": "ok", "items": [1], "extra": 1}, "unexpected key 'extra'"),
    ],
)
def test_the_validator_names_the_problem_and_its_path(value, message):
    with pytest.raises(SchemaError, match=message):
        validate(value, SCHEMA)


# ---- progress ---------------------------------------------------------------------------


def test_progress_falls_back_to_plain_lines_without_tqdm(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm":
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "tqdm", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with Progress(2) as progress:
        progress.start("first")
        progress.advance()
        progress.start("second")
        progress.advance()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["[1/2] first", "[2/2] second"]


def test_disabled_progress_prints_nothing(capsys):
    with Progress(1, enabled=False) as progress:
        progress.start("quiet")
        progress.advance()
    assert capsys.readouterr().err == ""
