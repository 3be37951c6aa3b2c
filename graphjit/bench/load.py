"""A background load for `graphjit bench --busy N`: N processes that each keep one core
busy while a cell is timed a second time, so the report shows how each mode degrades
when the machine is shared (issue 18: one busy process beside an MLP; NumPy's threaded
OpenBLAS went from 3 to 12-180 ms).

A busy process is Python's `while True: pass` -- what a user's other job looks like to
the scheduler: always runnable, never sleeping. It checks every million iterations that
the bench is still its parent and exits when it is not, so a bench killed outright
leaves no busy loop behind; the context manager kills and reaps them however the timing
ends (an error, Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

# Exits when the process that started it (its first argument: a bench killed before the
# loop starts has already handed it to init) is no longer its parent, checking rarely
# enough that the loop is a plain busy loop.
BUSY_LOOP = (
    "import os, sys\n"
    "parent = int(sys.argv[1])\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(1_000_000): pass\n"
)
# Time for the busy processes to start their interpreters and reach the loop, so the
# first samples are taken beside them rather than beside interpreters starting up.
SETTLE_S = 0.2


@contextlib.contextmanager
def busy_processes(count: int):
    """Run `count` busy processes for the duration of the block (none for 0); yields
    their Popen objects."""
    if count < 0:
        raise ValueError(f"the number of busy processes must not be negative, not {count}")
    processes = []
    try:
        for _ in range(count):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", BUSY_LOOP, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        if processes:
            time.sleep(SETTLE_S)
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()
