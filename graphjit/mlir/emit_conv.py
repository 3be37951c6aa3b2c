"""Convolution and pooling (graphjit/ir/ops/conv.py, NCHW / OIHW) in upstream MLIR, with
known shapes.

Each is one `linalg.generic` whose input map reads the padded input (`tensor.pad`) at
`output * stride + tap * dilation`; groups split the channel axes (`tensor.expand_shape`)
so that every map stays affine. The transposed directions (conv2d_input_grad, the
pooling gradients) read a *spread* cotangent instead: its rows placed `stride` apart in a
tensor of fill values (one strided `tensor.insert_slice`), so input row y sums the spread
rows y + tap * dilation with the kernel flipped (a map with a negative coefficient, the
direct form, is not one IREE accepts). Max pooling's gradient and pick first find each
window's first maximum (its first NaN) among the taps inside the input, as the
interpreter does."""

from __future__ import annotations

import math

from graphjit.ir.ops.conv import Window, conv_window, pool_window
from graphjit.ir.types import TensorType, int64
from graphjit.mlir.structured import (
    affine_map,
    generic,
    map_elementwise,
    operands,
    reverse,
)
from graphjit.mlir.writer import ExportError, element_type, tensor_type, with_shape

# ---- shapes: padding, groups, spreading ----------------------------------------------------


def static(op) -> None:
    if not all(v.type.is_static for v in [*op.operands, *op.results]):
        raise ExportError(f"{op.name} exports only with known shapes: pass feed_dict")


def padded(w, x: str, t: TensorType, padding, fill) -> tuple[str, TensorType]:
    """x with ((top, bottom), (left, right)) rows and columns of `fill` around it."""
    if not any(p for pair in padding for p in pair):
        return x, t
    (pt, pb), (pl, pr) = padding
    out = with_shape(t, (*t.shape[:2], t.shape[2] + pt + pb, t.shape[3] + pl + pr))
    value = w.scalar(fill, t.dtype)
    args = ", ".join(w.fresh("i") + ": index" for _ in range(4))
    name = w.fresh("pad")
    w.emit(f"{name} = tensor.pad {x} low[0, 0, {pt}, {pl}] high[0, 0, {pb}, {pr}] {{")
    w.emit(f"^bb0({args}):")
    w.emit(f"  tensor.yield {value} : {element_type(t.dtype)}")
    w.emit(f"}} : {tensor_type(t)} to {tensor_type(out)}")
    return name, out


