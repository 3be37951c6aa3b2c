"""gj.function's Python number arguments: a constant of the first trace; once a call
passes another value, traced once more as a value of the call (frontend/traced_numbers.py),
with the results -- or the errors -- a trace per value would give; traced per value where
the function needs the value itself (a Python `if`, `float()`, a comparison, a size)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import graphjit as gj

RATES = [0.1, 0.2, 0.35, 1e-3, -0.0, 0.0, 7.5, 1e30, float("inf"), float("nan"), -2.5]
COUNTS = [3, 0, -7, 100, 1, 2**31 - 1, -(2**31), 2**31, 2**40, -(2**63), 2**64]


def per_value(fn, *args, backend="llvm"):
    """What a trace for this very value gives (a fresh function: one trace, the number a
    constant of it)."""
    return gj.function(fn, backend=backend)(*args)


def outcome(run, *args):
    """The result, or the error, of `run(*args)`: a value to compare."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # (NumPy's overflow in a cast)
        try:
            return run(*args)
        except (gj.GraphjitError, ArithmeticError, TypeError) as e:
            return type(e), str(e)


def assert_same(got, want, rtol=0.0):
    assert type(got) is type(want), (got, want)
    if isinstance(got, tuple) and isinstance(got[0], type):  # an error: the same one
        assert got == want
        return
    if isinstance(got, (list, tuple)):
        for g, w in zip(got, want, strict=True):
            assert_same(g, w, rtol)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if rtol:
        np.testing.assert_allclose(got, want, rtol=rtol)
    else:
        np.testing.assert_array_equal(got, want)  # (the same bits; NaN where NaN)


# Expressions over a number (`lr`, `n`) and a tensor `x`: Python's arithmetic on the
# number, the number weak beside the tensor, graphjit functions applied to it.
EXPRESSIONS = {
    "scale": lambda x, lr: x * lr,
    "python arithmetic first": lambda x, lr: x * (1 - lr) / (lr + 3) - lr * lr * 0.5,
    "reflected": lambda x, lr: (2.0 - lr) * x + 1 / (lr + 4) + (-lr) * x + abs(-lr) * x,
    "powers": lambda x, lr: x * (lr**2 + 2**lr + 0.5**lr),
    "floor division, modulo": lambda x, lr: x + lr // 0.3 + lr % 0.3 + (-lr) % 0.7,
    "graphjit functions": lambda x, lr: gj.maximum(x, lr) + gj.exp(lr * 0.01) + gj.sqrt(lr),
    "where": lambda x, lr: gj.where(x > 1, x, lr),
    "nested arguments": lambda x, hp: x * hp["lr"] + hp["decay"][0],
    "two numbers": lambda x, a, b: x * a + b,
    "integer arithmetic": lambda x, n: x * (n // 3) + n % 4 - (n * n) // 5 + abs(-n),
    "true division": lambda x, n: x / (n + 0.5) + n / 4,
    "a loop bound": lambda x, n: gj.while_loop(
        lambda i, v: i < n % 5, lambda i, v: (i + 1, v + 1), [0, x]
    )[1],
}
INTEGER = {"integer arithmetic", "true division", "a loop bound"}
# Where the same bits are not to be had: a float64 power is not exactly rounded (NumPy's
# and C's differ by an ulp), and a trace per value folds `gj.exp(constant)` with NumPy's
# exp where the traced number's runs llvm's (within an ulp of float32).
TOLERANCE = {
    ("powers", "interpreter"): 4e-16,
    ("powers", "llvm"): 4e-16,
    ("graphjit functions", "llvm"): 2.4e-7,
}


def arguments(name, x, number):
    if name == "nested arguments":
        return (x, {"lr": number, "decay": [number * 0.5]})
    if name == "two numbers":
        return (x, number, 1 - number)
    return (x, number)


@pytest.mark.filterwarnings("ignore::graphjit.errors.RetraceWarning")  # (refused ints: 8+)
@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int8])
@pytest.mark.parametrize("name", EXPRESSIONS)
def test_a_number_that_changes_is_traced_once_more_and_gives_what_a_trace_per_value_gives(
    name, dtype, backend
):
    fn = EXPRESSIONS[name]
    x = np.array([-2, 0, 1, 3], dtype)
    compiled = gj.function(fn, backend=backend)
    values = COUNTS if name in INTEGER else RATES + COUNTS[:5]
    refused = 0  # values whose trace per value raises (each traced so, again)
    for number in values:
        args = arguments(name, x, number)
        got = outcome(compiled, *args)
        want = outcome(lambda *a: per_value(fn, *a, backend=backend), *args)
        refused += isinstance(want, tuple)
        assert_same(got, want, rtol=TOLERANCE.get((name, backend), 0.0))
    families = len({type(v) for v in values})  # (an int and a float select other traces)
    if name != "powers":  # (2 ** n is a float for n < 0: a trace per such value)
        assert compiled.trace_count <= 2 * families + refused
    assert "with it as a value of the call" in compiled.retrace_reasons[0]


