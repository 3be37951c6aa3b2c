"""gj.function's tracing: one trace per signature, retraces and their explanation, what
counts as a constant, results in the mode of the arguments, and the error for Python
control flow on a traced value. The interpreter backend where compiling is not the point."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj


def traced(fn):
    return gj.function(fn, backend="interpreter")


def test_same_signature_traces_once_and_new_shapes_or_dtypes_retrace():
    @traced
    def f(x, y):
        return x * y + 1

    a = np.arange(3.0)
    np.testing.assert_array_equal(f(a, a), a * a + 1)
    f(a + 1, a - 1)
    f(a.tolist() and np.ones(3), np.zeros(3))
    assert f.trace_count == 1
    f(np.ones(4), np.ones(4))  # new shape
    f(np.ones(3, np.float32), np.ones(3, np.float32))  # new dtype
    assert f.trace_count == 3
    f(np.ones(4), np.ones(4))
    assert f.trace_count == 3


def test_python_constants_are_part_of_the_signature():
    @traced
    def scale(x, factor, mode="mul"):
        return x * factor if mode == "mul" else x + factor

    x = np.ones(2)
    assert scale(x, 2.0).tolist() == [2.0, 2.0]
    assert scale(x, 2.0).tolist() == [2.0, 2.0] and scale.trace_count == 1
    assert scale(x, 3.0).tolist() == [3.0, 3.0]
    assert scale(x, 3.0, mode="add").tolist() == [4.0, 4.0]
    assert scale(x, 3).tolist() == [3.0, 3.0]  # int 3 is another constant than float 3.0
    assert scale.trace_count == 4


def test_explain_retrace_names_the_argument_that_changed(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHJIT_EXPLAIN_RETRACE", "1")

    @traced
    def f(x, n):
        return x * n

    f(np.ones(3), 2)
    assert capsys.readouterr().err == ""  # the first trace is no retrace
    f(np.ones(4), 2)
    f(np.ones(4, np.float32), 5)
    err = capsys.readouterr().err.splitlines()
    assert (
        "argument 'x' changed from float64 tensor of shape (3,) to float64 tensor of shape (4,)"
        in err[0]
    )
    assert "to float32 tensor of shape (4,)" in err[1]
    assert "argument 'n' changed from constant 2 to constant 5" in err[1]
    assert f.retrace_reasons == [line for line in err]


def test_retrace_reasons_are_kept_without_printing(capsys):
    f = traced(lambda xs: xs[0] + xs[1])
    f([np.ones(2), np.ones(2)])
    f((np.ones(2), np.ones(2)))
    assert capsys.readouterr().err == ""
    assert "structure changed" in f.retrace_reasons[0]


def test_python_if_on_a_traced_value_names_the_users_line():
    @traced
    def relu_or_shift(x):
        if gj.sum(x) > 0:  # the line the error must name
            return x
        return x + 1

    with pytest.raises(gj.GraphjitError) as info:
        relu_or_shift(np.ones(2))
    message = str(info.value)
    assert (
        f"{__file__}:" in message and "if gj.sum(x) > 0:  # the line the error must name" in message
    )
    assert "gj.cond" in message and "gj.while_loop" in message and "relu_or_shift" in message


def test_python_while_on_a_traced_value_is_refused_too():
    @traced
    def halve(x):
        while gj.max(x) > 1:
            x = x / 2
        return x

    with pytest.raises(gj.GraphjitError, match="while gj.max"):
        halve(np.array([8.0]))


def test_nested_structures_and_non_tensor_outputs():
    @traced
    def f(batch, scale):
        return {"sum": batch["a"] + batch["b"][0], "scaled": [batch["a"] * scale], "note": "ok"}

    out = f({"a": np.ones(2), "b": (np.full(2, 2.0),)}, 3.0)
    assert out["note"] == "ok" and out["sum"].tolist() == [3.0, 3.0]
    assert out["scaled"][0].tolist() == [3.0, 3.0]


def test_tensor_arguments_give_tensor_results_numpy_gives_numpy():
    f = traced(lambda x: x * 2)
    assert isinstance(f(np.ones(2)), np.ndarray)
    out = f(gj.ones(2, dtype="float64"))
    assert isinstance(out, gj.Tensor) and out.tolist() == [2.0, 2.0] and out.grad_fn is None
    assert f.trace_count == 1  # a gj.Tensor and an array of one shape and dtype share a trace


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_results_never_alias_the_inputs(backend):
    identity = gj.function(lambda x: x, backend=backend)
    for _ in range(3):  # the first call traces, the later ones take the positional fast path
        a = np.ones(3)
        out = identity(a)
        out[0] = 5.0
        assert a[0] == 1.0
        view = np.ones(4)[1:]
        identity(view)[0] = 5.0
        assert view[0] == 1.0


def test_repeated_positional_calls_give_what_the_first_gave():
    """Positional arrays and tensors (the fast path after the first call) and the
    same function's other call forms agree, and tensors that need gradients still get
    them: the fast path is only for calls with nothing to record."""
    f = gj.function(lambda x, y: x * y + 1.0)
    a, b = np.arange(3.0), np.full(3, 2.0)
    for _ in range(3):
        np.testing.assert_array_equal(f(a, b), a * b + 1)
        np.testing.assert_array_equal(f(x=a, y=b), a * b + 1)
        out = f(gj.tensor(a), gj.tensor(b))
        assert isinstance(out, gj.Tensor) and out.grad_fn is None
        np.testing.assert_array_equal(out.numpy(), a * b + 1)
    x = gj.tensor(a, requires_grad=True)
    gj.sum(f(x, gj.tensor(b))).backward()
    np.testing.assert_array_equal(x.grad.numpy(), b)
    f(np.ones(4), np.ones(4))  # a new shape: traced again, then fast too
    assert f.trace_count == 2
    np.testing.assert_array_equal(f(np.ones(4), np.ones(4)), np.full(4, 2.0))


def test_keyword_calls_on_the_fast_path_bind_by_name():
    """Keyword calls repeat too (keyed by their names in the call's order): each value
    goes to its parameter whatever the order of the keywords, and equal values that
    happen to be one object (small ints) do not make one order stand for another."""

    @traced
    def f(x, a=1, b=10, *, scale=1.0):
        return (x * a + b) * scale

    x = np.arange(3.0)
    for _ in range(3):
        np.testing.assert_array_equal(f(x, a=2, b=3), x * 2 + 3)
        np.testing.assert_array_equal(f(x, b=3, a=2), x * 2 + 3)
        np.testing.assert_array_equal(f(x, b=5, a=5), x * 5 + 5)  # one object twice
        np.testing.assert_array_equal(f(x, b=4, a=6), x * 6 + 4)
        np.testing.assert_array_equal(f(b=7, x=x), x + 7)
        np.testing.assert_array_equal(f(x, scale=np.float64(0.5)), (x + 10) * 0.5)
        np.testing.assert_array_equal(f(x=np.ones(2), scale=2.0), np.full(2, 22.0))

    schedule = traced(lambda x, lr=0.1, step=0: x * lr + step)
    for i in range(6):  # numbers by keyword become values of the call as positional ones do
        np.testing.assert_array_equal(schedule(x, lr=0.5**i, step=i), x * 0.5**i + i)
    assert schedule.trace_count == 2

    @traced
    def g(x, **options):
        return x * options["a"] + options["b"]

    for a, b in [(2, 3), (3, 3), (5, 2)]:
        np.testing.assert_array_equal(g(x, b=b, a=a), x * a + b)
        np.testing.assert_array_equal(g(x, a=a, b=b), x * a + b)


def test_numpy_scalars_are_tensors_python_numbers_constants():
    f = traced(lambda a: a * 2)
    assert f(np.float64(1.5)) == 3.0 and f(np.float64(2.5)) == 5.0
    assert f.trace_count == 1


def test_unhashable_non_tensor_arguments_are_refused():
    f = traced(lambda x, options: x)
    with pytest.raises(gj.GraphjitError, match=r"argument 'options\['a'\]' \(bytearray\)"):
        f(np.ones(1), {"a": bytearray(b"x")})


def test_a_function_called_while_tracing_is_inlined():
    inner = traced(lambda x: x + 1)
    outer = traced(lambda x: inner(x) * 2)
    assert outer(np.zeros(2)).tolist() == [2.0, 2.0]
    assert inner.trace_count == 0 and outer.trace_count == 1


def test_concrete_gives_the_graph_and_session():
    f = traced(lambda x: gj.exp(x))
    concrete = f.concrete(np.ones((2, 3), np.float32))
    assert "exp" in concrete.graph.as_text() and concrete.session.backend == "interpreter"
    assert f.concrete(np.zeros((2, 3), np.float32)) is concrete


def test_variables_made_inside_keep_their_state_per_signature():
    @traced
    def count(x):
        calls = gj.Variable(0, name="calls")
        calls.assign_add(1)
        return x + gj.cast(calls.value, "float64")

    assert count(np.zeros(1)).tolist() == [0.0]
    assert count(np.zeros(1)).tolist() == [1.0]  # each run sees the value at its start


def test_the_default_backend_is_llvm():
    f = gj.function(lambda x: gj.tanh(x) * 2)
    x = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(f(x), np.tanh(x) * 2, rtol=1e-12)
    assert f.concrete(x).session.backend == "llvm"


def test_where_with_constant_branches_follows_the_condition_mode():
    clip_sign = lambda x: gj.where(x > 0, 1.0, -1.0)  # both branches Python numbers
    x = np.array([2.0, -3.0])
    assert clip_sign(gj.tensor(x)).tolist() == [1.0, -1.0]  # eager
    assert traced(clip_sign)(x).tolist() == [1.0, -1.0]  # graph


def test_reduce_retracing_traces_once_with_the_differing_dimensions_unknown():
    """TF2's reduce_retracing: the second batch size traces with the batch dimension
    unknown, and every later size runs that trace, compiled once (llvm), with the
    results of a trace per shape; a module's training step likewise."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 8)).astype(np.float32)

    @gj.function(reduce_retracing=True)
    def f(x, scale):
        return gj.reduce_mean(gj.nn.relu(x @ w), axis=0) * scale

    for n in [4, 9, 30, 2, 100]:
        x = rng.normal(size=(n, 16)).astype(np.float32)
        want = np.maximum(x @ w, 0).mean(axis=0) * 2.0
        np.testing.assert_allclose(f(x, 2.0), want, rtol=1e-5, atol=1e-6)
    assert f.trace_count == 2
    assert f.concrete(np.ones((7, 16), np.float32), 2.0).shapes == [(None, 16)]
    f(np.ones((3, 8), np.float32) @ np.ones((8, 16), np.float32), 3.0)  # a new constant
    assert f.trace_count == 3


def test_reduce_retracing_falls_back_to_a_trace_per_shape_when_it_needs_the_size():
    """A function that computes with a dimension cannot trace with it unknown: it traces
    per shape, as without the option, and says why it traced again."""

    @gj.function(reduce_retracing=True)
    def f(x):
        return gj.reshape(x, (x.shape[0] * 2, -1))

    for n in [2, 4, 6, 4]:
        assert f(np.ones((n, 6), np.float32)).shape == (2 * n, 3)
    assert f.trace_count == 4  # 2, the failed relaxed trace at 4, then 4 and 6
    assert "(4, 6)" in f.retrace_reasons[0] and "(6, 6)" in f.retrace_reasons[-1]
