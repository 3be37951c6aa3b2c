"""TensorFlow 1's names, as a TF1 program uses them: a training program (placeholders,
Variables, losses, GradientDescentOptimizer(...).minimize(loss, global_step=...), Saver,
fetch by name, global_variables_initializer), the shape and control-flow helpers, and the
losses against PyTorch's when it is installed. Each checked against NumPy."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import scipy.special

import graphjit as gj

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 3))
Y = np.array([0, 1, 2, 3, 1, 0])
W0 = RNG.normal(size=(3, 4)) * 0.5
LR, L2 = 0.1, 1e-2


def _numpy_step(w):
    """One gradient-descent step of mean softmax cross entropy + L2 * l2_loss(w)."""
    p = scipy.special.softmax(X @ w, axis=1)
    p[np.arange(len(Y)), Y] -= 1
    return w - LR * (X.T @ p / len(Y) + L2 * w)


def _numpy_loss(w):
    logp = scipy.special.log_softmax(X @ w, axis=1)
    return -np.mean(logp[np.arange(len(Y)), Y]) + L2 * np.sum(w**2) / 2


def _training_graph():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None, 3], name="x")
        y = gj.placeholder(gj.int64, [None], name="y")
        w = gj.Variable(W0, name="W")
        xent = gj.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x @ w)
        loss = gj.identity(gj.reduce_mean(xent) + L2 * gj.nn.l2_loss(w), name="loss")
        gs = gj.train.get_or_create_global_step()
        step = gj.train.GradientDescentOptimizer(LR).minimize(loss, global_step=gs)
        init = gj.global_variables_initializer()
    return g, {"x": x, "y": y, "w": w, "loss": loss, "gs": gs, "step": step, "init": init}


def test_a_tf1_training_program_matches_numpy(tmp_path):
    g, t = _training_graph()
    feed = {"x:0": X, t["y"]: Y}  # feeds by name and by placeholder
    w = W0
    with gj.Session(g) as sess:
        sess.run(t["init"])
        for _ in range(3):
            np.testing.assert_allclose(sess.run("loss:0", feed), _numpy_loss(w), rtol=1e-12)
            sess.run(t["step"], feed)
            w = _numpy_step(w)
        np.testing.assert_allclose(sess.run("W:0"), w, rtol=1e-12)
        np.testing.assert_allclose(sess.run("W"), w, rtol=1e-12)
        assert sess.run("global_step") == 3 and sess.run(t["gs"]).dtype == np.int64

        saver = gj.train.Saver()
        saved = sess.run(t["w"])
        path = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=t["gs"])
        assert path.endswith("model.ckpt-3")
        sess.run(t["step"], feed)
        saver.restore(sess, path)
        np.testing.assert_array_equal(sess.run(t["w"]), saved)
        assert sess.run(t["gs"]) == 3

        sess.run(t["init"])  # back to the initial values, the global step included
        np.testing.assert_array_equal(sess.run(t["w"]), W0)
        assert sess.run(t["gs"]) == 0


def test_saver_checks_what_it_restores(tmp_path):
    g, t = _training_graph()
    with gj.Session(g, backend="interpreter") as sess:
        path = gj.train.Saver(var_list=[t["w"]]).save(sess, str(tmp_path / "w.ckpt"))
        t["w"].load(np.zeros((3, 4)), sess)
        gj.train.Saver({"W": t["w"]}).restore(sess, path)
        np.testing.assert_array_equal(sess.run(t["w"]), W0)
        with pytest.raises(gj.CheckpointError):  # the subset lacks the global step
            gj.train.Saver().restore(sess, path)
        _flip_last_byte(path, "W.npy")
        with pytest.raises(gj.CheckpointError, match="checksum"):
            gj.train.Saver([t["w"]]).restore(sess, path)


def _flip_last_byte(path, member: str) -> None:
    """Rewrite the checkpoint with one bit of `member`'s data flipped (metadata unchanged)."""
    with zipfile.ZipFile(path) as z:
        members = {name: bytearray(z.read(name)) for name in z.namelist()}
    members[member][-1] ^= 1
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, bytes(data))


