"""graphjit's environment variables, read and validated in one place.

Each variable has one function here that returns its parsed value. A value that cannot be
used is a ConfigError naming the variable, the value and what it accepts, raised when the
value is first needed (never at `import graphjit`), so a typo is a clear message instead of
a KeyError or ValueError from deep inside a compile. The exception is GRAPHJIT_CACHE_DIR:
the disk cache is an optimisation, so a directory that cannot be used is a warning and
graphjit compiles without it (codegen/llvm/cache.py checks the directory itself).

Values are parsed once per distinct raw string (the cache is keyed by it, so a test or a
program that changes os.environ sees the new value at the next call).

This module sits at the bottom of the layering: it imports the standard library and
graphjit.errors only."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable

from graphjit.errors import ConfigError

_parsed: dict[tuple[str, str | None], object] = {}
_lock = threading.Lock()

FLAG_VALUES = ("", "0", "1", "false", "true")  # case-insensitive


def _read(name: str, parse: Callable[[str | None], object]):
    """`parse(raw)` for the variable's current raw value (None when unset), once per raw
    value; a ConfigError from `parse` is raised again at each call (nothing is cached)."""
    raw = os.environ.get(name)
    key = (name, raw)
    try:
        return _parsed[key]
    except KeyError:
        pass
    value = parse(raw)
    with _lock:
        _parsed[key] = value
    return value


def _invalid(name: str, raw: str, accepted: str) -> ConfigError:
    return ConfigError(f"environment variable {name}={raw!r} is not valid: it takes {accepted}")


# ---- switches ---------------------------------------------------------------------------------


def flag(name: str, default: bool = False) -> bool:
    """A boolean switch: unset or "" is `default`; "1"/"true" on, "0"/"false" off (any
    case, surrounding spaces ignored); anything else is a ConfigError."""

    def parse(raw):
        if raw is None or raw.strip() == "":
            return default
        value = raw.strip().lower()
        if value in ("1", "true"):
            return True
        if value in ("0", "false"):
            return False
        raise _invalid(name, raw, '"1" or "true" (on), "0" or "false" (off), or nothing')

    return _read(name, parse)


def debug() -> bool:
    """GRAPHJIT_DEBUG: verify the IR after every pass."""
    return flag("GRAPHJIT_DEBUG")


def print_ir() -> bool:
    """GRAPHJIT_PRINT_IR: print the IR after every pipeline stage."""
    return flag("GRAPHJIT_PRINT_IR")


def explain_retrace() -> bool:
    """GRAPHJIT_EXPLAIN_RETRACE: print why each gj.function retrace happened."""
    return flag("GRAPHJIT_EXPLAIN_RETRACE")


def eager_compile() -> bool:
    """GRAPHJIT_EAGER_COMPILE: run eager convolutions, pooling and fused composites
    (softmax, layer norm, ...) as compiled code once a signature is hot (default on;
    frontend/eager_compiled.py)."""
    return flag("GRAPHJIT_EAGER_COMPILE", default=True)


def compile_worker() -> bool:
    """GRAPHJIT_COMPILE_WORKER: optimise and compile in the worker process (default on)."""
    return flag("GRAPHJIT_COMPILE_WORKER", default=True)


def dump_llvm() -> bool:
    """GRAPHJIT_DUMP_LLVM: print the optimised LLVM IR of every compiled module."""
    return flag("GRAPHJIT_DUMP_LLVM")


def dump_asm() -> bool:
    """GRAPHJIT_DUMP_ASM: print the assembly of every compiled module."""
    return flag("GRAPHJIT_DUMP_ASM")


def blas() -> str:
    """GRAPHJIT_BLAS: which BLAS matmuls call. "auto" (the default): one thread per call,
    large matmuls split over graphjit's threads, float32 through graphjit's own kernel on
    AVX-512 CPUs (codegen/llvm/sgemm.py), the rest through the OpenBLAS SciPy's wheel
    bundles (set to one thread), else NumPy's; "numpy": NumPy's bundled OpenBLAS, one call per
    matmul on OpenBLAS's own threads; "scipy": the gemm SciPy exports to Cython, likewise."""

    def parse(raw):
        value = (raw or "").strip().lower()
        if value in ("", "auto"):
            return "auto"
        if value in ("numpy", "scipy"):
            return value
        raise _invalid("GRAPHJIT_BLAS", raw, '"auto" (the default), "numpy" or "scipy"')

    return _read("GRAPHJIT_BLAS", parse)


# ---- numbers ----------------------------------------------------------------------------------


