"""The llvm backend's entry point is glue: strided copies (transposes, slices, concats,
broadcasts) and the combination of a split sum's partial sums run as functions of their
own (Lowering.outlined), and what it calls once a run stays out of line (what a while
loop's body calls may still be inlined: a call per iteration costs). LLVM's loop passes cost
in proportion to the size of the function for each loop in it: an 8-layer transformer's
entry point held 586 loops in 21435 lines of IR and took 5 s to compile, its other parts
0.7 s each. A model's repeated layers share their copy functions, so they are compiled
once; each copy returns early on Ctrl-C and the entry point then stops the run."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import RuntimeCheckError

ENTRY = re.compile(r'^define i32 @"graphjit_entry".*?^}', re.S | re.M)


def _layers(count: int):
    """`count` layers of a product, a transpose, slices and a concat; a column sum large
    enough to be split over threads by blocks of partial sums."""
    rng = np.random.default_rng(3)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [64, 96])
        big = gj.placeholder(gj.float32, [8192, 512])
        h = x
        for _ in range(count):
            w = gj.constant((rng.normal(size=(96, 96)) / 10).astype(np.float32))
            t = gj.transpose(gj.tanh(h @ w))
            h = gj.transpose(gj.concat([t[:48], t[48:]], axis=0))
        column = gj.sum(big * 2.0, axis=0)
    feed = {
        x: rng.normal(size=(64, 96)).astype(np.float32),
        big: rng.normal(size=(8192, 512)).astype(np.float32),
    }
    return g, [h, column], feed


def _compiled(count: int):
    """(the llvm results, the interpreter's, the module's LLVM IR)."""
    g, fetches, feed = _layers(count)
    sess = gj.Session(g)
    got = sess.run(fetches, feed)
    (executable,) = sess._cache.values()
    want = gj.Session(g, backend="interpreter").run(fetches, feed)
    return got, want, executable.runner.llvm_ir


def _defined(ir_text: str, prefix: str) -> list[str]:
    return re.findall(rf'^define internal void @"({prefix}\d+)"', ir_text, re.M)


def _internal_headers(ir_text: str) -> dict:
    """name -> the `define` line (with its attributes) of each internal function."""
    headers = {}
    for line in ir_text.splitlines():
        found = re.match(r'define internal [^@]*@"([^"]+)"\(', line)
        if found:
            headers[found.group(1)] = line
    return headers


def _callees(function_text: str) -> set:
    return set(re.findall(r'call [^@]*@"([^"]+)"\(', function_text))


def test_the_entry_point_holds_no_loop_and_computes_the_interpreters_values():
    got, want, ir_text = _compiled(2)
    for g, w in zip(got, want, strict=True):  # (sums of 8192 floats in another order)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * np.abs(w).max())
    entry = ENTRY.search(ir_text).group(0)
    assert not re.findall(r"^[\w.]*header[\w.]*:", entry, re.M)  # (loops.py's loop headers)
    assert _defined(ir_text, "copy") and _defined(ir_text, "combine")


def test_repeated_layers_share_their_copy_functions():
    counts = {n: len(_defined(_compiled(n)[2], "copy")) for n in (1, 3)}
    assert counts[1] == counts[3] > 0, counts


def test_what_the_entry_point_calls_stays_out_of_line_and_copies_poll_for_ctrl_c():
    ir_text = _compiled(1)[2]
    entry = ENTRY.search(ir_text).group(0)
    headers = _internal_headers(ir_text)
    internal = [name for name in _callees(entry) if name in headers]
    assert internal and all("noinline" in headers[name] for name in internal), internal
    # A copy long enough to poll (a transpose of 512K elements) returns early on Ctrl-C,
    # and the entry point reads the counter after the call.
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [1024, 512])
        y = gj.transpose(x)
    sess = gj.Session(g)
    value = np.arange(1024 * 512, dtype=np.float32).reshape(1024, 512)
    np.testing.assert_array_equal(sess.run(y, {x: value}), value.T)
    (executable,) = sess._cache.values()
    text = executable.runner.llvm_ir
    (copy,) = _defined(text, "copy")
    body = re.search(rf'^define internal void @"{copy}".*?^}}', text, re.S | re.M).group(0)
    assert "graphjit_interrupts" in body  # (returning early; the entry then stops the run)
    assert "graphjit_interrupts" in ENTRY.search(text).group(0)


def test_kernels_a_while_loop_calls_may_be_inlined_and_the_others_not():
    """A call per iteration of a loop over 256 floats cost the cond_loop bench 28 -> 33 us
    when its kernels were kept out of line; a kernel run once a run is not inlined."""
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int64, [])
        x = gj.placeholder(gj.float32, [256])
        _, looped = gj.while_loop(
            lambda i, y: i < n, lambda i, y: (i + 1, gj.tanh(y) * 0.5), [gj.constant(0), x]
        )
        once = gj.exp(looped) + 1.0
    sess = gj.Session(g)
    value = np.linspace(-1, 1, 256, dtype=np.float32)
    want = value
    for _ in range(3):
        want = np.tanh(want) * np.float32(0.5)
    np.testing.assert_allclose(sess.run(once, {n: 3, x: value}), np.exp(want) + 1, rtol=1e-6)
    (executable,) = sess._cache.values()
    text = executable.runner.llvm_ir
    entry = ENTRY.search(text).group(0)
    headers = _internal_headers(text)
    called = [name for name in _callees(entry) if name in headers]
    inlinable = [name for name in called if "noinline" not in headers[name]]
    kept_out = [name for name in called if "noinline" in headers[name]]
    assert len(inlinable) >= 1 and len(kept_out) >= 1, (inlinable, kept_out)


def test_a_shared_kernel_names_the_calling_op_in_its_errors():
    """Two layers of the same integer division share one kernel; a zero divisor in the
    second is reported at the second's line, not the first's."""
    g = gj.Graph()
    with g.as_default():
        a, b, c, d = (gj.placeholder(gj.int32, [64]) for _ in range(4))
        first = a // b + 1
        first_line = _line()
        second = c // d + 1
        second_line = _line()
    sess = gj.Session(g)
    ones = np.ones(64, np.int32)
    zero_at_10 = ones.copy()
    zero_at_10[10] = 0
    feed = {a: ones, b: ones, c: ones, d: zero_at_10}
    with pytest.raises(RuntimeCheckError, match="division") as raised:
        sess.run([first, second], feed)
    assert f"test_entry_point.py:{second_line - 1}]" in str(raised.value), str(raised.value)
    assert f":{first_line - 1}]" not in str(raised.value)
    (executable,) = sess._cache.values()
    assert len(_defined(executable.runner.llvm_ir, "kernel")) == 1  # (shared)
    np.testing.assert_array_equal(sess.run(second, {**feed, d: ones}), ones * 2)


def _line() -> int:
    """The caller's line number."""
    return sys._getframe(1).f_lineno
