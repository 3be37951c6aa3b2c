"""Session.run: fetch structures, variables and assignment, feeds, specialisation on fed
shapes, checkpoints, and check_numerics."""

from __future__ import annotations

import os
import sys
import warnings
from collections import namedtuple

import numpy as np
import pytest

import graphjit as gj

FILE = os.path.basename(__file__)


def next_line() -> int:
    """The line after the caller's: where the call a test points at sits."""
    return sys._getframe(1).f_lineno + 1


def session(graph, **kwargs) -> gj.Session:
    return gj.Session(graph, backend="interpreter", **kwargs)


# ---- fetches -----------------------------------------------------------------------------

Point = namedtuple("Point", ["x", "y"])


def test_nested_fetches_keep_their_structure():
    g = gj.Graph()
    with g.as_default():
        a = gj.constant([1.0, 2.0])
        b = gj.constant(3)
        c = gj.constant(True)
    with session(g) as sess:
        out = sess.run({"pair": (a, [b, c]), "point": Point(b, a), "one": [a]})
    assert list(out) == ["pair", "point", "one"]
    assert isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list)
    assert isinstance(out["point"], Point) and isinstance(out["one"], list)
    np.testing.assert_array_equal(out["pair"][0], [1.0, 2.0])
    assert out["pair"][1] == [3, True]
    assert out["point"].x == 3 and isinstance(out["point"].y, np.ndarray)


def test_fetching_an_op_returns_none():
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.zeros(2, np.float32), name="v")
        w = gj.Variable(1.0, name="w")
        step = gj.group(v.assign_add(np.ones(2, np.float32)), w.assign(w * 2))
        assign_w = w.assign(w + 1)
    with session(g) as sess:
        assert sess.run(step) is None
        assert sess.run(assign_w.op) is None
        out = sess.run({"step": step, "v": v, "w": [w]})
    assert out["step"] is None
    np.testing.assert_array_equal(out["v"], [1.0, 1.0])
    assert out["w"] == [3.0]  # *2 by the group, then +1


# ---- variables ---------------------------------------------------------------------------


def test_variables_are_initialised_at_open_and_kept_between_runs():
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.array([1.0, 2.0], np.float32), name="v")
        count = gj.Variable(0, name="count")
        add = v.assign_add(np.array([10.0, 20.0], np.float32))
        sub = v.assign_sub(1.0)
        set_zero = v.assign(np.zeros(2, np.float32))
        tick = count.assign_add(1)
    with session(g) as sess:
        np.testing.assert_array_equal(sess.run(v), [1.0, 2.0])
        np.testing.assert_array_equal(sess.run(add), [11.0, 22.0])
        np.testing.assert_array_equal(sess.run(sub), [10.0, 21.0])
        np.testing.assert_array_equal(sess.run(v), [10.0, 21.0])
        assert [sess.run(tick) for _ in range(3)] == [1, 2, 3]
        sess.run(set_zero)
        np.testing.assert_array_equal(sess.run(v), [0.0, 0.0])
    with session(g) as fresh:
        np.testing.assert_array_equal(fresh.run(v), [1.0, 2.0])  # each session starts anew


def test_an_assign_keeps_the_variables_dtype_or_refuses():
    """As in TF1: a tensor of another dtype is refused (it was cast: int64 2**40 wrapped
    to 0, float 7.9 truncated to 7), and a constant must convert exactly (2.5 into an
    int32 variable was stored as 2; `assign_add(0.5)` left the variable unchanged)."""
    g = gj.Graph()
    with g.as_default():
        step = gj.Variable(3, name="step")  # int32
        w = gj.Variable(np.ones(2, np.float32), name="w")
        flag = gj.Variable(False, name="flag")
        refused = {
            "step.assign_add(0.5)": lambda: step.assign_add(0.5),
            "step.assign(2.5)": lambda: step.assign(2.5),
            "step.assign(int64)": lambda: step.assign(gj.constant(2**40, gj.int64)),
            "step.assign(2**40)": lambda: step.assign(2**40),
            "step.assign(float64 7.9)": lambda: step.assign(gj.constant(7.9, gj.float64)),
            "step.assign(np.inf)": lambda: step.assign(np.inf),
            "w.assign(float64)": lambda: w.assign(gj.ones([2], dtype=gj.float64)),
            "flag.assign(2)": lambda: flag.assign(2),
        }
        for what, build in refused.items():
            with pytest.raises(gj.DTypeError, match="step|w|flag") as caught:
                build()
            assert "test_session.py" in str(caught.value), what
        kept = [
            step.assign(np.float64(7.0)),  # exact: converted
            step.assign_add(np.int64(2)),  # a NumPy scalar is a constant: weak
            w.assign(np.array([0.1, 2.5])),  # float64 constants round to float32
            w.assign_sub(gj.cast(gj.ones([2], dtype=gj.float64), gj.float32)),
            flag.assign(1),
        ]
    with session(g) as sess:
        for op, want in zip(kept, [7, 9, np.float32([0.1, 2.5]), np.float32([-0.9, 1.5]), True]):
            np.testing.assert_array_equal(sess.run(op), want)


