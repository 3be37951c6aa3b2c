"""float16 and bfloat16 storage, int8 and uint8 data.

The rule (ir/types.py `computes_in_float32`): each elementwise op on float16/bfloat16
computes in float32 and rounds its result once, as NumPy's float16 and ml_dtypes'
bfloat16 loops do; sums, means and matmuls accumulate in float32 and round once at the
end, as PyTorch does on CPU. The interpreter is the reference; the llvm backend and eager
mode must agree with it bit for bit (NaNs as NaNs), and with PyTorch where it is
installed. int8/uint8 wrap as NumPy's. The cuda backend's cases (a `cuda` parameter) run in
Numba's simulator, in a process of its own as test_integer_semantics.py does
(test_cuda_simulator_agrees); its op-table records in float16/bfloat16 are in
tests/cuda/sim_cases/test_cuda_sim_narrow.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from simulator import ROOT, SIMULATING, assert_cuda_cases_pass

import graphjit as gj
from graphjit.errors import DTypeError

ml_dtypes = pytest.importorskip("ml_dtypes")

if SIMULATING:  # a simulated barrier waits for a GIL switch: see tests/cuda/sim_cases/conftest.py
    sys.setswitchinterval(5e-5)

GRAPH_BACKENDS = ["cuda"] if SIMULATING else ["interpreter", "llvm"]
# the compiled backends checked against the interpreter; `-k cuda` picks the cuda cases
CUDA = pytest.param(
    "cuda", marks=pytest.mark.skipif(not SIMULATING, reason="runs in the simulator's process")
)
COMPILED = ["llvm", CUDA]
NARROW = [gj.float16, gj.bfloat16]
BYTES = [gj.int8, gj.uint8]


def run_graph(fn, arrays, backend):
    g = gj.Graph()
    with g.as_default():
        inputs = [gj.placeholder(a.dtype, shape=a.shape) for a in arrays]
        out = fn(*inputs)
    with gj.Session(g, backend=backend) as sess:
        return sess.run(out, feed_dict=dict(zip(inputs, arrays)))


def run_eager(fn, arrays):
    return np.asarray(fn(*[gj.tensor(a) for a in arrays]))


def bits(array):
    """Arrays compared bit for bit, every NaN as one NaN."""
    array = np.asarray(array)
    if array.dtype.itemsize == 2 and array.dtype.kind != "i":
        nan = np.isnan(array.astype(np.float32))
        return array.dtype, nan, np.where(nan, 0, array.view(np.uint16))
    return array.dtype, None, array


def assert_same(actual, expected):
    (da, na, ba), (de, ne, be) = bits(actual), bits(expected)
    assert da == de, f"dtype {da} != {de}"
    if na is not None:
        np.testing.assert_array_equal(na, ne, err_msg="NaN positions differ")
    np.testing.assert_array_equal(ba, be)


def narrow_values(dtype, n=512, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 3).astype(dtype.np)


# ---- dtypes and promotion ------------------------------------------------------------------


def test_dtypes_map_to_numpy_and_ml_dtypes():
    assert gj.float16.np == np.float16 and gj.bfloat16.np == np.dtype(ml_dtypes.bfloat16)
    assert gj.int8.np == np.int8 and gj.uint8.np == np.uint8
    assert gj.bfloat16.is_floating and gj.bfloat16.is_narrow_float
    assert not gj.float32.is_narrow_float and gj.uint8.is_integer


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (gj.float16, gj.float32, gj.float32),
        (gj.bfloat16, gj.float32, gj.float32),
        (gj.bfloat16, gj.float16, gj.float32),
        (gj.int8, gj.float16, gj.float16),
        (gj.uint8, gj.bfloat16, gj.bfloat16),
        (gj.int8, gj.int32, gj.int32),
        (gj.uint8, gj.int64, gj.int64),
    ],
)
def test_promotion_follows_numpy_and_ml_dtypes(a, b, expected):
    x, y = gj.tensor(np.ones(2, a.np)), gj.tensor(np.ones(2, b.np))
    assert (x + y).dtype == expected and (y * x).dtype == expected


@pytest.mark.parametrize("dtype", NARROW + BYTES)
def test_python_scalars_are_weak(dtype):
    x = gj.tensor(np.ones(3, dtype.np))
    assert (x + 1).dtype == dtype
    as_int32 = (gj.tensor(np.ones(3, np.int32)) * 2.5).dtype  # (NumPy's rule for ints)
    assert (x * 2.5).dtype == (dtype if dtype.is_floating else as_int32)


def test_int8_with_uint8_needs_int16_which_graphjit_lacks():
    with pytest.raises(DTypeError, match="int16"):
        gj.tensor(np.ones(2, np.int8)) + gj.tensor(np.ones(2, np.uint8))


def test_bfloat16_without_ml_dtypes_is_a_clear_error():
    script = (
        "import sys; sys.modules['ml_dtypes'] = None\n"
        "import graphjit as gj\n"
        "x = gj.tensor([1.0, 2.0], dtype=gj.float16)  # the rest works without it\n"
        "try:\n"
        "    gj.tensor([1.0], dtype=gj.bfloat16)\n"
        "except gj.errors.DTypeError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ml_dtypes" in done.stdout and "pip install" in done.stdout


# ---- elementwise: one float32 op, one rounding ----------------------------------------------

EXACT_OPS = {  # float32 then one rounding is the correctly rounded narrow result
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "maximum": gj.maximum,
    "chain": lambda x, y: (x * y + x) / (y * y + 1.0) - x,  # rounded after every op
}
# float32 libm results differ between NumPy and the llvm backend's own math in the last
# float32 bit; rounded to float16/bfloat16 that is at most one step apart (near a tie)
TRANSCENDENTAL = {"exp", "tanh", "sigmoid", "log"}
UNARY_OPS = {
    "exp": gj.exp,
    "tanh": gj.tanh,
    "sigmoid": gj.sigmoid,
    "log": lambda x: gj.log(gj.abs(x)),
    "sqrt": lambda x: gj.sqrt(gj.abs(x)),
    "neg_abs": lambda x: -gj.abs(x),
    "floor": gj.floor,
    "round": gj.round,
    "square_sum": lambda x: x * x + 2.0,
}


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("name", sorted(EXACT_OPS))
def test_binary_ops_round_once_per_op(dtype, name, backend):
    x, y = narrow_values(dtype, seed=1), narrow_values(dtype, seed=2)
    fn = EXACT_OPS[name]
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    if name in ("add", "sub", "mul", "div"):  # float32 then one rounding, as NumPy computes
        assert_same(run_eager(fn, [x, y]), fn(x32, y32).astype(dtype.np))
    reference = run_graph(fn, [x, y], "interpreter")
    assert_same(run_eager(fn, [x, y]), reference)
    assert_same(run_graph(fn, [x, y], backend), reference)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("name", sorted(UNARY_OPS))
def test_unary_ops_agree_with_the_interpreter(dtype, name, backend):
    x = narrow_values(dtype, seed=3)
    fn = UNARY_OPS[name]
    reference = run_graph(fn, [x], "interpreter")
    assert reference.dtype == dtype.np
    assert_same(run_eager(fn, [x]), reference)
    compiled = run_graph(fn, [x], backend)
    if name in TRANSCENDENTAL:  # (llvm's and the GPU's float32 math may differ from NumPy's)
        assert_within_one_step(compiled, reference)
    else:
        assert_same(compiled, reference)


def assert_within_one_step(actual, expected):
    """Finite narrow values at most one representable step apart, NaNs where NaNs are."""
    (_, na, ba), (_, ne, be) = bits(actual), bits(expected)
    np.testing.assert_array_equal(na, ne)
    order = lambda b: np.where(b & 0x8000, -(b & 0x7FFF).astype(np.int32), b)  # noqa: E731
    assert np.abs(order(ba.astype(np.int32)) - order(be.astype(np.int32))).max() <= 1


# ---- casts: round to nearest even, NaN, infinity, overflow, subnormals ----------------------


def _cast_cases(dtype):
    if dtype == gj.float16:
        ulp1, tiny = 2.0**-10, 2.0**-24  # spacing at 1, smallest subnormal
        overflow = [65504.0, 65519.0, 65520.0, 1e6]
    else:
        ulp1, tiny = 2.0**-7, 2.0**-133
        overflow = [3.3895e38, 3.39e38, 3.4028235e38]
    ties = [1 + ulp1 / 2, 1 + 3 * ulp1 / 2, -(1 + ulp1 / 2), 2 + ulp1]  # to 1, 1+2ulp, -1
    subnormal = [tiny, tiny / 2, 3 * tiny / 2, tiny / 4, -tiny, 5 * tiny]
    special = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0]
    return np.array(ties + subnormal + special + overflow + [-x for x in overflow], np.float32)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_float32_to_narrow_rounds_like_numpy(dtype, backend):
    x = _cast_cases(dtype)
    expected = x.astype(dtype.np)
    for graph_backend in ("interpreter", backend):
        assert_same(run_graph(lambda v: gj.cast(v, dtype), [x], graph_backend), expected)
    assert_same(np.asarray(gj.tensor(x).to(dtype)), expected)
    ties = expected[:4].astype(np.float64)
    ulp1 = 2.0**-10 if dtype == gj.float16 else 2.0**-7
    np.testing.assert_array_equal(ties, [1.0, 1 + 2 * ulp1, -1.0, 2.0])  # ties to even


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_every_narrow_bit_pattern_widens_exactly(dtype, backend):
    x = np.arange(1 << 16, dtype=np.uint16).view(dtype.np)
    assert_same(run_graph(lambda v: gj.cast(v, gj.float32), [x], backend), x.astype(np.float32))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_random_float32_bit_patterns_narrow_like_numpy(dtype, backend):
    rng = np.random.default_rng(4)
    n = 8192 if backend == "cuda" else 100_000  # (the simulator runs a kernel as Python)
    x = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    with np.errstate(all="ignore"):
        expected = x.astype(dtype.np)
    assert_same(run_graph(lambda v: gj.cast(v, dtype), [x], backend), expected)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_float64_to_narrow_rounds_once(dtype, backend):
    """float64 -> float32 -> narrow would round twice: 1 + ulp/2 + tiny is above the tie."""
    ulp1 = 2.0**-10 if dtype == gj.float16 else 2.0**-7
    x = np.array([1 + ulp1 / 2 + 2.0**-40, 1 + ulp1 / 2, 1e300, -1e300, np.nan, 1e-300])
    # near each type's largest value, half its smallest subnormal (ties to even: zero)
    x = np.concatenate([x, -x, [3.4e38, 3.3961e38, 65519.99, 2.0**-25, 2.0**-134, -0.0]])
    with np.errstate(over="ignore"):
        expected = x.astype(dtype.np)
    assert float(expected[0]) == 1 + ulp1  # (the test's premise)
    for graph_backend in ("interpreter", backend):
        assert_same(run_graph(lambda v: gj.cast(v, dtype), [x], graph_backend), expected)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("to", [gj.int8, gj.uint8, gj.int32, gj.float64, gj.bool_, *NARROW])
def test_narrow_to_other_dtypes(dtype, to, backend):
    x = np.concatenate([narrow_values(dtype, 64) * 20, [np.nan, np.inf, -1.5, 300.0]])
    x = x.astype(dtype.np)
    reference = run_graph(lambda v: gj.cast(v, to), [x], "interpreter")
    assert_same(run_graph(lambda v: gj.cast(v, to), [x], backend), reference)
    assert_same(np.asarray(gj.tensor(x).to(to)), reference)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("source", [np.int8, np.uint8, np.int32, np.int64])
def test_integers_to_narrow(dtype, source, backend):
    info = np.iinfo(source)
    x = np.array([info.min, info.max, 0, 1, -1 % (info.max + 1), 65519, 65520, 257], np.int64)
    x = x[(x >= info.min) & (x <= info.max)].astype(source)
    with np.errstate(over="ignore"):
        expected = x.astype(dtype.np)
    for graph_backend in ("interpreter", backend):
        assert_same(run_graph(lambda v: gj.cast(v, dtype), [x], graph_backend), expected)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_overflow_to_infinity_and_nan_propagate(dtype, backend):
    big = 60000.0 if dtype == gj.float16 else 3e38
    x = np.array([big, -big, np.nan, 1.0], dtype.np)
    fn = lambda v: v * 2.0 + 1.0  # noqa: E731
    for graph_backend in ("interpreter", backend):
        out = run_graph(fn, [x], graph_backend).astype(np.float64)
        assert np.isposinf(out[0]) and np.isneginf(out[1]) and np.isnan(out[2]) and out[3] == 3


# ---- reductions and matmul: float32 accumulation, one rounding -----------------------------


@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("backend", ["interpreter", "eager", *COMPILED])
def test_sum_accumulates_in_float32(dtype, backend):
    """4096 ones: a float16/bfloat16 running sum stops at 2048/256; a float32 one does not."""
    x = np.ones((2, 4096), dtype.np)
    fn = lambda v: gj.reduce_sum(v, axis=1)  # noqa: E731
    out = run_eager(fn, [x]) if backend == "eager" else run_graph(fn, [x], backend)
    assert out.dtype == dtype.np
    np.testing.assert_array_equal(out.astype(np.float32), [4096.0, 4096.0])


@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("backend", ["interpreter", "eager", *COMPILED])
def test_mean_does_not_overflow_its_sum(dtype, backend):
    x = np.full((1000,), 100.0, dtype.np)  # the sum, 1e5, is past float16's 65504
    out = run_eager(gj.mean, [x]) if backend == "eager" else run_graph(gj.mean, [x], backend)
    assert out.dtype == dtype.np and float(out) == 100.0


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_reductions_agree_between_backends(dtype, backend):
    x = narrow_values(dtype, 6 * 40, seed=5).reshape(6, 40)
    for fn in (
        lambda v: gj.reduce_sum(v, axis=0),
        lambda v: gj.reduce_max(v, axis=1),
        lambda v: gj.reduce_sum(gj.exp(v) * 0.5),
    ):
        reference = run_graph(fn, [x], "interpreter")
        wide = np.asarray(reference, np.float64)
        compiled = np.asarray(run_graph(fn, [x], backend), np.float64)
        # float32 sums in another order: at most one rounding step apart
        rtol = 2.0**-7 if dtype == gj.bfloat16 else 2.0**-10
        np.testing.assert_allclose(compiled, wide, rtol=rtol)
        assert_same(run_eager(fn, [x]), reference)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_matmul_accumulates_in_float32(dtype, backend):
    """Integer-valued operands: float32 products and sums are exact, so every backend and
    PyTorch give the same bits; a narrow accumulator would lose them (sums past 256/2048)."""
    rng = np.random.default_rng(6)
    a = rng.integers(-8, 9, (2, 3, 300)).astype(dtype.np)
    b = rng.integers(-8, 9, (300, 2)).astype(dtype.np)
    exact = (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype.np)
    for graph_backend in ("interpreter", backend):
        assert_same(run_graph(gj.matmul, [a, b], graph_backend), exact)
    assert_same(run_eager(gj.matmul, [a, b]), exact)


@pytest.mark.parametrize("dtype", NARROW)
def test_matmul_of_random_values_is_one_rounding_of_float32(dtype):
    """(cuda: tests/cuda/sim_cases/test_cuda_sim_narrow.py's matmul records)"""
    a, b = narrow_values(dtype, 64 * 48, 7).reshape(64, 48), narrow_values(dtype, 48 * 32, 8)
    b = b.reshape(48, 32)
    reference = run_graph(lambda x, y: gj.matmul(x, y, transpose_b=False), [a, b], "interpreter")
    expected = (a.astype(np.float32) @ b.astype(np.float32)).astype(dtype.np)
    np.testing.assert_allclose(
        np.asarray(reference, np.float64), expected.astype(np.float64), rtol=1e-2, atol=1e-2
    )
    llvm = run_graph(gj.matmul, [a, b], "llvm")
    np.testing.assert_allclose(
        np.asarray(llvm, np.float64), np.asarray(reference, np.float64), rtol=1e-2, atol=1e-2
    )


# ---- autograd ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", NARROW)
def test_eager_gradients_are_narrow(dtype):
    x = gj.tensor(narrow_values(dtype, 8, 9), requires_grad=True)
    w = gj.tensor(narrow_values(dtype, 8 * 3, 10).reshape(8, 3), requires_grad=True)
    loss = gj.mean(gj.tanh(x @ w) ** 2)
    loss.backward()
    assert loss.dtype == dtype and x.grad.dtype == dtype and w.grad.dtype == dtype
    assert np.all(np.isfinite(np.asarray(w.grad, np.float32)))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_static_gradients_agree_with_eager(dtype, backend):
    x0 = narrow_values(dtype, 4 * 8, 11).reshape(4, 8)
    w0 = narrow_values(dtype, 8 * 3, 12).reshape(8, 3)

    def loss_of(x, w):
        return gj.reduce_sum(gj.sigmoid(x @ w) * 3.0)

    results = {}
    for graph_backend in ("interpreter", backend):
        g = gj.Graph()
        with g.as_default():
            x = gj.placeholder(dtype, shape=x0.shape)
            w = gj.placeholder(dtype, shape=w0.shape)
            (grad,) = gj.gradients(loss_of(x, w), [w])
        with gj.Session(g, backend=graph_backend) as sess:
            results[graph_backend] = sess.run(grad, feed_dict={x: x0, w: w0})
    w = gj.tensor(w0, requires_grad=True)
    loss_of(gj.tensor(x0), w).backward()
    assert results["interpreter"].dtype == dtype.np
    assert_same(np.asarray(w.grad), results["interpreter"])
    np.testing.assert_allclose(
        results[backend].astype(np.float32),
        results["interpreter"].astype(np.float32),
        rtol=1e-2,
        atol=1e-2,
    )


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", NARROW)
def test_mixed_precision_training_agrees_with_the_interpreter(dtype, backend):
    """examples/mixed_precision.py's static training step (float32 master weights, the
    forward and backward passes in `dtype`, float16's loss scaled): the loss and the updated
    weights of one step on 4 examples (the simulator's barriers are slow)."""
    example = load_example("mixed_precision")
    scale = example.FLOAT16_LOSS_SCALE if dtype == gj.float16 else 1.0
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 2])
        labels = gj.placeholder(gj.int64, [None])
        flat = [gj.Variable(p) for pair in example.initial_weights() for p in pair]
        params = list(zip(flat[::2], flat[1::2]))
        loss = gj.nn.softmax_cross_entropy(example.forward(x, params, dtype), labels)
        grads = gj.gradients(loss * scale, flat)
        train = gj.group(*[p.assign(p - example.LR * (d / scale)) for p, d in zip(flat, grads)])
    feed = {x: example.train_x[:4], labels: example.train_y[:4]}
    runs = {}
    for graph_backend in ("interpreter", backend):
        with gj.Session(g, backend=graph_backend) as sess:
            runs[graph_backend] = [sess.run([loss, train], feed)[0], *sess.run(flat)]
    assert not np.array_equal(runs[backend][1], example.initial_weights()[0][0])  # (updated)
    for got, expected in zip(runs[backend], runs["interpreter"], strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-3)


