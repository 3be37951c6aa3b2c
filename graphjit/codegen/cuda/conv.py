"""The cuda lowerings of ir/ops/conv.py: op name -> lowering(low, op).

Straightforward kernels: one thread per result element (a grid-stride loop), each summing
what it needs, so no two threads write one element and no atomics are needed. The
gradients that scatter on the CPU (conv2d_input_grad, the pooling gradients) gather here:
a thread for input position (ih, iw) visits the output windows that read it. Shapes and
window geometry are constants in the source, as in every generated kernel. float16/bfloat16
elements are loaded as float32, summed in float32 and rounded once when stored (narrow.py)."""

from __future__ import annotations

from contextlib import contextmanager

from graphjit.codegen.cuda.narrow import load, store
from graphjit.codegen.cuda.source import (
    Launch,
    Writer,
    coordinates,
    header,
    kernel_source,
    literal,
    numba_type,
    stored_literal,
)
from graphjit.codegen.layout import size_of
from graphjit.ir.core import Operation
from graphjit.ir.ops.conv import Window, conv_window, pool_window


def _grid_loop(w: Writer, total: int):
    return w.block(f"for i in range(cuda.grid(1), {total}, cuda.gridsize(1))")


def _launch(low, op: Operation, w: Writer, params, args, label: str) -> list:
    kernel = kernel_source(w, params, f"{label} {[list(v.type.shape) for v in args]}")
    total = size_of(op.result.type.shape)
    return low.launch([Launch(kernel, low.cfg.grid(total), low.cfg.block, tuple(args))])


def _inside(index: str, size: int) -> str:
    return f"{index} >= 0 and {index} < {size}"


# ---- convolutions --------------------------------------------------------------------------


def _conv_geometry(x_shape, w_shape, out_shape, attrs):
    (n, c, h, wd), (o, cg, kh, kw) = x_shape, w_shape
    return n, c, h, wd, o, cg, kh, kw, *out_shape[2:], conv_window((kh, kw), **attrs)


def op_conv2d(low, op: Operation) -> list:
    """out[n, o, oh, ow] = Σ over the group's channels and the taps inside the input."""
    x, wt, out = op.operands[0], op.operands[1], op.result
    n, c, h, wd, o, cg, kh, kw, oh, ow, win = _conv_geometry(
        x.type.shape, wt.type.shape, out.type.shape, op.attrs
    )
    og, dtype = o // op.attrs["groups"], out.type.dtype
    params = [("x", dtype), ("w", dtype), ("out", dtype)]
    w = Writer()
    with w.block(header(params)), _grid_loop(w, size_of(out.type.shape)):
        coordinates(w, "i", (n, o, oh, ow), "p")  # p0 = n, p1 = o, p2 = oh, p3 = ow
        w.line(f"acc = {literal(0, dtype)}")
        with w.block(f"for c in range({cg})"):
            w.line(f"xc = (p0 * {c} + (p1 // {og}) * {cg} + c) * {h * wd}")
            w.line(f"wc = (p1 * {cg} + c) * {kh * kw}")
            with _taps(w, win, h, wd, "p2", "p3"):
                x_at, w_at = load(f"x[xc + ih * {wd} + iw]", dtype), load("w[wc + tap]", dtype)
                w.line(f"acc = {numba_type(dtype)}(acc + {x_at} * {w_at})")
        w.line(f"out[i] = {store('acc', dtype)}")
    return _launch(low, op, w, params, [x, wt, out], "conv2d")


@contextmanager
def _taps(w: Writer, win: Window, h: int, wd: int, oh: str, ow: str):
    """Loops over the taps of output (oh, ow) that lie inside the input, defining ih, iw
    and tap (i·kw + j) for the body written inside."""
    (sh, sw), (dh, dw) = win.stride, win.dilation
    with w.block(f"for ki in range({win.kernel[0]})"):
        w.line(f"ih = {oh} * {sh} + ki * {dh} - {win.padding[0][0]}")
        with w.block(f"if {_inside('ih', h)}"), w.block(f"for kj in range({win.kernel[1]})"):
            w.line(f"iw = {ow} * {sw} + kj * {dw} - {win.padding[1][0]}")
            with w.block(f"if {_inside('iw', wd)}"):
                w.line(f"tap = ki * {win.kernel[1]} + kj")
                yield


@contextmanager
def _readers(w: Writer, win: Window, oh: int, ow: int, ih: str, iw: str):
    """Loops over the outputs (oh, ow) one of whose taps reads input (ih, iw), defining
    them and that tap for the body written inside (loop variables ri, rj: the body may
    scan a window with _taps)."""
    (sh, sw), (dh, dw) = win.stride, win.dilation
    with w.block(f"for ri in range({win.kernel[0]})"):
        w.line(f"th = {ih} + {win.padding[0][0]} - ri * {dh}")
        with (
            w.block(f"if th >= 0 and th % {sh} == 0 and th // {sh} < {oh}"),
            w.block(f"for rj in range({win.kernel[1]})"),
        ):
            w.line(f"tw = {iw} + {win.padding[1][0]} - rj * {dw}")
            with w.block(f"if tw >= 0 and tw % {sw} == 0 and tw // {sw} < {ow}"):
                w.line(f"oh = th // {sh}")
                w.line(f"ow = tw // {sw}")
                w.line(f"tap = ri * {win.kernel[1]} + rj")
                yield


