"""codegen/layout.py: the geometry both code generators share, with expectations worked out
by hand (C-contiguous buffers, element strides), plus the generators' use of it: one element
is the 0-d walk in both backends, whatever the rank of its size-1 shape."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from llvmlite import ir as llvm_ir

from graphjit.codegen import layout
from graphjit.codegen.cuda import copies, fused, source
from graphjit.codegen.layout import (
    broadcast_strides,
    coalesce,
    contiguous_strides,
    iteration_space,
    keepdims_shape,
    nbytes,
    size_of,
    slice_geometry,
)
from graphjit.codegen.llvm import kernel, loops, lower
from graphjit.ir import parse, verify
from graphjit.ir.types import TensorType, float32, float64, int64

# ---- sizes and strides ------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, size",
    [((), 1), ((5,), 5), ((2, 3, 4), 24), ((1, 1), 1), ((3, 0, 5), 0), ((0,), 0)],
)
def test_size_of(shape, size):
    assert size_of(shape) == size
    assert type(size_of(shape)) is int


def test_size_of_is_a_python_int_that_does_not_wrap():
    """It is written into generated code as a literal: numpy dims become ints, and a product
    past int64 stays exact (np.prod would wrap it)."""
    assert type(size_of((np.int64(3), np.int32(4)))) is int
    assert size_of((2**40, 2**40)) == 2**80


def test_nbytes():
    assert nbytes(SimpleNamespace(type=TensorType((2, 3), float32))) == 24
    assert nbytes(SimpleNamespace(type=TensorType((), float64))) == 8
    assert nbytes(SimpleNamespace(type=TensorType((4, 0), int64))) == 0


@pytest.mark.parametrize(
    "shape, strides",
    [
        ((), []),
        ((5,), [1]),
        ((2, 3, 4), [12, 4, 1]),
        ((1, 1), [1, 1]),
        ((2, 0, 3), [0, 3, 1]),  # nothing to address: the zero stride is never used
    ],
)
def test_contiguous_strides(shape, strides):
    assert contiguous_strides(shape) == strides


@pytest.mark.parametrize(
    "shape, space, strides",
    [
        ((2, 3), (2, 3), [3, 1]),  # same shape: its own strides
        ((3,), (2, 3), [0, 1]),  # a missing leading axis reads the same row twice
        ((2, 1), (2, 3), [1, 0]),  # a column stretched along axis 1
        ((), (2, 3), [0, 0]),  # a scalar everywhere
        ((4, 1, 3), (2, 4, 5, 3), [0, 3, 0, 1]),
        ((1, 1), (1, 1), [1, 1]),  # size 1 not stretched: its own (unused) strides
        ((1, 3), (0, 3), [0, 1]),  # stretched to an empty axis
        ((0, 3), (0, 3), [3, 1]),
    ],
)
def test_broadcast_strides(shape, space, strides):
    assert broadcast_strides(shape, space) == strides


def test_broadcast_strides_visit_what_numpy_broadcasting_reads():
    x = np.arange(12.0).reshape(4, 1, 3)
    space = (2, 4, 5, 3)
    strides = broadcast_strides(x.shape, space)
    got = [x.ravel()[np.dot(c, strides)] for c in np.ndindex(*space)]
    np.testing.assert_array_equal(got, np.broadcast_to(x, space).ravel())


# ---- coalesce ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space, strides_list, want",
    [
        # same-shaped contiguous buffers: one flat loop
        ([2, 3, 4], [[12, 4, 1], [12, 4, 1]], ([24], [[1], [1]])),
        # a row broadcast over axis 0: axis 0 cannot merge (stride 0 is not 1 * 3)
        ([2, 3], [[0, 1], [3, 1]], ([2, 3], [[0, 1], [3, 1]])),
        # a missing leading axis: the trailing two merge, the leading one stays
        ([2, 3, 4], [[0, 4, 1], [12, 4, 1]], ([2, 12], [[0, 1], [12, 1]])),
        # a column stretched along axis 1
        ([4, 3], [[1, 0], [3, 1]], ([4, 3], [[1, 0], [3, 1]])),
        # a transpose of a 2x3 array read into a contiguous 3x2 one
        ([3, 2], [[1, 3], [2, 1]], ([3, 2], [[1, 3], [2, 1]])),
        # a reversed slice keeps its negative stride
        ([5], [[-1], [1]], ([5], [[-1], [1]])),
        # an empty axis stays (the walk is empty), the contiguous axes around it merge
        ([2, 0, 3], [[0, 3, 1], [0, 3, 1]], ([0], [[1], [1]])),
        # 0-d: one element at offset 0
        ([], [[], []], ([], [[], []])),
    ],
)
def test_coalesce(space, strides_list, want):
    assert coalesce(space, strides_list) == want


def test_coalesce_all_size_1_is_the_0d_space():
    """The case where the two backends' copies diverged: LLVM kept one axis of extent 1
    (`[1]`), CUDA dropped it (`[]`). A size-1 axis has the single coordinate 0, so a space of
    size-1 axes is one element at offset 0: the 0-d space, whatever its strides say."""
    strides = [[1, 1, 1], [0, 0, 0]]
    assert coalesce([1, 1, 1], strides) == ([], [[], []])
    assert coalesce([1, 1, 1], strides) == coalesce([], [[], []])
    assert coalesce([1], [[7]]) == ([], [[]])


def test_coalesce_ignores_the_strides_of_size_1_axes():
    """A size-1 axis between two mergeable axes does not block the merge, whatever stride
    it has (a broadcast 0 here; a keepdims axis may carry any): axes 0 and 2 are contiguous
    with each other (5 == 1 * 5) in both buffers."""
    assert coalesce([4, 1, 5], [[5, 0, 1], [5, 5, 1]]) == ([20], [[1], [1]])
    assert coalesce([1, 4, 1, 5, 1], [[9, 5, 3, 1, 0], [20, 5, 5, 1, 1]]) == (
        [20],
        [[1], [1]],
    )


def test_coalesce_leaves_its_arguments_alone():
    space, strides = [2, 3], [[3, 1]]
    coalesce(space, strides)
    assert space == [2, 3] and strides == [[3, 1]]


@pytest.mark.parametrize(
    "shape, operand",
    [((2, 3, 4), (3, 4)), ((4, 1, 5), (4, 1, 1)), ((2, 1, 3), (1, 1, 3)), ((1, 1), (1,))],
)
def test_coalesced_walk_visits_the_same_offsets(shape, operand):
    """The coalesced walk, row-major, reads and writes the same offsets in the same order."""
    strides = [broadcast_strides(operand, shape), contiguous_strides(shape)]
    space, merged = coalesce(shape, strides)

    def walk(space, strides_list):
        return [tuple(int(np.dot(c, s)) for s in strides_list) for c in np.ndindex(*space)]

    assert walk(space, merged) == walk(shape, strides)


# ---- slices -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, spec, base, steps",
    [
        ((), [], 0, []),
        ((5,), [(None, None, None)], 0, [1]),
        ((5,), [(None, None, -1)], 4, [-1]),  # reversed: from the last element, backwards
        ((5,), [(-2, None, None)], 3, [1]),  # a negative start counts from the end
        ((5,), [(10, None, -2)], 4, [-2]),  # a start past the end clips to the last element
        ((3,), [(None, 10, None)], 0, [1]),  # a stop past the end clips
        ((4, 6), [(1, 3, None)], 6, [6, 1]),  # axes after the spec are taken whole
        ((4, 6), [(None, None, 2), (5, 0, -2)], 5, [12, -2]),
        ((2, 3, 4), [(1, None, None), (None, None, -1)], 12 + 8, [12, -4, 1]),
    ],
)
def test_slice_geometry(shape, spec, base, steps):
    assert slice_geometry(shape, spec) == (base, steps)


@pytest.mark.parametrize(
    "shape, spec",
    [
        ((4, 6), [(None, None, 2), (5, 0, -2)]),
        ((2, 3, 4), [(1, None, None), (None, None, -1)]),
        ((7,), [(-1, -8, -3)]),
        ((3, 5), [(2, 0, -1), (1, 4, 2)]),
    ],
)
def test_slice_geometry_reads_what_numpy_slices(shape, spec):
    x = np.arange(size_of(shape)).reshape(shape)
    want = x[tuple(slice(*t) for t in spec)]
    base, steps = slice_geometry(shape, spec)
    got = [x.ravel()[base + int(np.dot(c, steps))] for c in np.ndindex(*want.shape)]
    np.testing.assert_array_equal(got, want.ravel())


# ---- fused regions ----------------------------------------------------------------------


def fused_body(text: str):
    """The block of the one fused op in `func.func @main`'s body `text`."""
    fn = parse(text).functions[0]
    verify(fn)
    (op,) = [op for op in fn.block.ops if op.name == "fused"]
    return op.regions[0].block


