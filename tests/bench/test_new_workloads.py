"""The batched_matmul and new_batch_size workloads on their tiny sizes through the harness:
every installed mode computes NumPy's result. For new_batch_size, whose timed calls each
run at a new batch size, every mode's results at the seed and at the next fresh sizes are
checked against NumPy's here too (the harness checks the first call only), and the sizes
never repeat.

torch.compile runs with its "eager" backend, as in test_harness_run.py."""

import numpy as np
import pytest

from graphjit.bench import MODES, BenchConfig, ModeUnavailable, report, run_benchmarks
from graphjit.bench.check import compare
from graphjit.bench.schema import validate
from graphjit.bench.workloads import batched_matmul, new_batch_size, workload_names

CORE_MODES = {"gj-llvm", "gj-interp", "gj-eager", "gj-function", "numpy"}


@pytest.fixture(scope="module")
def tiny_run():
    config = BenchConfig(
        size="tiny", repeat=3, warmup=0, progress=False, torch_compile_backend="eager"
    )
    workloads = [batched_matmul.WORKLOAD, new_batch_size.WORKLOAD]
    return run_benchmarks(config, workloads=workloads, modes=MODES)


def test_both_workloads_are_registered():
    assert {"batched_matmul", "new_batch_size"} <= set(workload_names())


@pytest.mark.parametrize("index", [0, 1])
def test_every_available_mode_computes_the_reference_result(tiny_run, index):
    result = tiny_run.results[index]
    cells = {cell.mode: cell for cell in result.cells}
    assert set(cells) == {mode.name for mode in MODES}
    for mode, cell in cells.items():
        if mode in CORE_MODES:
            assert cell.status == "ok", (result.workload.name, mode, cell.reason)
        elif cell.reason != "no builder for this mode":  # (gj-iree: not built here)
            assert cell.status in ("ok", "skipped"), (mode, cell.reason)
        if cell.status == "ok":
            assert cell.timing.repeats == 3 and cell.compile_s > 0


def test_new_batch_size_times_single_first_calls(tiny_run):
    for cell in tiny_run.results[1].cells:
        if cell.status == "ok":
            assert cell.timing.loops == 1 and cell.timing.warmup == 0
            assert cell.timing.busy is None
    result = report.to_json(tiny_run)
    validate(result)
    assert [w["fresh_inputs"] for w in result["workloads"]] == [False, True]
    assert "new_batch_size: each sample is one first call" in report.format_table(result)


def test_fresh_batch_sizes_are_new_odd_and_start_with_the_documented_five():
    sizes = new_batch_size.FRESH_SIZES
    assert sizes[:5] == (17, 33, 65, 129, 257) and sizes[5:9] == (25, 49, 97, 193)
    assert len(set(sizes)) == len(sizes) >= 20
    seeds = {params["batch"] for params in new_batch_size.SIZES.values()}
    assert all(size % 2 == 1 for size in sizes) and not seeds & set(sizes)


FRESH_CALLS = 3  # the seed call, then this many new sizes, checked mode by mode


@pytest.mark.parametrize("mode", ["gj-llvm", "gj-interp", "gj-eager", "gj-function", "torch",
                                  "jax-jit"])  # fmt: skip
def test_each_new_batch_size_computes_numpy_s_result(mode):
    data = new_batch_size.make_data(new_batch_size.SIZES["tiny"])
    reference = new_batch_size.build_numpy(data)
    try:
        prepared = new_batch_size.WORKLOAD.builders[mode](data)
    except ModeUnavailable as reason:
        pytest.skip(str(reason))
    for call in range(1 + FRESH_CALLS):
        output = prepared.run()
        prepared.sync(output)
        want = reference.values(reference.run())
        outcome = compare(prepared.values(output), want)
        assert outcome.ok, (mode, call, outcome.message)


def test_running_out_of_fresh_sizes_says_how_many_there_are():
    data = new_batch_size.make_data(new_batch_size.SIZES["tiny"])
    sizes = new_batch_size.batch_sizes(data)
    assert [next(sizes) for _ in range(1 + len(new_batch_size.FRESH_SIZES))][0] == 8
    with pytest.raises(new_batch_size.FreshSizesExhausted, match="at most 121"):
        next(sizes)


def test_batched_matmul_swaps_the_last_two_axes():
    data = batched_matmul.make_data(batched_matmul.SIZES["tiny"])
    (value,) = batched_matmul.build_numpy(data).values(batched_matmul.build_numpy(data).run())
    batch, n, p = (batched_matmul.SIZES["tiny"][key] for key in ("batch", "n", "p"))
    assert value.shape == (batch, n, p) and value.dtype == np.float32
    assert 0 < np.count_nonzero(value) < value.size  # relu clips some, not all
