"""Every case file under cases/<pass>/ through the FileCheck harness, and the harness's own
matching rules (so a case cannot pass by matching nothing)."""

from __future__ import annotations

import pytest
from filecheck import (
    CASES_DIR,
    PASSES,
    CheckFailure,
    case_files,
    match,
    parse_case,
    run_case,
    run_passes,
)

CASES = case_files()


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case(path):
    run_case(path)


def test_every_optimisation_pass_has_cases():
    """(memory planning is tested in test_memory.py.)"""
    passes = {"canonicalize", "cse", "gemm", "dce", "fusion"}
    assert passes <= set(PASSES)
    folders = {p.parent.name for p in CASES}
    assert passes <= folders, f"passes without a case folder under {CASES_DIR}"


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


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_second_run_changes_nothing(path):
    case = parse_case(path.read_text())
    once = run_passes(case.source, case.passes)
    assert run_passes(once, case.passes) == once
