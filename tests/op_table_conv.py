"""Op-table records for convolution and pooling (issue 17); op_table.py adds them to OP_TABLE.

The references here are written independently of graphjit's kernels: convolutions as a
sum over kernel taps of shifted slices, pooling as plain loops over windows
(tests/static/test_conv.py also compares with PyTorch where it is installed). Shapes stay
small: every record runs on every backend, the CUDA simulator included, and through
finite differences."""

from __future__ import annotations

import itertools

import numpy as np

import graphjit as gj
from graphjit.ir.ops import bind
from op_table import OpCase


def _tap_slices(i, j, out_hw, stride, dilation):
    """The padded-input rows and columns that kernel tap (i, j) reads, one per output."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(
        j * dw, j * dw + sw * (ow - 1) + 1, sw
    )


def _out_hw(hw, kernel, stride, padding, dilation):
    return tuple(
        (hw[a] + sum(padding[a]) - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1
        for a in (0, 1)
    )


def conv_ref(x, w, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """PyTorch's conv2d (cross-correlation), padding given per side."""
    o, cg, kh, kw = w.shape
    og = o // groups
    xp = np.pad(x, ((0, 0), (0, 0), *padding))
    out_hw = _out_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    out = np.zeros((x.shape[0], o, *out_hw), x.dtype)
    for g, i, j in itertools.product(range(groups), range(kh), range(kw)):
        rows, cols = _tap_slices(i, j, out_hw, stride, dilation)
        patch = xp[:, g * cg : (g + 1) * cg, rows, cols]
        taps = w[g * og : (g + 1) * og, :, i, j]
        out[:, g * og : (g + 1) * og] += np.einsum("nchw,oc->nohw", patch, taps)
    return out


def conv_transpose_ref(
    x, w, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), groups=1, dilation=(1, 1)
):
    """PyTorch's conv_transpose2d: every input pixel adds its weighted kernel into the output."""
    c, og, kh, kw = w.shape
    cg = c // groups
    full_hw = [
        (x.shape[2 + a] - 1) * stride[a] + dilation[a] * ((kh, kw)[a] - 1) + 1 + output_padding[a]
        for a in (0, 1)
    ]
    full = np.zeros((x.shape[0], og * groups, *full_hw), x.dtype)
    for g, i, j in itertools.product(range(groups), range(kh), range(kw)):
        rows, cols = _tap_slices(i, j, x.shape[2:], stride, dilation)
        taps = w[g * cg : (g + 1) * cg, :, i, j]
        full[:, g * og : (g + 1) * og, rows, cols] += np.einsum(
            "nchw,co->nohw", x[:, g * cg : (g + 1) * cg], taps
        )
    (ph, pw), (fh, fw) = padding, full_hw
    return full[:, :, ph : fh - ph, pw : fw - pw]


def filter_grad_ref(x, g, w_shape, stride, padding):
    """d/dw of Σ g · conv(x, w): each tap's weight meets the slice of x it reads."""
    xp = np.pad(x, ((0, 0), (0, 0), *padding))
    dw = np.zeros(w_shape, x.dtype)
    for i, j in itertools.product(range(w_shape[2]), range(w_shape[3])):
        rows, cols = _tap_slices(i, j, g.shape[2:], stride, (1, 1))
        dw[:, :, i, j] = np.einsum("nchw,nohw->oc", xp[:, :, rows, cols], g)
    return dw


def _windows(shape, kernel, stride, padding):
    """(output index, [(position inside the input, in the window's order)]) per window."""
    h, w = shape[2:]
    out_hw = _out_hw((h, w), kernel, stride, ((padding[0],) * 2, (padding[1],) * 2), (1, 1))
    for oh, ow in itertools.product(*map(range, out_hw)):
        taps = [
            (oh * stride[0] - padding[0] + i, ow * stride[1] - padding[1] + j)
            for i, j in itertools.product(range(kernel[0]), range(kernel[1]))
        ]
        yield (oh, ow), out_hw, [(r, c) for r, c in taps if 0 <= r < h and 0 <= c < w]


def _first_max(plane, taps):
    """The window's first NaN, else its first maximum (PyTorch's choice)."""
    values = [plane[t] for t in taps]
    nans = [t for t, v in zip(taps, values) if np.isnan(v)]
    return nans[0] if nans else taps[int(np.argmax(values))]


def pool_ref(x, kernel, stride, padding, how):
    """max_pool2d, max_pool2d_pick (v at x's maxima) or avg_pool2d (padding counted)."""
    out = None
    for (oh, ow), out_hw, taps in _windows(x.shape, kernel, stride, padding):
        out = np.zeros((*x.shape[:2], *out_hw), x.dtype) if out is None else out
        for n, c in np.ndindex(*x.shape[:2]):
            if how == "avg":
                out[n, c, oh, ow] = sum(x[n, c][t] for t in taps) / (kernel[0] * kernel[1])
            else:
                out[n, c, oh, ow] = x[n, c][_first_max(x[n, c], taps)]
    return out


def pool_grad_ref(x, g, kernel, stride, padding, how):
    """The gradient of pool_ref: g to each window's first maximum, or spread evenly."""
    dx = np.zeros(x.shape, g.dtype)
    for (oh, ow), _, taps in _windows(x.shape, kernel, stride, padding):
        for n, c in np.ndindex(*x.shape[:2]):
            if how == "avg":
                for t in taps:
                    dx[n, c][t] += g[n, c, oh, ow] / (kernel[0] * kernel[1])
            else:
                dx[n, c][_first_max(x[n, c], taps)] += g[n, c, oh, ow]
    return dx


