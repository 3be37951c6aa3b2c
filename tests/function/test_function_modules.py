"""gj.function on gj.nn.Module methods: parameters are graph Variables, copied in before
each run and back out when the traced function assigns them."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import graphjit as gj

X = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)


def mlp(seed: int = 0):
    gj.manual_seed(seed)
    return gj.nn.Sequential(gj.nn.Linear(3, 4), gj.nn.Tanh(), gj.nn.Linear(4, 2))


class Regressor(gj.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = mlp()

    @gj.function(backend="interpreter")
    def forward(self, x):
        return self.body(x)

    @gj.function(backend="interpreter")
    def train_step(self, x, y, lr):
        loss = gj.mean(gj.square(self(x) - y))  # (calling forward here inlines it)
        params = list(self.parameters())
        for p, g in zip(params, gj.gradients(loss, params)):
            p.assign_sub(g * lr)
        return loss


def test_a_compiled_module_equals_the_eager_module():
    model = mlp()
    compiled = gj.function(model)
    np.testing.assert_allclose(compiled(X), model(gj.tensor(X)).numpy(), rtol=1e-5, atol=1e-6)


def test_parameters_changed_outside_are_seen_by_the_next_run():
    model = mlp()
    compiled = gj.function(model, backend="interpreter")
    before = compiled(X)
    with gj.no_grad():
        model[2].bias.add_(1.0)
    np.testing.assert_allclose(compiled(X), before + 1.0, rtol=1e-5, atol=1e-6)
    assert compiled.trace_count == 1


def test_a_method_that_assigns_parameters_trains_the_module_like_eager():
    model, reference = Regressor(), mlp()
    opt = gj.optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(3):
        loss = model.train_step(X, Y, 0.1)
        opt.zero_grad()
        ref_loss = gj.mean(gj.square(reference(gj.tensor(X)) - gj.tensor(Y)))
        ref_loss.backward()
        opt.step()
        assert float(loss) == pytest.approx(ref_loss.item(), rel=1e-5)
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)
    assert model.train_step.trace_count == 1


def test_an_assign_bumps_the_version_so_stale_tape_nodes_complain():
    model = Regressor()
    out = gj.sum(model.body(gj.tensor(X)) ** 2)  # an eager tape that saved the weights
    model.train_step(X, Y, 0.1)
    with pytest.raises(gj.GraphjitError, match="modified by an in-place operation"):
        out.backward()


def test_each_instance_gets_its_own_trace():
    before = Regressor.forward.trace_count
    a, b = Regressor(), Regressor()
    a(X), b(X), a(X)
    assert Regressor.forward.trace_count == before + 2
    with gj.no_grad():
        b.body[0].weight.mul_(0.0)
    assert not np.allclose(a(X), b(X))


def test_a_static_optimizer_inside_a_traced_function_updates_the_module():
    model = mlp()

    @gj.function(backend="interpreter")
    def step(model, x, y):
        loss = gj.mean(gj.square(model(x) - y))
        gj.train.Adam(0.05).minimize(loss)
        return loss

    losses = [float(step(model, X, Y)) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0] and step.trace_count == 1
    assert float(gj.mean(gj.square(model(gj.tensor(X)) - gj.tensor(Y)))) < losses[0]


GLOBAL_MODEL = mlp(seed=3)


def test_modules_read_from_globals_and_closures_are_captured():
    closure_model = mlp(seed=4)
    from_global = gj.function(lambda x: GLOBAL_MODEL(x), backend="interpreter")
    from_closure = gj.function(lambda x: closure_model(x) * 2, backend="interpreter")
    np.testing.assert_allclose(
        from_global(X), GLOBAL_MODEL(gj.tensor(X)).numpy(), rtol=1e-5, atol=1e-6
    )
    x = gj.tensor(X)
    gj.sum(from_closure(x)).backward()  # the captured parameters get gradients
    got = [p.grad.numpy().copy() for p in closure_model.parameters()]
    closure_model.zero_grad()
    gj.sum(closure_model(x) * 2).backward()
    for g, p in zip(got, closure_model.parameters()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_the_cache_does_not_keep_a_module_argument_alive():
    model = mlp()
    compiled = gj.function(lambda m, x: m(x), backend="interpreter")
    compiled(model, X)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
