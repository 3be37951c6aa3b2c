"""Ctrl-C reaches native code (issue 14): a SIGINT during a long native loop or kernel is a
KeyboardInterrupt within a fraction of a second, and the Session still works afterwards.
Each test runs a child process (a signal to pytest itself would stop the suite)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from graphjit.codegen.llvm import interrupt

pytestmark = pytest.mark.skipif(not interrupt.SUPPORTED, reason="Linux x86-64/AArch64 only")

PRELUDE = textwrap.dedent(
    """
    import sys, time, signal
    import numpy as np, graphjit as gj

    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int64, [])
        x = gj.placeholder(gj.float32, [4])
        _, loop = gj.while_loop(
            lambda i, y: i < n, lambda i, y: (i + 1, y * 0.5 + 1.0), [gj.constant(np.int64(0)), x]
        )
        big = gj.placeholder(gj.float32, [None])
        kernel = gj.sum(gj.tanh(gj.exp(gj.tanh(big)) * 1.5))
        split = gj.tanh(gj.exp(gj.tanh(big)) * 1.5)  # elementwise: split over the pool
    sess = gj.Session(g)
    ones = np.ones(4, np.float32)
    sess.run(loop, {n: 2, x: ones})  # compiled before the clock starts

    def report(what):
        print(what, flush=True)
    """
)


def child(body: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(proc: subprocess.Popen, line: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if got.strip() == line:
            return
        if not got and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"child never printed {line!r}: {proc.stderr.read()[-2000:]}")


def finish(proc: subprocess.Popen) -> list[str]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    return out.split()


def test_ctrl_c_stops_a_ten_second_native_loop_and_the_session_still_works():
    proc = child(
        """
        report("started")
        t = time.monotonic()
        try:
            sess.run(loop, {n: 4 * 10**9, x: ones})  # about ten seconds and more
            report("finished")
        except KeyboardInterrupt:
            report(f"interrupted-after {time.monotonic() - t:.3f}")
        print(sess.run(loop, {n: 2, x: ones}).tolist() == [1.75] * 4, flush=True)
        """
    )
    wait_for(proc, "started")
    time.sleep(0.3)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    words = finish(proc)
    assert words[0] == "interrupted-after", words
    assert time.monotonic() - sent < 5  # (the child's own figure is the precise one)
    assert float(words[1]) < 1.3, words  # started ~0.3 s before the signal; answered < 1 s
    assert words[2] == "True"


def test_ctrl_c_stops_a_long_kernel():
    proc = child(
        """
        data = np.ones(100_000_000, np.float32)
        sess.run(kernel, {big: data[:10]})
        sess.run(kernel, {big: data})  # compiled at this size, a few tenths of a second a run
        report("started")
        t = time.monotonic()
        try:
            for _ in range(20):
                sess.run(kernel, {big: data})
            report("finished")
        except KeyboardInterrupt:
            report(f"interrupted-after {time.monotonic() - t:.3f}")
        print(abs(sess.run(kernel, {big: data[:10]}) - 10 * np.tanh(np.exp(np.tanh(1)) * 1.5)) < 1e-4)
        """
    )
    wait_for(proc, "started")
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    words = finish(proc)
    assert words[0] == "interrupted-after", words
    assert float(words[1]) < 1.5, words
    assert words[2] == "True"


def test_ctrl_c_stops_a_kernel_split_over_the_worker_pool():
    """The pool's workers block signals: the SIGINT reaches a Python thread, and the chunks
    every thread runs see the interrupt counter move."""
    proc = child(
        """
        gj.set_num_threads(2)
        data = np.ones(50_000_000, np.float32)
        sess.run(split, {big: data[:10]})
        sess.run(split, {big: data})  # compiled at this size
        report("started")
        t = time.monotonic()
        try:
            for _ in range(200):
                sess.run(split, {big: data})
            report("finished")
        except KeyboardInterrupt:
            report(f"interrupted-after {time.monotonic() - t:.3f}")
        want = np.tanh(np.exp(np.tanh(np.float32(1))) * np.float32(1.5))
        print(bool(np.allclose(sess.run(split, {big: data[:1000]}), want)))
        """
    )
    wait_for(proc, "started")
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    words = finish(proc)
    assert words[0] == "interrupted-after", words
    assert float(words[1]) < 1.5, words
    assert words[2] == "True"


def test_a_program_with_its_own_sigint_handler_keeps_it():
    """Only Python's default handler is hooked: a handler of the user's own runs after the
    native call, which completes (no half-finished run the program did not ask to stop)."""
    proc = child(
        """
        seen = []
        signal.signal(signal.SIGINT, lambda *a: seen.append(1))
        report("started")
        result = sess.run(loop, {n: 10**8, x: ones})  # a few tenths of a second
        report(f"finished {len(seen)} {result.tolist() == [2.0] * 4}")
        """
    )
    wait_for(proc, "started")
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGINT)
    assert finish(proc) == ["finished", "1", "True"]


def test_ctrl_c_in_a_thread_running_native_code():
    """The main thread gets its KeyboardInterrupt as usual; a worker thread's native run
    stops too, with a KeyboardInterrupt of its own."""
    proc = child(
        """
        import threading
        outcome = []
        def work():
            try:
                sess.run(loop, {n: 4 * 10**9, x: ones})
                outcome.append("finished")
            except KeyboardInterrupt:
                outcome.append("interrupted")
        worker = threading.Thread(target=work)
        worker.start()
        report("started")
        try:
            while worker.is_alive():
                time.sleep(0.01)
        except KeyboardInterrupt:
            while worker.is_alive():  # (not join(): an interrupted join may not wait again)
                time.sleep(0.01)
            report(f"main-interrupted {outcome[0]}")
        """
    )
    wait_for(proc, "started")
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGINT)
    assert finish(proc) == ["main-interrupted", "interrupted"]
