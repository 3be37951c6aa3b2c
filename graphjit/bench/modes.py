"""The table of modes, in the order reports show them. `gj-eager` is the baseline every
speed-up is relative to; `numpy` is the reference every result is checked against."""

from __future__ import annotations

from graphjit.bench import peers
from graphjit.bench.core import Mode, ModeUnavailable
from graphjit.frontend.eager_compiled import HOT_CALLS

BASELINE_MODE = "gj-eager"
REFERENCE_MODE = "numpy"

# gj.function: timed where a workload has a builder for it (the model workloads)
FUNCTION_MODE = Mode("gj-function", "graphjit gj.function (llvm)", partial=True)

MODES: tuple[Mode, ...] = (
    Mode("gj-llvm", "graphjit static (llvm)", static=True),
    Mode("gj-interp", "graphjit static (interpreter)", static=True),
    # built only by the elementwise, mlp and loops workloads; the others skip it
    Mode(
        "gj-iree",
        "IREE (via graphjit's MLIR export)",
        static=True,
        probe=peers.probe_iree,
        partial=True,
    ),
    # (eager convolutions compile at a signature's HOT_CALLS + 1st call: in the warm-up,
    # and the last warm-up call, which calibrates the loops, is a steady one)
    Mode("gj-eager", "graphjit eager", warmup=HOT_CALLS + 1),
    FUNCTION_MODE,
    Mode("numpy", "NumPy"),
    Mode("torch", "PyTorch eager", probe=peers.probe_torch),
    Mode("torch-compile", "torch.compile", probe=peers.probe_torch_compile),
    Mode("jax-jit", "jax.jit", probe=peers.probe_jax),
    Mode("tf1", "TensorFlow 1 graph", static=True, probe=peers.probe_tf1),
)


def mode_names() -> list[str]:
    return [mode.name for mode in MODES]


def select_modes(names: list[str] | None, modes=MODES) -> list[Mode]:
    if not names:
        return list(modes)
    by_name = {mode.name: mode for mode in modes}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; choose from {list(by_name)}")
    return [by_name[name] for name in names]


def availability(modes) -> dict[str, str | None]:
    """Mode name -> None if it can run here, else the reason it is skipped."""
    reasons: dict[str, str | None] = {}
    for mode in modes:
        try:
            mode.probe()
            reasons[mode.name] = None
        except ModeUnavailable as reason:
            reasons[mode.name] = str(reason)
    return reasons
