"""float16 and bfloat16 on the llvm backend for the ops it once refused (convolutions and
their gradients, pooling and its gradients, scatter-adds, cumsum, sort and the tensor lists
of loop gradients), compared with the interpreter, the reference.

What the interpreter computes decides what "equal" means. Convolutions, pooling and the
scatter-adds compute in float32 and round each result once (ir/types.py
`computes_in_float32`); llvm widens their operands, lowers them in float32 and rounds once
(codegen/llvm/widen.py). Their float32 sums may be added in another order (BLAS against
NumPy's einsum), so these tests feed values whose float32 sums are exact in any order
(multiples of 1/8 below 2**7): the narrow results must then be equal bit for bit, NaNs as
NaNs. Random values are checked to within one narrow step. cumsum accumulates in the narrow
dtype, one rounding per running sum (np.cumsum's), sort moves the narrow values unchanged,
and a list adds with one rounding per addition: all bit for bit on any values."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir import builder
from graphjit.ir.core import Block, Function, Region
from graphjit.ir.ops.scan import cumsum_kernel
from graphjit.ir.types import TensorType
from graphjit.runtime.executable import compile_program
from graphjit.runtime.program import Program

pytest.importorskip("ml_dtypes")

NARROW = [gj.float16, gj.bfloat16]
IDS = ["float16", "bfloat16"]

# the ops llvm refused on float16/bfloat16 before (each case below names those it builds)
ONCE_REFUSED = {
    "conv2d",
    "conv2d_input_grad",
    "conv2d_filter_grad",
    "max_pool2d",
    "max_pool2d_grad",
    "max_pool2d_pick",
    "avg_pool2d",
    "avg_pool2d_grad",
    "cumsum",
    "sort",
    "scatter_add",
    "scatter_add_along_axis",
    "list_new",
    "list_push",
    "list_get",
    "list_zeros_like",
    "list_add_at",
    "list_add",
}


def run_both(build, arrays: list):
    """build(*placeholders) -> a list of fetches, run on the interpreter and on llvm."""
    g = gj.Graph()
    with g.as_default():
        inputs = [gj.placeholder(a.dtype, shape=a.shape) for a in arrays]
        fetches = build(*inputs)
    feeds = dict(zip(inputs, arrays, strict=True))
    results = []
    for backend in ("interpreter", "llvm"):
        with gj.Session(g, backend=backend) as sess:
            results.append([np.asarray(r) for r in sess.run(fetches, feeds)])
    return results


def bits(array: np.ndarray):
    """A narrow array as (NaN positions, its 16-bit patterns with every NaN as 0)."""
    nan = np.isnan(array.astype(np.float32))
    return nan, np.where(nan, 0, array.view(np.uint16))


def assert_same(got: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    """Equal in dtype, shape and bits (-0.0 is not 0.0), NaNs where NaNs are."""
    assert got.dtype == expected.dtype and got.shape == expected.shape, what
    if expected.dtype.itemsize == 2 and expected.dtype.kind != "i":
        (gn, gb), (en, eb) = bits(got), bits(expected)
        np.testing.assert_array_equal(gn, en, err_msg=f"{what}: NaN positions")
        np.testing.assert_array_equal(gb, eb, err_msg=what)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=what)


def assert_all_same(build, arrays) -> None:
    expected, got = run_both(build, arrays)
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert_same(g, e, f"fetch {k}")


def assert_within_one_step(got: np.ndarray, expected: np.ndarray) -> None:
    """Finite narrow values at most one representable step apart."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    order = lambda b: np.where(b & 0x8000, -(b & 0x7FFF), b)  # noqa: E731
    steps = order(got.view(np.uint16).astype(np.int32)) - order(
        expected.view(np.uint16).astype(np.int32)
    )
    assert np.abs(steps).max(initial=0) <= 1


