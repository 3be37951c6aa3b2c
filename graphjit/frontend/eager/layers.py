"""The layers of `gj.nn` (PyTorch's signatures, defaults and initialisations): Linear, Conv2d,
pooling, normalisation, Embedding, Dropout, activations, Flatten and Identity.

Each `forward` calls the op functions that both modes share, so a layer runs on eager
tensors, and under `gj.function` (where its parameters are graph Variables) on graph values.
"""

from __future__ import annotations

import math

import numpy as np

from graphjit.errors import GraphjitError, ShapeError
from graphjit.frontend import activations, conv, indexing, normalization, ops, shape_ops
from graphjit.frontend import random as random_ops
from graphjit.frontend.eager import init
from graphjit.frontend.eager.module import Module, Parameter
from graphjit.frontend.eager.tensor import Tensor, bump_version
from graphjit.ir.types import as_dtype

__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "Dropout", "ELU",
    "Embedding", "Flatten", "GELU", "GroupNorm", "Identity", "LayerNorm", "LeakyReLU", "Linear",
    "LogSoftmax", "MaxPool2d", "ReLU", "Sigmoid", "SiLU", "Softmax", "Softplus", "Tanh",
]  # fmt: skip


def _empty_parameter(shape: tuple, dtype) -> Parameter:
    return Parameter(np.zeros(shape, as_dtype(dtype).np))


