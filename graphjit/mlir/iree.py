"""IREE as a graphjit backend: the exported module compiled by IREE for the host CPU
(llvm-cpu) and run by `iree.runtime`'s local-task (multithreaded) driver.

Variables stay on the IREE device between runs: the runner remembers the device array
behind each variable value it returned, and when the Session hands that same array back
as an argument (the next training step) it passes the device array instead of uploading
it again. Feeds are uploaded on every run (the caller may change a fed array in place),
and every result is copied back to a NumPy array, as the Session keeps NumPy values."""

from __future__ import annotations

import functools
import re
import weakref
from types import SimpleNamespace

import numpy as np

from graphjit.errors import BackendError
from graphjit.mlir.writer import CHECK_PREFIX
from graphjit.runtime.program import Program

INSTALL_HINT = "pip install graphjit[mlir]"  # (iree-base-compiler and iree-base-runtime)


@functools.cache
def require_iree() -> SimpleNamespace:
    """IREE's compiler, its MLIR bindings and its runtime, or a BackendError naming the
    extra that brings them."""
    try:
        import iree.compiler as compiler
        import iree.runtime as runtime
        from iree.compiler import ir
    except ImportError as e:
        raise BackendError(
            f"the iree backend and MLIR verification need IREE ({e}): {INSTALL_HINT}"
        ) from None
    return SimpleNamespace(compiler=compiler, runtime=runtime, compiler_ir=ir)


@functools.cache
def _device_config():
    """One runtime instance and device for the process (creating one starts a thread pool)."""
    return require_iree().runtime.Config("local-task")


COMPILE_FLAGS = [
    "--iree-llvmcpu-target-cpu=host",  # the host's vector width, as graphjit's llvm uses
    "--iree-input-demote-f64-to-f32=false",  # IREE narrows float64 by default
]


def compile_module(text: str) -> bytes:
    """The IREE VM flatbuffer for an exported module."""
    iree = require_iree()
    try:
        return iree.compiler.compile_str(
            text, target_backends=["llvm-cpu"], extra_args=COMPILE_FLAGS
        )
    except iree.compiler.CompilerToolError as e:
        raise BackendError(f"IREE could not compile the exported module: {e}") from None


class IreeRunner:
    """Runs one compiled program: `run(args) -> [NumPy arrays]` like every runner."""

    def __init__(self, program: Program, check_numerics: bool = False):
        from graphjit.mlir.export import export_with_checks

        self.text, self.checks = export_with_checks(program, check_numerics)
        runtime = require_iree().runtime
        config = _device_config()
        self.context = runtime.SystemContext(config=config)
        vmfb = compile_module(self.text)
        self.context.add_vm_module(runtime.VmModule.copy_buffer(config.vm_instance, vmfb))
        self.main = self.context.modules.module["main"]
        self.n_fetches = len(program.fetches)

    def run(self, args: list) -> list:
        try:
            outs = self.main(*[_resident(a) for a in args])
        except RuntimeError as e:
            raise self._check_error(e) from None
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        hosts = [np.array(o.to_host()) for o in outs]  # a copy the caller owns
        for host, device in zip(hosts[self.n_fetches :], outs[self.n_fetches :], strict=True):
            _remember(host, device)  # a variable's new value: keep its device copy
        return hosts

    def _check_error(self, error: RuntimeError) -> Exception:
        """The graphjit error of the failed `cf.assert` the error names (IREE reports its
        message: "graphjit check k"), else the error itself."""
        found = re.search(rf"{CHECK_PREFIX}(\d+)", str(error))
        if found is None:
            return error
        message, op, error_class = self.checks[int(found.group(1))]
        return error_class(message, op=op)


# id(host array) -> (weak reference to it, its device array); an entry goes when the host
# array does, so a reused id never finds a stale device array.
_on_device: dict = {}


def _remember(host: np.ndarray, device) -> None:
    key = id(host)
    _on_device[key] = (weakref.ref(host), device)
    weakref.finalize(host, _on_device.pop, key, None)


def _resident(array):
    """The device array already holding `array`, else `array` (IREE uploads it)."""
    entry = _on_device.get(id(array))
    if entry is not None and entry[0]() is array:
        return entry[1]
    return np.asarray(array, order="C")  # IREE reads dense row-major buffers only


def iree_factory(program: Program, check_numerics: bool, flush_denormals: bool) -> IreeRunner:
    return IreeRunner(program, check_numerics)
