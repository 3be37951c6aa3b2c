"""gj.train optimizers in a Session: linear regression and a small MLP converge, and follow
a NumPy reimplementation of PyTorch's update formulas (and gj.optim, when present) step by
step."""

from __future__ import annotations

import numpy as np
import pytest

import graphjit as gj

# ---- problems: initial parameters, data, the loss written once for both modes, NumPy grads


def linear_problem():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(32, 3))
    y = x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3 + 0.01 * rng.normal(size=(32, 1))
    params = {"w": np.zeros((3, 1)), "b": np.zeros(1)}
    return params, x, y


def linear_loss(p, x, y):
    return gj.mean(gj.square(gj.matmul(x, p["w"]) + p["b"] - y))


def linear_grads(p, x, y):
    r = 2 * (x @ p["w"] + p["b"] - y) / y.size
    return {"w": x.T @ r, "b": r.sum(0)}


def mlp_problem():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(16, 2))
    teacher = np.tanh(x @ rng.normal(size=(2, 4)) + 0.1) @ rng.normal(size=(4, 1))
    params = {
        "w1": rng.normal(size=(2, 8)) * 0.5,
        "b1": np.zeros(8),
        "w2": rng.normal(size=(8, 1)) * 0.5,
        "b2": np.zeros(1),
    }
    return params, x, teacher


def mlp_loss(p, x, y):
    h = gj.tanh(gj.matmul(x, p["w1"]) + p["b1"])
    return gj.mean(gj.square(gj.matmul(h, p["w2"]) + p["b2"] - y))


def mlp_grads(p, x, y):
    h = np.tanh(x @ p["w1"] + p["b1"])
    d_out = 2 * (h @ p["w2"] + p["b2"] - y) / y.size
    d_pre = (d_out @ p["w2"].T) * (1 - h**2)
    return {"w2": h.T @ d_out, "b2": d_out.sum(0), "w1": x.T @ d_pre, "b1": d_pre.sum(0)}


PROBLEMS = {
    "linear": (linear_problem, linear_loss, linear_grads),
    "mlp": (mlp_problem, mlp_loss, mlp_grads),
}

OPTIMIZERS = {
    "sgd": (lambda: gj.train.SGD(0.1), {"kind": "sgd", "lr": 0.1, "momentum": 0.0}),
    "momentum": (
        lambda: gj.train.SGD(0.05, momentum=0.9),
        {"kind": "sgd", "lr": 0.05, "momentum": 0.9},
    ),
    "adam": (lambda: gj.train.Adam(0.05), {"kind": "adam", "lr": 0.05}),
}


# ---- NumPy reimplementation of torch.optim.SGD / torch.optim.Adam (default hyperparameters)


class NumpyOptimizer:
    def __init__(self, kind, lr, momentum=0.0, betas=(0.9, 0.999), eps=1e-8):
        self.kind, self.lr, self.momentum, self.betas, self.eps = kind, lr, momentum, betas, eps
        self.state: dict = {}
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        for name, g in grads.items():
            p, state = params[name], self.state.setdefault(name, {})
            if self.kind == "sgd":
                if self.momentum:
                    # torch: the buffer starts as a copy of the first gradient
                    buf = g.copy() if "buf" not in state else self.momentum * state["buf"] + g
                    state["buf"] = g = buf
                params[name] = p - self.lr * g
            else:
                b1, b2 = self.betas
                m = b1 * state.get("m", 0.0) + (1 - b1) * g
                v = b2 * state.get("v", 0.0) + (1 - b2) * g * g
                state["m"], state["v"] = m, v
                step_size = self.lr / (1 - b1**self.t)
                denom = np.sqrt(v) / np.sqrt(1 - b2**self.t) + self.eps
                params[name] = p - step_size * m / denom


