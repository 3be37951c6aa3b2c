"""Every method of the table shared by graph values and eager tensors (frontend/methods.py)
runs eagerly, under gj.function and, where it is installed, in PyTorch, with the same
values and gradients: the same source line is evaluated on gj.Tensors, on the graph values
gj.function traces, and on torch.Tensors (the table's names and keywords are PyTorch's).

The cases are keyed by the table's own names, so a method added to the table without a
case fails `test_every_method_of_the_table_has_a_case`, asking for one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import graphjit as gj
from graphjit.frontend import ops, shape_ops
from graphjit.frontend.eager import tensor_methods
from graphjit.frontend.methods import METHODS

try:
    import torch
except ImportError:  # (a test-only dependency: the PyTorch comparison is skipped)
    torch = None

SAME = "same"  # PyTorch spells the call the same way


@dataclass(frozen=True)
class Case:
    """`call` is a Python expression over the inputs x, y, z (and `lib`: gj or torch, for
    dtypes); `inputs` are "kind dims..." with kind f (normal floats), p (positive floats),
    b (booleans), i (small integers), n (nonzero integers), k (positions 0..2)."""

    method: str
    call: str
    inputs: tuple = ("f 3 4",)
    torch_call: str | None = SAME  # PyTorch's spelling where it differs; None: none
    graph_error: type | None = None  # what gj.function raises, where eager-only

    def fn(self, lib, call=None):
        names = ", ".join("xyz"[: len(self.inputs)])
        return eval(f"lambda {names}: {call or self.call}", {"lib": lib})  # noqa: S307


def C(method, call, *inputs, torch_call=SAME, graph_error=None):
    return Case(method, call, inputs or ("f 3 4",), torch_call, graph_error)


F34, F34b, P34, B34, I34, N34 = "f 3 4", "f 3 4", "p 3 4", "b 3 4", "i 3 4", "n 3 4"

CASES = [
    # elementwise
    *(C(name, f"x.{name}()") for name in ["exp", "sin", "cos", "square", "abs", "sign"]),
    *(C(name, f"x.{name}()") for name in ["tanh", "sigmoid", "relu", "neg"]),
    C("log", "x.log()", P34),
    C("sqrt", "x.sqrt()", P34),
    C("add", "x.add(y)", F34, F34b),
    C("add", "x.add(2.5)"),
    C("sub", "x.sub(y)", F34, "f 4"),
    C("mul", "x.mul(y)", F34, F34b),
    C("div", "x.div(y)", F34, P34),
    C("pow", "x.pow(2)"),
    C("pow", "x.pow(y)", P34, F34b),
    C("maximum", "x.maximum(y)", F34, F34b),
    C("minimum", "x.minimum(y)", F34, F34b),
    C("logical_and", "x.logical_and(y)", B34, B34),
    C("logical_or", "x.logical_or(y)", B34, B34),
    C("logical_not", "x.logical_not()", B34),
    *(C(name, f"x.{name}()") for name in ["isnan", "isinf", "isfinite"]),
    C("isfinite", "x.isfinite()", I34),
    C("bitwise_and", "x.bitwise_and(y)", I34, I34),
    C("bitwise_or", "x.bitwise_or(y)", I34, I34),
    C("bitwise_xor", "x.bitwise_xor(y)", I34, I34),
    C("bitwise_not", "x.bitwise_not()", I34),
    C("floor_divide", "x.floor_divide(y)", I34, N34),
    C("remainder", "x.remainder(y)", I34, N34),
    C("remainder", "x.remainder(y)", F34, P34),
    C("eq", "x.eq(y)", I34, I34),
    C("ne", "x.ne(y)", I34, I34),
    C("lt", "x.lt(y)", F34, F34b),
    C("le", "x.le(y)", I34, I34),
    C("gt", "x.gt(0.5)"),
    C("ge", "x.ge(y)", I34, I34),
    C("clamp", "x.clamp(min=-0.5, max=0.5)"),
    C("clamp", "x.clamp(-0.5)"),
    C("clip", "x.clip(max=0.3)"),
    C("masked_fill", "x.masked_fill(y, 0.5)", F34, B34),
    C("cast", "x.cast(lib.float32)", torch_call="x.to(lib.float32)"),
    C("matmul", "x.matmul(y)", F34, "f 4 2"),
    C("matmul", "x.matmul(y)", F34, "f 4"),
    # reductions: PyTorch's dim=/keepdim= and TF1's axis=/keepdims=
    C("sum", "x.sum()"),
    C("sum", "x.sum(dim=1)"),
    C("sum", "x.sum(0, keepdim=True)"),
    C("sum", "x.sum(axis=1, keepdims=True)", torch_call="x.sum(dim=1, keepdim=True)"),
    C("sum", "x.sum(dim=1)", I34),
    C("mean", "x.mean()"),
    C("mean", "x.mean(dim=(0, 1), keepdim=True)"),
    C("prod", "x.prod()"),
    C("prod", "x.prod(dim=1, keepdim=True)"),
    C("max", "x.max()"),
    C("max", "x.max(dim=1)"),
    C("max", "x.max(1, keepdim=True)"),
    C("max", "x.max(y)", F34, F34b),
    C("max", "x.max(axis=0)", torch_call="x.amax(dim=0)"),  # axis=: TF1's values alone
    C("min", "x.min()"),
    C("min", "x.min(dim=0)"),
    C("min", "x.min(y)", F34, F34b),
    C("argmax", "x.argmax()"),
    C("argmax", "x.argmax(dim=1, keepdim=True)"),
    C("argmin", "x.argmin()"),
    C("argmin", "x.argmin(0)"),
    C("sort", "x.sort()"),
    C("sort", "x.sort(dim=0, descending=True)"),
    C("argsort", "x.argsort(dim=1, descending=True)"),
    C("topk", "x.topk(2)"),
    C("topk", "x.topk(2, dim=0, largest=False)"),
    C("kthvalue", "x.kthvalue(2, dim=1, keepdim=True)"),
    C("gather", "x.gather(1, y)", F34, "k 3 2"),
    C("index_select", "x.index_select(1, y)", F34, "k 5"),
    C("take_along_dim", "x.take_along_dim(y, dim=0)", F34, "k 2 4"),
    C("scatter_add", "x.scatter_add(1, y, z)", F34, "k 3 2", "f 3 2"),
    C("index_add", "x.index_add(0, y, z)", F34, "k 2", "f 2 4"),
    C("std", "x.std()"),
    C("std", "x.std(dim=1, unbiased=False)"),
    C("var", "x.var(1, keepdim=True)"),
    C("var", "x.var(dim=0, correction=0)"),
    C("norm", "x.norm()"),
    C("norm", "x.norm(p=1, dim=1)"),
    C("norm", "x.norm(dim=0, keepdim=True)"),
    C("norm", "x.norm(p=float('inf'), dim=1)"),
    C("norm", "x.norm(p=3, dim=1)"),
    C("softmax", "x.softmax(dim=1)"),
    C("softmax", "x.softmax(0)"),
    C("log_softmax", "x.log_softmax(-1)"),
    C("logsumexp", "x.logsumexp(dim=1)"),
    C("logsumexp", "x.logsumexp()", torch_call="x.logsumexp(dim=(0, 1))"),
    C("any", "x.any()", B34),
    C("any", "x.any(dim=1)", I34),
    C("all", "x.all()", I34),
    C("all", "x.all(dim=0, keepdim=True)", B34),
    # shapes
    C("view", "x.view(4, 3)"),
    C("view", "x.view(-1)"),
    C("view", "x.view((2, 6))"),
    C("reshape", "x.reshape(2, -1)"),
    C("reshape", "x.reshape((6, 2))"),
    C("view_as", "x.view_as(y)", F34, "f 2 6"),
    C("reshape_as", "x.reshape_as(y)", F34, "f 12"),
    C("transpose", "x.transpose(0, 1)"),
    C("transpose", "x.transpose(-1, -2)", "f 2 3 4"),
    C("transpose", "x.transpose(dim0=0, dim1=2)", "f 2 3 4"),
    C("transpose", "x.transpose()", "f 2 3 4", torch_call="x.permute(2, 1, 0)"),
    C("permute", "x.permute(2, 0, 1)", "f 2 3 4"),
    C("permute", "x.permute((1, 0))"),
    C("unsqueeze", "x.unsqueeze(0)"),
    C("unsqueeze", "x.unsqueeze(dim=-1)"),
    C("expand_dims", "x.expand_dims(1)", torch_call="x.unsqueeze(1)"),
    C("squeeze", "x.squeeze(1)", "f 3 1 4"),
    C("squeeze", "x.squeeze()", "f 3 1 4"),
    C("squeeze", "x.squeeze(dim=-2)", "f 3 1 4"),
    C("flatten", "x.flatten()", "f 2 3 4"),
    C("flatten", "x.flatten(1)", "f 2 3 4"),
    C("flatten", "x.flatten(0, 1)", "f 2 3 4"),
    C("expand", "x.expand(2, 3, 4)"),
    C("expand", "x.expand(-1, 4)", "f 3 1"),
    C("expand_as", "x.expand_as(y)", "f 3 1", F34),
    C("broadcast_to", "x.broadcast_to((2, 3, 4))"),
    C("repeat", "x.repeat(2, 1)"),
    C("repeat", "x.repeat(2, 1, 3)"),
    C("split", "x.split(2, dim=1)"),
    C("split", "x.split([1, 3], dim=1)"),
    C("split", "x.split(2)"),
    C("chunk", "x.chunk(2, dim=1)"),
    C("chunk", "x.chunk(3, dim=1)"),  # ceil(4 / 3) = 2 columns each: two pieces, as in PyTorch
    C("chunk", "x.chunk(3)"),
    C("mT", "x.mT", "f 2 3 4"),
    C("T", "x.T"),
    C("t", "x.t()"),
    C("t", "x.t()", "f 4"),
    C("contiguous", "x.contiguous()"),
    C("is_contiguous", "x.is_contiguous()"),
    # sizes and values
    C("size", "x.size()"),
    C("size", "x.size(1)"),
    C("size", "x.size(dim=-1)"),
    C("dim", "x.dim()", "f 2 3 4"),
    C("numel", "x.numel()"),
    C("item", "x.item()", "f", graph_error=gj.GraphjitError),
    C("numpy", "x.detach().numpy()", graph_error=gj.GraphjitError),
    C("tolist", "x.detach().tolist()", graph_error=gj.GraphjitError),
    C("backward", "x.sum().backward()", graph_error=gj.GraphjitError),
    # dtypes
    C("float", "x.float()"),
    C("double", "x.float().double()"),
    C("half", "x.half()"),
    C("half", "(x.half() * y.half()).float()", F34, F34b),
    C("bfloat16", "x.bfloat16().float()"),  # (PyTorch's .numpy() has no bfloat16)
    C("bfloat16", "(x.bfloat16() + y.bfloat16()).float()", F34, F34b),
    C("int", "x.int()"),
    C("long", "x.long()"),
    C("bool", "x.bool()"),
    C("to", "x.to(lib.float32)"),
    C("to", "x.to(y)", F34, I34),
    C("clone", "x.clone()"),
    C("detach", "x.detach() * x"),
]

SAMPLERS = {
    "f": lambda rng, shape: rng.normal(size=shape),
    "p": lambda rng, shape: rng.uniform(0.5, 2.0, size=shape),
    "b": lambda rng, shape: rng.random(shape) < 0.5,
    "i": lambda rng, shape: rng.integers(-3, 4, size=shape),
    "n": lambda rng, shape: rng.choice([-3, -2, -1, 1, 2, 3], size=shape),
    "k": lambda rng, shape: rng.integers(0, 3, size=shape),  # positions along an axis of 3+
}


def arrays_for(case: Case) -> list:
    arrays = []
    for seed, spec in enumerate(case.inputs):
        kind, *dims = spec.split()
        arrays.append(
            np.asarray(SAMPLERS[kind](np.random.default_rng(seed), tuple(map(int, dims))))
        )
    return arrays


def leaves(out) -> list:
    """The results of a call, flattened: tuples (named ones included) and lists opened."""
    if isinstance(out, (tuple, list)):
        return [leaf for item in out for leaf in leaves(item)]
    return [out]


class Side:
    """One way of running a case: the library's tensors, arrays and dtypes."""

    def __init__(self, lib):
        self.lib = lib

    def tensor(self, array):
        float_ = array.dtype.kind == "f"
        if self.lib is gj:
            return gj.tensor(array, requires_grad=float_)
        return torch.tensor(array, requires_grad=float_)

    def is_tensor(self, x) -> bool:
        return isinstance(x, gj.Tensor if self.lib is gj else torch.Tensor)

    def array(self, x):
        return x.detach().numpy() if self.lib is torch else x.numpy()

    def dtype_name(self, x) -> str:
        return x.dtype.name if self.lib is gj else str(x.dtype).removeprefix("torch.")

    def is_floating(self, x) -> bool:
        return self.is_tensor(x) and self.array(x).dtype.kind == "f"

    def run(self, fn, arrays: list):
        """(the results as arrays or Python values, dtype names, the gradient of a fixed
        weighted sum of the float results with respect to each float input)."""
        tensors = [self.tensor(a) for a in arrays]
        outs = leaves(fn(*tensors))
        values = [self.array(o) if self.is_tensor(o) else o for o in outs]
        dtypes = [self.dtype_name(o) if self.is_tensor(o) else type(o).__name__ for o in outs]
        loss = None
        for seed, out in enumerate(outs):
            if self.is_floating(out) and out.requires_grad:
                weights = self.tensor(weights_for(seed, out.shape, self.array(out).dtype))
                term = (out * weights).sum()
                loss = term if loss is None else loss + term
        if loss is not None:
            loss.backward()
        grads = [
            np.zeros(a.shape) if t.grad is None else self.array(t.grad)
            for a, t in zip(arrays, tensors)
            if a.dtype.kind == "f"
        ]
        return values, dtypes, grads


