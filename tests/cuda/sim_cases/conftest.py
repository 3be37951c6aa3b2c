"""Runs under Numba's CUDA simulator. With GRAPHJIT_CUDA_KERNEL_LOG set, the kernels these
tests generated are written there as JSON when the session ends, for the PTX check in
tests/cuda/test_cuda_sim.py (the simulator cannot compile to PTX itself)."""

import dataclasses
import json
import os
import sys

LOG = "GRAPHJIT_CUDA_KERNEL_LOG"

# The simulator runs each GPU thread as a Python thread and its block manager polls them
# at every barrier: with the default 5 ms GIL switch interval a reduction kernel's
# syncthreads() take milliseconds each. A short interval makes the suite ~20x faster.
sys.setswitchinterval(5e-5)


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get(LOG)
    if not path:
        return
    from graphjit.codegen.cuda.compiler import GENERATED

    with open(path, "w") as f:
        json.dump([dataclasses.asdict(k) for k in GENERATED.values()], f)