def op_conv2d_input_grad(low, op: Operation) -> list:
    """dx[n, c, ih, iw] = Σ over the group's output channels and the windows reading it."""
    g, wt, dx = op.operands[0], op.operands[1], op.result
    n, c, h, wd, o, cg, kh, kw, oh, ow, win = _conv_geometry(
        dx.type.shape, wt.type.shape, g.type.shape, op.attrs
    )
    og, dtype = o // op.attrs["groups"], dx.type.dtype
    params = [("g", dtype), ("w", dtype), ("dx", dtype)]
    w = Writer()
    with w.block(header(params)), _grid_loop(w, size_of(dx.type.shape)):
        coordinates(w, "i", (n, c, h, wd), "p")
        w.line(f"acc = {literal(0, dtype)}")
        with w.block(f"for oo in range({og})"):
            w.line(f"o = (p1 // {cg}) * {og} + oo")
            w.line(f"gb = (p0 * {o} + o) * {oh * ow}")
            w.line(f"wb = (o * {cg} + p1 % {cg}) * {kh * kw}")
            with _readers(w, win, oh, ow, "p2", "p3"):
                g_at, w_at = load(f"g[gb + oh * {ow} + ow]", dtype), load("w[wb + tap]", dtype)
                w.line(f"acc = {numba_type(dtype)}(acc + {g_at} * {w_at})")
        w.line(f"dx[i] = {store('acc', dtype)}")
    return _launch(low, op, w, params, [g, wt, dx], "conv2d_input_grad")


def op_conv2d_filter_grad(low, op: Operation) -> list:
    """dw[o, c, ki, kj] = Σ over images and outputs of x at the tap times g."""
    x, g, dw = op.operands[0], op.operands[1], op.result
    n, c, h, wd, o, cg, kh, kw, oh, ow, win = _conv_geometry(
        x.type.shape, dw.type.shape, g.type.shape, op.attrs
    )
    og, dtype = o // op.attrs["groups"], dw.type.dtype
    (sh, sw), (dh, ddw) = win.stride, win.dilation
    params = [("x", dtype), ("g", dtype), ("dw", dtype)]
    w = Writer()
    with w.block(header(params)), _grid_loop(w, size_of(dw.type.shape)):
        coordinates(w, "i", (o, cg, kh, kw), "p")
        w.line(f"acc = {literal(0, dtype)}")
        with w.block(f"for n in range({n})"):
            w.line(f"xb = (n * {c} + (p0 // {og}) * {cg} + p1) * {h * wd}")
            w.line(f"gb = (n * {o} + p0) * {oh * ow}")
            with w.block(f"for oh in range({oh})"):
                w.line(f"ih = oh * {sh} + p2 * {dh} - {win.padding[0][0]}")
                with w.block(f"if {_inside('ih', h)}"), w.block(f"for ow in range({ow})"):
                    w.line(f"iw = ow * {sw} + p3 * {ddw} - {win.padding[1][0]}")
                    with w.block(f"if {_inside('iw', wd)}"):
                        x_at = load(f"x[xb + ih * {wd} + iw]", dtype)
                        g_at = load(f"g[gb + oh * {ow} + ow]", dtype)
                        w.line(f"acc = {numba_type(dtype)}(acc + {x_at} * {g_at})")
        w.line(f"dw[i] = {store('acc', dtype)}")
    return _launch(low, op, w, params, [x, g, dw], "conv2d_filter_grad")


# ---- pooling --------------------------------------------------------------------------------


def _scan_max(w: Writer, win: Window, h, wd, plane: str, oh: str, ow: str, dtype) -> None:
    """best, where: the window's first NaN, else its first maximum, and its position in
    the plane (-1 when no tap is inside the input)."""
    w.line("best = -math.inf")
    w.line("where = -1")
    with _taps(w, win, h, wd, oh, ow):
        w.line(f"t = {load(f'x[{plane} + ih * {wd} + iw]', dtype)}")
        with w.block("if where < 0 or t > best or (t != t and best == best)"):
            w.line("best = t")
            w.line(f"where = ih * {wd} + iw")


def _pool_geometry(op: Operation, source):
    n, c, h, wd = source.type.shape
    return n, c, h, wd, pool_window(**op.attrs)


