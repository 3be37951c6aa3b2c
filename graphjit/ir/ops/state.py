"""Graph inputs and state: constants, placeholders, variables and their assignment.

Placeholders and variables have no kernel: the Session binds them. A Session run sees each
variable's value at the start of the run; `assign` results are the new values, written
back when the run ends.
"""

from __future__ import annotations

import numpy as np

from graphjit.ir.ops import (
    CONSTANT,
    FEED,
    NONDIFF,
    REQUIRED,
    STATE,
    STATE_UPDATE,
    OpDef,
    register,
)
from graphjit.ir.types import TensorType, as_dtype


def _declared_type(types, attrs):
    shape = attrs["shape"]  # (None: a placeholder of any rank)
    return [TensorType(None if shape is None else tuple(shape), as_dtype(attrs["dtype"]))]


register(
    OpDef(
        "constant",
        lambda t, a: [TensorType(a["value"].shape, as_dtype(a["value"].dtype))],
        lambda value: value,
        NONDIFF,
        attrs={"value": REQUIRED},
        traits=frozenset({CONSTANT}),
    )
)
register(
    OpDef(
        "placeholder",
        _declared_type,
        None,
        NONDIFF,
        attrs={"name": REQUIRED, "shape": REQUIRED, "dtype": REQUIRED},
        traits=frozenset({FEED}),
    )
)
register(
    OpDef(
        "variable",
        _declared_type,
        None,
        NONDIFF,
        attrs={"name": REQUIRED, "shape": REQUIRED, "dtype": REQUIRED},
        traits=frozenset({STATE}),
    )
)
register(
    OpDef(
        "assign",
        lambda t, a: [t[0]],
        lambda value, var: np.array(value),
        NONDIFF,
        attrs={"var": REQUIRED},
        side_effect=True,
        traits=frozenset({STATE_UPDATE}),
    )
)
# Groups side effects into one fetchable op (what `minimize` returns); it has no results.
register(OpDef("group", lambda t, a: [], lambda *xs: (), NONDIFF, side_effect=True))