def weights_for(seed, shape, dtype):
    return np.random.default_rng(100 + seed).normal(size=tuple(shape)).astype(dtype)


def assert_same(got, want, context: str) -> None:
    got_values, got_dtypes, got_grads = got
    want_values, want_dtypes, want_grads = want
    assert len(got_values) == len(want_values), context
    assert got_dtypes == want_dtypes, context
    for g, w in zip(got_values, want_values):
        if isinstance(w, np.ndarray):
            assert np.shape(g) == w.shape, context
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9, err_msg=context)
        else:
            assert g == pytest.approx(w), context
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9, err_msg=context + " (gradient)")


def _compiled(case: Case, backend: str):
    return gj.function(case.fn(gj), backend=backend)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.call)
def test_method_under_gj_function_equals_eager(case):
    arrays = arrays_for(case)
    eager = Side(gj).run(case.fn(gj), arrays)
    compiled = _compiled(case, "interpreter")
    if case.graph_error is not None:
        with pytest.raises(case.graph_error, match="while tracing"):
            Side(gj).run(compiled, arrays)
        return
    assert_same(Side(gj).run(compiled, arrays), eager, f"gj.function vs eager: {case.call}")


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("case", [c for c in CASES if c.torch_call], ids=lambda c: c.call)
def test_method_equals_pytorch(case):
    arrays = arrays_for(case)
    call = case.call if case.torch_call == SAME else case.torch_call
    want = Side(torch).run(case.fn(torch, call), arrays)
    assert_same(Side(gj).run(case.fn(gj), arrays), want, f"eager vs PyTorch: {case.call}")


