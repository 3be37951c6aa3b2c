"""float16 and bfloat16 on the cuda backend (kernels run in Numba's CUDA simulator) against
the interpreter: every op-table record with float inputs, in both narrow dtypes, and the
casts whose rounding the kernels write out (float32/float64/integers to narrow). The rule
(ir/types.py `computes_in_float32`): each op computes in float32 and rounds once; sums,
matmuls and convolutions accumulate in float32 and round once at the end.

Results must agree to within two steps of the narrow type: a float32 sum in another order,
or a float32 transcendental off in the last bit, can round to the neighbouring narrow
value, and an op after it carries that on. Rule-level checks that are bit for bit are in
tests/static/test_narrow_dtypes.py."""

from __future__ import annotations

import numpy as np
import programs
import pytest
from cuda_helpers import run_on
from programs import OPS, floats, largest

import graphjit as gj
from graphjit.errors import DTypeError
from graphjit.nest import flatten
from op_table import OP_TABLE, inputs_for

pytest.importorskip("ml_dtypes")

NARROW = (gj.float16, gj.bfloat16)
STEP = {"float16": 2.0**-10, "bfloat16": 2.0**-7}  # the spacing of the type's values at 1
# The interpreter's NumPy kernels for these ops have no bfloat16 loop (np.einsum): the
# reference is the record in float32, rounded to bfloat16 (float32 accumulation).
NO_BFLOAT16_REFERENCE = frozenset({"conv2d", "conv2d_input_grad", "conv2d_filter_grad"})
# The interpreter's kernels for these sum in the narrow type itself (np.add.at, einsum,
# NumPy's bfloat16 mean), rounding at each addition, where the cuda kernels sum in float32
# and round once: they agree to steps at the scale of the whole result, not of each element.
SUMS_IN_NARROW = NO_BFLOAT16_REFERENCE | {
    "scatter_add",
    "scatter_add_along_axis",
    "avg_pool2d",
    "avg_pool2d_grad",
    "max_pool2d_grad",
}


def narrow_sets(case, dtype) -> list[list[np.ndarray]]:
    """The record's largest shapes (the float32/float64 suite runs them all), inputs drawn
    as for float32 and rounded to `dtype`."""
    return [inputs_for(case, largest(case.shapes), dtype.np, seed=3)]


def builds(case, dtype) -> bool:
    """Whether the record's type rules take `dtype` (cumsum refuses bfloat16, for one)."""
    try:
        programs.record(case, narrow_sets(case, dtype))
    except DTypeError:
        return False
    return True


NARROW_CASES = [
    pytest.param(case, dtype, id=f"{case.name}-{dtype.name}")
    for case in OP_TABLE
    if floats(case)
    for dtype in NARROW
    if builds(case, dtype)
]


def reference(case, dtype, sets, program) -> list:
    if dtype == gj.bfloat16 and OPS[id(case)] & NO_BFLOAT16_REFERENCE:
        wide = [[a.astype(np.float32) if a.dtype == dtype.np else a for a in s] for s in sets]
        p32 = programs.record(case, wide)
        out = run_on("interpreter", p32.graph, p32.fetches, p32.feeds[None])
        return [np.asarray(o).astype(dtype.np) if o.dtype == np.float32 else o for o in out]
    return run_on("interpreter", program.graph, program.fetches, program.feeds[None])


def assert_close_in_steps(got, expected, what: str, whole: bool = False, steps=2.0) -> None:
    """Same shape and dtype; a narrow float within `steps` steps of its type at the
    expected value's magnitude (with `whole`, at the largest magnitude in the result), NaN
    where NaN; anything else equal."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    if got.dtype.name not in STEP:
        np.testing.assert_array_equal(got, expected, err_msg=what)
        return
    g, e = got.astype(np.float64), expected.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(e), err_msg=f"{what}: NaNs")
    finite = np.abs(e[np.isfinite(e)])
    scale = finite.max(initial=0.0) if whole else np.abs(e)
    # (below 2**-6, a fixed step: a result that cancels carries its operands' rounding)
    spacing = STEP[got.dtype.name] * np.maximum(scale, 2.0**-6)
    bad = ~(np.abs(g - e) <= steps * spacing) & ~np.isnan(e) & (g != e)
    assert not bad.any(), f"{what}: {g[bad][:5]} != {e[bad][:5]}"


@pytest.mark.parametrize("case, dtype", NARROW_CASES)
def test_record_matches_interpreter(case, dtype):
    sets = narrow_sets(case, dtype)
    program = programs.record(case, sets)
    got = run_on("cuda", program.graph, program.fetches, program.feeds[None])
    expected = reference(case, dtype, sets, program)
    pairs = zip(flatten(got)[0], flatten(expected)[0], strict=True)
    whole = bool(OPS[id(case)] & SUMS_IN_NARROW)
    for k, (g, e) in enumerate(pairs):
        assert_close_in_steps(g, e, f"{case.name} ({dtype.name}) fetch {k}", whole)


# ---- casts to float16/bfloat16: one rounding from every source dtype -----------------------

TIE_ABOVE = 2**30 + 2**22 + 1  # just above a bfloat16 tie; via float32 it would be on it
CAST_SOURCES = {
    "float64": [1 + 2.0**-11 + 2.0**-40, 1 + 2.0**-8 + 2.0**-40, 1e300, -1e-300, np.nan,
                65519.99, 3.3961e38, 2.0**-134, -0.0, float(TIE_ABOVE)],
    "float32": [1 + 2.0**-11, -(1 + 3 * 2.0**-8), 65520.0, 3.4e38, 2.0**-25, np.inf, np.nan],
    "int64": [TIE_ABOVE, -TIE_ABOVE, 65520, 257, 0, -(2**40) - 2**32],
    "int32": [TIE_ABOVE, -TIE_ABOVE, 2**31 - 1, -(2**31), 65519],
    "uint8": [0, 1, 255, 129],
    "bool": [True, False],
}  # fmt: skip


def bits(a: np.ndarray) -> np.ndarray:
    """16-bit floats as their bits, every NaN as one."""
    nan = np.isnan(a.astype(np.float32))
    return np.where(nan, 0x7FFF, a.view(np.uint16))


def test_casts_to_narrow_round_once_like_numpy():
    g = gj.Graph()
    fetches, expected, feeds = [], [], {}
    with g.as_default():
        for name, values in CAST_SOURCES.items():
            x = np.array(values, name)
            p = gj.placeholder(x.dtype, x.shape, name=name)
            feeds[p] = x
            for dtype in NARROW:
                fetches.append(gj.cast(p, dtype))
                with np.errstate(over="ignore"):
                    expected.append(x.astype(dtype.np))
        for a, b in [NARROW, NARROW[::-1]]:  # float16 <-> bfloat16
            x = np.array(CAST_SOURCES["float32"], np.float32).astype(a.np)
            p = gj.placeholder(a, x.shape, name=f"from_{a.name}")
            feeds[p] = x
            fetches.append(gj.cast(p, b))
            expected.append(x.astype(np.float32).astype(b.np))
    got = run_on("cuda", g, fetches, feeds)
    for k, (o, e) in enumerate(zip(got, expected, strict=True)):
        assert o.dtype == e.dtype, f"cast {k}: {o.dtype} != {e.dtype}"
        np.testing.assert_array_equal(bits(o), bits(e), err_msg=f"cast {k} ({e.dtype})")
