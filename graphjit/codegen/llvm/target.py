"""The host target machine and the O3 pipeline of the LLVM backend: the one configuration
that both the parent process (jit.py) and the compile worker (compile_worker.py, which
loads this file by its path) use, so an object made by either is the same code.

Imports nothing but llvmlite and the standard library: the worker loads it without the
graphjit package."""

from __future__ import annotations

import functools

import llvmlite.binding as llvm


@functools.cache
def features() -> str:
    """The host's features; on AVX-512 CPUs also lift LLVM's preference for 256-bit vectors
    (a heuristic against clock throttling that halves our kernels' throughput)."""
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features:
        features += ",-prefer-256-bit"
    return features


def cpu_name() -> str:
    return llvm.get_host_cpu_name()


def new_target_machine():
    """A target machine for the host CPU. An MCJIT engine takes ownership of (and frees) the
    one it is given, so each engine gets its own."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=cpu_name(),
        features=features(),
        opt=3,
        codemodel="jitdefault",
    )


def parse(ir_text: str):
    """The module, parsed and verified (RuntimeError if it does not)."""
    module = llvm.parse_assembly(ir_text)
    module.verify()
    return module


def prepare(module, tm) -> None:
    """Target the module at the machine: its triple and data layout."""
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)


def optimise(module, tm) -> None:
    """The O3 pipeline, in place."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    # Unrolling and interleaving made the MLP training step compile 25% slower and ran
    # no faster on kernels that already use 512-bit vectors; so they stay off.
    pto.loop_unrolling = False
    pto.loop_interleaving = False
    builder = llvm.create_pass_builder(tm, pto)
    builder.getModulePassManager().run(module, builder)


def compile_object(ir_text: str, tm) -> bytes:
    """Object code for an LLVM IR module: parsed, verified, optimised and compiled for the
    machine. (What the compile worker does with each request.)"""
    module = parse(ir_text)
    try:
        prepare(module, tm)
        optimise(module, tm)
        return tm.emit_object(module)
    finally:
        module.close()