def eighths(dtype, shape, seed: int) -> np.ndarray:
    """Multiples of 1/8 in (-4, 4): exact in both narrow dtypes, and the float32 sums of
    these small convolutions and pools are exact in any order."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-31, 32, shape) / 8).astype(dtype.np)


def normals(dtype, shape, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 3).astype(dtype.np)


def with_specials(a: np.ndarray) -> np.ndarray:
    """a with NaN, ±infinity and -0.0 at its first positions (flattened)."""
    a = a.copy()
    flat = a.reshape(-1)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, np.nan], np.float32)[: flat.size]
    flat[: specials.size] = specials.astype(a.dtype)
    return a


# ---- convolutions and pooling ------------------------------------------------------------


def conv_and_gradients(x, w, **attrs):
    y = gj.nn.conv2d(x, w, **attrs)
    return [y, *gj.gradients(gj.reduce_sum(y * y), [x, w])]


CONVS = {
    "plain": {},
    "padded-strided": {"stride": 2, "padding": 1},
    "dilated": {"dilation": 2, "padding": 2},
    "grouped": {"groups": 2, "padding": 1},
}


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
@pytest.mark.parametrize("name", sorted(CONVS))
def test_conv2d_and_its_gradients_round_once(dtype, name):
    x, w = (
        eighths(dtype, (2, 4, 6, 5), 1),
        eighths(dtype, (6, 2 if name == "grouped" else 4, 3, 3), 2),
    )
    assert_all_same(lambda x, w: conv_and_gradients(x, w, **CONVS[name]), [x, w])


def pools_and_gradients(x, v, u):
    """Both pools and their gradients, and max_pool2d_pick: the gradient of max_pool2d_grad
    with respect to its cotangent."""
    fetches = []
    for pool in (gj.nn.max_pool2d, gj.nn.avg_pool2d):
        fetches.append(pool(x, 2))
        y = pool(x, 3, 2, 1)
        (dx,) = gj.gradients(gj.reduce_sum(y * v), [x])
        fetches.append(dx)
    (dx,) = gj.gradients(gj.reduce_sum(gj.nn.max_pool2d(x, 3, 2, 1) * v), [x])
    fetches += gj.gradients(gj.reduce_sum(dx * u), [v])
    return fetches


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
@pytest.mark.parametrize("specials", [False, True], ids=["finite", "nan-inf"])
def test_pooling_and_its_gradients_round_once(dtype, specials):
    x = eighths(dtype, (2, 3, 6, 7), 3)
    if specials:  # a NaN wins its max window (the first NaN); infinities propagate
        x = with_specials(x)
        x[1, 2, 4, 3] = np.nan
    v, u = eighths(dtype, (2, 3, 3, 4), 4), eighths(dtype, (2, 3, 6, 7), 5)
    assert_all_same(pools_and_gradients, [x, v, u])


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
def test_random_values_are_within_one_step_of_the_interpreter(dtype):
    """Any values: float32 sums in another order may round to the neighbouring value."""
    x, w = normals(dtype, (2, 4, 7, 7), 6), normals(dtype, (5, 4, 3, 3), 7)
    v, u = normals(dtype, (2, 4, 4, 4), 8), normals(dtype, (2, 4, 7, 7), 9)
    expected, got = run_both(lambda x, w: conv_and_gradients(x, w, padding=1), [x, w])
    expected_pools, got_pools = run_both(pools_and_gradients, [x, v, u])
    for g, e in zip(got + got_pools, expected + expected_pools, strict=True):
        assert_within_one_step(g, e)


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
def test_empty_convolutions_and_pools(dtype):
    """No input channels: the convolution is all zeros, elements made from empty operands.
    No images: the filter gradient is all zeros. (The interpreter's input gradients of
    convolution and max pooling fail on an empty batch, float32 too, so those are left out.)"""
    x, w = eighths(dtype, (2, 0, 5, 5), 1), eighths(dtype, (3, 0, 3, 3), 2)
    assert_all_same(lambda x, w: conv_and_gradients(x, w, padding=1), [x, w])

    def empty_batch(x, w):
        y = gj.nn.conv2d(x, w, padding=1)
        pooled = [gj.nn.max_pool2d(x, 2), gj.nn.avg_pool2d(x, 3, 2, 1)]
        avg_grad = gj.gradients(gj.reduce_sum(pooled[1]), [x])
        return [y, *gj.gradients(gj.reduce_sum(y * y), [w]), *pooled, *avg_grad]

    x, w = eighths(dtype, (0, 2, 6, 6), 3), eighths(dtype, (3, 2, 3, 3), 4)
    assert_all_same(empty_batch, [x, w])


# ---- scatter-adds ------------------------------------------------------------------------


SCATTERED_TO = np.array([1] * 8 + [0, 4, 4, 2, 0, 3])
TAKEN = np.array([[0, 2, 2, 1], [3, 3, 0, 1]])


def scatter_adds(x, updates):
    table = gj.reshape(updates[:8], [2, 4])
    return [
        gj.scatter_add(x, SCATTERED_TO, updates),  # x + scatter_add(updates)
        gj.reduce_sum(updates) + gj.scatter_add(x * 0, SCATTERED_TO, updates),
        *gj.gradients(gj.reduce_sum(gj.gather(updates, SCATTERED_TO[:5]) * 3.0), [updates]),
        *gj.gradients(gj.reduce_sum(gj.take_along_axis(table, TAKEN, 1) * table), [table]),
    ]


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
@pytest.mark.parametrize("specials", [False, True], ids=["finite", "nan-inf"])
def test_scatter_adds_sum_in_float32_and_round_once(dtype, specials):
    """Repeated indices add up in float32, rounded once (eight times 0.3 at index 1)."""
    updates = np.concatenate([np.full(8, 0.3), normals(dtype, 6, 10)]).astype(dtype.np)
    if specials:
        updates = with_specials(updates)
    assert_all_same(scatter_adds, [np.full(5, 1000, dtype.np), updates])


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
def test_scatter_add_of_nothing_is_zeros(dtype):
    x, empty = eighths(dtype, (4, 3), 11), np.zeros((0, 3), dtype.np)
    assert_all_same(lambda x, u: [gj.scatter_add(x, np.zeros(0, np.int64), u)], [x, empty])


# ---- cumsum and sort ---------------------------------------------------------------------


def cumsums(x, y, zero):
    return [
        gj.cumsum(x),
        gj.cumsum(x, reverse=True),
        gj.cumsum(y, 1),
        gj.cumsum(zero),
        gj.cumsum(zero, 1, reverse=True),
        *gj.gradients(gj.reduce_sum(gj.cumsum(x) * x), [x]),
    ]


def test_float16_cumsum_rounds_every_running_sum():
    """As np.cumsum in float16: 1000 + 0.3 + 0.3 ... rounds at each step (one rounding of
    a float32 running sum would give other values)."""
    x = np.array([[1000] + [0.3] * 7] * 2, np.float16).T.copy()
    x[:, 1] = normals(gj.float16, 8, 12)
    y = with_specials(normals(gj.float16, (3, 5), 13))
    expected, got = run_both(cumsums, [x, y, np.zeros((0, 3), np.float16)])
    assert expected[0][-1, 0] != np.float16(np.float32(1000) + np.float32(0.3 * 7))
    for g, e in zip(got, expected, strict=True):
        assert_same(g, e)


@pytest.mark.parametrize("reverse", [False, True])
def test_bfloat16_cumsum_lowering_rounds_every_running_sum(reverse):
    """The type rule of cumsum refuses bfloat16 (ir/ops/scan.py: NumPy's kind of it is "V"),
    so no graph has one; the llvm lowering is checked on a function built around the rule,
    against the reference kernel."""
    from graphjit.ir.types import bfloat16

    t = TensorType((4, 6), bfloat16)
    fn = Function("f", Region(Block([t])))
    with builder.insertion_point(fn.block):
        attrs = {"axis": 0, "reverse": reverse}
        y = builder.create("cumsum", fn.args, attrs, result_types=[t]).result
        builder.create("return", [y], result_types=[])
    x = with_specials(normals(bfloat16, (4, 6), 14) * 40)
    x[:, -1] = [1000, 0.3, 0.3, 0.3]
    (got,) = compile_program(Program(fn, [], [], [], []), "llvm").run([x])
    assert_same(got, cumsum_kernel(x, axis=0, reverse=reverse))


def sorts(x, no_columns, no_rows):
    ascending, descending = gj.sort(x), gj.sort(x, descending=True)
    top = gj.topk(x, 4)
    return [
        ascending.values,
        ascending.indices,
        descending.values,
        descending.indices,
        top.values,
        top.indices,
        gj.sort(x, dim=0).values,
        gj.sort(no_columns).values,
        gj.sort(no_rows, descending=True).values,
        *gj.gradients(gj.reduce_sum(gj.sort(x * 2.0, dim=0).values * x), [x]),
    ]


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
def test_sort_orders_narrow_values_as_numpy_does(dtype):
    """Stable in both directions (ties: ±0.0 and repeats), NaN largest, the values moved
    unchanged; top-k; empty rows and no rows; and sort's gradient, a scatter-add."""
    x = eighths(dtype, (3, 9), 15)
    x[0] = np.array([1, np.nan, -np.inf, 0, -0.0, np.nan, 2, np.inf, 1], np.float32)
    x[1, :4] = np.array([-0.0, 0, -0.0, 0], np.float32)
    x = x.astype(dtype.np)
    no_columns, no_rows = np.zeros((3, 0), dtype.np), np.zeros((0, 4), dtype.np)

    assert_all_same(sorts, [x, no_columns, no_rows])


# ---- gradients: convolution and pooling, and loops whose tapes are narrow ---------------------


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
def test_conv_pool_gradient_of_a_narrow_parameter(dtype):
    """A small convolutional layer with a `dtype` weight variable: one step of training."""
    x = eighths(dtype, (2, 3, 8, 8), 16)
    g = gj.Graph()
    with g.as_default():
        images = gj.placeholder(dtype, x.shape, name="images")
        w = gj.Variable(eighths(dtype, (4, 3, 3, 3), 17), name="w")
        h = gj.nn.max_pool2d(gj.relu(gj.nn.conv2d(images, w, padding=1)), 2)
        loss = gj.reduce_sum(gj.nn.avg_pool2d(h, 2) * 0.25)
        (dw,) = gj.gradients(loss, [w])
        step = w.assign(w - dw * 0.125)
    results = []
    for backend in ("interpreter", "llvm"):
        with gj.Session(g, backend=backend) as sess:
            results.append([*sess.run([loss, dw, step], {images: x}), sess.run(w)])
    for got, expected in zip(results[1], results[0], strict=True):
        assert_same(np.asarray(got), np.asarray(expected))


def loop_gradients(x, w, n):
    def body(i, y):
        return i + 1, y * w - y * y * 0.25 + 0.5

    _, y = gj.while_loop(lambda i, y: i < n, body, [gj.constant(0, gj.int64), x])
    dx, dw = gj.gradients(gj.reduce_sum(y * y), [x, w])
    return [y, dx, dw, *gj.gradients(gj.reduce_sum(dx * dw), [x, w])]


@pytest.mark.parametrize("dtype", NARROW, ids=IDS)
@pytest.mark.parametrize("trips", [0, 4])
def test_while_loop_gradients_with_narrow_tapes(dtype, trips):
    """The loop's tape is a tensor list of `dtype` values (push, get); the second-order
    gradient adds lists (zeros_like, add_at, add). Elementwise ops only: each rounds once,
    so every value is the interpreter's bit for bit. Zero trips: empty tapes."""
    x0, w0 = np.array([0.3, -1.2, 2.0], dtype.np), np.array([0.9, 1.7, -0.4], dtype.np)
    n0 = np.array(trips, np.int64)

    assert_all_same(loop_gradients, [x0, w0, n0])


# the builders above, with operand shapes (() is the loop's int64 trip count)
BUILDERS = [
    (lambda x, w: conv_and_gradients(x, w, padding=1), [(2, 4, 6, 5), (6, 4, 3, 3)]),
    (pools_and_gradients, [(2, 3, 6, 7), (2, 3, 3, 4), (2, 3, 6, 7)]),
    (scatter_adds, [(5,), (14,)]),
    (cumsums, [(8, 2), (3, 5), (0, 3)]),
    (sorts, [(3, 9), (3, 0), (0, 4)]),
    (loop_gradients, [(3,), (3,), ()]),
]


def test_the_cases_build_every_once_refused_op():
    names = set()
    for build, shapes in BUILDERS:
        g = gj.Graph()
        with g.as_default():
            build(*[gj.placeholder(gj.float16 if s else gj.int64, s) for s in shapes])
        names |= {op.name for op in g.block.walk()}
    assert ONCE_REFUSED - names == set()
