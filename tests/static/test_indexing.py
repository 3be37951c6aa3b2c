"""Gather, scatter and array indexing (issue 17) beyond the op-table records: x[key] with
integer arrays and masks against NumPy in every mode, out-of-range indices on every
backend (a RuntimeCheckError, never a read out of bounds), PyTorch's own functions as
references, and an embedding lookup with its gradient."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir.ops import bind

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(17)
X = RNG.normal(size=(4, 5, 6))
IDX = np.array([[0, -1], [2, 3]])
I3, J3 = np.array([1, 0, 3]), np.array([4, 4, -2])

# NumPy's advanced indexing, each form once: one array (before, between and after basic
# indices), several (adjacent or not: their dimensions then come first), masks, scalars.
KEYS = {
    "x[idx]": (IDX,),
    "x[:, idx]": (slice(None), IDX),
    "x[idx, 1:]": (IDX, slice(1, None)),
    "x[..., [1, 2]]": (Ellipsis, [1, 2]),
    "x[0, :, i]": (0, slice(None), I3),
    "x[:, 0, i]": (slice(None), 0, I3),
    "x[i, j]": (I3, J3),
    "x[i, :, j]": (I3, slice(None), J3),
    "x[:, i, j]": (slice(None), I3, J3),
    "x[i[:, None], j]": (I3[:, None], J3[None, :]),
    "x[None, i, ..., 2]": (None, I3, Ellipsis, 2),
    "x[mask2d]": (X[:, :, 0] > 0,),
    "x[:, mask1d]": (slice(None), X[0, :, 0] > 0),
    "x[[True, False, True, True]]": ([True, False, True, True],),
    "x[True]": (True,),
    "x[False]": (False,),
    "x[True, 1, idx]": (True, 1, IDX),
}


def _run_graph(fn, arrays, backend):
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype, a.shape, name=f"x{i}") for i, a in enumerate(arrays)]
        out = fn(*xs)
    with gj.Session(g, backend=backend) as sess:
        return sess.run(out, dict(zip(xs, arrays)))


@pytest.mark.parametrize("name", KEYS)
def test_getitem_matches_numpy_in_every_mode(name):
    key = KEYS[name]
    expected = X[key]
    results = {
        "eager": gj.tensor(X)[key].numpy(),
        "interpreter": _run_graph(lambda x: x[key], [X], "interpreter"),
        "llvm": _run_graph(lambda x: x[key], [X], "llvm"),
        "gj.function": gj.function(lambda x: x[key], backend="llvm")(X),
    }
    for mode, got in results.items():
        assert got.shape == expected.shape, mode
        np.testing.assert_array_equal(got, expected, err_msg=mode)


def test_index_tensors_of_both_modes_and_int32():
    i = np.array([3, -4, 0], np.int32)
    np.testing.assert_array_equal(gj.tensor(X)[gj.tensor(i)].numpy(), X[i])
    np.testing.assert_array_equal(_run_graph(lambda x, i: x[:, i, 1:], [X, i], "llvm"), X[:, i, 1:])


def test_getitem_gradient_adds_up_repeated_indices():
    x = gj.tensor(np.arange(5.0), requires_grad=True)
    gj.sum(x[[1, 1, 4, -1]] * gj.tensor(np.array([1.0, 2.0, 3.0, 4.0]))).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 3, 0, 0, 7])


def test_boolean_mask_of_eager_tensors():
    x = gj.tensor(X, requires_grad=True)
    mask = X > 0
    np.testing.assert_array_equal(x[gj.tensor(mask)].numpy(), X[mask])
    np.testing.assert_array_equal(
        gj.boolean_mask(x, gj.tensor(mask[:, :, 0])).numpy(), X[mask[:, :, 0]]
    )
    gj.sum(x[gj.tensor(mask)]).backward()
    np.testing.assert_array_equal(x.grad.numpy(), mask.astype(float))
    np.testing.assert_array_equal(gj.where(gj.tensor(mask)).numpy(), np.argwhere(mask))


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_boolean_mask_that_is_a_graph_tensor(backend):
    """A mask known only when the graph runs (a placeholder, or computed from data): x[m],
    boolean_mask and tf.where(m) give NumPy's results with gradients, whatever the number
    of True elements, in one Session (llvm compiles the ops after the mask per count)."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, X.shape, name="x")
        m = gj.placeholder(gj.bool_, X.shape, name="m")
        rows = gj.placeholder(gj.bool_, X.shape[:2], name="rows")
        picked = x[m]
        by_rows = gj.boolean_mask(x, rows)
        positive = gj.boolean_mask(gj.reshape(x, [-1]), gj.reshape(x > 0.5, [-1]))
        weights = gj.constant(np.arange(6.0))
        loss = gj.sum(picked * 2.0) + gj.sum(by_rows * weights) + gj.sum(gj.square(positive))
        (dx,) = gj.gradients(loss, [x])
        coords, (_, i1, _) = gj.where(m), gj.nonzero(m, as_tuple=True)
    with gj.Session(g, backend=backend) as sess:
        for seed in range(3):
            mask = np.random.default_rng(seed).random(X.shape) < 0.3 * (seed + 1)
            row_mask = mask[:, :, 0]
            out = sess.run(
                [picked, by_rows, positive, dx, coords, i1], {x: X, m: mask, rows: row_mask}
            )
            np.testing.assert_array_equal(out[0], X[mask])
            np.testing.assert_array_equal(out[1], X[row_mask])
            np.testing.assert_array_equal(out[2], X[X > 0.5])
            expected = 2.0 * mask + row_mask[:, :, None] * np.arange(6.0) + 2 * X * (X > 0.5)
            np.testing.assert_allclose(out[3], expected)
            np.testing.assert_array_equal(out[4], np.argwhere(mask))
            np.testing.assert_array_equal(out[5], np.nonzero(mask)[1])
        none = sess.run(picked, {x: X, m: np.zeros(X.shape, bool), rows: row_mask})
        assert none.shape == (0,)


