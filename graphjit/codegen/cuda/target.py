"""Where the kernels run: Numba's CUDA target, on a GPU or in Numba's CUDA simulator, and
the launch geometry suited to each. numba.cuda is imported only when a cuda Session
compiles, so graphjit imports without it."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from graphjit.errors import BackendError

SIMULATOR_HINT = (
    "to run the kernels in Numba's CUDA simulator instead, set NUMBA_ENABLE_CUDASIM=1 in the "
    "environment before Python starts (Numba reads it when it is first imported)"
)
INSTALL_HINT = 'pip install "numba-cuda[cu12]"'


class CudaUnavailableError(BackendError):
    """The cuda backend was asked for, but there is no GPU and the simulator is off."""


def numba_cuda():
    """The numba.cuda module, ready to launch kernels, or a CudaUnavailableError saying why
    not and how to enable the simulator."""
    try:
        from numba import cuda
    except ImportError as e:
        raise CudaUnavailableError(
            f"the cuda backend needs Numba's CUDA target ({INSTALL_HINT}): {e}"
        ) from None
    if not cuda.is_available():
        simulator = "NUMBA_ENABLE_CUDASIM is unset"
        if os.environ.get("NUMBA_ENABLE_CUDASIM"):
            simulator = "NUMBA_ENABLE_CUDASIM was set after numba had been imported"
        raise CudaUnavailableError(
            f"the cuda backend found no usable CUDA GPU (numba.cuda.is_available() is false) "
            f"and {simulator}; {SIMULATOR_HINT}"
        )
    return cuda


def simulating(cuda) -> bool:
    return "simulator" in cuda.to_device.__module__


@dataclass(frozen=True)
class LaunchConfig:
    """Threads per block of 1-D kernels (a power of two: reduction trees halve it), the most
    blocks a grid-stride kernel gets, how many elements a reduction thread should fold
    before a second block shares its output, and the matmul tile edge (tile x tile
    threads per block)."""

    block: int
    max_blocks: int
    items_per_thread: int
    tile: int

    def grid(self, n: int) -> int:
        """Blocks for a grid-stride loop over n elements (at least one: a launch of zero
        blocks is an error)."""
        return self.blocks(math.ceil(n / self.block))

    def blocks(self, tasks: int) -> int:
        """Blocks for a loop over `tasks` block-sized tasks (at least one)."""
        return max(1, min(tasks, self.max_blocks))


GPU = LaunchConfig(block=256, max_blocks=1024, items_per_thread=4, tile=16)
# The simulator runs each GPU thread as a Python thread: few, small blocks keep it fast
# while still giving several blocks, partial results and partial tiles to test.
SIMULATOR = LaunchConfig(block=4, max_blocks=2, items_per_thread=1, tile=2)


def launch_config(cuda) -> LaunchConfig:
    return SIMULATOR if simulating(cuda) else GPU
