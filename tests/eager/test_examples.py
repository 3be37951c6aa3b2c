"""Every eager example runs as a script and prints the numbers it promises. The scripts
start together (each a process of its own, mostly importing), and each test waits for its
own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT_S = 120
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("eager_*.py"))
_started: dict[str, subprocess.Popen] = {}


@pytest.fixture(scope="module", autouse=True)
def start_every_example():
    """Starts every eager example at once; run_example waits for one of them."""
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent)}
    for name in SCRIPTS:
        _started[name] = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    yield
    for process in _started.values():
        if process.poll() is None:  # (a test that failed early left it running)
            process.kill()
            process.communicate()
    _started.clear()


def run_example(name: str) -> str:
    process = _started[name]
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{name} did not finish in {TIMEOUT_S} s")
    assert process.returncode == 0, stderr
    return stdout


def numbers_after(label: str, output: str) -> list[float]:
    line = next(line for line in output.splitlines() if line.startswith(label))
    return [float(n) for n in re.findall(r"-?\d+\.?\d*(?:e[-+]?\d+)?", line[len(label) :])]


def test_every_eager_example_is_tested():
    tested = {name for name in globals() if name.startswith("test_eager_")}
    scripts = {f"test_{p.stem}" for p in EXAMPLES.glob("eager_*.py")}
    assert scripts <= tested, f"untested examples: {sorted(scripts - tested)}"


def test_eager_autograd_basics():
    out = run_example("eager_autograd_basics.py")
    assert "tensor([12.])" in out and "<MulBackward> <PowBackward>" in out
    assert numbers_after("f'(2) for f = x**2 + x:", out) == [5.0]
    assert numbers_after("dz/dx of 3*(x**2)**2 at x=2:", out) == [96.0]
    assert numbers_after("df/da, df/db of a**2 + 2ab + b**3 at (2, 3):", out) == [10.0, 31.0]


def test_eager_linear_regression():
    out = run_example("eager_linear_regression.py")
    weight, bias = numbers_after("learned weight", out)[:2]
    assert weight == pytest.approx(3.0, abs=0.02) and bias == pytest.approx(-2.0, abs=0.02)
    assert numbers_after("final loss", out)[0] < 0.01


def test_eager_mlp():
    out = run_example("eager_mlp.py")
    assert numbers_after("training accuracy", out)[0] >= 0.97
    assert numbers_after("final loss", out)[0] < 0.1


def test_eager_gradient_accumulation():
    out = run_example("eager_gradient_accumulation.py")
    assert numbers_after("max |full-batch grad - accumulated grad| =", out)[0] < 1e-12
    assert numbers_after("loss after 20 accumulated steps", out)[0] < 1.0


def test_eager_gradient_clipping():
    out = run_example("eager_gradient_clipping.py")
    assert numbers_after("gradient norm before clipping", out)[0] > 1.0
    assert numbers_after("gradient norm after clip_grad_norm_(max_norm=1.0)", out)[
        -1
    ] == pytest.approx(1.0, abs=1e-4)
    assert numbers_after("largest gradient element after clip_grad_value_(0.5)", out)[-1] == 0.5
    before = numbers_after("loss before training", out)[0]
    assert numbers_after("loss after 100 clipped steps", out)[-1] < before


def test_eager_custom_functions():
    out = run_example("eager_custom_functions.py")
    for name in ("MyReLU", "MySigmoid", "Cubic"):
        assert f"{name} gradcheck: True" in out
    assert "WrongCubic gradcheck: False" in out
    assert "Cubic(2, a=0.5) = 4.0 with grad_fn <CubicBackward>" in out
    assert "Jacobian mismatch" in out


def test_eager_hessian_vector_product():
    out = run_example("eager_hessian_vector_product.py")
    assert numbers_after("Hessian-vector product by double backward:", out) == [202.0, -300.0]
    assert numbers_after("Hessian @ v computed by hand:", out) == [202.0, -300.0]
    assert numbers_after("f(1, 2) =", out) == [100.0]
