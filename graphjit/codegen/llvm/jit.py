"""LLVM module → verified, O3-optimised native code for the host CPU, through MCJIT.

The module is parsed and verified before it is compiled, so a code-generation bug is a
BackendError, never a crash. Optimisation and code generation happen in a recycled worker
process (compile_worker.py): llvmlite leaks memory on every run of the O3 pipeline, and an
LLVM abort there ends only the worker; this process loads the object code it returns
through MCJIT's object cache, as it does an object from the disk cache. The target machine
and pipeline are configured in one place, target.py.

GRAPHJIT_COMPILE_WORKER=0 optimises and compiles in this process instead (so does setting
GRAPHJIT_DUMP_LLVM=1, which prints the optimised LLVM IR, or GRAPHJIT_DUMP_ASM=1, the
assembly)."""

from __future__ import annotations

import sys
import threading
import warnings

import llvmlite.binding as llvm

from graphjit import config
from graphjit.codegen.llvm import cache, compile_worker, target
from graphjit.errors import BackendError

_lock = threading.RLock()  # reentrant: optimise() asks for the target machine
_target_machine = None


def target_machine():
    """The shared target machine used for optimisation (never handed to an engine)."""
    global _target_machine
    with _lock:
        if _target_machine is None:
            _target_machine = target.new_target_machine()
        return _target_machine


def optimise(module: llvm.ModuleRef) -> None:
    target.optimise(module, target_machine())


def compile_module(ir_text: str) -> CompiledModule:
    """Native code for an LLVM IR module, from the compile caches when possible. Threads
    compile one at a time (LLVM's global context is not thread-safe), and a thread that
    waited for another's compile of the same module reuses it."""
    key = cache.cache_key(ir_text, target.cpu_name(), target.features())
    compiled = cache.memory_get(key)
    if compiled is None:
        with _lock:
            compiled = cache.memory_get(key)
            if compiled is None:
                compiled = CompiledModule(ir_text, key)
                cache.memory_put(key, compiled)
    return compiled


def _object_from_worker(ir_text: str) -> bytes | None:
    """The worker's object code for the module; None if no worker can run here."""
    try:
        return compile_worker.compile_object(ir_text)
    except compile_worker.WorkerUnavailable as e:
        warnings.warn(
            f"{e}; compiling in this process instead (set GRAPHJIT_COMPILE_WORKER=0 to "
            "do so without this warning)",
            RuntimeWarning,
            stacklevel=4,
        )
        return None
    except compile_worker.CompileError as e:
        raise BackendError(f"LLVM could not compile the module: {e}") from None


class CompiledModule:
    """Native code for one module; keeps the engine (and so the code) alive. Freed (the
    engine disposed) when the last runner using it and the compile cache let go of it."""

    def __init__(self, ir_text: str, key: str | None = None):
        with _lock:  # parsing, optimising and JIT-linking all use LLVM's global context
            self._compile(ir_text, key)

    def _compile(self, ir_text: str, key: str | None) -> None:
        tm = target_machine()
        try:
            module = target.parse(ir_text)
        except RuntimeError as e:
            raise BackendError(f"generated LLVM IR is invalid: {e}") from None
        target.prepare(module, tm)
        dump_llvm, dump_asm = config.dump_llvm(), config.dump_asm()
        obj = cache.disk_load(key) if key is not None else None  # optimised before saved
        made_here = False
        if obj is None and compile_worker.enabled() and not (dump_llvm or dump_asm):
            try:
                obj = _object_from_worker(ir_text)
            except BackendError:
                module.close()
                raise
            if obj is not None and key is not None:
                cache.disk_store(key, obj)  # (a no-op without GRAPHJIT_CACHE_DIR)
        if obj is None:
            optimise(module)
            made_here = True
        if dump_llvm:
            print(str(module), file=sys.stderr)
        if dump_asm:
            print(tm.emit_assembly(module), file=sys.stderr)
        # The engine owns the module from here on: keep no second reference to free it.
        self.engine = llvm.create_mcjit_compiler(module, target.new_target_machine())
        if obj is not None or (key is not None and cache.disk_dir() is not None):
            pending = [obj] if obj is not None else []  # handed over once, then dropped

            def store(_module, payload):
                if made_here and key is not None:
                    cache.disk_store(key, payload)

            self.engine.set_object_cache(store, lambda _module: pending.pop() if pending else None)
        self.engine.finalize_object()

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)

    def __del__(self, lock=_lock, finalizing=sys.is_finalizing):  # (globals go at exit)
        engine = getattr(self, "engine", None)
        if engine is not None and not finalizing():
            with lock:  # dispose now, and not while another thread compiles
                engine.close()
