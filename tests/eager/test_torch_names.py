"""PyTorch's eager names: grad-mode switches, inference_mode, Tensor.register_hook,
autograd.grad, factories (eager and while a graph is being built), cat, bmm and einsum.

Each is checked against NumPy (or hand-computed values), so the tests mean something where
PyTorch is not installed, and against PyTorch where it is.
"""

from __future__ import annotations

import numpy as np
import pytest
from autodiff.fd import numeric_grad
from backend_check import compare_on

import graphjit as gj

try:
    import torch
except ImportError:  # (the NumPy checks still run)
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
BACKENDS = ["interpreter", "llvm"]


def _np(t):
    return (
        t.detach().numpy() if torch is not None and isinstance(t, torch.Tensor) else np.asarray(t)
    )


# ---- grad mode ---------------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["gj", "torch"])
def test_set_grad_enabled_is_a_function_a_context_manager_and_a_decorator(lib):
    if lib == "torch" and torch is None:
        pytest.skip("PyTorch is not installed")
    m = gj if lib == "gj" else torch
    try:
        m.set_grad_enabled(False)  # a plain call switches at once
        assert not m.is_grad_enabled()
        with m.set_grad_enabled(True):
            assert m.is_grad_enabled()
        assert not m.is_grad_enabled()  # the mode from before the `with`
        m.set_grad_enabled(True)
        with m.set_grad_enabled(False):
            x = m.tensor([1.0], requires_grad=True)
            assert not (x * 2).requires_grad
        assert m.is_grad_enabled()

        @m.set_grad_enabled(False)
        def inside():
            return m.is_grad_enabled()

        assert m.is_grad_enabled()  # decorating does not switch
        assert inside() is False and m.is_grad_enabled()
    finally:
        m.set_grad_enabled(True)


def test_inference_mode_as_context_manager_and_decorator():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    with gj.inference_mode():
        assert gj.is_inference_mode_enabled() and not gj.is_grad_enabled()
        y = x * 2
        assert not y.requires_grad and y.grad_fn is None
        with gj.inference_mode(False):  # back on, as in PyTorch
            assert gj.is_grad_enabled() and (x * 2).requires_grad
    assert gj.is_grad_enabled() and not gj.is_inference_mode_enabled()

    @gj.inference_mode()
    def called(t):
        return t * 3

    @gj.inference_mode
    def bare(t):
        return t * 3

    for fn in (called, bare):
        out = fn(x)
        assert not out.requires_grad and out.tolist() == [3.0, 6.0]
    assert gj.autograd.inference_mode is gj.inference_mode


# ---- register_hook -----------------------------------------------------------------------


def _hooked_program(m):
    """Hooks on a leaf (observing, then doubling) and a non-leaf (adding 1), retain_grad."""
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(_np(g).copy()))
    x.register_hook(lambda g: g * 2)
    y = x * x
    y.register_hook(lambda g: g + 1)
    y.retain_grad()
    ((y * 3).sum() + (y * 2).sum()).backward()
    first = (_np(x.grad).copy(), _np(y.grad).copy(), [s.copy() for s in seen])
    handle.remove()
    x.grad = None
    (x * x).sum().backward()
    return first, _np(x.grad), len(seen)


def test_register_hook_on_leaves_and_non_leaves():
    (x_grad, y_grad, seen), after_remove, calls = _hooked_program(gj)
    # dz/dy = 5, hooked to 6 (what y.grad keeps); dz/dx = 6 * 2x, hooked to twice that.
    np.testing.assert_allclose(y_grad, [6.0, 6.0, 6.0])
    np.testing.assert_allclose(seen[0], [12.0, 24.0, 36.0])  # the leaf's whole gradient, once
    np.testing.assert_allclose(x_grad, [24.0, 48.0, 72.0])
    np.testing.assert_allclose(after_remove, [4.0, 8.0, 12.0])  # doubled, not observed
    assert calls == 1


@needs_torch
def test_register_hook_matches_pytorch():
    ours, theirs = _hooked_program(gj), _hooked_program(torch)
    for a, b in zip(ours[0], theirs[0]):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(ours[1], theirs[1])
    assert ours[2] == theirs[2]


def test_leaf_hook_sees_the_summed_gradient_of_all_uses():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(g.tolist()))
    (x * 2 + x * x).sum().backward()
    assert calls == [[4.0, 6.0]] and x.grad.tolist() == [4.0, 6.0]