LLVM_SUBSET = ["x.max(dim=1)", "x.std(dim=1, unbiased=False)", "x.repeat(2, 1)",
               "x.split([1, 3], dim=1)", "x.masked_fill(y, 0.5)", "x.norm(p=3, dim=1)"]  # fmt: skip


@pytest.mark.parametrize("call", LLVM_SUBSET)
def test_method_on_the_llvm_backend_equals_eager(call):
    (case,) = [c for c in CASES if c.call == call]
    arrays = arrays_for(case)
    got = Side(gj).run(_compiled(case, "llvm"), arrays)
    assert_same(got, Side(gj).run(case.fn(gj), arrays), f"llvm vs eager: {call}")


# ---- the table itself --------------------------------------------------------------------


def test_every_method_of_the_table_has_a_case():
    missing = sorted(set(METHODS) - {c.method for c in CASES})
    assert not missing, f"add a case to CASES for each method new in the table: {missing}"
    stale = sorted({c.method for c in CASES} - set(METHODS))
    assert not stale, f"cases for methods the table does not have: {stale}"


@pytest.mark.parametrize("cls", [gj.Tensor, gj.ir.Value, gj.Variable])
def test_every_tensor_kind_has_every_method(cls):
    assert [name for name in METHODS if not hasattr(cls, name)] == []


