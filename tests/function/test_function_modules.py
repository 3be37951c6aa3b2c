"""gj.function on gj.nn.Module methods: parameters and buffers are graph Variables, copied
in before each run and back out when the traced function assigns them (batch norm's running
statistics), and a module's train()/eval() selects its own trace. Batch norm is compared with
its eager twin and, where PyTorch is installed, with torch.nn."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import graphjit as gj

try:
    import torch
except ImportError:  # (the comparisons with eager gj.nn still run)
    torch = None

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


# ---- buffers and the training flag ---------------------------------------------------------


def _twins(make, seed: int = 0):
    """Two copies of a module with the same non-default state: one to compile, one eager."""
    gj.manual_seed(seed)
    module, twin = make(), make()
    for p in module.parameters():
        gj.nn.init.uniform_(p, 0.5, 1.5)
    twin.load_state_dict(module.state_dict())
    return module, twin


def _train_step(forward, module, x: np.ndarray):
    """One forward (`forward`: the module or its compiled form) and backward, the loss
    weighting each output differently; returns the output and the gradients of the input
    and of the parameters."""
    module.zero_grad()
    x = gj.tensor(x, requires_grad=True)
    y = forward(x)
    weights = gj.tensor(np.linspace(0.5, 2.0, y.numel()).reshape(y.shape).astype(y.dtype.np))
    gj.sum(y * y * weights).backward()
    return y.numpy(), [t.grad.numpy() for t in [x, *module.parameters()]]


def _assert_same_state(got, want) -> None:
    for (name, a), b in zip(got.state_dict().items(), want.state_dict().values()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: gj.nn.BatchNorm1d(3), (8, 3)),
        (lambda: gj.nn.BatchNorm1d(3, affine=False), (4, 3, 5)),
        (lambda: gj.nn.BatchNorm2d(3, momentum=0.3), (4, 3, 2, 5)),
    ],
)
def test_batch_norm_trains_and_evaluates_like_eager(make, shape):
    """Outputs, parameter gradients and the running statistics (updated once per call:
    the backward replays the forward without its assigns) follow the eager module's."""
    layer, twin = _twins(make)
    compiled = gj.function(layer, backend="interpreter")
    for step in range(3):
        x = np.random.default_rng(step).normal(2.0, 3.0, size=shape).astype(np.float32)
        (got, got_grads), (want, want_grads) = (
            _train_step(compiled, layer, x),
            _train_step(twin, twin, x),
        )
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        for g, w in zip(got_grads, want_grads):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        _assert_same_state(layer, twin)
    assert int(layer.num_batches_tracked.item()) == 3
    layer.eval(), twin.eval()
    x = np.random.default_rng(9).normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(compiled(x), twin(gj.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    _assert_same_state(layer, twin)  # (eval leaves the statistics alone)
    assert compiled.trace_count == 2


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
def test_batch_norm_trains_and_evaluates_like_torch():
    layer = gj.nn.BatchNorm2d(3, momentum=0.2, dtype="float64")
    gj.nn.init.uniform_(layer.weight, 0.5, 1.5)
    reference = torch.nn.BatchNorm2d(3, momentum=0.2).double()
    reference.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    compiled = gj.function(layer, backend="interpreter")
    for step in range(4):
        if step == 3:
            layer.eval(), reference.eval()
        x = np.random.default_rng(step).normal(1.0, 2.0, size=(4, 3, 2, 3))
        gj_x, torch_x = gj.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        got, want = compiled(gj_x), reference(torch_x)
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-9, atol=1e-12)
        gj.sum(got * got).backward()
        (want * want).sum().backward()
        pairs = [(gj_x, torch_x), (layer.weight, reference.weight), (layer.bias, reference.bias)]
        for g, w in pairs:
            np.testing.assert_allclose(g.grad.numpy(), w.grad.numpy(), rtol=1e-8, atol=1e-10)
        for name, buffer in reference.named_buffers():
            np.testing.assert_allclose(layer.state_dict()[name], buffer.numpy(), rtol=1e-12)
        layer.zero_grad(), reference.zero_grad()


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])  # (llvm: updates in place)
def test_a_module_called_twice_in_one_call_updates_its_buffers_in_order(backend):
    """Eager code reads a buffer after updating it: the second call of a shared batch norm
    moves the running statistics from where the first left them, not from the start."""
    layer, twin = _twins(lambda: gj.nn.BatchNorm1d(3))
    compiled = gj.function(lambda x: layer(layer(x) * 2.0 + 1.0), backend=backend)
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    want = twin(twin(gj.tensor(x)) * 2.0 + 1.0).numpy()
    np.testing.assert_allclose(compiled(x), want, rtol=1e-5, atol=1e-6)
    _assert_same_state(layer, twin)
    assert int(layer.num_batches_tracked.item()) == 2


