"""The harness end to end on tiny sizes: every workload in every installed mode, the JSON
schema, the tables and the plot. Timings are produced, never asserted.

torch.compile runs with its "eager" backend here: dynamo still traces every builder, but
inductor's code generation (tens of seconds on two cores) is left to `graphjit bench`."""

import json

import pytest

from graphjit.bench import MODES, WORKLOADS, BenchConfig, report, run_benchmarks
from graphjit.bench.schema import REPORT_SCHEMA, validate

CORE_MODES = {"gj-llvm", "gj-interp", "gj-eager", "numpy"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_report() -> dict:
    config = BenchConfig(
        size="tiny", repeat=1, warmup=0, progress=False, torch_compile_backend="eager"
    )
    return report.to_json(run_benchmarks(config))


def cells(tiny_report):
    for workload in tiny_report["workloads"]:
        for cell in workload["results"]:
            yield workload["name"], cell


def test_every_workload_runs_in_every_mode(tiny_report):
    assert [w["name"] for w in tiny_report["workloads"]] == [w.name for w in WORKLOADS]
    for workload in tiny_report["workloads"]:
        assert [c["mode"] for c in workload["results"]] == [m.name for m in MODES]


def test_every_installed_mode_computes_the_reference_result(tiny_report):
    available = {m["name"] for m in tiny_report["modes"] if m["available"]}
    assert CORE_MODES <= available
    for workload, cell in cells(tiny_report):
        if cell["mode"] in available:
            assert cell["status"] == "ok", (workload, cell["mode"], cell["reason"])
            assert cell["timing"]["repeats"] == 1
            assert cell["compile_s"] > 0


def test_missing_peers_are_skipped_with_their_reason(tiny_report):
    reasons = {m["name"]: m["skip_reason"] for m in tiny_report["modes"] if not m["available"]}
    for _, cell in cells(tiny_report):
        if cell["mode"] in reasons:
            assert cell["status"] == "skipped"
            assert cell["reason"] == reasons[cell["mode"]]
            assert cell["timing"] is None


def test_static_modes_report_dispatch_overhead(tiny_report):
    static = {m["name"] for m in tiny_report["modes"] if m["static"]}
    for _, cell in cells(tiny_report):
        if cell["status"] == "ok":
            assert (cell["dispatch"] is not None) == (cell["mode"] in static)


def test_speedups_are_relative_to_graphjit_eager(tiny_report):
    for _, cell in cells(tiny_report):
        if cell["mode"] == "gj-eager":
            assert cell["speedup_vs_eager"] == pytest.approx(1.0)


def test_report_matches_the_documented_schema(tiny_report):
    validate(tiny_report)
    validate(json.loads(json.dumps(tiny_report)))  # what --json writes reads back valid


def test_report_matches_the_schema_under_jsonschema(tiny_report):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(tiny_report, REPORT_SCHEMA)


def test_report_has_machine_and_library_versions(tiny_report):
    machine = tiny_report["machine"]
    assert machine["cpu"] and machine["os"] and machine["python"]
    assert machine["cores"] >= 1
    assert tiny_report["libraries"]["numpy"]
    assert tiny_report["libraries"]["graphjit"]


def test_tables_show_every_workload_and_mode(tiny_report):
    text, markdown = report.format_table(tiny_report), report.format_markdown(tiny_report)
    for workload in tiny_report["workloads"]:
        assert workload["name"] in text and workload["name"] in markdown
    for mode in tiny_report["modes"]:
        assert mode["label"] in text
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    matrix_rows, table_rows = 1 + len(WORKLOADS), 1 + len(WORKLOADS) * len(MODES)
    assert len(rows) == matrix_rows + table_rows


def test_plot_is_a_png(tiny_report, tmp_path):
    pytest.importorskip("matplotlib")
    from graphjit.bench.plot import write_plot

    path = tmp_path / "bench.png"
    write_plot(tiny_report, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
