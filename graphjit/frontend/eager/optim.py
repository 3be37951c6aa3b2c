"""`gj.optim`: SGD, Adam, AdamW and RMSprop with PyTorch's update formulas (torch.optim's
single-tensor path, the one it takes on the CPU), `param_groups` with per-group options,
`state_dict()`/`load_state_dict()`; `gj.optim.lr_scheduler` schedules the groups' `lr`.

Steps update the parameters' arrays in place, outside the tape, and bump their versions: a
graph recorded before a step cannot be differentiated after it, as in PyTorch.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from graphjit.errors import GraphjitError
from graphjit.frontend.eager import nn_utils
from graphjit.frontend.eager.grad_mode import enable_grad
from graphjit.frontend.eager.tensor import Tensor, bump_version

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]


class Optimizer:
    """Holds `param_groups` (dicts: "params" and the options, the constructor's `defaults`
    filling in what a group leaves out) and `state` (per parameter: its buffers)."""

    def __init__(self, params, defaults: dict):
        if defaults.get("lr", 0.0) < 0:
            raise GraphjitError(f"invalid learning rate {defaults['lr']}")
        self.defaults = defaults
        self.state: dict = {}  # parameter -> dict of its buffers (tensors hash by identity)
        self.param_groups: list[dict] = []
        groups = [params] if isinstance(params, (Tensor, dict)) else list(params)
        if not groups:
            raise GraphjitError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own options (e.g. a new layer's lr)."""
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise GraphjitError("optimizers can only update leaf tensors")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise GraphjitError("some parameters appear in more than one parameter group")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            nn_utils.zero_grads(group["params"], set_to_none)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; `closure` (re-evaluating the
        loss, with grad enabled) is called first and its result returned, as PyTorch."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with np.errstate(all="ignore"):  # (IEEE results, no NumPy warnings: the engine's)
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        grad = p.grad._data.astype(p._data.dtype, copy=False)
                        self._update(p, grad, group, self.state.setdefault(p, {}))
                        bump_version(p)
        return loss

    def _update(self, p: Tensor, grad: np.ndarray, group: dict, state: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _update")

    # ---- checkpoints ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        """PyTorch's layout: {"state": {index: buffers}, "param_groups": [options with
        "params" as indices]}, parameters numbered in group order; arrays are copies."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = [
            {**{k: v for k, v in g.items() if k != "params"},
             "params": [index[id(p)] for p in g["params"]]}
            for g in self.param_groups
        ]  # fmt: skip
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items() if s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore buffers and group options saved by `state_dict` (of an optimizer over
        parameters of the same shapes, in the same groups)."""
        saved_groups = state_dict["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [
            len(g["params"]) for g in self.param_groups
        ]:
            raise GraphjitError(
                "load_state_dict: the saved parameter groups do not match this optimizer's"
            )
        params = self._all_params()
        self.state = {}
        for i, buffers in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {k: _state_value(v, p) for k, v in buffers.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})

    def _all_params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])


def _state_value(value, p: Tensor):
    """A saved buffer as a fresh array of the parameter's dtype (PyTorch casts floating
    state to the parameter's dtype too); counters and other numbers as they are."""
    if isinstance(value, Tensor):
        value = value._data
    if hasattr(value, "shape") and np.ndim(value) > 0:
        return np.asarray(value).astype(p._data.dtype)  # (astype copies)
    return value.item() if hasattr(value, "item") else value


def _check_betas(betas) -> tuple:
    if not all(0.0 <= b < 1.0 for b in betas):
        raise GraphjitError(f"invalid betas {betas}")
    return tuple(betas)


class SGD(Optimizer):
    """p -= lr * d, where d is the gradient (plus weight_decay * p), or with momentum the
    buffer b = momentum * b + (1 - dampening) * d (b = d at the first step); with nesterov,
    d + momentum * b."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):  # fmt: skip
        if nesterov and (momentum <= 0 or dampening != 0):
            raise GraphjitError("nesterov momentum needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))  # fmt: skip

    def _update(self, p: Tensor, grad: np.ndarray, group: dict, state: dict) -> None:
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p._data
        momentum = group["momentum"]
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.copy()
            else:
                buffer *= momentum
                buffer += (1 - group["dampening"]) * grad
            grad = grad + momentum * buffer if group["nesterov"] else buffer
        p._data -= group["lr"] * grad


class Adam(Optimizer):
    """m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    weight_decay adds weight_decay * p to g (L2 regularisation; AdamW decouples it)."""

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):  # fmt: skip
        super().__init__(params, dict(lr=lr, betas=_check_betas(betas), eps=eps,
                                      weight_decay=weight_decay))  # fmt: skip

    def _update(self, p: Tensor, grad: np.ndarray, group: dict, state: dict) -> None:
        (beta1, beta2), lr, weight_decay = group["betas"], group["lr"], group["weight_decay"]
        if weight_decay and self.decoupled_weight_decay:
            p._data *= 1 - lr * weight_decay
        elif weight_decay:
            grad = grad + weight_decay * p._data
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p._data),
                         exp_avg_sq=np.zeros_like(p._data))  # fmt: skip
        state["step"] += 1
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m += (1 - beta1) * (grad - m)  # (torch's lerp)
        v *= beta2
        v += (1 - beta2) * grad * grad
        step_size = lr / (1 - beta1**t)
        denominator = np.sqrt(v) / math.sqrt(1 - beta2**t) + group["eps"]
        p._data -= step_size * (m / denominator)


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam step
    (Loshchilov and Hutter; PyTorch's AdamW, weight_decay 1e-2 by default)."""

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):  # fmt: skip
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """s = alpha s + (1 - alpha) g^2; with `centered`, also the mean gradient a and
    s - a^2 in place of s; p -= lr * g / (sqrt(s) + eps), or with momentum the buffer
    b = momentum b + g / (sqrt(s) + eps) and p -= lr * b."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):  # fmt: skip
        if not 0.0 <= alpha:
            raise GraphjitError(f"invalid alpha {alpha}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))  # fmt: skip

    def _update(self, p: Tensor, grad: np.ndarray, group: dict, state: dict) -> None:
        alpha, momentum = group["alpha"], group["momentum"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p._data
        if not state:
            state.update(step=0, square_avg=np.zeros_like(p._data))
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p._data)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p._data)
        state["step"] += 1
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)  # (torch's lerp)
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            avg = np.sqrt(square_avg) + group["eps"]
        if momentum > 0:
            buffer = state["momentum_buffer"]
            buffer *= momentum
            buffer += grad / avg
            p._data -= group["lr"] * buffer
        else:
            p._data -= group["lr"] * (grad / avg)


from graphjit.frontend.eager import lr_scheduler  # noqa: E402 (gj.optim.lr_scheduler)