# What eager tensors have beyond the shared table, each for a reason: autograd state and
# storage (a graph value has neither until it runs), and in-place methods (graph values are
# immutable; a Variable changes by assign).
EAGER_ONLY = {"backward", "grad", "grad_fn", "requires_grad", "requires_grad_", "is_leaf",
              "retain_grad", "retains_grad", "register_hook", "data", "numpy", "tolist",
              "shape", "dtype", "ndim", "type"} | set(tensor_methods.EAGER_ONLY)  # fmt: skip


def test_eager_tensors_have_no_method_outside_the_shared_table_but_eager_only_ones():
    assert set(tensor_methods.EAGER_OVERRIDES) <= set(METHODS)
    public = {name for name in dir(gj.Tensor) if not name.startswith("_")}
    extra = sorted(public - set(METHODS) - EAGER_ONLY)
    assert not extra, f"eager methods that graph values lack: add them to methods.METHODS: {extra}"


def test_graph_equality_stays_identity_and_eager_equality_is_elementwise():
    g = gj.Graph()
    with g.as_default():
        a = gj.placeholder(gj.float32, [2])
        b = a + 0.0
        assert (a == a) is True and (a == b) is False and {a: 1, b: 2}[b] == 2
        assert a.eq(b).dtype == gj.bool_  # the method is elementwise for both kinds
    t = gj.tensor([1.0, 2.0])
    assert (t == gj.tensor([1.0, 3.0])).tolist() == [True, False]


