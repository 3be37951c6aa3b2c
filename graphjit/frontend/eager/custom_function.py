"""Custom autograd functions, as in PyTorch:

class Cube(gj.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 3 * x ** 2

y = Cube.apply(x)        # y.grad_fn is a CubeBackward
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import GradientError
from graphjit.frontend.eager.anomaly import ANOMALY
from graphjit.frontend.eager.grad_mode import is_grad_enabled, no_grad
from graphjit.frontend.eager.node import (
    Node,
    check_cotangents,
    freed_error,
    modified_error,
    next_sequence_nr,
)
from graphjit.frontend.eager.tensor import Tensor, to_array, wrap
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind
from graphjit.ir.types import is_float_array


class FunctionCtx:
    """The `ctx` of forward and backward: saved tensors, needs_input_grad, and any attribute
    forward wants to leave for backward (`ctx.alpha = 2`)."""

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self._saved: tuple | None = ()
        self._saved_versions: tuple = ()
        self._function_name = ""

    def save_for_backward(self, *tensors) -> None:
        self._saved = tensors
        self._saved_versions = tuple(
            t._version[0] if isinstance(t, Tensor) else None for t in tensors
        )

    @property
    def saved_tensors(self) -> tuple:
        if self._saved is None:
            raise freed_error(self._function_name)
        for t, version in zip(self._saved, self._saved_versions):
            if isinstance(t, Tensor) and t._version[0] != version:
                raise modified_error(self._function_name, t.shape, t._version[0], version)
        return self._saved


class FunctionNode(Node):
    """The grad_fn of a custom Function's outputs; its class is named `<Function>Backward`."""

    __slots__ = ("function", "ctx", "input_like", "output_like")

    def __init__(self, function: type, ctx: FunctionCtx, args: tuple, outputs: list):
        self.set_edges([_edge(a) for a in args])
        self.num_outputs, self.retained = len(outputs), None
        self.sequence_nr = next_sequence_nr()
        self.function, self.ctx = function, ctx
        # (shape, dtype) of each tensor argument (to check and cast what backward returns)
        # and of each output (zeros stand for outputs that got no cotangent).
        self.input_like = [_like(a) if isinstance(a, Tensor) else None for a in args]
        self.output_like = [_like(o) for o in outputs]

    def apply(self, cts: list) -> list:
        grads = [
            wrap(np.zeros(*like)) if ct is None else ct for ct, like in zip(cts, self.output_like)
        ]
        returned = self.function.backward(self.ctx, *grads)
        returned = list(returned) if isinstance(returned, (tuple, list)) else [returned]
        inputs = len(self.edge_targets)
        while len(returned) > inputs and returned[-1] is None:
            returned.pop()  # PyTorch allows extra trailing Nones
        if len(returned) != inputs:
            raise GradientError(
                f"{self.name} returned {len(returned)} gradients for {inputs} inputs"
            )
        result = [_as_gradient(g, like) for g, like in zip(returned, self.input_like)]
        shapes = [None if like is None else like[0] for like in self.input_like]
        check_cotangents(self.name, result, shapes)
        return result

    def release(self) -> None:
        self.ctx._saved = None


def _like(t: Tensor) -> tuple:
    return t.shape, t._data.dtype


def _edge(arg):
    if not isinstance(arg, Tensor) or not arg.requires_grad:
        return None
    return (arg, -1) if arg.grad_fn is None else (arg.grad_fn, arg._output_nr)


def _as_gradient(g, like):
    """What backward returned for one argument, as a tensor of the argument's dtype."""
    if g is None or like is None:
        return None  # no gradient, or one for a non-tensor argument (ignored, as in PyTorch)
    g = g if isinstance(g, Tensor) else wrap(to_array(g, like[1]))
    return g if g._data.dtype == like[1] else bind("cast", g, dtype=like[1].name)


_NODE_CLASSES: dict[type, type] = {}


def _node_class(function: type) -> type:
    cls = _NODE_CLASSES.get(function)
    if cls is None:
        cls = type(f"{function.__name__}Backward", (FunctionNode,), {"__slots__": ()})
        _NODE_CLASSES[function] = cls
    return cls


class Function:
    """Subclass with static `forward(ctx, *args)` and `backward(ctx, *grad_outputs)`, then
    call `apply(*args)`. backward returns one gradient (or None) per forward argument."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args):
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs):
        raise NotImplementedError("a Function subclass must define backward(ctx, ...)")

    @classmethod
    def apply(cls, *args):
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        tracking = is_grad_enabled() and any(needs)
        ctx = FunctionCtx(needs if tracking else (False,) * len(args))
        ctx._function_name = f"{cls.__name__}Backward"
        with no_grad():
            result = cls.forward(ctx, *args)
        single = not isinstance(result, tuple)
        outputs = [result] if single else list(result)
        for out in outputs:
            if not isinstance(out, Tensor):
                raise GradientError(
                    f"{cls.__name__}.forward must return tensors, got {type(out).__name__}"
                )
        if tracking:
            outputs = [_own_output(out, args) for out in outputs]
            node = _node_class(cls)(cls, ctx, args, outputs)
            if ANOMALY[0]:
                node.location = user_location()
            for i, out in enumerate(outputs):
                if is_float_array(out._data):
                    out.grad_fn, out._output_nr, out._requires_grad = node, i, True
        return outputs[0] if single else tuple(outputs)


def _own_output(out: Tensor, args: tuple) -> Tensor:
    """The tensor that gets the new grad_fn: forward's own result, or a new tensor over the
    same array where forward returned an input (whose history must not change) or a view
    (whose history follows its base's)."""
    own = out.grad_fn is None and not out._requires_grad and out._base is None
    if own and not any(out is a for a in args):
        return out
    alias = wrap(out._data)
    alias._version = out._version
    return alias
