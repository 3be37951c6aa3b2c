"""Compile time of large programs (issue 18; graphjit/codegen/llvm/target.py and
compile_worker.py): identical kernels are merged, big kernels stay out of line (so no
function grows with the program), and a module with several big kernels is compiled in
parts on parallel workers. Whatever the path, the code computes the same bits: split or
whole, in a worker or in this process; a worker's part is the object this process makes
for it; multi-object entries go through the disk cache authenticated like any other."""

from __future__ import annotations

import os
import sys

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvm_helpers import fresh_compile_worker

import graphjit as gj
from graphjit.bench.workloads.compile_scaling import chain
from graphjit.codegen.llvm import cache, compile_worker, jit, mathlib, target
from graphjit.codegen.llvm.lower import ENTRY
from graphjit.errors import BackendError

N_SPLIT = 400  # ops: kernels of 128, three of them big (tanh inlined), in three phases
N_SMALL = 30  # one kernel, far below OUT_OF_LINE_SIZE


@pytest.fixture(autouse=True)
def big_kernels(monkeypatch):
    """The chain's kernels with their tanh inlined: big functions, what splitting is for
    (out of line, mathlib.OUT_OF_LINE_CALLS, the same chain compiles fast in one part)."""
    monkeypatch.setattr(mathlib, "OUT_OF_LINE_CALLS", 10**9)


@pytest.fixture
def fresh(monkeypatch):
    """Workers on (two of them at most), caches empty, no worker left at the end."""
    monkeypatch.setattr(compile_worker, "MAX_WORKERS", 2)
    monkeypatch.setattr(compile_worker, "_no_helpers", None)
    with fresh_compile_worker(monkeypatch):
        yield


@pytest.fixture
def sent(monkeypatch):
    """(IR text, objects) of every module compiled by workers."""
    calls = []
    original = compile_worker.compile_object

    def recording(ir_text):
        objects = original(ir_text)
        calls.append((ir_text, objects))
        return objects

    monkeypatch.setattr(compile_worker, "compile_object", recording)
    return calls


def run_chain(n: int) -> np.ndarray:
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape=[256], name="x")
        y = chain(x, n, gj.tanh)
    data = np.random.default_rng(18).normal(size=256).astype(np.float32)
    with gj.Session(g, backend="llvm") as sess:
        return sess.run(y, {x: data})


def chain_ir(n: int, sent) -> str:
    run_chain(n)
    return sent[-1][0]


def planned(ir_text: str, max_parts: int):
    tm = jit.target_machine()
    module = target.parse(ir_text)
    target.prepare(module, tm)
    return module, target.plan(module, tm, max_parts)


def defined(module) -> dict:
    """Name -> instruction count of each function the module defines."""
    return {
        f.name: sum(1 for b in f.blocks for _ in b.instructions)
        for f in module.functions
        if not f.is_declaration
    }


def test_a_large_chain_is_split_and_computes_what_one_part_does(fresh, sent, monkeypatch):
    split = run_chain(N_SPLIT)
    assert len(sent[-1][1]) > 1  # several objects: one per part
    assert len(compile_worker.worker_pids()) == 2  # the first worker and a helper
    cache.memory_clear()
    monkeypatch.setattr(compile_worker, "MAX_WORKERS", 1)
    whole = run_chain(N_SPLIT)
    assert len(sent[-1][1]) == 1
    cache.memory_clear()
    monkeypatch.setenv("GRAPHJIT_COMPILE_WORKER", "0")
    in_process = run_chain(N_SPLIT)
    np.testing.assert_array_equal(split, whole)  # bit for bit
    np.testing.assert_array_equal(split, in_process)
    x = np.random.default_rng(18).normal(size=256).astype(np.float32)
    np.testing.assert_allclose(split, chain(x, N_SPLIT, np.tanh), rtol=1e-5, atol=1e-6)