def test_half_and_bfloat16_methods():
    x = gj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h, b = x.half(), x.bfloat16()
    assert h.dtype == gj.float16 and b.dtype == gj.bfloat16
    (h.sum() + b.sum()).backward()
    assert x.grad.dtype == gj.float32
    np.testing.assert_array_equal(np.asarray(x.grad), [2.0, 2.0, 2.0])


# ---- int8 / uint8 ---------------------------------------------------------------------------

BYTE_OPS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "neg": lambda x, y: -x,
    "floordiv": lambda x, y: x // gj.maximum(y, 1),
    "mod": lambda x, y: x % gj.maximum(y, 1),
    "max": gj.maximum,
    "less": lambda x, y: x < y,
    "abs": lambda x, y: gj.abs(x),
    "pow": lambda x, y: x ** (y % 4),
    "sum": lambda x, y: gj.sum(x * y, axis=1),  # (as int64, as NumPy and PyTorch sum)
    "wrapped_sum": lambda x, y: gj.cast(gj.sum(x * y, axis=1), x.dtype),
    "reduce_max": lambda x, y: gj.reduce_max(x, axis=0),
    "argmax": lambda x, y: gj.argmax(x, axis=1),
    "to_float": lambda x, y: gj.cast(x, gj.float32) * 0.5,
    "matmul": lambda x, y: x @ gj.transpose(y),
}
NUMPY_BYTE_OPS = {
    "add": np.add,
    "mul": np.multiply,
    "neg": lambda x, y: -x,
    "max": np.maximum,
    "less": np.less,
    "matmul": lambda x, y: x @ y.T,
    "sum": lambda x, y: np.sum(x * y, axis=1, dtype=np.int64),
}


