"""`graphjit bench` and `python -m graphjit.bench`: run the static-vs-dynamic benchmark and
print a table. Exit status 1 when any mode raised or computed a wrong result; modes whose
library is missing are skipped, which is not an error."""

from __future__ import annotations

import argparse
import os
import sys

from graphjit.bench.modes import mode_names
from graphjit.bench.workloads import WORKLOADS, workload_names

DESCRIPTION = (
    "Time each workload in every available mode (graphjit static llvm/interpreter, graphjit "
    "eager, NumPy, and where installed PyTorch eager, torch.compile, jax.jit, TensorFlow 1 "
    "graphs): results are checked against NumPy first, then timed (warm-up, inner loops "
    "calibrated to a minimum time per sample, repeated samples: median and min per call; "
    "rows whose samples spread widely are flagged as taken on a busy machine)."
)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--quick", action="store_true", help="small sizes, 3 repeats (a couple of minutes)"
    )
    sizes.add_argument(
        "--tiny", action="store_true", help="tiny sizes, 2 repeats: a smoke test of the harness"
    )
    parser.add_argument(
        "--only",
        type=_names,
        metavar="NAMES",
        help=f"comma-separated workloads to run, of: {', '.join(workload_names())}",
    )
    parser.add_argument(
        "--modes",
        type=_names,
        metavar="NAMES",
        help=f"comma-separated modes to run, of: {', '.join(mode_names())}",
    )
    parser.add_argument("--repeat", type=int, metavar="N", help="timed samples per mode")
    parser.add_argument("--warmup", type=int, metavar="N", help="untimed runs before timing")
    parser.add_argument(
        "--min-time",
        type=float,
        metavar="SECONDS",
        help="least time of one timed sample: a faster call is repeated within the sample "
        "(default 0.02, --quick 0.005, --tiny 0.001; 0: one call per sample)",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="also time each row beside N busy processes the bench starts (one busy loop "
        "each): the 'loaded' column and its ratio to the median show how each mode degrades "
        "on a shared machine",
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure, machine and versions")
    parser.add_argument("--plot", metavar="FILE.png", help="write a bar chart (needs matplotlib)")
    parser.add_argument("--markdown", metavar="FILE", help="write the table as Markdown")
    parser.add_argument(
        "--torch-compile-backend",
        default="inductor",
        metavar="NAME",
        help="torch.compile's backend (default inductor; 'eager' only traces, for smoke tests)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--list", action="store_true", help="list workloads and modes, then exit")


def run(args: argparse.Namespace) -> int:
    from graphjit.bench import report
    from graphjit.bench.runner import BenchConfig, run_benchmarks

    if args.list:
        say(list_text())
        return 0
    size = "quick" if args.quick else "tiny" if args.tiny else "full"
    config = BenchConfig(
        size=size,
        repeat=args.repeat,
        warmup=args.warmup,
        min_time_s=args.min_time,
        workloads=args.only,
        modes=args.modes,
        progress=not args.no_progress,
        torch_compile_backend=args.torch_compile_backend,
        busy=args.busy,
    )
    try:
        result = report.to_json(run_benchmarks(config))
    except ValueError as error:  # an unknown name or a bad count
        print(f"graphjit bench: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # (Ctrl-C: the busy processes of --busy are already gone)
        print("graphjit bench: interrupted", file=sys.stderr)
        return 130
    say(report.format_table(result))
    write_outputs(result, args)
    errors = [c for w in result["workloads"] for c in w["results"] if c["status"] == "error"]
    return 1 if errors else 0


def write_outputs(result: dict, args: argparse.Namespace) -> None:
    from graphjit.bench import report

    if args.json:
        report.write_json(result, args.json)
        say(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(report.format_markdown(result))
        say(f"wrote {args.markdown}")
    if args.plot:
        from graphjit.bench.plot import PlotUnavailable, write_plot

        try:
            write_plot(result, args.plot)
            say(f"wrote {args.plot}")
        except PlotUnavailable as reason:
            print(f"no plot: {reason}", file=sys.stderr)


def say(text: str) -> None:
    """Print to stdout. A reader that went away (`graphjit bench | head`) must not cost the
    files a run of many minutes writes after its table: stdout goes to the null device."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def list_text() -> str:
    lines = ["workloads:"]
    lines += [f"  {w.name:16} {w.description}" for w in WORKLOADS]
    from graphjit.bench.modes import MODES

    lines += ["modes:"] + [f"  {m.name:16} {m.label}" for m in MODES]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="graphjit bench", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
