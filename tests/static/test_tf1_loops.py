"""TensorFlow 1's loop structures: while_loop's keywords, nested loop variables, shape
invariants (a value that grows each iteration), cond with nested and shape-differing
branches, and TensorArray — values against NumPy, gradients against float64 finite
differences, on the interpreter and the llvm backend."""

from __future__ import annotations

import collections
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

import graphjit as gj

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autodiff"))
from fd import assert_close, numeric_grad  # noqa: E402
from simulator import run_script_simulated  # noqa: E402

BACKENDS = ["interpreter", "llvm"]
Pair = collections.namedtuple("Pair", ["a", "b"])


def run_graph(build, arrays, backend="interpreter"):
    """`build(*placeholders) -> (loss, extra fetches)` in a fresh graph; returns the loss,
    its gradients with respect to every placeholder, and the extra fetches' values."""
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(gj.float64, np.shape(a), name=f"x{i}") for i, a in enumerate(arrays)]
        loss, extra = build(*xs)
        grads = gj.gradients(loss, xs)
    with gj.Session(g, backend=backend) as sess:
        out = sess.run([loss, *grads, *extra], dict(zip(xs, arrays)))
    return out[0], out[1 : 1 + len(xs)], out[1 + len(xs) :]


def check_against_fd(build, arrays, backend):
    """The graph's gradients against central differences of its own loss (interpreter)."""
    loss_of = lambda *a: run_graph(build, a)[0]  # noqa: E731
    loss, grads, extra = run_graph(build, arrays, backend)
    for got, expected in zip(grads, numeric_grad(loss_of, arrays)):
        assert_close(got, expected, f"gradient on {backend}", rtol=1e-5, atol=1e-7)
    return loss, extra


# ---- while_loop: keywords and structures --------------------------------------------------


def test_tf1_keywords_and_max_iterations_alias():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [], name="x")
        c = lambda i, y: y < 1000.0  # noqa: E731
        b = lambda i, y: (i + 1, y * 2.0)  # noqa: E731
        capped = gj.while_loop(cond=c, body=b, loop_vars=(0, x), maximum_iterations=3)
        alias = gj.while_loop(c, b, (0, x), max_iterations=3)
        lone = gj.while_loop(lambda y: y < 10.0, lambda y: y * 2.0, [x])
        unpacked = gj.while_loop(
            lambda y: y < 10.0, lambda y: y * 2.0, [x], return_same_structure=False
        )
    with pytest.raises(gj.ControlFlowError, match="not both"):
        with g.as_default():
            gj.while_loop(c, b, (0, x), maximum_iterations=1, max_iterations=1)
    with gj.Session(g) as sess:
        out = sess.run([capped, alias, lone, unpacked], {x: 1.0})
    assert isinstance(capped, tuple) and isinstance(lone, list)
    assert [int(out[0][0]), float(out[0][1])] == [3, 8.0]
    assert [int(out[1][0]), float(out[1][1])] == [3, 8.0]
    assert float(out[2][0]) == 16.0 and float(out[3]) == 16.0


def _structured_loop(x):
    """Loop variables: a namedtuple (unpacked into the arguments, as TF1 does) and a dict
    wrapped in a list (one argument)."""
    state = Pair(a=x, b={"count": 0, "acc": (x * 0.0, [x])})

    def cond(a, b):
        return b["count"] < 3

    def body(a, b):
        acc, (last,) = b["acc"]
        return Pair(a * 1.5, {"acc": (acc + a, [last * a]), "count": b["count"] + 1})

    return gj.while_loop(cond, body, state)


def _structured_ref(x):
    a, acc, last = x, 0.0 * x, x
    for _ in range(3):
        a, acc, last = a * 1.5, acc + a, last * a
    return a, acc, last


@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_loop_variables_in_a_graph(backend):
    x0 = np.array([0.5, -1.25, 2.0])

    def build(x):
        out = _structured_loop(x)
        assert isinstance(out, Pair) and isinstance(out.b, dict)
        acc, (last,) = out.b["acc"]
        loss = gj.sum(out.a * acc) + gj.sum(gj.sin(last))
        return loss, [out.a, acc, last, out.b["count"]]

    _, (a, acc, last, count) = check_against_fd(build, [x0], backend)
    for got, expected in zip((a, acc, last), _structured_ref(x0)):
        np.testing.assert_allclose(got, expected)
    assert int(count) == 3


