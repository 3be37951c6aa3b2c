"""The default optimisation pipeline that Session runs before code generation; its last
stage attaches the memory plan (`fn.memory_plan`) that code generators consume."""

from __future__ import annotations

from graphjit.passes.canonicalize import Canonicalize
from graphjit.passes.cse import CSE
from graphjit.passes.dce import DCE
from graphjit.passes.fusion import Fusion
from graphjit.passes.gemm import Gemm
from graphjit.passes.manager import PassManager
from graphjit.passes.memory import PlanMemory


def default_passes() -> list:
    return [Canonicalize(), CSE(), Gemm(), DCE(), Fusion(), DCE(), PlanMemory()]


def lowering_passes() -> list:
    """What a code generator needs even when optimisation is off: kernels and a plan."""
    return [Fusion(), DCE(), PlanMemory()]


def optimize(fn, verify_each=None, keep_ir=False, passes=None):
    """Run `passes` (the default pipeline) on `fn` in place; returns the PipelineReport."""
    chosen = default_passes() if passes is None else passes
    return PassManager(chosen, verify_each=verify_each, keep_ir=keep_ir).run(fn)
