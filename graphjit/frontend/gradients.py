"""`gj.gradients`: symbolic reverse-mode differentiation of a graph (TensorFlow 1's API)."""

from __future__ import annotations

from graphjit.errors import GradientError, ShapeError
from graphjit.frontend.convert import as_tensor, operands, unwrap
from graphjit.ir import builder
from graphjit.ir.core import Value, user_location
from graphjit.ir.ops import P
from graphjit.passes.autodiff import backprop


def gradients(ys, xs, grad_ys=None) -> list:
    """d(sum of ys)/d(x) for each x, as graph tensors emitted into the current graph.

    `ys` and `xs` are tensors or lists of them (Variables stand for their values); `grad_ys`
    are the cotangents of `ys` (ones by default). Returns a list with one entry per x: None
    where no y depends on that x. The result can itself be differentiated."""
    ys = [as_tensor(y) for y in _as_list(ys)]
    xs = [unwrap(x) for x in _as_list(xs)]
    for x in xs:
        if not isinstance(x, Value):
            raise GradientError(
                f"gradients: xs must be graph tensors or Variables, got {x!r}",
                location=user_location(),
            )
    seeds = _seeds(ys, grad_ys)
    block = builder.current_block()
    return backprop(list(block.ops), ys, seeds, xs)


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _seeds(ys, grad_ys) -> list:
    if grad_ys is None:
        return [P.broadcast_like(1, y) if y.dtype.is_floating else None for y in ys]
    grad_ys = _as_list(grad_ys)
    if len(grad_ys) != len(ys):
        raise GradientError(
            f"gradients: {len(grad_ys)} grad_ys for {len(ys)} ys", location=user_location()
        )
    seeds = []
    for y, g in zip(ys, grad_ys):
        if g is None:
            seeds.append(P.broadcast_like(1, y) if y.dtype.is_floating else None)
            continue
        (g,) = operands(g, dtype=y.dtype)
        if tuple(g.shape) != tuple(y.shape) and None not in g.shape + y.shape:
            raise ShapeError(
                f"gradients: grad_y of shape {g.shape} for y of shape {y.shape}",
                location=user_location(),
            )
        seeds.append(g)
    return seeds
