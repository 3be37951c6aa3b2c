"""The PassManager (verification after each pass, timing, printing the IR) and the report
`sess.inspect` gives of a compiled program."""

from __future__ import annotations

import time

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import VerificationError
from graphjit.ir import parse
from graphjit.ir.printer import print_function
from graphjit.ir.types import TensorType
from graphjit.passes.dce import DCE
from graphjit.passes.manager import Pass, PassManager
from graphjit.passes.pipeline import default_passes

SOURCE = """
func.func @main(%x: tensor<3xf64>) -> tensor<3xf64> {
  %e = "gj.exp"(%x) : (tensor<3xf64>) -> tensor<3xf64>
  %dead = "gj.neg"(%x) : (tensor<3xf64>) -> tensor<3xf64>
  %t = "gj.tanh"(%e) : (tensor<3xf64>) -> tensor<3xf64>
  func.return %t : tensor<3xf64>
}
"""


def function():
    return parse(SOURCE).functions[0]


class DropFirstExp(Pass):
    """Broken: erases an op whose result is still used."""

    name = "drop-exp"

    def run(self, fn):
        fn.block.ops = [op for op in fn.block.ops if op.name != "exp"]


class MistypeNeg(Pass):
    """Broken: gives `neg` a result type its shape rule does not infer (the op is dead,
    so a DCE after this pass would hide the damage)."""

    name = "mistype-neg"

    def run(self, fn):
        (neg,) = [op for op in fn.block.ops if op.name == "neg"]
        neg.results[0].type = TensorType((4,), neg.results[0].type.dtype)


class Sleep(Pass):
    name = "sleep"

    def run(self, fn):
        time.sleep(0.02)


# ---- verification ----------------------------------------------------------------------------


def test_a_pass_that_erases_a_used_op_fails_verification_naming_the_user():
    with pytest.raises(VerificationError) as info:
        PassManager([DropFirstExp()], verify_each=True).run(function())
    message = str(info.value)
    assert "op 'tanh'" in message and "used before it is defined" in message
    assert info.value.op.name == "tanh"
    assert "> " in message  # the IR around the op, its line marked


def test_verification_runs_after_each_pass_not_only_at_the_end():
    """DCE would remove the mistyped op, but the check after the broken pass catches it."""
    with pytest.raises(VerificationError, match="op 'neg'.*result types"):
        PassManager([MistypeNeg(), DCE()], verify_each=True).run(function())
    fn = function()
    PassManager([MistypeNeg(), DCE()], verify_each=False).run(fn)
    assert [op.name for op in fn.block.ops] == ["exp", "tanh", "return"]


def test_verification_follows_debug_mode_by_default(monkeypatch):
    monkeypatch.setenv("GRAPHJIT_DEBUG", "1")
    assert PassManager([]).verify_each
    monkeypatch.setenv("GRAPHJIT_DEBUG", "0")
    assert not PassManager([]).verify_each


# ---- timing and printing ---------------------------------------------------------------------


def test_each_pass_is_timed_and_a_repeated_pass_is_its_own_stage():
    report = PassManager([DCE(), Sleep(), DCE()], keep_ir=True).run(function())
    assert list(report.seconds) == ["dce", "sleep", "dce#2"]
    assert report.seconds["sleep"] >= 0.02
    assert all(0 <= s < report.seconds["sleep"] for k, s in report.seconds.items() if k != "sleep")
    assert list(report.ir) == ["input", "dce", "sleep", "dce#2"]
    assert "neg" in report.ir["input"] and "neg" not in report.ir["dce"]


def test_ir_is_kept_only_on_request():
    assert PassManager([DCE()]).run(function()).ir == {}


def test_print_ir_env_prints_every_stage_to_stderr(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHJIT_PRINT_IR", "1")
    fn = function()
    PassManager([DCE()]).run(fn)
    captured = capsys.readouterr()
    assert captured.out == ""
    before, after = captured.err.split("// ----- IR after dce -----\n")
    assert before.startswith("// ----- IR after input -----\n")
    assert "neg" in before and "neg" not in after
    assert after.strip() == print_function(fn).strip()


def test_print_ir_env_off_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHJIT_PRINT_IR", "0")
    PassManager([DCE()]).run(function())
    assert capsys.readouterr().err == ""


def test_print_ir_env_shows_a_sessions_pipeline(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHJIT_PRINT_IR", "1")
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        y = gj.exp(x) * 1.0
    with gj.Session(g, backend="interpreter", optimize=True) as sess:
        sess.run(y, {x: np.zeros(3)})
    err = capsys.readouterr().err
    stages = [p.name for p in default_passes()]
    assert stages[:6] == ["canonicalize", "cse", "gemm", "dce", "fusion", "dce"]
    headers = [line for line in err.splitlines() if line.startswith("// ----- IR after")]
    assert headers[:7] == [
        f"// ----- IR after {s} -----"
        for s in ["input", "canonicalize", "cse", "gemm", "dce", "fusion", "dce#2"]
    ]
    assert "mul" in err.split("after canonicalize")[0]  # x * 1.0 before canonicalize only
    assert "mul" not in err.split("after canonicalize")[1]


# ---- sess.inspect ----------------------------------------------------------------------------


def inspected(optimize=True):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 4], name="x")
        w = gj.Variable(np.ones((4, 2), np.float32), name="w")
        y = gj.tanh(gj.matmul(gj.exp(x) + 1.0, w))
    with gj.Session(g, backend="interpreter", optimize=optimize) as sess:
        return sess.inspect(y, {x: np.zeros((3, 4), np.float32)})


def test_inspect_reports_kernels_memory_ir_and_time():
    report = inspected()
    assert report.kernels == 3  # exp+add, the matmul, tanh
    assert isinstance(report.arena_bytes, int) and isinstance(report.unplanned_bytes, int)
    # one buffer per value, at least: exp+add's result [3, 4], the matmul's and tanh's [3, 2]
    assert report.unplanned_bytes >= (12 + 6 + 6) * 4
    assert 0 < report.arena_bytes <= report.unplanned_bytes
    stages = list(report.ir)
    assert stages[0] == "input" and stages[1:6] == ["canonicalize", "cse", "gemm", "dce", "fusion"]
    assert "tensor<3x4xf32>" in report.ir["input"]  # specialised to the fed shape
    assert "fused" not in report.ir["input"] and "fused" in report.ir["fusion"]
    assert set(report.pass_seconds) == set(stages[1:])
    assert report.compile_seconds >= sum(report.pass_seconds.values())


def test_inspect_str_is_a_readable_summary():
    report = inspected()
    text = str(report)
    assert "kernels:          3" in text
    assert f"{report.arena_bytes} bytes" in text
    assert "pipeline stages:  input, canonicalize, cse, gemm, dce, fusion" in text
    assert "compile time:" in text and " ms" in text


def test_inspect_without_optimisation_counts_every_op():
    report = inspected(optimize=False)
    assert report.kernels == 4  # exp, add, matmul, tanh: nothing fused
    assert "pipeline stages:  (none)" in str(report)
