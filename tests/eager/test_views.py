"""Eager views, as in PyTorch: slicing and shape ops share storage and the version counter
with their base; in-place changes through a view are recorded on the base (CopySlices); a
tape node whose rule reads a tensor changed in place since refuses to run. Expected values
are computed by hand; where PyTorch is installed, the same programs are compared with it."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj


def _shares(a, b) -> bool:
    return np.shares_memory(a.numpy(), b.numpy())


# ---- data: writes through any view reach the base and every other view -------------------


def test_slice_writes_reach_the_base():
    t = gj.tensor([1.0, 2.0, 3.0, 4.0])
    t[1:].mul_(10)
    assert t.tolist() == [1.0, 20.0, 30.0, 40.0]
    t[0].add_(5)
    t[::2].sub_(1)
    assert t.tolist() == [5.0, 20.0, 29.0, 40.0]


@pytest.mark.parametrize(
    "make",
    [
        lambda t: t[1],
        lambda t: t[:, 1:],
        lambda t: t[..., 0],
        lambda t: t[None, 0],
        lambda t: t.reshape(6),
        lambda t: t.view(3, 2),
        lambda t: t.view(-1),
        lambda t: t.flatten(),
        lambda t: t.T,
        lambda t: t.mT,
        lambda t: t.t(),
        lambda t: t.transpose(0, 1),
        lambda t: t.permute(1, 0),
        lambda t: t.unsqueeze(0),
        lambda t: t.unsqueeze(0).squeeze(0),
        lambda t: t[:1].squeeze(),
        lambda t: t.T[1:],
        lambda t: t.view(3, 2)[::2].T,
        lambda t: gj.reshape(t, (3, 2)),
        lambda t: gj.transpose(t),
        lambda t: gj.expand_dims(t, 1),
    ],
)
def test_view_ops_share_storage_and_version(make):
    t = gj.tensor(np.arange(6.0).reshape(2, 3))
    v = make(t)
    assert v._is_view() and v._base is t and _shares(v, t)
    before = t.numpy().copy()
    v.add_(100)
    changed = t.numpy() != before
    assert changed.sum() == v.numel()  # exactly the viewed elements changed, through the base
    np.testing.assert_array_equal(t.numpy()[changed], before[changed] + 100)
    assert t._version[0] == v._version[0] == 1
    t.zero_()  # and the other way round
    assert np.all(v.numpy() == 0) and v._version[0] == 2


def test_views_of_views_have_the_root_as_base_and_see_each_other():
    t = gj.zeros(4, 3)
    a = t[1:]
    b = a.T
    c = t.view(12)
    assert a._base is t and b._base is t and c._base is t
    b[0].fill_(7)  # column 0 of rows 1..3
    assert t[:, 0].tolist() == [0.0, 7.0, 7.0, 7.0]
    assert c.tolist()[3::3] == [7.0, 7.0, 7.0]
    assert t._version[0] == a._version[0] == b._version[0] == c._version[0] == 1


def test_setitem_writes_the_base_through_views():
    t = gj.zeros(2, 3)
    row = t[1]
    row[1:] = gj.tensor([4.0, 5.0])
    t[0, ::2] = 9
    assert t.tolist() == [[9.0, 0.0, 9.0], [0.0, 4.0, 5.0]]
    assert row.tolist() == [0.0, 4.0, 5.0]


def test_iterating_gives_views():
    t = gj.zeros(3, 2)
    for i, row in enumerate(t):
        row.fill_(i)
    assert t.tolist() == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]


def test_reshape_copies_where_a_view_is_impossible_and_view_raises():
    t = gj.tensor(np.arange(6.0).reshape(2, 3))
    tt = t.T
    assert not tt.is_contiguous()
    flat = tt.reshape(-1)  # a copy, as torch.reshape of a non-contiguous tensor
    assert not flat._is_view() and not _shares(flat, t)
    assert flat.tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    flat.add_(1)
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    with pytest.raises(gj.ShapeError, match="view size is not compatible"):
        tt.view(-1)
    with pytest.raises(gj.ShapeError, match="reshape"):
        tt.view(4, 2)  # a wrong shape says so, not "not compatible with stride"
    c = tt.contiguous()
    assert c.is_contiguous() and c.view(-1).tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    assert not _shares(c, t)


def test_view_needs_a_copy_only_where_the_layout_is_not_compatible():
    t = gj.zeros(4, 6)
    assert t[1:3].view(12)._is_view()  # rows are contiguous
    assert t[:, ::2].view(4, 3)._is_view()  # last axis merged with nothing: still a view
    with pytest.raises(gj.ShapeError, match="view size is not compatible"):
        t[:, :3].view(12)


def test_expand_is_a_read_only_view():
    t = gj.tensor([1.0, 2.0])
    e = t.expand(3, -1)
    assert e.shape == (3, 2) and e._is_view() and _shares(e, t)
    t.mul_(2)
    assert e.tolist() == [[2.0, 4.0]] * 3
    with pytest.raises(gj.ShapeError, match="more than one element"):
        e.add_(1)
    with pytest.raises(gj.ShapeError, match="more than one element"):
        e[0] = 1.0
    assert gj.broadcast_to(t, (2, 2))._is_view()
    assert t.expand_as(gj.zeros(4, 2)).shape == (4, 2)


def test_clone_and_detach_are_not_views():
    t = gj.tensor([1.0, 2.0])
    c = t.clone()
    assert not c._is_view() and not _shares(c, t)
    d = t.detach()
    assert not d._is_view() and _shares(d, t)
    d.add_(1)  # shares storage and version counter, as in PyTorch
    assert t.tolist() == [2.0, 3.0] and t._version[0] == 1


def test_numpy_of_a_view_is_a_numpy_view_of_the_base():
    t = gj.zeros(2, 3)
    t.T.numpy()[2, 1] = 5  # (changes through numpy() are not versioned, as in PyTorch)
    assert t.tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]]


# ---- gradients through in-place changes of views ------------------------------------------


def test_in_place_on_a_view_of_a_non_leaf():
    # (a) of the issue: the view's region goes through mul_, the rest straight to x * 2.
    x = gj.tensor([1.0, 1.0, 1.0], requires_grad=True)
    y = x * 2
    y[0].mul_(3)
    assert y.tolist() == [6.0, 2.0, 2.0]
    assert y.grad_fn.name == "CopySlices"
    y.sum().backward()
    assert x.grad.tolist() == [6.0, 2.0, 2.0]


def test_zeroing_a_slice_of_a_clone():
    # (b) of the issue: d/dx sum(y*y) with y = [x0, 0, 0].
    x = gj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.clone()
    y[1:].zero_()
    (y * y).sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 0.0]


def test_in_place_with_a_tensor_that_requires_grad():
    x = gj.tensor([1.0, 2.0, 3.0], dtype="float64", requires_grad=True)
    w = gj.tensor([10.0, 20.0], dtype="float64", requires_grad=True)
    y = x * 1
    y[1:].mul_(w)  # y = [x0, x1*w0, x2*w1]
    (y * gj.tensor([1.0, 2.0, 3.0], dtype="float64")).sum().backward()
    assert x.grad.tolist() == [1.0, 20.0, 60.0]
    assert w.grad.tolist() == [4.0, 9.0]


def test_setitem_is_recorded_like_copy_into_a_view():
    w = gj.tensor([5.0, 6.0], requires_grad=True)
    b = gj.zeros(3)
    b[1:] = w * 2  # b did not require grad: it joins the tape
    assert b.tolist() == [0.0, 10.0, 12.0] and not b.is_leaf
    (b * gj.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert w.grad.tolist() == [4.0, 6.0]

    x = gj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 3
    y[0] = 0.0  # the overwritten element gets no gradient
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 3.0, 3.0]


def test_setitem_with_a_tensor_index_and_leading_unit_dims():
    w = gj.tensor([2.0], requires_grad=True)
    b = gj.zeros(3)
    b[gj.tensor(1)] = w * 5  # a (1,) value into one element, as NumPy and PyTorch allow
    assert b.tolist() == [0.0, 10.0, 0.0]
    b.sum().backward()
    assert w.grad.tolist() == [5.0]


def test_a_view_as_the_argument_of_a_compiled_function():
    x = gj.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    square_sum = gj.function(lambda a: (a * a).sum(), backend="interpreter")
    square_sum((x * 1).T[1:]).backward()
    assert x.grad.tolist() == [[0.0, 2.0, 4.0], [0.0, 8.0, 10.0]]


def test_other_views_follow_the_new_history_of_the_base():
    x = gj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    first, last = y[:2], y[1:]
    first.mul_(2)  # y = [2x0, 2x1, x2]; `last` was made before
    assert last.tolist() == [4.0, 3.0]
    (last * gj.tensor([1.0, 10.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 2.0, 10.0]


def test_in_place_on_the_base_is_seen_by_earlier_views():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    v = y[1:]
    y.mul_(x)  # y = x * x
    assert v.requires_grad and v.tolist() == [4.0]
    v.sum().backward()
    assert x.grad.tolist() == [0.0, 4.0]


def test_nested_views_and_chained_in_place_changes():
    x = gj.tensor(np.arange(6.0), requires_grad=True)
    y = x * 1
    y.view(2, 3)[1].mul_(2)  # y[3:] doubled
    y.view(3, 2).T[0].add_(1)  # y[::2] += 1
    np.testing.assert_array_equal(y.numpy(), [1.0, 1.0, 3.0, 6.0, 9.0, 10.0])
    (y * y).sum().backward()
    dy = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), 2 * y.numpy() * dy)


def test_a_view_of_a_constant_changed_by_a_tracked_value():
    w = gj.tensor([2.0], requires_grad=True)
    acc = gj.zeros(3)
    acc[1:].add_(w * 3)
    assert acc.requires_grad and acc.grad_fn.name == "CopySlices"
    (acc * gj.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert w.grad.tolist() == [15.0]


def test_gradients_through_views_are_views_of_the_gradient():
    x = gj.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    (x.T[1:] * 2).sum().backward()
    assert x.grad.tolist() == [[0.0, 2.0, 2.0], [0.0, 2.0, 2.0]]


def test_second_order_through_copy_slices():
    x = gj.tensor([1.0, 2.0, 3.0], dtype="float64", requires_grad=True)
    y = x * x
    y[1:].mul_(x[1:])  # y = [x0^2, x1^3, x2^3]
    (g,) = gj.autograd.grad(y.sum(), x, create_graph=True)
    assert g.tolist() == [2.0, 12.0, 27.0]
    (g2,) = gj.autograd.grad(g.sum(), x)
    assert g2.tolist() == [2.0, 12.0, 18.0]


def test_copy_slices_frees_its_state_unless_the_graph_is_retained():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y[0].add_(1)
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    assert x.grad.tolist() == [4.0, 4.0]
    with pytest.raises(gj.GradientError, match="second time"):
        y.sum().backward()


def test_in_place_on_a_view_of_a_leaf_that_requires_grad():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(gj.GradientError, match="a view of a leaf Variable that requires grad"):
        x[0].mul_(2)
    with pytest.raises(gj.GradientError, match="a view of a leaf Variable that requires grad"):
        x[1] = 5.0
    with pytest.raises(gj.GradientError, match="leaf"):
        x.view(2).zero_()
    assert x.tolist() == [1.0, 2.0]
    with gj.no_grad():  # as an optimizer would
        x[0].mul_(2)
        x[1] = 5.0
    assert x.tolist() == [2.0, 5.0] and x.is_leaf and x.requires_grad


def test_saved_views_see_changes_of_their_base():
    w = gj.tensor([1.0, 2.0], requires_grad=True)
    x = gj.tensor([3.0, 4.0, 5.0])
    loss = (w * x[1:]).sum()  # mul saved the view x[1:] for w's gradient
    x.mul_(2)  # through the base
    with pytest.raises(gj.GradientError, match="modified by an inplace operation"):
        loss.backward()


def test_a_view_used_after_an_optimizer_like_step_gets_a_fresh_history():
    w = gj.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    wt = w.T
    (wt[0] * 2).sum().backward()
    assert w.grad.tolist() == [[2.0, 0.0], [2.0, 0.0]]
    with gj.no_grad():
        w.sub_(w.grad)
    w.grad = None
    (wt[0] * wt[0]).sum().backward()  # wt is the same view: it follows w's new value
    assert w.grad.tolist() == [[-2.0, 0.0], [2.0, 0.0]]


# ---- the version check: saved inputs and outputs changed in place -------------------------


@pytest.mark.parametrize("fn", ["exp", "tanh", "sigmoid", "sqrt"])
def test_changing_an_output_the_rule_reads_is_caught(fn):
    x = gj.tensor([0.5, 1.0], requires_grad=True)
    y = getattr(x, fn)()
    y.add_(1)
    with pytest.raises(gj.GradientError, match="one of the variables needed for gradient"):
        y.sum().backward()


def test_changing_an_output_through_a_view_is_caught():
    x = gj.tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()
    y[0].add_(1)
    with pytest.raises(gj.GradientError, match="modified by an inplace operation"):
        y.sum().backward()


def test_changing_an_output_the_rule_does_not_read_is_fine():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2  # mul's rule reads its inputs, not its output
    y.add_(1)
    z = x + 1  # add's rule reads neither
    z.mul_(3)
    (y + z).sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]


def test_changing_an_input_the_rule_reads_is_caught():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    a = x * 1
    b = a * a
    a.add_(1)
    with pytest.raises(gj.GradientError, match="modified by an inplace operation"):
        b.sum().backward()


def test_changing_an_input_read_only_for_its_shape_is_fine():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    a = x * 1
    b = a + gj.tensor([[1.0, 1.0]] * 3)  # add's rule reads a only for its shape (sum_to)
    a.mul_(0)
    b.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_changing_through_a_detached_alias_is_caught():
    x = gj.tensor([1.0, 2.0], requires_grad=True)
    y = x.tanh()
    y.detach()[0] = 0.0
    with pytest.raises(gj.GradientError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- gj.function: the same methods build graph ops --------------------------------------


def test_view_methods_trace_into_graphs():
    def f(x):
        a = x.view(-1)[1:].sum()
        b = x.permute(1, 0).flatten() * x.T.reshape(6)
        c = x.mT.unsqueeze(0).squeeze(0)[0]
        d = x[0].expand(2, 3) + x.transpose(0, 1).contiguous().T
        return a + b.sum() + c.sum() + d.sum() + x.flatten(0, 1).sum()

    compiled = gj.function(f, backend="interpreter")
    data = np.arange(6.0).reshape(2, 3)
    expected = f(gj.tensor(data)).item()
    assert compiled(data).item() == pytest.approx(expected)
    x = gj.tensor(data, requires_grad=True)
    compiled(x).backward()
    eager = gj.tensor(data, requires_grad=True)
    f(eager).backward()
    np.testing.assert_allclose(x.grad.numpy(), eager.grad.numpy())


# ---- the same programs in PyTorch --------------------------------------------------------


def _program_a(lib, x):
    y = x * 2
    y[0].mul_(3)
    return y.sum()


def _program_b(lib, x):
    y = x.clone()
    y[1:].zero_()
    return (y * y).sum()


def _program_c(lib, x):
    y = x * 1
    v = y.view(2, 3)
    v.T[1].add_(v[0, 0])  # column 1 (y[1], y[4]) += y[0]
    y[3:] *= 2
    w = y[1:]
    w.mul_(x[1:])
    return (y * y.flip(0) if lib == "torch" else y * y[::-1]).sum()


def _program_d(lib, x):
    y = x * x
    z = y.view(3, 2)
    z[:, 1] = 0.0
    return (y * x).sum()


@pytest.mark.parametrize("program", [_program_a, _program_b, _program_c, _program_d])
def test_matches_pytorch(program):
    torch = pytest.importorskip("torch")
    data = np.array([0.5, -1.0, 2.0, 1.5, -0.25, 3.0])
    x = gj.tensor(data, requires_grad=True)
    ours = program("graphjit", x)
    ours.backward()
    tx = torch.tensor(data, requires_grad=True)
    theirs = program("torch", tx)
    theirs.backward()
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_matches_pytorch_errors():
    torch = pytest.importorskip("torch")
    for make in [torch.tensor, gj.tensor]:
        x = make([1.0, 2.0], requires_grad=True)
        y = x.exp()
        y.add_(1)
        with pytest.raises(Exception, match="modified by an inplace operation"):
            y.sum().backward()
        with pytest.raises(Exception, match="a view of a leaf Variable that requires grad"):
            x[0].mul_(2)
        with pytest.raises(Exception, match="view size is not compatible"):
            make([[1.0, 2.0], [3.0, 4.0]]).T.view(-1)