def test_boolean_mask_of_a_graph_tensor_under_gj_function():
    f = gj.function(lambda x, m: gj.sum(x[m] ** 2))
    for threshold in (0.0, 1.0, 0.0):
        mask = X > threshold
        np.testing.assert_allclose(f(X, mask), np.sum(X[mask] ** 2))
    with pytest.raises(gj.DTypeError, match="mask must be boolean"):
        g = gj.Graph()
        with g.as_default():
            gj.boolean_mask(gj.placeholder(gj.float64, [3]), gj.placeholder(gj.int32, [3]))


def test_segment_sum_counts_segments_unless_the_ids_are_a_graph_tensor():
    data = np.arange(12.0).reshape(6, 2)
    ids = np.array([0, 0, 1, 3, 3, 3])
    expected = np.stack([data[ids == s].sum(0) for s in range(4)])
    eager = gj.segment_sum(gj.tensor(data), gj.tensor(ids)).numpy()
    np.testing.assert_array_equal(eager, expected)
    np.testing.assert_array_equal(
        _run_graph(lambda d: gj.segment_sum(d, ids), [data], "llvm"), expected
    )
    g = gj.Graph()
    with g.as_default():
        d = gj.placeholder(gj.float64, [6, 2], name="d")
        i = gj.placeholder(gj.int64, [6], name="i")
        with pytest.raises(gj.ShapeError, match="num_segments"):
            gj.segment_sum(d, i)


def test_argument_errors():
    x = gj.tensor(X)
    with pytest.raises(gj.ShapeError, match="batch_dims"):
        gj.gather(x, [0], batch_dims=1)
    with pytest.raises(gj.DTypeError, match="int32 or int64"):
        gj.gather(x, gj.tensor(np.array([0.0])))
    with pytest.raises(gj.DTypeError, match="boolean_mask"):
        gj.gather(x, gj.tensor(np.array([True])))
    with pytest.raises(gj.ShapeError, match="does not match"):
        x[np.array([True, False])]
    with pytest.raises(gj.ShapeError, match="1-D index"):
        gj.index_select(x, 0, [[0]])
    with pytest.raises(gj.DTypeError, match="integer or boolean"):
        x[np.array([0.5])]


# ---- out-of-range indices --------------------------------------------------------------------

