"""The frontend's all-eager fast paths (convert.operands/as_tensor/constant_like, the op
functions going straight to the eager handler, check_same_graph with no graph value, the
int-axis normalisation) give exactly what the general paths give: the same values, dtypes,
gradients, errors and error messages. Each test runs the same code with the fast paths
switched off (every type reported as not a plain eager tensor) and on, and compares."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import graphjit as gj
from graphjit.errors import GraphjitError
from graphjit.frontend import convert, losses, math_ops, ops
from graphjit.frontend.eager.dispatch import run_op
from graphjit.frontend.eager.module import Parameter
from graphjit.frontend.eager.tensor_methods import FAST_UNARY
from graphjit.ir.ops import bind, get_op
from graphjit.ir.ops.shape import broadcast_like_kernel, expand_dims_view
from graphjit.ir.types import as_dtype


@pytest.fixture
def general_path(monkeypatch):
    """A context in which no type counts as a plain eager tensor: every fast path declines
    and the general path (unwrap, check_same_graph, promotion, bind) runs."""

    def switch_off():
        monkeypatch.setattr(convert, "plain_eager", lambda kind: False)
        monkeypatch.setattr(ops, "plain_eager", lambda kind: False)

    return switch_off


def _outcome(fn):
    """What fn gives: its result as (dtype, bytes, shape) per tensor, or its error's type
    and message."""
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 (the error is the outcome compared)
        return ("error", type(e), str(e))
    results = result if isinstance(result, (list, tuple)) else [result]
    return [(type(r).__name__, r.dtype.name, r.shape, r.numpy().tobytes()) for r in results]


def _both_paths(general_path, fn):
    fast = _outcome(fn)
    general_path()
    return fast, _outcome(fn)


_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.uint8, np.int32, np.int64, np.bool_]
_SCALARS = [0, 1, -1, 300, 2**40, 10**30, 1.5, float("nan"), True, np.float64(2.5), np.int8(3)]


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("scalar", _SCALARS, ids=repr)
def test_operands_with_a_scalar_match_the_general_path(general_path, dtype, scalar):
    t = gj.tensor(np.arange(6).reshape(2, 3).astype(dtype))
    fast, general = _both_paths(
        general_path, lambda: convert.operands(t, scalar) + convert.operands(scalar, t)
    )
    assert fast == general


@pytest.mark.parametrize("a", _DTYPES)
@pytest.mark.parametrize("b", [np.float32, np.int64, np.bool_])
def test_operands_of_two_tensors_match_the_general_path(general_path, a, b):
    x = gj.tensor(np.arange(6).reshape(2, 3).astype(a))
    y = Parameter(gj.tensor(np.arange(3).astype(b)), requires_grad=False)  # a subclass
    fast, general = _both_paths(
        general_path, lambda: convert.operands(x, y) + convert.operands(x, y, x)
    )
    assert fast == general


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, i: gj.add(x, 2),
        lambda x, i: gj.sub(3, x),
        lambda x, i: gj.mul(x, i),  # promoted: float32 with int64
        lambda x, i: gj.maximum(x, x),
        lambda x, i: gj.less(i, 2),
        lambda x, i: gj.exp(x),
        lambda x, i: gj.exp(i),  # integers cast to float first
        lambda x, i: gj.neg(i),
        lambda x, i: gj.reduce_sum(x, axis=1),
        lambda x, i: gj.reduce_sum(x, axis=-1, keepdims=True),
        lambda x, i: gj.reduce_sum(x, axis=2),  # out of range: ShapeError
        lambda x, i: gj.reduce_sum(x, axis=True),
        lambda x, i: ops.sum(x, axis=np.int64(0)),
        lambda x, i: gj.reduce_max(x),
        lambda x, i: gj.add(x, gj.tensor(np.ones(4, np.float32))),  # bad broadcast
        lambda x, i: gj.add(x, "text"),
        lambda x, i: gj.add(gj.tensor(np.int8([1])), 300),  # does not fit int8
        lambda x, i: gj.logical_and(i > 0, True),
        lambda x, i: gj.where(i > 1, x, 0.0),
        lambda x, i: gj.cast(x, gj.float32),
        lambda x, i: gj.nn.softmax_cross_entropy(x, i % 3),
        lambda x, i: ops.one_hot(i, 3),
        lambda x, i: ops.mean(i, axis=0),
        lambda x, i: ops.logsumexp(x, axis=1),
        lambda x, i: math_ops.prod(x, axis=0),
        lambda x, i: math_ops.any(x, axis=1),
        lambda x, i: math_ops.argmin(x, axis=1),
        lambda x, i: (i & 1, i // 2, i % 2, ~i),
        lambda x, i: x & 1,  # a float operand: DTypeError naming the operator
    ],
)
def test_op_functions_match_the_general_path(general_path, fn):
    x = gj.tensor(np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3))
    i = gj.tensor(np.array([0, 2], np.int64))
    fast, general = _both_paths(general_path, lambda: fn(x, i))
    assert fast == general


def test_errors_name_the_op_and_the_users_line():
    x = gj.tensor(np.ones((2, 3), np.float32))
    with pytest.raises(GraphjitError) as info:
        gj.add(x, gj.tensor(np.ones(4, np.float32)))
    assert "add" in str(info.value) and "test_dispatch_overhead.py" in str(info.value)
    with pytest.raises(GraphjitError) as info:
        gj.reduce_sum(x, axis=5)
    assert "axis 5 is out of range" in str(info.value)
    assert "test_dispatch_overhead.py" in str(info.value)


def _grads(requires_grad_fn):
    """The loss and its gradient with respect to the logits, as bytes."""
    rng = np.random.default_rng(0)
    logits = gj.tensor(rng.normal(size=(16, 5)).astype(np.float32), requires_grad=True)
    labels = gj.tensor(np.array([0, 4, -100, 2, 7, -1, 3, 1] * 2, np.int64))
    loss = requires_grad_fn(logits, labels)
    loss.backward()
    return loss.numpy().tobytes(), logits.grad.numpy().tobytes()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_and_gradient_match_the_general_path(general_path, reduction):
    def loss(logits, labels):
        out = gj.nn.softmax_cross_entropy(logits, labels, reduction=reduction)
        return out if reduction != "none" else gj.reduce_sum(gj.where(out == out, out, 0.0))

    fast = _grads(loss)
    general_path()
    assert fast == _grads(loss)


def _sparse_before(logits, labels, ignore_index):
    """softmax_cross_entropy's per-example losses as written before it kept `kept` (with
    two logical_not ops): the reference the shorter form must equal bit for bit."""
    kept = ops.not_equal(labels, ignore_index)
    ignored = ops.logical_not(kept)
    depth = logits.shape[-1]
    onehot = ops.one_hot(labels, depth, dtype=logits.dtype)
    picked = ops.neg(ops.sum(ops.mul(onehot, ops.log_softmax(logits)), axis=-1))
    in_range = ops.logical_and(ops.greater_equal(labels, 0), ops.less(labels, depth))
    fill = ops.where(ignored, 0.0, np.nan)
    return ops.where(ops.logical_and(in_range, ops.logical_not(ignored)), picked, fill)


@pytest.mark.parametrize("ignore_index", [-100, 2, -1])
def test_cross_entropy_without_the_negations_is_bit_identical(ignore_index):
    def per_example(fn):
        def loss(logits, labels):
            out = fn(logits, labels, ignore_index)
            return gj.reduce_sum(gj.where(out == out, out * out, 0.0))  # NaNs cut out

        return loss

    new = per_example(lambda lg, lb, ii: losses._sparse(lg, lb, kept=ops.not_equal(lb, ii)))
    assert _grads(new) == _grads(per_example(_sparse_before))
    labels = gj.tensor(np.array([0, 4, -100, 2, 7, -1], np.int64))
    logits = gj.tensor(np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32))
    got = losses._sparse(logits, labels, kept=ops.not_equal(labels, ignore_index)).numpy()
    want = _sparse_before(logits, labels, ignore_index).numpy()
    assert got.tobytes() == want.tobytes()


def test_cross_entropy_in_a_graph_matches_eager():
    rng = np.random.default_rng(2)
    logits_np = rng.normal(size=(8, 4)).astype(np.float32)
    labels_np = np.array([0, 3, -100, 1, 5, 2, 2, 0], np.int64)
    g = gj.Graph()
    with g.as_default():
        logits = gj.placeholder(gj.float32, (8, 4))
        labels = gj.placeholder(gj.int64, (8,))
        loss = gj.nn.softmax_cross_entropy(logits, labels, reduction="none")
        (grad,) = gj.gradients(gj.reduce_sum(gj.where(loss == loss, loss, 0.0)), [logits])
    with gj.Session(graph=g) as sess:
        got_loss, got_grad = sess.run([loss, grad], {logits: logits_np, labels: labels_np})
    eager_logits = gj.tensor(logits_np, requires_grad=True)
    eager_loss = gj.nn.softmax_cross_entropy(eager_logits, gj.tensor(labels_np), reduction="none")
    gj.reduce_sum(gj.where(eager_loss == eager_loss, eager_loss, 0.0)).backward()
    np.testing.assert_allclose(got_loss, eager_loss.numpy(), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(got_grad, eager_logits.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_graph_values_still_checked_and_mixing_still_refused():
    g1, g2 = gj.Graph(), gj.Graph()
    with g1.as_default():
        a = gj.placeholder(gj.float32, (2,), name="a")
    with g2.as_default():
        with pytest.raises(GraphjitError, match="belongs to another graph"):
            gj.add(a, 1.0)
        with pytest.raises(GraphjitError, match="belongs to another graph"):
            gj.exp(a)
        b = gj.placeholder(gj.float32, (2,))
        with pytest.raises(GraphjitError, match="mixes"):
            gj.add(b, gj.tensor(np.ones(2, np.float32)))
        with pytest.raises(GraphjitError, match="mixes"):
            gj.add(gj.tensor(np.ones(2, np.float32)), b)
        # an eager tensor alone inside graph building stays eager
        assert isinstance(gj.exp(gj.tensor(np.ones(2, np.float32))), gj.Tensor)
    # check_same_graph with no graph value among its arguments has nothing to check
    convert.check_same_graph([gj.tensor(np.ones(2, np.float32)), 1.0, np.ones(2)])


def test_fast_paths_keep_the_eager_tensor_itself():
    x = gj.tensor(np.ones(3, np.float32))
    assert convert.as_tensor(x) is x
    assert convert.constant_like(x, gj.float32) is x
    assert convert.constant_like(x, gj.float64).dtype == gj.float64  # a cast, not x
    # bind_eager is bind: attribute defaults filled, one result unpacked
    y = gj.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    from graphjit.ir.ops import get_op

    via_bind = bind("reduce_sum", y, axes=(1,))
    direct = convert.bind_eager(get_op("reduce_sum"), [y], {"axes": (1,)})
    assert direct.numpy().tobytes() == via_bind.numpy().tobytes()
    assert direct.shape == via_bind.shape == (2,)


def test_the_op_functions_bind_leaves_other_operands_to_ir_bind():
    x = gj.tensor(np.arange(3, dtype=np.float32))
    # a NumPy constant among eager operands is lifted, as ir.ops.bind lifts it
    got = convert.bind("add", x, np.float32(2))
    assert got.numpy().tobytes() == bind("add", x, np.float32(2)).numpy().tobytes()
    with pytest.raises(GraphjitError, match="no tensor among operands"):
        convert.bind("add", 1.0, 2.0)
    with pytest.raises(GraphjitError, match="unknown op"):
        convert.bind("no_such_op", x)
    g = gj.Graph()
    with g.as_default():
        p = gj.placeholder(gj.float32, (3,))
        out = convert.bind("neg", p)
        assert not isinstance(out, gj.Tensor)
        with pytest.raises(GraphjitError, match="mixes"):
            convert.bind("add", p, x)
    with gj.Session(graph=g) as sess:
        np.testing.assert_array_equal(sess.run(out, {p: np.ones(3, np.float32)}), -np.ones(3))


def test_the_general_path_fixture_switches_the_fast_paths_off(general_path):
    """(So that the comparisons above compare two different paths.)"""
    x = gj.tensor(np.ones(3, np.float32))
    a, b = convert._eager_operands((x, 2.0))
    assert a is x and b.dtype == gj.float32
    general_path()
    assert convert._eager_operands((x, 2.0)) is None
    assert not ops.plain_eager(type(x))


@pytest.mark.parametrize("method", sorted(FAST_UNARY))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64, np.bool_])
@pytest.mark.parametrize("kind", [gj.Tensor, Parameter])
def test_fast_unary_methods_match_the_op_functions(method, dtype, kind):
    """`-x`, `x.exp()`, ... go straight to the op for a float Tensor; the result, its
    dtype, history and gradient are what the op function gives (which a Parameter, an
    integer or a boolean tensor still reaches through the shared method table)."""
    data = np.array([-1.5, 0.25, 2.0]).astype(dtype)
    op = getattr(ops, FAST_UNARY[method])
    fn = (lambda x: abs(x)) if method == "__abs__" else getattr(kind, method)

    def outcome(apply):
        is_float = np.dtype(dtype).kind == "f"
        x = gj.tensor(data, requires_grad=is_float)
        if kind is Parameter:
            x = Parameter(x, requires_grad=is_float)
        got = _outcome(lambda: apply(x))
        try:
            y = apply(x)
        except GraphjitError:
            return got, None
        if not y.requires_grad:
            return got, None
        y.sum().backward()
        return got, (type(y.grad_fn).__name__, x.grad.numpy().tobytes())

    assert outcome(fn) == outcome(op)


def test_expand_dims_views_are_numpys():
    """The shortcut eager views and every reduction's gradient take (shape.expand_dims_view):
    the shape, strides and shared memory np.expand_dims gives, for any axes it accepts,
    and NumPy's own error for the rest (repeated, negative or too large axes)."""
    for shape in [(), (3,), (2, 3), (0, 4)]:
        x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        rank = len(shape)
        for k in (1, 2):
            for axes in itertools.permutations(range(-rank - k - 1, rank + k + 1), k):
                expected = _outcome_of(lambda: np.expand_dims(x, axes))
                got = _outcome_of(lambda: expand_dims_view(x, axes))
                assert got == expected, (shape, axes)


