"""LLVM module → verified, O3-optimised native code for the host CPU, through MCJIT.

The module is parsed and verified before it is compiled, so a code-generation bug is a
BackendError, never a crash. GRAPHJIT_DUMP_LLVM=1 prints the optimised LLVM IR,
GRAPHJIT_DUMP_ASM=1 the assembly."""

from __future__ import annotations

import os
import sys
import threading

import llvmlite.binding as llvm

from graphjit.codegen.llvm import cache
from graphjit.errors import BackendError

_lock = threading.RLock()  # reentrant: optimise() asks for the target machine
_target_machine = None


def _features() -> str:
    """The host's features; on AVX-512 CPUs also lift LLVM's preference for 256-bit vectors
    (a heuristic against clock throttling that halves our kernels' throughput)."""
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features:
        features += ",-prefer-256-bit"
    return features


def new_target_machine():
    """A target machine for the host CPU. An MCJIT engine takes ownership of (and frees) the
    one it is given, so each engine gets its own."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name(),
        features=_features(),
        opt=3,
        codemodel="jitdefault",
    )


def target_machine():
    """The shared target machine used for optimisation (never handed to an engine)."""
    global _target_machine
    with _lock:
        if _target_machine is None:
            _target_machine = new_target_machine()
        return _target_machine


def optimise(module: llvm.ModuleRef) -> None:
    tm = target_machine()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    # Unrolling and interleaving made the MLP training step compile 25% slower and ran
    # no faster on kernels that already use 512-bit vectors; so they stay off.
    pto.loop_unrolling = False
    pto.loop_interleaving = False
    builder = llvm.create_pass_builder(tm, pto)
    builder.getModulePassManager().run(module, builder)


def compile_module(ir_text: str) -> CompiledModule:
    """Native code for an LLVM IR module, from the compile caches when possible. Threads
    compile one at a time (LLVM's global context is not thread-safe), and a thread that
    waited for another's compile of the same module reuses it."""
    key = cache.cache_key(ir_text, llvm.get_host_cpu_name(), _features())
    compiled = cache.memory_get(key)
    if compiled is None:
        with _lock:
            compiled = cache.memory_get(key)
            if compiled is None:
                compiled = CompiledModule(ir_text, key)
                cache.memory_put(key, compiled)
    return compiled


class CompiledModule:
    """Native code for one module; keeps the engine (and so the code) alive. Freed (the
    engine disposed) when the last runner using it and the compile cache let go of it."""

    def __init__(self, ir_text: str, key: str | None = None):
        with _lock:  # parsing, optimising and JIT-linking all use LLVM's global context
            self._compile(ir_text, key)

    def _compile(self, ir_text: str, key: str | None) -> None:
        tm = target_machine()
        try:
            module = llvm.parse_assembly(ir_text)
            module.verify()
        except RuntimeError as e:
            raise BackendError(f"generated LLVM IR is invalid: {e}") from None
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        cached_object = cache.disk_load(key) if key is not None else None
        if cached_object is None:  # a cached object was optimised before it was saved
            optimise(module)
        if os.environ.get("GRAPHJIT_DUMP_LLVM", "") not in ("", "0"):
            print(str(module), file=sys.stderr)
        if os.environ.get("GRAPHJIT_DUMP_ASM", "") not in ("", "0"):
            print(tm.emit_assembly(module), file=sys.stderr)
        # The engine owns the module from here on: keep no second reference to free it.
        self.engine = llvm.create_mcjit_compiler(module, new_target_machine())
        if key is not None and cache.disk_dir() is not None:
            self.engine.set_object_cache(
                lambda _module, payload: cache.disk_store(key, payload),
                lambda _module: cached_object,
            )
        self.engine.finalize_object()

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)

    def __del__(self, lock=_lock, finalizing=sys.is_finalizing):  # (globals go at exit)
        engine = getattr(self, "engine", None)
        if engine is not None and not finalizing():
            with lock:  # dispose now, and not while another thread compiles
                engine.close()
