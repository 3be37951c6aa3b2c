"""Feeds whose values do not fit the placeholder's dtype are a FeedError naming the
placeholder, never a silent wrap-around (issue 14): int64 2**40 fed to an int32
placeholder used to become 0."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import FeedDTypeError

I32_MAX, I64_MAX = 2**31 - 1, 2**63 - 1


def graph(dtype, shape=(None,)):
    g = gj.Graph()
    with g.as_default():
        k = gj.placeholder(dtype, list(shape), name="k")
    return g, k


def run(dtype, value, shape=(None,)):
    g, k = graph(dtype, shape)
    with gj.Session(g, backend="interpreter") as sess:
        return sess.run(k, {k: value})


def assert_range_error(dtype, value, bad, shape=(None,)):
    with pytest.raises(gj.FeedError) as info:
        run(dtype, value, shape)
    message = str(info.value)
    assert "'k'" in message and str(bad) in message and dtype.name in message, message


@pytest.mark.parametrize(
    "value, bad",
    [
        (np.array([2**40]), 2**40),  # was 0
        (np.array([1, -(2**31) - 1], np.int64), -(2**31) - 1),
        (np.array([I32_MAX + 1], np.uint32), I32_MAX + 1),
        (np.array([2**63], np.uint64), 2**63),
        ([3, 2**40], 2**40),  # a Python list becomes int64 first
        (2**40, 2**40),  # a Python scalar too
    ],
)
def test_integers_out_of_int32_range_are_feed_errors(value, bad):
    assert_range_error(gj.int32, value, bad, () if np.ndim(value) == 0 else (None,))


@pytest.mark.parametrize(
    "value, bad",
    [
        (np.array([I64_MAX + 1], np.uint64), I64_MAX + 1),  # was -2**63
        (np.array([2**64 - 1], np.uint64), 2**64 - 1),  # was -1
        ([2**63], 2**63),  # NumPy makes it uint64
        ([2**70, 1], 2**70),  # beyond every NumPy integer: an object array
        ([-(2**63) - 1], -(2**63) - 1),
        (2**100, 2**100),
    ],
)
def test_integers_out_of_int64_range_are_feed_errors(value, bad):
    assert_range_error(gj.int64, value, bad, () if np.ndim(value) == 0 else (None,))


@pytest.mark.parametrize(
    "dtype, value",
    [
        (gj.int32, np.array([-(2**31), I32_MAX], np.int64)),  # the edges fit
        (gj.int32, np.array([0, I32_MAX], np.uint64)),
        (gj.int32, np.array([7], np.int16)),
        (gj.int32, np.array([True, False])),
        (gj.int32, np.array([], np.int64)),
        (gj.int64, np.array([I64_MAX], np.uint64)),
        (gj.int64, [-(2**63), I64_MAX]),
        (gj.int64, np.array([2**32 - 1], np.uint32)),
    ],
)
def test_integers_in_range_convert_exactly(dtype, value):
    got = run(dtype, value)
    assert got.dtype == dtype.np
    np.testing.assert_array_equal(got, np.asarray(value).astype(object))


@pytest.mark.parametrize("value", [[np.nan], [np.inf], [-np.inf], [1.5], [1e30], [2.0]])
@pytest.mark.parametrize("dtype", [gj.int32, gj.int64])
def test_floats_to_an_integer_placeholder_are_dtype_errors(dtype, value):
    """same_kind casting already refuses float → int, so NaN, infinity, fractions and
    huge values never reach a cast that would make garbage of them."""
    with pytest.raises(FeedDTypeError, match="'k'"):
        run(dtype, np.array(value))


def test_integers_to_a_bool_placeholder_are_dtype_errors():
    with pytest.raises(FeedDTypeError, match="'k'"):
        run(gj.bool_, np.array([2**40]))


def test_bools_and_integers_to_float_placeholders_convert():
    np.testing.assert_array_equal(run(gj.float32, np.array([True, False])), [1.0, 0.0])
    np.testing.assert_array_equal(run(gj.float64, np.array([2**40])), [2.0**40])
    np.testing.assert_array_equal(run(gj.float64, np.array([2**64 - 1], np.uint64)), [2.0**64])


def test_a_range_error_after_a_good_run_of_the_same_signature():
    """The remembered run plan of a repeated run skips validation only for feeds that
    needed no conversion; an int64 feed to an int32 placeholder is checked every time."""
    g, k = graph(gj.int32)
    with g.as_default():
        y = k + 1
    with gj.Session(g, backend="interpreter") as sess:
        for _ in range(2):
            np.testing.assert_array_equal(sess.run(y, {k: np.array([1, 2])}), [2, 3])
        with pytest.raises(gj.FeedError, match="'k'"):
            sess.run(y, {k: np.array([1, 2**40])})
        exact = np.array([1, 2], np.int32)
        for _ in range(2):
            np.testing.assert_array_equal(sess.run(y, {k: exact}), [2, 3])


def test_range_error_points_at_the_placeholder_line():
    g = gj.Graph()
    with g.as_default():
        k = gj.placeholder(gj.int32, [None], name="k")
        line = k.op.loc.line
    with gj.Session(g, backend="interpreter") as sess:
        with pytest.raises(gj.FeedError) as info:
            sess.run(k, {"k": np.array([2**40])})
    assert info.value.op is k.op and f":{line}" in str(info.value)


# ---- the same rule for constants, variables and eager tensors --------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda v, d: gj.constant(v, dtype=d),
        lambda v, d: gj.Variable(v, dtype=d),
    ],
    ids=["constant", "Variable"],
)
@pytest.mark.parametrize(
    "value, dtype",
    [(2**40, gj.int32), ([1, 2**31], gj.int32), (2**64, gj.int64), (float("nan"), gj.int32)],
)
def test_graph_values_that_do_not_fit_their_dtype_are_refused(make, value, dtype):
    """np.array(2**40, dtype=int32) wraps (or raised a bare OverflowError): a DTypeError
    naming the value and the user's line instead."""
    with gj.Graph().as_default(), pytest.raises(gj.DTypeError, match="does not fit") as info:
        make(value, dtype)
    assert "test_feed_ranges.py" in str(info.value)


