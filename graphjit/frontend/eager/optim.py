"""`gj.optim`: SGD and Adam with PyTorch's update formulas (torch.optim's single-tensor path).

Steps update the parameters' arrays in place, outside the tape, and bump their versions: a
graph recorded before a step cannot be differentiated after it, as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from graphjit.errors import GraphjitError
from graphjit.frontend.eager import nn_utils
from graphjit.frontend.eager.tensor import Tensor, bump_version


class Optimizer:
    def __init__(self, params, lr: float):
        self.params = [params] if isinstance(params, Tensor) else list(params)
        if not self.params:
            raise GraphjitError("optimizer got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise GraphjitError("optimizers can only update leaf tensors")
        if lr < 0:
            raise GraphjitError(f"invalid learning rate {lr}")
        self.lr = lr
        self.state: dict = {}  # parameter -> its buffers (tensors hash by identity)

    def zero_grad(self, set_to_none: bool = True) -> None:
        nn_utils.zero_grads(self.params, set_to_none)

    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                self._update(p, p.grad._data.astype(p._data.dtype, copy=False))
                bump_version(p)

    def _update(self, p: Tensor, grad: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * d, where d is the gradient (plus weight_decay * p), or with momentum the
    buffer b = momentum * b + (1 - dampening) * d (b = d at the first step); with nesterov,
    d + momentum * b."""

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):  # fmt: skip
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise GraphjitError("nesterov momentum needs momentum > 0 and dampening 0")
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def _update(self, p: Tensor, grad: np.ndarray) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * p._data
        if self.momentum:
            buffer = self.state.get(p)
            if buffer is None:
                buffer = self.state[p] = grad.copy()
            else:
                buffer *= self.momentum
                buffer += (1 - self.dampening) * grad
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        p._data -= self.lr * grad


class Adam(Optimizer):
    """m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):  # fmt: skip
        super().__init__(params, lr)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise GraphjitError(f"invalid betas {betas}")
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def _update(self, p: Tensor, grad: np.ndarray) -> None:
        beta1, beta2 = self.betas
        if self.weight_decay:
            grad = grad + self.weight_decay * p._data
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {
                "step": 0,
                "exp_avg": np.zeros_like(p._data),
                "exp_avg_sq": np.zeros_like(p._data),
            }
        state["step"] += 1
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        step_size = self.lr / (1 - beta1**t)
        denominator = np.sqrt(v) / math.sqrt(1 - beta2**t) + self.eps
        p._data -= step_size * (m / denominator)