def split_channels(w, x: str, t: TensorType, axis: int, groups: int) -> tuple[str, TensorType]:
    """Axis `axis` (channels) as (groups, channels per group)."""
    shape = (*t.shape[:axis], groups, t.shape[axis] // groups, *t.shape[axis + 1 :])
    out = with_shape(t, shape)
    reassociation = [[i] for i in range(axis)] + [[axis, axis + 1]]
    reassociation += [[i + 1] for i in range(axis + 1, len(t.shape))]
    return w.op(
        f"tensor.expand_shape {x} {reassociation} output_shape {list(shape)} : "
        f"{tensor_type(t)} into {tensor_type(out)}"
    ), out


def merge_channels(w, x: str, t: TensorType, axis: int, out: TensorType) -> str:
    """The inverse of split_channels: axes `axis`, `axis + 1` as one."""
    reassociation = [[i] for i in range(axis)] + [[axis, axis + 1]]
    reassociation += [[i] for i in range(axis + 2, len(t.shape))]
    return w.op(
        f"tensor.collapse_shape {x} {reassociation} : {tensor_type(t)} into {tensor_type(out)}"
    )


def spread(w, g: str, tg: TensorType, win: Window, in_shape, fill) -> tuple[str, TensorType]:
    """The cotangent `g` [N, C, OH, OW] spread for a transposed window: a tensor of `fill`
    [N, C, H + span - 1, W + span - 1] holding g[oh] at oh * stride + (span - 1 - pad),
    so that input row y gathers the window rows that read it at y + flipped tap *
    dilation. Rows that land outside (they read only padding) are dropped."""
    starts, counts, firsts = [], [], []
    for axis in (0, 1):
        size, span = in_shape[axis], win.span(axis)
        stride, offset = win.stride[axis], span - 1 - win.padding[axis][0]
        length = size + span - 1
        first = -(-max(0, -offset) // stride)  # the first row at or after position 0
        end = min(tg.shape[2 + axis], (length - 1 - offset) // stride + 1)
        firsts.append(first)
        counts.append(max(0, end - first))
        starts.append(offset + first * stride)
    shape = (*tg.shape[:2], in_shape[0] + win.span(0) - 1, in_shape[1] + win.span(1) - 1)
    out = with_shape(tg, shape)
    filled = w.filled(out, list(shape), fill)
    if not all(counts):
        return filled, out
    rows = with_shape(tg, (*tg.shape[:2], *counts))
    if rows.shape != tg.shape:
        g = w.op(
            f"tensor.extract_slice {g}[0, 0, {firsts[0]}, {firsts[1]}] "
            f"{list(rows.shape)} [1, 1, 1, 1] : {tensor_type(tg)} to {tensor_type(rows)}"
        )
    placed = w.op(
        f"tensor.insert_slice {g} into {filled}[0, 0, {starts[0]}, {starts[1]}] "
        f"{list(rows.shape)} [1, 1, {win.stride[0]}, {win.stride[1]}] : {tensor_type(rows)} "
        f"into {tensor_type(out)}"
    )
    return placed, out


def tap(out_loop: str, tap_loop: str, stride: int = 1, dilation: int = 1) -> str:
    """The affine expression of the input row a window tap reads."""
    scaled = out_loop if stride == 1 else f"{out_loop} * {stride}"
    return f"{scaled} + {tap_loop if dilation == 1 else f'{tap_loop} * {dilation}'}"


def multiply_add(w, a: str, b: str, acc: str, dtype) -> str:
    ty = element_type(dtype)
    return w.op(f"arith.addf {acc}, {w.op(f'arith.mulf {a}, {b} : {ty}')} : {ty}")


# ---- convolution ---------------------------------------------------------------------------


def conv_attrs(op) -> dict:
    return {k: op.attrs[k] for k in ("stride", "padding", "dilation")}


def emit_conv2d(w, op):
    """out[n, g, o, y, x] = sum over c, i, j of x[n, g, c, y*s + i*d, x*s + j*d] *
    w[g, o, c, i, j] (the input padded, the channels split into groups)."""
    static(op)
    (x, tx), (k, tk) = operands(w, op)
    groups, out = op.attrs["groups"], op.result.type
    win = conv_window(tk.shape[2:], **conv_attrs(op))
    x, tx = split_channels(w, *padded(w, x, tx, win.padding, 0), 1, groups)
    k, tk = split_channels(w, k, tk, 0, groups)
    grouped = with_shape(out, (out.shape[0], groups, out.shape[1] // groups, *out.shape[2:]))
    (sh, sw), (dh, dw) = win.stride, win.dilation
    maps = [  # loops: n g o y x | c i j
        affine_map(8, ["d0", "d1", "d5", tap("d3", "d6", sh, dh), tap("d4", "d7", sw, dw)]),
        affine_map(8, ["d1", "d2", "d5", "d6", "d7"]),
        affine_map(8, ["d0", "d1", "d2", "d3", "d4"]),
    ]
    result = _contract(w, [(x, tx), (k, tk)], grouped, maps, 5)
    return [merge_channels(w, result, grouped, 1, out)]


def _contract(w, inputs, out: TensorType, maps, parallel: int) -> str:
    """A sum of products over the loops after the first `parallel`."""
    init = w.filled(out, list(out.shape), 0)
    iterators = ["parallel"] * parallel + ["reduction"] * 3

    def body(w, s):
        return [multiply_add(w, s[0], s[1], s[2], out.dtype)]

    return generic(w, inputs, [(init, out)], maps, iterators, body)[0]


def emit_conv2d_filter_grad(w, op):
    """dw[g, o, c, i, j] = sum over n, y, x of x[n, g, c, y*s + i*d, x*s + j*d] *
    g[n, g, o, y, x]."""
    static(op)
    (x, tx), (g, tg), (_, tk) = operands(w, op)
    groups, out = op.attrs["groups"], op.result.type
    win = conv_window(tk.shape[2:], **conv_attrs(op))
    x, tx = split_channels(w, *padded(w, x, tx, win.padding, 0), 1, groups)
    g, tg = split_channels(w, g, tg, 1, groups)
    grouped = with_shape(out, (groups, out.shape[0] // groups, *out.shape[1:]))
    (sh, sw), (dh, dw) = win.stride, win.dilation
    maps = [  # loops: g o c i j | n y x
        affine_map(8, ["d5", "d0", "d2", tap("d6", "d3", sh, dh), tap("d7", "d4", sw, dw)]),
        affine_map(8, ["d5", "d0", "d1", "d6", "d7"]),
        affine_map(8, ["d0", "d1", "d2", "d3", "d4"]),
    ]
    result = _contract(w, [(x, tx), (g, tg)], grouped, maps, 5)
    return [merge_channels(w, result, grouped, 0, out)]


def emit_conv2d_input_grad(w, op):
    """conv_transpose2d: dx[n, g, c, y, x] = sum over o, i, j of spread(g)[n, g, o,
    y + i*d, x + j*d] * flipped w[g, o, c, i, j]."""
    static(op)
    (g, tg), (k, tk) = operands(w, op)[:2]
    groups, out = op.attrs["groups"], op.result.type
    win = conv_window(tk.shape[2:], **conv_attrs(op))
    g, tg = split_channels(w, *spread(w, g, tg, win, out.shape[2:], 0), 1, groups)
    k, tk = split_channels(w, reverse(w, k, tk, [2, 3]), tk, 0, groups)
    grouped = with_shape(out, (out.shape[0], groups, out.shape[1] // groups, *out.shape[2:]))
    dh, dw = win.dilation
    maps = [  # loops: n g c y x | o i j
        affine_map(8, ["d0", "d1", "d5", tap("d3", "d6", 1, dh), tap("d4", "d7", 1, dw)]),
        affine_map(8, ["d1", "d5", "d2", "d6", "d7"]),
        affine_map(8, ["d0", "d1", "d2", "d3", "d4"]),
    ]
    result = _contract(w, [(g, tg), (k, tk)], grouped, maps, 5)
    return [merge_channels(w, result, grouped, 1, out)]


# ---- pooling -------------------------------------------------------------------------------

WINDOW_LOOPS = 6  # n c y x | i j


def window_map(win: Window) -> str:
    (sh, sw) = win.stride
    return affine_map(WINDOW_LOOPS, ["d0", "d1", tap("d2", "d4", sh), tap("d3", "d5", sw)])


OUTPUT_MAP = affine_map(WINDOW_LOOPS, ["d0", "d1", "d2", "d3"])
SPREAD_MAP = affine_map(WINDOW_LOOPS, ["d0", "d1", "d2 + d4", "d3 + d5"])
ITERATORS = ["parallel"] * 4 + ["reduction"] * 2


def over_windows(w, win: Window, inputs: list, maps: list, outs: list, body) -> list:
    """A generic over n c y x | i j with outputs on n c y x. The tap loops i, j appear
    in no map alone, so a kernel-shaped operand (never read: linalg's pooling ops take
    one too) gives their extent; `body` sees the scalars of `inputs` and `outs` only."""
    kernel_t = TensorType(win.kernel, outs[0][1].dtype)
    kernel = w.empty(kernel_t, list(win.kernel))
    maps = maps + [affine_map(WINDOW_LOOPS, ["d4", "d5"])] + [OUTPUT_MAP] * len(outs)
    n = len(inputs)
    return generic(
        w,
        inputs + [(kernel, kernel_t)],
        outs,
        maps,
        ITERATORS,
        lambda w, s: body(w, s[:n] + s[n + 1 :]),
    )


def emit_max_pool2d(w, op):
    """The maximum of each window (NaN if it holds one), the padding -inf."""
    static(op)
    (x, tx), out = operands(w, op)[0], op.result.type
    win = pool_window(**op.attrs)
    x, tx = padded(w, x, tx, win.padding, -math.inf)
    init = w.filled(out, list(out.shape), -math.inf)
    ty = element_type(out.dtype)

    def body(w, s):
        return [w.op(f"arith.maximumf {s[1]}, {s[0]} : {ty}")]

    return over_windows(w, win, [(x, tx)], [window_map(win)], [(init, out)], body)


def emit_avg_pool2d(w, op):
    """The sum of each window (padding as zeros) over the kernel's size."""
    static(op)
    (x, tx), out = operands(w, op)[0], op.result.type
    win = pool_window(**op.attrs)
    x, tx = padded(w, x, tx, win.padding, 0)
    init = w.filled(out, list(out.shape), 0)
    ty = element_type(out.dtype)

    def body(w, s):
        return [w.op(f"arith.addf {s[1]}, {s[0]} : {ty}")]

    (sums,) = over_windows(w, win, [(x, tx)], [window_map(win)], [(init, out)], body)
    count = w.scalar(win.kernel[0] * win.kernel[1], out.dtype)
    return [map_elementwise(w, [(sums, out)], out, lambda w, s: _divide(w, s[0], count, ty))]


def _divide(w, a, b, ty) -> str:
    return w.op(f"arith.divf {a}, {b} : {ty}")


def emit_avg_pool2d_grad(w, op):
    """Each window's cotangent over the kernel's size, added to every input it covers."""
    static(op)
    (g, tg), out = operands(w, op)[0], op.result.type
    win = pool_window(**op.attrs)
    ty = element_type(out.dtype)
    count = w.scalar(win.kernel[0] * win.kernel[1], out.dtype)
    share = map_elementwise(w, [(g, tg)], tg, lambda w, s: _divide(w, s[0], count, ty))
    spread_g, ts = spread(w, share, tg, win, out.shape[2:], 0)
    init = w.filled(out, list(out.shape), 0)

    def body(w, s):
        return [w.op(f"arith.addf {s[1]}, {s[0]} : {ty}")]

    return over_windows(w, win, [(spread_g, ts)], [SPREAD_MAP], [(init, out)], body)


def first_maxima(w, x, tx, win: Window, shape, pick=None) -> list:
    """[N, C, OH, OW] int64: the flat tap (i * kw + j) of each window's first NaN, else
    its first maximum, among the taps inside the input; with `pick` (an (ssa, type)
    tensor shaped like x), also pick's value at that tap."""
    kw = win.kernel[1]
    (ph, pw), size = (win.padding[0][0], win.padding[1][0]), tx.shape[2:]
    inputs = [padded(w, x, tx, win.padding, 0)]
    if pick is not None:
        inputs.append(padded(w, *pick, win.padding, 0))
    best_t = TensorType(shape, tx.dtype)
    where_t = TensorType(shape, int64)
    outs = [
        (w.filled(best_t, list(shape), 0), best_t),
        (w.filled(where_t, list(shape), -1), where_t),
    ]
    if pick is not None:
        outs.append((w.filled(best_t, list(shape), 0), best_t))
    ty = element_type(tx.dtype)

    def body(w, s):
        value, best, where = s[0], s[len(inputs)], s[len(inputs) + 1]
        y, x_, i, j = (w.op(f"linalg.index {d} : index") for d in (2, 3, 4, 5))
        inside = _inside(w, win, y, i, ph, size[0], 0)
        inside = w.op(f"arith.andi {inside}, {_inside(w, win, x_, j, pw, size[1], 1)} : i1")
        none_yet = w.op(f"arith.cmpi eq, {where}, {w.scalar(-1, int64)} : i64")
        best_number = w.op(f"arith.cmpf ord, {best}, {best} : {ty}")
        beats = w.op(f"arith.cmpf ugt, {value}, {best} : {ty}")  # greater, or value NaN
        beats = w.op(f"arith.andi {best_number}, {beats} : i1")
        take = w.op(f"arith.andi {inside}, {w.op(f'arith.ori {none_yet}, {beats} : i1')} : i1")
        flat = w.op(f"arith.addi {w.op(f'arith.muli {i}, {w.index(kw)} : index')}, {j} : index")
        flat = w.op(f"arith.index_cast {flat} : index to i64")
        results = [
            w.op(f"arith.select {take}, {value}, {best} : {ty}"),
            w.op(f"arith.select {take}, {flat}, {where} : i64"),
        ]
        if pick is not None:
            results.append(w.op(f"arith.select {take}, {s[1]}, {s[-1]} : {ty}"))
        return results

    return over_windows(w, win, inputs, [window_map(win)] * len(inputs), outs, body)[1:]


def _inside(w, win: Window, out_index, tap_index, pad: int, size: int, axis: int) -> str:
    """i1: the input row this tap reads (out * stride + tap - pad) lies in [0, size)."""
    row = w.op(f"arith.muli {out_index}, {w.index(win.stride[axis])} : index")
    row = w.op(f"arith.addi {row}, {tap_index} : index")
    low = w.op(f"arith.cmpi sge, {row}, {w.index(pad)} : index")
    high = w.op(f"arith.cmpi slt, {row}, {w.index(size + pad)} : index")
    return w.op(f"arith.andi {low}, {high} : i1")


def emit_max_pool2d_pick(w, op):
    """v at each window's first maximum of x."""
    static(op)
    (x, tx), picked = operands(w, op)
    win = pool_window(**op.attrs)
    return [first_maxima(w, x, tx, win, op.result.type.shape, pick=picked)[1]]


def emit_max_pool2d_grad(w, op):
    """Each window's cotangent added to the input at its first maximum: input (y, x)
    sums, over the window taps that can read it, the spread cotangent where the spread
    first-maximum tap is that tap."""
    static(op)
    (x, tx), (g, tg) = operands(w, op)
    out = op.result.type
    win = pool_window(**op.attrs)
    (where,) = first_maxima(w, x, tx, win, tg.shape)
    where_t = TensorType(tg.shape, int64)
    spread_g, ts = spread(w, g, tg, win, out.shape[2:], 0)
    spread_where, tw = spread(w, where, where_t, win, out.shape[2:], -1)
    (kh, kw), ty = win.kernel, element_type(out.dtype)

    def body(w, s):
        value, where, acc = s
        i, j = (w.op(f"linalg.index {d} : index") for d in (4, 5))
        row = w.op(f"arith.subi {w.index(kh - 1)}, {i} : index")  # the window's own tap
        column = w.op(f"arith.subi {w.index(kw - 1)}, {j} : index")
        flat = w.op(f"arith.muli {row}, {w.index(kw)} : index")
        flat = w.op(f"arith.addi {flat}, {column} : index")
        flat = w.op(f"arith.index_cast {flat} : index to i64")
        match = w.op(f"arith.cmpi eq, {where}, {flat} : i64")
        addend = w.op(f"arith.select {match}, {value}, {w.scalar(-0.0, out.dtype)} : {ty}")
        return [w.op(f"arith.addf {acc}, {addend} : {ty}")]

    init = w.filled(out, list(out.shape), 0)
    inputs = [(spread_g, ts), (spread_where, tw)]
    return over_windows(w, win, inputs, [SPREAD_MAP] * 2, [(init, out)], body)


EMITTERS: dict = {
    "conv2d": emit_conv2d,
    "conv2d_filter_grad": emit_conv2d_filter_grad,
    "conv2d_input_grad": emit_conv2d_input_grad,
    "max_pool2d": emit_max_pool2d,
    "max_pool2d_grad": emit_max_pool2d_grad,
    "max_pool2d_pick": emit_max_pool2d_pick,
    "avg_pool2d": emit_avg_pool2d,
    "avg_pool2d_grad": emit_avg_pool2d_grad,
}
