"""One run of every workload in every mode at the tiny size, shared by the bench tests that
check what it produced (the harness's report, each model workload's cells): it takes ~25 s
on two cores, and each model workload's own run took 7 s more.

torch.compile runs with its "eager" backend: dynamo still traces every builder, but
inductor's code generation (tens of seconds on two cores) is left to `graphjit bench`."""

import pytest

from graphjit.bench import BenchConfig, run_benchmarks


@pytest.fixture(scope="session")
def tiny_run():
    config = BenchConfig(
        size="tiny", repeat=1, warmup=0, progress=False, torch_compile_backend="eager"
    )
    return run_benchmarks(config)


@pytest.fixture(scope="session")
def workload_cells(tiny_run):
    """workload_cells(name): mode name -> that workload's cell in tiny_run."""

    def cells(name: str) -> dict:
        (result,) = [r for r in tiny_run.results if r.workload.name == name]
        return {cell.mode: cell for cell in result.cells}

    return cells
