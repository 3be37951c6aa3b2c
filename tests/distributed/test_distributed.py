"""gj.distributed: data-parallel jobs launched with the mpich wheel's mpiexec (worker.py is
the program each process runs), and the parts that need no MPI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import graphjit as gj

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
TIMEOUT_S = 60


def _mpiexec() -> str | None:
    beside_python = Path(sys.executable).parent / "mpiexec"  # where the wheel puts it
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


def _have_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(
    not (_have_mpi4py() and _mpiexec()),
    reason="needs mpi4py and mpiexec (pip install graphjit[distributed])",
)


def _launch(processes: int, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    command = [sys.executable, *args]
    if processes > 1:  # one process: plain python, no mpiexec (a job of size 1)
        command = [_mpiexec(), "-n", str(processes), *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)  # fmt: skip


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    out, err = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, out + err


@needs_mpi
def test_shards_on_2_and_4_processes_train_like_1_process_on_the_batch(tmp_path):
    jobs = {n: _launch(n, str(WORKER), "train", str(tmp_path / f"{n}.npz")) for n in (1, 2, 4)}
    for n, job in jobs.items():
        status, output = _finish(job)
        assert status == 0, f"{n} processes:\n{output}"
    whole = np.load(tmp_path / "1.npz")
    for n in (2, 4):
        sharded = np.load(tmp_path / f"{n}.npz")
        assert set(sharded.files) >= set(whole.files)
        for key in sharded.files:  # (the callback mode has no 1-process run: compare to llvm)
            reference = whole[key.replace("llvm-callback", "llvm-symbol")]
            np.testing.assert_allclose(sharded[key], reference, rtol=1e-5, atol=1e-6, err_msg=key)


@needs_mpi
def test_a_rank_that_raises_ends_the_job_with_its_error_within_seconds(tmp_path):
    start = time.perf_counter()
    status, output = _finish(_launch(2, str(WORKER), "raise", str(tmp_path / "x.npz")))
    assert status != 0
    assert "rank 1 fails on purpose in step 2" in output
    assert "rank 1 of 2 raised RuntimeError" in output
    assert time.perf_counter() - start < 20


@needs_mpi
def test_ranks_that_reduce_different_shapes_get_an_error_not_a_hang():
    script = (
        "import numpy as np, graphjit as gj\n"
        "gj.distributed.all_reduce(np.ones(3 + gj.distributed.rank(), np.float32))\n"
    )
    status, output = _finish(_launch(2, "-c", script))
    assert status != 0
    assert "DistributedError" in output and "rank 0: 3 float32" in output
    assert "rank 1: 4 float32" in output


# ---- a job of one process (no mpiexec needed) -----------------------------------------------


def test_shard_cuts_like_array_split():
    parts = [gj.distributed.shard(10, r, 4) for r in range(4)]
    assert [list(range(10))[p] for p in parts] == [list(a) for a in np.array_split(range(10), 4)]


def test_sampler_gives_every_rank_as_many_indices_and_covers_the_data():
    samplers = [gj.distributed.DistributedSampler(10, r, 4, seed=1) for r in range(4)]
    indices = [s.indices() for s in samplers]
    assert {len(i) for i in indices} == {3} and set(np.concatenate(indices)) == set(range(10))


def test_buckets_pack_small_gradients_and_leave_large_ones_alone():
    f32 = np.dtype(np.float32)
    sizes = [4000, 100, 100, 5000, 100]
    assert gj.distributed.plan_buckets(sizes, [f32] * 5, 1000) == [[0], [1, 2, 4], [3]]


@pytest.mark.parametrize("backend", ["llvm", "interpreter"])
def test_the_all_reduce_op_of_one_process_is_the_identity_with_its_gradient(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [3], name="x")
        y = gj.distributed.all_reduce(x * 2.0, op="mean")
        (dx,) = gj.gradients(gj.sum(y), [x])
    with gj.Session(g, backend=backend) as sess:
        out, grad = sess.run([y, dx], {x: np.arange(3, dtype=np.float32)})
    np.testing.assert_array_equal(out, [0, 2, 4])
    np.testing.assert_array_equal(grad, [2, 2, 2])


def test_eager_all_reduce_is_on_the_tape_and_arrays_work_too():
    t = gj.tensor(np.ones(2, np.float32), requires_grad=True)
    gj.distributed.all_reduce(t * 3.0).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [3, 3])
    np.testing.assert_array_equal(gj.distributed.all_gather(np.arange(2)), [[0, 1]])
    assert gj.distributed.rank() == 0 and gj.distributed.size() == 1
