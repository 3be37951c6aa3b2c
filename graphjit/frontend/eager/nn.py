"""`gj.nn`: PyTorch-style modules, losses, `gj.nn.init`, `gj.nn.functional` and `gj.nn.utils`,
beside the functional ops that both modes share (`gj.nn.softmax_cross_entropy`, `relu`,
`conv2d`, ... work on graph tensors too).

The classes live in module.py (Module, Parameter, containers), layers.py and attention.py;
this module is the namespace users import.
"""

from __future__ import annotations

from graphjit.frontend.compat import bias_add, embedding_lookup, l2_normalize, moments
from graphjit.frontend.eager import functional, init, parallel  # noqa: F401 (gj.nn.parallel)
from graphjit.frontend.eager import nn_utils as utils
from graphjit.frontend.eager.attention import MultiheadAttention, scaled_dot_product_attention
from graphjit.frontend.eager.functional import (  # the functional names, as gj.nn.<name> too
    adaptive_avg_pool2d,
    avg_pool2d,
    batch_norm,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    conv1d,
    conv2d,
    conv_transpose2d,
    cross_entropy,
    dropout,
    elu,
    embedding,
    gelu,
    group_norm,
    l1_loss,
    layer_norm,
    leaky_relu,
    linear,
    max_pool2d,
    mse_loss,
    nll_loss,
    one_hot,
    pad,
    silu,
    smooth_l1_loss,
    softplus,
)
from graphjit.frontend.eager.layers import (
    ELU,
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    GroupNorm,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    flatten,
)  # fmt: skip
from graphjit.frontend.eager.module import Module, ModuleDict, ModuleList, Parameter, Sequential
from graphjit.frontend.losses import (  # the loss functions of both modes (TF1's names too)
    l2_loss,
    sigmoid_cross_entropy_with_logits,
    softmax_cross_entropy,
    softmax_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
    sparse_softmax_cross_entropy_with_logits,
)
from graphjit.frontend.ops import log_softmax, relu, sigmoid, softmax, tanh

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss",
    "Dropout", "ELU", "Embedding", "Flatten", "GELU", "GroupNorm", "Identity", "LayerNorm",
    "LeakyReLU", "Linear", "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleDict",
    "ModuleList", "MultiheadAttention", "Parameter", "ReLU", "Sequential", "SiLU", "Sigmoid",
    "Softmax", "Softplus", "Tanh", "adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "bias_add",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "conv1d", "conv2d",
    "conv_transpose2d", "cross_entropy", "dropout", "elu", "embedding", "embedding_lookup",
    "flatten", "functional", "gelu", "group_norm", "init", "l1_loss", "l2_loss", "l2_normalize",
    "layer_norm", "leaky_relu", "linear", "log_softmax", "max_pool2d", "moments", "mse_loss",
    "nll_loss", "one_hot", "pad", "relu", "scaled_dot_product_attention", "sigmoid",
    "sigmoid_cross_entropy_with_logits", "silu", "smooth_l1_loss", "softmax",
    "softmax_cross_entropy", "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2", "softplus", "sparse_softmax_cross_entropy_with_logits",
    "tanh", "utils",
]  # fmt: skip


class MSELoss(Module):
    """Mean (or sum, or none) of the squared differences."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):  # (PyTorch's argument names)
        return mse_loss(input, target, self.reduction)


class CrossEntropyLoss(Module):
    """softmax_cross_entropy as a module: integer class labels or probabilities, reduced
    over the batch ("mean", "sum" or "none"), PyTorch's `ignore_index`."""

    def __init__(self, reduction: str = "mean", ignore_index: int = -100):
        super().__init__()
        self.reduction, self.ignore_index = reduction, ignore_index

    def forward(self, logits, labels):
        return softmax_cross_entropy(logits, labels, self.reduction, self.ignore_index)
