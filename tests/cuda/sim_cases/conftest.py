"""Runs under Numba's CUDA simulator. With GRAPHJIT_CUDA_KERNEL_LOG set, the kernels these
tests generate are appended there as JSON lines, one kernel a line, after each test (and
at the end of the session), so that tests/cuda/test_cuda_sim.py compiles them to PTX while
this suite is still running (the simulator cannot compile to PTX itself)."""

import dataclasses
import json
import os
import sys

LOG = "GRAPHJIT_CUDA_KERNEL_LOG"

# The simulator runs each GPU thread as a Python thread and its block manager polls them
# at every barrier: with the default 5 ms GIL switch interval a reduction kernel's
# syncthreads() take milliseconds each. A short interval makes the suite ~20x faster.
sys.setswitchinterval(5e-5)

_logged = 0  # how many of GENERATED (in insertion order) are in the log


def _log_new_kernels() -> None:
    global _logged
    path = os.environ.get(LOG)
    if not path:
        return
    from graphjit.codegen.cuda.compiler import GENERATED

    new = list(GENERATED.values())[_logged:]
    if new:
        with open(path, "a") as f:  # whole lines: the reader takes complete lines only
            f.write("".join(json.dumps(dataclasses.asdict(k)) + "\n" for k in new))
        _logged += len(new)


def pytest_runtest_logfinish(nodeid, location):
    _log_new_kernels()


def pytest_sessionfinish(session, exitstatus):
    _log_new_kernels()
