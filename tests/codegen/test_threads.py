"""gj.set_num_threads: large llvm kernels are split over the count set at run time (no
recompile), every count gives the same bits (chunks are claimed, not assigned, and do not
depend on the count), concurrent Sessions and more threads than cores stay correct, and
bad counts are ConfigErrors naming what is accepted; the worker pool starts its threads once,
and survives forks."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from llvm_helpers import record_llvm_ir

import graphjit as gj
from graphjit.codegen.llvm import blas, parallel


@pytest.fixture(autouse=True)
def restore_threads():
    chosen = list(parallel._chosen)
    yield
    with parallel._lock:
        parallel._chosen[:] = chosen
    blas.set_blas_threads(gj.get_num_threads())


def _graph(rows: int, cols: int):
    """A split elementwise kernel (tanh chain) and a row-split reduction (softmax)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [rows, cols], name="x")
        fetches = [gj.tanh(x * 2.0 + 1.0) * gj.sigmoid(x), gj.softmax(x, axis=-1)]
    return g, x, fetches


def test_every_thread_count_gives_the_same_bits_without_recompiling(monkeypatch):
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1)
    g, x, fetches = _graph(37, 301)  # 37 rows: chunks of unequal size
    feed = {x: np.random.default_rng(0).normal(scale=4, size=(37, 301)).astype(np.float32)}
    feed[x][5, 7] = np.nan
    compiles = record_llvm_ir(monkeypatch)
    sess = gj.Session(g, backend="llvm")
    gj.set_num_threads(1)
    reference = sess.run(fetches, feed)
    assert "graphjit_parallel_run" in compiles[0]
    for n in (2, 3, 8, 1, 5):
        gj.set_num_threads(n)
        assert gj.get_num_threads() == n
        for got, want in zip(sess.run(fetches, feed), reference, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=f"{n} threads")
    assert len(compiles) == 1
    expected = gj.Session(g, backend="interpreter").run(fetches, feed)
    for got, want in zip(reference, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


def test_concurrent_sessions_with_more_threads_than_cores(monkeypatch):
    """Four Python threads each run split kernels on 8 native threads (2 cores here)."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1)
    gj.set_num_threads(8)
    g, x, fetches = _graph(64, 257)
    rng = np.random.default_rng(1)
    feeds = [{x: rng.normal(size=(64, 257)).astype(np.float32)} for _ in range(4)]
    expected = [gj.Session(g, backend="interpreter").run(fetches, f) for f in feeds]
    sess = gj.Session(g, backend="llvm")
    sess.run(fetches, feeds[0])  # compile once, before the threads share it
    failures: list = []

    def work(k):
        try:
            for _ in range(20):
                for got, want in zip(sess.run(fetches, feeds[k]), expected[k], strict=True):
                    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
        except Exception as e:  # reported below, from the main thread
            failures.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[0]


@pytest.mark.parametrize("bad", [0, 9, -1, 2.5, True, "2", None])
def test_bad_thread_counts_are_config_errors(bad):
    with pytest.raises(gj.ConfigError, match="set_num_threads"):
        gj.set_num_threads(bad)


@pytest.mark.parametrize("raw", ["0", "9", "two", "1.5"])
def test_a_malformed_GRAPHJIT_NUM_THREADS_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("GRAPHJIT_NUM_THREADS", raw)
    with parallel._lock:
        parallel._chosen.clear()
    with pytest.raises(gj.ConfigError, match=f"GRAPHJIT_NUM_THREADS={raw!r}.*1 to 8"):
        gj.get_num_threads()
    monkeypatch.setenv("GRAPHJIT_NUM_THREADS", "3")
    assert gj.get_num_threads() == 3


def test_the_count_reaches_numpys_openblas():
    library = blas._numpy_openblas()
    getter = getattr(library, "scipy_openblas_get_num_threads64_", None) if library else None
    if getter is None:
        pytest.skip("NumPy's wheel bundles no scipy-openblas here")
    getter.restype = ctypes.c_int
    gj.set_num_threads(1)
    assert getter() == 1
    gj.set_num_threads(2)
    assert getter() == 2


# -- the worker pool (codegen/llvm/pool.py) ------------------------------------------------


POOL_SCRIPT = """
import os
import numpy as np, graphjit as gj
from graphjit.codegen.llvm import parallel
parallel.PARALLEL_MIN_WORK = 1
g = gj.Graph()
with g.as_default():
    x = gj.placeholder(gj.float32, [64, 257])
    y = gj.tanh(x * 2.0 + 1.0) * gj.sigmoid(x)
v = np.random.default_rng(2).normal(size=(64, 257)).astype(np.float32)
want = np.tanh(v * 2 + 1) / (1 + np.exp(-v))
sess = gj.Session(g)
parallel.set_num_threads(1)  # (the kernels' count only: gj's also resizes OpenBLAS's pool)
np.testing.assert_allclose(sess.run(y, {x: v}), want, rtol=1e-5, atol=1e-6)  # compiled
tids = lambda: set(os.listdir("/proc/self/task"))
before = tids()
parallel.set_num_threads(3)
np.testing.assert_allclose(sess.run(y, {x: v}), want, rtol=1e-5, atol=1e-6)
workers = tids() - before
assert len(workers) == 2, workers  # started by the split, and still there after it
for _ in range(100):
    np.testing.assert_allclose(sess.run(y, {x: v}), want, rtol=1e-5, atol=1e-6)
assert tids() == before | workers  # the same two, no thread started since
parallel.set_num_threads(2)  # fewer wanted: the extra worker sleeps, none is started
for _ in range(10):
    np.testing.assert_allclose(sess.run(y, {x: v}), want, rtol=1e-5, atol=1e-6)
assert tids() == before | workers
print("ok")
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads in /proc")
def test_split_kernels_reuse_the_pools_threads():
    """Workers start on the first split and stay, asleep between runs: a hundred runs start
    no thread, and the split's two workers are the same threads throughout. (In a fresh
    interpreter, with the compile worker off, so that no other thread comes or goes.)"""
    env = {**os.environ, "GRAPHJIT_COMPILE_WORKER": "0"}
    done = subprocess.run(
        [sys.executable, "-c", POOL_SCRIPT], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0 and done.stdout.split() == ["ok"], done.stderr[-2000:]


FORK_SCRIPT = """
import ctypes, os, sys, time
import numpy as np, graphjit as gj
from graphjit.codegen.llvm import parallel
parallel.PARALLEL_MIN_WORK = 1
gj.set_num_threads(2)
g = gj.Graph()
with g.as_default():
    x = gj.placeholder(gj.float32, [64, 257])
    fetches = [gj.tanh(x * 2.0 + 1.0) * gj.sigmoid(x), gj.softmax(x, axis=-1)]
feed = {x: np.random.default_rng(2).normal(size=(64, 257)).astype(np.float32)}
sess = gj.Session(g)
expected = [np.array(v) for v in gj.Session(g, backend="interpreter").run(fetches, feed)]

def check():
    for got, want in zip(sess.run(fetches, feed), expected):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)

check()  # the parent's pool is running
# PyDLL: a fork() with the GIL held, so the child's thread holds it too
pid = os.fork() if sys.argv[1] == "python" else ctypes.PyDLL(None).fork()
if pid == 0:
    try:
        check()
        os._exit(0)
    except BaseException:
        os._exit(3)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.01)
else:
    os.kill(pid, 9)
    sys.exit("the forked child hung")
assert os.waitstatus_to_exitcode(status) == 0, status
check()  # the parent's pool still works
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("fork", ["python", "native"])
def test_a_forked_child_runs_split_kernels(fork):
    """The pool's workers do not survive a fork. After os.fork the child starts a pool of
    its own; after a fork that skipped Python's hooks (a C library's), split kernels run on
    the calling thread alone. Either way: the right values, no hang. (In a fresh
    interpreter: forking this one, which has JAX's threads, could deadlock the child.)"""
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, fork], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0 and done.stdout.split() == ["ok"], done.stderr[-2000:]


@pytest.mark.parametrize("first", [True, False])
def test_workers_compute_with_the_callers_subnormal_mode(monkeypatch, first):
    """Workers are started by whichever Session split first; each job still runs in the
    floating-point mode of the Session that runs it (flush_denormals)."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1)
    gj.set_num_threads(2)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [256, 1024], name="x")
        y = x * np.float32(1e-30)  # 1e-10 * 1e-30: subnormal in float32
    feed = {x: np.full((256, 1024), 1e-10, np.float32)}
    sessions = {flush: gj.Session(g, flush_denormals=flush) for flush in (first, not first)}
    for _ in range(3):
        for flush, sess in sessions.items():
            got = sess.run(y, feed)
            if flush:
                assert not got.any()
            else:
                np.testing.assert_array_equal(got, feed[x] * np.float32(1e-30))


def test_without_the_pools_c_functions_split_kernels_run_on_the_caller():
    """A C library lacking a function the pool calls must not reach MCJIT (an unresolved
    symbol aborts the process): kernels then run whole on the calling thread."""
    script = """
import numpy as np, graphjit as gj
import graphjit.codegen.llvm as backend
from graphjit.codegen.llvm import parallel, pool
pool._resolvable = lambda module: False
texts, compile_llvm = [], backend.compile_llvm
def recording(*args):
    texts.append(compile_llvm(*args))
    return texts[-1]
backend.compile_llvm = recording
parallel.PARALLEL_MIN_WORK = 1
g = gj.Graph()
with g.as_default():
    x = gj.placeholder(gj.float32, [64, 257])
    y = gj.tanh(x * 2.0 + 1.0)
sess = gj.Session(g)
v = np.linspace(-3, 3, 64 * 257, dtype=np.float32).reshape(64, 257)
got = sess.run(y, {x: v})
assert texts and all(pool.RUN not in r.llvm_ir for r in texts)  # (it has with a pool)
np.testing.assert_allclose(got, np.tanh(v * 2 + 1), rtol=1e-6, atol=1e-7)
print("alone")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.split() == ["alone"], done.stderr[-2000:]
