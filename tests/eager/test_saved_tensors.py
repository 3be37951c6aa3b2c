"""What eager mode's tape keeps for backward: only what each op's VJP rule declares it reads
(`vjp_reading`; PyTorch's autograd saves only what a derivative formula names). A rule
given None for what it declared unread computes the same cotangents, bit for bit; the tape
lets go of the arrays nobody else holds; a node that kept nothing backpropagates again, as
PyTorch's does; and the eager handler's shortcut for VJP rules' elementwise ops gives what
the general path gives."""

from __future__ import annotations

import gc
import re
import weakref

import numpy as np
import pytest

import graphjit as gj
from graphjit.frontend.eager.dispatch import HANDLER
from graphjit.ir.ops import Handler, all_ops, bind, get_op
from graphjit.ir.types import as_dtype

# every op whose rule declares that it reads nothing of its inputs or of its outputs
PARTIAL_READERS = sorted(
    name
    for name, opdef in all_ops().items()
    if callable(opdef.vjp) and not (opdef.vjp_reads_inputs and opdef.vjp_reads_outputs)
)


def _operands(name: str, broadcast: bool) -> tuple[list, dict]:
    """Arrays (float64, inside every rule's domain) and attributes for op `name`."""
    rng = np.random.default_rng(len(name))
    values = lambda *shape: rng.uniform(0.2, 0.9, size=shape)  # noqa: E731
    opdef = get_op(name)
    if name == "select":
        return [
            rng.uniform(size=(2, 3)) > 0.5,
            values(2, 3),
            values(3) if broadcast else values(2, 3),
        ], {}
    if name == "cast":
        return [values(2, 3)], {"dtype": "float32"}
    if name in ("matmul", "gemm"):
        operands = [values(2, 4), values(4, 3)] + ([values(2, 3)] if name == "gemm" else [])
        return operands, opdef.normalize_attrs({})
    if name in ("reduce_sum", "reduce_mean"):
        return [values(2, 3)], {"axes": (1,), "keepdims": False}
    arity = 2 if opdef.elementwise and name not in ("neg", "exp", "log", "sqrt", "abs", "sin",
                                                   "cos", "tanh", "sigmoid", "erf", "log1p",
                                                   "expm1") else 1  # fmt: skip
    if arity == 2:
        return [values(2, 3), values(3) if broadcast else values(2, 3)], {}
    return [values(2, 3)], {}


def test_the_partial_readers_are_the_expected_ops():
    """(So that the tests below cover what they mean to: a new declaration joins them.)"""
    assert {"neg", "exp", "tanh", "add", "mul", "matmul", "reduce_sum"} <= set(PARTIAL_READERS)


