"""Passes and the PassManager that runs a named pipeline of them.

A pass is a small named object with `run(function)`. The manager verifies the IR after
each pass (in tests and debug mode), times each pass, keeps the IR text after each stage
when asked (for `sess.inspect`), and prints it with GRAPHJIT_PRINT_IR=1.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from graphjit import config
from graphjit.ir.core import Function
from graphjit.ir.printer import print_function
from graphjit.ir.verifier import verify


class Pass:
    name = "pass"

    def run(self, fn: Function) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


def debug_mode() -> bool:
    return config.debug()


@dataclass
class PipelineReport:
    seconds: dict[str, float] = field(default_factory=dict)
    ir: dict[str, str] = field(default_factory=dict)


class PassManager:
    def __init__(self, passes, verify_each=None, keep_ir=False, print_ir=None):
        self.passes = list(passes)
        self.verify_each = debug_mode() if verify_each is None else verify_each
        self.print_ir = config.print_ir() if print_ir is None else print_ir
        self.keep_ir = keep_ir or self.print_ir

    def run(self, fn: Function) -> PipelineReport:
        report = PipelineReport()
        self._record(report, "input", fn)
        for p in self.passes:
            stage = _stage_name(report, p.name)
            start = time.perf_counter()
            p.run(fn)
            report.seconds[stage] = time.perf_counter() - start
            if self.verify_each:
                verify(fn)
            self._record(report, stage, fn)
        return report

    def _record(self, report: PipelineReport, stage: str, fn: Function) -> None:
        if not self.keep_ir:
            return
        text = print_function(fn)
        report.ir[stage] = text
        if self.print_ir:
            print(f"// ----- IR after {stage} -----\n{text}", file=sys.stderr)


def _stage_name(report: PipelineReport, name: str) -> str:
    """A pass that runs again (dce after fusion) gets its own stage: `dce`, then `dce#2`."""
    stage, n = name, 1
    while stage in report.seconds:
        n += 1
        stage = f"{name}#{n}"
    return stage