def _outcome_of(fn):
    try:
        a = fn()
    except Exception as e:  # noqa: BLE001 (the error is the outcome compared)
        return type(e)
    return a.shape, a.strides, a.base is not None


def test_broadcast_like_kernel_is_numpys_broadcast():
    for x_shape, ref_shape in [((), (3, 4)), ((1,), (3, 4)), ((4,), (3, 1)), ((2, 1), (1, 5)),
                               ((0, 1), (1, 3)), ((3,), (2,)), ((2, 1, 3), (4, 1))]:  # fmt: skip
        x, ref = np.random.default_rng(0).normal(size=x_shape), np.ones(ref_shape)
        try:
            expected = np.array(np.broadcast_to(x, np.broadcast_shapes(x_shape, ref_shape)))
        except ValueError:
            with pytest.raises(ValueError):
                broadcast_like_kernel(x, ref)
            continue
        got = broadcast_like_kernel(x, ref)
        assert got.flags.c_contiguous and got.flags.writeable and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name", ["neg", "exp", "tanh", "add", "mul", "div", "maximum", "matmul"])
def test_run_op_computes_narrow_floats_as_the_registry_kernel_does(dtype, name):
    """run_op calls an op's kernel without the wrapper that computes float16/bfloat16 in
    float32 (OpDef.float_kernel) only when no operand is such a float: for every float
    dtype its results are the registry kernel's bits, and so are a VJP rule's (backward
    runs through run_op too)."""
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    opdef = get_op(name)
    npdtype = as_dtype(dtype).np
    rng = np.random.default_rng(0)
    arity = 1 if name in ("neg", "exp", "tanh") else 2
    shape = (4, 4) if name == "matmul" else (5,)
    arrays = [rng.normal(size=shape).astype(np.float32).astype(npdtype) for _ in range(arity)]
    attrs = opdef.normalize_attrs({})
    want = opdef.kernel(*arrays, **attrs)
    tensors = [gj.tensor(a, requires_grad=True) for a in arrays]
    (got,) = run_op(opdef, tensors, attrs)
    assert got.numpy().dtype == want.dtype and got.numpy().tobytes() == want.tobytes()
    got.sum().backward()
    for t in tensors:
        assert t.grad.dtype == t.dtype and np.isfinite(t.grad.numpy().astype(np.float64)).all()


