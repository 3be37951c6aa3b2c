"""The LLVM backend's runtime: compile caches, status words, dumps, output reuse."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphjit as gj
from graphjit.codegen.llvm import cache
from graphjit.ir import parse
from graphjit.passes.pipeline import optimize
from graphjit.runtime.executable import compile_program
from graphjit.runtime.program import Program


def chain_graph(n=64):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [n], name="x")
        y = gj.relu(x * 2 + 1) * gj.sigmoid(x) + gj.tanh(x)
    return g, x, y


def test_sessions_share_compiled_code_in_memory():
    g, x, y = chain_graph()
    first = gj.Session(g)
    first.run(y, {x: np.ones(64, np.float32)})
    runner_a = next(iter(first._cache.values())).runner
    second = gj.Session(g)
    second.run(y, {x: np.ones(64, np.float32)})
    runner_b = next(iter(second._cache.values())).runner
    assert runner_a.compiled is runner_b.compiled


def test_memory_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(cache, "MEMORY_ENTRIES", 2)
    cache.memory_clear()
    for n in (3, 4, 5, 6):
        g, x, y = chain_graph(n)
        gj.Session(g).run(y, {x: np.ones(n, np.float32)})
    assert cache.memory_size() == 2


SCRIPT = textwrap.dedent(
    """
    import numpy as np, graphjit as gj
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [5], name="x")
        y = gj.exp(x) * 3 + gj.sqrt(x)
    print(gj.Session(g).run(y, {x: np.arange(1.0, 6.0)}).tolist())
    """
)


def run_script(cache_dir):
    env = dict(os.environ, GRAPHJIT_CACHE_DIR=str(cache_dir))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out


def test_disk_cache_is_written_atomically_reused_and_survives_damage(tmp_path):
    expected = (np.exp(np.arange(1.0, 6.0)) * 3 + np.sqrt(np.arange(1.0, 6.0))).tolist()
    first = run_script(tmp_path)
    files = list(tmp_path.glob("*.gjobj"))
    assert len(files) == 1 and not list(tmp_path.glob(".tmp-*"))
    assert np.allclose(eval(first.stdout), expected)
    stamp = files[0].stat().st_mtime_ns
    second = run_script(tmp_path)  # loaded from disk: the file is not rewritten
    assert files[0].stat().st_mtime_ns == stamp
    assert np.allclose(eval(second.stdout), expected)
    data = bytearray(files[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    files[0].write_bytes(bytes(data))
    third = run_script(tmp_path)
    assert "damaged compile-cache file" in third.stderr
    assert np.allclose(eval(third.stdout), expected)


def test_runtime_check_comes_back_as_an_error_and_the_session_survives():
    text = """
    func.func @main(%arg0: tensor<3xf64>, %arg1: tensor<i64>) -> tensor<3xf64> {
      %0 = "gj.list_new"(%arg0) : (tensor<3xf64>) -> !gj.list<tensor<3xf64>>
      %1 = "gj.list_push"(%0, %arg0) : (!gj.list<tensor<3xf64>>, tensor<3xf64>) -> !gj.list<tensor<3xf64>>
      %2 = "gj.list_get"(%1, %arg1) : (!gj.list<tensor<3xf64>>, tensor<i64>) -> tensor<3xf64>
      func.return %2 : tensor<3xf64>
    }
    """
    fn = parse(text).functions[0]
    optimize(fn)
    executable = compile_program(Program(fn, [], [], [None], []), "llvm")
    x = np.arange(3.0)
    np.testing.assert_array_equal(executable.run([x, np.array(0)])[0], x)
    with pytest.raises(gj.errors.RuntimeCheckError, match="index out of range"):
        executable.run([x, np.array(1)])
    np.testing.assert_array_equal(executable.run([x, np.array(0)])[0], x)


def test_dump_llvm_prints_the_optimised_module():
    script = SCRIPT.replace("[5]", "[7]").replace("6.0", "8.0")
    env = dict(os.environ, GRAPHJIT_DUMP_LLVM="1")
    env.pop("GRAPHJIT_CACHE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "define" in out.stderr and "graphjit_entry" in out.stderr


def test_output_arrays_held_by_the_user_are_never_reused():
    g, x, y = chain_graph(8)
    sess = gj.Session(g)
    first = sess.run(y, {x: np.ones(8, np.float32)})
    kept = first.copy()
    second = sess.run(y, {x: np.zeros(8, np.float32)})
    assert second is not first
    np.testing.assert_array_equal(first, kept)


def test_unoptimised_llvm_still_builds_kernels():
    """optimize=False skips canonicalize and CSE, but code generation needs kernels."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [4], name="x")
        y = gj.tanh(x) * 2 + gj.sum(x)
    feed = {x: np.arange(4.0)}
    report = gj.Session(g, optimize=False).inspect(y, feed)
    assert list(report.ir) == ["input", "fusion", "dce", "memory"]
    np.testing.assert_allclose(
        gj.Session(g, optimize=False).run(y, feed),
        gj.Session(g, backend="interpreter").run(y, feed),
        rtol=1e-12,
    )


