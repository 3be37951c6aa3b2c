"""Every example runs as a script and checks its own results with asserts; here each must
exit with status 0 within the timeout. The examples start together (each is a separate
process, mostly waiting on imports and compiles), and each test waits for its own.
The eager_* examples are run, and their printed numbers checked, by tests/eager."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT_S = 120
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("eager_"))


@pytest.fixture(scope="module")
def started():
    # GRAPHJIT_EXAMPLE_QUICK: examples that train for minutes take a few steps instead
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent), "GRAPHJIT_EXAMPLE_QUICK": "1"}
    env.pop("GRAPHJIT_PRINT_IR", None)
    with tempfile.TemporaryDirectory() as out_dir:
        processes = {
            name: subprocess.Popen(
                [sys.executable, str(EXAMPLES / name), out_dir],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name in SCRIPTS
        }
        yield processes
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_and_its_checks_pass(started, name):
    try:
        stdout, stderr = started[name].communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        started[name].kill()
        pytest.fail(f"{name} did not finish in {TIMEOUT_S} s")
    assert started[name].returncode == 0, f"{name} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}"
    assert stdout.strip(), f"{name} printed nothing"


def test_every_example_is_run_by_a_test():
    eager_tests = (EXAMPLES.parent / "tests" / "eager" / "test_examples.py").read_text()
    eager = [p.stem for p in EXAMPLES.glob("eager_*.py")]
    assert all(f"test_{stem}" in eager_tests for stem in eager)
    assert {"quickstart.py", "mlp_three_ways.py", "control_flow.py"} <= set(SCRIPTS)
    assert "mixed_precision.py" in SCRIPTS