def test_fetch_by_name():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        twice = gj.identity(x * 2, name="twice")
        again = gj.identity(x * 3, name="twice")  # TF1 makes the second name unique
        gj.constant(1.0, name="c")
    assert (twice.name, again.name) == ("twice:0", "twice_1:0")
    with gj.Session(g, backend="interpreter") as sess:
        out = sess.run(["twice:0", "twice_1", "c:0"], {"x": [1.0, 2.0]})
        assert [o.tolist() for o in out] == [[2.0, 4.0], [3.0, 6.0], 1.0]
        with pytest.raises(gj.FetchError, match="no tensor has that name"):
            sess.run("nothing:0")
        with pytest.raises(gj.FetchError, match="'name:index'"):
            sess.run("twice:x")


# One call per function that takes TF1's name= through gj (tf1.TAKES_NAME), over x, a
# 2 x 3 float32 placeholder, and i, a 2 x 3 int32 one; `kw` is the name= argument.
def _calls(names: str, args):
    return {
        n: (lambda f: lambda x, i, **kw: f(*args(x, i), **kw))(getattr(gj, n))
        for n in names.split()
    }


NAME_CALLS = {
    **_calls(
        "neg exp sin cos square abs sign tanh sigmoid relu softmax log_softmax", lambda x, i: [x]
    ),
    **_calls(
        "stop_gradient norm sum mean max min isnan isinf isfinite is_nan is_inf", lambda x, i: [x]
    ),
    **_calls("is_finite sort argsort cumsum transpose squeeze", lambda x, i: [x]),
    **_calls(
        "add sub mul div maximum minimum pow equal not_equal less less_equal", lambda x, i: [x, x]
    ),
    **_calls("greater greater_equal", lambda x, i: [x, x]),
    **_calls("floor_divide floordiv mod floormod remainder", lambda x, i: [i, i + 1]),
    **_calls("bitwise_and bitwise_or bitwise_xor", lambda x, i: [i, i + 1]),
    **_calls("logical_and logical_or", lambda x, i: [x > 0, x < 1]),
    **_calls("logical_not", lambda x, i: [x > 0]),
    **_calls("sqrt log rsqrt", lambda x, i: [gj.abs(x) + 1]),
    **_calls("where", lambda x, i: [x > 0, x, -x]),
    **_calls("cast", lambda x, i: [x, gj.int32]),
    **_calls("matmul", lambda x, i: [x, gj.transpose(x)]),
    **_calls("argmax argmin", lambda x, i: [x, 1]),
    **_calls("one_hot", lambda x, i: [i, 4]),
    **_calls("check_numerics", lambda x, i: [x, "x"]),
    **_calls("reshape", lambda x, i: [x, [3, 2]]),
    **_calls("concat", lambda x, i: [[x, x], 0]),
    **_calls("stack", lambda x, i: [[x, x]]),
    **_calls("expand_dims", lambda x, i: [x, 0]),
    **_calls("broadcast_to", lambda x, i: [x, [4, 2, 3]]),
    **_calls("gather", lambda x, i: [x, [1, 0]]),
    **_calls("boolean_mask", lambda x, i: [x, np.array([True, False])]),
    **_calls("pad", lambda x, i: [x, (1, 1)]),
    **_calls("einsum", lambda x, i: ["ij->ji", x]),
    **_calls("topk", lambda x, i: [x, 2]),
}


def test_op_functions_take_tf1_names():
    """Each takes name=, and its result (each of sort's and top_k's two) is fetched by it, equal to
    the unnamed call's; eager tensors take (and ignore) it too."""
    assert sorted(NAME_CALLS) == sorted(gj.frontend.tf1.TAKES_NAME)
    feeds = {
        "x:0": np.array([[0.5, -1.0, 2.0], [3.0, 0.25, -0.5]], np.float32),
        "i:0": np.array([[1, 2, 3], [4, 5, 6]], np.int32),
    }
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2, 3], name="x")
        i = gj.placeholder(gj.int32, [2, 3], name="i")
        plain = {n: call(x, i) for n, call in NAME_CALLS.items()}
        for n, call in NAME_CALLS.items():
            call(x, i, name=f"named_{n}")
    with gj.Session(g, backend="interpreter") as sess:
        for n, want in plain.items():
            want = list(want) if isinstance(want, tuple) else [want]
            got = sess.run([f"named_{n}:{k}" for k in range(len(want))], feeds)
            for a, b in zip(got, sess.run(want, feeds), strict=True):
                np.testing.assert_array_equal(a, b, err_msg=n)
    eager = gj.add(gj.tensor([1.0]), 2.0, name="ignored")
    assert eager.tolist() == [3.0]