def test_a_schedule_of_floats_and_a_step_counter_take_two_traces():
    x = np.arange(4, dtype=np.float32)
    f = gj.function(lambda x, lr, step: x * lr / (1 - 0.9**step), backend="interpreter")
    for step in range(1, 30):
        lr = 0.1 * 0.95**step
        want = x * np.float32(lr) / np.float32(1 - 0.9**step)  # (Python's arithmetic, rounded)
        np.testing.assert_array_equal(f(x, lr, step), want)
    assert f.trace_count == 2


def test_an_int_its_dtype_cannot_hold_raises_as_a_trace_per_value_would():
    """`x + n` with int32 x: n = 2**40 is refused where the constant would be made; the
    trace that takes n as a value goes on serving the values that fit."""
    f = gj.function(lambda x, n: x + n, backend="interpreter")
    x = np.zeros(2, np.int32)
    assert f(x, 1).tolist() == [1, 1] and f(x, 2).tolist() == [2, 2]
    with pytest.raises(gj.DTypeError, match="does not fit int32"):
        f(x, 2**40)
    assert f(x, -(2**31)).tolist() == [-(2**31)] * 2 and f(x, 7).tolist() == [7, 7]
    assert f.trace_count == 3  # (the first value's, the traced one's, and the refused one's)


NEEDS_THE_VALUE = {
    "if": lambda x, lr: x * lr if lr > 0 else x,
    "equality": lambda x, lr: x if lr == 0.5 else -x,
    "math": lambda x, lr: x * math.sqrt(lr),
    "float()": lambda x, lr: x * float(lr),
    "format": lambda x, lr: gj.identity(x * lr, name=f"scaled_{lr:.2f}"),
    "numpy scalar": lambda x, lr: x * np.float32(lr),
    "numpy": lambda x, lr: x * np.asarray(lr),
    "numpy scalar first": lambda x, lr: x * (np.float32(2) * lr),
    "a range": lambda x, lr: x * len(range(int(lr * 4))),
    "returned": lambda x, lr: (x * lr, lr * 2),
    "dict key": lambda x, lr: x * {0.25: 1.0, 0.5: 2.0}.get(lr, 3.0),
    "a float method": lambda x, lr: x * lr.as_integer_ratio()[1],
}


@pytest.mark.parametrize("name", NEEDS_THE_VALUE)
def test_a_function_that_needs_the_floats_value_is_traced_per_value(name):
    fn = NEEDS_THE_VALUE[name]
    x = np.arange(4, dtype=np.float32)
    compiled = gj.function(fn, backend="interpreter")
    values = [0.25, 0.5, 0.75, 0.5, 0.25]
    for lr in values:
        assert_same(compiled(x, lr), per_value(fn, x, lr, backend="interpreter"))
    assert compiled.trace_count == 3  # (one per distinct value)
    assert "traced per value: the function needs it" in compiled.retrace_reasons[0]


