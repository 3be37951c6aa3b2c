"""Session features on the cuda backend: variables kept on the device between runs,
check_numerics inside kernels, cond and while, and unoptimised functions."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_helpers import assert_matches, compare_backends, run_on

import graphjit as gj


def training_graph():
    rng = np.random.default_rng(3)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [6, 3], name="x")
        y = gj.placeholder(gj.float64, [6], name="y")
        w = gj.Variable(rng.normal(size=(3, 1)), name="w")
        b = gj.Variable(0.0, name="b")
        steps = gj.Variable(0, name="steps")
        pred = gj.reshape(gj.matmul(x, w), (6,)) + b
        loss = gj.mean(gj.square(pred - y))
        train = gj.group(gj.train.SGD(0.1).minimize(loss), steps.assign_add(1))
    feed = {x: rng.normal(size=(6, 3)), y: rng.normal(size=6)}
    return g, [loss, train, w, steps], feed


def test_training_steps_keep_variables_on_the_device_between_runs():
    g, fetches, feed = training_graph()
    expected = run_on("interpreter", g, fetches, feed, runs=4)
    with gj.Session(g, backend="cuda") as sess:
        got = [sess.run(fetches, feed) for _ in range(4)]
        assert not sess.variables["w"].flags.writeable  # the device copy stays valid
        sess.variables["w"] = np.zeros((3, 1))  # a replaced array is uploaded again
        np.testing.assert_array_equal(sess.run(fetches[2]), np.zeros((3, 1)))
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        for j in (0, 2, 3):
            assert_matches(a[j], b[j], f"run {k} fetch {j}")
    assert got[-1][3] == 3  # a run sees the values at its start


def test_restore_replaces_the_device_copies(tmp_path):
    g, fetches, feed = training_graph()
    with gj.Session(g, backend="cuda") as sess:
        path = sess.save(str(tmp_path / "start.npz"))
        first = sess.run(fetches[0], feed)
        sess.run(fetches, feed)
        sess.restore(path)
        assert_matches(sess.run(fetches[0], feed), first, "loss after restore")


def check_numerics_graph():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        fused = gj.log(x) * 2  # log's NaN is found inside the kernel, not only in its output
        branch = gj.cond(gj.sum(x) < 0, lambda: gj.log(x), lambda: x)
        _, looped = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, gj.log(a)), [0, x])
        reduced = gj.sum(gj.exp(x * 100))
    return (
        g,
        x,
        [
            (fused, [1, -1], "NaN", "log"),
            (branch, [-1, -2], "NaN", "log"),
            (looped, [2, 3], "NaN", "log"),
            (reduced, [1, 9], "infinity", "exp"),
        ],
    )


@pytest.mark.parametrize("case", range(4))
def test_check_numerics_names_the_op(case):
    g, x, cases = check_numerics_graph()
    fetch, data, what, name = cases[case]
    feed = {x: np.array(data, np.float32)}
    with gj.Session(g, backend="cuda", check_numerics=True) as sess:
        with pytest.raises(gj.NumericsError, match=f"{what} in the result of '{name}'"):
            sess.run(fetch, feed)
    with gj.Session(g, backend="cuda") as sess:  # without the check, an ordinary result
        assert not np.all(np.isfinite(sess.run(fetch, feed)))


def test_check_numerics_passes_finite_runs():
    g, x, cases = check_numerics_graph()
    fetches = [c[0] for c in cases]
    with gj.Session(g, backend="cuda", check_numerics=True) as sess:
        sess.run(fetches[:3], {x: np.array([16.0, 20.0], np.float32)})  # log(log(log x)) > 0
        sess.run(fetches[3], {x: np.array([0.01, 0.02], np.float32)})


def test_unoptimised_functions_are_fused_for_the_backend():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3, 2], name="x")
        y = gj.softmax(x) * 2 + gj.sum(x)
    data = {x: np.arange(6.0).reshape(3, 2)}
    with gj.Session(g, backend="cuda", optimize=False) as sess:
        assert_matches(sess.run(y, data), run_on("interpreter", g, y, data))
    compare_backends(g, y, data)


def test_check_numerics_op_raises_with_its_message_and_passes_finite_values():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        y = gj.check_numerics(gj.log(x), "log(x) went bad")
        z = gj.sum(y * 2)
        (dx,) = gj.gradients(z, [x])
    with gj.Session(g, backend="cuda") as sess:
        with pytest.raises(gj.NumericsError, match="log\\(x\\) went bad: the tensor has NaN"):
            sess.run(z, {x: np.array([1.0, -1.0, 2.0])})
    compare_backends(g, [y, z, dx], {x: np.array([1.0, 3.0, 2.0])})


@pytest.mark.parametrize("check_numerics", [False, True])
def test_hostile_values_give_the_other_backends_answers(check_numerics):
    """Issue 14 on cuda: an integer power with a negative exponent is the same
    RuntimeCheckError as on the interpreter and llvm (a kernel's value check lowers its
    flag), float -> int casts of NaN and out-of-range values are the integer's minimum, and
    max over an empty axis is the shape rule's ShapeError."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.int32, [None])
        n = gj.placeholder(gj.int32, [None])
        f = gj.placeholder(gj.float32, [None])
        power = gj.pow(x, n) + 1
        cast = gj.cast(f * 2.0, gj.int32)
        empty = gj.max(gj.reshape(f, [-1, 1]), axis=0)
    feeds = {x: np.array([2, 3, 4], np.int32), n: np.array([1, 0, 2], np.int32)}
    values = np.array([np.nan, np.inf, 3e30, -1.6], np.float32)

    def run(backend, fetches, feed):
        with gj.Session(g, backend=backend, check_numerics=check_numerics) as sess:
            return sess.run(fetches, feed)

    np.testing.assert_array_equal(run("cuda", power, feeds), [3, 2, 17])
    low = np.iinfo(np.int32).min
    if not check_numerics:  # (which would name the NaN)
        np.testing.assert_array_equal(run("cuda", cast, {f: values}), [low, low, low, -3])
    feeds[n] = np.array([1, -1, 2], np.int32)
    for backend in ("interpreter", "cuda"):
        with pytest.raises(gj.RuntimeCheckError, match="negative integer powers"):
            run(backend, power, feeds)
        with pytest.raises(gj.ShapeError, match="empty axis"):
            run(backend, empty, {f: np.zeros(0, np.float32)})


def test_programs_that_write_a_variable_without_reading_it():
    """TF1's `sess.run(global_variables_initializer())` and `w.assign(value)` fetched on
    its own write a variable that is no argument of their program (the runner had looked
    for it among the arguments: ValueError)."""
    g = gj.Graph()
    with g.as_default():
        w = gj.Variable(np.ones(4, np.float32))
        y = w * 2
        reset = w.assign(np.full(4, 3, np.float32))
        init = gj.global_variables_initializer()
    sess = gj.Session(g, backend="cuda")
    np.testing.assert_array_equal(sess.run(y), np.full(4, 2, np.float32))
    sess.run(reset)
    np.testing.assert_array_equal(sess.run(y), np.full(4, 6, np.float32))
    sess.run(init)
    np.testing.assert_array_equal(sess.run(y), np.full(4, 2, np.float32))