def test_hook_replacing_the_gradient_flows_on_and_into_autograd_grad():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.register_hook(lambda g: gj.zeros_like(g))
    (gx,) = gj.autograd.grad((y * y).sum(), x)
    assert gx.tolist() == [0.0, 0.0]
    x.register_hook(lambda g: np.full(2, 7.0, np.float32))  # array-likes become tensors
    assert gj.autograd.grad((x * 5).sum(), x)[0].tolist() == [7.0, 7.0]


def test_hook_errors():
    with pytest.raises(gj.GradientError, match="does not require grad"):
        gj.tensor([1.0]).register_hook(lambda g: g)
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    with x.register_hook(lambda g: g[:1]):  # (the handle is a context manager too)
        with pytest.raises(gj.GradientError, match="shape"):
            (x * 2).sum().backward()
    (x * 2).sum().backward()  # removed on leaving the `with`
    assert x.grad.tolist() == [2.0, 2.0]


# ---- autograd.grad -----------------------------------------------------------------------


def _grad_program(m):
    a = m.tensor([1.0, 2.0], requires_grad=True)
    b = m.tensor([3.0, 4.0], requires_grad=True)
    out = (a * a * b).sum()
    single = m.autograd.grad(out, a, retain_graph=True)
    unused = m.autograd.grad((a * 2).sum(), [a, b], allow_unused=True)
    (g1,) = m.autograd.grad((a**3).sum(), a, create_graph=True)
    (g2,) = m.autograd.grad(g1.sum(), a)
    weighted = m.autograd.grad(a * b, [a, b], grad_outputs=m.tensor([1.0, -1.0]))
    return [_np(single[0]), unused[1], _np(g1), _np(g2), *map(_np, weighted)]


def test_autograd_grad_semantics():
    single, unused, g1, g2, wa, wb = _grad_program(gj)
    np.testing.assert_allclose(single, [6.0, 16.0])  # 2ab
    assert unused is None
    np.testing.assert_allclose(g1, [3.0, 12.0])  # 3a^2
    np.testing.assert_allclose(g2, [6.0, 12.0])  # 6a
    np.testing.assert_allclose(wa, [3.0, -4.0])
    np.testing.assert_allclose(wb, [1.0, -2.0])


@needs_torch
def test_autograd_grad_matches_pytorch():
    ours, theirs = _grad_program(gj), _grad_program(torch)
    for a, b in zip(ours, theirs):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b)


def test_autograd_grad_errors_name_the_input():
    a = gj.tensor([1.0, 2.0], requires_grad=True)
    b = gj.tensor([3.0], requires_grad=True)
    with pytest.raises(gj.GradientError, match=r"input 1 \(a leaf of shape \(1,\).*not used"):
        gj.autograd.grad((a * 2).sum(), [a, b])
    with pytest.raises(gj.GradientError, match="input 0.*does not require grad"):
        gj.autograd.grad((a * 2).sum(), [gj.tensor([1.0])])
    zeros = gj.autograd.grad((a * 2).sum(), [a, b], materialize_grads=True)
    assert zeros[1].tolist() == [0.0]
    y = (a * a).sum()
    gj.autograd.grad(y, a)
    with pytest.raises(gj.GradientError, match="second time"):
        gj.autograd.grad(y, a)  # the tape was freed: retain_graph defaults to create_graph


# ---- factories ---------------------------------------------------------------------------


def test_from_numpy_shares_memory_both_ways():
    array = np.arange(4.0)
    t = gj.from_numpy(array)
    assert t.dtype == gj.float64
    array[0] = 10.0
    assert t[0].item() == 10.0
    t.add_(1)
    assert array.tolist() == [11.0, 2.0, 3.0, 4.0]
    assert t.numpy() is array
    with pytest.raises(TypeError, match="ndarray"):
        gj.from_numpy([1.0, 2.0])
    with pytest.raises(gj.DTypeError):
        gj.from_numpy(np.zeros(2, np.int16))