def test_eval_load_and_the_default_session():
    g = gj.Graph()
    with g.as_default():
        v = gj.Variable(np.arange(3.0), name="v")
        doubled = v * 2.0
    assert doubled.get_shape().as_list() == [3] and v.get_shape().is_fully_defined()
    with pytest.raises(gj.FetchError, match="no default session"):
        doubled.eval()
    with gj.Session(g, backend="interpreter") as sess:
        assert gj.get_default_session() is sess
        v.load([5, 6, 7])  # ints load into a float variable
        assert doubled.eval().tolist() == [10.0, 12.0, 14.0]
        assert v.eval().tolist() == [5.0, 6.0, 7.0]
        with pytest.raises(gj.ShapeError):
            v.load(np.zeros(4))
        with pytest.raises(gj.DTypeError):
            v.load(np.array(["a", "b", "c"]))
        other = gj.Session(g, backend="interpreter")
        with other.as_default():
            assert doubled.eval().tolist() == [0.0, 2.0, 4.0]  # its own variables
        assert gj.get_default_session() is sess and not other.closed
    assert gj.get_default_session() is None


def test_assign_outside_its_graph_names_the_cause():
    g = gj.Graph()
    with g.as_default():
        w = gj.Variable(np.zeros(2), name="w")
    with pytest.raises(gj.GraphjitError, match="belongs to another graph"):
        w.assign(np.ones(2))
    with g.as_default(), pytest.raises(gj.GraphjitError, match="inside cond/while_loop"):
        gj.cond(gj.constant(True), lambda: w.assign(np.ones(2)), lambda: w.value)


def test_shape_size_of_unknown_dimensions():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.bool_, [None, 3, None], name="x")
        s, n = gj.shape(x), gj.size(x, out_type=gj.int64)
        known = gj.shape(gj.constant(np.zeros((2, 5))))
    with gj.Session(g) as sess:
        for shape in [(4, 3, 2), (0, 3, 7)]:
            got_shape, got_size = sess.run([s, n], {x: np.ones(shape, bool)})
            assert got_shape.tolist() == list(shape) and got_shape.dtype == np.int32
            assert got_size == np.prod(shape) and got_size.dtype == np.int64
        assert sess.run(known).tolist() == [2, 5]  # a constant: nothing to feed


def test_split_unstack_tile_with_unknown_dimensions():
    a = RNG.normal(size=(4, 7))
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None, None], name="x")
        pieces = gj.split(x, [2, -1, 1], axis=1)
        rows = gj.unstack(x, num=4)
        tiled = gj.tile(x, [1, 2])
    with gj.Session(g) as sess:
        got = sess.run({"pieces": pieces, "rows": rows, "tiled": tiled}, {x: a})
    for p, want in zip(got["pieces"], np.split(a, [2, 6], axis=1), strict=True):
        np.testing.assert_array_equal(p, want)
    for r, want in zip(got["rows"], a, strict=True):
        np.testing.assert_array_equal(r, want)
    np.testing.assert_array_equal(got["tiled"], np.tile(a, [1, 2]))
    with pytest.raises(gj.ShapeError, match="equal pieces"):
        gj.split(gj.tensor(a), 3, axis=1)


