"""The harness's vocabulary: a mode (one way to run a program), a workload (one program,
with a builder per mode) and what a builder returns (a prepared, callable run)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SIZES = ("tiny", "quick", "full")


class ModeUnavailable(Exception):
    """Raised by a mode's probe (or a builder) when a peer library cannot be used here: the
    mode is reported as skipped with this message as the reason, never as a failure."""


def _no_sync(_output: Any) -> None:
    return None


@dataclass
class Prepared:
    """A workload built for one mode. `run()` is what gets timed; `sync(output)` waits for
    asynchronous results (jax); `readout(output)` gives the values checked against the
    reference (default: the output itself); `trivial()`, for static modes, is a near-empty
    run of the same session, whose time is the dispatch overhead."""

    run: Callable[[], Any]
    sync: Callable[[Any], Any] = _no_sync
    readout: Callable[[Any], Any] | None = None
    trivial: Callable[[], Any] | None = None
    note: str = ""

    def values(self, output: Any) -> list[np.ndarray]:
        chosen = output if self.readout is None else self.readout(output)
        return [to_numpy(v) for v in flatten_outputs(chosen)]


Builder = Callable[[dict], Prepared]


def _always_available() -> None:
    return None


@dataclass(frozen=True)
class Mode:
    """One way to run a workload: `probe()` raises ModeUnavailable where it can't run."""

    name: str
    label: str
    static: bool = False  # a compiled session whose dispatch overhead is measured
    probe: Callable[[], None] = _always_available
    partial: bool = False  # only some workloads build it; the others report "no builder"
    warmup: int = 0  # untimed calls it needs (beside the checked one) before it is steady


@dataclass(frozen=True)
class Workload:
    """One benchmark program. `sizes[size]` are the parameters `make_data` turns into the
    inputs (NumPy arrays and ints) every builder receives; `builders[mode name]` builds it
    for that mode; `tolerance` scales the per-dtype tolerances of the result check.

    `fresh_inputs`: each `run()` of its Prepared runs on an input the mode has not seen yet
    (a new batch size), so each timed sample is one first call: the runner makes no warm-up
    calls and no inner loops (either would spend fresh inputs, or time warm calls), and
    does not judge the spread (samples at different sizes are meant to differ). The first
    call, the one that is checked, runs on the workload's seed input."""

    name: str
    description: str
    sizes: dict[str, dict]
    make_data: Callable[[dict], dict]
    builders: dict[str, Builder]
    tolerance: float = 1.0
    notes: dict[str, str] = field(default_factory=dict)
    fresh_inputs: bool = False

    def with_builder(self, mode_name: str, builder: Builder) -> Workload:
        """A copy with one more (or a replaced) builder: how tests inject a mode."""
        return dataclasses.replace(self, builders={**self.builders, mode_name: builder})


def flatten_outputs(output: Any) -> list:
    if isinstance(output, (list, tuple)):
        return [leaf for item in output for leaf in flatten_outputs(item)]
    if isinstance(output, dict):
        return [leaf for key in sorted(output) for leaf in flatten_outputs(output[key])]
    return [output]


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy copy of a result from any mode (torch, jax, graphjit eager, NumPy)."""
    if hasattr(value, "detach"):  # torch, and graphjit eager tensors
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.array(value)
