"""`sess.inspect(...)`: what the compiler made of a set of fetches."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphjit.ir.core import Function
from graphjit.ir.ops import CONSTANT, KERNEL, STATE_UPDATE
from graphjit.ir.symbolic import is_symbolic
from graphjit.passes.memory import ALIAS, VARIABLE, MemoryPlan, plan_memory


def count_kernels(fn: Function) -> int:
    """Generated kernels: fused ops and the compute ops left outside them (matmul, copies),
    counted once however often a loop runs them; ops inside fused regions are not."""
    count = 0
    stack = [fn.block]
    while stack:
        block = stack.pop()
        for op in block.ops:
            if op.opdef.has(KERNEL):
                count += 1
                continue
            # no computation of their own: constants, state updates (written in place),
            # ops without results (terminators, groups), branches and loops (their regions')
            opdef = op.opdef
            if not (opdef.traits & {CONSTANT, STATE_UPDATE} or not op.results or opdef.regions):
                count += 1
            stack += [r.block for r in op.regions]
    return count


@dataclass
class CompileReport:
    kernels: int
    arena_bytes: int | None  # None while some shape is unknown
    unplanned_bytes: int | None
    peak_live_bytes: int | None = None
    in_place: int = 0  # outputs written over an input's buffer (variables included)
    aliases: int = 0  # views that share another value's storage
    variables_in_place: int = 0  # assigns written straight into the variable
    ir: dict[str, str] = field(default_factory=dict)
    compile_seconds: float = 0.0
    pass_seconds: dict[str, float] = field(default_factory=dict)
    memory_plan: MemoryPlan | None = field(default=None, repr=False)
    # working memory the compiled program keeps between runs (GRAPHJIT_HELD_BUFFER_BYTES)
    held_bytes: int = 0
    # the large constants the llvm runner keeps beside the code (lower.INLINE_CONSTANT_BYTES)
    constant_bytes: int = 0
    driver: str | None = None  # the iree backend's runtime driver: local-sync or local-task
    # Compiled for every size of the feeds' unknown dimensions that its guards admit
    # (ir/symbolic.py), or for the fed shapes alone; the guards, on symbols s0, s1, ...
    # (the feeds' unknown dimensions, in order); the sizes are the run's.
    any_size: bool = False
    size_guards: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, executable, args=()) -> CompileReport:
        """The report on `executable`, its sizes those of a run on `args` (the feeds)."""
        program = executable.program
        fn = program.function
        # the pipeline attaches the plan; an unoptimised function is planned here
        plan = getattr(fn, "memory_plan", None) or plan_memory(fn)
        env = program.shape_env
        values = program.size_values(args) if env is not None else []

        def sized(n):
            return n.evaluate(values) if is_symbolic(n) else n

        return cls(
            kernels=count_kernels(fn),
            arena_bytes=sized(plan.arena_bytes),
            unplanned_bytes=sized(plan.unplanned_bytes),
            peak_live_bytes=sized(plan.peak_live_bytes),
            in_place=len(plan.in_place),
            aliases=len(plan.of_kind(ALIAS)),
            variables_in_place=sum(
                1 for v in plan.of_kind(VARIABLE) if v.op.opdef.has(STATE_UPDATE)
            ),
            memory_plan=plan,
            held_bytes=getattr(executable.runner, "held_bytes", 0),
            constant_bytes=getattr(executable.runner, "constant_bytes", 0),
            driver=getattr(executable.runner, "driver", None),
            ir=dict(executable.report.ir),
            compile_seconds=executable.compile_seconds,
            pass_seconds=dict(executable.report.seconds),
            any_size=env is not None,
            size_guards=env.describe() if env is not None else [],
        )

    def __str__(self) -> str:
        lines = [
            f"kernels:          {self.kernels}",
            f"arena:            {self._arena()}",
            f"peak live:        {self.peak_live_bytes} bytes",
            f"held between runs: {self.held_bytes} bytes",
            f"in place:         {self.in_place} outputs over their inputs "
            f"({self.variables_in_place} variable updates), {self.aliases} aliases",
            f"compile time:     {self.compile_seconds * 1e3:.1f} ms",
            "pipeline stages:  " + ", ".join(self.ir) if self.ir else "pipeline stages:  (none)",
        ]
        lines += [f"  {name:<14} {sec * 1e3:.2f} ms" for name, sec in self.pass_seconds.items()]
        if self.constant_bytes:
            lines.append(f"constants:        {self.constant_bytes} bytes beside the code")
        if self.driver is not None:
            lines.append(f"iree driver:      {self.driver}")
        if self.any_size:
            lines.append("compiled for:     every size of the unknown dimensions (s0, ...)")
            lines += [f"  where {guard}" for guard in self.size_guards]
        else:
            lines.append("compiled for:     the fed shapes")
        return "\n".join(lines)

    def _arena(self) -> str:
        if self.arena_bytes is None or self.unplanned_bytes is None:
            return "unknown until shapes are known"
        saved = 1 - self.arena_bytes / self.unplanned_bytes if self.unplanned_bytes else 0.0
        return (
            f"{self.arena_bytes} bytes "
            f"(one buffer per value: {self.unplanned_bytes} bytes, {saved:.0%} saved)"
        )