def _factory_cases():
    """(name, graphjit call, NumPy expectation, torch call or None)."""
    return [
        ("linspace", lambda m: m.linspace(-1, 2, 7), np.linspace(-1, 2, 7, dtype=np.float32), True),
        ("linspace1", lambda m: m.linspace(3, 5, 1), np.array([3.0], np.float32), True),
        ("arange_int", lambda m: m.arange(2, 11, 3), np.arange(2, 11, 3), True),
        ("arange_neg", lambda m: m.arange(5, -1, -2), np.arange(5, -1, -2), True),
        (
            "arange_float",
            lambda m: m.arange(0, 1, 0.1),
            np.arange(0, 1, 0.1, dtype=np.float32),
            True,
        ),
        ("arange_dtype", lambda m: m.arange(4, dtype=m.float64), np.arange(4.0), True),
        ("eye", lambda m: m.eye(3), np.eye(3, dtype=np.float32), True),
        ("eye_nm", lambda m: m.eye(2, 4), np.eye(2, 4, dtype=np.float32), True),
        ("full_int", lambda m: m.full((2, 3), 7), np.full((2, 3), 7, np.int64), True),
        ("full_float", lambda m: m.full((2,), 1.5), np.full(2, 1.5, np.float32), True),
        ("full_bool", lambda m: m.full((2,), True), np.full(2, True), True),
        ("empty", lambda m: m.empty(2, 3), np.zeros((2, 3), np.float32), False),
        ("zeros", lambda m: m.zeros((2, 3), dtype=m.int32), np.zeros((2, 3), np.int32), True),
        ("ones", lambda m: m.ones(3), np.ones(3, np.float32), True),
    ]


@pytest.mark.parametrize("case", _factory_cases(), ids=lambda c: c[0])
def test_factories_match_numpy_and_pytorch(case):
    _, make, expected, compare_torch = case
    got = make(gj).numpy()
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    if compare_torch and torch is not None:
        theirs = make(torch).numpy()
        assert theirs.dtype == got.dtype
        np.testing.assert_allclose(got, theirs, rtol=1e-6)


def test_like_factories_keep_shape_and_dtype():
    t = gj.tensor(np.arange(6).reshape(2, 3).astype(np.int32))
    assert gj.zeros_like(t).numpy().tolist() == [[0] * 3] * 2 and gj.zeros_like(t).dtype == gj.int32
    assert gj.ones_like(t, dtype=gj.float64).dtype == gj.float64
    assert gj.full_like(t, 4).numpy().tolist() == [[4] * 3] * 2
    assert gj.empty_like(t).numpy().sum() == 0
    f = gj.tensor(np.zeros((3, 2)))
    for like in (gj.rand_like, gj.randn_like):
        r = like(f)
        assert r.shape == (3, 2) and r.dtype == gj.float64
    assert (gj.rand_like(f).numpy() < 1).all()
    with pytest.raises(gj.DTypeError, match="floating"):
        gj.rand_like(t)
    assert gj.zeros_like(f, requires_grad=True).requires_grad


def test_randint_signatures_range_and_seed():
    gj.manual_seed(3)
    a = gj.randint(5, 9, (200,))
    gj.manual_seed(3)
    assert gj.randint(5, 9, (200,)).tolist() == a.tolist()
    assert a.dtype == gj.int64 and set(a.tolist()) == {5, 6, 7, 8}
    b = gj.randint(3, (2, 4))
    assert b.shape == (2, 4) and b.numpy().min() >= 0 and b.numpy().max() < 3
    with pytest.raises(gj.ShapeError):
        gj.randint(4, 4, (2,))


def test_arange_refuses_a_step_that_never_reaches_the_end():
    with pytest.raises(gj.ShapeError, match="step"):
        gj.arange(0, 5, -1)


# ---- factories while a graph is being built ----------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_factories_build_graph_values_inside_a_graph(backend):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, 2], name="x")
        fetches = [
            gj.zeros([1, 2]) + x,
            gj.zeros_like(x) + gj.ones_like(x) + gj.full_like(x, 3.0) + gj.empty_like(x),
            gj.full((2,), 2.5) * x,
            gj.eye(2) @ gj.transpose(x),
            gj.cast(gj.arange(2), gj.float32) + gj.linspace(0, 1, 2) + x,
            gj.zeros_like(x, dtype=gj.int64),
        ]
        assert all(isinstance(f, gj.ir.Value) for f in fetches)
    feed = np.arange(6, dtype=np.float32).reshape(3, 2)
    got = compare_on(backend, g, fetches, {x: feed})
    np.testing.assert_allclose(got[0], feed)
    np.testing.assert_allclose(got[1], np.full((3, 2), 4.0))
    np.testing.assert_allclose(got[2], 2.5 * feed)
    np.testing.assert_allclose(got[3], feed.T)
    np.testing.assert_allclose(got[4], feed + [0.0, 2.0])
    assert got[5].dtype == np.int64 and got[5].shape == (3, 2) and not got[5].any()


