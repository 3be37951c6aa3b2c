"""How many threads graphjit's native code uses: `gj.set_num_threads(n)`, as
`torch.set_num_threads`. One count for the parallel work of a run: kernels and matmuls
split over graphjit's threads (codegen/llvm/parallel.py, blas.py: each matmul block is a
single-threaded BLAS call), and NumPy's OpenBLAS, which eager mode's matmuls use (and
llvm's with GRAPHJIT_BLAS=numpy) -- as threadpoolctl's limits do, that count is NumPy's in
the whole process. Without a call, graphjit uses GRAPHJIT_NUM_THREADS or the available
cores (at most 8) and NumPy's OpenBLAS keeps its own default (OPENBLAS_NUM_THREADS, else
every core)."""

from __future__ import annotations

import numbers

from graphjit import config
from graphjit.errors import ConfigError

# (codegen.llvm is imported on first use: `import graphjit` does not load llvmlite)


def set_num_threads(n: int) -> None:
    """Use `n` threads (1 to 8) for native kernels and BLAS from now on; compiled
    programs need no recompile (they read the count at each call)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ConfigError(f"set_num_threads takes a whole number of threads, not {n!r}")
    if not 1 <= n <= config.MAX_THREADS:
        raise ConfigError(f"set_num_threads({n}): graphjit runs 1 to {config.MAX_THREADS} threads")
    from graphjit.codegen.llvm import blas, parallel

    parallel.set_num_threads(int(n))
    blas.set_blas_threads(int(n))


def get_num_threads() -> int:
    """The threads native kernels are split over."""
    from graphjit.codegen.llvm import parallel

    return parallel.num_threads()
