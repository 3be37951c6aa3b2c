"""Compiling a Program for a backend: the optimisation pipeline, then the backend's own
lowering. An Executable runs the compiled function on argument arrays."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from graphjit.errors import BackendError
from graphjit.passes.manager import PipelineReport
from graphjit.passes.pipeline import lowering_passes, optimize
from graphjit.runtime.program import Program
from graphjit.runtime.staged import StagedRunner, has_runtime_shapes


@dataclass
class Executable:
    program: Program
    runner: object  # has run(args) -> list of outputs
    report: PipelineReport = field(default_factory=PipelineReport)
    compile_seconds: float = 0.0

    def run(self, args: list) -> list:
        return self.runner.run(args)


class InterpreterRunner:
    def __init__(self, program: Program, check_numerics: bool):
        from graphjit.runtime.interpreter import Interpreter

        self.function = program.function
        self.interpreter = Interpreter(check_numerics)

    def run(self, args: list) -> list:
        return self.interpreter.run(self.function, args)


def _interpreter(program: Program, check_numerics: bool, flush_denormals: bool):
    return InterpreterRunner(program, check_numerics)  # NumPy: IEEE subnormals always


def _llvm(program: Program, check_numerics: bool, flush_denormals: bool):
    from graphjit.codegen.llvm import compile_llvm

    return compile_llvm(program, check_numerics, flush_denormals)


def _cuda(program: Program, check_numerics: bool, flush_denormals: bool):
    from graphjit.codegen.cuda import compile_cuda

    return compile_cuda(program, check_numerics)


def _iree(program: Program, check_numerics: bool, flush_denormals: bool):
    from graphjit.mlir.iree import iree_factory  # (the optional mlir extra)

    return iree_factory(program, check_numerics, flush_denormals)


def _require_iree() -> None:
    from graphjit.mlir.iree import require_iree

    require_iree()


@dataclass(frozen=True)
class Backend:
    """How a backend compiles: its runner factory, whether the optimisation pipeline runs
    by default, and whether it needs kernels (fusion and a memory plan) even without it."""

    factory: object  # (program, check_numerics, flush_denormals) -> runner with run(args)
    optimise_by_default: bool
    needs_kernels: bool
    require: object = None  # () -> None, raising BackendError when it cannot run here
    symbolic_sizes: bool = False  # compiles unknown dimensions as run-time sizes


BACKENDS = {
    "interpreter": Backend(_interpreter, optimise_by_default=False, needs_kernels=False),
    "llvm": Backend(_llvm, optimise_by_default=True, needs_kernels=True, symbolic_sizes=True),
    "cuda": Backend(_cuda, optimise_by_default=True, needs_kernels=True),
    # IREE compiles graphjit's MLIR export: it fuses and plans memory itself
    "iree": Backend(_iree, optimise_by_default=False, needs_kernels=False, require=_require_iree),
}


def compile_program(
    program: Program,
    backend: str,
    check_numerics=False,
    optimize_ir=None,
    keep_ir=False,
    flush_denormals=True,
    staged=True,
) -> Executable:
    """`program` compiled for `backend`. Shapes known only as it runs (a while_loop shape
    invariant with None dimensions, a cond whose branches differ in shape, the positions
    a boolean mask selects) make a compiling backend run it staged: runtime/staged.py."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
    chosen = BACKENDS[backend]
    start = time.perf_counter()
    report = PipelineReport()
    if chosen.needs_kernels and staged and has_runtime_shapes(program.function):
        runner = _staged_runner(program, backend, check_numerics, optimize_ir, flush_denormals)
        return Executable(program, runner, report, time.perf_counter() - start)
    if chosen.optimise_by_default if optimize_ir is None else optimize_ir:
        report = optimize(program.function, keep_ir=keep_ir)
    elif chosen.needs_kernels:  # unoptimised, but code generators only lower kernels
        report = optimize(program.function, keep_ir=keep_ir, passes=lowering_passes())
    runner = chosen.factory(program, check_numerics, flush_denormals)
    return Executable(program, runner, report, time.perf_counter() - start)


def _staged_runner(program, backend, check_numerics, optimize_ir, flush_denormals):
    def compile_stage(fn):
        stage = Program(fn, [], [], [], [], held_buffer_bytes=program.held_buffer_bytes)
        options = dict(check_numerics=check_numerics, flush_denormals=flush_denormals)
        return compile_program(stage, backend, optimize_ir=optimize_ir, staged=False, **options)

    return StagedRunner(program.function, compile_stage, check_numerics)
