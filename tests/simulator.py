"""Runs cuda cases under Numba's CUDA simulator, in a process of its own: the simulator
is chosen by NUMBA_ENABLE_CUDASIM before numba is first imported, so a test process that
has imported numba already cannot switch to it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def run_simulated(args: list, pythonpath=(), timeout: int = 900) -> subprocess.CompletedProcess:
    """`python args...` from the repository root with the simulator on."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def run_script_simulated(script: str, pythonpath=(), timeout: int = 600):
    return run_simulated(["-c", script], pythonpath, timeout)


def assert_cuda_cases_pass(test_file: str, keyword: str = "cuda") -> None:
    """The cases of `test_file` selected by `keyword`, run under the simulator, all pass."""
    path = Path(test_file).resolve().relative_to(ROOT)
    args = ["-m", "pytest", str(path), "-p", "no:cacheprovider", "-W", "ignore::RuntimeWarning"]
    done = run_simulated([*args, "-k", keyword])
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"the simulated cuda cases failed:\n{output[-6000:]}"
    assert " passed" in output
