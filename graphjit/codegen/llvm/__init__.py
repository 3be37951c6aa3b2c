"""The LLVM CPU backend: an optimised function becomes one native call."""

from __future__ import annotations

import ctypes
import math
import sys
import threading

import numpy as np

from graphjit import config
from graphjit.codegen.llvm import compile_worker, interrupt
from graphjit.codegen.llvm.jit import compile_module
from graphjit.codegen.llvm.lower import ENTRY, Lowering
from graphjit.codegen.llvm.numerics import NUMERICS_STATUS
from graphjit.errors import ResourceError
from graphjit.ir.symbolic import is_symbolic
from graphjit.passes.memory import ALIGNMENT as ARENA_ALIGNMENT
from graphjit.passes.memory import VARIABLE

SPARE_OUTPUTS = 2  # output arrays kept per slot for reuse (see LLVMRunner._output)

_ENTRY_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)


class LLVMRunner:
    """Runs the native entry: argument and output pointers in, a status word out. The
    arena is allocated once per executable and reused; a lock keeps two threads off it."""

    def __init__(self, program, check_numerics: bool = False, flush_denormals: bool = True):
        fn = program.function
        compile_worker.prestart()  # its start-up overlaps the lowering below
        lowering = Lowering(fn, check_numerics=check_numerics, flush_denormals=flush_denormals)
        self.llvm_ir = str(lowering.lower())
        self.compiled = compile_module(self.llvm_ir)
        self.entry = _ENTRY_TYPE(self.compiled.address(ENTRY))
        self.errors = lowering.errors
        self.interruptible = lowering.interrupt_start is not None
        # Large constants, passed after the arguments (lower.INLINE_CONSTANT_BYTES), each
        # copied to a cache line as a global would be; their addresses are set once.
        self.constants = [_aligned_copy(c) for c in lowering.constants]
        self.numerics = lowering.numerics
        # Working memory up to GRAPHJIT_HELD_BUFFER_BYTES stays between runs (no allocation,
        # no fresh pages to fault in); a bigger arena is the run's own, freed after it, so
        # that a Session does not sit on hundreds of MiB between runs. Compiled for every
        # batch size (symbolic.py), the sizes are polynomials in the run's `dims`: the
        # held arena is the largest a run has needed. (A Session may set its own limit.)
        held = program.held_buffer_bytes
        self.held_limit = config.held_buffer_bytes() if held is None else held
        self.program = program
        self.sizes = program.sizes
        self.dims = (ctypes.c_int64 * max(len(self.sizes), 1))()
        self.last_sizes = None  # the sizes _size_run last set up
        self.arena_size = lowering.arena_bytes
        self.out_types = [v.type for v in fn.block.terminator.operands]
        self.arena = None
        if not self.sizes:
            self.arena_bytes = self.arena_size
            self.arena = self._held_arena(self.arena_bytes)
        self.arena_ptr = self.arena.ctypes.data if self.arena is not None else None
        self.n_in = len(fn.args)
        # Output slots whose value the kernel wrote into a variable's own storage: the
        # result is that (updated) argument array itself.
        self.in_variable = {
            j: fn.args.index(lowering.plan.buffers[v].variable)
            for j, v in enumerate(fn.block.terminator.operands)
            if lowering.returned.get(v) == j
            and getattr(lowering.plan.buffers.get(v), "kind", None) == VARIABLE
        }
        self.lock = threading.Lock()
        self.in_ptrs = (ctypes.c_void_p * max(self.n_in + len(self.constants), 1))()
        for i, c in enumerate(self.constants, start=self.n_in):
            self.in_ptrs[i] = c.ctypes.data
        self.out_ptrs = (ctypes.c_void_p * max(len(self.out_types), 1))()
        # Per output slot, the arrays of the last SPARE_OUTPUTS runs, kept for reuse only
        # while they and the arena fit the limit.
        self.spare: list[list] = [[] for _ in self.out_types]
        self.out_shapes = [t.shape for t in self.out_types]
        self.keeps_outputs = not self.sizes and self._keeps_outputs(self.out_shapes)

    def _held_arena(self, nbytes: int):
        return _allocate_arena(nbytes) if nbytes <= self.held_limit else None

    def _keeps_outputs(self, shapes) -> bool:
        outputs = sum(
            math.prod(shape) * t.dtype.np.itemsize
            for shape, t in zip(shapes, self.out_types, strict=True)
        )
        held = self.arena.nbytes if self.arena is not None else self.held_limit + 1
        return held + SPARE_OUTPUTS * outputs <= self.held_limit

    def _size_run(self, args) -> None:
        """Set this run's sizes: `dims`, the output shapes and the arena (under the lock)."""
        values = self.program.size_values(args)
        if values == self.last_sizes:
            return  # (the usual run: the sizes of the one before)
        self.last_sizes = values
        for k, n in enumerate(values):
            self.dims[k] = n
        self.out_shapes = [tuple(_sized(d, values) for d in t.shape) for t in self.out_types]
        self.arena_bytes = _sized(self.arena_size, values)
        if self.arena is None or self.arena.nbytes < self.arena_bytes:
            self.arena = None  # (freed before a bigger one is allocated)
            self.arena = self._held_arena(self.arena_bytes)
            self.arena_ptr = self.arena.ctypes.data if self.arena is not None else None
        self.keeps_outputs = self._keeps_outputs(self.out_shapes)

    @property
    def held_bytes(self) -> int:
        """The working memory kept between runs: the arena, and the spare output arrays."""
        arena = self.arena.nbytes if self.arena is not None else 0
        return arena + sum(a.nbytes for pool in self.spare for a in pool)

    @property
    def constant_bytes(self) -> int:
        """The large constants kept beside the code and passed with the inputs."""
        return sum(c.nbytes for c in self.constants)

    def run(self, args: list) -> list:
        args = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in args]
        if self.interruptible:
            interrupt.ensure_hook()
        with self.lock:
            if self.sizes:
                self._size_run(args)
            outs = self._outputs(args)
            in_ptrs, out_ptrs = self.in_ptrs, self.out_ptrs
            for i, a in enumerate(args):
                in_ptrs[i] = _address(a)
            for j, o in enumerate(outs):
                out_ptrs[j] = _address(o)
            if self.arena_ptr is not None:  # (the common case: the held arena)
                status = self.entry(in_ptrs, out_ptrs, self.arena_ptr, self.dims)
            else:  # this run's own arena, freed when it returns
                arena = _allocate_arena(self.arena_bytes)
                status = self.entry(in_ptrs, out_ptrs, arena.ctypes.data, self.dims)
        if status:
            raise self._error(status)
        return outs

    def _error(self, status: int) -> Exception:
        if status >= NUMERICS_STATUS:
            return self.numerics.error(status - NUMERICS_STATUS)
        error, message, op = self.errors[status - 1]
        if error is KeyboardInterrupt:
            interrupt.raise_interrupt()
        if callable(message):  # (it names sizes of the run: sizes.RunMessage)
            message = message(self.last_sizes)
        return error(message, op=op)

    def _outputs(self, args: list) -> list:
        """Arrays for the results: a variable's own storage where the kernel updated it in
        place, else a spare output array if nobody holds it any more, else a new one."""
        return [
            args[self.in_variable[j]] if j in self.in_variable else self._output(j, t, shape)
            for j, (t, shape) in enumerate(zip(self.out_types, self.out_shapes, strict=True))
        ]

    def _output(self, j: int, t, shape) -> np.ndarray:
        """An output array of an earlier run that only this runner refers to is reused: no
        allocation, and for large results no fresh pages to fault in. Nobody can observe
        the reuse. Two spares per slot, because the usual loop `y = sess.run(...)` still
        holds the previous run's result while the next run fills its own."""
        pool = self.spare[j]
        for k in range(len(pool)):
            out = pool[k]
            # (only this runner holds it: the pool, `out` and getrefcount's argument)
            if sys.getrefcount(out) == 3 and out.shape == shape:
                del pool[k]
                break
        else:
            out = np.empty(shape, t.dtype.np)
            if len(pool) == SPARE_OUTPUTS:
                del pool[0]  # (the oldest, which the caller still holds)
        if self.keeps_outputs:
            pool.append(out)
        return out


