"""The CUDA backend: the optimised function's fused ops, matmuls and copies become Numba
CUDA kernels (generated as Python source, see fused.py, matmul.py, copies.py), run by a
host driver that follows the memory plan with device-resident buffers.

Variables. The Session passes every variable as an argument each run and keeps the new
values the run returns. The runner keeps each variable's new value on the device too, and
when the next run passes the very array it returned for that variable, uses the device
copy instead of uploading it again. Those returned arrays are read-only, so the host array
cannot change behind the device copy; a Session that replaces a variable's array
(`restore`, another executable's assign) passes a new array, which is uploaded."""

from __future__ import annotations

import threading

import numpy as np

from graphjit.codegen.cuda.lower import Lowering, run_steps, to_host
from graphjit.codegen.cuda.source import storage_np
from graphjit.codegen.cuda.target import launch_config, numba_cuda
from graphjit.errors import BackendError


class CudaRunner:
    """Runs one compiled function: uploads arguments, runs the schedule, downloads the
    returned values. A lock keeps two threads off the shared arena."""

    def __init__(self, program, check_numerics: bool = False):
        fn = program.function
        if getattr(fn, "memory_plan", None) is None:  # the pipeline runs in runtime/executable
            raise BackendError(
                "the cuda backend lowers an optimised function with a memory plan (kernels "
                "come from fused ops only): compile it with runtime.executable.compile_program, "
                "not by calling the backend directly"
            )
        self.cuda = numba_cuda()
        self.lowering = Lowering(fn, self.cuda, launch_config(self.cuda), check_numerics)
        self.steps, self.returned = self.lowering.lower()
        self.args = list(fn.args)
        n_fetches = len(program.fetches)
        first_variable = len(program.placeholders)
        # output slot -> argument index of the variable it updates; a variable the program
        # writes without reading it (an initializer, `w.assign(value)`) is no argument,
        # and its new value is uploaded by the next run that reads it
        self.variable_slots = {
            n_fetches + k: first_variable + program.variables.index(name)
            for k, name in enumerate(program.assigned)
            if name in program.variables
        }
        self.output_buffers: dict = {}
        self.resident: dict[int, tuple[np.ndarray, object]] = {}
        self.lock = threading.Lock()

    @property
    def kernels(self) -> int:
        return self.lowering.kernels

    def run(self, args: list) -> list:
        with self.lock:
            # a run that fails half way may have updated device copies in place
            resident, self.resident = self.resident, {}
            frame = self._frame(args, resident)
            run_steps(self.steps, frame)
            outs = [to_host(frame[v], v) for v in self.returned]
            self._keep_variables(outs, frame)
        return outs

    def _frame(self, args: list, resident: dict) -> dict:
        low = self.lowering
        frame = dict(low.static)
        for i, (arg, a) in enumerate(zip(self.args, args, strict=True)):
            kept = resident.get(i)
            if kept is not None and kept[0] is a:
                frame[arg] = kept[1]
            else:
                frame[arg] = self.cuda.to_device(_storage(a, arg))
        for v in low.outputs:
            if v not in self.output_buffers:
                self.output_buffers[v] = self.cuda.device_array(
                    v.type.size, storage_np(v.type.dtype)
                )
            frame[v] = self.output_buffers[v]
        for v, root in low.bound.items():
            frame[v] = frame[root]
        return frame

    def _keep_variables(self, outs: list, frame: dict) -> None:
        """Keep the device copy of each variable's new value for the next run, when it is
        a buffer of this run's alone (an uploaded argument or an output buffer, which is
        then replaced) and no other variable keeps it."""
        static = {id(a) for a in self.lowering.static.values()}
        taken: set[int] = set()
        for j, i in self.variable_slots.items():
            device = frame[self.returned[j]]
            if id(device) in static or id(device) in taken:
                continue
            taken.add(id(device))
            for v, buffer in list(self.output_buffers.items()):
                if buffer is device:
                    del self.output_buffers[v]
            outs[j].flags.writeable = False
            self.resident[i] = (outs[j], device)


def _storage(array, v) -> np.ndarray:
    """A host array as the flat, contiguous array of v's device storage (bfloat16: its
    bits as uint16, which Numba can type)."""
    return np.ascontiguousarray(array).reshape(-1).view(storage_np(v.type.dtype))


def compile_cuda(program, check_numerics: bool = False) -> CudaRunner:
    return CudaRunner(program, check_numerics)
