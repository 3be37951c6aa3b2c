"""The llvm backend tests compare against the interpreter with tests/backend_check.py."""

from __future__ import annotations

import functools

from backend_check import assert_matches, compare_on, run_on

import graphjit.codegen.llvm as llvm_backend

compare_backends = functools.partial(compare_on, "llvm")


def record_llvm_ir(monkeypatch) -> list[str]:
    """The LLVM IR of every program the llvm backend compiles from now on (the list
    grows as they compile)."""
    texts: list[str] = []
    compile_llvm = llvm_backend.compile_llvm

    def recording(*args):
        runner = compile_llvm(*args)
        texts.append(runner.llvm_ir)
        return runner

    monkeypatch.setattr(llvm_backend, "compile_llvm", recording)
    return texts


__all__ = ["assert_matches", "compare_backends", "record_llvm_ir", "run_on"]
