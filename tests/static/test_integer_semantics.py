"""Integer and bitwise semantics against NumPy (and PyTorch where it is installed), over
random int32/int64 and bool arrays of both signs and the dtypes' extremes: `& | ^ ~ // %`
and their functions in eager mode and in graphs on the interpreter, the llvm backend and
the cuda backend in Numba's simulator; integer division and modulo by zero are the same
RuntimeCheckError everywhere; prod's gradient with zeros; argmin, any and all.

The simulated cuda cases need NUMBA_ENABLE_CUDASIM=1 before numba is imported: run as
part of the main suite, `test_cuda_simulator_agrees` runs this file's cuda cases in a
process of its own (as tests/cuda/test_cuda_sim.py does for sim_cases/)."""

from __future__ import annotations

import operator
import re

import numpy as np
import pytest
from simulator import SIMULATING, assert_cuda_cases_pass

import graphjit as gj
from op_table import tolerance  # noqa: F401 (op_table first: it imports the integer records)

# In the simulator's process only its backend runs; elsewhere the cuda cases run there.
BACKENDS = ["cuda"] if SIMULATING else ["interpreter", "llvm"]
INT_DTYPES = [np.int32, np.int64]
SIZE = 48  # (small: the simulator runs every GPU thread as a Python thread)

BINARY_OPERATORS = {
    "&": operator.and_,
    "|": operator.or_,
    "^": operator.xor,
    "//": operator.floordiv,
    "%": operator.mod,
}
FUNCTIONS = {  # each public function, and the NumPy function it must agree with
    "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
    "floor_divide": np.floor_divide,
    "floordiv": np.floor_divide,
    "remainder": np.mod,
    "mod": np.mod,
    "floormod": np.mod,
}
DIVISIONS = {"//", "%", "floor_divide", "floordiv", "remainder", "mod", "floormod"}


def integers(dtype, rng, size=SIZE, nonzero=False) -> np.ndarray:
    """Random integers of both signs: small ones, wide ones and the dtype's extremes."""
    info = np.iinfo(dtype)
    small = rng.integers(-20, 21, size)
    wide = rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True)
    extremes = rng.choice([info.min, info.min + 1, -1, 0, 1, info.max], size)
    pick = rng.integers(0, 3, size)
    x = np.choose(pick, [small.astype(dtype), wide, extremes.astype(dtype)]).astype(dtype)
    return np.where(x == 0, 1, x).astype(dtype) if nonzero else x


def numpy_binary(symbol_or_name: str, x, y) -> np.ndarray:
    """NumPy's answer (MIN // -1 wraps to MIN there; its overflow warning is not ours)."""
    fn = BINARY_OPERATORS.get(symbol_or_name) or FUNCTIONS[symbol_or_name]
    with np.errstate(over="ignore"):
        return np.asarray(fn(x, y))


def gj_binary(symbol_or_name: str):
    if symbol_or_name in BINARY_OPERATORS:
        return BINARY_OPERATORS[symbol_or_name]
    return getattr(gj, symbol_or_name)


def run_graph(fn, arrays, backend: str):
    """fn applied to placeholders of the arrays' dtypes (every dimension unknown), run on
    `backend`."""
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype, [None] * a.ndim, name=f"x{i}") for i, a in enumerate(arrays)]
        out = fn(*xs)
    with gj.Session(g, backend=backend) as sess:
        return sess.run(out, dict(zip(xs, arrays)))


def run_eager(fn, arrays):
    out = fn(*[gj.tensor(a) for a in arrays])
    return [o.numpy() for o in out] if isinstance(out, (list, tuple)) else out.numpy()


def assert_same(got, expected, what: str) -> None:
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    np.testing.assert_array_equal(got, expected, err_msg=what)


def every_binary(x, y) -> list:
    """Every operator and function applied to x and y."""
    return [gj_binary(k)(x, y) for k in [*BINARY_OPERATORS, *FUNCTIONS]]


def expected_binary(x, y) -> list:
    return [numpy_binary(k, x, y) for k in [*BINARY_OPERATORS, *FUNCTIONS]]


NAMES = [*BINARY_OPERATORS, *FUNCTIONS]


