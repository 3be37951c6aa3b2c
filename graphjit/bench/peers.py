"""Lazy access to the optional peer libraries (PyTorch, JAX, TensorFlow). None of them is a
dependency of graphjit: a missing one makes its modes `skipped`, with the reason."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator

from graphjit.bench.core import ModeUnavailable

TORCH_COMPILE_PROBE_TIMEOUT_S = 240.0
DEFAULT_TORCH_COMPILE_BACKEND = "inductor"
_torch_compile_backend = DEFAULT_TORCH_COMPILE_BACKEND


def require(module_name: str):
    """Import a peer or raise ModeUnavailable saying it is not installed."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise ModeUnavailable(f"{module_name.split('.')[0]} is not installed ({error})") from None


def torch():
    return require("torch")


def jax():
    """The jax module, with jax.numpy and jax.lax imported."""
    module = require("jax")
    require("jax.numpy")
    require("jax.lax")
    return module


def tf1():
    """`tensorflow.compat.v1`, imported with TensorFlow's start-up logging silenced."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with _native_stderr_silenced():  # TensorFlow's C++ logs before reading that setting
            require("tensorflow")
    return require("tensorflow").compat.v1


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def torch_compile_backend(backend: str) -> Iterator[None]:
    """Use `backend` for every torch.compile inside the block (tests use "eager", which
    traces with dynamo but skips inductor's slow code generation)."""
    global _torch_compile_backend
    previous, _torch_compile_backend = _torch_compile_backend, backend
    try:
        yield
    finally:
        _torch_compile_backend = previous


def torch_compile(fn: Callable) -> Callable:
    return torch().compile(fn, backend=_torch_compile_backend)


def probe_iree() -> None:
    """The gj-iree mode needs the mlir extra (IREE's compiler and runtime)."""
    require("iree.compiler")
    require("iree.runtime")


def probe_torch() -> None:
    torch()


def probe_jax() -> None:
    jax()


def probe_tf1() -> None:
    tf1()


@functools.cache
def _torch_compile_problem(backend: str, timeout_s: float) -> str | None:
    """Compile and run a trivial function once (the inductor's first compile is the slow
    one), on a daemon thread so that a hang is cut off after `timeout_s`."""
    torch_module = torch()
    outcome: dict = {}

    def attempt() -> None:
        try:
            compiled = torch_module.compile(lambda x: torch_module.tanh(x) * 2 + 1, backend=backend)
            compiled(torch_module.ones(8))
            outcome["ok"] = True
        except Exception as error:  # any failure of the toolchain means: skip the mode
            outcome["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"

    worker = threading.Thread(target=attempt, daemon=True, name="torch-compile-probe")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return f"torch.compile did not finish a trivial compile within {timeout_s:.0f} s"
    if "error" in outcome:
        return f"torch.compile failed on this machine: {outcome['error'][:300]}"
    return None


def probe_torch_compile() -> None:
    problem = _torch_compile_problem(_torch_compile_backend, TORCH_COMPILE_PROBE_TIMEOUT_S)
    if problem is not None:
        raise ModeUnavailable(problem)
