"""Anomaly detection, as PyTorch's `detect_anomaly`: while it is on, every tape node notes the
user's line that built it (so backward errors point at the forward op, not at backward()),
and backward checks each gradient for nan. Off by default: noting lines inspects the stack,
which the per-op path otherwise never does."""

from __future__ import annotations

import numpy as np

from graphjit.errors import GradientError
from graphjit.ir.core import user_location
from graphjit.ir.types import is_float_array

ANOMALY = [False]  # one flag for all threads, as in PyTorch


def is_anomaly_enabled() -> bool:
    return ANOMALY[0]


def set_detect_anomaly(mode: bool) -> None:
    ANOMALY[0] = bool(mode)


class detect_anomaly:  # (PyTorch's spelling)
    """`with gj.autograd.detect_anomaly():` turns anomaly detection on inside the block."""

    def __enter__(self):
        self._previous = ANOMALY[0]
        ANOMALY[0] = True
        return self

    def __exit__(self, *exc_info) -> None:
        ANOMALY[0] = self._previous


def where_built(node):
    """The forward line that built `node` when anomaly detection noted it, else the current
    user line (the backward() call)."""
    return getattr(node, "location", None) or user_location()


def check_finite_gradients(node, cts) -> None:
    for i, ct in enumerate(cts):
        if ct is not None and is_float_array(ct._data) and np.isnan(ct._data).any():
            raise GradientError(
                f"{node.name} returned nan in the gradient of its input {i}",
                location=where_built(node),
            )