def test_signed_zero_and_nan_select_their_own_trace():
    """Floats are keyed by their bits: -0.0 is not 0.0 (1 / c differs), and NaN is NaN
    (called twice, traced once)."""
    sign = gj.function(lambda x, c: x * math.copysign(1.0, c), backend="interpreter")
    x = np.ones(2, np.float32)
    for _ in range(2):  # (the second calls on the fast path, keyed by the same bits)
        assert sign(x, 0.0).tolist() == [1.0, 1.0]
        assert sign(x, -0.0).tolist() == [-1.0, -1.0]
    nan = gj.function(lambda x, c: x + c if c != c else x, backend="interpreter")
    assert np.isnan(nan(x, float("nan"))).all() and np.isnan(nan(x, float("nan"))).all()
    assert nan.trace_count == 1


def test_gradients_through_a_traced_float_and_its_vjp():
    """The call is one tape node whose backward is split from its trace: a schedule
    costs two traces, and no VJP is traced."""
    loss_fn = gj.function(lambda w, lr: gj.sum(w * w) * lr + gj.sum(w) * (1 - lr))
    w0 = np.array([1.0, -2.0, 3.0])
    for lr in [0.5, 0.25, 0.125, 2.0]:
        w = gj.tensor(w0, requires_grad=True)
        loss = loss_fn(w, lr)
        loss.backward()
        np.testing.assert_allclose(float(loss), np.sum(w0 * w0) * lr + np.sum(w0) * (1 - lr))
        np.testing.assert_allclose(w.grad.numpy(), 2 * w0 * lr + (1 - lr), rtol=1e-15)
    assert loss_fn.trace_count == 2 and loss_fn.vjp.trace_count == 0


