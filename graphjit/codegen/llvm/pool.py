"""The process's pool of worker threads that split kernels run on (parallel.call_split).

Starting and joining pthreads for every split kernel cost tens of microseconds a call, and
on a busy machine the join waited for a helper that had not yet had a core (the loaded
transformer step: 111 ms against 80 ms on one thread). So the workers start once, on the
first split that asks for them, and sleep between jobs; a job is finished when its chunks
are, not when every worker has looked at it:

    void graphjit_parallel_run(i8* (i8*)* task, i8* packet, i64 threads)

runs `task(packet)` on the calling thread and on up to `threads - 1` workers at once. The
task claims chunks from a counter in its packet until none is left (parallel._claimer), so
a worker that wakes late finds nothing to do, and the caller never waits for it: it waits
only for the workers that joined the job while it was open (a Dekker handshake on `open`
and `active`, both sequentially consistent). The caller spins on that briefly and then
yields its core, which a joined worker that lost its core needs.

One job runs at a time. A caller that finds the pool busy (another Python thread's
Session) runs its task alone -- the chunks do not depend on the thread count, so the bits
are the same. So does a process forked without Python's fork hooks (whose pool threads did
not survive the fork); os.fork and multiprocessing reset the pool in the child.

Workers block every signal (a SIGINT is delivered to a Python thread, where graphjit's
interrupt handler and Python's run). The pool is compiled here, in this process, once, and
its engine is never freed: sleeping workers return into its code at any time, even while
the interpreter exits."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import threading

import llvmlite.binding as llvm
from llvmlite import ir

from graphjit.codegen.llvm import jit, target
from graphjit.codegen.llvm import types as T

RUN = "graphjit_parallel_run"
_RESET = "graphjit_pool_reset"
# Between jobs a worker spins WORKER_SPIN pauses (~6 us here), then yields its core
# WORKER_YIELDS times (~0.5 us each when nothing else wants the core; on a busy machine
# each hands the core over), then sleeps on a condition variable. Kernels often split
# back to back, with a BLAS call or a Python round trip (~10-20 us) between them, and a
# futex wake-up took ~40 us on this VM: the worker joined a 128-cube matmul's second
# block after the caller had done its first, so the product ran no faster on two threads
# than on one (53 us against 55-57); waiting this way, 37 us (128 x 512 @ 512 x 128: 143 ->
# 112 us). Yielding rather than pausing keeps the longer wait polite to other work: the
# MLP under one busy process ran as fast as with the short spin.
WORKER_SPIN = 256
WORKER_YIELDS = 256
CALLER_SPIN = 128  # pauses before the caller, waiting for joined workers, yields instead
_SYNC_BYTES = 256  # room for a pthread mutex or condition variable on every platform

TASK = ir.FunctionType(T.I8P, [T.I8P]).as_pointer()
_VOID = ir.VoidType()
_lock = threading.Lock()
_built: dict = {}  # "engine" (kept alive for good), "reset" (a ctypes callable)


def ensure() -> bool:
    """Build the pool once per process and bind RUN for the modules that call it. False
    where the C library lacks a function the pool calls (MCJIT would abort the process on
    the unresolved symbol): split kernels then run on the calling thread."""
    with _lock:
        if not _built:
            module = _module()
            if not _resolvable(module):
                _built["engine"] = None
                return False
            engine = _compile(str(module))
            reset = ctypes.CFUNCTYPE(None)(engine.get_function_address(_RESET))
            reset()
            llvm.add_symbol(RUN, engine.get_function_address(RUN))
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))  # never freed: see above
            _built.update(engine=engine, reset=reset)
            if hasattr(os, "register_at_fork"):  # (POSIX)
                os.register_at_fork(after_in_child=_reset_in_child)
        return _built["engine"] is not None


def _resolvable(module: ir.Module) -> bool:
    """Does this process define every external function the module declares?"""
    process = ctypes.CDLL(None)  # (the lookup MCJIT's linker does: dlsym)
    declared = [
        f.name for f in module.functions if f.is_declaration and not f.name.startswith("llvm.")
    ]
    return all(hasattr(process, name) for name in declared)


def _reset_in_child() -> None:
    """After os.fork: the child has none of the workers; start from a fresh pool."""
    reset = _built.get("reset")
    if reset is not None:
        reset()


def _compile(ir_text: str):
    with jit._lock:  # LLVM's global context is not thread-safe
        module = target.parse(ir_text)
        target.prepare(module, jit.target_machine())
        # (not optimised: a few atomics a job, and O3's set-up alone took 11 of 26 ms)
        engine = target.new_engine(module)
        engine.finalize_object()
    return engine


class _Pool:
    """The pool's state as globals of its module, and the IR that works on them."""

    def __init__(self, module: ir.Module):
        self.module = module

        def variable(name, typ, align=8):
            g = ir.GlobalVariable(module, typ, f"pool.{name}")
            g.linkage = "internal"
            g.initializer = ir.Constant(typ, None)
            g.align = align
            return g

        sync = ir.ArrayType(T.I8, _SYNC_BYTES)
        self.mutex, self.cond = variable("mutex", sync, 64), variable("cond", sync, 64)
        self.task, self.packet = variable("task", TASK), variable("packet", T.I8P)
        self.mxcsr = variable("mxcsr", T.I32)  # the job's x86 floating-point control word
        names = ("generation", "open", "active", "wanted", "started", "busy", "pid")
        for name in names:  # (i64 each; the counters on their own cache lines)
            setattr(self, name, variable(name, T.I64, 64))

    def libc(self, name, ret, args):
        return T.external_function(self.module, name, ret, args)

    def raw(self, b, sync):
        return b.bitcast(sync, T.I8P)

    def pause(self, b):
        """A spin-wait hint (x86 `pause`, AArch64 `yield`): lets the sibling hyperthread
        run and keeps the loop from flooding the memory system."""
        machine = platform.machine().lower()
        if machine in ("x86_64", "amd64"):
            b.call(self.libc("llvm.x86.sse2.pause", _VOID, []), [])
        elif machine in ("aarch64", "arm64"):
            b.call(self.libc("llvm.aarch64.hint", _VOID, [T.I32]), [ir.Constant(T.I32, 1)])

    def floating_point_mode(self, b, intrinsic: str) -> None:
        """x86: save (stmxcsr) or set (ldmxcsr) the job's MXCSR, whose FTZ/DAZ bits the
        caller's entry point chose (Session(flush_denormals=...)): a worker computes its
        chunks exactly as the caller would. Elsewhere: nothing to do."""
        if platform.machine().lower() in ("x86_64", "amd64"):
            fn = self.libc(f"llvm.x86.sse.{intrinsic}", _VOID, [T.I8P])
            b.call(fn, [b.bitcast(self.mxcsr, T.I8P)])

    def load(self, b, ptr, order="seq_cst"):
        return b.load_atomic(ptr, order, 8)

    def store(self, b, value, ptr, order="seq_cst"):
        b.store_atomic(
            ir.Constant(T.I64, value) if isinstance(value, int) else value, ptr, order, 8
        )