@pytest.mark.parametrize(
    "data, dtype",
    [([2**40], gj.int32), (np.array([2**40]), gj.int32), ([2**70], None), ([np.inf], gj.int64)],
)
def test_eager_tensors_that_do_not_fit_their_dtype_are_refused(data, dtype):
    with pytest.raises(gj.DTypeError, match="does not fit"):
        gj.tensor(data, dtype=dtype)


def test_values_that_fit_keep_working():
    assert gj.tensor([2**31 - 1], dtype=gj.int32).numpy().tolist() == [2**31 - 1]
    assert gj.tensor(np.float64(1.5)).dtype == gj.float64  # NumPy scalars keep their dtype
    assert gj.tensor([1, 2]).dtype == gj.int64 and gj.tensor(1.5).dtype == gj.float32
    with gj.Graph().as_default():
        assert gj.constant(2.7, dtype=gj.int32).op.attrs["value"] == 2  # truncates, as NumPy
        assert gj.constant(-(2**31), dtype=gj.int32).op.attrs["value"] == -(2**31)


@pytest.mark.parametrize("dim", [float("inf"), float("nan"), 2.5, 2.0, "2"])
def test_shape_arguments_must_be_integers(dim):
    """int() truncated 2.5 to 2 and raised a bare OverflowError on inf: a ShapeError for
    every shape argument, static and eager."""
    with gj.Graph().as_default():
        x = gj.placeholder(gj.float32, [None])
        for make in (
            lambda: gj.broadcast_to(x, [dim]),
            lambda: gj.reshape(x, [dim, -1]),
            lambda: gj.placeholder(gj.float32, [None, dim]),
        ):
            with pytest.raises(gj.ShapeError, match="must be integers"):
                make()
    for make in (lambda: gj.zeros(dim, 2), lambda: gj.tensor(np.ones(4)).view(dim, -1)):
        with pytest.raises(gj.ShapeError, match="must be integers"):
            make()


# ---- hostile arguments are GraphjitErrors, in both modes -------------------------------------


def both_modes(build):
    """build(x) on a graph placeholder and on an eager tensor of shape (2, 3)."""
    with gj.Graph().as_default():
        yield lambda: build(gj.placeholder(gj.float32, [2, 3]))
    yield lambda: build(gj.tensor(np.ones((2, 3), np.float32)))


HOSTILE = {
    "axis 1.5": (lambda x: gj.sum(x, axis=1.5), gj.ShapeError),
    "one_hot depth -3": (lambda x: gj.one_hot(gj.cast(x, gj.int32), -3), gj.ShapeError),
    "one_hot depth 2**40": (lambda x: gj.one_hot(gj.cast(x, gj.int32), 2**40), gj.ResourceError),
    "one_hot depth 2.0": (lambda x: gj.one_hot(gj.cast(x, gj.int32), 2.0), gj.DTypeError),
    "int32 + 2**40": (lambda x: gj.cast(x, gj.int32) + 2**40, gj.DTypeError),
    "int64 ** 2**70": (lambda x: gj.cast(x, gj.int64) ** 2**70, gj.DTypeError),
    "reshape to (-2, 3)": (lambda x: gj.reshape(x, [-2, 3]), gj.ShapeError),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_arguments_are_the_same_error_in_both_modes(case):
    """Found hunting the class of issue 14's bugs: each raised a bare TypeError,
    OverflowError or MemoryError (one_hot tried to allocate 4 TiB at build time), or, for
    the eager reshape, silently took -2 as -1."""
    build, error = HOSTILE[case]
    for make in both_modes(build):
        with pytest.raises(error) as info:
            make()
        assert "test_feed_ranges.py" in str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gj.zeros(2**40),
        lambda: gj.ones(2**20, 2**20),
        lambda: gj.randn(2**40),
        lambda: gj.arange(2**40),
        lambda: gj.zeros_like(gj.broadcast_to(gj.tensor(np.ones(1)), (2**40,))),
    ],
)
def test_eager_factories_refuse_tensors_larger_than_memory_before_allocating(make):
    with pytest.raises(gj.ResourceError, match="more than a tensor may take"):
        make()


@pytest.mark.parametrize("value", [np.int64(2**40), np.array([1, 2**40]), 2**40, float("nan")])
def test_constant_operands_that_do_not_fit_are_refused_by_both_handlers(value):
    """A constant lifted to an operand's dtype: NumPy's own conversion wraps NumPy values
    (np.array(np.int64(2**40), dtype=int32) is 0); both modes' handlers refuse them."""
    from graphjit.frontend.eager.dispatch import HANDLER
    from graphjit.ir.ops import GraphHandler

    with pytest.raises(gj.DTypeError, match="does not fit int32"):
        HANDLER.lift(value, gj.int32)
    with gj.Graph().as_default(), pytest.raises(gj.DTypeError, match="does not fit int32"):
        GraphHandler().lift(value, gj.int32)
    assert HANDLER.lift(np.int64(7), gj.int32).numpy() == 7  # what fits is kept