@pytest.mark.parametrize("broadcast", [False, True])
@pytest.mark.parametrize("name", PARTIAL_READERS)
def test_a_rule_given_none_for_what_it_does_not_read_computes_the_same(name, broadcast):
    opdef = get_op(name)
    arrays, attrs = _operands(name, broadcast)
    inputs = [gj.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    outputs = [bind(name, *inputs, **attrs)]
    cts = [gj.tensor(np.linspace(-1.0, 2.0, outputs[0].numel()).reshape(outputs[0].shape))]
    with gj.no_grad():
        full = opdef.vjp(cts, inputs, outputs, attrs)
        unread = opdef.vjp(
            cts,
            inputs if opdef.vjp_reads_inputs else [None] * len(inputs),
            outputs if opdef.vjp_reads_outputs else [None] * len(outputs),
            attrs,
        )
    assert len(full) == len(unread) == len(inputs)
    for a, b in zip(full, unread):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.numpy().tobytes() == b.numpy().tobytes()


@pytest.mark.parametrize("name", PARTIAL_READERS)
def test_the_tape_keeps_only_what_the_rule_reads(name):
    """The node's saved arrays are those of the sides the rule reads, and its gradient is
    the one with everything kept (the graph's autodiff, run by the interpreter)."""
    arrays, attrs = _operands(name, broadcast=True)
    inputs = [gj.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = bind(name, *inputs, **attrs)
    node = out.grad_fn
    opdef = get_op(name)
    assert (node.saved_inputs != ()) == opdef.vjp_reads_inputs
    assert (node.saved_outputs != ()) == opdef.vjp_reads_outputs
    (out * out).sum().backward()

    g = gj.Graph()
    with g.as_default():
        feeds = [gj.placeholder(as_dtype(a.dtype), a.shape) for a in arrays]
        y = bind(name, *feeds, **attrs)
        loss = gj.reduce_sum(y * y)
        wanted = [f for f, t in zip(feeds, inputs) if t.requires_grad]
        grads = gj.gradients(loss, wanted)
    with gj.Session(g, backend="interpreter") as sess:
        expected = sess.run(grads, dict(zip(feeds, arrays)))
    got = [t.grad.numpy() for t in inputs if t.requires_grad]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_an_unread_input_is_freed_with_its_tensor():
    """exp's rule reads its result, not its operand: the operand's array goes when the
    user's last reference does (log's rule reads it: the tape keeps it)."""
    x = gj.tensor(np.linspace(0.1, 1.0, 5), requires_grad=True)
    for method, kept in [("exp", False), ("log", True)]:
        h = x * 2.0
        ref = weakref.ref(h._data)
        y = getattr(h, method)()
        del h
        gc.collect()
        assert (ref() is not None) == kept, method
        y.sum().backward()
        assert ref() is None  # (released with the tape)
    expected = 2.0 * np.exp(2.0 * x.numpy()) + 1.0 / x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_a_node_that_kept_nothing_backpropagates_again():
    """As in PyTorch: `-x` keeps nothing, so backward through it twice works; exp keeps its
    result, which the first backward frees."""
    x = gj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = -x
    y.backward(gj.ones(3))
    y.backward(gj.ones(3))
    assert x.grad.tolist() == [-2.0, -2.0, -2.0]
    y = x.exp()
    y.backward(gj.ones(3))
    with pytest.raises(gj.GradientError, match="second time"):
        y.backward(gj.ones(3))


def test_in_place_changes_to_what_a_rule_does_not_read_are_fine():
    x = gj.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    y = -h  # keeps nothing of h
    h.add_(1.0)
    y.sum().backward()
    assert x.grad.tolist() == [-3.0, -3.0]
    h = x * 3.0  # (mul keeps its operands, not h)
    y = h.tanh()  # keeps its result, not h
    h.mul_(2.0)
    x.grad = None
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * (1 - np.tanh(3 * np.array([1.0, 2.0])) ** 2))
    z = x.exp()
    z.add_(1.0)  # exp keeps its result: changed, so its backward refuses
    with pytest.raises(gj.GradientError, match="modified by an inplace operation"):
        z.sum().backward()


def test_second_order_through_rules_that_read_less():
    """create_graph: the rules' results are recorded, their saved results rebuilt with
    history (d2/dx2 of exp is exp, of tanh is -2 tanh (1 - tanh^2))."""
    x = gj.tensor([0.3, -0.7], requires_grad=True)
    for fn, second in [
        (lambda v: v.exp(), np.exp),
        (lambda v: v.tanh(), lambda v: -2 * np.tanh(v) * (1 - np.tanh(v) ** 2)),
        (lambda v: -(v * v), lambda v: -2 * np.ones_like(v)),
        # one non-leaf tensor twice (x * x: rebuilt once, as it was recorded): 2 * 3^2
        (lambda v: (lambda h: h * h)(v * 3.0), lambda v: 18 * np.ones_like(v)),
    ]:
        (g,) = gj.autograd.grad(fn(x).sum(), x, create_graph=True)
        (h,) = gj.autograd.grad(g.sum(), x)
        np.testing.assert_allclose(h.numpy(), second(x.numpy()), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int32", "bool"])
@pytest.mark.parametrize(
    "name", ["neg", "exp", "add", "mul", "sign", "floor", "greater", "maximum"]
)
def test_the_handlers_shortcut_gives_the_general_paths_results(name, dtype):
    """EagerHandler.bind sends elementwise ops without attributes straight to the kernel:
    values, dtype, whether the result has a grad_fn (never for sign, floor, comparisons)
    and the gradient are what Handler.bind's general path gives, or the same error."""
    opdef = get_op(name)
    data = [np.array([-1.5, 0.0, 2.5]), np.array([0.5, 0.0, -2.0])]
    arity = 2 if name in ("add", "mul", "greater", "maximum") else 1

    def outcome(binder):
        floats = np.dtype(dtype).kind == "f"
        xs = [gj.tensor(d.astype(dtype), requires_grad=floats) for d in data[:arity]]
        try:
            y = binder(opdef, tuple(xs), {})
        except gj.GraphjitError as e:
            return type(e), re.sub(r"built at [^\]]*", "", str(e))  # (a line of this test)
        result = (y.dtype.name, y.numpy().tobytes(), type(y.grad_fn).__name__)
        if y.requires_grad:
            y.sum().backward()
            result += tuple(x.grad.numpy().tobytes() for x in xs)
        return result

    assert outcome(HANDLER.bind) == outcome(lambda *args: Handler.bind(HANDLER, *args))


def test_cotangents_of_a_rule_that_reads_no_input_are_still_checked(monkeypatch):
    """The node keeps its inputs' shapes where it keeps no input: a rule returning a
    cotangent of the wrong shape is named, not summed into something by broadcasting."""
    opdef = get_op("neg")
    assert not opdef.vjp_reads_inputs
    monkeypatch.setattr(opdef, "vjp", lambda cts, ins, outs, attrs: [gj.ones(1)])
    x = gj.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(gj.GradientError, match=r"returned a gradient of shape \(1,\)"):
        (-(x * 2)).sum().backward()


def test_a_square_as_x_times_x_computes_one_product_with_the_bits_of_two():
    """mul's rule for one tensor twice gives both operands one g * x (the engine adds it to
    itself): g * x + g * x, bit for bit, in eager mode, in a static graph, through a hook,
    a retained grad and a second derivative."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(5, 7)).astype(np.float32)
    g = rng.normal(size=(5, 7)).astype(np.float32)
    want = g * a + g * a
    x = gj.tensor(a, requires_grad=True)
    seen = []
    x.register_hook(lambda grad: seen.append(grad.numpy().copy()))
    h = x * 1.0
    h.retain_grad()
    y = h * h
    y.backward(gj.tensor(g))
    np.testing.assert_array_equal(h.grad.numpy(), want)
    np.testing.assert_array_equal(x.grad.numpy(), want)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], want)
    x2 = gj.tensor(a, requires_grad=True)
    (dx,) = gj.autograd.grad(gj.sum(x2 * x2), [x2], create_graph=True)
    (ddx,) = gj.autograd.grad(gj.sum(dx), [x2])
    np.testing.assert_array_equal(ddx.numpy(), np.full_like(a, 2.0))
    graph = gj.Graph()
    with graph.as_default():
        xp, gp = gj.placeholder(gj.float32, a.shape), gj.placeholder(gj.float32, a.shape)
        (dxp,) = gj.gradients(xp * xp, [xp], grad_ys=[gp])
    for backend in ("interpreter", "llvm"):
        got = gj.Session(graph, backend=backend).run(dxp, {xp: a, gp: g})
        np.testing.assert_array_equal(got, want)