def op_max_pool2d(low, op: Operation) -> list:
    """max_pool2d(x) and max_pool2d_pick(x, v): x's window maximum, or v there."""
    x, out = op.operands[0], op.result
    n, c, h, wd, win = _pool_geometry(op, x)
    oh, ow, dtype = *out.type.shape[2:], out.type.dtype
    pick = op.name == "max_pool2d_pick"
    params = [("x", dtype)] + [("v", dtype)] * pick + [("out", dtype)]
    w = Writer()
    with w.block(header(params)), _grid_loop(w, size_of(out.type.shape)):
        w.line(f"plane = (i // {oh * ow}) * {h * wd}")
        w.line(f"oh = (i // {ow}) % {oh}")
        w.line(f"ow = i % {ow}")
        _scan_max(w, win, h, wd, "plane", "oh", "ow", dtype)
        if pick:  # (v's element moved as stored)
            w.line(f"out[i] = v[plane + where] if where >= 0 else {stored_literal(0, dtype)}")
        else:
            w.line(f"peak = {numba_type(dtype)}(best)")
            w.line(f"out[i] = {store('peak', dtype)}")
    return _launch(low, op, w, params, [*op.operands, out], op.name)


def op_max_pool2d_grad(low, op: Operation) -> list:
    """dx[p] = Σ g over the windows reading p whose first maximum is p."""
    x, g, dx = op.operands[0], op.operands[1], op.result
    n, c, h, wd, win = _pool_geometry(op, x)
    oh, ow, dtype = *g.type.shape[2:], dx.type.dtype
    params = [("x", dtype), ("g", dtype), ("dx", dtype)]
    w = Writer()
    with w.block(header(params)), _grid_loop(w, size_of(dx.type.shape)):
        w.line(f"nc = i // {h * wd}")
        w.line(f"here = i % {h * wd}")
        w.line(f"plane = nc * {h * wd}")
        w.line(f"acc = {literal(0, dtype)}")
        with _readers(w, win, oh, ow, f"(here // {wd})", f"(here % {wd})"):
            _scan_max(w, win, h, wd, "plane", "oh", "ow", dtype)
            with w.block("if where == here"):
                g_at = load(f"g[nc * {oh * ow} + oh * {ow} + ow]", dtype)
                w.line(f"acc = {numba_type(dtype)}(acc + {g_at})")
        w.line(f"dx[i] = {store('acc', dtype)}")
    return _launch(low, op, w, params, [x, g, dx], "max_pool2d_grad")


def op_avg_pool2d(low, op: Operation) -> list:
    x, out = op.operands[0], op.result
    n, c, h, wd, win = _pool_geometry(op, x)
    oh, ow, dtype = *out.type.shape[2:], out.type.dtype
    params = [("x", dtype), ("out", dtype)]
    w = Writer()
    with w.block(header(params)), _grid_loop(w, size_of(out.type.shape)):
        w.line(f"plane = (i // {oh * ow}) * {h * wd}")
        w.line(f"acc = {literal(0, dtype)}")
        with _taps(w, win, h, wd, f"((i // {ow}) % {oh})", f"(i % {ow})"):
            w.line(f"acc = {numba_type(dtype)}(acc + {load(f'x[plane + ih * {wd} + iw]', dtype)})")
        count = literal(win.kernel[0] * win.kernel[1], dtype)
        w.line(f"mean = {numba_type(dtype)}(acc / {count})")
        w.line(f"out[i] = {store('mean', dtype)}")
    return _launch(low, op, w, params, [x, out], "avg_pool2d")


def op_avg_pool2d_grad(low, op: Operation) -> list:
    """dx[p] = Σ g / (kh·kw) over the windows reading p."""
    g, dx = op.operands[0], op.result
    n, c, h, wd, win = _pool_geometry(op, dx)
    oh, ow, dtype = *g.type.shape[2:], dx.type.dtype
    params = [("g", dtype), ("dx", dtype)]
    w = Writer()
    with w.block(header(params)), _grid_loop(w, size_of(dx.type.shape)):
        w.line(f"gb = (i // {h * wd}) * {oh * ow}")
        w.line(f"here = i % {h * wd}")
        w.line(f"acc = {literal(0, dtype)}")
        with _readers(w, win, oh, ow, f"(here // {wd})", f"(here % {wd})"):
            w.line(f"acc = {numba_type(dtype)}(acc + {load(f'g[gb + oh * {ow} + ow]', dtype)})")
        count = literal(win.kernel[0] * win.kernel[1], dtype)
        w.line(f"share = {numba_type(dtype)}(acc / {count})")
        w.line(f"dx[i] = {store('share', dtype)}")
    return _launch(low, op, w, params, [g, dx], "avg_pool2d_grad")


LOWERINGS: dict = {
    "conv2d": op_conv2d,
    "conv2d_input_grad": op_conv2d_input_grad,
    "conv2d_filter_grad": op_conv2d_filter_grad,
    "max_pool2d": op_max_pool2d,
    "max_pool2d_pick": op_max_pool2d,
    "max_pool2d_grad": op_max_pool2d_grad,
    "avg_pool2d": op_avg_pool2d,
    "avg_pool2d_grad": op_avg_pool2d_grad,
}
