"""The cuda backend's kernels, run and compiled without a GPU.

The simulated cases (sim_cases/) need NUMBA_ENABLE_CUDASIM=1 before numba is imported, so
they run here in a pytest process of their own, which also logs every kernel it generated.
Then each of those kernels is compiled to PTX for sm_90 with numba-cuda's NVVM: the
simulator runs kernels as Python, so a kernel that would not type-check on the GPU can
pass there; NVVM catches it (it needs numba-cuda with NVVM, not a GPU)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from graphjit.codegen.cuda.compiler import compile_ptx, ptx_unavailable
from graphjit.codegen.cuda.source import KernelSource

ROOT = Path(__file__).resolve().parents[2]
SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

pytestmark = pytest.mark.skipif(
    SIMULATING, reason="the simulator is on: sim_cases/ are collected in this process"
)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """(exit status, output, generated kernels) of the simulated suite."""
    log = tmp_path_factory.mktemp("cuda") / "kernels.json"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "GRAPHJIT_CUDA_KERNEL_LOG": str(log)}
    command = [sys.executable, "-m", "pytest", "tests/cuda/sim_cases", "-p"]
    command += ["no:cacheprovider", "-W", "ignore::RuntimeWarning"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    kernels = [KernelSource(k["source"], tuple(k["params"]), k["label"]) for k in _load(log)]
    return done.returncode, done.stdout + done.stderr, kernels


def _load(path: Path) -> list:
    return json.loads(path.read_text()) if path.exists() else []


def test_simulated_cases_pass(simulated):
    status, output, kernels = simulated
    assert status == 0, f"the simulated cuda suite failed:\n{output[-6000:]}"
    assert " passed" in output and len(kernels) > 100


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
    """One kernel of each `_template` is compiled (about half of them)."""
    return list({_template(k): k for k in kernels}.values())


def test_every_simulated_kernel_compiles_to_ptx(simulated):
    """Optimisation off: typing, lowering and NVVM's verifier are what is checked; the
    optimiser would only make the check slower."""
    reason = ptx_unavailable()
    if reason:
        pytest.skip(f"cannot compile to PTX here: {reason}")
    kernels = _one_per_template([dataclasses.asdict(k) for k in simulated[2]])
    assert kernels, "the simulated suite logged no kernels"
    workers = max(1, min(os.cpu_count() or 1, 4))
    chunks = [kernels[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        failures = [f for part in pool.map(_compile_all, chunks) for f in part]
    assert not failures, f"{len(failures)} of {len(kernels)} kernels failed:\n" + "\n".join(
        failures[:5]
    )