def max_pick_ref(x, v, kernel, stride, padding):
    out = pool_ref(x, kernel, stride, padding, "max")
    for (oh, ow), _, taps in _windows(x.shape, kernel, stride, padding):
        for n, c in np.ndindex(*x.shape[:2]):
            out[n, c, oh, ow] = v[n, c][_first_max(x[n, c], taps)]
    return out.astype(v.dtype)


SAME = ((0, 1), (1, 1))  # "same" for a 2x3 kernel: the odd row goes after, as in PyTorch
POOL = {"kernel": (2, 2), "stride": (2, 1), "padding": (1, 0)}
# (the cotangent no smaller than the result: constant folding would not expand it)
OVERLAPPING = {"kernel": (2, 2), "stride": (1, 1), "padding": (1, 1)}

CONV_CASES: list = [
    OpCase(
        "conv2d",
        lambda x, w: gj.conv2d(x, w, padding=1),
        lambda x, w: conv_ref(x, w, padding=((1, 1), (1, 1))),
        [((2, 3, 5, 5), (4, 3, 3, 3)), ((1, 2, 4, 6), (2, 2, 2, 3))],
    ),
    OpCase(
        "conv2d_strided_dilated_grouped",
        lambda x, w: gj.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
        lambda x, w: conv_ref(x, w, (2, 1), ((1, 1), (2, 2)), (1, 2), groups=2),
        [((2, 4, 6, 5), (4, 2, 3, 2))],
    ),
    OpCase(
        "conv2d_same_even_kernel",
        lambda x, w: gj.conv2d(x, w, padding="same"),
        lambda x, w: conv_ref(x, w, padding=SAME),
        [((1, 2, 5, 4), (3, 2, 2, 3))],
        dynamic=False,  # "same" needs the kernel size when the graph is built
    ),
    OpCase(
        "conv2d_pointwise_bias",
        lambda x, w, b: gj.conv2d(x, w, b),
        lambda x, w, b: conv_ref(x, w) + b[:, None, None],
        [((2, 3, 4, 4), (2, 3, 1, 1), (2,))],
    ),
    OpCase(
        "conv1d",
        lambda x, w: gj.conv1d(x, w, stride=2, padding=1),
        lambda x, w: conv_ref(x[:, :, None], w[:, :, None], (1, 2), ((0, 0), (1, 1)))[:, :, 0],
        [((2, 3, 7), (4, 3, 3))],
    ),
    OpCase(
        "conv_transpose2d",
        lambda x, w: gj.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2),
        lambda x, w: conv_transpose_ref(x, w, (2, 2), (1, 1), (1, 1), groups=2),
        [((1, 4, 3, 3), (4, 1, 3, 3))],
    ),
    OpCase(
        "conv2d_filter_grad",
        lambda x, g, w: bind(
            "conv2d_filter_grad", x, g, w, stride=(2, 1), padding=((1, 1), (0, 0))
        ),
        lambda x, g, w: filter_grad_ref(x, g, w.shape, (2, 1), ((1, 1), (0, 0))),
        [((2, 3, 5, 4), (2, 2, 3, 2), (2, 3, 3, 3))],
    ),
    OpCase(
        "max_pool2d",
        lambda x: gj.max_pool2d(x, 3, 2, 1),
        lambda x: pool_ref(x, (3, 3), (2, 2), (1, 1), "max"),
        [((2, 3, 7, 6),)],
    ),
    OpCase(
        "max_pool2d_default_stride",
        lambda x: gj.max_pool2d(x, 2),
        lambda x: pool_ref(x, (2, 2), (2, 2), (0, 0), "max"),
        [((1, 2, 4, 5),)],
    ),
    OpCase(
        "max_pool2d_grad",
        lambda x, g: bind("max_pool2d_grad", x, g, **POOL),
        lambda x, g: pool_grad_ref(x, g, how="max", **POOL),
        [((2, 2, 5, 4), (2, 2, 3, 3))],
    ),
    OpCase(
        "max_pool2d_pick",
        lambda x, v: bind("max_pool2d_pick", x, v, **POOL),
        lambda x, v: max_pick_ref(x, v, **POOL),
        [((2, 2, 5, 4), (2, 2, 5, 4))],
    ),
    OpCase(
        "avg_pool2d",
        lambda x: gj.avg_pool2d(x, (3, 2), (2, 1), (1, 1)),
        lambda x: pool_ref(x, (3, 2), (2, 1), (1, 1), "avg"),
        [((2, 3, 7, 6),)],
    ),
    OpCase(
        "avg_pool2d_grad",
        lambda g, x: bind("avg_pool2d_grad", g, x, **OVERLAPPING),
        lambda g, x: pool_grad_ref(x, g, how="avg", **OVERLAPPING),
        [((2, 2, 5, 4), (2, 2, 4, 3))],
    ),
    OpCase(
        "adaptive_avg_pool2d_1x1",
        lambda x: gj.adaptive_avg_pool2d(x, 1),
        lambda x: x.mean(axis=(2, 3), keepdims=True),
        [((2, 3, 4, 5),)],
    ),
    OpCase(
        "adaptive_avg_pool2d_2x3",
        lambda x: gj.adaptive_avg_pool2d(x, (2, 3)),
        lambda x: x.reshape(2, 3, 2, 2, 3, 2).mean(axis=(3, 5)),
        [((2, 3, 4, 6),)],
        dynamic=False,  # sizes other than 1x1 need the input's size when built
    ),
]