def test_a_training_step_with_a_learning_rate_schedule_compiles_twice():
    """SGD on a module inside the function, its learning rate decaying every step: the
    same parameters as eager SGD, step for step, from two traces."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)

    @gj.function
    def step(model, x, y, lr):
        loss = gj.mean(gj.square(model(x) - y))
        gj.train.GradientDescentOptimizer(lr).minimize(loss)
        return loss

    gj.manual_seed(0)
    model, reference = gj.nn.Linear(3, 1), gj.nn.Linear(3, 1)
    reference.load_state_dict(model.state_dict())
    optimizer = gj.optim.SGD(reference.parameters(), lr=0.1)
    for i in range(8):
        lr = 0.1 * 0.9**i
        loss = float(step(model, x, y, lr))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        expected = gj.mean(gj.square(reference(gj.tensor(x)) - gj.tensor(y)))
        expected.backward()
        optimizer.step()
        np.testing.assert_allclose(loss, float(expected), rtol=1e-5)
    np.testing.assert_allclose(model.weight.numpy(), reference.weight.numpy(), rtol=1e-5)
    assert step.trace_count == 2


def test_a_function_called_while_tracing_inlines_with_the_traced_float():
    inner = gj.function(lambda x, lr: x * lr, backend="interpreter")
    outer = gj.function(lambda x, lr: inner(x, lr) + lr, backend="interpreter")
    x = np.ones(2, np.float32)
    for lr in [0.5, 1.5, 2.5]:
        assert outer(x, lr).tolist() == [2 * lr] * 2
    assert outer.trace_count == 2 and inner.trace_count == 0


def test_floats_that_change_later_join_the_traced_ones():
    """f(x, a, b): a changes first, then b: b is traced too, and a stays traced (no trace
    that gives up the one before)."""
    f = gj.function(lambda x, a, b: x * a + b, backend="interpreter")
    x = np.ones(2, np.float32)
    for a, b in [(1.0, 1.0), (2.0, 1.0), (1.0, 2.0), (3.0, 2.0), (1.0, 5.0), (4.0, 7.0)]:
        assert f(x, a, b).tolist() == [a + b] * 2
    assert f.trace_count == 3


def test_a_function_traced_again_and_again_warns_once_at_the_callers_line():
    f = gj.function(lambda x, n: x * len(range(n)), backend="interpreter")  # (n: a size)
    x = np.ones(2, np.float32)
    with pytest.warns(gj.RetraceWarning) as caught:
        for n in range(2 * gj.frontend.tracing.RETRACE_WARNING_AT):
            f(x, n)
    assert len(caught) == 1 and caught[0].filename == __file__
    assert "argument 'n' changed from constant" in str(caught[0].message)
    assert "NumPy scalar" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gj.RetraceWarning)
        g = gj.function(lambda x, lr, step: x * lr + step, backend="interpreter")
        for i in range(4 * gj.frontend.tracing.RETRACE_WARNING_AT):  # (two traces)
            g(x, 0.5 + i, i)


def test_bools_and_other_constants_stay_constants_of_their_trace():
    """Bools and strings select code (flags, modes): one trace each; an int and a float
    of the same value are different constants."""
    f = gj.function(lambda x, scale, flag, mode: x * scale if flag else x, backend="interpreter")
    x = np.ones(2, np.float32)
    assert f(x, 2, True, "a").tolist() == [2, 2] and f(x, 2, False, "a").tolist() == [1, 1]
    assert f(x, 2, True, "b").tolist() == [2, 2] and f(x, 2.0, True, "b").tolist() == [2, 2]
    assert f.trace_count == 4


def test_positional_calls_with_numbers_and_numpy_scalars_take_the_fast_path(monkeypatch):
    """Once its numbers are traced as values of the call, a positional call skips binding
    and flattening (Session.run's cost, about), still converting each number as its
    constant would be: a value that does not fit goes the full way, and is refused. A
    number that has had one value only takes the fast path keyed by that value."""
    from graphjit.frontend import tracing

    f = gj.function(lambda x, lr, n, s: x * lr + n * s, backend="interpreter")
    x = np.ones(3, np.int32)
    f(x, 0.5, 1, np.float32(2))
    f(x, 0.25, 2, np.float32(2))  # (the second values: both numbers traced)
    full = []
    call = tracing._Call
    monkeypatch.setattr(tracing, "_Call", lambda *a: full.append(1) or call(*a))
    for i in range(5):
        got = f(x, 0.1 * i, i, np.float32(i))
        np.testing.assert_array_equal(got, np.float64(0.1 * i) + np.float32(i * i))
    assert not full
    with pytest.raises(gj.DTypeError, match="does not fit int32"):
        gj.function(lambda x, n: x + n, backend="interpreter")(x, 2**40)
    constant = gj.function(lambda x, c: x * c, backend="interpreter")
    constant(x, 0.5)  # (one value, a constant of its trace: the fast path keyed by it)
    before = len(full)
    assert constant(x, 0.5).tolist() == [0.5] * 3 and len(full) == before
    g = gj.function(lambda x, n: x + n, backend="interpreter")
    g(x, 1), g(x, 2)
    with pytest.raises(gj.DTypeError, match="does not fit int32"):
        g(x, 2**40)
    assert len(full) >= 1 and g(x, 3).tolist() == [4, 4, 4]


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
@pytest.mark.parametrize(
    "x", [np.zeros((0, 3), np.float32), np.array(2.0, np.float32), np.array(7, np.int8)]
)
def test_traced_numbers_with_empty_and_0d_tensors_and_hostile_values(x, backend):
    """Zero-size and 0-d tensors, NaN, inf, 1e30, ints beyond int64: a trace per value's
    result or error on both backends, from two traces (the refused ones aside)."""
    fn = lambda x, lr, n: gj.sum(x * lr + n) + (1 - lr) * n  # noqa: E731
    compiled = gj.function(fn, backend=backend)
    values = [(0.5, 1), (0.25, 2), (float("nan"), 3), (float("inf"), -1), (1e30, 2**40)]
    values += [(-0.0, 2**70), (0.1, 0)]
    for lr, n in values:
        got = outcome(compiled, x, lr, n)
        assert_same(got, outcome(lambda *a: per_value(fn, *a, backend=backend), x, lr, n))
    assert compiled.trace_count <= 3  # (2**70 fits no dtype: a trace of its own, refused)