def test_nested_loop_variables_eager():
    x0 = np.array([0.5, -1.25, 2.0])
    x = gj.tensor(x0, dtype="float64", requires_grad=True)
    out = _structured_loop(x)
    acc, (last,) = out.b["acc"]
    for got, expected in zip((out.a, acc, last), _structured_ref(x0)):
        np.testing.assert_allclose(got.numpy(), expected)
    assert isinstance(out, Pair) and int(out.b["count"]) == 3
    gj.sum(out.a * acc).backward()
    expected = numeric_grad(lambda v: np.sum(np.multiply(*_structured_ref(v)[:2])), [x0])[0]
    assert_close(x.grad.numpy(), expected)


def test_structure_errors_name_the_structures():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [], name="x")
        with pytest.raises(gj.ControlFlowError, match=r"wrap it in a list"):
            gj.while_loop(lambda d: d["v"] < 1.0, lambda d: d, {"v": x})
        with pytest.raises(gj.ControlFlowError, match="dict with keys 'v'"):
            gj.while_loop(lambda d: d["v"] < 1.0, lambda d: [{"w": d["v"]}], [{"v": x}])


# ---- cond -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_cond_with_nested_branches(backend):
    x0 = np.array([1.0, -2.0])

    def build(x):
        out = gj.cond(
            gj.sum(x) > 0,
            lambda: {"y": x * 2.0, "pair": Pair(x + 1.0, gj.sum(x))},
            lambda: {"pair": Pair(x - 1.0, gj.sum(x * x)), "y": -x},
        )
        assert isinstance(out["pair"], Pair)
        return gj.sum(out["y"] * out["pair"].a) + out["pair"].b, [out["y"]]

    loss, (y,) = check_against_fd(build, [x0], backend)
    np.testing.assert_allclose(y, -x0)
    np.testing.assert_allclose(loss, np.sum(-x0 * (x0 - 1.0)) + np.sum(x0 * x0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_cond_branches_of_different_shapes_merge_to_unknown_dims(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [2, 3], name="x")
        p = gj.placeholder(gj.bool_, [], name="p")
        y = gj.cond(p, lambda: x, lambda: gj.concat([x, x], 0))
        assert y.shape == (None, 3)
        (dx,) = gj.gradients(gj.sum(y * y), [x])
        with pytest.raises(gj.ControlFlowError, match="different types"):
            gj.cond(p, lambda: x, lambda: gj.cast(x, gj.float32))
    x0 = np.arange(6.0).reshape(2, 3)
    with gj.Session(g, backend=backend) as sess:
        for taken, rows, grad in ((True, 2, 2 * x0), (False, 4, 4 * x0)):
            got, dgot = sess.run([y, dx], {x: x0, p: taken})
            assert got.shape == (rows, 3)
            np.testing.assert_allclose(dgot, grad)


# ---- shape invariants: a value that grows each iteration -----------------------------------


def _grow_until(x, limit):
    """Append `last * 0.5 + 1` to the rows until their sum passes `limit`: the number of
    iterations, and so the final shape, depends on the data."""

    def body(rows):
        return (gj.concat([rows, rows[-1:] * 0.5 + 1.0], 0),)

    (rows,) = gj.while_loop(
        lambda rows: gj.sum(rows) < limit, body, (x,), shape_invariants=([None, 2],)
    )
    return rows


def _grow_until_ref(x, limit):
    rows = x
    while rows.sum() < limit:
        rows = np.concatenate([rows, rows[-1:] * 0.5 + 1.0])
    return rows


@pytest.mark.parametrize("backend", BACKENDS)
def test_shape_changing_loop(backend):
    for x0 in (np.array([[0.5, 1.0]]), np.array([[3.0, -1.0], [2.0, 4.0]])):
        expected = _grow_until_ref(x0, 30.0)

        def build(x):
            rows = _grow_until(x, 30.0)
            assert rows.shape == (None, 2)
            return gj.sum(gj.square(rows)), [rows]

        _, (rows,) = check_against_fd(build, [x0], backend)
        assert rows.shape == expected.shape and rows.shape[0] > x0.shape[0] + 2
        np.testing.assert_allclose(rows, expected)


def test_shape_changing_loop_on_llvm_compiles_each_shape_once(monkeypatch):
    """One Session, fed rows of any count (a None dimension) and different limits: the
    loop's stages compile once per shape they meet, so a repeated run compiles nothing."""
    from graphjit.runtime import executable

    compiles = []
    compile_program = executable.compile_program
    monkeypatch.setattr(
        executable,
        "compile_program",
        lambda *a, **k: compiles.append(1) or compile_program(*a, **k),
    )
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None, 2], name="x")
        limit = gj.placeholder(gj.float64, [], name="limit")
        rows = _grow_until(x, limit)
        (dx,) = gj.gradients(gj.sum(gj.square(rows)), [x])
    with gj.Session(g, backend="llvm") as sess:
        for x0, bound in ((np.array([[0.5, 1.0]]), 30.0), (np.array([[1.0, 2.0]] * 3), 60.0)):
            got, dgot = sess.run([rows, dx], {x: x0, limit: bound})
            np.testing.assert_allclose(got, _grow_until_ref(x0, bound))
            loss_of = lambda a: np.sum(np.square(_grow_until_ref(a, bound)))  # noqa: E731
            assert_close(dgot, numeric_grad(loss_of, [x0])[0], "dx", rtol=1e-5, atol=1e-7)
        before = len(compiles)
        sess.run([rows, dx], {x: np.array([[0.5, 1.0]]), limit: 30.0})
        assert len(compiles) == before > 0