def test_like_factories_of_a_graph_value_outside_as_default_stay_in_its_graph():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None], name="x")
    z = gj.ones_like(x)  # (a graph value: the mode comes from the argument)
    assert isinstance(z, gj.ir.Value)
    with g.as_default():
        y = z + x
    with gj.Session(g, backend="interpreter") as sess:
        assert sess.run(y, {x: np.zeros(3)}).tolist() == [1.0, 1.0, 1.0]


def test_random_factories_and_requires_grad_are_refused_in_a_graph():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        for make in (lambda: gj.randn(2), lambda: gj.rand(2), lambda: gj.randint(0, 3, (2,))):
            with pytest.raises(gj.GraphjitError, match="no in-graph random op"):
                make()
        with pytest.raises(gj.GraphjitError, match="no in-graph random op"):
            gj.rand_like(x)
        with pytest.raises(gj.GraphjitError, match="Variable"):
            gj.zeros(2, requires_grad=True)


def test_factories_inside_gj_function():
    @gj.function
    def f(x):
        return x * gj.ones_like(x) + gj.zeros(3) + gj.arange(3, dtype=gj.float64)

    out = f(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(np.asarray(out), [1.0, 3.0, 5.0])


# ---- cat and bmm -------------------------------------------------------------------------


def test_cat_is_concat_with_dim():
    a, b = np.ones((2, 3)), np.zeros((2, 1))
    got = gj.cat([gj.tensor(a), gj.tensor(b)], dim=1).numpy()
    np.testing.assert_array_equal(got, np.concatenate([a, b], 1))
    np.testing.assert_array_equal(
        gj.cat((gj.tensor(a), gj.tensor(a)), axis=-2).numpy(), np.ones((4, 3))
    )
    x = gj.tensor(a, requires_grad=True)
    (gj.cat([x, x * 2], dim=0) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a + 8 * a)


def test_bmm_values_gradients_and_rank_checks():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 3, 5))
    ta, tb = gj.tensor(a, requires_grad=True), gj.tensor(b, requires_grad=True)
    out = gj.bmm(ta, tb)
    np.testing.assert_allclose(out.numpy(), a @ b)
    out.sum().backward()
    np.testing.assert_allclose(ta.grad.numpy(), np.ones((4, 2, 5)) @ b.transpose(0, 2, 1))
    with pytest.raises(gj.ShapeError, match="batch1 must be a 3-D"):
        gj.bmm(gj.tensor(a[0]), tb)
    with pytest.raises(gj.ShapeError, match="batch2"):
        gj.bmm(ta, gj.tensor(b[:2]))  # no broadcasting of the batch, as in PyTorch
    if torch is not None:
        theirs = torch.bmm(torch.tensor(a), torch.tensor(b)).numpy()
        np.testing.assert_allclose(out.detach().numpy(), theirs)


# ---- einsum ------------------------------------------------------------------------------