# (op, build) pairs: each builds the primitive from x (5, 3) float64, an int64 index vector
# i and whether it counts negative indices from the end (`wraps`: x[i]'s rule) or refuses
# them (TF1's tf.gather, PyTorch's gather, index_select, scatter_add and embedding)
OUT_OF_RANGE = {
    "gather": lambda x, i, wraps: bind("gather", x, i, axis=0, wrap_negative=wraps),
    "scatter_add": lambda x, i, wraps: bind(
        "scatter_add", gj.ones_like(x[:3]), i, x, axis=0, wrap_negative=wraps
    ),
    "take_along_axis": lambda x, i, wraps: bind(
        "take_along_axis", x[:, :1], gj.reshape(i, (-1, 1)), axis=0, wrap_negative=wraps
    ),
    "scatter_add_along_axis": lambda x, i, wraps: bind(
        "scatter_add_along_axis",
        gj.ones_like(x[:3, :1]),
        gj.reshape(i, (-1, 1)),
        x[:, :1],
        axis=0,
        wrap_negative=wraps,
    ),
}
# indices outside [-5, 5) (every rule refuses them), and inside it but negative
BAD_INDICES = [5, -6, 2**40, -(2**62), np.iinfo(np.int64).min]
NEGATIVE_INDICES = [-1, -5]
EDGES = {True: np.array([0, -5, 4]), False: np.array([0, 4, 4])}  # (in range)


def _bad(value) -> np.ndarray:
    return np.array([0, value, 1], np.int64)


def _refused(wraps: bool) -> list:
    return BAD_INDICES if wraps else BAD_INDICES + NEGATIVE_INDICES


@pytest.mark.parametrize("wraps", [True, False], ids=["wrapping", "refusing"])
@pytest.mark.parametrize("op", OUT_OF_RANGE)
@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_out_of_range_index_is_a_runtime_check_error(op, backend, wraps):
    x = np.ones((5, 3))
    lowest = -5 if wraps else 0
    g = gj.Graph()
    with g.as_default():
        xg = gj.placeholder(gj.float64, [5, 3], name="x")
        ig = gj.placeholder(gj.int64, [3], name="i")
        out = OUT_OF_RANGE[op](xg, ig, wraps)
    with gj.Session(g, backend=backend) as sess:
        sess.run(out, {xg: x, ig: EDGES[wraps]})  # the edges are in range
        for value in _refused(wraps):
            with pytest.raises(
                gj.RuntimeCheckError,
                match=rf"out of range for axis . of size 5 \(indices must be in \[{lowest}, 5\)",
            ) as info:
                sess.run(out, {xg: x, ig: _bad(value)})
            assert op in str(info.value)
            if backend == "interpreter":
                assert f"index {value} " in str(info.value)
        # the Session stays usable after a failed check
        with gj.Session(g, backend="interpreter") as reference:
            feed = {xg: np.arange(15.0).reshape(5, 3), ig: np.array([2, -1 if wraps else 4, 2])}
            np.testing.assert_array_equal(sess.run(out, feed), reference.run(out, feed))


@pytest.mark.parametrize("op", OUT_OF_RANGE)
def test_out_of_range_index_in_eager_names_the_index(op):
    x = gj.tensor(np.ones((5, 3)))
    with pytest.raises(gj.RuntimeCheckError, match="index 7 is out of range"):
        OUT_OF_RANGE[op](x, gj.tensor(_bad(7)), True)
    with pytest.raises(gj.RuntimeCheckError, match=r"index -1 is out of range.*\[0, 5\)"):
        OUT_OF_RANGE[op](x, gj.tensor(_bad(-1)), False)


# Each frontend function with an index, and whether it counts negative indices from the end:
# x[i], NumPy's take_along_axis and the gradients of x[i] do; TF1's and PyTorch's gathers,
# scatters and embeddings refuse them, as those libraries do (a -1 id is often padding
# there: counting it as the last row would be a silent wrong answer).
def _gradient_of(f):
    """x -> d sum(f(x, i)) / dx, eagerly (autograd) or in a graph (gj.gradients)."""

    def build(x, i):
        if isinstance(x, gj.Tensor):
            x = x.detach().requires_grad_()
            return gj.autograd.grad(gj.sum(f(x, i)), x)[0]
        return gj.gradients(gj.sum(f(x, i)), [x])[0]

    return build