# ---- module functions: axis=/dim=, keepdims=/keepdim=, max/min's (values, indices) -------

X = np.random.default_rng(7).normal(size=(3, 4))

REDUCTIONS = [ops.sum, ops.mean, ops.max, ops.min, ops.argmax, ops.logsumexp, ops.std, ops.var,
              ops.norm, gj.prod, gj.argmin, gj.any, gj.all]  # fmt: skip


@pytest.mark.parametrize("fn", REDUCTIONS, ids=lambda f: f.__name__)
def test_functions_take_axis_or_dim_and_keepdims_or_keepdim(fn):
    want = fn(gj.tensor(X), axis=1, keepdims=True).numpy()
    got = fn(gj.tensor(X), dim=1, keepdim=True)
    if fn in (ops.max, ops.min):  # dim=: PyTorch's (values, indices)
        got = got.values
    np.testing.assert_array_equal(got.numpy(), want)
    with pytest.raises(TypeError, match="both axis= and dim="):
        fn(gj.tensor(X), axis=1, dim=1)


@pytest.mark.parametrize(
    "call, want",
    [
        (lambda x: ops.softmax(x, dim=0), lambda x: ops.softmax(x, axis=0)),
        (lambda x: ops.log_softmax(x, dim=0), lambda x: ops.log_softmax(x, axis=0)),
        (lambda x: shape_ops.squeeze(x[:1], dim=0), lambda x: shape_ops.squeeze(x[:1], axis=0)),
        (lambda x: shape_ops.expand_dims(x, dim=1), lambda x: shape_ops.expand_dims(x, axis=1)),
        (lambda x: shape_ops.concat([x, x], dim=1), lambda x: shape_ops.concat([x, x], axis=1)),
        (lambda x: shape_ops.stack([x, x], dim=1), lambda x: shape_ops.stack([x, x], axis=1)),
    ],
)
def test_shape_and_softmax_functions_take_dim(call, want):
    np.testing.assert_array_equal(call(gj.tensor(X)).numpy(), want(gj.tensor(X)).numpy())


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_max_and_min_with_dim_return_values_and_indices(mode):
    def extremes(x):
        return gj.max(x, dim=1), gj.min(x, dim=0, keepdim=True), gj.max(x, axis=1), gj.max(x)

    run = extremes if mode == "eager" else gj.function(extremes, backend="interpreter")
    (values, indices), low, by_axis, overall = run(gj.tensor(X))
    np.testing.assert_array_equal(values.numpy(), X.max(axis=1))
    np.testing.assert_array_equal(indices.numpy(), X.argmax(axis=1))
    np.testing.assert_array_equal(low.values.numpy(), X.min(axis=0, keepdims=True))
    np.testing.assert_array_equal(low.indices.numpy(), X.argmin(axis=0)[None])
    np.testing.assert_array_equal(by_axis.numpy(), X.max(axis=1))  # axis=: TF1's values only
    assert overall.shape == () and overall.item() == X.max()


