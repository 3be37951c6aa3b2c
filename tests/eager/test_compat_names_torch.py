"""The PyTorch names of frontend/compat.py and losses.py (and the TF1 names that PyTorch
spells otherwise) against PyTorch itself: the same eager inputs, float64 and float32, the
same values and the same gradients. NumPy's checks, the graphs and the backends:
tests/static/test_compat_names.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import graphjit as gj

torch = pytest.importorskip("torch")
# (NaN and infinite inputs are the point of some cases: NumPy's warnings about them are not)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
TF = torch.nn.functional
F = gj.nn.functional
RNG = np.random.default_rng(11)

X, Y = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
P = RNG.uniform(0.5, 2.0, (3, 4))
NONZERO = P * RNG.choice([-1.0, 1.0], (3, 4))
V3, V4 = RNG.normal(size=3), RNG.normal(size=4)
PROBS, TARGETS = RNG.uniform(0.05, 0.95, (3, 4)), RNG.uniform(0, 1, (3, 4))
LOGP = np.log(RNG.dirichlet(np.ones(4), size=5))
LOGP3 = np.log(RNG.dirichlet(np.ones(3), size=(2, 4))).transpose(0, 2, 1)  # (N, C, d)
CLASSES, CLASSES3 = np.array([0, 3, -100, 2, 1]), np.array([[0, 2, 1, 1], [2, -100, 0, 1]])
CLASS_WEIGHTS = np.array([0.5, 1.0, 2.0, 1.5])
TIES = np.array([[1.0, 3.0, 3.0, -2.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, -1.0, 5.0]])


@dataclass(frozen=True)
class Case:
    """`ours(*tensors)` with graphjit, `theirs(*tensors)` with torch; the tensors are made
    from `inputs` (differentiated) then `fixed` (not: PyTorch has no gradient for them),
    float arrays in the dtype under test; `grad`: compare gradients too."""

    name: str
    ours: object
    theirs: object
    inputs: tuple
    grad: bool = True
    fixed: tuple = ()


def _same(name, *inputs, grad=True):
    """A function spelled the same in both: gj.<name> and torch.<name>."""
    return Case(name, getattr(gj, name), getattr(torch, name), inputs, grad)


def _tf(name, ours, theirs, *inputs, grad=True):
    return Case(name, ours, theirs, inputs, grad)


CASES = [
    _same("reciprocal", NONZERO),
    _same("log2", P),
    _same("log10", P),
    _same("tan", X),
    Case("logical_xor", lambda x, y: gj.logical_xor(x > 0, y),
         lambda x, y: torch.logical_xor(x > 0, y),
         (X, Y), grad=False),
    _same("multiply", X, Y),
    _same("subtract", X, V4),
    _same("divide", X, NONZERO),
    _tf("squared_difference", gj.squared_difference, lambda x, y: (x - y) ** 2, X, V4),
    _tf("add_n", lambda x, y: gj.add_n([x, y, x]), lambda x, y: x + y + x, X, Y),
    _tf("bias_add", gj.nn.bias_add, torch.add, X, V4),
    _tf("moments", lambda x: gj.nn.moments(x, [1]),
        lambda x: torch.var_mean(x, 1, unbiased=False)[::-1], X),
    _tf("l2_normalize", lambda x: gj.nn.l2_normalize(x, 0), lambda x: TF.normalize(x, dim=0), X),
    _tf("embedding_lookup", lambda p: gj.nn.embedding_lookup(p, [[1, 2], [2, 2]]),
        lambda p: TF.embedding(torch.tensor([[1, 2], [2, 2]]), p), X),
    Case("clamp", lambda x: gj.clamp(x, -0.5, max=0.6), lambda x: torch.clamp(x, -0.5, max=0.6),
         (X,)),
    Case("clamp max", lambda x: gj.clamp(x, max=0.2), lambda x: torch.clamp(x, max=0.2), (X,)),
    Case("mm", lambda x, y: gj.mm(x, y.T), lambda x, y: torch.mm(x, y.T), (X, Y)),
    _same("mv", X, V4),
    _same("outer", V3, V4),
    Case("amax", lambda x: gj.amax(x, 1), lambda x: torch.amax(x, 1), (TIES,)),
    Case("amax all", gj.amax, torch.amax, (TIES,)),
    Case("amin", lambda x: gj.amin(x, (0,), True), lambda x: torch.amin(x, (0,), True), (TIES,)),
    Case("fmod", lambda x, y: gj.fmod(x * 5, y), lambda x, y: torch.fmod(x * 5, y), (X, NONZERO)),
    Case("fmod scalar", lambda x: gj.fmod(x * 5, -1.5), lambda x: torch.fmod(x * 5, -1.5), (X,)),
    Case("isclose", lambda x, y: gj.isclose(x, x + y * 1e-5),
         lambda x, y: torch.isclose(x, x + y * 1e-5),
         (X, Y), grad=False),
    Case("nan_to_num", lambda x: gj.nan_to_num(gj.log(x), posinf=7.0),
         lambda x: torch.nan_to_num(torch.log(x), posinf=7.0), (X,)),
    Case("roll", lambda x: gj.roll(x, (-1, 5), (0, 1)), lambda x: torch.roll(x, (-1, 5), (0, 1)),
         (X,)),
    Case("roll flat", lambda x: gj.roll(x, -3), lambda x: torch.roll(x, -3), (X,)),
    _same("diag", V4),
    _same("diag", X),
    Case("diag offset", lambda x: gj.diag(x, -1), lambda x: torch.diag(x, -1), (X,)),
    Case("nll_loss", lambda x: F.nll_loss(x, CLASSES),
         lambda x: TF.nll_loss(x, torch.tensor(CLASSES)), (LOGP,)),
    Case("nll_loss weight", lambda x, w: F.nll_loss(x, CLASSES, weight=w),
         lambda x, w: TF.nll_loss(x, torch.tensor(CLASSES), weight=w), (LOGP,),
         fixed=(CLASS_WEIGHTS,)),
    Case("nll_loss (N, C, d) sum", lambda x: F.nll_loss(x, CLASSES3, reduction="sum"),
         lambda x: TF.nll_loss(x, torch.tensor(CLASSES3), reduction="sum"), (LOGP3,)),
    Case("nll_loss none", lambda x: F.nll_loss(x, CLASSES % 4, reduction="none", ignore_index=3),
         lambda x: TF.nll_loss(x, torch.tensor(CLASSES % 4), reduction="none", ignore_index=3),
         (LOGP,)),
    Case("binary_cross_entropy", F.binary_cross_entropy, TF.binary_cross_entropy,
         (PROBS, TARGETS)),
    Case("binary_cross_entropy weight none",
         lambda p, t, w: F.binary_cross_entropy(p, t, weight=w, reduction="none"),
         lambda p, t, w: TF.binary_cross_entropy(p, t, weight=w, reduction="none"),
         (PROBS, TARGETS), fixed=(P[0],)),
    Case("binary_cross_entropy_with_logits",
         lambda x, t: F.binary_cross_entropy_with_logits(x * 4, t),
         lambda x, t: TF.binary_cross_entropy_with_logits(x * 4, t), (X, TARGETS)),
    Case("binary_cross_entropy_with_logits pos_weight",
         lambda x, t, w: F.binary_cross_entropy_with_logits(x * 4, t, reduction="sum",
                                                            pos_weight=w),
         lambda x, t, w: TF.binary_cross_entropy_with_logits(x * 4, t, reduction="sum",
                                                             pos_weight=w),
         (X, TARGETS), fixed=(P[0],)),
    Case("binary_cross_entropy_with_logits weight",
         lambda x, t, w: F.binary_cross_entropy_with_logits(x * 4, t, weight=w, pos_weight=w),
         lambda x, t, w: TF.binary_cross_entropy_with_logits(x * 4, t, weight=w, pos_weight=w),
         (X, TARGETS), fixed=(NONZERO[1],)),
    Case("l1_loss", F.l1_loss, TF.l1_loss, (X, Y)),
    Case("l1_loss sum", lambda x, y: F.l1_loss(x, y, "sum"),
         lambda x, y: TF.l1_loss(x, y, reduction="sum"),
         (X, Y)),
    Case("smooth_l1_loss", F.smooth_l1_loss, TF.smooth_l1_loss, (X, Y)),
    Case("smooth_l1_loss beta", lambda x, y: F.smooth_l1_loss(x, y, "none", beta=0.3),
         lambda x, y: TF.smooth_l1_loss(x, y, reduction="none", beta=0.3), (X, Y)),
    Case("smooth_l1_loss beta 0", lambda x, y: F.smooth_l1_loss(x, y, beta=0.0),
         lambda x, y: TF.smooth_l1_loss(x, y, beta=0.0), (X, Y)),
]  # fmt: skip


def _leaves(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _numpy(t) -> np.ndarray:
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy()


def _tol(dtype) -> dict:
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-11, "atol": 1e-12}


def _run(fn, lib, arrays, fixed):
    """fn's results and the gradients of sum(result * weights) for the float inputs."""
    tensors = [lib.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = _leaves(fn(*tensors, *map(lib.tensor, fixed)))
    values = [_numpy(o) for o in out]
    if not any(o.requires_grad for o in out):
        return values, []
    weights = [np.linspace(0.5, 1.5, v.size).reshape(v.shape).astype(v.dtype) for v in values]
    total = sum((o * lib.tensor(w)).sum() for o, w in zip(out, weights, strict=True))
    total.backward()
    return values, [_numpy(t.grad) for t in tensors if t.requires_grad]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_values_and_gradients_match_pytorch(case, dtype):
    arrays = [a.astype(dtype) for a in case.inputs]
    fixed = [a.astype(dtype) for a in case.fixed]
    ours, our_grads = _run(case.ours, gj, arrays, fixed)
    theirs, their_grads = _run(case.theirs, torch, arrays, fixed)
    for got, want in zip(ours, theirs, strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype, (got, want)
        np.testing.assert_allclose(got, want, **_tol(dtype))
    if case.grad:
        assert len(our_grads) == len(their_grads) > 0
        for got, want in zip(our_grads, their_grads, strict=True):
            np.testing.assert_allclose(got, want, err_msg="gradient", **_tol(dtype))


def test_fmod_of_integers_and_negative_operands_matches_pytorch():
    x = np.array([-7, 7, -7, 7, 0, -6, 6, -(2**62)], np.int64)
    y = np.array([3, -3, -3, 3, -5, 4, -4, 7], np.int64)
    assert (
        gj.fmod(gj.tensor(x), gj.tensor(y)).tolist()
        == torch.fmod(torch.tensor(x), torch.tensor(y)).tolist()
    )
    assert gj.fmod(gj.tensor(x), -4).tolist() == torch.fmod(torch.tensor(x), -4).tolist()
    f = np.array([-5.5, 5.5, -0.25, 1e-30, -1e-30, np.inf, 3.0, 2.0])
    g = np.array([2.0, -2.0, 0.5, 1.0, 7.0, 1.0, np.inf, 0.0])
    np.testing.assert_array_equal(gj.fmod(gj.tensor(f), gj.tensor(g)).numpy(),
                                  torch.fmod(torch.tensor(f), torch.tensor(g)).numpy())  # fmt: skip


def test_nan_to_num_and_isclose_on_special_values_match_pytorch():
    a = np.array([np.nan, np.inf, -np.inf, 1.0, np.inf, 0.0, np.nan])
    b = np.array([np.nan, np.inf, np.inf, 1.0 + 1e-9, 6e4, 1e-9, 0.0])
    for dtype in (np.float64, np.float32, np.float16):
        ours = gj.nan_to_num(gj.tensor(a.astype(dtype))).numpy()
        theirs = torch.nan_to_num(torch.tensor(a.astype(dtype))).numpy()
        np.testing.assert_array_equal(ours, theirs)
        for equal_nan in (False, True):
            ours = gj.isclose(
                gj.tensor(a.astype(dtype)), gj.tensor(b.astype(dtype)), equal_nan=equal_nan
            )
            theirs = torch.isclose(torch.tensor(a.astype(dtype)), torch.tensor(b.astype(dtype)),
                                   equal_nan=equal_nan)  # fmt: skip
            assert ours.tolist() == theirs.tolist(), (dtype, equal_nan)
    for x, y in [([1.0, 2.0], [1.0, 2.0 + 1e-7]), ([1.0], [1.1]), ([np.nan], [np.nan])]:
        assert gj.allclose(gj.tensor(x), gj.tensor(y)) is torch.allclose(
            torch.tensor(x), torch.tensor(y)
        )


def test_one_hot_matches_pytorch():
    labels = np.array([[3, 0], [1, 1]])
    assert F.one_hot(gj.tensor(labels)).tolist() == TF.one_hot(torch.tensor(labels)).tolist()
    ours, theirs = F.one_hot(gj.tensor(labels), 6), TF.one_hot(torch.tensor(labels), 6)
    assert ours.tolist() == theirs.tolist() and ours.dtype == gj.int64
    for bad, classes in [([0, 3], 3), ([-1], -1)]:
        with pytest.raises(RuntimeError):
            TF.one_hot(torch.tensor(bad), classes)
        with pytest.raises(gj.GraphjitError):
            F.one_hot(gj.tensor(bad), classes)


def test_binary_cross_entropy_at_zero_and_one_matches_pytorch():
    p = np.array([0.0, 0.0, 1.0, 1.0, 1e-45, 1 - 1e-16])
    t = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    for dtype in (np.float64, np.float32):
        ours = F.binary_cross_entropy(
            gj.tensor(p.astype(dtype)), gj.tensor(t.astype(dtype)), reduction="none"
        )
        theirs = TF.binary_cross_entropy(
            torch.tensor(p.astype(dtype)), torch.tensor(t.astype(dtype)), reduction="none"
        )
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    x = np.array([-300.0, -20.0, 0.0, 20.0, 300.0])
    z = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    ours = gj.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(ours, gj.tensor(z), reduction="none")
    expected = TF.binary_cross_entropy_with_logits(theirs, torch.tensor(z), reduction="none")
    # (PyTorch's (1 - t) x - log_sigmoid(x) loses digits to cancellation where the loss is
    # tiny; graphjit's TF1 form keeps them: log(1 + e^-|x|) plus the term that is exact)
    exact = np.logaddexp(0, -np.abs(x)) + np.where(x >= 0, (1 - z) * x, -z * x)
    np.testing.assert_allclose(loss.numpy(), exact, rtol=1e-13)
    np.testing.assert_allclose(loss.numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-15)
    gj.sum(loss).backward()
    expected.sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-15)