def _sized(n, values) -> int:
    return n.evaluate(values) if is_symbolic(n) else n


def _address(a: np.ndarray) -> int:
    """The data pointer of an array (c_char.from_buffer is the fastest way for writable,
    non-empty arrays; .ctypes.data for the rest)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def _allocate_arena(nbytes: int) -> np.ndarray:
    """The arena, its first byte on a cache line: the plan's offsets are multiples of 64 so
    that every buffer starts on one (NumPy aligns to 16 bytes only: the arena started 0, 16,
    32 or 48 bytes into a line, a different one in each process)."""
    try:
        return _aligned_empty(max(nbytes, 1))
    except MemoryError:  # every tensor fits, but not all that must be live at once
        raise ResourceError(
            f"the program needs a {nbytes}-byte scratch arena, which cannot be allocated"
        ) from None


def compile_llvm(program, check_numerics=False, flush_denormals=True) -> LLVMRunner:
    return LLVMRunner(program, check_numerics, flush_denormals)


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    copy = _aligned_empty(a.nbytes).view(a.dtype).reshape(a.shape)
    copy[...] = a
    return copy


def _aligned_empty(nbytes: int) -> np.ndarray:
    """nbytes uninitialised bytes starting on a cache line."""
    raw = np.empty(nbytes + ARENA_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ARENA_ALIGNMENT
    return raw[start : start + nbytes]
