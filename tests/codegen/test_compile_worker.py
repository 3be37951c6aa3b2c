"""The compile worker (graphjit/codegen/llvm/compile_worker.py): optimisation and code
generation in a recycled process. Its code runs exactly like code compiled in this process;
an LLVM abort or a killed worker is a BackendError, and the next compile starts afresh;
workers are replaced after RECYCLE_AFTER compiles or past MAX_RSS; a forked child starts
its own; invalid IR never reaches it; the in-process path (GRAPHJIT_COMPILE_WORKER=0, the
dump switches) still works."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from llvm_helpers import fresh_compile_worker

import graphjit as gj
from graphjit.codegen.llvm import cache, compile_worker, jit
from graphjit.errors import BackendError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)

# exp resolves against the C library in this process, when the object is loaded.
SOURCE = """
declare double @exp(double)
define double @{name}(double %x) {{
  %e = call double @exp(double %x)
  %y = fadd double %e, {offset}
  ret double %y
}}
"""

# Valid IR that no x86 code generator can select: LLVM reports a fatal error and aborts.
ABORTS_LLVM = """
declare <4 x i32> @llvm.aarch64.neon.abs.v4i32(<4 x i32>)
define <4 x i32> @f(<4 x i32> %x) {
  %y = call <4 x i32> @llvm.aarch64.neon.abs.v4i32(<4 x i32> %x)
  ret <4 x i32> %y
}
"""


def source(i: int) -> str:
    return SOURCE.format(name=f"f{i}", offset=f"{i}.0")


def check(compiled, i: int) -> None:
    assert SIGNATURE(compiled.address(f"f{i}"))(0.5) == np.exp(0.5) + i


@pytest.fixture
def fresh(monkeypatch):
    """No worker running at the start; the worker on; caches empty; stopped at the end."""
    with fresh_compile_worker(monkeypatch):
        yield


@pytest.fixture
def requests(monkeypatch):
    """How many modules were sent to a worker."""
    sent = []
    original = compile_worker.compile_object

    def counting(ir_text):
        sent.append(ir_text)
        return original(ir_text)

    monkeypatch.setattr(compile_worker, "compile_object", counting)
    return sent


def model():
    """A matmul (BLAS), fused elementwise kernels, a reduction and a loop, and a gradient."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(np.float32, [None, 8], name="x")
        w = gj.Variable(np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8), name="w")
        h = gj.tanh(x @ w) * 1.5 + gj.exp(-gj.abs(x))
        _, grown = gj.while_loop(
            lambda i, a: gj.sum(a) < 100.0, lambda i, a: (i + 1, a * 1.25), [0, gj.abs(h)]
        )
        loss = gj.mean(grown * grown)
        (dw,) = gj.gradients(loss, [w])
    return g, x, [grown, loss, dw]


def run_model() -> list:
    g, x, fetches = model()
    data = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    with gj.Session(g, backend="llvm") as sess:
        return sess.run(fetches, {x: data})


def test_the_worker_and_this_process_compile_the_same_code(fresh, requests, monkeypatch):
    through_worker = run_model()
    assert requests and compile_worker.worker_pid() is not None
    sent = len(requests)
    cache.memory_clear()
    monkeypatch.setenv("GRAPHJIT_COMPILE_WORKER", "0")
    in_process = run_model()
    assert len(requests) == sent  # the worker was not asked
    for a, b in zip(through_worker, in_process, strict=True):
        np.testing.assert_array_equal(a, b)  # the same pipeline and machine: bit for bit


def test_an_llvm_abort_is_a_backend_error_and_the_next_compile_works(fresh):
    check(jit.CompiledModule(source(1)), 1)
    first = compile_worker.worker_pid()
    with pytest.raises(BackendError, match=r"(?s)SIGABRT while compiling.*Cannot select"):
        jit.CompiledModule(ABORTS_LLVM)
    assert compile_worker.worker_pid() is None
    check(jit.CompiledModule(source(2)), 2)
    assert compile_worker.worker_pid() not in (None, first)


