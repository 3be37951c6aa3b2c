"""Sizes of the run in native code: a compile for every batch size (ir/symbolic.py) leaves
sizes as SymInts, polynomials in the sizes the entry point receives as `i64* dims` (and in
sizes derived from them, floor(P / d)). A function that takes `dims` registers it
(`register`); `i64(n, b)` then evaluates a SymInt where `b` builds. Anywhere else a SymInt
becomes the constant of its hint, guarded: correct, and compiled for that size alone."""

from __future__ import annotations

import operator

from llvmlite import ir

from graphjit.codegen.llvm import types as T
from graphjit.ir.symbolic import SymInt, is_symbolic


def register(function: ir.Function, dims: ir.Value | None = None, compute=None) -> None:
    """`function` has the run's sizes at `dims` (an `i64*` argument of its own; marked
    noalias, so that LLVM hoists its loads out of loops), or computes them with
    `compute(b, n)` (the entry point: once, in its entry block). Kept on the function
    itself: a table of functions would keep every module ever lowered alive."""
    if compute is None:
        dims.add_attribute("noalias")
        compute = lambda b, n: run_size(b, dims, n)  # noqa: E731 (at the use: it dominates)
    function.graphjit_sizes = compute


def i64(n, b: ir.IRBuilder | None = None) -> ir.Value:
    """An i64 value as is; an int as a constant; a SymInt computed in the function `b`
    builds, if it registered its sizes, else the constant of its hint (guarded)."""
    if isinstance(n, ir.Value):
        return n
    if is_symbolic(n) and b is not None:
        compute = getattr(b.function, "graphjit_sizes", None)
        if compute is not None:
            return compute(b, n)
    return ir.Constant(T.I64, operator.index(n))


class RunMessage:
    """An error's words that name sizes of the run, made when it is raised (`words(*sizes)`
    at the failing run's sizes: a message formatted while compiling would pin them)."""

    def __init__(self, words, *sizes):
        self.words, self.sizes = words, sizes

    def __call__(self, values: list[int]) -> str:
        return self.words(*(n.evaluate(values) if is_symbolic(n) else n for n in self.sizes))


def message(words, *sizes):
    """`words(*sizes)` now where every size is an int, else a RunMessage."""
    return RunMessage(words, *sizes) if any(map(is_symbolic, sizes)) else words(*sizes)


def run_size(b: ir.IRBuilder, dims: ir.Value, n) -> ir.Value:
    """`n` (an int or a SymInt) as an i64 computed at `b`'s position from `dims`."""
    if not is_symbolic(n):
        return ir.Constant(T.I64, n)
    total = None
    for monomial, coefficient in sorted(n.poly.items()):
        term = ir.Constant(T.I64, coefficient)
        for atom in monomial:
            term = b.mul(term, _atom(b, dims, n.env, atom), flags=["nsw"])
        total = term if total is None else b.add(total, term, flags=["nsw"])
    return total


def _atom(b: ir.IRBuilder, dims: ir.Value, env, atom: int) -> ir.Value:
    definition = env.atoms[atom]
    if definition is None:  # a symbol: the entry's dims[atom]
        return b.load(b.gep(dims, [ir.Constant(T.I64, atom)]), name=f"s{atom}")
    terms, d = definition  # floor(P / d) of a P that is never negative
    numerator = run_size(b, dims, SymInt(env, dict(terms)))
    return b.udiv(numerator, ir.Constant(T.I64, d))
