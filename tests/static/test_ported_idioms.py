"""Idioms of TF1 and PyTorch programs that graphjit either runs as written or refuses with a
GraphjitError saying what to write instead -- never a raw TypeError from inside it."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj

X = np.arange(6, dtype=np.float32).reshape(2, 3)


def run(fn, *arrays, backend="interpreter"):
    g = gj.Graph()
    with g.as_default():
        holders = [gj.placeholder(a.dtype, [None, *a.shape[1:]]) for a in arrays]
        out = fn(*holders)
    return gj.Session(g, backend=backend).run(out, dict(zip(holders, arrays)))


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_tf1_paddings_and_torch_pads(backend):
    want = np.pad(X, [[1, 0], [0, 2]], constant_values=7)
    tf1 = run(
        lambda x: gj.pad(x, [[1, 0], [0, 2]], "CONSTANT", constant_values=7), X, backend=backend
    )
    keywords = run(lambda x: gj.pad(x, paddings=np.array([[1, 0], [0, 2]]), constant_values=7), X)
    torch_style = run(lambda x: gj.pad(x, (0, 2, 1, 0), value=7), X, backend=backend)
    for got in (tf1, keywords, torch_style):
        np.testing.assert_array_equal(got, want)
    for bad in ([[1, 0]], [[1, 0], [0, 1], [1, 1]]):
        with pytest.raises(gj.ShapeError, match=r"one \[before, after\] pair per axis"):
            gj.pad(gj.tensor(X), bad)
    with pytest.raises(gj.GraphjitError, match="only mode='constant'"):
        gj.pad(gj.tensor(X), [[1, 0], [0, 1]], "REFLECT")


def test_shapes_computed_by_the_graph():
    """TF1's reshape(x, [tf.shape(x)[0], 6]) runs (the one computed dimension is the one the
    reshape infers); shapes it cannot infer, and computed shapes elsewhere, say what to
    write instead."""
    x3 = np.ones((4, 2, 3), np.float32)
    for backend in ("interpreter", "llvm"):
        got = run(lambda x: gj.reshape(x, [gj.shape(x)[0], 6]), x3, backend=backend)
        np.testing.assert_array_equal(got, x3.reshape(4, 6))
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 2, 3])
        with pytest.raises(gj.ShapeError, match="more than one dimension is unknown"):
            gj.reshape(x, [gj.shape(x)[0], -1])
        for build in (
            lambda: gj.zeros(gj.shape(x)),
            lambda: gj.full(gj.shape(x), 2.0),
            lambda: gj.broadcast_to(1.0, gj.shape(x)),
            lambda: gj.tile(x, gj.shape(x)),
            lambda: gj.reshape(x, gj.shape(x)),
        ):
            with pytest.raises(gj.ShapeError, match="shape computed by the graph"):
                build()


def test_empty_lists_and_empty_axes():
    for fn in (gj.concat, gj.stack):
        with pytest.raises(gj.ShapeError, match="at least one tensor"):
            fn([], 0)
    empty = gj.ones(2, 0)
    assert empty.softmax(-1).shape == (2, 0) and gj.log_softmax(empty, axis=1).shape == (2, 0)
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(gj.logsumexp(empty, dim=1).numpy(), [-np.inf, -np.inf])
    for backend in ("interpreter", "llvm"):
        got = run(
            lambda x: [gj.reduce_logsumexp(x, axis=1), gj.softmax(x)],
            np.ones((2, 0)),
            backend=backend,
        )
        np.testing.assert_array_equal(got[0], [-np.inf, -np.inf])
        assert got[1].shape == (2, 0)


def test_torch_spellings_with_other_meanings_in_tf1():
    a, b = gj.tensor([1.0, 5.0, 3.0]), gj.tensor([4.0, 2.0, 3.0])
    assert gj.max(a, b).tolist() == [4.0, 5.0, 3.0]  # torch.max(a, b): elementwise
    assert gj.min(a, b).tolist() == [1.0, 2.0, 3.0]
    x, index = gj.tensor([[1.0, 2.0], [3.0, 4.0]]), gj.tensor([[0, 0], [1, 0]])
    assert gj.gather(x, 1, index).tolist() == [[1.0, 1.0], [4.0, 3.0]]  # torch.gather
    assert gj.gather(x, [1], 1).tolist() == [[2.0], [4.0]]  # tf.gather(params, indices, axis)
    y = gj.ones(2, 1, 3)
    assert y.squeeze(1).shape == (2, 3) and y.squeeze(0).shape == (2, 1, 3)  # torch: no-op
    assert y.squeeze((0, 1)).shape == (2, 3)
    with pytest.raises(gj.ShapeError, match="cannot squeeze axis 0"):
        gj.squeeze(y, 0)  # tf.squeeze / np.squeeze refuse


def test_eager_only_calls_on_graph_tensors_say_what_to_do():
    def step(x):
        y = x * 2
        with pytest.raises(gj.GraphjitError, match="has no tape; take gradients with gj.gradients"):
            gj.sum(y).backward()
        for method in ("numpy", "tolist", "item"):
            with pytest.raises(gj.GraphjitError, match=f"{method}\\(\\) reads a tensor's value"):
                getattr(y, method)()
        with pytest.raises(gj.GraphjitError, match="cannot be changed in place"):
            y[0] = 0.0
        return y

    assert gj.function(step)(gj.ones(2)).tolist() == [2.0, 2.0]


def test_eager_item_assignment_errors_are_graphjit_errors():
    """As reading x[5] is: a ShapeError (NumPy's IndexError and ValueError escaped)."""
    x = gj.zeros(3)
    for key, value in [(5, 1.0), (gj.tensor([True, False]), 1.0), ((0, 1), 1.0)]:
        with pytest.raises(gj.ShapeError, match=r"x\[...\] = value"):
            x[key] = value
    with pytest.raises(gj.ShapeError, match="could not broadcast"):
        x[0:2] = gj.tensor([1.0, 2.0, 3.0])
    with pytest.raises(gj.ShapeError, match="out of bounds"):
        x[5]
    x[gj.tensor([True, False, True])] = 5.0
    assert x.tolist() == [5.0, 0.0, 5.0]


def test_copy_converts_to_the_destination_dtype_as_torch():
    x = gj.zeros(3, dtype=gj.int64)
    x.copy_(gj.tensor([1.5, -2.5, 3.7]))  # (float32 into int64: truncated, as torch)
    assert x.tolist() == [1, -2, 3] and x.dtype == gj.int64
    w = gj.tensor([1.0, 2.0], requires_grad=True)  # float32 into float64, differentiably
    z = gj.zeros(2, dtype=gj.float64).clone()
    z.copy_(w)
    gj.sum(z * z).backward()
    assert z.dtype == gj.float64 and w.grad.tolist() == [2.0, 4.0]
    with pytest.raises(gj.DTypeError, match="cannot be stored"):
        x.add_(gj.tensor([0.5, 0.5, 0.5]))  # torch refuses a float result in place too