def static_trainer(problem, optimizer, dtype=np.float64):
    make, loss_fn, _ = PROBLEMS[problem]
    init, x, y = make()
    g = gj.Graph()
    with g.as_default():
        xp = gj.placeholder(dtype, [None, x.shape[1]], name="x")
        yp = gj.placeholder(dtype, [None, 1], name="y")
        params = {k: gj.Variable(v.astype(dtype), name=k) for k, v in init.items()}
        loss = loss_fn(params, xp, yp)
        step = OPTIMIZERS[optimizer][0]().minimize(loss)
    sess = gj.Session(g, backend="interpreter")
    feed = {xp: x.astype(dtype), yp: y.astype(dtype)}
    return sess, step, loss, params, feed


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("problem, steps, factor", [("linear", 150, 1e3), ("mlp", 300, 100)])
def test_training_converges(problem, steps, factor, optimizer):
    sess, step, loss, _, feed = static_trainer(problem, optimizer)
    first = sess.run(loss, feed)
    for _ in range(steps):
        assert sess.run(step, feed) is None
    last = sess.run(loss, feed)
    assert np.isfinite(last) and last < first / factor, (first, last)


def test_training_through_while_loop_converges():
    """A recurrent net unrolled by while_loop: minimize differentiates the loop (tapes)."""
    rng = np.random.default_rng(13)
    xv, yv = rng.normal(size=(4, 2)), rng.normal(size=(4, 1))
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [None, 2], name="x")
        y = gj.placeholder(gj.float64, [None, 1], name="y")
        w = gj.Variable(rng.normal(size=(2, 3)) * 0.3, name="w")
        u = gj.Variable(rng.normal(size=(3, 3)) * 0.3, name="u")
        v = gj.Variable(rng.normal(size=(3, 1)) * 0.3, name="v")

        def body(t, h):
            return t + 1, gj.tanh(gj.matmul(x * gj.cast(t, gj.float64), w) + gj.matmul(h, u))

        _, h = gj.while_loop(lambda t, h: t < 5, body, [0, gj.matmul(x, w) * 0])
        loss = gj.mean(gj.square(gj.matmul(h, v) - y))
        step = gj.train.Adam(0.05).minimize(loss)
    with gj.Session(g, backend="interpreter") as sess:
        first = sess.run(loss, {x: xv, y: yv})
        for _ in range(100):
            sess.run(step, {x: xv, y: yv})
        last = sess.run(loss, {x: xv, y: yv})
    assert last < first / 50, (first, last)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_float32_training_converges_and_stays_float32(optimizer):
    sess, step, loss, variables, feed = static_trainer("mlp", optimizer, np.float32)
    first = sess.run(loss, feed)
    for _ in range(300):
        sess.run(step, feed)
    last = sess.run(loss, feed)
    assert last.dtype == np.float32 and last < first / 100, (first, last)
    assert all(v.dtype == np.float32 for v in sess.run(variables).values())


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_matches_pytorch_update_formulas(problem, optimizer):
    sess, step, _, variables, feed = static_trainer(problem, optimizer)
    make, _, grads_fn = PROBLEMS[problem]
    params, x, y = make()
    reference = NumpyOptimizer(**OPTIMIZERS[optimizer][1])
    for k in range(5):
        reference.step(params, grads_fn(params, x, y))
        sess.run(step, feed)
        got = sess.run(variables)
        for name in params:
            np.testing.assert_allclose(
                got[name], params[name], rtol=1e-12, atol=1e-14, err_msg=f"{name}, step {k + 1}"
            )


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_static_and_eager_optimizers_follow_the_same_trajectory(problem, optimizer):
    sess, step, _, variables, feed = static_trainer(problem, optimizer)
    make, loss_fn, _ = PROBLEMS[problem]
    init, x, y = make()
    params = {k: gj.tensor(v, requires_grad=True) for k, v in init.items()}
    settings = OPTIMIZERS[optimizer][1]
    if settings["kind"] == "sgd":
        opt = gj.optim.SGD(list(params.values()), lr=settings["lr"], momentum=settings["momentum"])
    else:
        opt = gj.optim.Adam(list(params.values()), lr=settings["lr"])
    xt, yt = gj.tensor(x), gj.tensor(y)
    for k in range(5):
        opt.zero_grad()
        loss_fn(params, xt, yt).backward()
        opt.step()
        sess.run(step, feed)
        got = sess.run(variables)
        for name, p in params.items():
            np.testing.assert_allclose(
                got[name], p.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=f"{name}, {k + 1}"
            )