def _integer(name: str, raw: str, minimum: int, accepted: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise _invalid(name, raw, accepted) from None
    if value < minimum:
        raise _invalid(name, raw, accepted)
    return value


def _seconds(name: str, raw: str, accepted: str, zero: bool) -> float:
    """A finite number of seconds > 0 (>= 0 with `zero`), or a ConfigError."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise _invalid(name, raw, accepted) from None
    if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
        raise _invalid(name, raw, accepted)
    return value


JIT_CACHE_SIZE_DEFAULT = 256


def jit_cache_size() -> int:
    """GRAPHJIT_JIT_CACHE_SIZE: how many compiled modules the process-wide in-memory cache
    keeps (a whole number >= 0; default 256)."""

    def parse(raw):
        if raw is None or raw.strip() == "":
            return JIT_CACHE_SIZE_DEFAULT
        accepted = f"a whole number >= 0 (compiled modules kept; default {JIT_CACHE_SIZE_DEFAULT})"
        return _integer("GRAPHJIT_JIT_CACHE_SIZE", raw, 0, accepted)

    return _read("GRAPHJIT_JIT_CACHE_SIZE", parse)


HELD_BUFFER_BYTES_DEFAULT = 256 << 20


def held_buffer_bytes() -> int:
    """GRAPHJIT_HELD_BUFFER_BYTES: how many bytes of working memory (the scratch arena and
    the previous run's output arrays, reused when nobody holds them) a compiled program
    keeps between runs; bigger ones are allocated for each run and freed after it (a whole
    number >= 0; default 256 MiB)."""

    def parse(raw):
        if raw is None or raw.strip() == "":
            return HELD_BUFFER_BYTES_DEFAULT
        accepted = f"a whole number of bytes >= 0 (default {HELD_BUFFER_BYTES_DEFAULT})"
        return _integer("GRAPHJIT_HELD_BUFFER_BYTES", raw, 0, accepted)

    return _read("GRAPHJIT_HELD_BUFFER_BYTES", parse)


def max_tensor_bytes() -> int | None:
    """GRAPHJIT_MAX_TENSOR_BYTES: the most bytes one tensor may take (a whole number >= 1);
    None when unset (the caller uses physical memory)."""

    def parse(raw):
        if raw is None or raw.strip() == "":
            return None
        accepted = "a whole number of bytes >= 1 (the largest tensor allowed)"
        return _integer("GRAPHJIT_MAX_TENSOR_BYTES", raw, 1, accepted)

    return _read("GRAPHJIT_MAX_TENSOR_BYTES", parse)


def tensor_bytes_limit() -> int:
    """The most bytes one tensor may take: GRAPHJIT_MAX_TENSOR_BYTES, else physical memory
    (a bigger tensor could never be allocated; better a clear error than the OOM killer)."""
    configured = max_tensor_bytes()  # ConfigError if it is not a whole number >= 1
    if configured is not None:
        return configured
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: no limit we can know
        return 1 << 62


MAX_THREADS = 8  # threads one native kernel is split over, at most


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as `taskset` or a container
    sets it; os.cpu_count() counts the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def num_threads() -> int:
    """GRAPHJIT_NUM_THREADS: how many threads native kernels are split over (a whole
    number from 1 to 8); default the cores available to the process, at most 8."""

    def parse(raw):
        if raw is None or raw.strip() == "":
            return min(available_cores(), MAX_THREADS)
        accepted = f"a whole number of threads from 1 to {MAX_THREADS}"
        value = _integer("GRAPHJIT_NUM_THREADS", raw, 1, accepted)
        if value > MAX_THREADS:
            raise _invalid("GRAPHJIT_NUM_THREADS", raw, accepted)
        return value

    return _read("GRAPHJIT_NUM_THREADS", parse)


COMPILE_TIMEOUT_DEFAULT = 60.0


def compile_timeout() -> float:
    """GRAPHJIT_COMPILE_TIMEOUT: seconds the compile worker may take over a module before it
    is taken to be stuck (plus an allowance for the module's size, see compile_worker.py);
    a number > 0, default 60."""

    def parse(raw):
        if raw is None or raw.strip() == "":
            return COMPILE_TIMEOUT_DEFAULT
        accepted = f"a number of seconds > 0 (default {COMPILE_TIMEOUT_DEFAULT:g})"
        return _seconds("GRAPHJIT_COMPILE_TIMEOUT", raw, accepted, zero=False)

    return _read("GRAPHJIT_COMPILE_TIMEOUT", parse)


# ---- paths ------------------------------------------------------------------------------------


def cache_dir() -> str | None:
    """GRAPHJIT_CACHE_DIR: the on-disk compile cache's directory, made absolute; None when
    unset or empty. Whether it can be used (and trusted) is checked by the cache, which
    warns and compiles without a disk cache when it cannot."""
    raw = os.environ.get("GRAPHJIT_CACHE_DIR")
    if raw is None or raw.strip() == "":
        return None
    return os.path.abspath(os.path.expanduser(raw))  # (not cached: it depends on the cwd)


def distributed_timeout() -> float | None:
    """GRAPHJIT_DISTRIBUTED_TIMEOUT: seconds a process of a gj.distributed job waits in a
    collective for the others before it aborts the job (one of them is stuck, or gone); a
    number > 0, or 0 for no timeout (None); default 300."""
    default = 300.0

    def parse(raw):
        if raw is None or raw.strip() == "":
            return default
        accepted = f"a number of seconds > 0, or 0 for no timeout (default {default:g})"
        return _seconds("GRAPHJIT_DISTRIBUTED_TIMEOUT", raw, accepted, zero=True) or None

    return _read("GRAPHJIT_DISTRIBUTED_TIMEOUT", parse)
