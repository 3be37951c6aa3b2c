"""gj.optim (SGD, Adam, AdamW, RMSprop, param_groups, state_dict) and
gj.optim.lr_scheduler (StepLR, CosineAnnealingLR, LambdaLR) against torch.optim over several
steps, and against the update formulas and schedules computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphjit as gj
from graphjit.optim import lr_scheduler

try:
    import torch
except ImportError:  # (the hand-computed checks still run)
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

P0 = [np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([0.3, -0.7])]
C = [np.array([[0.5, 3.0], [1.0, 2.0]]), np.array([2.0, 0.1])]


def _gj_run(make_optimizer, steps: int, groups=None, dtype="float64"):
    """Minimise sum(c * p**2 + p) over two parameters; the parameters after each step."""
    params = [gj.nn.Parameter(gj.tensor(p, dtype=dtype)) for p in P0]
    optimizer = make_optimizer(groups(params) if groups else params)
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        sum((gj.tensor(c, dtype=dtype) * p * p + p).sum() for p, c in zip(params, C)).backward()
        optimizer.step()
        history.append([p.numpy().copy() for p in params])
    return history, optimizer


def _torch_run(make_optimizer, steps: int, groups=None, dtype=None):
    dtype = dtype or torch.float64
    params = [torch.tensor(p, dtype=dtype, requires_grad=True) for p in P0]
    optimizer = make_optimizer(groups(params) if groups else params)
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        sum((torch.tensor(c, dtype=dtype) * p * p + p).sum() for p, c in zip(params, C)).backward()
        optimizer.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history, optimizer


def _assert_same(got, want, rtol=1e-13, atol=1e-15):
    for step, (g, w) in enumerate(zip(got, want)):
        for a, b in zip(g, w):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"step {step}")


OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.1, dampening=0.1)),
    "sgd_nesterov": ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    "adam": ("Adam", dict(lr=0.05)),
    "adam_l2": ("Adam", dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=0.05)),
    "adamw_decay": ("AdamW", dict(lr=0.05, weight_decay=0.3, eps=1e-6)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop_all": (
        "RMSprop",
        dict(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.5, centered=True),
    ),  # fmt: skip
}


@needs_torch
@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_optimizers_match_torch_over_several_steps(case):
    name, options = OPTIMIZERS[case]
    got, _ = _gj_run(lambda ps: getattr(gj.optim, name)(ps, **options), 8)
    want, _ = _torch_run(lambda ps: getattr(torch.optim, name)(ps, **options), 8)
    _assert_same(got, want)


@needs_torch
@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_optimizers_match_torch_in_float32(name):
    got, _ = _gj_run(lambda ps: getattr(gj.optim, name)(ps, lr=0.05), 6, dtype="float32")
    want, _ = _torch_run(lambda ps: getattr(torch.optim, name)(ps, lr=0.05), 6, dtype=torch.float32)
    _assert_same(got, want, rtol=1e-6, atol=1e-7)  # (float32: a few units in the last place)


def test_adamw_decays_the_weights_apart_from_the_gradient():
    """With a zero gradient Adam's moments stay zero, so AdamW only shrinks p by
    (1 - lr * weight_decay) per step, where Adam with L2 decay would follow the gradient."""
    p = gj.nn.Parameter(gj.tensor([2.0, -4.0], dtype="float64"))
    optimizer = gj.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        p.grad = gj.zeros(2, dtype="float64")
        optimizer.step()
    np.testing.assert_allclose(p.numpy(), np.array([2.0, -4.0]) * 0.95**3, rtol=1e-14)


def test_rmsprop_matches_its_formula():
    lr, alpha, eps = 0.01, 0.99, 1e-8
    got, _ = _gj_run(lambda ps: gj.optim.RMSprop(ps, lr=lr), 4)
    p, square_avg = P0[1].copy(), np.zeros(2)
    for step in range(4):
        g = 2 * C[1] * p + 1
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        p = p - lr * g / (np.sqrt(square_avg) + eps)
        np.testing.assert_allclose(got[step][1], p, rtol=1e-13)


# ---- parameter groups and checkpoints ------------------------------------------------------


def _two_groups(params):
    return [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.01, "momentum": 0.5}]


@needs_torch
def test_parameter_groups_with_their_own_options_match_torch():
    got, optimizer = _gj_run(lambda g: gj.optim.SGD(g, lr=0.1, momentum=0.9), 5, _two_groups)
    want, _ = _torch_run(lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9), 5, _two_groups)
    _assert_same(got, want)
    first, second = optimizer.param_groups
    assert (first["lr"], first["momentum"]) == (0.1, 0.9)
    assert (second["lr"], second["momentum"]) == (0.01, 0.5)
    assert second["dampening"] == 0.0 and second["nesterov"] is False  # filled from defaults


def test_add_param_group_and_duplicate_parameters():
    a, b = gj.nn.Parameter(gj.ones(2)), gj.nn.Parameter(gj.ones(2))
    optimizer = gj.optim.Adam([a], lr=0.1)
    optimizer.add_param_group({"params": b, "lr": 0.5})
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.5]
    assert optimizer.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(gj.GraphjitError, match="more than one"):
        optimizer.add_param_group({"params": [a]})
    with pytest.raises(gj.GraphjitError, match="empty"):
        gj.optim.SGD([], lr=0.1)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_state_dict_resumes_training_exactly(name):
    options = {"lr": 0.05, "momentum": 0.9} if name in ("SGD", "RMSprop") else {"lr": 0.05}
    straight, _ = _gj_run(lambda ps: getattr(gj.optim, name)(ps, **options), 6)
    first, optimizer = _gj_run(lambda ps: getattr(gj.optim, name)(ps, **options), 3)
    saved = optimizer.state_dict()
    assert sorted(saved) == ["param_groups", "state"]
    assert saved["param_groups"][0]["params"] == [0, 1] and sorted(saved["state"]) == [0, 1]

    params = [gj.nn.Parameter(gj.tensor(p)) for p in first[-1]]
    resumed = getattr(gj.optim, name)(params, lr=1.0)  # (the saved lr replaces this one)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == 0.05
    for _ in range(3):
        resumed.zero_grad()
        sum((gj.tensor(c) * p * p + p).sum() for p, c in zip(params, C)).backward()
        resumed.step()
    for a, b in zip(params, straight[-1]):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-14)


def test_state_dict_is_a_copy_and_load_checks_the_groups():
    _, optimizer = _gj_run(lambda ps: gj.optim.Adam(ps, lr=0.1), 2)
    saved = optimizer.state_dict()
    saved["state"][0]["exp_avg"][...] = 0
    assert optimizer.state[optimizer.param_groups[0]["params"][0]]["exp_avg"].any()
    other = gj.optim.Adam([gj.nn.Parameter(gj.ones(2))])
    with pytest.raises(gj.GraphjitError, match="groups"):
        other.load_state_dict(saved)


@needs_torch
def test_torch_state_dict_loads_into_the_same_optimizer():
    _, reference = _torch_run(lambda ps: torch.optim.Adam(ps, lr=0.05), 3)
    want, _ = _torch_run(lambda ps: torch.optim.Adam(ps, lr=0.05), 4)
    params = [gj.nn.Parameter(gj.tensor(p.detach().numpy()))
              for p in reference.param_groups[0]["params"]]  # fmt: skip
    optimizer = gj.optim.Adam(params)
    optimizer.load_state_dict(reference.state_dict())
    assert optimizer.state[params[0]]["step"] == 3
    optimizer.zero_grad()
    sum((gj.tensor(c) * p * p + p).sum() for p, c in zip(params, C)).backward()
    optimizer.step()
    for a, b in zip(params, want[-1]):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12)


def test_step_calls_the_closure_with_grad_enabled():
    p = gj.nn.Parameter(gj.tensor([1.0]))
    optimizer = gj.optim.SGD([p], lr=0.5)

    def closure():
        optimizer.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with gj.no_grad():
        loss = optimizer.step(closure)
    assert loss.item() == 1.0 and p.tolist() == [0.0]


# ---- learning-rate schedules ---------------------------------------------------------------


def _lrs(make_scheduler, optimizer, epochs: int) -> list:
    scheduler = make_scheduler(optimizer)
    lrs = [scheduler.get_last_lr()]
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return lrs


def _gj_optimizer():
    a, b = gj.nn.Parameter(gj.ones(1)), gj.nn.Parameter(gj.ones(1))
    return gj.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)


def _torch_optimizer():
    a, b = torch.ones(1, requires_grad=True), torch.ones(1, requires_grad=True)
    return torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)


SCHEDULES = {
    "step": lambda lib, opt: lib.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
    "cosine": lambda lib, opt: lib.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5),
    "cosine_min": lambda lib, opt: lib.optim.lr_scheduler.CosineAnnealingLR(opt, 4, eta_min=0.01),
    "lambda": lambda lib, opt: lib.optim.lr_scheduler.LambdaLR(opt, lambda e: 1 / (1 + e)),
    "lambdas": lambda lib, opt: lib.optim.lr_scheduler.LambdaLR(
        opt, [lambda e: 0.9**e, lambda e: min(1.0, (e + 1) / 3)]
    ),
}


@needs_torch
@pytest.mark.parametrize("case", sorted(SCHEDULES))
def test_schedules_match_torch_exactly(case):
    got = _lrs(lambda o: SCHEDULES[case](gj, o), _gj_optimizer(), 14)
    want = _lrs(lambda o: SCHEDULES[case](torch, o), _torch_optimizer(), 14)
    assert got == want  # the same recurrences: the same floats


def test_step_lr_and_cosine_by_hand():
    step = _lrs(lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.1), _gj_optimizer(), 5)
    assert [lrs[0] for lrs in step] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    cosine = _lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=4), _gj_optimizer(), 8)
    closed_form = [0.5 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(9)]
    assert [lrs[1] for lrs in cosine] == pytest.approx(closed_form, abs=1e-15)


def test_lambda_lr_and_scheduler_state():
    optimizer = _gj_optimizer()
    scheduler = lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5**epoch)
    assert optimizer.param_groups[0]["initial_lr"] == 0.1
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr() == [0.1 * 0.125, 0.5 * 0.125]
    assert optimizer.param_groups[1]["lr"] == 0.5 * 0.125
    state = scheduler.state_dict()
    assert state["last_epoch"] == 3 and state["lr_lambdas"] == [None, None]
    fresh = lr_scheduler.LambdaLR(_gj_optimizer(), lambda epoch: 0.5**epoch)
    fresh.load_state_dict(state)
    fresh.step()
    assert fresh.get_last_lr() == [0.1 / 16, 0.5 / 16]
    with pytest.raises(gj.GraphjitError, match="initial_lr"):
        lr_scheduler.StepLR(gj.optim.SGD([gj.nn.Parameter(gj.ones(1))], lr=0.1), 2, last_epoch=3)


def test_a_schedule_drives_the_optimizer_it_wraps():
    p = gj.nn.Parameter(gj.tensor([0.0], dtype="float64"))
    optimizer = gj.optim.SGD([p], lr=1.0)
    scheduler = lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = gj.tensor([1.0], dtype="float64")
        optimizer.step()
        scheduler.step()
    assert p.tolist() == [-(1.0 + 0.5 + 0.25)]
