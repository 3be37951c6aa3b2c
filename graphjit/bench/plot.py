"""`--plot FILE.png`: median time per workload and mode as grouped bars, log scale.
matplotlib is optional (the `bench` extra): without it the plot is skipped with a note."""

from __future__ import annotations

from pathlib import Path


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(
            "matplotlib is not installed: pip install 'graphjit[bench]' for --plot"
        ) from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as pyplot

    return pyplot


def write_plot(report: dict, path: str | Path) -> None:
    """Write the bar chart of `report` (the JSON form) to `path` (PNG)."""
    pyplot = _pyplot()
    workloads = [w["name"] for w in report["workloads"]]
    modes = [m for m in report["modes"] if _has_timings(report, m["name"])]
    figure, axes = pyplot.subplots(figsize=(12, 5.5), dpi=80)
    width = 0.8 / max(1, len(modes))
    for index, mode in enumerate(modes):
        positions, medians = _bars(report, mode["name"])
        offsets = [p - 0.4 + width * (index + 0.5) for p in positions]
        axes.bar(offsets, medians, width, label=mode["label"])
    axes.set_yscale("log")
    axes.set_xticks(range(len(workloads)), workloads, rotation=20, ha="right")
    axes.set_ylabel("median time per run (s, log scale)")
    machine = report["machine"]
    axes.set_title(
        f"graphjit bench ({report['settings']['size']} size): {machine['cpu']}, "
        f"{machine['cores']} cores; lower is better",
        fontsize=10,
    )
    axes.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    axes.grid(axis="y", which="major", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    pyplot.close(figure)


def _has_timings(report: dict, mode: str) -> bool:
    return any(
        c["mode"] == mode and c["status"] == "ok" for w in report["workloads"] for c in w["results"]
    )


def _bars(report: dict, mode: str) -> tuple[list[int], list[float]]:
    positions, medians = [], []
    for index, workload in enumerate(report["workloads"]):
        for cell in workload["results"]:
            if cell["mode"] == mode and cell["status"] == "ok":
                positions.append(index)
                medians.append(cell["timing"]["median_s"])
    return positions, medians