def test_a_worker_killed_while_compiling_is_a_backend_error(fresh, monkeypatch):
    jit.CompiledModule(source(1))
    victim = compile_worker.worker_pid()
    send, read_reply = compile_worker.Worker._send, compile_worker.Worker._read_reply

    def stopped_first(self, data):  # (else, on a busy machine, it may answer before the kill)
        os.kill(self.pid, signal.SIGSTOP)
        return send(self, data)

    def killed_first(self, expect_ready=False):
        if not expect_ready:  # the request has been sent: kill it before it answers
            os.kill(self.pid, signal.SIGKILL)
        return read_reply(self, expect_ready)

    monkeypatch.setattr(compile_worker.Worker, "_send", stopped_first)
    monkeypatch.setattr(compile_worker.Worker, "_read_reply", killed_first)
    with pytest.raises(BackendError, match=f"pid {victim}.* was killed by SIGKILL"):
        jit.CompiledModule(source(2))
    assert not os.path.exists(f"/proc/{victim}")  # reaped, no zombie
    monkeypatch.undo()
    check(jit.CompiledModule(source(3)), 3)


def test_a_worker_that_died_between_compiles_is_replaced(fresh):
    jit.CompiledModule(source(1))
    victim = compile_worker.worker_pid()
    os.kill(victim, signal.SIGKILL)
    compile_worker._workers[0].proc.wait(timeout=10)
    check(jit.CompiledModule(source(2)), 2)  # not this module's fault: no error
    assert compile_worker.worker_pid() not in (None, victim)


def test_a_prestarted_worker_does_the_next_compile(fresh):
    spawns = compile_worker.spawns
    compile_worker.prestart()
    pid = compile_worker.worker_pid()
    compile_worker.prestart()  # one is running: nothing to do
    check(jit.CompiledModule(source(1)), 1)
    assert compile_worker.worker_pid() == pid and compile_worker.spawns - spawns == 1


def test_a_compile_error_in_the_worker_is_reported_and_the_worker_stays(fresh):
    jit.CompiledModule(source(1))
    pid = compile_worker.worker_pid()
    with pytest.raises(compile_worker.CompileError, match="InvalidIR: LLVM IR parsing error"):
        compile_worker.compile_object("this is not LLVM IR")
    assert compile_worker.worker_pid() == pid
    check(jit.CompiledModule(source(2)), 2)


def test_invalid_ir_is_a_backend_error_from_the_worker_which_stays(fresh):
    """The worker parses and verifies a module before this process does (see the next
    test); an error there is reported and the worker keeps serving."""
    jit.CompiledModule(source(1))
    pid = compile_worker.worker_pid()
    with pytest.raises(BackendError, match="generated LLVM IR is invalid: .*parsing error"):
        jit.compile_module("this is not LLVM IR")
    with pytest.raises(BackendError, match="dominate"):
        jit.compile_module(
            "define i32 @f(i1 %c) {\nentry:\n  br i1 %c, label %a, label %b\n"
            "a:\n  %x = add i32 1, 2\n  br label %b\nb:\n  ret i32 %x\n}\n"
        )
    assert compile_worker.worker_pid() == pid
    check(jit.CompiledModule(source(2)), 2)


# A call of an intrinsic declared with too few parameters (llvmlite's declare_intrinsic
# of llvm.ctlz does that; IRBuilder.ctlz does not): LLVM's parser "upgrades" the call and
# dereferences a null pointer. It once came from a reduction's lowering.
CRASHES_LLVMS_PARSER = """declare i64 @"llvm.ctlz.i64"(i64 %".1")

define i64 @"f"(i64 %".1") {
entry:
  %".3" = call i64 @"llvm.ctlz.i64"(i64 %".1", i1 0)
  ret i64 %".3"
}
"""


def test_ir_that_crashes_llvms_parser_ends_the_worker_not_this_process(fresh):
    with pytest.raises(BackendError, match="SIGSEGV while compiling"):
        jit.compile_module(CRASHES_LLVMS_PARSER)
    check(jit.CompiledModule(source(2)), 2)