def test_clip_by_global_norm_matches_numpy():
    a, b = RNG.normal(size=(3, 4)), RNG.normal(size=5)
    norm = np.sqrt(np.sum(a**2) + np.sum(b**2))
    clipped, got_norm = gj.clip_by_global_norm([gj.tensor(a), None, gj.tensor(b)], 1.0)
    assert clipped[1] is None
    np.testing.assert_allclose(got_norm.numpy(), norm, rtol=1e-12)
    np.testing.assert_allclose(clipped[0].numpy(), a / norm, rtol=1e-12)
    np.testing.assert_allclose(clipped[2].numpy(), b / norm, rtol=1e-12)
    zeros, zero_norm = gj.clip_by_global_norm([gj.tensor(np.zeros(3))], 1.0)
    assert zero_norm.item() == 0 and zeros[0].tolist() == [0.0, 0.0, 0.0]  # not 0/0


def test_case_takes_the_first_true_predicate():
    g = gj.Graph()
    with g.as_default():
        k = gj.placeholder(gj.int32, [], name="k")
        out = gj.case(
            [(k < 0, lambda: gj.constant(-1.0)), (k < 10, lambda: gj.constant(1.0))],
            default=lambda: gj.constant(100.0),
        )
        no_default = gj.case({k < 0: lambda: gj.constant(-1.0), k > 5: lambda: gj.constant(5.0)})
    with gj.Session(g, backend="interpreter") as sess:
        assert [sess.run(out, {k: v}).item() for v in (-3, 3, 30)] == [-1.0, 1.0, 100.0]
        # with no default the last fn is the default: its predicate is not tested (TF1)
        assert [sess.run(no_default, {k: v}).item() for v in (-3, 3)] == [-1.0, 5.0]
    assert gj.case([(False, lambda: 1), (True, lambda: 2)], default=lambda: 3) == 2


def test_tf1_reduction_spellings():
    x = gj.tensor(np.arange(6, dtype=np.int32).reshape(2, 3))
    assert gj.reduce_sum(x, reduction_indices=1, keep_dims=True).tolist() == [[3], [12]]
    assert gj.reduce_sum(x).dtype == gj.int32  # TF1 keeps the dtype (gj.sum widens)
    assert gj.reduce_mean(gj.tensor([-3, 2], dtype=gj.int32)).item() == 0  # truncated
    assert gj.reduce_any(gj.tensor(np.zeros((0, 2), bool)), axis=0).tolist() == [False] * 2
    with pytest.raises(gj.GraphjitError, match="not both"):
        gj.reduce_sum(x, axis=0, reduction_indices=0)


# ---- optimizers --------------------------------------------------------------------------


def _quadratic(optimizer_fn, steps=3):
    """Minimise sum((w - 1)^2) with the optimizer; the values of w after each step."""
    g = gj.Graph()
    with g.as_default():
        w = gj.Variable(np.array([0.0, 3.0]), name="w")
        loss = gj.reduce_sum(gj.square(w - 1.0))
        step = optimizer_fn().minimize(loss)
    with gj.Session(g, backend="interpreter") as sess:
        return [sess.run(step) or sess.run(w) for _ in range(steps)]


def _numpy_momentum(lr, momentum, nesterov, steps=3):
    w, buf, out = np.array([0.0, 3.0]), np.zeros(2), []
    for _ in range(steps):
        grad = 2 * (w - 1)
        buf = momentum * buf + grad
        w = w - lr * (grad + momentum * buf if nesterov else buf)
        out.append(w)
    return out


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_optimizer_matches_numpy(nesterov):
    got = _quadratic(lambda: gj.train.MomentumOptimizer(0.1, 0.9, use_nesterov=nesterov))
    np.testing.assert_allclose(got, _numpy_momentum(0.1, 0.9, nesterov), rtol=1e-12)


def test_adam_optimizer_takes_tf1_arguments():
    got = _quadratic(lambda: gj.train.AdamOptimizer(learning_rate=0.1, beta1=0.8, epsilon=1e-7))
    want = _quadratic(lambda: gj.train.Adam(0.1, beta1=0.8, epsilon=1e-7))
    np.testing.assert_array_equal(got, want)