def test_lifted_numbers_take_the_first_tensors_dtype_and_handler():
    """bind's shortcuts (exact types looked up, numbers skipped) choose what its general
    rules choose: the handler of the first tensor operand, and for a Python number the
    dtype of the first tensor operand that is not boolean (of the first, if all are)."""
    from graphjit.ir.ops import _constant_dtype

    p64 = Parameter(gj.tensor(np.ones(2)), requires_grad=False)  # (a subclass of Tensor)
    t32 = gj.tensor(np.ones(2, np.float32))
    mask = gj.tensor(np.array([True, False]))
    cases = [
        ((1, t32), "float32"),
        ((p64, t32), "float64"),
        ((1, p64, t32), "float64"),
        ((mask, t32), "float32"),
        ((mask, 1.0, p64, t32), "float64"),
        ((mask, mask), "bool"),
        ((2.5, mask), "bool"),
    ]
    for operands, dtype in cases:
        assert _constant_dtype(1, operands).name == dtype, operands
    assert bind("add", 1.0, p64).dtype == gj.float64
    g = gj.Graph()
    with g.as_default():
        b = gj.placeholder(gj.float32, (2,))
        assert isinstance(bind("add", 1.0, b), type(b))  # the graph's handler
        with pytest.raises(GraphjitError, match="mixes"):
            bind("add", p64, b)  # the eager handler, which refuses the graph value
