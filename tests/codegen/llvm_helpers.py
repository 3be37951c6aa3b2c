"""The llvm backend tests compare against the interpreter with tests/backend_check.py."""

from __future__ import annotations

import contextlib
import functools

from backend_check import assert_matches, compare_on, run_on

import graphjit.codegen.llvm as llvm_backend
from graphjit.codegen.llvm import cache, compile_worker

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


@contextlib.contextmanager
def fresh_compile_worker(monkeypatch):
    """No worker running at the start, the worker on (no dump switch, no disk cache), the
    in-memory cache empty; every worker stopped at the end."""
    for name in ("GRAPHJIT_COMPILE_WORKER", "GRAPHJIT_DUMP_LLVM", "GRAPHJIT_DUMP_ASM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GRAPHJIT_CACHE_DIR", raising=False)
    compile_worker.shutdown()
    cache.memory_clear()
    try:
        yield
    finally:
        compile_worker.shutdown()
        cache.memory_clear()


__all__ = ["assert_matches", "compare_backends", "fresh_compile_worker", "record_llvm_ir", "run_on"]