def test_compute_and_apply_gradients():
    g = gj.Graph()
    with g.as_default():
        a = gj.Variable(np.array([1.0, 2.0]), name="a")
        unused = gj.Variable(np.array(5.0), name="unused")
        loss = gj.reduce_sum(a * a)
        pairs = gj.train.GradientDescentOptimizer(0.5).compute_gradients(loss)
        clipped, _ = gj.clip_by_global_norm([grad for grad, _ in pairs], 1.0)
        gs = gj.train.get_or_create_global_step()
        assert gj.train.get_or_create_global_step() is gs
        step = gj.train.GradientDescentOptimizer(0.5).apply_gradients(
            list(zip(clipped, [v for _, v in pairs])), global_step=gs
        )
        with pytest.raises(gj.GraphjitError, match="var_list="):
            gj.train.GradientDescentOptimizer(0.5).minimize(loss, [a])
    assert [v for _, v in pairs] == [a, unused] and pairs[1][0] is None
    with gj.Session(g, backend="interpreter") as sess:
        sess.run(step)
        grad = np.array([2.0, 4.0])
        np.testing.assert_allclose(sess.run(a), [1.0, 2.0] - 0.5 * grad / np.linalg.norm(grad))
        assert sess.run(gs) == 1 and sess.run(unused) == 5.0


# ---- losses ------------------------------------------------------------------------------


def test_softmax_cross_entropy_accepts_probabilities():
    """One-hot float labels give the integer labels' loss (the old function refused them)."""
    z = RNG.normal(size=(5, 4))
    y = np.array([0, 3, 1, 1, 2])
    g = gj.Graph()
    with g.as_default():
        logits = gj.placeholder(gj.float64, [None, 4], name="z")
        by_index = gj.softmax_cross_entropy(logits, y)
        by_onehot = gj.softmax_cross_entropy(logits, np.eye(4)[y])
    with gj.Session(g, backend="interpreter") as sess:
        a, b = sess.run([by_index, by_onehot], {logits: z})
    np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(gj.ShapeError, match="class indices must have shape"):
        gj.softmax_cross_entropy(gj.tensor(z), gj.tensor(y[:, None]))


def test_bad_class_indices_give_nan_and_ignore_index_is_skipped():
    z = gj.tensor(RNG.normal(size=(3, 4)))
    losses = gj.softmax_cross_entropy(z, [1, 7, -100], reduction="none").numpy()
    assert np.isfinite(losses[0]) and np.isnan(losses[1]) and losses[2] == 0
    mean = gj.softmax_cross_entropy(z, [1, 2, -100]).item()
    np.testing.assert_allclose(mean, gj.softmax_cross_entropy(z[:2], [1, 2]).item())


def test_v1_softmax_cross_entropy_stops_gradients_into_labels():
    p = gj.tensor(scipy.special.softmax(RNG.normal(size=(2, 3)), axis=1), requires_grad=True)
    z = gj.tensor(RNG.normal(size=(2, 3)), requires_grad=True)
    v1 = gj.nn.softmax_cross_entropy_with_logits(labels=p, logits=z)
    gj.reduce_sum(v1).backward()
    assert p.grad is None or not np.any(p.grad.numpy())
    v1_logits_grad = z.grad.numpy().copy()
    z.grad = None
    gj.reduce_sum(gj.nn.softmax_cross_entropy_with_logits_v2(labels=p, logits=z)).backward()
    np.testing.assert_allclose(z.grad.numpy(), v1_logits_grad, rtol=1e-12)
    assert np.any(p.grad.numpy())


def test_sigmoid_cross_entropy_gradients_match_finite_differences():
    labels = gj.tensor(RNG.uniform(size=(3, 2)), requires_grad=True)
    logits = gj.tensor(np.array([[-40.0, -1.0], [0.0, 0.5], [3.0, 40.0]]), requires_grad=True)
    assert gj.autograd.gradcheck(
        lambda z, x: gj.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x), (labels, logits)
    )
    big = gj.nn.sigmoid_cross_entropy_with_logits(labels=np.zeros(2), logits=gj.tensor([1e4, -1e4]))
    assert big.tolist() == [1e4, 0.0]  # no overflow in exp


