"""IREE as a graphjit backend: the exported module compiled by IREE for the host CPU
(llvm-cpu) and run by `iree.runtime`'s local-task (multithreaded) driver, or by its
local-sync driver (the calling thread) where every tensor is small (`driver_for`).

Variables stay on the IREE device between runs: the runner remembers the device array
behind each variable value it returned, and when the Session hands that same array back
as an argument (the next training step) it passes the device array instead of uploading
it again. The local CPU device reads and writes host memory, so nothing is copied
either way where IREE allows it: a fed array is imported in place for the call (IREE's
own upload of a 64 MiB feed took 35 ms, six times a memcpy), and a result is the NumPy
view of its device buffer, which the view keeps alive."""

from __future__ import annotations

import functools
import re
import weakref
from types import SimpleNamespace

import numpy as np

from graphjit.errors import BackendError
from graphjit.ir.types import ListType
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
def _device_config(driver: str):
    """One runtime instance and device per driver for the process (creating a local-task
    one starts a thread pool)."""
    return require_iree().runtime.Config(driver)


# A dispatch on local-task wakes the pool's threads and waits for them, ~15-30 us, which
# only a large tensor repays; local-sync runs it on the calling thread for ~1-3 us. That
# cost is paid per op and per iteration of a loop, which runs on the host: 1000
# iterations of `x + 1` on 16 floats (loop_add) took 66 ms on local-task and 3.4-5.8 ms
# on local-sync, the loop with a branch (cond_loop, 256 floats) 53-67 and 6.2-9.5 ms. A program
# with a larger tensor anywhere keeps the threads (the 16M-element chain took 14.6 ms on
# local-task, 53 ms on local-sync).
SYNC_MAX_ELEMENTS = 1 << 15


def driver_for(fn) -> str:
    """local-sync where no tensor of `fn` (in a loop's body or outside it) has more than
    SYNC_MAX_ELEMENTS elements, else local-task."""
    for op in fn.walk():
        for v in (*op.operands, *op.results):
            t = v.type.elem if isinstance(v.type, ListType) else v.type
            if t.size is None or t.size > SYNC_MAX_ELEMENTS:
                return "local-task"
    return "local-sync"


COMPILE_FLAGS = [
    "--iree-llvmcpu-target-cpu=host",  # the host's vector width, as graphjit's llvm uses
    "--iree-input-demote-f64-to-f32=false",  # IREE narrows float64 by default
    # IREE's kernels assume their buffers 64-byte aligned unless told otherwise, and a
    # NumPy array seldom is (16 bytes): imported as it is, it crashed them; copied to an
    # aligned buffer, a 64 MiB feed cost 6 ms a call. Told to assume nothing, they read
    # feeds in place, no slower on aligned ones (the 16M chain: 5.0-5.8 ms both ways).
    "--iree-stream-resource-min-offset-alignment=1",
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
        from graphjit.mlir.own_math import OWN_MATH

        self.text, self.checks = export_with_checks(
            program, check_numerics, OWN_MATH, linalg_ext=True
        )
        runtime = require_iree().runtime
        self.driver = driver_for(program.function)
        config = _device_config(self.driver)
        self.device = config.device
        self.context = runtime.SystemContext(config=config)
        vmfb = compile_module(self.text)
        self.context.add_vm_module(runtime.VmModule.copy_buffer(config.vm_instance, vmfb))
        self.main = self.context.modules.module["main"]
        self.n_fetches = len(program.fetches)

    def run(self, args: list) -> list:
        # IREE does not keep an imported array alive: `imported` does, through the call
        imported: list = []
        try:
            outs = self.main(*[_resident(a, imported, self.device) for a in args])
        except RuntimeError as e:
            raise self._check_error(e) from None
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        hosts = [_host(o, imported) for o in outs]
        for j in range(self.n_fetches, len(outs)):
            if hosts[j] is not None:  # a variable's new value: keep its device copy
                _remember(hosts[j], outs[j], self.device)
        return [h if h is not None else np.array(o.to_host()) for h, o in zip(hosts, outs)]

    def _check_error(self, error: RuntimeError) -> Exception:
        """The graphjit error of the failed `cf.assert` the error names (IREE reports its
        message: "graphjit check k"), else the error itself."""
        found = re.search(rf"{CHECK_PREFIX}(\d+)", str(error))
        if found is None:
            return error
        message, op, error_class = self.checks[int(found.group(1))]
        return error_class(message, op=op)


# id(host array) -> (weak reference to it, its device array, that array's device); an
# entry goes when the host array does, so a reused id never finds a stale device array.
_on_device: dict = {}


def _remember(host: np.ndarray, device_array, device) -> None:
    key = id(host)
    _on_device[key] = (weakref.ref(host), device_array, device)
    weakref.finalize(host, _on_device.pop, key, None)


def _resident(array, imported: list, device):
    """The array on `device`: the device array already holding it there, else `array`
    read in place (and added to `imported`) or uploaded. A variable's device array made
    by a program on the other driver's device is not passed across devices."""
    entry = _on_device.get(id(array))
    if entry is not None and entry[0]() is array and entry[2] is device:
        return entry[1]
    return _import(np.asarray(array, order="C"), imported, device)  # dense row-major only


# Below IMPORT_MIN_BYTES IREE's own upload costs no more than importing.
IMPORT_MIN_BYTES = 1 << 16


def _import(array: np.ndarray, imported: list, device):
    """A device array over `array`'s memory (no copy; the array is appended to
    `imported`, which the caller keeps alive), or `array` itself for IREE to upload
    where importing does not apply (small, bool, or a dtype IREE does not map)."""
    from iree.runtime import BufferUsage, DeviceArray, HalBufferView, MemoryType
    from iree.runtime.array_interop import map_dtype_to_element_type

    element_type = map_dtype_to_element_type(array.dtype)
    if array.nbytes < IMPORT_MIN_BYTES or array.dtype == np.bool_ or element_type is None:
        return array
    if not (array.flags.aligned and array.flags.writeable):  # (a view at an odd address)
        array = array.copy()
    imported.append(array)
    buffer = device.allocator.import_host_allocation(
        array, MemoryType.DEVICE_LOCAL, BufferUsage.DEFAULT
    )
    view = HalBufferView(buffer, array.shape, element_type)
    return DeviceArray(device, view, override_dtype=array.dtype)


def _host(device_array, imported: list) -> np.ndarray | None:
    """A result as NumPy: the view of its (host-visible) buffer, which keeps the buffer
    alive, else a copy; None where the result is an imported argument's memory (a
    function returning its input), which the caller copies, as it does not live on."""
    host = device_array.to_host()
    if not isinstance(host.base, memoryview):
        return np.array(host)
    if any(np.shares_memory(host, a) for a in imported):
        return None
    return host


def iree_factory(program: Program, check_numerics: bool, flush_denormals: bool) -> IreeRunner:
    return IreeRunner(program, check_numerics)
