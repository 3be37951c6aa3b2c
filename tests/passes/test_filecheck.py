"""Every case file under cases/<pass>/ through the FileCheck harness, and the harness's own
matching rules (so a case cannot pass by matching nothing)."""

from __future__ import annotations

import numpy as np
import pytest
from filecheck import (
    CASES_DIR,
    PASSES,
    CheckFailure,
    case_files,
    match,
    parse_case,
    repeatable,
    run_case,
    run_passes,
)

from graphjit.ir import parse
from graphjit.runtime.interpreter import Interpreter

CASES = case_files()


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case(path):
    run_case(path)


def test_every_optimisation_pass_has_cases():
    """Memory planning (its plan printed under the IR) and autodiff too; test_memory.py
    checks every plan of the test programs by simulation."""
    passes = {"canonicalize", "cse", "gemm", "dce", "fusion", "memory", "autodiff"}
    assert passes <= set(PASSES)
    folders = {p.parent.name for p in CASES}
    assert passes <= folders, f"passes without a case folder under {CASES_DIR}"


def _argument(t, rng, flag: bool):
    if t.dtype.is_floating:
        return rng.uniform(-1, 1, size=t.shape).astype(t.dtype.np)
    return np.array(flag if t.dtype.is_bool else 3, dtype=t.dtype.np)


@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize(
    "path", [p for p in CASES if p.parent.name == "autodiff"], ids=lambda p: p.stem
)
def test_autodiff_cases_compute_the_gradient(path, flag):
    """The IR an autodiff case checks computes the gradient: in the interpreter it matches
    central differences of the case's own function (boolean arguments `flag`, integers 3)."""
    case = parse_case(path.read_text())
    forward = parse(case.source).functions[0]
    backward = parse(run_passes(case.source, case.passes)).functions[0]
    args = [_argument(a.type, np.random.default_rng(0), flag) for a in forward.args]

    def f(values) -> float:
        return sum(float(np.sum(y)) for y in Interpreter().run(forward, values))

    outputs = Interpreter().run(backward, args)
    floats = [i for i, a in enumerate(args) if a.dtype.kind == "f"]
    grads = outputs[len(outputs) - len(floats) :]
    assert len(grads) == len(floats) and len(outputs) > len(floats)
    for i, grad in zip(floats, grads):
        expected = np.zeros_like(args[i])
        for k in np.ndindex(args[i].shape):
            up, down = [a.copy() for a in args], [a.copy() for a in args]
            up[i][k] += 1e-6
            down[i][k] -= 1e-6
            expected[k] = (f(up) - f(down)) / 2e-6
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8, err_msg=f"arg {i}")


# ---- the harness ---------------------------------------------------------------------------

OUTPUT = """\
%0 = mul %arg0, %arg1
%1 = add %0, %arg1
%2 = exp %1
return %2
"""


def checks(text: str):
    return parse_case("// RUN: dce\n" + text).checks


@pytest.mark.parametrize(
    "text",
    [
        "// CHECK: mul\n// CHECK: add\n// CHECK: return",
        "// CHECK: mul\n// CHECK-NEXT: add\n// CHECK-NEXT: exp",
        "// CHECK: add\n// CHECK-NOT: mul\n// CHECK: return",
        "// CHECK: exp\n// CHECK-NOT: add",
        "// CHECK: %{{[0-9]+}} = exp",
        "// CHECK: [[X:%[0-9]+]] = add\n// CHECK: exp [[X]]",
    ],
)
def test_matching_output_passes(text):
    match(OUTPUT, checks(text))


@pytest.mark.parametrize(
    "text, why",
    [
        ("// CHECK: add\n// CHECK: mul", "no match after this point"),  # order matters
        ("// CHECK: mul\n// CHECK-NEXT: exp", "no match on the next line"),
        ("// CHECK: mul\n// CHECK-NOT: add\n// CHECK: exp", "the text is there"),
        ("// CHECK: add\n// CHECK-NOT: return", "the text is there"),
        ("// CHECK: %{{[a-z]+}} = exp", "no match"),
        ("// CHECK: [[X:%[0-9]+]] = mul\n// CHECK: exp [[X]]", "no match"),
        ("// CHECK: return\n// CHECK-NEXT: mul", "there is no next line"),
    ],
)
def test_mismatching_output_fails(text, why):
    with pytest.raises(CheckFailure, match=why):
        match(OUTPUT, checks(text))


@pytest.mark.parametrize(
    "text, why",
    [
        ("// CHECK: x", "no `// RUN"),
        ("// RUN: nosuchpass\n// CHECK: x", "unknown pass"),
        ("// RUN: dce\n// CHECK-NOT: x", "no CHECK or CHECK-NEXT"),
        ("// RUN: dce\n// CHECK-NEXT: x", "needs a match before it"),
    ],
)
def test_malformed_cases_are_errors(text, why):
    with pytest.raises(CheckFailure, match=why):
        parse_case(text)


REPEATABLE = [p for p in CASES if repeatable(parse_case(p.read_text()).passes)]


def test_only_autodiff_cases_are_not_repeated():
    assert {p.parent.name for p in set(CASES) - set(REPEATABLE)} == {"autodiff"}


@pytest.mark.parametrize("path", REPEATABLE, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_second_run_changes_nothing(path):
    """(The memory plan's comment lines parse as comments and the plan comes out the same.)"""
    case = parse_case(path.read_text())
    once = run_passes(case.source, case.passes)
    assert run_passes(once, case.passes) == once
