"""What the kernels need from Numba's CUDA simulator that it does not give as it is.

- `math`: the simulator runs kernels as Python, whose math.log(-1) or math.exp(1000)
  raise where a GPU (and NumPy) gives NaN or inf; kernels get NumPy's ufuncs instead.
- `libdevice`: the simulator has none; the two bit casts kernels use are NumPy views.
- Shared arrays: the simulator finds a block's shared array by the line that declares it
  in a dict it checks and fills without a lock, so two threads of a block can each create
  their own "shared" array and a reduction silently reads the wrong one. Declaring them is
  made atomic here (once per process)."""

from __future__ import annotations

import math
import sys
import threading
import traceback

import numpy as np
import scipy.special


class _NumPyMath:
    """`math.f` in a simulated kernel is NumPy's ufunc `f` (every function the scalar table
    may name, without a list here to keep in step with it); constants are math's."""

    inf, nan, pi = math.inf, math.nan, math.pi
    erf = staticmethod(scipy.special.erf)  # (CUDA's math has erf; NumPy has no ufunc for it)

    def __getattr__(self, name: str):
        return getattr(np, name)


SIMULATED_MATH = _NumPyMath()


class _NumPyLibdevice:
    """The libdevice functions kernels call (narrow.py's bfloat16 conversions), which the
    simulator lacks: bit casts between float32 and int32, as NumPy views."""

    @staticmethod
    def float_as_int(x):
        return np.float32(x).view(np.int32)

    @staticmethod
    def int_as_float(i):
        return np.int32(i).view(np.float32)


SIMULATED_LIBDEVICE = _NumPyLibdevice()

_lock = threading.Lock()


def make_shared_arrays_atomic() -> None:
    from numba.cuda.simulator import kernelapi

    shared = kernelapi.FakeCUDAShared
    if getattr(shared.array, "graphjit_atomic", False):
        return
    original = shared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory: no lookup to race
            return original(self, shape, dtype, alignment)
        # the same key as the simulator's: the declaring line (this function's caller)
        caller = tuple(traceback.extract_stack(sys._getframe())[-2][0:2])
        with _lock:
            if caller not in self._allocations:
                self._allocations[caller] = np.empty(shape, _numpy_dtype(dtype))
            return self._allocations[caller]

    array.graphjit_atomic = True
    shared.array = array


def _numpy_dtype(dtype):
    from numba.np import numpy_support

    return numpy_support.as_dtype(dtype) if not isinstance(dtype, np.dtype) else dtype