def _torch():
    """PyTorch, or a skip when it is not installed."""
    return pytest.importorskip("torch")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("labels_kind", ["indices", "probabilities"])
def test_softmax_cross_entropy_matches_torch(reduction, labels_kind):
    torch = _torch()
    z = RNG.normal(size=(6, 5))
    y = (
        np.array([0, 4, 2, -100, 1, 3])
        if labels_kind == "indices"
        else RNG.dirichlet(np.ones(5), 6)
    )
    tz = torch.tensor(z, requires_grad=True)
    want = torch.nn.functional.cross_entropy(tz, torch.tensor(y), reduction=reduction)
    want.sum().backward()
    gz = gj.tensor(z, requires_grad=True)
    got = gj.softmax_cross_entropy(gz, y, reduction=reduction)
    gj.reduce_sum(got).backward()
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gz.grad.numpy(), tz.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_sigmoid_cross_entropy_matches_torch():
    torch = _torch()
    z, x = RNG.uniform(size=(4, 3)), RNG.normal(scale=5, size=(4, 3))
    tz, tx = torch.tensor(z, requires_grad=True), torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy_with_logits(tx, tz, reduction="none")
    want.sum().backward()
    gz, gx = gj.tensor(z, requires_grad=True), gj.tensor(x, requires_grad=True)
    got = gj.nn.sigmoid_cross_entropy_with_logits(labels=gz, logits=gx)
    gj.reduce_sum(got).backward()
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gz.grad.numpy(), tz.grad.numpy(), rtol=1e-12)


def test_variables_start_from_graph_values_as_tf1_writes_them():
    """tf.Variable(tf.zeros(...)) and tf.Variable(tf.random_normal(...)): the initial value
    is a graph value, computed once when the Variable is made."""
    g = gj.Graph()
    with g.as_default():
        zeros = gj.Variable(gj.zeros([2, 3]), name="zeros")
        seeded = gj.Variable(gj.random_normal([4, 4], seed=3), name="seeded")
        again = gj.Variable(gj.random_normal([4, 4], seed=3), name="again")
        unseeded = gj.Variable(gj.random_normal([4, 4]), name="unseeded")
    with gj.Session(g) as sess:
        np.testing.assert_array_equal(sess.run(zeros), np.zeros((2, 3), np.float32))
        a, b, c = sess.run([seeded, again, unseeded])
    np.testing.assert_array_equal(a, b)  # one seed, one step: the same draw
    assert not np.array_equal(a, c) and np.std(a) > 0.3


def test_a_variable_initial_value_may_not_need_feeds():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        with pytest.raises(gj.FeedError, match="must not depend on placeholders"):
            gj.Variable(x * 2)


@pytest.mark.parametrize("fed_learning_rate", [False, True])
def test_adamw_follows_torch_formula_as_the_eager_optimizer_does(fed_learning_rate):
    """gj.train.AdamW (decoupled weight decay) takes the eager gj.optim.AdamW's steps; its
    learning rate may be a fed value (a schedule computed outside the graph)."""
    rng = np.random.default_rng(0)
    w0, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    rates = [0.1, 0.05, 0.02]
    eager_w = gj.tensor(w0, requires_grad=True)
    opt = gj.optim.AdamW([eager_w], lr=rates[0], weight_decay=0.1)
    g = gj.Graph()
    with g.as_default():
        w = gj.Variable(w0, name="w")
        lr = gj.placeholder(gj.float64, [], name="lr") if fed_learning_rate else rates[0]
        loss = gj.sum(gj.square(gj.matmul(gj.constant(x), w)))
        step = gj.train.AdamW(lr, weight_decay=0.1).minimize(loss)
    with gj.Session(g) as sess:
        for rate in rates if fed_learning_rate else rates[:1] * 3:
            sess.run(step, {lr: np.float64(rate)} if fed_learning_rate else None)
            for group in opt.param_groups:
                group["lr"] = rate
            opt.zero_grad()
            (gj.tensor(x) @ eager_w).square().sum().backward()
            opt.step()
        np.testing.assert_allclose(sess.run(w), eager_w.detach().numpy(), rtol=1e-12)
