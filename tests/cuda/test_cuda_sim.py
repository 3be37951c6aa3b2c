"""The cuda backend's kernels, run and compiled without a GPU.

The simulated cases (sim_cases/) need NUMBA_ENABLE_CUDASIM=1 before numba is imported, so
they run here in a pytest process of their own, which also logs every kernel it generated.
Then each of those kernels is compiled to PTX for sm_90 with numba-cuda's NVVM: the
simulator runs kernels as Python, so a kernel that would not type-check on the GPU can
pass there; NVVM catches it (it needs numba-cuda with NVVM, not a GPU). The simulated suite
runs on one core, so the PTX compiles start as its kernels are logged, on the others, and
take every core once it has finished."""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import pytest

from graphjit.codegen.cuda.compiler import compile_ptx, ptx_unavailable
from graphjit.codegen.cuda.source import KernelSource

ROOT = Path(__file__).resolve().parents[2]
SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
TIMEOUT_S = 900

pytestmark = pytest.mark.skipif(
    SIMULATING, reason="the simulator is on: sim_cases/ are collected in this process"
)


@dataclass
class Simulated:
    """What the simulated suite did, and what the PTX check of its kernels found."""

    status: int
    output: str
    kernels: list = field(default_factory=list)  # every kernel logged, as dicts
    compiled: int = 0  # how many of them were compiled to PTX (one per `_template`)
    failures: list = field(default_factory=list)
    ptx_unavailable: str | None = None


_early: dict = {}  # start_early()'s run: "thread", then "process", "result" or "error"


def start_early() -> None:
    """Start the simulated suite and its PTX check on a thread of their own (conftest.py
    does, once the run is collected and includes this module): they take ~100 s in
    processes of their own, which the rest of the run overlaps instead of waiting."""
    if _early:
        return
    directory = Path(tempfile.mkdtemp(prefix="graphjit-cuda-"))

    def run():
        try:
            _early["result"] = _simulate(directory, _early)
        except BaseException as e:  # (pytest.fail's too: the fixture raises it)
            _early["error"] = e
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    _early["thread"] = threading.Thread(target=run, name="cuda-simulator", daemon=True)
    _early["thread"].start()


def stop_early() -> None:
    """End an early run's simulated suite if no test has waited for it (the session ended
    first: -x, Ctrl-C)."""
    process = _early.get("process")
    if process is not None and process.poll() is None:
        process.kill()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """The simulated suite's run (start_early's, else one now)."""
    if not _early:
        return _simulate(tmp_path_factory.mktemp("cuda"))
    _early["thread"].join(TIMEOUT_S + 120)
    if "error" in _early:
        raise _early["error"]
    if "result" not in _early:
        pytest.fail(f"the simulated suite's thread did not finish in {TIMEOUT_S + 120} s")
    return _early["result"]


def _simulate(tmp: Path, handles: dict | None = None) -> Simulated:
    """The simulated suite, run in a process of its own, and the PTX check of the kernels
    it logs, compiled (one per `_template`) in worker processes as they are logged; the
    process is put in `handles` while it runs."""
    log, output = tmp / "kernels.jsonl", tmp / "output.txt"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "GRAPHJIT_CUDA_KERNEL_LOG": str(log)}
    command = [sys.executable, "-m", "pytest", "tests/cuda/sim_cases", "-p"]
    command += ["no:cacheprovider", "-W", "ignore::RuntimeWarning"]
    reason = ptx_unavailable()
    workers = 0 if reason else max(1, min(os.cpu_count() or 1, 4))
    with open(output, "w") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        if handles is not None:
            handles["process"] = process
        try:
            kernels, compiled, failures = _compile_as_logged(process, log, workers)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return Simulated(process.returncode, output.read_text(), kernels, compiled, failures, reason)