def test_a_split_module_calls_the_vector_variants_part_0_defines(fresh, sent, monkeypatch):
    """Out of line (mathlib.OUT_OF_LINE_CALLS), a long chain's kernels call tanh's vector
    variants, defined once, in part 0, as external functions: the other parts' kernels
    are linked to them, with the bits of the module compiled in one piece."""
    monkeypatch.setattr(mathlib, "OUT_OF_LINE_CALLS", 8)  # (the module's fixture inlines)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape=[256], name="x")
        y = x
        for segment in range(24):  # kernels that differ (their constants): none merge
            for _ in range(40):
                y = gj.tanh(y * (0.9 - 0.001 * segment) + 0.1)
    data = np.random.default_rng(18).normal(size=256).astype(np.float32)
    split = gj.Session(g).run(y, {x: data})
    assert len(sent[-1][1]) > 1  # several objects: one per part
    assert "vector-function-abi-variant" in sent[-1][0]
    assert '!"llvm.loop.interleave.count", i32 2' in sent[-1][0]  # (loops.interleave_loops)
    cache.memory_clear()
    monkeypatch.setenv("GRAPHJIT_COMPILE_WORKER", "0")
    np.testing.assert_array_equal(split, gj.Session(g).run(y, {x: data}))


def test_each_part_is_the_object_this_process_makes_for_it(fresh, sent):
    run_chain(N_SPLIT)
    ir_text, objects = sent[-1]
    max_parts = compile_worker.MAX_WORKERS * compile_worker.PARTS_PER_WORKER
    tm = target.new_target_machine()
    here = [target.compile_object(ir_text, tm, i, max_parts) for i in range(len(objects))]
    assert [parts for parts, _ in here] == [len(objects)] * len(objects)
    assert [obj for _, obj in here] == objects  # deterministic plan, same pipeline
    assert target.compile_object(ir_text, tm, len(objects), max_parts) == (len(objects), b"")


def test_identical_kernels_are_merged_and_big_ones_kept_out_of_line(fresh, sent):
    module, layout = planned(chain_ir(6 * 128, sent), max_parts=1)  # six kernels of 128
    kernels = [name for name in defined(module) if name.startswith("kernel")]
    # Three kernels (384 ops) on, the chain's cycle of three ops is back in phase: the
    # fifth fused op's kernel is the second's again, and the lowering shares it
    # (Lowering.kernel_key; LLVM's function merging did it before). (The first reads the
    # input and the sixth writes the output: their pointers' attributes differ from the
    # in-place kernels'.)
    assert len(kernels) == 5
    assert sorted(layout.out_of_line) == sorted(kernels)
    assert layout.parts == 1 and layout.owner == {}
    layout.restrict(module, 0)
    for name in kernels:
        assert b"noinline" in b" ".join(module.get_function(name).attributes)
    tm = jit.target_machine()
    jit.optimise(module)
    sizes = defined(module)
    # The entry only calls the kernels: no function grows with the number of kernels.
    assert sizes[ENTRY] < 100
    assert max(sizes.values()) < 4000  # (a kernel of 128 ops, its tanh inlined: ~2000)
    assert tm.emit_object(module)


def test_small_programs_are_planned_as_before(fresh, sent):
    ir_text = chain_ir(N_SMALL, sent)
    assert len(sent[-1][1]) == 1
    assert not target.may_split(ir_text)
    module, layout = planned(ir_text, max_parts=8)
    assert (layout.parts, layout.out_of_line, layout.owner) == (1, [], {})
    assert compile_worker.worker_pids() == [compile_worker.worker_pid()]  # no helper


def test_the_parts_of_a_plan_define_everything_once(fresh, sent):
    ir_text = chain_ir(N_SPLIT, sent)
    assert target.may_split(ir_text)
    module, layout = planned(ir_text, max_parts=8)
    assert layout.parts > 1
    everything = set(defined(module)) | {
        g.name for g in module.global_variables if not g.is_declaration
    }
    emitted = {}
    for part in range(layout.parts):
        copy, again = planned(ir_text, max_parts=8)
        assert (again.parts, again.owner) == (layout.parts, layout.owner)  # deterministic
        again.restrict(copy, part)
        for value in list(copy.functions) + list(copy.global_variables):
            if not value.is_declaration and value.linkage == llvm.Linkage.external:
                assert value.name not in emitted, value.name  # one definition per symbol
                emitted[value.name] = part
    assert set(layout.owner) == set(emitted) and set(layout.owner) <= everything
    assert emitted[ENTRY] == 0
    assert len(set(emitted.values())) == layout.parts  # every part defines something


def test_objects_round_trip_and_bad_framing_is_refused():
    objects = [b"\x7fELF one", b"", b"\x7fELF three" * 100]
    payload = cache.pack_objects(objects)
    assert cache.unpack_objects(payload) == objects
    assert cache.pack_objects(objects[:1]) == objects[0]  # one object: as it is
    assert cache.unpack_objects(objects[0]) == objects[:1]
    assert cache.unpack_objects(payload[:-1]) is None
    assert cache.unpack_objects(payload + b"x") is None
    assert cache.unpack_objects(cache.OBJECTS_MAGIC + b"\0\0\0\0") is None