FRONTENDS = {
    "x[i]": (lambda x, i: x[i], True),
    "gradient of x[i]": (_gradient_of(lambda x, i: x[i] * 2.0), True),
    "take_along_axis": (lambda x, i: gj.take_along_axis(x, gj.reshape(i, (-1, 1)), 0), True),
    "gather": (lambda x, i: gj.gather(x, i), False),
    "gather(axis=1)": (lambda x, i: gj.gather(gj.transpose(x), i, axis=1), False),
    "torch gather": (lambda x, i: gj.gather(x, 0, gj.reshape(i, (-1, 1))), False),
    "index_select": (lambda x, i: gj.index_select(x, 0, i), False),
    "embedding": (lambda x, i: gj.embedding(i, x), False),
    "nn.embedding_lookup": (lambda x, i: gj.nn.embedding_lookup(x, i), False),
    "scatter_add": (lambda x, i: gj.scatter_add(x, i, gj.ones_like(x[:3])), False),
    "index_add": (lambda x, i: gj.index_add(x, 0, i, gj.ones_like(x[:3])), False),
    "scatter_add_along": (
        lambda x, i: gj.scatter_add_along(x, 0, gj.reshape(i, (-1, 1)), gj.ones_like(x[:3])),
        False,
    ),
    "gradient of gather": (_gradient_of(gj.gather), False),
}


@pytest.mark.parametrize("name", FRONTENDS)
@pytest.mark.parametrize("backend", ["eager", "interpreter", "llvm"])
def test_which_functions_count_negative_indices_from_the_end(name, backend):
    build, wraps = FRONTENDS[name]
    x, i = np.arange(15.0).reshape(5, 3), np.array([0, -1, 2])
    if backend == "eager":
        run = lambda: build(gj.tensor(x), gj.tensor(i)).numpy()  # noqa: E731
    else:
        g = gj.Graph()
        with g.as_default():
            xg = gj.placeholder(gj.float64, [5, 3], name="x")
            ig = gj.placeholder(gj.int64, [3], name="i")
            out = build(xg, ig)
        session = gj.Session(g, backend=backend)
        run = lambda: session.run(out, {xg: x, ig: i})  # noqa: E731
    if wraps:
        np.testing.assert_array_equal(run(), build(gj.tensor(x), gj.tensor(i % 5)).numpy())
    else:
        with pytest.raises(gj.RuntimeCheckError, match=r"out of range.*\[0, 5\)"):
            run()


def test_out_of_range_index_through_getitem_and_gradients():
    with pytest.raises(gj.RuntimeCheckError, match="index 4 is out of range"):
        gj.tensor(X)[[0, 4]]
    with pytest.raises(gj.RuntimeCheckError):
        gj.tensor(X)[[0, 1], [2, 9]]  # the second array: checked on its own axis
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [5], name="x")
        i = gj.placeholder(gj.int32, [2], name="i")
        (dx,) = gj.gradients(gj.sum(gj.gather(x, i)), [x])
    with gj.Session(g, backend="llvm") as sess:
        with pytest.raises(gj.RuntimeCheckError):
            sess.run(dx, {x: np.ones(5), i: np.array([1, -9], np.int32)})


CUDA_SCRIPT = """
import json, numpy as np, graphjit as gj
from test_indexing import EDGES, OUT_OF_RANGE, _bad, _refused
report = {}
for op, build in OUT_OF_RANGE.items():
    for wraps in (True, False):
        g = gj.Graph()
        with g.as_default():
            x = gj.placeholder(gj.float64, [5, 3], name="x")
            i = gj.placeholder(gj.int64, [3], name="i")
            out = build(x, i, wraps)
        runs = []
        with gj.Session(g, backend="cuda") as sess, gj.Session(g, backend="interpreter") as ref:
            feed = {x: np.arange(15.0).reshape(5, 3), i: EDGES[wraps]}
            runs.append(bool(np.array_equal(sess.run(out, feed), ref.run(out, feed))))
            for value in _refused(wraps):
                try:
                    sess.run(out, {x: np.ones((5, 3)), i: _bad(value)})
                    runs.append("no error")
                except gj.RuntimeCheckError as e:
                    runs.append(str(e))
        report[f"{op} {wraps}"] = runs
print("REPORT" + json.dumps(report))
"""


