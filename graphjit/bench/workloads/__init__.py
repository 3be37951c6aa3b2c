"""The registry of workloads, in the order reports show them. A workload module defines
its data and one builder per mode (see `graphjit.bench.core.Workload`)."""

from __future__ import annotations

from graphjit.bench.core import Workload
from graphjit.bench.workloads import (
    batched_matmul,
    cnn,
    compile_scaling,
    elementwise,
    linreg,
    loop_grad,
    loops,
    mlp,
    new_batch_size,
    reduce_accuracy,
    rnn,
    rows,
    transformer,
)

WORKLOADS: tuple[Workload, ...] = (
    mlp.FORWARD,
    mlp.TRAIN_STEP,
    elementwise.WORKLOAD,
    loops.LOOP_ADD,
    loops.COND_LOOP,
    loop_grad.WORKLOAD,
    linreg.WORKLOAD,
    rnn.FORWARD,
    rnn.BACKWARD,
    cnn.TRAIN_STEP,
    transformer.TRAIN_STEP,
    *compile_scaling.WORKLOADS,
    reduce_accuracy.WORKLOAD,
    rows.SOFTMAX,
    rows.SOFTMAX_GRAD,
    rows.LAYERNORM,
    rows.LAYERNORM_GRAD,
    batched_matmul.WORKLOAD,
    new_batch_size.WORKLOAD,
)


def workload_names() -> list[str]:
    return [workload.name for workload in WORKLOADS]


def select_workloads(names: list[str] | None, workloads=WORKLOADS) -> list[Workload]:
    if not names:
        return list(workloads)
    by_name = {workload.name: workload for workload in workloads}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {list(by_name)}")
    return [by_name[name] for name in names]
