"""What a run produces: the JSON report (see `schema.py`), with the machine and library
versions, and the tables printed from it (plain text, and Markdown for the docs). The
tables read the JSON form, so they can be regenerated from a saved `--json` file."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
from pathlib import Path

from graphjit.bench.modes import BASELINE_MODE, MODES, REFERENCE_MODE
from graphjit.bench.runner import BenchRun, CellResult, load_average
from graphjit.bench.schema import SCHEMA_ID
from graphjit.bench.timing import BUSY_EXPLANATION

LIBRARIES = ("graphjit", "numpy", "scipy", "llvmlite", "numba", "torch", "jax", "jaxlib")
LIBRARIES += ("tensorflow", "tensorflow-cpu", "matplotlib", "tqdm")
# Thread-count settings the libraries read at start-up: they change BLAS-heavy rows a lot.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ---- machine and versions ---------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(load_at_start: list[float] | None) -> dict:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": load_at_start,
        "load_average_end": load_average(),
        "thread_env": {name: os.environ.get(name) for name in THREAD_VARIABLES},
    }


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ---- the JSON report ------------------------------------------------------------------


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def cell_json(cell: CellResult) -> dict:
    return {
        "mode": cell.mode,
        "status": cell.status,
        "reason": cell.reason,
        "note": cell.note,
        "compile_s": cell.compile_s,
        "timing": cell.timing.to_json() if cell.timing else None,
        "dispatch": cell.dispatch.to_json() if cell.dispatch else None,
        "loaded": cell.loaded.to_json() if cell.loaded else None,
        "cores": _rounded(cell.cores),
        "loaded_cores": _rounded(cell.loaded_cores),
        "max_abs_error": _finite(cell.max_abs_error),
        "speedup_vs_eager": cell.speedup_vs_eager,
    }


def to_json(run: BenchRun) -> dict:
    config = run.config
    created = datetime.datetime.fromtimestamp(run.started, datetime.timezone.utc)
    return {
        "schema": SCHEMA_ID,
        "created": created.isoformat(timespec="seconds"),
        "seconds": round(run.seconds, 3),
        "settings": {
            "size": config.size,
            "repeat": config.repeat,
            "warmup": config.warmup,
            "min_time_s": config.min_time_s,
            "workloads": [r.workload.name for r in run.results],
            "modes": [m.name for m in run.modes],
            "reference_mode": REFERENCE_MODE,
            "baseline_mode": BASELINE_MODE,
            "torch_compile_backend": config.torch_compile_backend,
            "busy_processes": config.busy,
        },
        "machine": machine_info(run.load_average_start),
        "libraries": library_versions(),
        "modes": [
            {
                "name": m.name,
                "label": m.label,
                "static": m.static,
                "available": run.unavailable.get(m.name) is None,
                "skip_reason": run.unavailable.get(m.name),
            }
            for m in run.modes
        ],
        "workloads": [
            {
                "name": r.workload.name,
                "description": r.workload.description,
                "params": r.params,
                "tolerance_scale": r.workload.tolerance,
                "fresh_inputs": r.workload.fresh_inputs,
                "results": [cell_json(c) for c in r.cells],
            }
            for r in run.results
        ],
    }


def write_json(report: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


# ---- tables ---------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _speedup(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}×"


def _status_text(cell: dict) -> str:
    if cell["status"] == "ok":
        return cell["note"]
    return f"{cell['status'].upper()}: {cell['reason']}"


BUSY_MARK = "!"
TABLE_HEADER = (
    "workload",
    "mode",
    "median",
    "min",
    "IQR",
    "loops",
    "vs gj eager",
    "compile",
    "dispatch",
    "cores",
)
LOADED_HEADER = ("loaded", "slowdown")  # with --busy: the loaded median, over the median


def is_busy(cell: dict) -> bool:
    """Whether the cell's samples spread as on a busy machine (reports of schema 1, which
    did not judge it, never are)."""
    return bool((cell.get("timing") or {}).get("busy"))


def _median_text(cell: dict) -> str:
    text = format_seconds((cell["timing"] or {}).get("median_s"))
    return f"{text} {BUSY_MARK}" if is_busy(cell) else text


def _loops_text(timing: dict) -> str:
    """The calibrated loops, and '→N' where later samples ran fewer after an overrun."""
    if not timing:
        return "-"
    loops = timing.get("loops", 1)
    fewest = min(timing.get("sample_loops") or [loops])
    return f"{loops}→{fewest}" if fewest < loops else str(loops)


def has_loaded(report: dict) -> bool:
    """Whether the run timed its rows beside busy processes (`--busy N`)."""
    return bool(report["settings"].get("busy_processes"))


def table_header(report: dict) -> tuple[str, ...]:
    return TABLE_HEADER + (LOADED_HEADER if has_loaded(report) else ()) + ("status / note",)


def _loaded_texts(cell: dict) -> tuple[str, str]:
    """The loaded median and its ratio to the quiet median, as text."""
    loaded, timing = cell.get("loaded") or {}, cell["timing"] or {}
    if not loaded or not timing.get("median_s"):
        return "-", "-"
    return format_seconds(loaded["median_s"]), f"{loaded['median_s'] / timing['median_s']:.2f}×"


def _cores_text(cell: dict) -> str:
    """The cores the process used while timed: '1.98', or '1.98→1.08' quiet then loaded."""
    quiet, loaded = cell.get("cores"), cell.get("loaded_cores")
    if quiet is None:
        return "-"
    return f"{quiet:.2f}" + (f"→{loaded:.2f}" if loaded is not None else "")


def table_rows(report: dict) -> list[tuple[str, ...]]:
    labels = {m["name"]: m["label"] for m in report["modes"]}
    loaded = has_loaded(report)
    rows = []
    for workload in report["workloads"]:
        for cell in workload["results"]:
            timing, dispatch = cell["timing"] or {}, cell["dispatch"] or {}
            iqr = timing["q3_s"] - timing["q1_s"] if timing else None
            rows.append(
                (
                    workload["name"],
                    labels.get(cell["mode"], cell["mode"]),
                    _median_text(cell),
                    format_seconds(timing.get("min_s")),
                    format_seconds(iqr),
                    _loops_text(timing),
                    _speedup(cell["speedup_vs_eager"]),
                    format_seconds(cell["compile_s"]),
                    format_seconds(dispatch.get("median_s")),
                    _cores_text(cell),
                    *(_loaded_texts(cell) if loaded else ()),
                    _status_text(cell),
                )
            )
    return rows


def format_table(report: dict) -> str:
    """A plain-text table: one row per workload and mode (the workload named once, a blank
    line between workloads), then the settings, the machine and the skipped modes."""
    header = table_header(report)
    rows = table_rows(report)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells) -> str:
        return ("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]).rstrip()

    lines = [line(header)]
    for index, row in enumerate(rows):
        first_of_workload = index == 0 or rows[index - 1][0] != row[0]
        if first_of_workload and index > 0:
            lines.append("")
        lines.append(line((row[0] if first_of_workload else "",) + row[1:]))
    return "\n".join(lines) + "\n\n" + describe_run(report)


def format_markdown(report: dict) -> str:
    """Markdown for docs/benchmarks.md: a workload-by-mode matrix of medians, then the
    full table (IQR, compile time, dispatch overhead, notes)."""
    header = table_header(report)
    lines = [format_matrix(report), "", _markdown_row(header), "|" + "---|" * len(header)]
    lines += [_markdown_row(row) for row in table_rows(report)]
    return "\n".join(lines) + "\n\n" + describe_run(report) + "\n"


def format_matrix(report: dict) -> str:
    """One row per workload, one column per mode: 'median (speed-up vs graphjit eager)'."""
    modes = report["modes"]
    lines = [_markdown_row(["workload"] + [m["label"] for m in modes])]
    lines.append("|" + "---|" * (len(modes) + 1))
    for workload in report["workloads"]:
        by_mode = {c["mode"]: c for c in workload["results"]}
        lines.append(
            _markdown_row(
                [workload["name"]] + [_matrix_cell(by_mode.get(m["name"])) for m in modes]
            )
        )
    return "\n".join(lines)


def _matrix_cell(cell: dict | None) -> str:
    if cell is None:
        return ""
    if cell["status"] != "ok":
        return cell["status"]
    text = f"{_median_text(cell)} ({_speedup(cell['speedup_vs_eager'])})"
    if cell.get("loaded"):
        text += "; loaded {} ({})".format(*_loaded_texts(cell))
    return text


def _markdown_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def busy_rows(report: dict) -> list[str]:
    """'workload mode' of each cell flagged busy."""
    return [
        f"{workload['name']} {cell['mode']}"
        for workload in report["workloads"]
        for cell in workload["results"]
        if is_busy(cell)
    ]


def describe_run(report: dict) -> str:
    machine, settings = report["machine"], report["settings"]
    skipped = [f"  {m['label']}: {m['skip_reason']}" for m in report["modes"] if not m["available"]]
    threads = {k: v for k, v in machine.get("thread_env", {}).items() if v is not None}
    min_time = settings.get("min_time_s")
    calibrated = (
        f"each sample {format_seconds(min_time)} or more ('loops' calls, calibrated per row), "
        if min_time
        else ""
    )
    longer = [  # (modes that need more warm-up calls than asked: eager's compiles)
        f"{m.label} {m.warmup}"
        for m in MODES
        if m.name in settings["modes"] and m.warmup > settings["warmup"]
    ]
    warmup = f"{settings['warmup']}" + (f" ({', '.join(longer)})" if longer else "")
    lines = [
        f"size {settings['size']}, times per call: medians (and minima) of {settings['repeat']} "
        f"samples after {warmup} warm-up, {calibrated}"
        "speed-up = graphjit eager median / median",
        f"{machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python {machine['python']}; "
        f"load average {machine['load_average_start']} -> {machine['load_average_end']}"
        + (f"; {threads}" if threads else ""),
    ]
    fresh = [w["name"] for w in report["workloads"] if w.get("fresh_inputs")]
    if fresh:
        lines.append(
            f"{', '.join(fresh)}: each sample is one first call at a batch size the mode has "
            "not seen (no warm-up, no inner loops); compile = building it and its first call"
        )
    if has_loaded(report):
        count = settings["busy_processes"]
        lines.append(
            f"loaded: each row timed again beside {count} busy process"
            f"{'es' if count > 1 else ''} the bench started (a Python busy loop each); "
            "slowdown = loaded median / median"
            + (f" ({', '.join(fresh)} not loaded: its inputs were used)" if fresh else "")
        )
    busy = busy_rows(report)
    if busy:
        rows = f"{len(busy)} row{'s' if len(busy) > 1 else ''}"
        lines.append(f"{BUSY_MARK} busy ({rows}): {BUSY_EXPLANATION}")
    if skipped:
        lines += ["skipped modes:", *skipped]
    return "\n".join(lines)