def byte_values(dtype, seed):
    info = np.iinfo(dtype.np)
    rng = np.random.default_rng(seed)
    values = rng.integers(info.min, info.max + 1, (6, 8)).astype(dtype.np)
    values[0, :4] = [info.min, info.max, 0, 1]
    return values


@pytest.mark.parametrize("backend", GRAPH_BACKENDS)
@pytest.mark.parametrize("dtype", BYTES)
@pytest.mark.parametrize("name", sorted(BYTE_OPS))
def test_byte_ops_wrap_like_numpy(backend, dtype, name):
    x, y = byte_values(dtype, 13), byte_values(dtype, 14)
    fn = BYTE_OPS[name]
    with np.errstate(over="ignore"):
        expected = run_eager(fn, [x, y])
        if name in NUMPY_BYTE_OPS:
            assert_same(expected, NUMPY_BYTE_OPS[name](x, y))
    assert_same(run_graph(fn, [x, y], backend), expected)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", BYTES)
def test_float_to_byte_casts_saturate_nan_to_the_minimum(dtype, backend):
    x = np.array([1.9, -1.9, 127.5, 255.0, 300.0, -129.0, np.nan], np.float32)
    expected = run_graph(lambda v: gj.cast(v, dtype), [x], "interpreter")
    assert_same(run_graph(lambda v: gj.cast(v, dtype), [x], backend), expected)
    assert expected[-1] == np.iinfo(dtype.np).min


