"""Convolution and pooling in PyTorch's NCHW layout (weights OIHW): conv2d (stride,
padding, dilation, groups) with its input and filter gradients, max and average pooling
with theirs.

The gradients are primitives too, and their VJP rules are written with each other, so
any order of derivative works. For y = conv2d(x, w) and a cotangent g:

    <g, conv2d(x, w)> = <conv2d_input_grad(g, w), x> = <conv2d_filter_grad(x, g), w>

`conv2d_input_grad` is conv_transpose2d. Its optional third operand is read for its shape
alone (like the `*_like` ops): strided convolutions drop trailing rows, so the input's
shape is not a function of the output's; without it, `output_padding` says how many rows
and columns were dropped (conv_transpose2d's parameter). `conv2d_filter_grad`'s third
operand is the filter, for its shape.

`max_pool2d_grad(x, g)` routes each window's cotangent to the window's first maximum (its
first NaN, if any), as PyTorch does; its own VJP needs the transpose of that routing,
`max_pool2d_pick(x, v)`: v at each window's first maximum of x. Average pooling counts
padding in its divisor (PyTorch's count_include_pad=True).

Padding here is explicit per side, ((top, bottom), (left, right)) for convolutions, so
"same" padding of an even kernel (one more row after than before, as PyTorch pads) needs
no separate pad op; pooling pads symmetrically, (ph, pw), as PyTorch's pooling does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphjit.errors import DTypeError, ShapeError
from graphjit.ir.ops import REQUIRED, WINDOWED, OpDef, P, register, wants_cotangent
from graphjit.ir.types import TensorType, as_dtype, computes_in_float32, shape_str

# ---- geometry (shared with the code generators) ---------------------------------------------


@dataclass(frozen=True)
class Window:
    """Where the taps of a 2-D sliding window fall: output o, tap t of spatial axis a reads
    input o * stride[a] + t * dilation[a] - padding[a][0] (outside the input: padding)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]  # (before, after) per axis
    dilation: tuple[int, int] = (1, 1)

    def span(self, axis: int) -> int:
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1

    def overlaps(self) -> bool:
        """Whether some input position is a tap of two outputs' windows."""
        return any(self.stride[a] < self.span(a) for a in (0, 1))

    def out_size(self, size: int | None, axis: int) -> int | None:
        if size is None:
            return None
        padded = size + sum(self.padding[axis])
        return (padded - self.span(axis)) // self.stride[axis] + 1

    def offset(self, axis: int, tap: int) -> int:
        """Input index of output 0 at this tap."""
        return tap * self.dilation[axis] - self.padding[axis][0]

    def valid_outputs(self, axis: int, tap: int, in_size, out_size, least=min, most=max):
        """[lo, hi): the outputs whose input at this tap lies inside the input. `least` and
        `most` take the minimum and maximum (a code generator's, for sizes known only when
        the code runs)."""
        s, off = self.stride[axis], self.offset(axis, tap)
        lo = least(out_size, most(0, -(off // s)))  # ceil(-off / s)
        hi = least(out_size, most(lo, (in_size - off + s - 1) // s))  # ceil((in - off) / s)
        return lo, hi


def conv_window(kernel, stride, padding, dilation, **_) -> Window:
    """The window of a convolution with these attributes and a kh x kw kernel."""
    return Window(tuple(kernel), tuple(stride), _pad_pairs(padding), tuple(dilation))


def pool_window(kernel, stride, padding, **_) -> Window:
    (ph, pw) = padding
    return Window(tuple(kernel), tuple(stride), ((ph, ph), (pw, pw)))


def _pad_pairs(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    (pt, pb), (pl, pr) = padding
    return (int(pt), int(pb)), (int(pl), int(pr))


# ---- shape rules ------------------------------------------------------------------------


def _floats(types, name: str) -> None:
    for t in types:
        if not t.dtype.is_floating:
            raise DTypeError(f"{name} needs floating-point operands, got {t.dtype.name}")
    if len({t.dtype for t in types}) > 1:
        raise DTypeError(f"{name} operands have different dtypes; cast one of them first")


def _rank4(t, what: str) -> None:
    if t.rank != 4:
        raise ShapeError(f"{what} must have rank 4 (NCHW / OIHW), got {shape_str(t.shape)}")


def _positive_pair(value, what: str) -> None:
    if len(value) != 2 or any(int(v) < 1 for v in value):
        raise ShapeError(f"{what} must be two positive integers, got {value}")


def _check_window_attrs(attrs, pairs) -> None:
    for name in ("stride", "dilation"):
        if name in attrs:
            _positive_pair(attrs[name], name)
    flat = [p for pair in pairs for p in pair]
    if len(flat) != 4 or any(int(p) < 0 for p in flat):
        raise ShapeError(f"padding must be non-negative, got {attrs['padding']}")


def _spatial_out(win: Window, h, w) -> tuple:
    out = (win.out_size(h, 0), win.out_size(w, 1))
    if any(o is not None and o < 1 for o in out):
        raise ShapeError(
            f"the {win.kernel[0]}x{win.kernel[1]} window (dilation {win.dilation}, padding "
            f"{win.padding}) does not fit the {h}x{w} input"
        )
    return out


def _known(*dims) -> bool:
    return all(d is not None for d in dims)


def _conv_channels(x, w, groups: int) -> int | None:
    """The output channels; checks the channel counts against the groups."""
    if int(groups) < 1:
        raise ShapeError(f"groups must be a positive integer, got {groups}")
    c, (o, cg) = x.shape[1], w.shape[:2]
    if _known(c, cg) and c != cg * groups:
        raise ShapeError(
            f"conv2d input has {c} channels, but the weight {shape_str(w.shape)} with "
            f"groups={groups} expects {cg * groups}"
        )
    if o is not None and o % groups:
        raise ShapeError(f"conv2d's {o} output channels are not divisible by groups={groups}")
    return o


def _conv_infer(types, attrs):
    x, w = types
    _floats(types, "conv2d")
    _rank4(x, "conv2d input")
    _rank4(w, "conv2d weight")
    _check_window_attrs(attrs, attrs["padding"])
    o = _conv_channels(x, w, attrs["groups"])
    kh, kw = w.shape[2:]
    if not _known(kh, kw):
        return [TensorType((x.shape[0], o, None, None), x.dtype)]
    oh, ow = _spatial_out(conv_window((kh, kw), **attrs), *x.shape[2:])
    return [TensorType((x.shape[0], o, oh, ow), x.dtype)]


def _input_grad_infer(types, attrs):
    g, w = types[:2]
    _floats(types[:2], "conv2d_input_grad")
    _rank4(g, "conv2d_input_grad cotangent")
    _rank4(w, "conv2d_input_grad weight")
    _check_window_attrs(attrs, attrs["padding"])
    _positive_pair([p + 1 for p in attrs["output_padding"]], "output_padding + 1")
    o, cg = w.shape[:2]
    if _known(o, g.shape[1]) and o != g.shape[1]:
        raise ShapeError(f"conv2d_input_grad: {g.shape[1]} channels for a weight {w.shape}")
    c = None if cg is None else cg * attrs["groups"]
    if len(types) == 3:  # the input's shape is given
        like = types[2]
        _rank4(like, "conv2d_input_grad's shape operand")
        _check_forward_shape(like, w, g, attrs)
        return [TensorType((g.shape[0], c, *like.shape[2:]), g.dtype)]
    spatial = [None, None]
    if _known(*w.shape[2:]):
        win = conv_window(w.shape[2:], **attrs)
        for a, size in enumerate(g.shape[2:]):
            if size is not None:
                extra = attrs["output_padding"][a]
                spatial[a] = transposed_size(win, size, a, extra)
                if extra >= max(win.stride[a], win.dilation[a]):
                    raise ShapeError(
                        "output_padding must be smaller than the stride or the dilation, "
                        f"got {attrs['output_padding']}"
                    )
        if any(s is not None and s < 1 for s in spatial):
            raise ShapeError(f"conv_transpose2d's output would be {spatial}: too much padding")
    return [TensorType((g.shape[0], c, *spatial), g.dtype)]


def _check_forward_shape(x, w, g, attrs) -> None:
    """g must be the shape conv2d gives an input shaped like x (where both are known)."""
    (expected,) = _conv_infer([x.with_dtype(w.dtype), w], attrs)
    for got, want in zip(g.shape[2:], expected.shape[2:]):
        if _known(got, want) and got != want:
            raise ShapeError(
                f"a cotangent of shape {shape_str(g.shape)} does not fit conv2d of "
                f"{shape_str(x.shape)} by {shape_str(w.shape)} ({shape_str(expected.shape)})"
            )


def _filter_grad_infer(types, attrs):
    x, g, w = types
    _floats(types[:2], "conv2d_filter_grad")
    for t, what in ((x, "input"), (g, "cotangent"), (w, "shape operand")):
        _rank4(t, f"conv2d_filter_grad {what}")
    _check_forward_shape(x, w, g, attrs)
    return [w.with_dtype(x.dtype)]


def _pool_infer(name):
    def infer(types, attrs):
        _floats(types, name)
        x = types[0]
        _rank4(x, f"{name} input")
        for t in types[1:]:
            _rank4(t, f"{name} operand")
        _positive_pair(attrs["kernel"], "kernel size")
        _positive_pair(attrs["stride"], "stride")
        ph, pw = attrs["padding"]
        _check_window_attrs(attrs, [(ph, pw), (ph, pw)])
        if 2 * ph > attrs["kernel"][0] or 2 * pw > attrs["kernel"][1]:
            raise ShapeError(
                f"{name}: padding {attrs['padding']} must be at most half the kernel "
                f"{attrs['kernel']} (as in PyTorch)"
            )
        n, c = x.shape[:2]
        return [TensorType((n, c, *_spatial_out(pool_window(**attrs), *x.shape[2:])), x.dtype)]

    return infer


def _pool_grad_infer(name, cotangent: int, like: int):
    """The gradient of a pooling: the shape of operand `like`, after checking that operand
    `cotangent` has the pooled shape."""
    pooled = _pool_infer(name)

    def infer(types, attrs):
        _floats([types[cotangent], types[like]], name)
        (expected,) = pooled([types[like]], attrs)
        got = types[cotangent]
        _rank4(got, f"{name} cotangent")
        if any(_known(a, b) and a != b for a, b in zip(got.shape, expected.shape)):
            raise ShapeError(
                f"{name}: operand {shape_str(got.shape)} is not the pooled shape "
                f"{shape_str(expected.shape)}"
            )
        return [types[like].with_dtype(got.dtype)]

    return infer


def _max_pick_infer(types, attrs):
    x, v = types
    if any(_known(a, b) and a != b for a, b in zip(x.shape, v.shape)) or x.rank != v.rank:
        raise ShapeError(
            f"max_pool2d_pick: {shape_str(v.shape)} is not the shape of {shape_str(x.shape)}"
        )
    return _pool_infer("max_pool2d_pick")(types, attrs)


# ---- reference kernels ------------------------------------------------------------------


def windows(x: np.ndarray, win: Window, fill=0) -> np.ndarray:
    """[N, C, OH, OW, kh, kw]: each output position's taps of x padded with `fill` (a view
    of the padded copy: im2col without the copy)."""
    (pt, pb), (pl, pr) = win.padding
    padded = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    taps = sliding_window_view(padded, (win.span(0), win.span(1)), axis=(2, 3))
    (sh, sw), (dh, dw) = win.stride, win.dilation
    return taps[:, :, ::sh, ::sw, ::dh, ::dw]


def scatter_windows(taps: np.ndarray, shape, win: Window) -> np.ndarray:
    """The transpose of `windows`: add each tap's value into the input position it reads
    (col2im); taps that read padding are dropped."""
    n, c, oh, ow, kh, kw = taps.shape
    (pt, pb), (pl, pr) = win.padding
    padded = np.zeros((n, c, shape[2] + pt + pb, shape[3] + pl + pr), taps.dtype)
    (sh, sw), (dh, dw) = win.stride, win.dilation
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            padded[:, :, rows, cols] += taps[..., i, j]
    return np.ascontiguousarray(padded[:, :, pt : pt + shape[2], pl : pl + shape[3]])


def _grouped(a: np.ndarray, groups: int) -> np.ndarray:
    """Split axis 1 (channels) into (groups, channels per group)."""
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, *a.shape[2:])


def _conv_kernel(x, w, groups, **attrs):
    taps = _grouped(windows(x, conv_window(w.shape[2:], **attrs)), groups)
    out = np.einsum("ngcxyhw,gochw->ngoxy", taps, _weights(w, groups), optimize=True)
    return np.ascontiguousarray(out.reshape(x.shape[0], w.shape[0], *out.shape[3:]), x.dtype)


def _weights(w, groups):
    """[groups, out channels per group, in channels per group, kh, kw]."""
    return w.reshape(groups, w.shape[0] // groups, *w.shape[1:])


def transposed_size(win: Window, out_size: int, axis: int, extra: int) -> int:
    """The input size whose convolution has `out_size` outputs along `axis`, plus `extra`
    trailing rows the convolution ignored (conv_transpose2d's output_padding)."""
    return (out_size - 1) * win.stride[axis] + win.span(axis) - sum(win.padding[axis]) + extra


def _input_grad_kernel(g, w, *like, groups, output_padding, **attrs):
    win = conv_window(w.shape[2:], **attrs)
    taps = np.einsum(
        "ngoxy,gochw->ngcxyhw", _grouped(g, groups), _weights(w, groups), optimize=True
    )
    # (explicit sizes, not -1: NumPy cannot infer a size when the batch is empty)
    taps = taps.reshape(g.shape[0], taps.shape[1] * taps.shape[2], *taps.shape[3:])
    if like:
        spatial = like[0].shape[2:]
    else:
        spatial = [transposed_size(win, g.shape[2 + a], a, output_padding[a]) for a in (0, 1)]
    return scatter_windows(taps, (None, None, *spatial), win).astype(g.dtype, copy=False)


def _filter_grad_kernel(x, g, like, groups, **attrs):
    taps = _grouped(windows(x, conv_window(like.shape[2:], **attrs)), groups)
    dw = np.einsum("ngcxyhw,ngoxy->gochw", taps, _grouped(g, groups), optimize=True)
    return np.ascontiguousarray(dw.reshape(like.shape), x.dtype)


def max_positions(x: np.ndarray, win: Window) -> np.ndarray:
    """[N, C, OH, OW]: the flat tap index (i * kw + j) of each window's first NaN, else
    its first maximum, among the taps inside the input; -1 for a window with none."""
    taps = windows(x, win, fill=-np.inf)
    taps = taps.reshape(*taps.shape[:4], win.kernel[0] * win.kernel[1])
    inside = windows(np.ones((1, 1, *x.shape[2:]), bool), win, fill=False)
    inside = inside.reshape(1, 1, *taps.shape[2:])
    best = np.max(np.where(inside, taps, -np.inf), axis=-1, keepdims=True)
    chosen = inside & (np.isnan(taps) | (taps == best))
    return np.where(chosen.any(axis=-1), np.argmax(chosen, axis=-1), -1)


def _max_pool_kernel(x, **attrs):
    """Each window's first NaN, else its first maximum (PyTorch's, and the llvm kernel's:
    NumPy's max over a window holding -0.0 and +0.0 gives either, as its reduction order
    has it; -inf for a window with no tap inside)."""
    return _max_pool_pick_kernel(x, x, empty=-np.inf, **attrs)


def _max_pool_grad_kernel(x, g, **attrs):
    win = pool_window(**attrs)
    positions = max_positions(x, win)
    taps = np.zeros((*g.shape, win.kernel[0] * win.kernel[1]), g.dtype)
    np.put_along_axis(taps, np.maximum(positions, 0)[..., None], g[..., None], axis=-1)
    taps *= (positions >= 0)[..., None]
    return scatter_windows(taps.reshape(*g.shape, *win.kernel), x.shape, win)


def _max_pool_pick_kernel(x, v, empty=0, **attrs):
    """v's tap at each of x's window maxima (`empty` for a window with no tap inside)."""
    win = pool_window(**attrs)
    taps = windows(v, win)
    taps = taps.reshape(*taps.shape[:4], win.kernel[0] * win.kernel[1])
    positions = max_positions(x, win)
    picked = np.take_along_axis(taps, np.maximum(positions, 0)[..., None], axis=-1)[..., 0]
    return np.ascontiguousarray(np.where(positions >= 0, picked, empty), v.dtype)


def _avg_pool_kernel(x, **attrs):
    taps = windows(x, pool_window(**attrs))
    return np.ascontiguousarray(taps.mean(axis=(-2, -1)), x.dtype)


def _avg_pool_grad_kernel(g, like, **attrs):
    win = pool_window(**attrs)
    share = g / g.dtype.type(win.kernel[0] * win.kernel[1])
    taps = np.broadcast_to(share[..., None, None], (*g.shape, *win.kernel))
    return scatter_windows(taps, like.shape, win)


# ---- VJP rules --------------------------------------------------------------------------


def _conv_vjp(cts, ins, outs, attrs):
    g, (x, w) = cts[0], ins
    return [
        P.conv2d_input_grad(g, w, x, **attrs) if wants_cotangent(x) else None,
        P.conv2d_filter_grad(x, g, w, **attrs) if wants_cotangent(w) else None,
    ]


def _input_grad_vjp(cts, ins, outs, attrs):
    """input_grad is linear in g and in w: dg = conv2d(c, w), dw = filter_grad(c, g)."""
    c, (g, w) = cts[0], ins[:2]
    conv_attrs = {k: v for k, v in attrs.items() if k != "output_padding"}
    return [
        P.conv2d(c, w, **conv_attrs) if wants_cotangent(g) else None,
        P.conv2d_filter_grad(c, g, w, **conv_attrs) if wants_cotangent(w) else None,
    ] + [None] * (len(ins) - 2)


def _filter_grad_vjp(cts, ins, outs, attrs):
    """filter_grad is linear in x and in g: dx = input_grad(g, c), dg = conv2d(x, c)."""
    c, (x, g, _) = cts[0], ins
    return [
        P.conv2d_input_grad(g, c, x, **attrs) if wants_cotangent(x) else None,
        P.conv2d(x, c, **attrs) if wants_cotangent(g) else None,
        None,
    ]


def checked(infer, kernel):
    """The kernel, run after the shape rule: eager mode calls kernels without the rule,
    and a window that does not fit (or padding past half the kernel) would not make
    NumPy fail, just compute something else. float16/bfloat16 windows are summed in
    float32 and rounded once (PyTorch's rule; NumPy's einsum has no bfloat16)."""
    wide = computes_in_float32(kernel)

    def run(*arrays, **attrs):
        infer([TensorType(a.shape, as_dtype(a.dtype)) for a in arrays], attrs)
        return wide(*arrays, **attrs)

    return run


CONV_ATTRS = {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 1}
POOL_ATTRS = {"kernel": REQUIRED, "stride": REQUIRED, "padding": (0, 0)}


def _windowed(name, infer, kernel, vjp, attrs, shape_only=()):
    """Register a WINDOWED op: its kernel runs after its shape rule (`checked`)."""
    register(
        OpDef(
            name,
            infer,
            checked(infer, kernel),
            vjp,
            attrs=dict(attrs),
            traits=frozenset({WINDOWED}),
            shape_only=shape_only,
        )
    )


_windowed("conv2d", _conv_infer, _conv_kernel, _conv_vjp, CONV_ATTRS)
_windowed(
    "conv2d_input_grad",
    _input_grad_infer,
    _input_grad_kernel,
    _input_grad_vjp,
    {**CONV_ATTRS, "output_padding": (0, 0)},
    shape_only=(2,),
)
_windowed(
    "conv2d_filter_grad",
    _filter_grad_infer,
    _filter_grad_kernel,
    _filter_grad_vjp,
    CONV_ATTRS,
    shape_only=(2,),
)
_windowed(
    "max_pool2d",
    _pool_infer("max_pool2d"),
    _max_pool_kernel,
    lambda cts, ins, outs, a: [P.max_pool2d_grad(ins[0], cts[0], **a)],
    POOL_ATTRS,
)
_windowed(
    "max_pool2d_grad",  # (x, g): x decides where g goes; piecewise constant in x
    _pool_grad_infer("max_pool2d_grad", cotangent=1, like=0),
    _max_pool_grad_kernel,
    lambda cts, ins, outs, a: [None, P.max_pool2d_pick(ins[0], cts[0], **a)],
    POOL_ATTRS,
)
_windowed(
    "max_pool2d_pick",  # (x, v): v at x's maxima, the transpose of max_pool2d_grad
    _max_pick_infer,
    _max_pool_pick_kernel,
    lambda cts, ins, outs, a: [None, P.max_pool2d_grad(ins[0], cts[0], **a)],
    POOL_ATTRS,
)
_windowed(
    "avg_pool2d",
    _pool_infer("avg_pool2d"),
    _avg_pool_kernel,
    lambda cts, ins, outs, a: [P.avg_pool2d_grad(cts[0], ins[0], **a)],
    POOL_ATTRS,
)
_windowed(
    "avg_pool2d_grad",  # (g, like): linear in g
    _pool_grad_infer("avg_pool2d_grad", cotangent=0, like=1),
    _avg_pool_grad_kernel,
    lambda cts, ins, outs, a: [P.avg_pool2d(cts[0], **a), None],
    POOL_ATTRS,
    shape_only=(1,),
)
