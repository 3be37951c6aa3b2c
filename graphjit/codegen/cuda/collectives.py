"""The cuda lowerings of ir/ops/collectives.py: none yet. Data-parallel training runs on the
llvm backend and the interpreter; a graph with an all_reduce is refused here with that
reason (rather than the generic "cannot lower"), when the Session compiles."""

from __future__ import annotations

from graphjit.errors import BackendError
from graphjit.ir.core import Operation


def op_unsupported_collective(low, op: Operation) -> None:
    raise BackendError(
        f"the cuda backend has no MPI collectives ('{op.name}'): run data-parallel training "
        "with backend='llvm' or 'interpreter'",
        op=op,
    )


LOWERINGS: dict = {"all_reduce": op_unsupported_collective}