# ---- PyTorch, where it is installed -----------------------------------------------------------


@pytest.mark.parametrize("dtype", NARROW + BYTES)
def test_agrees_with_pytorch(dtype):
    torch = pytest.importorskip("torch")
    torch_dtype = getattr(torch, dtype.name)
    if dtype.is_floating:
        x, y = narrow_values(dtype, 256, 15), narrow_values(dtype, 256, 16)
        ops = [lambda a, b: a * b + a, lambda a, b: a / (b * b + 1.0)]
        as_torch = lambda a: torch.from_numpy(a.astype(np.float32)).to(torch_dtype)  # noqa: E731
        ones = np.ones(4096, dtype.np)
        assert float(gj.reduce_sum(gj.tensor(ones))) == float(as_torch(ones).sum())
        m = np.arange(-20, 20).reshape(8, 5).astype(dtype.np)
        expected = (as_torch(m) @ as_torch(m.T.copy())).float().numpy()
        np.testing.assert_array_equal(
            run_graph(lambda a: a @ gj.transpose(a), [m], "llvm"), expected
        )
    else:
        x, y = byte_values(dtype, 17), byte_values(dtype, 18)
        ops = [lambda a, b: a * b + a, lambda a, b: a - b * 3]
        as_torch = lambda a: torch.from_numpy(a)  # noqa: E731
    for fn in ops:
        expected = fn(as_torch(x), as_torch(y))
        expected = expected.float().numpy() if dtype.is_floating else expected.numpy()
        out = run_graph(fn, [x, y], "llvm")
        np.testing.assert_array_equal(out.astype(expected.dtype), expected)


