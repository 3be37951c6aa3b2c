"""Run a job with a monitor per rank, which says which rank died and how when one dies
without a Python error (monitor.py; docs/distributed.md):

    python -m graphjit.distributed.run -n 4 train.py --lr 0.1
    mpiexec -n 4 python -m graphjit.distributed.run train.py --lr 0.1     (the same)

The first form runs the wheel's mpiexec with the monitor started as a script (no import of
graphjit per monitor); the second, for mpiexec options of your own, imports graphjit in
each monitor (a few seconds more at start)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from graphjit.distributed import monitor

USAGE = (
    "usage: python -m graphjit.distributed.run -n N PYTHON-ARGS...   (runs mpiexec)\n"
    "   or: mpiexec [OPTIONS] python -m graphjit.distributed.run PYTHON-ARGS...\n"
)


def find_mpiexec() -> str | None:
    beside_python = Path(sys.executable).parent / "mpiexec"  # where the mpich wheel puts it
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


def launch(processes: str, python_args: list[str]):
    """Replace this process by mpiexec running `python ARGS` under a monitor per process."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        sys.exit("graphjit.distributed.run: no mpiexec (pip install graphjit[distributed])")
    ranks = [sys.executable, "-I", monitor.__file__, *python_args]
    os.execv(mpiexec, [mpiexec, "-n", processes, *ranks])


def main(argv: list[str]) -> None:
    launching = len(argv) >= 2 and argv[0] in ("-n", "-np") and argv[1].isdigit()
    python_args = argv[2:] if launching else argv
    if not python_args or python_args[0] in ("-h", "--help"):
        sys.exit(USAGE)
    if launching:
        launch(argv[1], python_args)
    monitor.monitor(python_args)


if __name__ == "__main__":
    main(sys.argv[1:])
