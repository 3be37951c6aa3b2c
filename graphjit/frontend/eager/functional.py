"""`gj.nn.functional` (`import graphjit.nn.functional as F`): PyTorch's torch.nn.functional
names for the op functions both modes share, gathered from the modules that define them
(frontend/conv.py, normalization.py, activations.py, indexing.py, random.py, ops.py,
losses.py, compat.py), plus
linear, mse_loss, cross_entropy (classes on axis 1, as PyTorch) and attention.
"""

from __future__ import annotations

from graphjit.errors import GraphjitError
from graphjit.frontend import ops, shape_ops
from graphjit.frontend.activations import elu, gelu, leaky_relu, pad, silu, softplus
from graphjit.frontend.compat import one_hot
from graphjit.frontend.conv import (
    adaptive_avg_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose2d,
    max_pool2d,
)
from graphjit.frontend.eager.attention import scaled_dot_product_attention
from graphjit.frontend.eager.layers import flatten
from graphjit.frontend.indexing import embedding
from graphjit.frontend.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    l1_loss,
    nll_loss,
    smooth_l1_loss,
    softmax_cross_entropy,
)
from graphjit.frontend.normalization import batch_norm, group_norm, layer_norm
from graphjit.frontend.ops import log_softmax, relu, sigmoid, softmax, tanh
from graphjit.frontend.random import dropout

__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "conv1d", "conv2d", "conv_transpose2d", "cross_entropy",
    "dropout", "elu", "embedding", "flatten", "gelu", "group_norm", "l1_loss", "layer_norm",
    "leaky_relu", "linear", "log_softmax", "max_pool2d", "mse_loss", "nll_loss", "one_hot",
    "pad", "relu", "scaled_dot_product_attention", "sigmoid", "silu", "smooth_l1_loss",
    "softmax", "softplus", "tanh",
]  # fmt: skip


def linear(input, weight, bias=None):
    """input @ weight.T + bias (PyTorch's F.linear)."""
    y = ops.matmul(input, weight, transpose_b=True)
    return y if bias is None else ops.add(y, bias)


def _reduce(losses, reduction: str):
    if reduction == "mean":
        return ops.mean(losses)
    if reduction == "sum":
        return ops.sum(losses)
    if reduction == "none":
        return losses
    raise GraphjitError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse_loss(input, target, reduction: str = "mean"):
    """The squared differences, averaged ("mean"), summed ("sum") or not ("none")."""
    return _reduce(ops.square(ops.sub(input, target)), reduction)


def cross_entropy(input, target, weight=None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0):  # fmt: skip
    """PyTorch's F.cross_entropy: classes along axis 1 of `input`, `target` class indices
    or probabilities; `gj.softmax_cross_entropy` (classes last) computes it. Class weights
    and label smoothing are not implemented and refused."""
    if weight is not None or label_smoothing != 0.0:
        raise GraphjitError("cross_entropy: weight and label_smoothing are not supported")
    if input.ndim > 2:  # (N, C, d1, ...) -> (N, d1, ..., C)
        input = shape_ops.transpose(input, (0, *range(2, input.ndim), 1))
        if target.ndim == input.ndim:  # probabilities, laid out like the input was
            target = shape_ops.transpose(target, (0, *range(2, target.ndim), 1))
    return softmax_cross_entropy(input, target, reduction, ignore_index)
