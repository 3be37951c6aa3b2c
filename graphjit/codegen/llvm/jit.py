"""LLVM module → verified, O3-optimised native code for the host CPU, through MCJIT.

The module is parsed and verified before it is compiled, so a code-generation bug is a
BackendError, never a crash. Parsing, optimisation and code generation happen first in
recycled worker processes (compile_worker.py): llvmlite leaks memory on every run of the
O3 pipeline, and an LLVM abort or crash there (its parser too can crash on IR it should
reject) ends only the worker. This process parses the text after them and loads the
object code they return through MCJIT's object cache, as it does an object from the disk
cache. A large module may come back as several objects, one per part (target.plan,
compiled in parallel): the first is the module's, the others are added to the same
engine, which links them. The target machine and pipeline are configured in one place,
target.py.

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
    key = cache.cache_key(ir_text, target.cpu_name(), target.features(), target.PIPELINE)
    compiled = cache.memory_get(key)
    if compiled is None:
        with _lock:
            compiled = cache.memory_get(key)
            if compiled is None:
                compiled = CompiledModule(ir_text, key)
                cache.memory_put(key, compiled)
    return compiled


def _objects_from_worker(ir_text: str) -> list[bytes] | None:
    """The workers' object code for the module (one object per part); None if no worker
    can run here."""
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
        invalid = f"{target.InvalidIR.__name__}: "  # (the worker's parse or verify failed)
        if str(e).startswith(invalid):
            raise BackendError(f"generated LLVM IR is invalid: {str(e)[len(invalid) :]}") from None
        raise BackendError(f"LLVM could not compile the module: {e}") from None


class CompiledModule:
    """Native code for one module; keeps the engine (and so the code) alive. Freed (the
    engine disposed) when the last runner using it and the compile cache let go of it."""

    def __init__(self, ir_text: str, key: str | None = None):
        with _lock:  # parsing, optimising and JIT-linking all use LLVM's global context
            self._compile(ir_text, key)

    def _compile(self, ir_text: str, key: str | None) -> None:
        tm = target_machine()
        dump_llvm, dump_asm = config.dump_llvm(), config.dump_asm()
        # (objects on disk were optimised before they were saved)
        objects = cache.disk_load_objects(key) if key is not None else None
        made_here = False
        if objects is None and compile_worker.enabled() and not (dump_llvm or dump_asm):
            # The worker parses the text first: IR that crashes LLVM's parser (a call
            # that llvmlite let through, but whose intrinsic's declaration LLVM upgrades
            # and dereferences) ends the worker, a BackendError here, not this process.
            objects = _objects_from_worker(ir_text)
            if objects is not None and key is not None:
                cache.disk_store(key, cache.pack_objects(objects))  # (no-op without a dir)
        try:
            module = target.parse(ir_text)
        except RuntimeError as e:
            raise BackendError(f"generated LLVM IR is invalid: {e}") from None
        target.prepare(module, tm)
        if objects is None:
            optimise(module)
            made_here = True
        if dump_llvm:
            print(str(module), file=sys.stderr)
        if dump_asm:
            print(tm.emit_assembly(module), file=sys.stderr)
        # The engine owns the module from here on: keep no second reference to free it.
        self.engine = target.new_engine(module)
        if objects is not None or (key is not None and cache.disk_dir() is not None):
            pending = objects[:1] if objects is not None else []  # handed over once, dropped

            def store(_module, payload):
                if made_here and key is not None:
                    cache.disk_store(key, payload)

            self.engine.set_object_cache(store, lambda _module: pending.pop() if pending else None)
        for obj in (objects or [])[1:]:  # the other parts: linked with the first at finalize
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)

    def __del__(self, lock=_lock, finalizing=sys.is_finalizing):  # (globals go at exit)
        engine = getattr(self, "engine", None)
        if engine is not None and not finalizing():
            with lock:  # dispose now, and not while another thread compiles
                engine.close()
