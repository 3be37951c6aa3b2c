"""The harness end to end on tiny sizes: every workload in every installed mode, the JSON
schema, the tables and the plot; and the same with every peer library hidden, so that
skipping is tested on every machine. Timings are produced, never asserted.

The run is the bench tests' shared tiny run (conftest.py: torch.compile on its "eager"
backend)."""

import json
import sys

import pytest

from graphjit.bench import MODES, WORKLOADS, BenchConfig, peers, report, run_benchmarks
from graphjit.bench.schema import REPORT_SCHEMA, validate

CORE_MODES = {"gj-llvm", "gj-interp", "gj-eager", "numpy"}
PEER_MODULES = {"torch": "torch", "torch-compile": "torch", "jax-jit": "jax", "tf1": "tensorflow",
                "gj-iree": "iree"}  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_report(tiny_run) -> dict:
    return report.to_json(tiny_run)


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
    partial = {m.name for m in MODES if m.partial}
    for workload, cell in cells(tiny_report):
        if cell["mode"] in partial and cell["reason"] == "no builder for this mode":
            continue  # a mode only some workloads build
        if cell["mode"] in available:
            assert cell["status"] == "ok", (workload, cell["mode"], cell["reason"])
            assert cell["timing"]["repeats"] == 1
            assert cell["compile_s"] > 0


def test_every_mode_is_available_or_says_why_not(tiny_report):
    for mode in tiny_report["modes"]:
        assert mode["available"] == (mode["skip_reason"] is None), mode
    reasons = {m["name"]: m["skip_reason"] for m in tiny_report["modes"] if not m["available"]}
    for _, cell in cells(tiny_report):
        if cell["mode"] in reasons:
            assert cell["status"] == "skipped"
            assert cell["reason"] == reasons[cell["mode"]]
            assert cell["timing"] is None


def test_missing_peers_are_skipped_with_their_reason(monkeypatch):
    """Every peer hidden (an import of it fails, as when it is not installed), whatever this
    machine has installed: the real probes must report each peer mode skipped, with the
    reason, and the graphjit and NumPy modes must still run."""
    for module in PEER_MODULES.values():
        monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    for submodule in ("iree.compiler", "iree.runtime"):  # (imported already by other tests)
        monkeypatch.setitem(sys.modules, submodule, None)
    # the torch.compile probe caches its verdict per backend: ask the uncached function
    monkeypatch.setattr(peers, "_torch_compile_problem", peers._torch_compile_problem.__wrapped__)
    config = BenchConfig(size="tiny", repeat=1, warmup=0, workloads=["loop_add"], progress=False)
    hidden = report.to_json(run_benchmarks(config))
    modes = {m["name"]: m for m in hidden["modes"]}
    assert {name for name, m in modes.items() if not m["available"]} == set(PEER_MODULES)
    for name, module in PEER_MODULES.items():
        assert modes[name]["skip_reason"].startswith(f"{module} is not installed"), modes[name]
    for _, cell in cells(hidden):
        if cell["mode"] in PEER_MODULES:
            assert cell["status"] == "skipped"
            assert cell["reason"] == modes[cell["mode"]]["skip_reason"]
            assert cell["timing"] is None and cell["speedup_vs_eager"] is None
        elif cell["reason"] != "no builder for this mode":  # (a partial mode's gap)
            assert cell["status"] == "ok", (cell["mode"], cell["reason"])
    validate(hidden)
    text = report.format_table(hidden)
    assert all(f"SKIPPED: {modes[name]['skip_reason']}" in text for name in PEER_MODULES)


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