def test_std_and_var_functions_are_population_statistics_and_methods_sample_ones():
    x = gj.tensor(X)
    np.testing.assert_allclose(ops.var(x, axis=1).numpy(), X.var(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ops.std(x).numpy(), X.std(), rtol=1e-12)
    np.testing.assert_allclose(ops.std(x, dim=0, unbiased=True).numpy(), X.std(0, ddof=1))
    np.testing.assert_allclose(x.var(dim=1).numpy(), X.var(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(x.std(correction=0).numpy(), X.std(), rtol=1e-12)


def test_split_and_chunk_of_a_graph_value_need_only_that_dimension_known():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None, 4])
        pieces = x.split([1, 3], dim=1) + x.chunk(2, dim=-1)
        assert [p.shape for p in pieces] == [(None, 1), (None, 3), (None, 2), (None, 2)]
        with pytest.raises(gj.ShapeError, match="size of dimension 0 known"):
            x.chunk(2)
    with gj.Session(g) as sess:
        got = sess.run(list(pieces), feed_dict={x: X})
    for piece, want in zip(got, [X[:, :1], X[:, 1:], X[:, :2], X[:, 2:]]):
        np.testing.assert_array_equal(piece, want)


def test_item_of_a_graph_value_says_why_and_what_to_do():
    with pytest.raises(gj.GraphjitError, match="has none until the graph runs"):
        gj.function(lambda x: x.sum().item(), backend="interpreter")(X)


def test_type_called_as_pytorch_casts_says_to_use_to():
    """`.type` is graphjit's type on both kinds; PyTorch's `x.type(dtype)` names `.to`."""
    eager = gj.tensor([1.0, 2.0])
    traced = gj.function(lambda x: x.type(gj.float64))
    for call in (lambda: eager.type(gj.float64), lambda: traced(eager)):
        with pytest.raises(gj.DTypeError, match=r"x\.to\(dtype\)"):
            call()
    assert str(eager.type) == "tensor<2xf32>"