# ---- subnormals ------------------------------------------------------------------------------

TINY = np.float32(1e-20)  # TINY * TINY = 1e-40, a float32 subnormal


def subnormal_graph(n=4):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [n], name="x")
        product = x * TINY  # a subnormal result
        passed = x * 1.0 + x * 0.5  # subnormal inputs
    return g, x, product, passed


def test_subnormals_flush_to_zero_in_native_code_by_default():
    g, x, product, passed = subnormal_graph()
    with gj.Session(g) as sess:
        assert not sess.run(product, {x: np.full(4, TINY)}).any()
        assert not sess.run(passed, {x: np.full(4, 1e-40, np.float32)}).any()
    assert TINY * TINY > 0  # and Python's own arithmetic is untouched afterwards


def test_flush_denormals_false_keeps_gradual_underflow_like_the_interpreter():
    g, x, product, passed = subnormal_graph()
    feeds = [{x: np.full(4, TINY)}, {x: np.full(4, 1e-40, np.float32)}]
    for fetch, feed in zip([product, passed], feeds):
        with gj.Session(g, flush_denormals=False) as sess:
            got = sess.run(fetch, feed)
        with gj.Session(g, backend="interpreter") as sess:
            want = sess.run(fetch, feed)
        assert want.all()
        np.testing.assert_array_equal(got, want)


def test_the_callers_floating_point_mode_survives_a_failed_run():
    """The status-word exit restores MXCSR too (else NumPy would flush from then on)."""
    text = """
    func.func @main(%arg0: tensor<3xf32>, %arg1: tensor<i64>) -> tensor<3xf32> {
      %0 = "gj.list_new"(%arg0) : (tensor<3xf32>) -> !gj.list<tensor<3xf32>>
      %1 = "gj.list_get"(%0, %arg1) : (!gj.list<tensor<3xf32>>, tensor<i64>) -> tensor<3xf32>
      func.return %1 : tensor<3xf32>
    }
    """
    fn = parse(text).functions[0]
    optimize(fn)
    executable = compile_program(Program(fn, [], [], [None], []), "llvm")
    with pytest.raises(gj.errors.RuntimeCheckError):
        executable.run([np.ones(3, np.float32), np.array(5)])
    assert np.float32(1e-20) * np.float32(1e-20) > 0


def test_threads_of_a_split_kernel_flush_too(monkeypatch):
    from graphjit.codegen.llvm import parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_WORK", 1 << 10)
    g, x, product, _ = subnormal_graph(n=1 << 14)
    with gj.Session(g) as sess:
        assert not sess.run(product, {x: np.full(1 << 14, TINY)}).any()


@pytest.mark.parametrize("arena_bytes", [1, 100, 4096, 1 << 20])
def test_the_arena_starts_on_a_cache_line(arena_bytes):
    """The plan's offsets are multiples of 64; NumPy aligns its allocations to 16 bytes only,
    so the arena is cut out of a slightly larger allocation."""
    from graphjit.codegen.llvm import _allocate_arena
    from graphjit.passes.memory import ALIGNMENT

    for _ in range(8):  # (allocations land at different offsets)
        arena = _allocate_arena(arena_bytes)
        assert arena.ctypes.data % ALIGNMENT == 0 and arena.nbytes == arena_bytes
