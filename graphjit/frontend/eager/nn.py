"""`gj.nn`: PyTorch-style modules and losses for eager tensors, beside the functional ops that
both modes share (`gj.nn.softmax_cross_entropy`, `relu`, ... work on graph tensors too)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from graphjit.errors import GraphjitError
from graphjit.frontend import ops
from graphjit.frontend import ops as functional  # gj.nn.functional: the ops of both modes
from graphjit.frontend.eager import factories
from graphjit.frontend.eager import nn_utils as utils
from graphjit.frontend.eager.tensor import Tensor, init_tensor, to_array
from graphjit.frontend.losses import (  # the loss functions of both modes (TF1's names too)
    l2_loss,
    sigmoid_cross_entropy_with_logits,
    softmax_cross_entropy,
    softmax_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
    sparse_softmax_cross_entropy_with_logits,
)
from graphjit.frontend.ops import log_softmax, relu, sigmoid, softmax, tanh
from graphjit.ir.types import as_dtype

__all__ = [
    "CrossEntropyLoss", "Linear", "MSELoss", "Module", "Parameter", "ReLU", "Sequential",
    "Sigmoid", "Tanh", "functional", "l2_loss", "log_softmax", "relu", "sigmoid",
    "sigmoid_cross_entropy_with_logits", "softmax", "softmax_cross_entropy",
    "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
    "sparse_softmax_cross_entropy_with_logits", "tanh", "utils",
]  # fmt: skip


class Parameter(Tensor):
    """A tensor that a Module registers as a parameter; requires grad by default. Made from a
    tensor it shares that tensor's array, as in PyTorch."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        array = (
            data._data
            if isinstance(data, Tensor)
            else to_array(np.zeros(0) if data is None else data)
        )
        init_tensor(self, array)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class: parameters and submodules assigned as attributes are registered, so that
    `parameters()` finds them; `__call__` runs `forward`."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise GraphjitError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: parameters and submodules live in their dicts.
        for registry in ("_parameters", "_modules"):
            entries = self.__dict__.get(registry, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters or name in self._modules:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
        else:
            object.__delattr__(self, name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def children(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Each parameter once (a shared one under its first name), submodules included."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters())

    def zero_grad(self, set_to_none: bool = True) -> None:
        utils.zero_grads(self.parameters(), set_to_none)

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> dict:
        return {name: p._data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        params = dict(self.named_parameters())
        if set(params) != set(state):
            raise GraphjitError(
                f"load_state_dict: expected keys {sorted(params)}, got {sorted(state)}"
            )
        for name, p in params.items():
            p.data = to_array(state[name], p.dtype)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [
            f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()
        ]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Linear(Module):
    """y = x @ weight.T + bias; weight (out, in) and bias drawn from U(-1/sqrt(in),
    1/sqrt(in)) with the generator `gj.manual_seed` seeds, as PyTorch initialises them."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype="float32"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = Parameter(_uniform((out_features, in_features), bound, dtype))
        self.bias = Parameter(_uniform((out_features,), bound, dtype)) if bias else None

    def forward(self, x):
        y = ops.matmul(x, self.weight.t())
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


def _uniform(shape: tuple, bound: float, dtype) -> np.ndarray:
    return factories.generator().uniform(-bound, bound, shape).astype(as_dtype(dtype).np)


class ReLU(Module):
    def forward(self, x):
        return relu(x)


class Tanh(Module):
    def forward(self, x):
        return tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return sigmoid(x)


class Sequential(Module):
    """Modules applied in order; they are registered as "0", "1", ..."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


def _reduce(losses, reduction: str):
    if reduction == "mean":
        return ops.mean(losses)
    if reduction == "sum":
        return ops.sum(losses)
    if reduction == "none":
        return losses
    raise GraphjitError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class MSELoss(Module):
    """Mean (or sum, or none) of the squared differences."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):  # (PyTorch's argument names)
        return _reduce(ops.square(ops.sub(input, target)), self.reduction)


class CrossEntropyLoss(Module):
    """softmax_cross_entropy as a module: integer class labels or probabilities, reduced
    over the batch ("mean", "sum" or "none"), PyTorch's `ignore_index`."""

    def __init__(self, reduction: str = "mean", ignore_index: int = -100):
        super().__init__()
        self.reduction, self.ignore_index = reduction, ignore_index

    def forward(self, logits, labels):
        return softmax_cross_entropy(logits, labels, self.reduction, self.ignore_index)