def test_workers_are_replaced_after_recycle_after_compiles(fresh, monkeypatch):
    monkeypatch.setattr(compile_worker, "RECYCLE_AFTER", 3)
    spawns, pids = compile_worker.spawns, []
    for i in range(7):
        check(jit.CompiledModule(source(i)), i)
        pids.append(compile_worker.worker_pid())
    # compiles 1-3 on the first worker, 4-6 on the second (each stopped after its third),
    # the seventh on a third
    assert compile_worker.spawns - spawns == 3
    first, second, third = pids[0], pids[3], pids[6]
    assert pids == [first, first, None, second, second, None, third]
    assert None not in (first, second, third) and len({first, second, third}) == 3
    assert not os.path.exists(f"/proc/{first}")  # stopped and reaped


def test_a_worker_past_max_rss_is_replaced(fresh, monkeypatch):
    monkeypatch.setattr(compile_worker, "MAX_RSS", 1)  # every worker is too large
    spawns = compile_worker.spawns
    for i in range(3):
        check(jit.CompiledModule(source(i)), i)
        assert compile_worker.worker_pid() is None
    assert compile_worker.spawns - spawns == 3


def test_concurrent_compiles_share_the_worker_safely(fresh, monkeypatch):
    monkeypatch.setattr(compile_worker, "RECYCLE_AFTER", 4)
    barrier, errors = threading.Barrier(4), []

    def work(t):
        try:
            barrier.wait()
            for j in range(6):
                i = 10 * t + j
                check(jit.compile_module(source(i)), i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]


