"""Ctrl-C in native code. Python runs its SIGINT handler only between bytecodes, so a long
native loop would keep a user's Ctrl-C waiting until it finished. Instead a tiny native
handler, built here with LLVM, counts SIGINTs in a process-wide counter (the symbol
`graphjit_interrupts`) and then calls the handler it replaced (CPython's, which arranges
for KeyboardInterrupt as usual). Native code reads the counter when it starts; loop
back-edges and the chunks of long kernels compare it with that reading and, when it moved,
stop with the INTERRUPTED status. The runner then lets Python run its pending handler,
which raises the KeyboardInterrupt: one exception, from the user's sess.run.

The hook is installed (and reinstalled when something replaced it) only while Python's
SIGINT handler is `signal.default_int_handler`: a program with a handler of its own, or
SIG_IGN, keeps its behaviour and runs to completion. Linux (x86-64, AArch64) only, where
the layout of `struct sigaction` is known; elsewhere native code is not interruptible.

BLAS calls are not interruptible; they are bounded by their operands' size."""

from __future__ import annotations

import ctypes
import platform
import signal
import sys
import threading
import time

import llvmlite.binding as llvm
from llvmlite import ir

from graphjit.codegen.llvm import jit
from graphjit.codegen.llvm import types as T

COUNTER = "graphjit_interrupts"
_PREVIOUS = "graphjit_previous_sigint"
_HANDLER = "graphjit_on_sigint"
SUPPORTED = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")

_counter = ctypes.c_int64(0)  # process-wide; its address is what the symbol names
_previous = ctypes.c_void_p(0)
llvm.add_symbol(COUNTER, ctypes.addressof(_counter))
llvm.add_symbol(_PREVIOUS, ctypes.addressof(_previous))


class _Sigaction(ctypes.Structure):
    """glibc's (and musl's) struct sigaction on x86-64 and AArch64."""

    _fields_ = [
        ("handler", ctypes.c_void_p),
        ("mask", ctypes.c_ulong * 16),
        ("flags", ctypes.c_int),
        ("restorer", ctypes.c_void_p),
    ]


RECHECK_SECONDS = 0.1
_lock = threading.Lock()
_state: dict = {}  # "code" (keeps the handler alive), "address", "sigaction", "checked"


def counter_reference(module: ir.Module) -> ir.GlobalVariable:
    """The module's declaration of the process-wide interrupt counter."""
    return T.external_global(module, COUNTER, T.I64)


def read_counter(b: ir.IRBuilder, module: ir.Module) -> ir.Value:
    """An atomic read of the counter: never hoisted out of a loop or merged with another."""
    return b.load_atomic(counter_reference(module), "monotonic", 8)


def interrupted(b: ir.IRBuilder, module: ir.Module, start: ir.Value) -> ir.Value:
    """i1: a SIGINT arrived since `start` was read."""
    return b.icmp_unsigned("!=", read_counter(b, module), start)


def returning_poll(b: ir.IRBuilder, module: ir.Module):
    """poll(b): a long function returns early on Ctrl-C (the entry point then stops the
    run). It reads the counter where `b` is now (the function's start) and compares it
    wherever poll is emitted (between chunks of its loop)."""
    start = read_counter(b, module)

    def poll(b: ir.IRBuilder) -> None:
        with b.if_then(interrupted(b, module, start), likely=False):
            b.ret_void()

    return poll


def _handler_ir() -> str:
    """void graphjit_on_sigint(int, siginfo_t*, void*): count, then chain (CPython's own
    handler takes one argument; passing three is harmless in these C ABIs)."""
    module = ir.Module("graphjit_sigint")
    handler_type = ir.FunctionType(ir.VoidType(), [T.I32, T.I8P, T.I8P])
    previous = ir.GlobalVariable(module, handler_type.as_pointer(), _PREVIOUS)
    previous.linkage = "external"
    fn = ir.Function(module, handler_type, _HANDLER)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.atomic_rmw("add", counter_reference(module), ir.Constant(T.I64, 1), "seq_cst")
    chained = b.load_atomic(previous, "monotonic", 8)
    with b.if_then(b.icmp_unsigned("!=", chained, ir.Constant(chained.type, None))):
        b.call(chained, fn.args)
    b.ret_void()
    return str(module)


def _handler_address() -> int:
    if "address" not in _state:
        # compiled like any module (one compile at a time: LLVM's context is shared), and
        # kept for the life of the process: the signal handler's code must never go away
        _state["code"] = jit.CompiledModule(_handler_ir())
        _state["address"] = _state["code"].address(_HANDLER)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.sigaction.argtypes = [
            ctypes.c_int,
            ctypes.POINTER(_Sigaction),
            ctypes.POINTER(_Sigaction),
        ]
        _state["sigaction"] = libc.sigaction
    return _state["address"]


def ensure_hook() -> None:
    """Make sure SIGINT reaches native code, when Python's handler is the default one.
    Checked at most every RECHECK_SECONDS (a check costs microseconds, a short run less):
    a handler set again just before a run may leave that run uninterruptible."""
    now = time.monotonic()
    if now - _state.get("checked", -RECHECK_SECONDS) < RECHECK_SECONDS:
        return
    _state["checked"] = now
    if not SUPPORTED or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    with _lock:
        ours = _handler_address()
        sigaction = _state["sigaction"]
        current = _Sigaction()
        if sigaction(signal.SIGINT, None, ctypes.byref(current)) != 0:
            return
        if current.handler == ours or not current.handler or current.handler == 1:
            return  # ours already, or SIG_DFL/SIG_IGN at the C level: leave it alone
        _previous.value = current.handler
        hooked = _Sigaction()
        ctypes.memmove(ctypes.byref(hooked), ctypes.byref(current), ctypes.sizeof(_Sigaction))
        hooked.handler = ours
        sigaction(signal.SIGINT, ctypes.byref(hooked), None)


def raise_interrupt() -> None:
    """After native code stopped for a SIGINT: run Python's pending handler now (the
    default one raises KeyboardInterrupt here, in the main thread); other threads, or a
    handler that did not raise, get a KeyboardInterrupt of their own."""
    if threading.current_thread() is threading.main_thread():
        ctypes.pythonapi.PyErr_CheckSignals()
    raise KeyboardInterrupt