def _module() -> ir.Module:
    module = ir.Module("graphjit_pool")
    pool = _Pool(module)
    _reset_function(pool)
    worker = _worker_function(pool)
    _run_function(pool, worker)
    return module


def _reset_function(pool: _Pool) -> None:
    """void reset(): no workers, no job, fresh sync objects, this process's id."""
    fn = ir.Function(pool.module, ir.FunctionType(_VOID, []), _RESET)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    null = ir.Constant(T.I8P, None)
    for name, sync in (("pthread_mutex_init", pool.mutex), ("pthread_cond_init", pool.cond)):
        b.call(pool.libc(name, T.I32, [T.I8P, T.I8P]), [pool.raw(b, sync), null])
    for name in ("generation", "open", "active", "wanted", "started", "busy"):
        pool.store(b, 0, getattr(pool, name))
    pid = b.call(pool.libc("getpid", T.I32, []), [])
    pool.store(b, b.sext(pid, T.I64), pool.pid)
    b.ret_void()


def _worker_function(pool: _Pool) -> ir.Function:
    """void* worker(i8* index): wait for a job, join it if it is open and wants this many
    workers, run its task, repeat -- for the life of the process."""
    fn = ir.Function(pool.module, ir.FunctionType(T.I8P, [T.I8P]), "pool.worker")
    fn.linkage = "internal"
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    index = b.ptrtoint(fn.args[0], T.I64)
    signals = b.alloca(ir.ArrayType(T.I8, 256))  # a sigset_t (128 bytes on glibc)
    b.call(pool.libc("sigfillset", T.I32, [T.I8P]), [b.bitcast(signals, T.I8P)])
    mask = pool.libc("pthread_sigmask", T.I32, [T.I32, T.I8P, T.I8P])
    how = ir.Constant(T.I32, int(signal.SIG_BLOCK))
    b.call(mask, [how, b.bitcast(signals, T.I8P), ir.Constant(T.I8P, None)])
    seen = b.alloca(T.I64)
    b.store(ir.Constant(T.I64, 0), seen)  # (a job already open when it starts is joined)
    spin, spun, sleep, wait, woke, check, join, leave = (
        fn.append_basic_block(n)
        for n in ("spin", "spun", "sleep", "wait", "woke", "check", "join", "leave")
    )
    count = b.alloca(T.I64)
    b.store(ir.Constant(T.I64, 0), count)
    b.branch(spin)

    b.position_at_end(spin)  # a new generation within WORKER_SPIN pauses?
    moved = b.icmp_unsigned("!=", pool.load(b, pool.generation, "acquire"), b.load(seen))
    n = b.load(count)
    b.store(b.add(n, ir.Constant(T.I64, 1)), count)
    b.cbranch(moved, woke, spun)
    b.position_at_end(spun)
    with b.if_else(b.icmp_unsigned("<", n, ir.Constant(T.I64, WORKER_SPIN))) as (busy, polite):
        with busy:
            pool.pause(b)
        with polite:
            b.call(pool.libc("sched_yield", T.I32, []), [])
    waited = ir.Constant(T.I64, WORKER_SPIN + WORKER_YIELDS)
    b.cbranch(b.icmp_unsigned("<", n, waited), spin, sleep)

    b.position_at_end(sleep)  # else sleep on the condition variable until it moves
    lock = pool.libc("pthread_mutex_lock", T.I32, [T.I8P])
    unlock = pool.libc("pthread_mutex_unlock", T.I32, [T.I8P])
    cond_wait = pool.libc("pthread_cond_wait", T.I32, [T.I8P, T.I8P])
    b.call(lock, [pool.raw(b, pool.mutex)])
    b.branch(wait)
    b.position_at_end(wait)
    same = b.icmp_unsigned("==", pool.load(b, pool.generation, "acquire"), b.load(seen))
    with b.if_then(same):
        b.call(cond_wait, [pool.raw(b, pool.cond), pool.raw(b, pool.mutex)])
    again = b.icmp_unsigned("==", pool.load(b, pool.generation, "acquire"), b.load(seen))
    with b.if_then(b.not_(again)):
        b.call(unlock, [pool.raw(b, pool.mutex)])
    b.cbranch(again, wait, woke)

    b.position_at_end(woke)  # count itself in, then look whether the job is still open
    b.store(pool.load(b, pool.generation, "acquire"), seen)
    b.store(ir.Constant(T.I64, 0), count)
    b.atomic_rmw("add", pool.active, ir.Constant(T.I64, 1), "seq_cst")
    b.branch(check)
    b.position_at_end(check)
    is_open = b.icmp_unsigned("!=", pool.load(b, pool.open), ir.Constant(T.I64, 0))
    wanted = b.icmp_unsigned("<", index, pool.load(b, pool.wanted, "acquire"))
    b.cbranch(b.and_(is_open, wanted), join, leave)
    b.position_at_end(join)
    pool.floating_point_mode(b, "ldmxcsr")
    b.call(b.load(pool.task), [b.load(pool.packet)])
    b.branch(leave)
    b.position_at_end(leave)
    b.atomic_rmw("sub", pool.active, ir.Constant(T.I64, 1), "seq_cst")
    b.branch(spin)
    return fn