def test_a_run_reads_variables_as_they_were_when_it_started():
    """A run that fetches both a variable (or a value computed from it) and an assign to it
    sees the variable's value at the start of the run; the new value is written back when
    the run ends, so the next run sees it."""
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.array([1.0, 2.0], np.float32), name="v")
        doubled = v * 2
        update = v.assign(v + 100)
    with session(g) as sess:
        old, old_doubled, new = sess.run([v, doubled, update])
        np.testing.assert_array_equal(old, [1.0, 2.0])
        np.testing.assert_array_equal(old_doubled, [2.0, 4.0])
        np.testing.assert_array_equal(new, [101.0, 102.0])
        np.testing.assert_array_equal(sess.run(v), [101.0, 102.0])


# ---- feeds -------------------------------------------------------------------------------


def test_feed_by_placeholder_name():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        y = x * 3
    with session(g) as sess:
        np.testing.assert_array_equal(sess.run(y, {"x": [1.0, 2.0]}), [3.0, 6.0])
        np.testing.assert_array_equal(sess.run(y, {"x:0": [2.0, 2.0]}), [6.0, 6.0])


def test_unknown_dimensions_are_specialised_per_fed_shape():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3], name="x")
        w = gj.Variable(np.arange(6, dtype=np.float32).reshape(3, 2), name="w")
        y = gj.sum(x @ w, axis=1)
    wv = np.arange(6, dtype=np.float32).reshape(3, 2)
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=(2, 3)), rng.normal(size=(5, 3))
    with session(g) as sess:
        for data in [small, large, small, large[:1]]:
            data = data.astype(np.float32)
            got = sess.run(y, {x: data})
            assert got.shape == (data.shape[0],)
            np.testing.assert_allclose(got, (data @ wv).sum(axis=1), rtol=1e-5)


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_numpy_scalar_feeds_take_the_fast_path_and_are_still_checked(backend, monkeypatch):
    """np.int32(n), np.float32(lr): a NumPy scalar of the placeholder's dtype repeats a
    run without its checks, as an array does (loop_add's run: 15.8 -> 11.3 us); one of
    another dtype repeats it too, converted and range-checked on every run."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (4,), name="x")
        n = gj.placeholder(gj.int32, (), name="n")
        scale = gj.placeholder(gj.float32, (), name="scale")
        _, y = gj.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, v * scale), [0, x])
    sess = gj.Session(g, backend=backend)
    checked = []
    run_checked = sess._run_checked
    monkeypatch.setattr(sess, "_run_checked", lambda *a: checked.append(1) or run_checked(*a))
    xv = np.ones(4, np.float32)
    for k in range(1, 5):
        got = sess.run(y, {x: xv, n: np.int32(k), scale: np.float32(2)})
        np.testing.assert_array_equal(got, np.full(4, 2.0**k, np.float32))
    assert len(checked) == 1  # (the first run; the other three repeat its plan)
    got = sess.run(y, {x: xv, n: np.array(3, np.int32), scale: np.array(2, np.float32)})
    np.testing.assert_array_equal(
        got, np.full(4, 8.0, np.float32)
    )  # (0-d arrays: a plan of their own)
    for k in (2, 3):  # int64 scalars for the int32 placeholder: converted on every run
        got = sess.run(y, {x: xv, n: np.int64(k), scale: np.float32(2)})
        np.testing.assert_array_equal(got, np.full(4, 2.0**k, np.float32))
    assert len(checked) == 3
    with pytest.raises(gj.FeedError, match="must lie in"):
        sess.run(y, {x: xv, n: np.int64(2**40), scale: np.float32(2)})
    assert len(checked) == 3  # (refused on the plan's own path)


# Python numbers and scalars at the edges of the placeholders' dtypes: NaN, infinities,
# overflow to inf, signed zero, the integer ranges' ends and one past, ints beyond int64.
_EDGE_NUMBERS = [
    0.5, -0.0, float("nan"), float("inf"), -1e300, 1e-320, 2.0**24 + 1, 0, 1, -1, 127, 128,
    -128, -129, 255, 256, 2**31 - 1, 2**31, -(2**31), 2**53 + 1, 2**62 + 2**38 + 1, 2**63 - 1,
    2**63, -(2**63), 2**64, 2**70, -(2**70), True, False, np.float64(0.1), np.float16(3.5),
    np.int64(2**40), np.int8(-5), np.uint64(2**64 - 1), np.bool_(True), 1j,
]  # fmt: skip


@pytest.mark.parametrize(
    "dtype", [gj.float32, gj.float16, gj.float64, gj.int8, gj.uint8, gj.int32, gj.int64, gj.bool_]
)
def test_repeated_scalar_feeds_give_what_the_checked_path_gives(dtype, monkeypatch):
    """A run whose key repeats takes its plan: the same values, or the same error, as the
    checked path that a run with a new key takes -- for every kind of number on every
    kind of placeholder (TF1's `{lr: 0.01, keep_prob: 0.5, step: i}`)."""
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(dtype, (), name="p")
        y = gj.identity(p)
    sess = gj.Session(g, backend="interpreter")
    checked = []
    run_checked = sess._run_checked
    monkeypatch.setattr(sess, "_run_checked", lambda *a: checked.append(1) or run_checked(*a))

    def outcome(run, value):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # (NumPy's overflow in a cast)
            try:
                out = run(value)
            except gj.GraphjitError as e:
                return type(e), str(e)
        return out.dtype, out.tobytes()

    fresh = lambda v: gj.Session(g, backend="interpreter").run(y, {p: v})  # noqa: E731
    for value in _EDGE_NUMBERS:
        try:  # a first run with a value of the same type keeps a plan for the type
            sess.run(y, {p: type(value)(0)})
            accepted = True
        except gj.GraphjitError:  # (a float for an integer placeholder: never planned)
            accepted = False
        before = len(checked)
        assert outcome(lambda v: sess.run(y, {p: v}), value) == outcome(fresh, value), value
        assert (len(checked) == before) == accepted, value


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_make_callable_runs_fetches_on_positional_feeds(backend):
    """TF1's Session.make_callable: feeds by position, fetch structure kept, variables
    updated on every call, each new shape checked and compiled once, bad feeds refused."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 3], name="x")
        scale = gj.placeholder(gj.float32, [], name="scale")
        total = gj.Variable(0.0, name="total")
        y = gj.sum(x, axis=1) * scale
        bump = total.assign_add(gj.sum(y))
    with gj.Session(g, backend=backend) as sess:
        run = sess.make_callable({"y": y, "total": bump}, [x, scale])
        seen = 0.0
        for rows in (2, 5, 2):
            data = np.ones((rows, 3), np.float32)
            out = run(data, np.float32(2.0))
            seen += 6.0 * rows
            np.testing.assert_allclose(out["y"], np.full(rows, 6.0))
            assert float(out["total"]) == seen == float(sess.run(total))
        assert run(np.ones((1, 3)), 1)["y"].tolist() == [3.0]  # converted like run's feeds
        with pytest.raises(gj.FeedError, match="takes 2 feed values, got 1"):
            run(np.ones((1, 3), np.float32))
        with pytest.raises(gj.FeedShapeError):
            run(np.ones((1, 4), np.float32), np.float32(1.0))


def test_make_callable_repeats_numpy_scalar_feeds_without_the_checks(monkeypatch):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None], name="x")
        scale = gj.placeholder(gj.float32, [], name="scale")
        y = x * scale
    with gj.Session(g, backend="llvm") as sess:
        first = []
        first_call = sess._first_call
        monkeypatch.setattr(sess, "_first_call", lambda *a: first.append(1) or first_call(*a))
        run = sess.make_callable(y, [x, scale])
        for k in range(4):
            got = run(np.ones(3, np.float32), np.float32(k))
            np.testing.assert_array_equal(got, np.full(3, k, np.float32))
        assert len(first) == 1
        for k in (2.0, 3.0):  # Python floats: a plan too, converted on every call
            np.testing.assert_array_equal(run(np.ones(3, np.float32), k), np.full(3, k))
        assert len(first) == 2
        with pytest.raises(gj.FeedDTypeError):  # (the type is in the key: a checked call)
            run(np.ones(3, np.float32), 1j)


@pytest.mark.parametrize(
    "limit, held",
    [(None, None), ("0", None), ("100000", None), ("1000000", None)]
    + [(None, 0), ("1000000", 100000), ("0", 1000000)],  # (the Session's own limit wins)
)
def test_working_memory_held_between_runs_follows_the_limit(monkeypatch, limit, held):
    """The arena and spare output arrays stay between runs up to the Session's
    held_buffer_bytes, else GRAPHJIT_HELD_BUFFER_BYTES (default 256 MiB); bigger ones are
    allocated per run, and sess.inspect says which."""
    if limit is None:
        monkeypatch.delenv("GRAPHJIT_HELD_BUFFER_BYTES", raising=False)
    else:
        monkeypatch.setenv("GRAPHJIT_HELD_BUFFER_BYTES", limit)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [20000], name="x")
        h = gj.exp(x) * gj.sin(x)  # (two consumers of one tensor: an arena buffer)
        out = [gj.sum(h), h * 2.0 + gj.cos(h)]
    data = np.linspace(-1.0, 1.0, 20000)
    with gj.Session(g, backend="llvm", held_buffer_bytes=held) as sess:
        for _ in range(3):
            total, y = sess.run(out, {x: data})
            h0 = np.exp(data) * np.sin(data)
            np.testing.assert_allclose(total, h0.sum())
            np.testing.assert_allclose(y, h0 * 2.0 + np.cos(h0))
            del y  # (nobody holds the output: the runner may reuse it)
        report = sess.inspect(out, {x: data})
    assert report.arena_bytes > 0
    if (limit if held is None else str(held)) in ("0", "100000"):  # (160 kB: arena, output)
        assert report.held_bytes == 0
    else:  # the arena (and, after a run, output arrays that nobody holds)
        assert report.held_bytes >= report.arena_bytes
    assert f"held between runs: {report.held_bytes} bytes" in str(report)


@pytest.mark.parametrize("held", [-1, 1.5, True, "0"])
def test_held_buffer_bytes_must_be_a_whole_number(held):
    with pytest.raises(gj.BackendError, match="held_buffer_bytes"):
        gj.Session(gj.Graph(), held_buffer_bytes=held)


def test_outputs_are_reused_only_when_nobody_holds_them():
    """`y = sess.run(...)` in a loop holds the previous result while the next run fills its
    own: the llvm runner alternates between two arrays then (no fresh pages each run), and
    never writes into an array that the caller still holds."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None], name="x")
        y = gj.tanh(x) * 2.0
    data = [np.full(50000, float(i), np.float32) for i in range(6)]
    with gj.Session(g, backend="llvm") as sess:
        addresses, kept = set(), []
        result = None
        for i, feed in enumerate(data):
            result = sess.run(y, {x: feed})  # (holds the previous result until here)
            addresses.add(result.ctypes.data)
            if i % 2:
                kept.append(result)  # (held for good: never reused)
        for i, held in zip(range(1, 6, 2), kept):
            np.testing.assert_allclose(held, np.tanh(data[i]) * 2.0, rtol=1e-6)
        np.testing.assert_allclose(result, np.tanh(data[-1]) * 2.0, rtol=1e-6)
        assert len(addresses) < len(data)  # (some array was reused)
        first, second = sess.run(y, {x: data[0]}), sess.run(y, {x: data[1]})
        assert first.ctypes.data != second.ctypes.data
        np.testing.assert_allclose(first, np.tanh(data[0]) * 2.0, rtol=1e-6)


# ---- checkpoints -------------------------------------------------------------------------


def variable_graph(shape=(2, 2)):
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.zeros(shape, np.float32), name="v")
        step = gj.Variable(0, name="step")
        update = gj.group(v.assign_add(1.5), step.assign_add(1))
    return g, v, step, update