EQUATIONS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("abcd,cdef->abef", [(2, 3, 4, 2), (4, 2, 2, 3)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("ijk,jkl->il", [(2, 3, 4), (3, 4, 5)]),
    ("ij,kj->ik", [(2, 3), (4, 3)]),
    ("ij->ji", [(2, 3)]),
    ("ijk->kij", [(2, 3, 4)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("ii->", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("iij->j", [(3, 3, 2)]),
    ("ii", [(3, 3)]),
    ("ji", [(2, 3)]),
    ("i,i->", [(3,), (3,)]),
    ("i,i", [(3,), (3,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,ij->", [(2, 3), (2, 3)]),
    ("ij,j->i", [(2, 3), (3,)]),
    ("ij,k->", [(2, 3), (4,)]),
    ("ab,bA", [(2, 3), (3, 4)]),
    ("ijk,ikj->i", [(2, 3, 4), (2, 4, 3)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk", [(1, 2, 3, 4), (5, 1, 4, 5)]),
    ("...i->...", [(2, 3, 4)]),
    ("i...->...", [(2, 3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("i,i,i->i", [(3,), (3,), (3,)]),
]
IDS = [eq for eq, _ in EQUATIONS]


def _arrays(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


@pytest.mark.parametrize("equation, shapes", EQUATIONS, ids=IDS)
def test_einsum_eager_matches_numpy_and_pytorch(equation, shapes):
    arrays = _arrays(shapes)
    tensors = [gj.tensor(a, requires_grad=True) for a in arrays]
    out = gj.einsum(equation, *tensors)
    expected = np.einsum(equation, *arrays)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    weights = _arrays([expected.shape], seed=1)[0]
    (out * gj.tensor(weights)).sum().backward()
    if torch is None:
        return
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_out = torch.einsum(equation, *theirs)
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), rtol=1e-12)
    (t_out * torch.tensor(weights)).sum().backward()
    for ours, t in zip(tensors, theirs):
        np.testing.assert_allclose(ours.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "unknown_dims"])
@pytest.mark.parametrize("equation, shapes", EQUATIONS, ids=IDS)
def test_einsum_in_a_graph_session(equation, shapes, dynamic, backend):
    arrays = _arrays(shapes)
    if dynamic and any(len(set(term)) < len(term) for term in equation.split("->")[0].split(",")):
        pytest.skip("a diagonal needs its size known when the graph is built")
    g = gj.Graph()
    with g.as_default():
        xs = [
            gj.placeholder(gj.float64, [None] * len(s) if dynamic else s, name=f"x{i}")
            for i, s in enumerate(shapes)
        ]
        y = gj.einsum(equation, *xs)
        grads = gj.gradients(gj.sum(y * y), xs)
    got = compare_on(backend, g, [y, *grads], dict(zip(xs, arrays)))
    np.testing.assert_allclose(got[0], np.einsum(equation, *arrays), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "equation, shapes",
    [
        e
        for e in EQUATIONS
        if e[0]
        in {
            "bij,bjk->bik",
            "abcd,cdef->abef",
            "ii->i",
            "...ij,...jk",
            "bn,anm,bm->ba",
            "ij,k->",
            "ijk,ikj->i",
        }
    ],  # fmt: skip
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_einsum_under_gj_function_gradients_match_finite_differences(equation, shapes):
    arrays = _arrays(shapes)
    weights = _arrays([np.einsum(equation, *arrays).shape], seed=2)[0]
    traced = gj.function(lambda *xs: gj.sum(gj.einsum(equation, *xs) * weights))
    tensors = [gj.tensor(a, requires_grad=True) for a in arrays]
    traced(*tensors).backward()
    expected = numeric_grad(lambda *xs: np.sum(np.einsum(equation, *xs) * weights), arrays)
    for t, e in zip(tensors, expected):
        np.testing.assert_allclose(t.grad.numpy(), e, rtol=1e-6, atol=1e-8)


def test_einsum_takes_a_list_and_promotes_dtypes():
    a = gj.tensor(np.arange(6, dtype=np.int32).reshape(2, 3))
    b = gj.tensor(np.ones(3))
    out = gj.einsum("ij,j->i", [a, b])
    assert out.dtype == gj.float64 and out.tolist() == [3.0, 12.0]
    ints = gj.einsum("ij,kj->ik", a, a)
    assert ints.dtype == gj.int32
    np.testing.assert_array_equal(ints.numpy(), np.einsum("ij,kj->ik", a.numpy(), a.numpy()))


@pytest.mark.parametrize(
    "equation, shapes, error, match",
    [
        ("ij,jk", [(2, 3)], gj.GraphjitError, "2 operand terms for 1 operands"),
        ("ij->i", [(2, 3, 4)], gj.ShapeError, "rank 3 but its term has 2"),
        ("i1->i", [(2, 3)], gj.GraphjitError, "not a subscript"),
        ("ij,jk->ik", [(2, 3), (4, 5)], gj.ShapeError, "'j' has size 3 in operand 0 and 4"),
        ("ij->ii", [(2, 3)], gj.GraphjitError, "more than once"),
        ("ij->k", [(2, 3)], gj.GraphjitError, "appears in no operand"),
        ("...i...->i", [(2, 3)], gj.GraphjitError, "more than one '...'"),
    ],
)
def test_einsum_errors(equation, shapes, error, match):
    with pytest.raises(error, match=match):
        gj.einsum(equation, *[gj.tensor(a) for a in _arrays(shapes)])


def test_einsum_refuses_booleans_and_unknown_diagonals():
    with pytest.raises(gj.DTypeError, match="boolean"):
        gj.einsum("ij->j", gj.tensor([[True, False]]))
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [None, None], name="x")
        with pytest.raises(gj.ShapeError, match="diagonal"):
            gj.einsum("ii->i", x)