ELEMENTWISE = """func.func @main(%x: tensor<4x8xf64>, %b: tensor<8xf64>) -> tensor<4x8xf64> {
  %r = "gj.fused"(%x, %b) ({
  ^bb0(%a: tensor<4x8xf64>, %c: tensor<8xf64>):
    %two = "gj.constant"() {value = dense<2.0> : tensor<f64>} : () -> tensor<f64>
    %m = "gj.mul"(%c, %two) : (tensor<8xf64>, tensor<f64>) -> tensor<8xf64>
    %s = "gj.add"(%a, %m) : (tensor<4x8xf64>, tensor<8xf64>) -> tensor<4x8xf64>
    "gj.yield"(%s) : (tensor<4x8xf64>) -> ()
  }) : (tensor<4x8xf64>, tensor<8xf64>) -> tensor<4x8xf64>
  func.return %r : tensor<4x8xf64>
}"""

REDUCE = """func.func @main(%x: tensor<2x3x4xf64>) -> tensor<3xf64> {
  %r = "gj.fused"(%x) ({
  ^bb0(%a: tensor<2x3x4xf64>):
    %s = "gj.reduce_max"(%a) {axes = [0, 2], keepdims = false} : (tensor<2x3x4xf64>) -> tensor<3xf64>
    "gj.yield"(%s) : (tensor<3xf64>) -> ()
  }) : (tensor<2x3x4xf64>) -> tensor<3xf64>
  func.return %r : tensor<3xf64>
}"""