def _run_function(pool: _Pool, worker: ir.Function) -> None:
    """void graphjit_parallel_run(task, packet, threads): see the module's docstring."""
    fn = ir.Function(pool.module, ir.FunctionType(_VOID, [TASK, T.I8P, T.I64]), RUN)
    task, packet, threads = fn.args
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    alone, pooled, owned = (fn.append_basic_block(n) for n in ("alone", "pooled", "owned"))
    pid = b.sext(b.call(pool.libc("getpid", T.I32, []), []), T.I64)
    usable = b.and_(
        b.icmp_signed(">", threads, ir.Constant(T.I64, 1)),
        b.icmp_unsigned("==", pid, pool.load(b, pool.pid, "monotonic")),
    )
    b.cbranch(usable, pooled, alone)

    b.position_at_end(alone)  # one thread, a busy pool, or a child of a native fork
    b.call(task, [packet])
    b.ret_void()

    b.position_at_end(pooled)
    zero, one = ir.Constant(T.I64, 0), ir.Constant(T.I64, 1)
    claimed = b.extract_value(b.cmpxchg(pool.busy, zero, one, "acquire", "monotonic"), 1)
    b.cbranch(claimed, owned, alone)

    b.position_at_end(owned)
    wanted = b.sub(threads, one)
    _start_workers(pool, b, fn, worker, wanted)
    b.store(task, pool.task)
    b.store(packet, pool.packet)
    pool.floating_point_mode(b, "stmxcsr")
    pool.store(b, wanted, pool.wanted, "release")
    pool.store(b, 1, pool.open)
    b.call(pool.libc("pthread_mutex_lock", T.I32, [T.I8P]), [pool.raw(b, pool.mutex)])
    b.atomic_rmw("add", pool.generation, one, "release")
    b.call(pool.libc("pthread_cond_broadcast", T.I32, [T.I8P]), [pool.raw(b, pool.cond)])
    b.call(pool.libc("pthread_mutex_unlock", T.I32, [T.I8P]), [pool.raw(b, pool.mutex)])
    b.call(task, [packet])
    pool.store(b, 0, pool.open)  # no worker joins from here on; wait for those that did
    _wait_for_workers(pool, b, fn)
    pool.store(b, 0, pool.busy, "release")
    b.ret_void()