class Scaled(gj.nn.Module):
    """A linear layer whose output a buffer scales: read, never updated, not trained."""

    def __init__(self):
        super().__init__()
        self.linear = gj.nn.Linear(3, 2)
        self.register_buffer("scale", gj.tensor([2.0, -1.0]))

    def forward(self, x):
        return self.linear(x) * self.scale


def test_buffers_are_read_each_call_and_get_no_gradient():
    model = Scaled()
    compiled = gj.function(model, backend="interpreter")
    x = gj.tensor(X, requires_grad=True)
    gj.sum(compiled(x)).backward()
    assert model.scale.grad is None and len(compiled.concrete(x).params) == 2
    np.testing.assert_allclose(model.linear.bias.grad.numpy(), [12.0, -6.0], rtol=1e-6)
    with gj.no_grad():
        model.scale.mul_(0.0)  # changed in place outside: the next run reads it
    np.testing.assert_array_equal(compiled(X), np.zeros((6, 2), np.float32))
    model.scale = gj.tensor([[1.0, 1.0]])  # another shape: another trace
    np.testing.assert_allclose(compiled(X), model.linear(gj.tensor(X)).numpy(), rtol=1e-6)
    assert compiled.trace_count == 2 and "shapes or dtypes" in compiled.retrace_reasons[-1]


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_reassigned_parameters_buffers_and_submodules_are_what_the_next_call_uses(backend):
    """`m.scale = new`, `m.linear.weight = Parameter(...)`, `m.linear = Linear(...)` with
    the same shapes: no new trace, and each call (fast path, no_grad, taped) reads,
    differentiates and writes back what the module holds now, as the eager module does
    (they were the tensors of the trace's time, silently)."""
    model = Scaled()
    compiled = gj.function(model, backend=backend)
    x = gj.tensor(X)

    def check():
        want = model(x).numpy()
        np.testing.assert_allclose(compiled(X), want, rtol=1e-6)
        with gj.no_grad():
            np.testing.assert_allclose(compiled(x).numpy(), want, rtol=1e-6)
        model.zero_grad()
        gj.sum(compiled(x) ** 2).backward()
        got = [p.grad.numpy() for p in model.parameters()]
        model.zero_grad()
        gj.sum(model(x) ** 2).backward()
        for g, p in zip(got, model.parameters()):
            np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5)

    check()
    model.scale = gj.tensor([3.0, 0.5])
    check()
    model.linear.weight = gj.nn.Parameter(gj.ones(2, 3) * 0.25)
    check()
    model.linear = gj.nn.Linear(3, 2)
    check()
    assert compiled.trace_count == 1


def test_batch_norm_statistics_are_written_back_to_reassigned_buffers():
    bn = gj.nn.BatchNorm1d(3)
    compiled = gj.function(bn, backend="interpreter")
    compiled(X)
    bn.running_mean = gj.zeros(3)  # a fresh buffer: the next update lands in it
    compiled(X)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * X.mean(axis=0), rtol=1e-5)