# ---- integers: every operator and function, every mode ---------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_operators_match_numpy_in_graphs(backend, dtype):
    rng = np.random.default_rng(1)
    x, y = integers(dtype, rng), integers(dtype, rng, nonzero=True)
    got = run_graph(lambda a, b: [*every_binary(a, b), ~a], [x, y], backend)
    for name, g, e in zip([*NAMES, "~"], got, [*expected_binary(x, y), ~x]):
        assert_same(g, e, f"{name} on {backend}")


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_integer_operators_match_numpy_eagerly(dtype):
    rng = np.random.default_rng(2)
    x, y = integers(dtype, rng), integers(dtype, rng, nonzero=True)
    got = run_eager(lambda a, b: [*every_binary(a, b), ~a, gj.invert(a)], [x, y])
    for name, g, e in zip([*NAMES, "~", "invert"], got, [*expected_binary(x, y), ~x, ~x]):
        assert_same(g, e, f"eager {name}")


def test_minimum_divided_by_minus_one_wraps_as_in_numpy():
    """MIN // -1 does not fit: NumPy wraps it to MIN (and MIN % -1 is 0); no backend traps."""
    for dtype in INT_DTYPES:
        x = np.array([np.iinfo(dtype).min, 7, -7], dtype)
        y = np.array([-1, -1, -1], dtype)
        expected = [numpy_binary("//", x, y), numpy_binary("%", x, y)]
        assert expected[0][0] == np.iinfo(dtype).min and expected[1][0] == 0  # (NumPy's)
        got = run_eager(lambda a, b: [a // b, a % b], [x, y])
        for g, e in zip(got, expected):
            assert_same(g, e, "eager")


@pytest.mark.parametrize("backend", BACKENDS)
def test_minimum_divided_by_minus_one_in_graphs(backend):
    for dtype in INT_DTYPES:
        x = np.array([np.iinfo(dtype).min, 7, -7], dtype)
        y = np.array([-1, -1, -1], dtype)
        got = run_graph(lambda a, b: [a // b, a % b], [x, y], backend)
        for g, e in zip(got, [numpy_binary("//", x, y), numpy_binary("%", x, y)]):
            assert_same(g, e, f"{np.dtype(dtype).name} on {backend}")


# ---- booleans and mixed operands ---------------------------------------------------------


def bools(rng) -> np.ndarray:
    return rng.integers(0, 2, SIZE).astype(bool)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bool_operators_are_logical_in_graphs(backend):
    rng = np.random.default_rng(3)
    p, q = bools(rng), bools(rng)
    ops = [operator.and_, operator.or_, operator.xor, gj.bitwise_and, gj.bitwise_xor]
    got = run_graph(lambda a, b: [*(f(a, b) for f in ops), ~a, gj.bitwise_not(a)], [p, q], backend)
    expected = [p & q, p | q, p ^ q, p & q, p ^ q, ~p, ~p]
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_same(g, e, f"bool op {k} on {backend}")


def test_bool_operators_are_logical_eagerly():
    rng = np.random.default_rng(4)
    p, q = bools(rng), bools(rng)
    got = run_eager(lambda a, b: [a & b, a | b, a ^ b, ~a, a & True, False | a, a ^ True], [p, q])
    expected = [p & q, p | q, p ^ q, ~p, p & True, False | p, p ^ True]
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_same(g, e, f"eager bool op {k}")


def mixed(a, b, m):
    """Python scalars are weak (the tensor's dtype wins), a bool tensor promotes to the
    integer's dtype, as in NumPy."""
    return [a & 6, 5 ^ a, a | True, m & a, 100 // b, a // 7, -100 % b, a % -7, ~m]


def expected_mixed(x, y, mask):
    return [x & 6, 5 ^ x, x | True, mask & x, 100 // y, x // 7, -100 % y, x % -7, ~mask]


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", [*BACKENDS, "eager"])
def test_python_scalars_and_bools_promote_as_in_numpy(backend, dtype):
    rng = np.random.default_rng(5)
    x, y, mask = integers(dtype, rng), integers(dtype, rng, nonzero=True), bools(rng)
    if backend == "eager":
        got = run_eager(mixed, [x, y, mask])
    else:
        got = run_graph(mixed, [x, y, mask], backend)
    with np.errstate(over="ignore"):
        expected = expected_mixed(x, y, mask)
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_same(g, e, f"mixed op {k} on {backend}")


def test_variables_take_the_operators():
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.array([-6, 5, 12], np.int32), name="v")
        out = [v & 3, v // 4, 7 % v, ~v]
    with gj.Session(g, backend="interpreter") as sess:
        got = sess.run(out)
    x = np.array([-6, 5, 12], np.int32)
    for g_, e in zip(got, [x & 3, x // 4, 7 % x, ~x]):
        assert_same(g_, e, "variable")


def test_traced_function_equals_eager():
    def f(a, b):
        return (a & b) ^ (a // b) | (a % b)

    rng = np.random.default_rng(6)
    x, y = integers(np.int64, rng), integers(np.int64, rng, nonzero=True)
    got = gj.function(f, backend="interpreter")(x, y)
    assert_same(got, f(gj.tensor(x), gj.tensor(y)).numpy(), "gj.function")


# ---- floats: // and % follow NumPy, special values included; bitwise ops refuse them ----

SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 7.0, -7.0, 0.1, 1e30, np.inf, -np.inf, np.nan]


def special_pairs(dtype):
    x, y = np.meshgrid(np.array(SPECIAL, dtype), np.array(SPECIAL, dtype))
    return x.ravel(), y.ravel()


def assert_float_same(got, expected, what):
    """Equal values, NaN where NumPy has NaN, and zeros of the same sign."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, what
    np.testing.assert_array_equal(got, expected, err_msg=what)  # (NaNs compare equal here)
    zeros = expected == 0
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(expected[zeros]), what)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", [*BACKENDS, "eager"])
def test_float_floor_division_and_modulo_follow_numpy(backend, dtype):
    x, y = special_pairs(dtype)
    rng = np.random.default_rng(7)
    x = np.concatenate([x, rng.uniform(-50, 50, SIZE).astype(dtype)])
    y = np.concatenate([y, rng.uniform(-5, 5, SIZE).astype(dtype)])
    fn = lambda a, b: [a // b, a % b, gj.floor_divide(a, b), gj.remainder(a, b)]  # noqa: E731
    with np.errstate(all="ignore"):  # (eager mode warns as NumPy does)
        got = run_eager(fn, [x, y]) if backend == "eager" else run_graph(fn, [x, y], backend)
        expected = [np.floor_divide(x, y), np.mod(x, y)] * 2
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_float_same(g, e, f"{['//', '%'][k % 2]} on {backend}")


@pytest.mark.parametrize("symbol", ["&", "|", "^", "~"])
@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_bitwise_operators_on_floats_name_the_operator(mode, symbol):
    def apply(t):
        return ~t if symbol == "~" else BINARY_OPERATORS[symbol](t, 1)

    message = re.escape(f"operator {symbol} needs integer or boolean tensors")
    if mode == "eager":
        with pytest.raises(gj.DTypeError, match=message):
            apply(gj.tensor(np.ones(3, np.float32)))
        return
    with gj.Graph().as_default():
        with pytest.raises(gj.DTypeError, match=message):
            apply(gj.placeholder(gj.float32, [3]))


def test_bitwise_functions_refuse_floats_and_floor_division_refuses_bools():
    with pytest.raises(gj.DTypeError, match="bitwise_and needs integer or boolean"):
        gj.bitwise_and(gj.tensor([1.5]), 1)
    with pytest.raises(gj.DTypeError, match="bitwise_not needs integer or boolean"):
        gj.bitwise_not(gj.tensor([1.5]))
    with pytest.raises(gj.DTypeError, match="bool"):
        gj.tensor([True]) // gj.tensor([True])


# ---- division by zero: one error, every mode ---------------------------------------------


# x // y and x % y with a zero among y, each inside a kernel with other work, and
# divisions by a constant 0 (which constant folding must leave to run time)
ZERO_DIVISIONS = [
    lambda a, b: (a // b) + 1,
    lambda a, b: (a % b) * 2,
    lambda a, b: gj.floor_divide(a, 0),
    lambda a, b: gj.remainder(a + b, 0) - a,
]


@pytest.mark.parametrize("k", range(len(ZERO_DIVISIONS)))
@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", [*BACKENDS, "eager"])
def test_integer_division_by_zero_is_a_runtime_check_error(backend, dtype, k):
    x = np.array([5, -3, 8, 1], dtype)
    y = np.array([2, 0, -3, 1], dtype)  # one zero among nonzero divisors
    fn = ZERO_DIVISIONS[k]
    with pytest.raises(gj.RuntimeCheckError, match="integer division or modulo by zero"):
        if backend == "eager":
            run_eager(fn, [x, y])
        else:
            run_graph(fn, [x, y], backend)


# An empty result computes nothing, so NumPy raises nothing: a zero divisor or a negative
# exponent that only an empty operand meets is no error (found by the long fuzz profile:
# the interpreter raised where llvm, as NumPy, did not).
EMPTY_RESULTS = [
    (lambda a, b: a // b, 0),
    (lambda a, b: a % b, 0),
    (gj.pow, -1),
]


@pytest.mark.parametrize("k", range(len(EMPTY_RESULTS)))
@pytest.mark.parametrize("backend", [*BACKENDS, "eager"])
def test_an_empty_result_checks_no_divisor_or_exponent(backend, k):
    fn, bad = EMPTY_RESULTS[k]
    x, y = np.zeros((1, 0), np.int32), np.array([[bad]], np.int32)
    got = run_eager(fn, [x, y]) if backend == "eager" else run_graph(fn, [x, y], backend)
    assert got.shape == (1, 0) and got.dtype == np.int32
    one = np.ones((1, 1), np.int32)
    with pytest.raises(gj.RuntimeCheckError):  # (one element computed: checked)
        run_eager(fn, [one, y]) if backend == "eager" else run_graph(fn, [one, y], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_session_runs_again_after_a_division_by_zero(backend):
    g = gj.Graph()
    with g.as_default():
        a = gj.placeholder(gj.int32, [None], name="a")
        b = gj.placeholder(gj.int32, [None], name="b")
        out = a // b
    x = np.array([7, -7], np.int32)
    with gj.Session(g, backend=backend) as sess:
        with pytest.raises(gj.RuntimeCheckError):
            sess.run(out, {a: x, b: np.array([2, 0], np.int32)})
        assert_same(sess.run(out, {a: x, b: np.array([2, 2], np.int32)}), x // 2, "rerun")


# ---- PyTorch agrees (where it is installed) ----------------------------------------------

TORCH_OPS = {  # torch's spelling of each operator and function
    "&": operator.and_,
    "|": operator.or_,
    "^": operator.xor,
    "//": operator.floordiv,
    "%": operator.mod,
    "bitwise_and": "bitwise_and",
    "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor",
    "floor_divide": "floor_divide",
    "remainder": "remainder",
}


@pytest.mark.parametrize("dtype", INT_DTYPES + [np.float64], ids=lambda d: np.dtype(d).name)
def test_eager_results_equal_pytorch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    if np.dtype(dtype).kind == "f":
        x, y = rng.uniform(-50, 50, SIZE), rng.uniform(-5, 5, SIZE)
    else:  # (away from MIN // -1, whose overflow each library may treat its own way)
        x, y = rng.integers(-1000, 1001, SIZE), rng.integers(-9, 10, SIZE)
        y = np.where(y == 0, 3, y)
    x, y = x.astype(dtype), y.astype(dtype)
    for name, torch_op in TORCH_OPS.items():
        if np.dtype(dtype).kind == "f" and name not in DIVISIONS:
            continue
        fn = torch_op if callable(torch_op) else getattr(torch, torch_op)
        expected = fn(torch.from_numpy(x), torch.from_numpy(y)).numpy()
        got = run_eager(gj_binary(name), [x, y])
        np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=name)
        assert got.dtype == expected.dtype, name


def test_eager_bool_results_equal_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    p, q = bools(rng), bools(rng)
    tp, tq = torch.from_numpy(p), torch.from_numpy(q)
    got = run_eager(lambda a, b: [a & b, a | b, a ^ b, ~a], [p, q])
    for g, e in zip(got, [tp & tq, tp | tq, tp ^ tq, ~tp]):
        assert_same(g, e.numpy(), "bool vs torch")


# ---- prod, argmin, any, all ----------------------------------------------------------------


def others_product(x: np.ndarray) -> np.ndarray:
    """For each element of a matrix, the product of the other elements of its row."""
    columns = range(x.shape[1])
    return np.stack([np.prod(np.delete(x, i, axis=1), axis=1) for i in columns], axis=1)


ZEROS = np.array(
    [
        [1.5, -2.0, 0.5, 3.0],  # no zero: the product over each element
        [2.0, 0.0, -1.5, 4.0],  # one zero: only it gets a gradient
        [0.0, 3.0, 0.0, 2.0],  # two zeros: no element does
    ]
)


@pytest.mark.parametrize(
    "backend", ["interpreter", "llvm", "eager"] if not SIMULATING else ["cuda"]
)
def test_prod_gradient_with_zeros_is_the_product_of_the_others(backend):
    expected = others_product(ZEROS)
    if backend == "eager":
        t = gj.tensor(ZEROS, requires_grad=True)
        gj.sum(gj.prod(t, axis=1)).backward()
        got = t.grad.numpy()
    else:
        got = run_graph(lambda x: gj.gradients(gj.sum(gj.prod(x, dim=1)), [x])[0], [ZEROS], backend)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_prod_and_argmin_match_numpy(backend):
    rng = np.random.default_rng(10)
    ints = rng.integers(-3, 4, (5, 6)).astype(np.int32)
    floats = rng.uniform(-2, 2, (5, 6))
    floats[1, 2] = floats[1, 4] = np.nan  # argmin takes the first NaN, as NumPy
    floats[3, :] = 1.0  # ties: the first
    fn = lambda i, f: [gj.prod(i), gj.prod(i, axis=0), gj.prod(f, axis=1, keepdims=True),  # noqa: E731
                       gj.argmin(i, axis=1), gj.argmin(f, axis=1), gj.argmin(f), gj.argmin(i, dim=0, keepdim=True)]  # fmt: skip
    got = run_graph(fn, [ints, floats], backend)
    expected = [np.prod(ints), np.prod(ints, axis=0), np.prod(floats, axis=1, keepdims=True),
                np.argmin(ints, axis=1), np.argmin(floats, axis=1), np.argmin(floats),
                np.argmin(ints, axis=0, keepdims=True)]  # fmt: skip
    for k, (g, e) in enumerate(zip(got, expected)):  # (a float product may round differently)
        assert g.dtype == e.dtype and g.shape == e.shape, f"result {k} on {backend}"
        np.testing.assert_allclose(g, e, rtol=1e-12, err_msg=f"result {k} on {backend}")


@pytest.mark.parametrize("backend", [*BACKENDS, "eager"])
def test_any_and_all_match_numpy_empty_axes_included(backend):
    rng = np.random.default_rng(11)
    mask = rng.integers(0, 2, (4, 5)).astype(bool)
    mask[0] = True
    mask[1] = False
    ints = rng.integers(-1, 2, (4, 5)).astype(np.int64)
    empty = np.zeros((3, 0), np.int32)
    fn = lambda m, i, e: [gj.any(m, axis=1), gj.all(m, axis=1), gj.any(m), gj.all(i, dim=0),  # noqa: E731
                          gj.any(i, keepdims=True), gj.any(e, axis=1), gj.all(e, axis=1)]  # fmt: skip
    arrays = [mask, ints, empty]
    got = run_eager(fn, arrays) if backend == "eager" else run_graph(fn, arrays, backend)
    expected = [mask.any(1), mask.all(1), mask.any(), ints.all(0), ints.any(keepdims=True),
                empty.any(1), empty.all(1)]  # fmt: skip
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_same(g, e, f"result {k} on {backend}")


# ---- the simulated cuda cases, from the main suite ---------------------------------------


@pytest.mark.skipif(SIMULATING, reason="the simulator is on: the cuda cases run in place")
def test_cuda_simulator_agrees():
    """This file's cuda cases, in a process with Numba's CUDA simulator on."""
    assert_cuda_cases_pass(__file__)