def test_out_of_range_index_on_cuda_simulator():
    env = {
        **os.environ,
        "NUMBA_ENABLE_CUDASIM": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "tests"), str(ROOT / "tests" / "static"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CUDA_SCRIPT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.split("REPORT", 1)[1])
    assert len(report) == 2 * len(OUT_OF_RANGE)
    for key, (in_range_ok, *errors) in report.items():
        op, wraps = key.split()
        assert in_range_ok, key
        lowest = -5 if wraps == "True" else 0
        for value, message in zip(_refused(wraps == "True"), errors, strict=True):
            assert f"index {value} is out of range for axis" in message and op in message, message
            assert f"indices must be in [{lowest}, 5)" in message, message


# ---- PyTorch as the reference -----------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_against_torch_gather_index_select_and_scatters(torch):
    x = RNG.normal(size=(4, 6))
    index = RNG.integers(0, 6, size=(4, 3))
    rows = np.array([3, 0, 3, 1])
    src = RNG.normal(size=(4, 3))
    t = torch.tensor
    pairs = [
        (gj.gather_along(gj.tensor(x), 1, gj.tensor(index)), torch.gather(t(x), 1, t(index))),
        (gj.index_select(gj.tensor(x), 0, gj.tensor(rows)), torch.index_select(t(x), 0, t(rows))),
        (
            gj.index_add(gj.tensor(x), 0, gj.tensor(rows), gj.tensor(x), alpha=3),
            torch.index_add(t(x), 0, t(rows), t(x), alpha=3),
        ),
        (
            gj.scatter_add_along(gj.tensor(x), 1, gj.tensor(index), gj.tensor(src)),
            torch.scatter_add(t(x), 1, t(index), t(src)),
        ),
        (
            gj.take_along_axis(gj.tensor(x), gj.tensor(index[:1]), 1),
            torch.take_along_dim(t(x), t(index[:1]), dim=1),
        ),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)


def test_negative_indices_refused_where_torch_refuses_them(torch):
    """PyTorch's gather, index_select, scatter_add, index_add and embedding refuse -1;
    x[i] and take_along_dim count it from the end. graphjit's functions of those names do
    the same (a RuntimeCheckError where PyTorch raises)."""
    x, i = np.arange(15.0).reshape(5, 3), np.array([0, -1, 2])
    tx, ti, col = torch.tensor(x), torch.tensor(i), torch.tensor(i).reshape(-1, 1)
    ones = torch.ones(3, 3, dtype=torch.float64)
    torch_calls = {
        "torch gather": lambda: torch.gather(tx, 0, col),
        "index_select": lambda: torch.index_select(tx, 0, ti),
        "embedding": lambda: torch.nn.functional.embedding(ti, tx),
        "index_add": lambda: tx.index_add(0, ti, ones),
        "scatter_add_along": lambda: tx.scatter_add(0, col, ones[:, :1]),
        "x[i]": lambda: tx[ti],
        "take_along_axis": lambda: torch.take_along_dim(tx, col, 0),
    }
    for name, call in torch_calls.items():
        build, wraps = FRONTENDS[name]
        if wraps:
            np.testing.assert_array_equal(
                build(gj.tensor(x), gj.tensor(i)).numpy(), call().numpy(), err_msg=name
            )
            continue
        with pytest.raises((IndexError, RuntimeError)):
            call()
        with pytest.raises(gj.RuntimeCheckError):
            build(gj.tensor(x), gj.tensor(i))


def test_against_torch_gather_gradient(torch):
    x = RNG.normal(size=(3, 5))
    index = RNG.integers(0, 5, size=(3, 7))
    ours = gj.tensor(x, requires_grad=True)
    gj.sum(gj.square(gj.gather_along(ours, 1, gj.tensor(index)))).backward()
    theirs = torch.tensor(x, requires_grad=True)
    torch.gather(theirs, 1, torch.tensor(index)).square().sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)


# ---- embeddings ------------------------------------------------------------------------------