def test_a_disk_cached_object_skips_the_worker(fresh, requests, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHJIT_CACHE_DIR", str(tmp_path))
    check(jit.compile_module(source(1)), 1)
    entries = [n for n in os.listdir(tmp_path) if n.endswith(cache.SUFFIX)]
    assert len(requests) == 1 and len(entries) == 1  # the worker's object
    cache.memory_clear()
    check(jit.compile_module(source(1)), 1)
    assert len(requests) == 1  # loaded from disk


@pytest.mark.parametrize("switch", ["GRAPHJIT_DUMP_LLVM", "GRAPHJIT_DUMP_ASM"])
def test_the_dump_switches_compile_in_this_process(fresh, requests, monkeypatch, capfd, switch):
    monkeypatch.setenv(switch, "1")
    check(jit.CompiledModule(source(1)), 1)
    assert requests == []
    printed = capfd.readouterr().err
    assert ("define double @f1" in printed) if switch == "GRAPHJIT_DUMP_LLVM" else "f1:" in printed


def test_without_a_worker_this_process_compiles_with_a_warning(fresh, monkeypatch):
    monkeypatch.setattr(compile_worker, "_unavailable", None)
    monkeypatch.setattr(compile_worker, "_command", lambda: ["/nonexistent/python"])
    with pytest.warns(RuntimeWarning, match="could not start the LLVM compile worker"):
        check(jit.CompiledModule(source(1)), 1)
    with pytest.warns(RuntimeWarning, match="compiling in this process"):
        check(jit.CompiledModule(source(2)), 2)  # not tried again


def test_a_worker_that_dies_while_starting_means_no_worker(fresh, monkeypatch):
    monkeypatch.setattr(compile_worker, "_unavailable", None)
    monkeypatch.setattr(
        compile_worker,
        "_command",
        lambda: [sys.executable, "-c", "import sys; print('no llvmlite here', file=sys.stderr)"],
    )
    with pytest.warns(RuntimeWarning, match="(?s)exited with status 0 while starting.*no llvmlite"):
        check(jit.CompiledModule(source(1)), 1)


def test_a_worker_that_never_says_ready_is_killed(fresh, monkeypatch):
    monkeypatch.setattr(compile_worker, "_unavailable", None)
    monkeypatch.setattr(compile_worker, "STARTUP_TIMEOUT", 0.5)
    monkeypatch.setattr(
        compile_worker, "_command", lambda: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    with pytest.warns(RuntimeWarning, match="did not start within 0.5 s"):
        check(jit.CompiledModule(source(1)), 1)


def test_a_stopped_worker_is_killed_and_the_compile_retried_on_a_fresh_one(fresh, monkeypatch):
    monkeypatch.setenv("GRAPHJIT_COMPILE_TIMEOUT", "1")
    check(jit.CompiledModule(source(1)), 1)
    stopped = compile_worker.worker_pid()
    os.kill(stopped, signal.SIGSTOP)  # alive, but it will never answer
    start = time.monotonic()
    check(jit.CompiledModule(source(2)), 2)
    assert time.monotonic() - start < 10
    assert compile_worker.worker_pid() not in (None, stopped)
    assert not os.path.exists(f"/proc/{stopped}")  # killed and reaped


# A worker that starts, says it is ready, and then never answers a request.
WEDGED = [
    sys.executable,
    "-c",
    "import os, struct, time; os.write(1, struct.pack('<BQQ', 0, 0, 0)); time.sleep(60)",
]


def test_two_stuck_workers_are_a_backend_error_saying_so(fresh, monkeypatch):
    monkeypatch.setenv("GRAPHJIT_COMPILE_TIMEOUT", "0.5")
    monkeypatch.setattr(compile_worker, "_command", lambda: WEDGED)
    spawns = compile_worker.spawns
    with pytest.raises(BackendError, match=r"did not answer within 0\.5\d* s.*fresh worker") as e:
        jit.CompiledModule(source(1))
    assert compile_worker.spawns - spawns == 2
    pids = [int(p) for p in re.findall(r"pid (\d+)", str(e.value))]
    assert len(set(pids)) == 2 and not any(os.path.exists(f"/proc/{p}") for p in pids)
    assert "GRAPHJIT_COMPILE_TIMEOUT" in str(e.value)
    monkeypatch.undo()
    check(jit.CompiledModule(source(2)), 2)  # a real worker again


def test_the_compile_timeout_grows_with_the_module(monkeypatch):
    monkeypatch.setenv("GRAPHJIT_COMPILE_TIMEOUT", "2")
    assert compile_worker.compile_timeout(0) == 2.0
    per_second = compile_worker.IR_BYTES_PER_SECOND
    assert compile_worker.compile_timeout(10 * per_second) == 12.0
    monkeypatch.delenv("GRAPHJIT_COMPILE_TIMEOUT")
    assert compile_worker.compile_timeout(0) == 60.0


def run_script(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("GRAPHJIT_COMPILE_WORKER", None)
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", textwrap.dedent(script)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


COMMON = f"""
    import ctypes, os
    from graphjit.codegen.llvm import compile_worker, jit
    SOURCE = {SOURCE!r}
    def compiled(i):
        m = jit.CompiledModule(SOURCE.format(name=f"f{{i}}", offset=f"{{i}}.0"))
        return ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(m.address(f"f{{i}}"))(0.0)
"""


def test_a_forked_child_starts_its_own_worker_and_leaves_the_parents_alone():
    done = run_script(
        COMMON
        + """
    assert compiled(1) == 2.0
    parent_worker = compile_worker.worker_pid()
    child = os.fork()
    if child == 0:
        status = 1
        try:
            assert compile_worker.worker_pid() is None  # the parent's is not ours
            assert compiled(2) == 3.0
            assert compile_worker.worker_pid() not in (None, parent_worker)
            compile_worker.shutdown()
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert compile_worker.worker_pid() == parent_worker
    assert compiled(3) == 4.0
    print("ok")
    """
    )
    assert done.returncode == 0 and done.stdout.split() == ["ok"], done.stderr[-3000:]


def test_exit_stops_the_worker_cleanly():
    """No warning (the child runs with -X dev -W error), no zombie, nothing on stderr."""
    done = run_script(
        COMMON
        + """
    assert compiled(1) == 2.0
    print(compile_worker.worker_pid())
    """
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]
    assert not os.path.exists(f"/proc/{int(done.stdout)}")
