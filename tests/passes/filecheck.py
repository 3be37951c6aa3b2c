"""A small FileCheck (after LLVM's) for pass tests written as text.

A case file `cases/<pass>/<name>.mlir` holds input IR in the printer's format, one
`// RUN: <pass> [<pass> ...]` line naming the passes to run (by their `name`), and check
lines matched in order against the printed result:

    // CHECK: text        the text appears at or after the end of the previous match
    // CHECK-NEXT: text   the text appears on the line right after the previous match
    // CHECK-NOT: text    the text does not appear between the previous match and the next
                          (or the end of the output, when no positive check follows)

Check text is matched literally, except `{{regex}}` (a regular expression),
`[[NAME:regex]]` (matches the regex and binds NAME to what it matched) and `[[NAME]]`
(the text NAME was bound to). The IR parser treats `//` lines as comments, so the case
file is parsed as it is.

Besides the pipeline's passes, RUN may name `autodiff`: each function then returns, after
what it returned, the gradient of the sum of its returned float values with respect to each
float argument that they depend on (what `gj.gradients` emits, seeded with ones). After the
`memory` pass the output shows each function's plan below it, one comment line per planned
value, named as in the printed IR:

    // memory: %5 arena offset=0 bytes=16 over %arg0      (kind, where, and the notes:
    // memory: arena 64 bytes, peak live 64 bytes          views / into / over a value)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from graphjit.ir import parse, verify
from graphjit.ir.builder import create, insertion_point
from graphjit.ir.ops import P
from graphjit.ir.printer import print_function
from graphjit.passes.autodiff import backprop, differentiable
from graphjit.passes.manager import Pass, PassManager
from graphjit.passes.pipeline import default_passes

CASES_DIR = Path(__file__).parent / "cases"


class Autodiff(Pass):
    """`return ys` becomes `return ys, d(sum ys)/dx...` for the float arguments x that some
    y depends on: the IR that `gj.gradients(ys, xs)` emits, so a case can check it."""

    name = "autodiff"
    repeatable = False  # a second run differentiates the gradients again

    def run(self, fn) -> None:
        ret = fn.block.ops.pop()
        ys = list(ret.operands)
        xs = [x for x in fn.args if differentiable(x)]
        with insertion_point(fn.block):
            seeds = [P.broadcast_like(1, y) if differentiable(y) else None for y in ys]
            grads = backprop(list(fn.block.ops), ys, seeds, xs)
            create("return", ys + [g for g in grads if g is not None])


# Every pass of the default pipeline, and autodiff, by its name.
PASSES = {type(p).name: type(p) for p in default_passes()} | {Autodiff.name: Autodiff}

_DIRECTIVE = re.compile(r"//\s*(RUN|CHECK|CHECK-NEXT|CHECK-NOT):(.*)$")
_PIECE = re.compile(r"\{\{(.+?)\}\}|\[\[(\w+):(.+?)\]\]|\[\[(\w+)\]\]")


class CheckFailure(AssertionError):
    pass


@dataclass
class Check:
    kind: str  # CHECK, CHECK-NEXT or CHECK-NOT
    text: str
    line: int  # in the case file

    def regex(self, bindings: dict[str, str]) -> re.Pattern:
        """The check as a regex; binding groups are named after their variables."""
        parts, end = [], 0
        for m in _PIECE.finditer(self.text):
            parts.append(re.escape(self.text[end : m.start()]))
            regex, name, name_regex, use = m.groups()
            if regex is not None:
                parts.append(f"(?:{regex})")
            elif name is not None:
                parts.append(f"(?P<{name}>{name_regex})")
            elif use not in bindings:
                raise CheckFailure(f"line {self.line}: [[{use}]] is used before it is bound")
            else:
                parts.append(re.escape(bindings[use]))
            end = m.end()
        parts.append(re.escape(self.text[end:]))
        return re.compile("".join(parts))

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.text}"


@dataclass
class Case:
    source: str
    passes: list[str]
    checks: list[Check]


def parse_case(source: str) -> Case:
    passes, checks = None, []
    for number, line in enumerate(source.splitlines(), 1):
        m = _DIRECTIVE.search(line)
        if m is None:
            continue
        kind, text = m.group(1), m.group(2).strip()
        if kind == "RUN":
            if passes is not None:
                raise CheckFailure(f"line {number}: a case has one RUN line")
            passes = text.replace(",", " ").split()
        else:
            checks.append(Check(kind, text, number))
    if not passes:
        raise CheckFailure("the case has no `// RUN: <passes>` line")
    unknown = [p for p in passes if p not in PASSES]
    if unknown:
        raise CheckFailure(f"unknown pass(es) {unknown}; known: {sorted(PASSES)}")
    if not any(c.kind != "CHECK-NOT" for c in checks):
        raise CheckFailure("the case has no CHECK or CHECK-NEXT line")
    if checks[0].kind == "CHECK-NEXT":
        raise CheckFailure(f"{checks[0]}: CHECK-NEXT needs a match before it")
    return Case(source, passes, checks)


def repeatable(pass_names: list[str]) -> bool:
    """Whether running the passes on their own output must change nothing."""
    return all(getattr(PASSES[name], "repeatable", True) for name in pass_names)


def run_passes(source: str, pass_names: list[str]) -> str:
    """Parse the IR, verify it, run the passes with verification after each, print it
    (with the memory plan of each function that has one)."""
    module = parse(source)
    verify(module)
    manager = PassManager([PASSES[name]() for name in pass_names], verify_each=True)
    printed = []
    for fn in module.functions:
        manager.run(fn)
        printed.append(print_function(fn) + describe_plan(getattr(fn, "memory_plan", None)))
    return "\n".join(printed)


def describe_plan(plan) -> str:
    """The memory plan as comment lines (so the output still parses), one per value."""
    if plan is None:
        return ""
    lines = []
    for value, b in plan.buffers.items():
        where = "" if b.offset is None else f" offset={b.offset}"
        notes = [
            f" {label} {plan.names.get(w, '?')}"
            for label, w in (("views", b.alias_of), ("into", b.variable), ("over", b.reuses))
            if w is not None
        ]
        name = plan.names.get(value, "?")
        lines.append(f"// memory: {name} {b.kind}{where} bytes={b.nbytes}{''.join(notes)}")
    if plan.arena_bytes is None:
        lines.append("// memory: arena size unknown until shapes are known")
    else:
        lines.append(
            f"// memory: arena {plan.arena_bytes} bytes, peak live {plan.peak_live_bytes} bytes"
        )
    return "".join(line + "\n" for line in lines)


def match(output: str, checks: list[Check]) -> None:
    """Raise CheckFailure at the first check the output does not satisfy."""
    pos, bindings, pending_not = 0, {}, []
    for check in checks:
        if check.kind == "CHECK-NOT":
            pending_not.append(check)
            continue
        start, end = pos, len(output)
        if check.kind == "CHECK-NEXT":
            start = output.find("\n", pos) + 1
            if start in (0, len(output)):
                raise _failure(check, output, pos, "there is no next line")
            end = output.find("\n", start)
            end = len(output) if end < 0 else end
        found = check.regex(bindings).search(output, start, end)
        if found is None:
            where = "on the next line" if check.kind == "CHECK-NEXT" else "after this point"
            raise _failure(check, output, start, f"no match {where}")
        _check_absent(pending_not, output, pos, found.start(), bindings)
        pending_not = []
        bindings.update({k: v for k, v in found.groupdict().items() if v is not None})
        pos = found.end()
    _check_absent(pending_not, output, pos, len(output), bindings)


def _check_absent(checks, output, start, end, bindings) -> None:
    for check in checks:
        found = check.regex(bindings).search(output, start, end)
        if found is not None:
            raise _failure(check, output, found.start(), "the text is there")


def _failure(check: Check, output: str, at: int, why: str) -> CheckFailure:
    """The check, why it failed, and the output with the failing point marked."""
    line = output.count("\n", 0, at)
    lines = output.splitlines()
    marked = "\n".join(("> " if i == line else "  ") + text for i, text in enumerate(lines))
    return CheckFailure(f"{check}\n{why}:\n{marked}")


def run_case(path: Path) -> str:
    """Run one case file; returns the output it was matched against."""
    case = parse_case(path.read_text())
    output = run_passes(case.source, case.passes)
    try:
        match(output, case.checks)
    except CheckFailure as e:
        raise CheckFailure(f"{path.name}, {e}") from None
    return output


def case_files() -> list[Path]:
    return sorted(CASES_DIR.glob("*/*.mlir"))