def test_runtime_sized_values_on_cuda_in_the_simulator():
    """The grow loop and a boolean mask that is a graph tensor, with gradients: cuda runs
    them staged as llvm does, with the interpreter's results."""
    script = f"""
import numpy as np, graphjit as gj
{inspect.getsource(_grow_until)}
g = gj.Graph()
with g.as_default():
    x = gj.placeholder(gj.float64, [None, 2], name="x")
    m = gj.placeholder(gj.bool_, [3, 2], name="m")
    rows = _grow_until(x, 30.0)
    (dx,) = gj.gradients(gj.sum(gj.square(rows)), [x])
    w = gj.placeholder(gj.float64, [3, 2], name="w")
    picked = w[m]
    (dw,) = gj.gradients(gj.sum(picked * picked), [w])
feed = {{x: np.array([[0.5, 1.0]]), w: np.arange(6.0).reshape(3, 2),
        m: np.array([[True, False], [True, True], [False, False]])}}
outs = {{}}
for backend in ("interpreter", "cuda"):
    with gj.Session(g, backend=backend) as sess:
        outs[backend] = sess.run([rows, dx, picked, dw], feed)
for a, b in zip(outs["interpreter"], outs["cuda"]):
    np.testing.assert_allclose(b, a, rtol=1e-12)
print("agree", outs["cuda"][0].shape, outs["cuda"][2].tolist())
"""
    done = run_script_simulated(script)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agree (9, 2) [0.0, 2.0, 3.0]" in done.stdout


# ---- TensorArray ----------------------------------------------------------------------------


def _rnn_ref(x, w, steps):
    h, rows = x, []
    for _ in range(steps):
        h = np.tanh(h * w + 0.1)
        rows.append(h)
    return np.stack(rows)


