"""Run one graph on a backend and on the interpreter (the NumPy oracle) and compare:
float64 to 1e-12, float32 to 1e-5, integers and booleans exactly, dtypes and shapes equal,
NaN where the interpreter has NaN. Shared by the llvm tests and the simulated cuda tests
(it imports no backend, so it is safe in the simulator's process)."""

from __future__ import annotations

import numpy as np

import graphjit as gj
from graphjit.nest import flatten
from op_table import tolerance


def run_on(backend: str, graph, fetches, feed_dict=None, runs: int = 1):
    """The results of `runs` runs of `fetches` in one Session of `backend` (a list when
    runs > 1: variables carry over between runs)."""
    with gj.Session(graph, backend=backend) as sess:
        results = [sess.run(fetches, feed_dict) for _ in range(runs)]
    return results[0] if runs == 1 else results


def assert_matches(got, expected, what: str = "", signed_zeros: bool = False, **tol) -> None:
    """`got` (a backend) equals `expected` (the interpreter) in shape, dtype and value;
    with `signed_zeros`, zeros must also agree in sign (-0.0 is not 0.0)."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    if expected.dtype.kind == "f":
        tol = {**tolerance(expected.dtype), **tol}
        np.testing.assert_allclose(got, expected, equal_nan=True, err_msg=what, **tol)
        if signed_zeros:
            zeros = expected == 0
            np.testing.assert_array_equal(
                np.signbit(got[zeros]), np.signbit(expected[zeros]), err_msg=f"{what}: sign of 0"
            )
    else:
        np.testing.assert_array_equal(got, expected, err_msg=what)


def compare_on(backend: str, graph, fetches, feed_dict=None, runs=1, what="", **kw):
    """Run on `backend` and the interpreter; assert every fetched leaf matches; returns
    the backend's results."""
    expected = run_on("interpreter", graph, fetches, feed_dict, runs)
    got = run_on(backend, graph, fetches, feed_dict, runs)
    got_leaves, expected_leaves = flatten(got)[0], flatten(expected)[0]
    assert len(got_leaves) == len(expected_leaves)
    for k, (g, e) in enumerate(zip(got_leaves, expected_leaves, strict=True)):
        assert_matches(g, e, f"{what} fetch {k}", **kw)
    return got
