"""gj.function's Python float arguments: a constant of the first trace; once a call passes
another value, traced once more as a value of the call (frontend/traced_numbers.py), with
the results a trace per value would give -- or traced per value where the function needs
the value itself (a Python `if`, `float()`, a comparison)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import graphjit as gj

RATES = [0.1, 0.2, 0.35, 1e-3, -0.0, 0.0, 7.5, 1e30, float("inf"), float("nan")]


def per_value(fn, *args, backend="llvm"):
    """What a trace for this very value gives (a fresh function: one trace, the float a
    constant of it)."""
    return gj.function(fn, backend=backend)(*args)


def assert_same(got, want, rtol=0.0):
    assert type(got) is type(want)
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


# Expressions over a float `lr` and a tensor `x`: arithmetic Python does on the float
# (float64, rounded once where it meets the tensor), the float weak beside the tensor, and
# graphjit functions applied to it.
EXPRESSIONS = {
    "scale": lambda x, lr: x * lr,
    "python arithmetic first": lambda x, lr: x * (1 - lr) / (lr + 3) - lr * lr * 0.5,
    "reflected": lambda x, lr: (2.0 - lr) * x + 1 / (lr + 4) + (-lr) * x + abs(-lr) * x,
    "powers": lambda x, lr: x * (lr**2 + 2**lr + 0.5**lr),
    "floor division, modulo": lambda x, lr: x + lr // 0.3 + lr % 0.3 + (-lr) % 0.7,
    "graphjit functions": lambda x, lr: gj.maximum(x, lr) + gj.exp(lr * 0.01) + gj.sqrt(lr),
    "where": lambda x, lr: gj.where(x > 1, x, lr),
    "nested arguments": lambda x, hp: x * hp["lr"] + hp["decay"][0],
    "two floats": lambda x, a, b: x * a + b,
}


def arguments(name, x, lr):
    if name == "nested arguments":
        return (x, {"lr": lr, "decay": [lr * 0.5]})
    if name == "two floats":
        return (x, lr, 1 - lr)
    return (x, lr)


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("name", EXPRESSIONS)
def test_a_float_that_changes_is_traced_once_more_and_gives_what_a_trace_per_value_gives(
    name, dtype, backend
):
    fn = EXPRESSIONS[name]
    x = np.array([-2, 0, 1, 3], dtype)
    compiled = gj.function(fn, backend=backend)
    with np.errstate(all="ignore"):
        for lr in RATES:
            args = arguments(name, x, lr)
            got = compiled(*args)
            try:
                want = per_value(fn, *args, backend=backend)
            except ArithmeticError:  # (Python's 2 ** 1e30 raises; the graph gives inf)
                continue
            # (a float64 power is not exactly rounded: NumPy's and C's differ by an ulp)
            assert_same(got, want, rtol=4e-16 if name == "powers" else 0.0)
    assert compiled.trace_count == 2  # (the first value's trace, then one for every value)
    assert "with it as a value of the call" in compiled.retrace_reasons[0]


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
    assert sign(x, 0.0).tolist() == [1.0, 1.0]
    assert sign(x, -0.0).tolist() == [-1.0, -1.0]
    nan = gj.function(lambda x, c: x + c if c != c else x, backend="interpreter")
    assert np.isnan(nan(x, float("nan"))).all() and np.isnan(nan(x, float("nan"))).all()
    assert nan.trace_count == 1


def test_gradients_through_a_traced_float_and_its_vjp():
    """The call is one tape node whose VJP is a gj.function too: it traces its floats
    the same way, so a schedule costs two traces of each."""
    loss_fn = gj.function(lambda w, lr: gj.sum(w * w) * lr + gj.sum(w) * (1 - lr))
    w0 = np.array([1.0, -2.0, 3.0])
    for lr in [0.5, 0.25, 0.125, 2.0]:
        w = gj.tensor(w0, requires_grad=True)
        loss = loss_fn(w, lr)
        loss.backward()
        np.testing.assert_allclose(float(loss), np.sum(w0 * w0) * lr + np.sum(w0) * (1 - lr))
        np.testing.assert_allclose(w.grad.numpy(), 2 * w0 * lr + (1 - lr), rtol=1e-15)
    assert loss_fn.trace_count == 2 and loss_fn.vjp.trace_count == 2


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
    f = gj.function(lambda x, n: x * n, backend="interpreter")
    x = np.ones(2, np.float32)
    with pytest.warns(gj.RetraceWarning) as caught:
        for n in range(2 * gj.frontend.tracing.RETRACE_WARNING_AT):
            f(x, n)
    assert len(caught) == 1 and caught[0].filename == __file__
    assert "argument 'n' changed from constant" in str(caught[0].message)
    assert "np.int32(step)" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gj.RetraceWarning)
        g = gj.function(lambda x, lr: x * lr, backend="interpreter")
        for i in range(4 * gj.frontend.tracing.RETRACE_WARNING_AT):  # (two traces)
            g(x, 0.5 + i)


def test_other_numbers_stay_constants_of_their_trace():
    """Ints and bools are often structure (sizes, flags, loop counts): one trace each."""
    f = gj.function(lambda x, n, flag: x * n if flag else x, backend="interpreter")
    x = np.ones(2, np.float32)
    for n in [1, 2, 3]:
        assert f(x, n, True).tolist() == [n, n]
    assert f(x, 3, False).tolist() == [1, 1]
    assert f.trace_count == 4