def test_embedding_lookup_and_gradient_static_and_eager():
    weight = RNG.normal(size=(10, 4))
    tokens = np.array([[1, 2, 2], [9, 0, 1]])
    g = gj.Graph()
    with g.as_default():
        w = gj.Variable(weight, name="w")
        ids = gj.placeholder(gj.int64, [None, 3], name="ids")
        loss = gj.sum(gj.square(gj.embedding(ids, w)))
        (dw,) = gj.gradients(loss, [w])
    with gj.Session(g, backend="llvm") as sess:
        got_loss, got_dw = sess.run([loss, dw], {ids: tokens})
    expected_dw = np.zeros_like(weight)
    np.add.at(expected_dw, tokens, 2 * weight[tokens])
    np.testing.assert_allclose(got_loss, np.sum(weight[tokens] ** 2))
    np.testing.assert_allclose(got_dw, expected_dw)
    eager_w = gj.tensor(weight, requires_grad=True)
    gj.sum(gj.square(gj.embedding(gj.tensor(tokens), eager_w))).backward()
    np.testing.assert_allclose(eager_w.grad.numpy(), expected_dw)


def test_embedding_padding_row_gets_no_gradient(torch):
    weight = RNG.normal(size=(6, 3))
    tokens = np.array([0, 2, 2, 5])
    ours = gj.tensor(weight, requires_grad=True)
    gj.sum(gj.embedding(gj.tensor(tokens), ours, padding_idx=2) * 2.0).backward()
    theirs = torch.tensor(weight, requires_grad=True)
    (
        torch.nn.functional.embedding(torch.tensor(tokens), theirs, padding_idx=2) * 2.0
    ).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy())


# ---- large tensors, and a scatter's zeros on every run ---------------------------------------


def test_large_gather_and_scatter_on_llvm():
    """More elements than one Ctrl-C polling chunk; the scatter's result is zeroed on each
    run (its arena bytes are reused)."""
    table = RNG.normal(size=(1000, 96))
    g = gj.Graph()
    with g.as_default():
        w = gj.placeholder(gj.float64, table.shape, name="w")
        i = gj.placeholder(gj.int64, [2048], name="i")
        rows = w[i]  # (negative indices count from the end: NumPy's rule)
        summed = gj.unsorted_segment_sum(rows, i, 1000)
    with gj.Session(g, backend="llvm") as sess:
        for seed in range(2):
            ids = np.random.default_rng(seed).integers(-1000, 1000, 2048)
            got_rows, got_sum = sess.run([rows, summed], {w: table, i: ids})
            np.testing.assert_array_equal(got_rows, table[ids])
            expected = np.zeros_like(table)
            kept = ids >= 0  # (segment sums drop negative ids, as TF1's do)
            np.add.at(expected, ids[kept], table[ids[kept]])
            np.testing.assert_allclose(got_sum, expected, rtol=1e-12)


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_graph_masks_of_hostile_shapes_match_numpy(backend):
    """0-d and zero-size masks, 1-d masks of unknown length (their positions are their
    coordinates), NaN/inf values picked; a mask longer than x is the gather's
    RuntimeCheckError on every backend."""
    g = gj.Graph()
    with g.as_default():
        scalar = gj.placeholder(gj.bool_, [], name="scalar")
        empty = gj.placeholder(gj.bool_, [3, 0], name="empty")
        rows = gj.placeholder(gj.bool_, [0, 3], name="rows")
        x = gj.placeholder(gj.float32, [None], name="x")
        m = gj.placeholder(gj.bool_, [None], name="m")
        fetches = [gj.where(scalar), gj.where(empty), gj.where(rows), x[m], gj.sum(x[m])]
    values = np.array([np.nan, np.inf, 1.0, -np.inf], np.float32)
    mask = np.array([False, True, True, False])
    feed = {
        scalar: np.bool_(True), empty: np.zeros((3, 0), bool), rows: np.zeros((0, 3), bool),
        x: values, m: mask,
    }  # fmt: skip
    expected = [
        np.argwhere(np.bool_(True)), np.argwhere(np.zeros((3, 0))), np.argwhere(np.zeros((0, 3))),
        values[mask], values[mask].sum(),
    ]  # fmt: skip
    with gj.Session(g, backend=backend) as sess:
        for got, want in zip(sess.run(fetches, feed), expected, strict=True):
            assert np.shape(got) == np.shape(want)
            np.testing.assert_array_equal(got, want)
        with pytest.raises(gj.RuntimeCheckError, match="out of range"):
            sess.run(fetches[3], {**feed, m: np.ones(5, bool)})
