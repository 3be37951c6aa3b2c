"""Convolution and pooling functions (gj.nn.conv2d, conv1d, conv_transpose2d, max_pool2d,
avg_pool2d, adaptive_avg_pool2d), PyTorch's NCHW convention, for both modes.

They turn PyTorch's arguments (ints or pairs, "same"/"valid" padding, stride=None for
pooling) into the explicit attributes of the primitives in ir/ops/conv.py; a bias is an
ordinary broadcasting add, which fusion folds into whatever follows."""

from __future__ import annotations

import operator

from graphjit.errors import ShapeError
from graphjit.frontend.ops import add, mean, operands
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind

__all__ = [
    "conv2d",
    "conv1d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
]


def _pair(value, what: str) -> tuple[int, int]:
    """An int or a pair of ints (PyTorch's `_pair`)."""
    try:
        pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
        pair = tuple(operator.index(v) for v in pair)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ShapeError(
            f"{what} must be an int or a pair of ints, got {value!r}", location=user_location()
        )
    return pair


def _check_rank(x, rank: int, what: str) -> None:
    if x.ndim != rank:
        raise ShapeError(
            f"{what} must have rank {rank}, got shape {tuple(x.shape)}", location=user_location()
        )


def _conv_padding(padding, kernel, dilation, stride) -> tuple:
    """((top, bottom), (left, right)) from an int, a pair, "valid" or "same". "same" puts
    the odd row of an even kernel after the input, as PyTorch does."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding != "same":
        ph, pw = _pair(padding, "padding")
        return (ph, ph), (pw, pw)
    if stride != (1, 1):
        raise ShapeError(
            "padding='same' is not supported for strided convolutions (as in PyTorch)",
            location=user_location(),
        )
    if None in kernel:
        raise ShapeError(
            "padding='same' needs the kernel's height and width known when the graph is "
            "built; give the weight a static shape or explicit padding",
            location=user_location(),
        )
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _with_bias(out, bias, spatial_axes: int):
    """out + bias, the bias (one per channel) broadcast over the spatial axes."""
    if bias is None:
        return out
    (bias,) = operands(bias)
    _check_rank(bias, 1, "bias")
    axes = tuple(range(1, 1 + spatial_axes))
    return add(out, bind("expand_dims", bias, axes=axes))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in PyTorch): input [N, C, H, W], weight
    [O, C / groups, kh, kw], optional bias [O]; padding an int, a pair, "same" or "valid".
    (torch.nn.functional.conv2d; TF1's tf.nn.conv2d takes NHWC and HWIO instead.)"""
    x, w = operands(input, weight)
    _check_rank(x, 4, "conv2d input")
    _check_rank(w, 4, "conv2d weight")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = _conv_padding(padding, tuple(w.shape[2:]), dilation, stride)
    out = bind(
        "conv2d",
        x,
        w,
        stride=stride,
        padding=pads,
        dilation=dilation,
        groups=operator.index(groups),
    )
    return _with_bias(out, bias, 2)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution: input [N, C, L], weight [O, C / groups, k]; a conv2d over a height
    of one. (torch.nn.functional.conv1d.)"""
    x, w = operands(input, weight)
    _check_rank(x, 3, "conv1d input")
    _check_rank(w, 3, "conv1d weight")
    if not isinstance(padding, str):
        padding = (0, _single(padding, "padding"))
    out = conv2d(
        bind("expand_dims", x, axes=(2,)),
        bind("expand_dims", w, axes=(2,)),
        stride=(1, _single(stride, "stride")),
        padding=padding,
        dilation=(1, _single(dilation, "dilation")),
        groups=groups,
    )
    return _with_bias(bind("squeeze", out, axes=(2,)), bias, 1)


def _single(value, what: str) -> int:
    """An int or a one-element sequence of one (PyTorch's `_single`)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    try:
        return operator.index(value)
    except TypeError:
        raise ShapeError(
            f"{what} must be an int, got {value!r}", location=user_location()
        ) from None


def conv_transpose2d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """The transposed convolution (the gradient of conv2d with respect to its input):
    input [N, C, H, W], weight [C, O / groups, kh, kw] (PyTorch's layout), output
    [N, O, (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1, ...].
    (torch.nn.functional.conv_transpose2d; TF1's tf.nn.conv2d_transpose.)"""
    x, w = operands(input, weight)
    _check_rank(x, 4, "conv_transpose2d input")
    _check_rank(w, 4, "conv_transpose2d weight")
    ph, pw = _pair(padding, "padding")
    out = bind(
        "conv2d_input_grad",
        x,
        w,
        stride=_pair(stride, "stride"),
        padding=((ph, ph), (pw, pw)),
        dilation=_pair(dilation, "dilation"),
        groups=operator.index(groups),
        output_padding=_pair(output_padding, "output_padding"),
    )
    return _with_bias(out, bias, 2)


def _pool_attrs(kernel_size, stride, padding) -> dict:
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    return {"kernel": kernel, "stride": stride, "padding": _pair(padding, "padding")}


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """The maximum of each window (padding never wins; NaN propagates); stride defaults to
    the kernel size. (torch.nn.functional.max_pool2d; TF1's tf.nn.max_pool is NHWC.)"""
    (x,) = operands(input)
    _check_rank(x, 4, "max_pool2d input")
    return bind("max_pool2d", x, **_pool_attrs(kernel_size, stride, padding))


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    """The mean of each window, padding counted in the divisor (PyTorch's default
    count_include_pad=True). (torch.nn.functional.avg_pool2d.)"""
    (x,) = operands(input)
    _check_rank(x, 4, "avg_pool2d input")
    return bind("avg_pool2d", x, **_pool_attrs(kernel_size, stride, padding))


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to an output of `output_size` (an int or a pair; None keeps that
    dimension): 1x1 is the mean over H and W; other sizes must divide the input's.
    (torch.nn.functional.adaptive_avg_pool2d.)"""
    (x,) = operands(input)
    _check_rank(x, 4, "adaptive_avg_pool2d input")
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(sizes) != 2:
        raise ShapeError(
            f"output_size must be an int or a pair, got {output_size!r}", location=user_location()
        )
    if tuple(sizes) == (1, 1):
        return mean(x, axis=(2, 3), keepdims=True)
    kernel = []
    for size, wanted in zip(x.shape[2:], sizes):
        wanted = size if wanted is None else operator.index(wanted)
        if size is None or wanted < 1 or size % wanted:
            raise ShapeError(
                f"adaptive_avg_pool2d from {tuple(x.shape[2:])} to {tuple(sizes)}: only an "
                "output of 1x1 or of sizes that divide the (known) input sizes is supported",
                location=user_location(),
            )
        kernel.append(size // wanted)
    return bind("avg_pool2d", x, kernel=tuple(kernel), stride=tuple(kernel), padding=(0, 0))