def _start_workers(pool: _Pool, b: ir.IRBuilder, fn: ir.Function, worker, wanted) -> None:
    """Start workers until `wanted` exist (the pool is ours: `started` is too). One that
    cannot be started leaves its share to the others, and is tried again next job."""
    create = pool.libc("pthread_create", T.I32, [T.I64.as_pointer(), T.I8P, worker.type, T.I8P])
    detach = pool.libc("pthread_detach", T.I32, [T.I64])
    with b.goto_entry_block():
        tid = b.alloca(T.I64)
    test, start, started, done = (fn.append_basic_block(n) for n in ("test", "start", "ok", "go"))
    b.branch(test)
    b.position_at_end(test)
    n = pool.load(b, pool.started, "monotonic")
    b.cbranch(b.icmp_signed("<", n, wanted), start, done)
    b.position_at_end(start)
    status = b.call(create, [tid, ir.Constant(T.I8P, None), worker, b.inttoptr(n, T.I8P)])
    b.cbranch(b.icmp_signed("==", status, ir.Constant(T.I32, 0)), started, done)
    b.position_at_end(started)
    b.call(detach, [b.load(tid)])
    pool.store(b, b.add(n, ir.Constant(T.I64, 1)), pool.started, "monotonic")
    b.branch(test)
    b.position_at_end(done)


def _wait_for_workers(pool: _Pool, b: ir.IRBuilder, fn: ir.Function) -> None:
    """Until no worker is inside the job: pause CALLER_SPIN times, then yield the core."""
    with b.goto_entry_block():
        count = b.alloca(T.I64)
    b.store(ir.Constant(T.I64, 0), count)
    test, wait, done = (fn.append_basic_block(n) for n in ("wait.test", "wait", "wait.done"))
    b.branch(test)
    b.position_at_end(test)
    busy = b.icmp_unsigned("!=", pool.load(b, pool.active), ir.Constant(T.I64, 0))
    b.cbranch(busy, wait, done)
    b.position_at_end(wait)
    n = b.load(count)
    b.store(b.add(n, ir.Constant(T.I64, 1)), count)
    with b.if_else(b.icmp_unsigned("<", n, ir.Constant(T.I64, CALLER_SPIN))) as (spin, give_up):
        with spin:
            pool.pause(b)
        with give_up:
            b.call(pool.libc("sched_yield", T.I32, []), [])
    b.branch(test)
    b.position_at_end(done)
