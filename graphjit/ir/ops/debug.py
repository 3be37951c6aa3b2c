"""Debugging primitives: `check_numerics` (TensorFlow's tf.debugging.check_numerics).

`check_numerics(x, message)` is the identity on a float tensor that has no NaN or infinity,
and otherwise stops the run with a NumericsError carrying `message`. Its gradient is the
identity; it has no side effect of its own (like any op, it runs when a fetch needs it).
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, NumericsError
from graphjit.ir.core import user_location
from graphjit.ir.ops import REQUIRED, VIEW, OpDef, register


def numerics_message(message: str, has_nan: bool) -> str:
    """The one message every backend gives when the check fails."""
    return f"{message}: the tensor has {'NaN' if has_nan else 'infinite'} values"


def _infer(types, attrs):
    if not types[0].dtype.is_floating:
        raise DTypeError(f"check_numerics needs a float tensor, got {types[0].dtype.name}")
    return [types[0]]


def _kernel(x, message):
    if not np.all(np.isfinite(x)):
        # eager mode: the user's line; the interpreter replaces it with the op's own line
        raise NumericsError(
            numerics_message(message, bool(np.isnan(x).any())), location=user_location()
        )
    return np.array(x)  # a copy: an eager in-place update of the result must not reach x


register(
    OpDef(
        "check_numerics",
        _infer,
        _kernel,
        lambda cts, ins, outs, attrs: [cts[0]],
        attrs={"message": REQUIRED},
        traits=frozenset({VIEW}),  # its result is its operand, unchanged
    )
)
