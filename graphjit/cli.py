"""The `graphjit` command line."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from graphjit.bench import cli as bench_cli


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="graphjit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("quickstart", help="run the quickstart example (static and eager side by side)")
    bench = sub.add_parser(
        "bench", help="benchmark static vs dynamic modes", description=bench_cli.DESCRIPTION
    )
    bench_cli.add_arguments(bench)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench_cli.run(args)
    if args.command == "quickstart":
        example = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
        runpy.run_path(str(example), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
