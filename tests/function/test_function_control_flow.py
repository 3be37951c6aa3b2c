"""gj.function on control-flow programs equals the same program run eagerly: the canonical
`for i in range(n): x = x*2 if sum(x) > 0 else x+1`, written three ways."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj


def python_loop(x, n: int):
    """A Python loop over a constant n (unrolled when traced), branching with gj.cond."""
    for _ in range(n):
        x = gj.cond(gj.sum(x) > 0, lambda x=x: x * 2, lambda x=x: x + 1)
    return x


def graph_loop(x, n):
    """The loop as gj.while_loop, so n can be a tensor: one trace for every n."""
    body = lambda i, x: (i + 1, gj.cond(gj.sum(x) > 0, lambda: x * 2, lambda: x + 1))
    return gj.while_loop(lambda i, x: i < n, body, [0, x])[1]


def reference(x, n: int):
    x = np.array(x, np.float64)
    for _ in range(n):
        x = x * 2 if x.sum() > 0 else x + 1
    return x


CASES = [([1.0, 2.0], 3), ([-3.0, 0.5], 4), ([-5.0, -1.0, -2.0], 3), ([-1.0, 4.0], 0)]


@pytest.mark.parametrize("start, n", CASES)
def test_python_loop_with_cond(start, n):
    x = np.array(start)
    got = gj.function(python_loop, backend="interpreter")(x, n)
    np.testing.assert_array_equal(got, reference(start, n))
    np.testing.assert_array_equal(python_loop(gj.tensor(x), n).numpy(), got)  # eager


def test_while_loop_traces_once_for_every_trip_count():
    compiled = gj.function(graph_loop)  # the default (LLVM) backend
    for start, n in CASES:
        np.testing.assert_array_equal(compiled(np.array(start), np.int64(n)), reference(start, n))
        eager = graph_loop(gj.tensor(np.array(start)), gj.tensor(np.int64(n)))
        np.testing.assert_array_equal(eager.numpy(), reference(start, n))
    assert compiled.trace_count == 2  # one per input length (2 and 3)


def test_gradient_of_the_loop_through_a_compiled_call_equals_eager():
    compiled = gj.function(graph_loop, backend="interpreter")
    for start, n in CASES:
        x = gj.tensor(np.array(start), requires_grad=True)
        gj.sum(compiled(x, np.int64(n)) ** 2).backward()
        y = gj.tensor(np.array(start), requires_grad=True)
        gj.sum(graph_loop(y, gj.tensor(np.int64(n))) ** 2).backward()
        np.testing.assert_array_equal(x.grad.numpy(), y.grad.numpy())