def test_a_static_optimizer_in_a_traced_step_trains_parameters_not_buffers():
    model, twin = _twins(lambda: gj.nn.Sequential(gj.nn.Linear(3, 4), gj.nn.BatchNorm1d(4)))
    opt = gj.optim.SGD(twin.parameters(), lr=0.1)

    @gj.function(backend="interpreter")
    def step(x):
        loss = gj.mean(gj.square(model(x)[:, :2] - Y))
        gj.train.SGD(0.1).minimize(loss)
        return loss

    for _ in range(3):
        loss = step(X)
        opt.zero_grad()
        want = gj.mean(gj.square(twin(gj.tensor(X))[:, :2] - gj.tensor(Y)))
        want.backward()
        opt.step()
        assert float(loss) == pytest.approx(want.item(), rel=1e-5)
    _assert_same_state(model, twin)
    assert step.trace_count == 1


def test_train_and_eval_select_their_own_trace():
    gj.manual_seed(0)
    model = gj.nn.Sequential(gj.nn.Linear(3, 8), gj.nn.BatchNorm1d(8), gj.nn.Dropout(0.5))
    compiled = gj.function(model, backend="interpreter")
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    assert (compiled(x) == 0).any()  # dropout while training
    model.eval()
    np.testing.assert_allclose(compiled(x), model(gj.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert compiled.trace_count == 2 and "in eval mode" in compiled.retrace_reasons[-1]
    model.train()
    assert (compiled(x) == 0).any() and compiled.trace_count == 2  # (the first trace again)
    model[2].eval()  # a submodule's flag counts too: batch statistics, no dropout
    np.testing.assert_allclose(compiled(x), model(gj.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert compiled.trace_count == 3 and "mixed train/eval mode" in compiled.retrace_reasons[-1]


def test_module_calls_take_the_fast_path_and_still_see_the_module(monkeypatch):
    """`gj.function(model)(x)` repeated skips binding and flattening (its module's key
    still checked on every call: train/eval, parameter shapes), copies the parameters in,
    writes batch norm's statistics back, and records on the tape when gradients are
    wanted -- the same as the full path, which it leaves for those calls."""
    gj.manual_seed(0)
    model = gj.nn.Sequential(gj.nn.Linear(3, 4), gj.nn.BatchNorm1d(4), gj.nn.Linear(4, 2))
    twin = gj.nn.Sequential(gj.nn.Linear(3, 4), gj.nn.BatchNorm1d(4), gj.nn.Linear(4, 2))
    twin.load_state_dict(model.state_dict())
    compiled = gj.function(model, backend="interpreter")
    compiled(X)
    twin(gj.tensor(X))
    full = []  # the calls that took the full path
    concrete = compiled.traced._concrete
    monkeypatch.setattr(compiled.traced, "_concrete", lambda c: full.append(1) or concrete(c))
    for _ in range(3):  # train mode: the running statistics move on every call
        np.testing.assert_allclose(compiled(X), twin(gj.tensor(X)).numpy(), rtol=1e-5)
    assert not full
    np.testing.assert_allclose(model[1].running_var.numpy(), twin[1].running_var.numpy())
    model.eval(), twin.eval()
    np.testing.assert_allclose(compiled(X), twin(gj.tensor(X)).numpy(), rtol=1e-5)
    assert len(full) == 1  # (eval: a new key, a new trace)
    x = gj.tensor(X)
    compiled(x).sum().backward()  # (the parameters want gradients: the tape, full path)
    twin(x).sum().backward()
    np.testing.assert_allclose(model[0].weight.grad.numpy(), twin[0].weight.grad.numpy(), 1e-5)
    assert len(full) == 2
    with gj.no_grad():  # (no gradients wanted: the fast path, from the second call)
        for _ in range(2):
            np.testing.assert_allclose(compiled(x).numpy(), twin(x).numpy(), rtol=1e-5)
    assert len(full) == 3


def test_a_new_module_where_a_dead_one_was_gets_its_own_trace():
    """The fast path keys a module by a weak reference: a module created after another
    died (perhaps at its address) never runs the dead one's trace and parameters."""
    f = gj.function(lambda m, x: m(x), backend="interpreter")
    results = []
    for seed in range(4):
        model = mlp(seed)
        f(model, X)
        results.append((f(model, X), model(gj.tensor(X)).numpy()))
        del model
        gc.collect()
    for got, want in results:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