def _pair(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


def _refuse_option(layer: str, option: str, value, default) -> None:
    """Options PyTorch has that the shared op functions do not implement: their default is
    accepted (so PyTorch code runs), anything else is refused by name."""
    if value != default:
        raise GraphjitError(f"{layer}: {option}={value!r} is not supported (only {default!r})")


def reset_uniform_fan_in(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default for Linear and Conv: kaiming_uniform_(a=sqrt(5)) on the weight, whose
    bound is 1/sqrt(fan_in), and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias."""
    fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
    bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
    init.uniform_(weight, -bound, bound)
    if bias is not None:
        init.uniform_(bias, -bound, bound)


# ---- linear and convolution ------------------------------------------------------------------


class Linear(Module):
    """y = x @ weight.T + bias; weight (out, in) and bias drawn from U(-1/sqrt(in),
    1/sqrt(in)) with the generator `gj.manual_seed` seeds, as PyTorch initialises them."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype="float32"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty_parameter((out_features, in_features), dtype)
        self.bias = _empty_parameter((out_features,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_uniform_fan_in(self.weight, self.bias)

    def forward(self, x):
        y = ops.matmul(x, self.weight, transpose_b=True)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Conv2d(Module):
    """2-D convolution over NCHW input (cross-correlation, as PyTorch); weight
    (out_channels, in_channels // groups, kh, kw). `padding` may be "same" or "valid";
    `padding_mode` other than "zeros" pads with `pad` first."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype="float32"):  # fmt: skip
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise GraphjitError("Conv2d: in_channels and out_channels must divide by groups")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = (
            _pair(kernel_size), _pair(stride), _pair(dilation),
        )  # fmt: skip
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = _empty_parameter(shape, dtype)
        self.bias = _empty_parameter((out_channels,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_uniform_fan_in(self.weight, self.bias)

    def forward(self, x):
        padding = self.padding
        if self.padding_mode != "zeros" and not isinstance(padding, str):
            ph, pw = padding  # (pad's widths run from the last axis: left, right, top, bottom)
            x = activations.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
            padding = 0
        return conv.conv2d(x, self.weight, self.bias, stride=self.stride, padding=padding,
                           dilation=self.dilation, groups=self.groups)  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
            + (f", groups={self.groups}" if self.groups != 1 else "")
            + ("" if self.bias is not None else ", bias=False")
        )


# ---- pooling -------------------------------------------------------------------------------


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):  # fmt: skip
        super().__init__()
        for option, value, default in [("dilation", dilation, 1), ("ceil_mode", ceil_mode, False),
                                       ("return_indices", return_indices, False)]:  # fmt: skip
            _refuse_option("MaxPool2d", option, value, default)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return conv.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Average pooling; zero padding counts towards the average (PyTorch's default)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):  # fmt: skip
        super().__init__()
        for option, value, default in [("ceil_mode", ceil_mode, False),
                                       ("count_include_pad", count_include_pad, True),
                                       ("divisor_override", divisor_override, None)]:  # fmt: skip
            _refuse_option("AvgPool2d", option, value, default)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return conv.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return conv.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


# ---- normalisation -------------------------------------------------------------------------


class _BatchNorm(Module):
    """Normalises over every axis but the channels (axis 1) with the batch's statistics
    while training (updating running_mean/running_var, with the unbiased variance, as
    PyTorch), and with the running statistics in eval mode."""

    expected_ranks: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype="float32"):  # fmt: skip
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = _empty_parameter((num_features,), dtype) if affine else None
        self.bias = _empty_parameter((num_features,), dtype) if affine else None
        stats = [None, None, None]
        if track_running_stats:
            stats = [Tensor(np.zeros(num_features, as_dtype(dtype).np)),
                     Tensor(np.ones(num_features, as_dtype(dtype).np)),
                     Tensor(np.asarray(0, np.int64))]  # fmt: skip
        for name, stat in zip(("running_mean", "running_var", "num_batches_tracked"), stats):
            self.register_buffer(name, stat)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _momentum(self) -> float:
        """The running averages' factor for this step; momentum=None is PyTorch's cumulative
        average (1 / number of batches seen). While a graph is built the buffers are
        Variables: the count is an assign (gj.function runs it and writes the buffer back),
        and the cumulative average, which would need the count as a number, is refused."""
        counting = self.training and self.track_running_stats
        if counting and isinstance(self.num_batches_tracked, Tensor):
            self.num_batches_tracked._data += 1
            bump_version(self.num_batches_tracked)
        elif counting and self.momentum is not None:
            self.num_batches_tracked.assign_add(1)
        elif counting:
            raise GraphjitError(
                f"{type(self).__name__}(momentum=None) keeps a cumulative average, which "
                "works in eager mode only: give a momentum to train it in a graph"
            )
        if self.momentum is not None:
            return self.momentum
        return 1.0 / float(self.num_batches_tracked._data) if counting else 0.0

    def forward(self, x):
        if x.ndim not in self.expected_ranks:
            raise ShapeError(
                f"{type(self).__name__}: expected an input of rank {self.expected_ranks}, "
                f"got shape {tuple(x.shape)}"
            )
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return normalization.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=self._momentum(),
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L) input."""

    expected_ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over (N, C, H, W) input."""

    expected_ranks = (4,)


class LayerNorm(Module):
    """Normalises over the last len(normalized_shape) axes, then scales and shifts by
    weight (ones) and bias (zeros) of that shape."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype="float32"):  # fmt: skip
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape, self.eps = tuple(shape), eps
        self.elementwise_affine = elementwise_affine
        self.weight = _empty_parameter(self.normalized_shape, dtype) if elementwise_affine else None
        with_bias = elementwise_affine and bias
        self.bias = _empty_parameter(self.normalized_shape, dtype) if with_bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x):
        return normalization.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(Module):
    """Normalises each group of num_channels // num_groups channels over the group's
    channels and spatial axes; per-channel weight (ones) and bias (zeros)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, dtype="float32"):  # fmt: skip
        super().__init__()
        if num_channels % num_groups:
            raise GraphjitError("GroupNorm: num_channels must be divisible by num_groups")
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine,
        )  # fmt: skip
        self.weight = _empty_parameter((num_channels,), dtype) if affine else None
        self.bias = _empty_parameter((num_channels,), dtype) if affine else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        return normalization.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


# ---- embedding and dropout -----------------------------------------------------------------


class Embedding(Module):
    """Rows of weight (num_embeddings, embedding_dim), drawn from N(0, 1), looked up by
    integer indices. The padding_idx row starts at zero and gets no gradient (PyTorch)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype="float32"):  # fmt: skip
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise GraphjitError(f"Embedding: padding_idx {padding_idx} is out of range")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        self.weight = _empty_parameter((num_embeddings, embedding_dim), dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    def forward(self, indices):
        return indexing.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


class Dropout(Module):
    """Zeroes each element with probability p while training, scaling the others by
    1 / (1 - p); the identity in eval mode."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise GraphjitError(f"Dropout: p must be in [0, 1], got {p}")
        _refuse_option("Dropout", "inplace", inplace, False)
        self.p = p

    def forward(self, x):
        return random_ops.dropout(x, self.p, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ---- activations and shape layers ----------------------------------------------------------


class ReLU(Module):
    def forward(self, x):
        return ops.relu(x)


class Tanh(Module):
    def forward(self, x):
        return ops.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return ops.sigmoid(x)


class GELU(Module):
    """x * Phi(x) ("none": the exact erf form) or its tanh approximation ("tanh")."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise GraphjitError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return activations.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def forward(self, x):
        return activations.silu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return activations.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return activations.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Module):
    """log(1 + exp(beta x)) / beta, linear above `threshold` (beta x > threshold)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return activations.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return ops.softmax(x, self.dim)


class LogSoftmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return ops.log_softmax(x, self.dim)


class Flatten(Module):
    """Merges axes start_dim..end_dim into one (by default all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    """x with axes start_dim..end_dim merged (torch.flatten), in either mode."""
    dims = list(x.shape)
    start, end = start_dim % max(len(dims), 1), end_dim % max(len(dims), 1)
    if not dims or start >= end:
        return x
    merged = dims[start : end + 1]
    size = -1 if None in merged else int(np.prod(merged))
    return shape_ops.reshape(x, [-1 if d is None else d for d in dims[:start]] + [size]
                             + [-1 if d is None else d for d in dims[end + 1 :]])  # fmt: skip


class Identity(Module):
    """Returns its input; accepts (and ignores) any constructor arguments, as PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