def test_a_split_module_is_disk_cached_whole(fresh, sent, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHJIT_CACHE_DIR", str(tmp_path))
    first = run_chain(N_SPLIT)
    requests = len(sent)
    entries = [n for n in os.listdir(tmp_path) if n.endswith(cache.SUFFIX)]
    stored = [cache.disk_load_objects(n[: -len(cache.SUFFIX)]) for n in entries]
    assert sent[-1][1] in stored and len(sent[-1][1]) > 1  # the parts' objects, in order
    cache.memory_clear()
    np.testing.assert_array_equal(run_chain(N_SPLIT), first)
    assert len(sent) == requests  # loaded from disk, authenticated: no worker asked


def test_a_split_entry_whose_framing_is_broken_is_recompiled(fresh, sent, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHJIT_CACHE_DIR", str(tmp_path))
    first = run_chain(N_SPLIT)
    requests = len(sent)
    directory = cache._Directory.open()
    try:
        for name in os.listdir(tmp_path):
            if name.endswith(cache.SUFFIX):
                key = name[: -len(cache.SUFFIX)]
                payload = directory.load(key)
                if payload.startswith(cache.OBJECTS_MAGIC):  # authentic, framing cut short
                    directory.store(key, payload[:-1])
    finally:
        directory.close()
    cache.memory_clear()
    with pytest.warns(cache.CacheWarning, match="framing is broken"):
        np.testing.assert_array_equal(run_chain(N_SPLIT), first)
    assert len(sent) == requests + 1  # compiled again


def test_without_a_helper_the_first_worker_compiles_every_part(fresh, sent, monkeypatch):
    compile_worker.prestart()  # the first worker starts; helpers will not
    monkeypatch.setattr(compile_worker, "_command", lambda: ["/nonexistent/python"])
    spawns = compile_worker.spawns
    split = run_chain(N_SPLIT)
    assert compile_worker._no_helpers is not None and compile_worker.spawns == spawns
    assert len(compile_worker.worker_pids()) == 1
    assert len(sent[-1][1]) > 1  # the parts were handed back to the first worker
    cache.memory_clear()
    run_chain(N_SPLIT)
    assert len(sent[-1][1]) == 1  # known now: later modules are compiled whole
    monkeypatch.setenv("GRAPHJIT_COMPILE_WORKER", "0")
    cache.memory_clear()
    np.testing.assert_array_equal(run_chain(N_SPLIT), split)


def test_a_helper_that_dies_makes_the_compile_a_backend_error(fresh, monkeypatch):
    run_chain(N_SPLIT)  # both workers running
    helper = compile_worker._workers[1]
    original = compile_worker.Worker.compile

    def killed(self, *args):
        if self is helper:
            os.kill(self.pid, 9)
        return original(self, *args)

    monkeypatch.setattr(compile_worker.Worker, "compile", killed)
    cache.memory_clear()
    with pytest.raises(BackendError, match="SIGKILL"):
        run_chain(N_SPLIT + 3)  # (another module: not a hit in any cache)
    monkeypatch.setattr(compile_worker.Worker, "compile", original)
    run_chain(N_SPLIT + 6)  # a fresh helper
    assert len(compile_worker.worker_pids()) == 2 and helper.pid not in compile_worker.worker_pids()


if sys.platform != "linux":  # (the helpers' start and the /proc checks are Linux-tested)
    pytestmark = pytest.mark.skip("Linux only")


@pytest.mark.parametrize("size", [256, 4112, 37])
def test_two_vectors_an_iteration_out_of_line_compute_the_inlined_bits(monkeypatch, size):
    """A kernel calling its math out of line asks for two vectors an iteration
    (loops.interleave_loops: its calls are chains of dependent latency); each lane
    computes what the inlined body does, the loop's remainder (4112 = 128 x 32 + 16, and
    37) included."""
    x_data = np.random.default_rng(5).normal(size=size).astype(np.float32)

    def run(calls_out_of_line):
        monkeypatch.setattr(mathlib, "OUT_OF_LINE_CALLS", calls_out_of_line)
        g = gj.Graph()
        with g.as_default():
            x = gj.placeholder(gj.float32, shape=[size], name="x")
            y = chain(x, 60, gj.tanh)  # 20 tanh
        return gj.Session(g).run(y, {x: x_data})

    np.testing.assert_array_equal(run(8), run(10**9))