# ---- the cuda backend -----------------------------------------------------------------------


@pytest.mark.skipif(SIMULATING, reason="the simulator is on: the cuda cases run in place")
def test_cuda_simulator_agrees():
    """This file's cuda cases, in a process with Numba's CUDA simulator on."""
    assert_cuda_cases_pass(__file__)


NARROW_IN_FLOAT32 = {
    "conv2d": lambda x: gj.nn.conv2d(gj.reshape(x, [1, 1, 4, 4]), gj.reshape(x[:4], [1, 1, 2, 2])),
    "avg_pool2d": lambda x: gj.nn.avg_pool2d(gj.reshape(x, [1, 1, 4, 4]), 2),
    "scatter_add": lambda x: gj.scatter_add(x, np.array([0, 1, 1]), x[:3]),
    "sort": lambda x: gj.sort(x).values,
}


@pytest.mark.skipif(SIMULATING, reason="llvm and the interpreter: not the simulator's process")
@pytest.mark.parametrize("name", sorted(NARROW_IN_FLOAT32))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_llvm_runs_narrow_convolutions_scatters_and_sorts_as_the_interpreter(name, dtype):
    """Ops whose llvm lowering computes in float32 only (codegen/llvm/widen.py widens their
    operands and rounds their results once) or moves narrow values (sort): the interpreter
    computes them in float32, rounding once, as the float32 graph rounded to the narrow
    dtype, and llvm agrees bit for bit (tests/codegen/test_llvm_narrow_floats.py has more)."""
    narrow = gj.float16 if dtype == "float16" else gj.bfloat16
    values = (np.arange(16) / 7.0).astype(narrow.np).astype(np.float32)  # (exact in both)
    results = {}
    for kind in (narrow, gj.float32):
        g = gj.Graph()
        with g.as_default():
            x = gj.placeholder(kind, [16], name="x")
            y = NARROW_IN_FLOAT32[name](x)
        with gj.Session(g, backend="interpreter") as sess:
            results[kind] = sess.run(y, {x: values.astype(kind.np)})
        if kind is narrow:
            with gj.Session(g, backend="llvm") as sess:
                assert_same(sess.run(y, {x: values.astype(kind.np)}), results[kind])
    expected = results[gj.float32].astype(narrow.np)
    np.testing.assert_array_equal(results[narrow].astype(np.float32), expected.astype(np.float32))


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_bfloat16_cumsum_rounds_each_running_sum(backend):
    """bfloat16's NumPy kind is "V" (ml_dtypes): cumsum's type rule read the raw kind and
    refused it. Each running sum rounds to bfloat16, as np.cumsum in that dtype does."""
    values = np.array([256, 1, 1, 1, 1, -0.0, np.inf, 3], ml_dtypes.bfloat16)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.bfloat16, [8], name="x")
        y = gj.cumsum(x, 0)
        r = gj.cumsum(x, 0, reverse=True)
    got, rev = gj.Session(g, backend=backend).run([y, r], {x: values})
    expected = np.cumsum(values, dtype=values.dtype)
    assert got.dtype == values.dtype
    np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
    assert float(got[4]) == 256.0  # 256 + 1 rounds back to 256 at every step
    reversed_sums = np.cumsum(values[::-1], dtype=values.dtype)[::-1]
    np.testing.assert_array_equal(rev.view(np.uint16), reversed_sums.view(np.uint16))