def _compile_as_logged(process, log: Path, workers: int) -> tuple[list, int, list]:
    """Reads the log's new lines until `process` has exited, compiling one kernel of each
    new `_template` on `workers` processes (one fewer while the simulated suite runs: it
    takes a core of its own); the kernels logged, how many were compiled, the failures."""
    deadline = time.monotonic() + TIMEOUT_S
    kernels, templates, queue, failures = [], set(), collections.deque(), []
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers else None
    running, offset, compiled = set(), 0, 0
    try:
        while True:
            finished = process.poll() is not None  # (then the log is complete)
            if log.exists():
                with open(log, "rb") as f:
                    f.seek(offset)
                    data = f.read()
                complete = data[: data.rfind(b"\n") + 1]  # a line being written waits
                offset += len(complete)
                for line in complete.decode().splitlines():
                    kernel = json.loads(line)
                    kernels.append(kernel)
                    if pool is not None and _template(kernel) not in templates:
                        templates.add(_template(kernel))
                        queue.append(kernel)
            limit = workers if finished else max(1, workers - 1)
            while queue and len(running) < limit:
                running.add(pool.submit(_compile_all, [queue.popleft()]))
                compiled += 1
            if finished and not running:
                return kernels, compiled, failures
            if time.monotonic() > deadline:
                pytest.fail(f"the simulated suite and its PTX check took over {TIMEOUT_S} s")
            if running:
                done, running = wait(running, timeout=0.1, return_when=FIRST_COMPLETED)
                failures += [failure for future in done for failure in future.result()]
            else:
                time.sleep(0.1)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def test_simulated_cases_pass(simulated):
    assert simulated.status == 0, f"the simulated cuda suite failed:\n{simulated.output[-6000:]}"
    assert " passed" in simulated.output and len(simulated.kernels) > 100


def _compile_all(sources: list[dict]) -> list[str]:
    """Runs in a worker process: the failures among these kernels."""
    failures = []
    for k in sources:
        try:
            compile_ptx(KernelSource(**k), opt=False)
        except Exception as e:
            failures.append(str(e)[:2000])
    return failures


NARROW = {"float16", "bfloat16"}
# What a float16/bfloat16 kernel adds to a float32 one (codegen/cuda/narrow.py): Numba's
# float16 casts, bfloat16's bit arithmetic, and float64's rounding to odd before bfloat16.
NARROW_CONVERSIONS = ("float16(", "uint16(", "libdevice.int_as_float(", "float_as_int(float32(")


def _template(kernel: dict) -> tuple:
    """Kernels whose sources differ only in integer literals (the shapes and strides baked
    into them) type, lower and verify alike, and so do equal sources with other parameter
    types (a copy's source is every dtype's). A float16/bfloat16 kernel computes in
    float32: its op lines are a float32 kernel's (checked with those), so one per generator
    (its label), dtypes and narrow conversions used stands for the rest."""
    dtypes = set(kernel["params"])
    if NARROW & dtypes:
        used = tuple(c for c in NARROW_CONVERSIONS if c in kernel["source"])
        return re.sub(r"[\d\[\], ]+", " ", kernel["label"]), tuple(sorted(dtypes)), used
    return (re.sub(r"\b\d+\b", "N", kernel["source"]),)


def _one_per_template(kernels: list[dict]) -> list[dict]:
    """One kernel of each `_template` (about half of them): what is compiled."""
    return list({_template(k): k for k in kernels}.values())


def test_every_simulated_kernel_compiles_to_ptx(simulated):
    """Optimisation off: typing, lowering and NVVM's verifier are what is checked; the
    optimiser would only make the check slower."""
    if simulated.ptx_unavailable:
        pytest.skip(f"cannot compile to PTX here: {simulated.ptx_unavailable}")
    assert simulated.kernels, "the simulated suite logged no kernels"
    assert simulated.compiled == len(_one_per_template(simulated.kernels))
    failures = simulated.failures
    assert not failures, f"{len(failures)} of {simulated.compiled} kernels failed:\n" + "\n".join(
        failures[:5]
    )