def test_save_and_restore_round_trip(tmp_path):
    g, v, step, update = variable_graph()
    path = str(tmp_path / "model.ckpt")
    with session(g) as sess:
        sess.run(update)
        assert sess.save(path) == path
        sess.run(update)
        sess.restore(path)
        assert sess.run(step) == 1
        np.testing.assert_array_equal(sess.run(v), np.full((2, 2), 1.5))
    with session(g) as other:
        other.restore(path)
        assert other.run(step) == 1


def test_restore_of_a_truncated_or_corrupt_file_raises(tmp_path):
    g, *_ = variable_graph()
    path = tmp_path / "model.ckpt"
    with session(g) as sess:
        sess.save(str(path))
        data = path.read_bytes()
        for name, content in [("half", data[: len(data) // 2]), ("garbage", b"not a zip")]:
            bad = tmp_path / name
            bad.write_bytes(content)
            with pytest.raises(gj.CheckpointError):
                sess.restore(str(bad))
        with pytest.raises(gj.CheckpointError):
            sess.restore(str(tmp_path / "missing.ckpt"))


def test_restore_with_a_mismatched_variable_shape_raises(tmp_path):
    path = str(tmp_path / "model.ckpt")
    with session(variable_graph((2, 2))[0]) as sess:
        sess.save(path)
    with session(variable_graph((3,))[0]) as sess:
        with pytest.raises(gj.CheckpointError, match="'v'"):
            sess.restore(path)


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    g, _, _, update = variable_graph()
    path = tmp_path / "model.ckpt"
    with session(g) as sess:
        sess.save(str(path))
        before = path.read_bytes()
        sess.run(update)

        def failing_replace(src, dst):
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", failing_replace)
        with pytest.raises(OSError):
            sess.save(str(path))
        monkeypatch.undo()
        assert path.read_bytes() == before
        assert os.listdir(tmp_path) == ["model.ckpt"]  # no temporary file left behind
        sess.restore(str(path))
        assert sess.run(g.variables["step"]) == 0


# ---- check_numerics ----------------------------------------------------------------------


def numerics_error(graph, fetch, feed_dict) -> gj.NumericsError:
    with session(graph, check_numerics=True) as sess:
        with pytest.raises(gj.NumericsError) as info:
            sess.run(fetch, feed_dict)
    return info.value


def test_check_numerics_names_the_op_and_its_line():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        line = next_line()
        y = gj.log(x) * 2
    err = numerics_error(g, y, {x: np.array([1.0, -1.0], np.float32)})
    assert "'log'" in str(err) and f"{FILE}:{line}" in str(err)
    with session(g) as sess:  # without the check, NaN is an ordinary result
        assert np.isnan(sess.run(y, {x: np.array([1.0, -1.0], np.float32)})[1])


def test_check_numerics_inside_a_cond_branch():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        line = next_line()
        y = gj.cond(gj.sum(x) < 0, lambda: gj.log(x), lambda: x)
    err = numerics_error(g, y, {x: np.array([-1.0, -2.0], np.float32)})
    assert "'log'" in str(err) and f"{FILE}:{line}" in str(err)
    with session(g, check_numerics=True) as sess:  # the branch not taken does not run
        np.testing.assert_array_equal(sess.run(y, {x: [0.0, 1.0]}), [0.0, 1.0])


def test_check_numerics_inside_a_while_body():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        line = next_line()
        _, y = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, gj.log(a)), [0, x])
    err = numerics_error(g, y, {x: np.array([2.0, 3.0], np.float32)})  # log(log(2)) < 0
    assert "'log'" in str(err) and f"{FILE}:{line}" in str(err)