def _rnn_with_tensor_array(x, w, steps):
    ta = gj.TensorArray(gj.float64, size=steps, element_shape=[3])

    def body(i, h, ta):
        h = gj.tanh(h * w + 0.1)
        return i + 1, h, ta.write(i, h)

    _, _, ta = gj.while_loop(lambda i, h, ta: i < steps, body, [0, x, ta])
    return ta


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensor_array_loop(backend):
    x0, w0 = np.array([1.0, 2.0, -1.0]), np.array([0.9, -0.5, 1.2])

    def build(x, w):
        ta = _rnn_with_tensor_array(x, w, 5)
        stacked = ta.stack()
        assert stacked.shape == (5, 3)
        loss = gj.sum(stacked * np.arange(1.0, 16.0).reshape(5, 3)) + gj.sum(ta.read(2))
        return loss, [stacked, ta.size(), ta.gather([4, 0])]

    _, (stacked, size, gathered) = check_against_fd(build, [x0, w0], backend)
    expected = _rnn_ref(x0, w0, 5)
    np.testing.assert_allclose(stacked, expected)
    np.testing.assert_allclose(gathered, expected[[4, 0]])
    assert int(size) == 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensor_array_of_run_time_size_and_unstack(backend):
    x0 = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]])

    def build(x):
        n = gj.placeholder(gj.int32, [], name="n")
        doubled = gj.TensorArray(gj.float64, size=n, element_shape=[2])
        source = gj.TensorArray(gj.float64, size=3).unstack(x)

        def body(i, out):
            return i + 1, out.write(i, source.read(i) * 2.0)

        _, doubled = gj.while_loop(lambda i, out: i < n, body, [0, doubled])
        stacked = doubled.stack()
        assert stacked.shape == (None, 2)
        return gj.sum(gj.square(stacked)), [stacked], n

    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3, 2], name="x")
        loss, (stacked,), n = build(x)
        (dx,) = gj.gradients(loss, [x])
    with gj.Session(g, backend=backend) as sess:
        got, dgot = sess.run([stacked, dx], {x: x0, n: 3})
        np.testing.assert_allclose(got, 2 * x0)
        np.testing.assert_allclose(dgot, 8 * x0)
        got, dgot = sess.run([stacked, dx], {x: x0, n: 2})
        np.testing.assert_allclose(got, 2 * x0[:2])
        np.testing.assert_allclose(dgot, 8 * x0 * [[1], [1], [0]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_tensor_array_sized_by_the_input_is_differentiable(backend):
    """TF1's dynamic RNN idiom: size=tf.shape(x)[0]. The size reaches the loop that fills
    the array with zeros only through an integer, so that loop is not differentiated (its
    list pushes have no VJP: this was a GradientError)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None], name="x")
        n = gj.shape(x)[0]
        ta = gj.TensorArray(gj.float64, size=n, element_shape=[])
        body = lambda i, ta: (i + 1, ta.write(i, x[i] * x[i]))  # noqa: E731
        _, ta = gj.while_loop(lambda i, ta: i < n, body, [0, ta])
        w = gj.placeholder(gj.float64, [None], name="w")
        loss = gj.reduce_sum(ta.stack() * w)
        (dx,) = gj.gradients(loss, [x])
    with gj.Session(g, backend=backend) as sess:
        for x0 in (np.array([1.0, 2.0, 3.0]), np.array([0.5, -4.0])):
            weights = np.arange(1.0, len(x0) + 1)
            got, dgot = sess.run([loss, dx], {x: x0, w: weights})
            np.testing.assert_allclose(got, np.sum(x0 * x0 * weights))
            np.testing.assert_allclose(dgot, 2 * x0 * weights)


def test_tensor_array_element_shape_must_be_fully_known_in_a_loop():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        with pytest.raises(gj.ControlFlowError, match=r"fully known \(given: \[None, 3\]\)"):
            gj.while_loop(
                lambda i, ta: i < 2,
                lambda i, ta: (i + 1, ta.write(i, gj.stack([x, x]))),
                [0, gj.TensorArray(gj.float64, size=2, element_shape=[None, 3])],
            )


def test_tensor_array_eager():
    x0, w0 = np.array([1.0, 2.0, -1.0]), np.array([0.9, -0.5, 1.2])
    x = gj.tensor(x0, dtype="float64", requires_grad=True)
    ta = _rnn_with_tensor_array(x, gj.tensor(w0, dtype="float64"), 4)
    stacked = ta.stack()
    np.testing.assert_allclose(stacked.numpy(), _rnn_ref(x0, w0, 4))
    assert ta.size() == 4
    gj.sum(stacked).backward()
    expected = numeric_grad(lambda v: np.sum(_rnn_ref(v, w0, 4)), [x0])[0]
    assert_close(x.grad.numpy(), expected)
    grown = gj.TensorArray(gj.float64, size=0, dynamic_size=True).write(2, x)
    assert grown.size() == 3
    with pytest.raises(gj.ShapeError, match="out of range"):
        gj.TensorArray(gj.float64, size=1).write(1, x)


def test_tensor_array_errors():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        with pytest.raises(gj.ControlFlowError, match="element_shape"):
            gj.while_loop(
                lambda i, ta: i < 2,
                lambda i, ta: (i + 1, ta.write(i, x)),
                [0, gj.TensorArray(gj.float64, size=2)],
            )
        with pytest.raises(gj.ControlFlowError, match="needs size"):
            gj.TensorArray(gj.float64, dynamic_size=True)
        with pytest.raises(gj.ShapeError, match="TensorArray.write"):
            gj.TensorArray(gj.float64, size=2, element_shape=[2]).write(0, x)
