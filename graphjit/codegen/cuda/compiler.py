"""Generated kernel source -> Numba CUDA kernels, and the PTX check.

Each source is executed in a namespace that binds `cuda`, `math`, `libdevice` and the Numba
scalar types, then jit-compiled with its exact signature (every parameter a 1-D C-contiguous
array). Equal sources with equal parameter types are compiled once per process: graphs
that differ only around a kernel share it (a copy's source is the same for every dtype, but
a kernel compiled for float32 arrays takes no int32 ones on a GPU). The simulator runs the
same source (simulator.py says what it binds differently)."""

from __future__ import annotations

import math

from graphjit.codegen.cuda import simulator
from graphjit.codegen.cuda.source import KERNEL, NUMBA_TYPES, KernelSource
from graphjit.codegen.cuda.target import simulating
from graphjit.errors import BackendError

PTX_TARGET = (9, 0)  # sm_90 (Hopper)

# Every kernel compiled in this process, by source and parameter types: what the PTX check
# compiles.
GENERATED: dict[tuple, KernelSource] = {}
_COMPILED: dict[tuple, object] = {}
_NAMESPACES: dict[bool, dict] = {}


def namespace(cuda) -> dict:
    """The globals generated kernels see (built once per target)."""
    from numba import types as numba_types

    sim = simulating(cuda)
    if sim not in _NAMESPACES:
        if sim:
            simulator.make_shared_arrays_atomic()
        ns = {"cuda": cuda, "math": simulator.SIMULATED_MATH if sim else math}
        ns["libdevice"] = simulator.SIMULATED_LIBDEVICE if sim else _libdevice()
        ns.update({name: getattr(numba_types, name) for name in NUMBA_TYPES.values()})
        _NAMESPACES[sim] = ns
    return _NAMESPACES[sim]


def _libdevice():
    """numba.cuda.libdevice: the bit casts that bfloat16's conversions use (narrow.py)."""
    from numba.cuda import libdevice

    return libdevice


def signature(kernel: KernelSource) -> tuple:
    from numba import types

    return tuple(types.Array(getattr(types, NUMBA_TYPES[d]), 1, "C") for d in kernel.params)


def python_function(cuda, kernel: KernelSource):
    """The kernel as a plain Python function whose globals are the kernel namespace."""
    ns = dict(namespace(cuda))
    exec(compile(kernel.source, f"<graphjit cuda kernel: {kernel.label}>", "exec"), ns)
    return ns[KERNEL]


def compiled(cuda, kernel: KernelSource):
    """The jit-compiled kernel (a dispatcher to configure with [grid, block])."""
    key = (kernel.source, kernel.params, simulating(cuda))
    if key not in _COMPILED:
        try:
            _COMPILED[key] = cuda.jit(signature(kernel))(python_function(cuda, kernel))
        except Exception as e:  # a typing error names the kernel, not Numba's internals
            raise BackendError(
                f"cuda kernel ({kernel.label}) failed to compile: {e}\n{kernel.source}"
            ) from e
        GENERATED[key[:2]] = kernel
    return _COMPILED[key]


def ptx_unavailable() -> str | None:
    """Why kernels cannot be compiled to PTX here, or None when they can (NVVM loads: it
    needs no GPU, only numba-cuda's NVVM, e.g. from `pip install "numba-cuda[cu12]"`)."""
    try:
        from numba import cuda
        from numba.cuda.cudadrv import nvvm
    except ImportError as e:
        return f"numba.cuda is not importable: {e}"
    if simulating(cuda):
        return "the CUDA simulator is enabled (NUMBA_ENABLE_CUDASIM): it has no PTX compiler"
    try:
        nvvm.NVVM()
    except Exception as e:
        return f"NVVM (libnvvm) was not found: {e}"
    return None


def compile_ptx(kernel: KernelSource, cc: tuple[int, int] = PTX_TARGET, opt: bool = True) -> str:
    """The kernel's PTX for compute capability `cc`; a BackendError when it does not type
    check or compile (what the simulator, which runs the source as Python, cannot see).
    No GPU is needed."""
    from numba import cuda

    fn = python_function(cuda, kernel)
    try:
        ptx, _ = cuda.compile_ptx(fn, signature(kernel), cc=cc, opt=opt)
    except Exception as e:
        raise BackendError(f"cuda kernel ({kernel.label}) does not compile to PTX: {e}") from e
    return ptx