SUM_TO = """func.func @main(%x: tensor<3x4x8xf64>, %ref: tensor<4x1xf64>) -> tensor<4x1xf64> {
  %r = "gj.fused"(%x, %ref) ({
  ^bb0(%a: tensor<3x4x8xf64>, %f: tensor<4x1xf64>):
    %e = "gj.exp"(%a) : (tensor<3x4x8xf64>) -> tensor<3x4x8xf64>
    %s = "gj.sum_to"(%e, %f) : (tensor<3x4x8xf64>, tensor<4x1xf64>) -> tensor<4x1xf64>
    "gj.yield"(%s) : (tensor<4x1xf64>) -> ()
  }) : (tensor<3x4x8xf64>, tensor<4x1xf64>) -> tensor<4x1xf64>
  func.return %r : tensor<4x1xf64>
}"""

CONSTANTS = """func.func @main() -> tensor<2x2xf64> {
  %r = "gj.fused"() ({
    %c = "gj.constant"() {value = dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf64>} : () -> tensor<2x2xf64>
    "gj.yield"(%c) : (tensor<2x2xf64>) -> ()
  }) : () -> tensor<2x2xf64>
  func.return %r : tensor<2x2xf64>
}"""


def test_iteration_space_of_elementwise_ops_skips_constants():
    """The first op that is not a constant is `mul` over the broadcast operand's shape: the
    fusion pass only groups ops of one space, so what matters is a non-constant op's result
    (here the region as built by hand; the add's [4, 8] would agree in a real one)."""
    assert iteration_space(fused_body(ELEMENTWISE)) == (8,)


def test_iteration_space_of_a_reduction_is_its_operand():
    assert iteration_space(fused_body(REDUCE)) == (2, 3, 4)
    assert iteration_space(fused_body(SUM_TO)) == (3, 4, 8)


def test_iteration_space_of_constants_alone_is_what_they_yield():
    assert iteration_space(fused_body(CONSTANTS)) == (2, 2)


def test_keepdims_shape_of_a_reduction():
    body = fused_body(REDUCE)
    space = iteration_space(body)
    shape = keepdims_shape(body.ops[0], space)
    assert shape == (1, 3, 1)
    # each element of the space folds into out[coordinate along axis 1]
    assert broadcast_strides(shape, space) == [0, 1, 0]


def test_keepdims_shape_of_sum_to_gets_the_leading_axes_it_sums_away():
    body = fused_body(SUM_TO)
    space = iteration_space(body)
    shape = keepdims_shape(body.ops[1], space)
    assert shape == (1, 4, 1)
    assert broadcast_strides(shape, space) == [0, 1, 0]


# ---- both backends use this module --------------------------------------------------------


def test_both_backends_use_the_one_geometry():
    assert loops.size_of is layout.size_of
    assert kernel.iteration_space is layout.iteration_space
    assert fused.iteration_space is layout.iteration_space
    assert kernel.keepdims_shape is fused.keepdims_shape is layout.keepdims_shape
    assert lower.slice_geometry is copies.slice_geometry is layout.slice_geometry
    assert loops.coalesce is copies.coalesce is fused.coalesce is layout.coalesce
    for module in (loops, kernel, lower, source, fused, copies):
        for name in ("contiguous_strides", "broadcast_strides", "coalesce", "size_of"):
            if hasattr(module, name):
                assert getattr(module, name) is getattr(layout, name), (module, name)


def _llvm_nest(space, strides_list) -> str:
    module = llvm_ir.Module()
    fn = llvm_ir.Function(module, llvm_ir.FunctionType(llvm_ir.VoidType(), []), "f")
    b = llvm_ir.IRBuilder(fn.append_basic_block("entry"))
    with loops.loop_nest(b, space, strides_list) as offsets:
        assert len(offsets) == len(strides_list)
    b.ret_void()
    return str(fn)


@pytest.mark.parametrize("space", [(1,), (1, 1), (1, 1, 1)])
def test_one_element_is_the_0d_walk_in_both_backends(space):
    """A shape of size-1 axes compiles to what a 0-d shape does: no loop in LLVM, no index
    arithmetic in the CUDA source."""
    ones = [list(contiguous_strides(space)), [0] * len(space)]
    assert ".header" not in _llvm_nest(space, ones)
    assert _llvm_nest(space, ones) == _llvm_nest((), [[], []])
    one = copies.strided_copy(float64, space, *ones)
    assert one.source == copies.strided_copy(float64, (), [], []).source
    assert "dst[0] = src[0]" in one.source
