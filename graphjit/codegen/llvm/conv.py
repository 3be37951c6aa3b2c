"""The llvm lowerings of ir/ops/conv.py: op name -> lowering(low, op).

Convolutions go to BLAS, one image at a time: im2col copies the image's taps into a
scratch matrix [C·kh·kw, OH·OW] in the arena (never the native stack), and one gemm per
group multiplies the weights [O/groups, C/groups·kh·kw] by its rows. An image's matrix
(under 1 MiB for the 28x28 benchmark) stays in cache between the copy and the gemm, which
a whole-batch matrix (nine times the input) would not. The input gradient is the
transpose: a gemm with the weights transposed, then col2im adds the taps back into the
image; the filter gradient accumulates one gemm per image into the weights' gradient (for
a batch of small images, each block of images into partial sums of its own, then the
blocks in order: the same bits on any machine and number of threads).
A 1x1 convolution with stride 1 and no padding uses the image itself as the matrix.

im2col and col2im are functions over a range of channels, a loop over the kernel's rows
and its columns unrolled, so the inner loops are plain strided copies that LLVM
vectorises, of trip counts known when compiling at fixed sizes. A kernel row's range of
outputs inside the input is computed when the code runs; an image's sizes of the run
(ir/symbolic.py) reach the loops through `dims`, each tap's range clamped to them. A
large image's im2col and products split over threads (codegen/llvm/parallel.py, blas.py);
a batch of small ones runs in blocks of images on the threads (_image_blocks). Pooling
splits every image's planes at once and scans each window's interior unchecked, its
border checked. Every image and plane loop polls for Ctrl-C."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

from llvmlite import ir

from graphjit.codegen.llvm import interrupt, sizes, small_gemm
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.blas import SPLIT_MIN_MACS, call_gemm, single_threaded_gemm, split_matmul
from graphjit.codegen.llvm.loops import for_range
from graphjit.codegen.llvm.parallel import call_split
from graphjit.ir.core import Operation, Value
from graphjit.ir.ops.conv import Window, conv_window, pool_window
from graphjit.ir.symbolic import hint, is_symbolic


@dataclass(frozen=True)
class ConvShape:
    """One convolution's sizes: input [N, C, H, W], weights [O, C/groups, kh, kw], output
    [N, O, OH, OW]."""

    n: int
    c: int
    h: int
    w: int
    o: int
    oh: int
    ow: int
    groups: int
    win: Window

    @property
    def taps(self) -> int:
        return self.win.kernel[0] * self.win.kernel[1]

    @property
    def rows_per_group(self) -> int:  # K of each group's gemm
        return self.c // self.groups * self.taps

    @property
    def pixels(self) -> int:  # OH·OW: the columns of the im2col matrix
        return self.oh * self.ow

    @property
    def pointwise(self) -> bool:
        """A 1x1 convolution reading every pixel: the image is its own im2col matrix."""
        win = self.win
        return win.kernel == (1, 1) and win.stride == (1, 1) and win.padding == ((0, 0), (0, 0))


def _conv_shape(x: Value, w: Value, out: Value, attrs) -> ConvShape:
    n, c, h, wd = x.type.shape
    o, _, kh, kw = w.type.shape
    oh, ow = out.type.shape[2:]
    return ConvShape(n, c, h, wd, o, oh, ow, attrs["groups"], conv_window((kh, kw), **attrs))


# ---- helpers ------------------------------------------------------------------------------


def _offset(b: ir.IRBuilder, ptr: ir.Value, index, scale: int = 1) -> ir.Value:
    """ptr + index·scale elements (index an i64 value or an int)."""
    if not isinstance(index, ir.Value):
        if not is_symbolic(index * scale) and not index * scale:
            return ptr
        return b.gep(ptr, [sizes.i64(index * scale, b)])
    if not is_symbolic(scale) and scale == 1:
        return b.gep(ptr, [index])
    return b.gep(ptr, [b.mul(index, sizes.i64(scale, b))])


def _zero(b: ir.IRBuilder, ptr: ir.Value, elements, dtype) -> None:
    """elements zeros at ptr: an int, a size of the run or an i64 value (0: no bytes)."""
    if isinstance(elements, ir.Value) or is_symbolic(elements) or elements > 0:
        memset = b.module.declare_intrinsic("llvm.memset", [T.I8P, T.I64])
        size = b.mul(sizes.i64(elements, b), ir.Constant(T.I64, dtype.np.itemsize))
        b.call(memset, [b.bitcast(ptr, T.I8P), ir.Constant(T.I8, 0), size, ir.Constant(T.I1, 0)])


def _channel_function(low, name: str, dtype, buffers: int):
    """void name(T* noalias b0, ..., i64* dims, i64 lo, i64 hi): a kernel over channels
    [lo, hi) of one image, in the form call_split runs on several threads; `dims` the
    run's sizes (sizes.py: an image's sizes may be sizes of the run)."""
    ptr = T.storage_type(dtype).as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [ptr] * buffers + [T.I64.as_pointer(), T.I64, T.I64])
    fn = ir.Function(low.module, fnty, f"{name}{low.kernels}")
    low.kernels += 1
    fn.linkage = "internal"
    for arg in fn.args[:buffers]:
        arg.add_attribute("noalias")
    sizes.register(fn, fn.args[buffers])
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    return fn, b


@contextmanager
def _taps(b: ir.IRBuilder, shape: ConvShape):
    """`with _taps(b, shape) as taps:` a loop over the kernel's rows i (an i64 value); taps
    yields, for each column j of the kernel (unrolled), (k = i·kw + j, i, j, rows [lo, hi)
    of outputs inside the input, columns likewise; all but j and the columns i64 values).
    The rows in a loop rather than every tap unrolled: kw copies of the body for LLVM to
    optimise, not kh·kw (a 5x5 kernel's im2col was 1311 lines of IR, a third of LeNet's
    training step, and about as much of its compile); the columns unrolled, so that the
    innermost loops (along a row) keep trip counts known when compiling."""
    win = shape.win
    with for_range(b, win.kernel[0], "i") as i:
        rows = _tap_outputs(b, win, 0, i, shape.h, shape.oh)
        first = b.mul(i, ir.Constant(T.I64, win.kernel[1]))
        yield [
            (
                b.add(first, ir.Constant(T.I64, j)),
                i,
                j,
                rows,
                _valid_outputs(b, win, 1, j, shape.w, shape.ow),
            )
            for j in range(win.kernel[1])
        ]


def _tap_offset(b: ir.IRBuilder, win: Window, axis: int, tap: ir.Value) -> ir.Value:
    """Window.offset for a tap known when the code runs."""
    scaled = b.mul(tap, ir.Constant(T.I64, win.dilation[axis]))
    return b.sub(scaled, ir.Constant(T.I64, win.padding[axis][0]))


def _tap_outputs(b: ir.IRBuilder, win: Window, axis: int, tap: ir.Value, in_size, out_size):
    """Window.valid_outputs for a tap known when the code runs: [lo, hi), with lo =
    min(out, max(0, ceil(-off / s))) and hi = min(out, max(lo, ceil((in - off) / s))).
    Each ceiling is a truncating division of n + s - 1: exact for n > 0, and otherwise at
    most 0, which the max with 0 (or with lo >= 0) turns into the true bound."""
    stride = ir.Constant(T.I64, win.stride[axis])
    off = _tap_offset(b, win, axis, tap)
    out = sizes.i64(out_size, b)

    def ceil_div(n):
        return b.sdiv(b.add(n, ir.Constant(T.I64, win.stride[axis] - 1)), stride)

    lo = _at_most(b, out, _at_least(b, ir.Constant(T.I64, 0), ceil_div(b.neg(off))))
    hi = _at_most(b, out, _at_least(b, lo, ceil_div(b.sub(sizes.i64(in_size, b), off))))
    return lo, hi


def _valid_outputs(b: ir.IRBuilder, win: Window, axis: int, tap: int, in_size, out_size):
    """Window.valid_outputs as i64 values; for sizes of the run its minimum and maximum
    are taken when it runs (taken while compiling, they would guard each parity of a
    strided window's sizes: a compile for each)."""
    if not (is_symbolic(in_size) or is_symbolic(out_size)):
        return tuple(ir.Constant(T.I64, n) for n in win.valid_outputs(axis, tap, in_size, out_size))

    def least(x, y):
        return _at_most(b, sizes.i64(x, b), sizes.i64(y, b))

    def most(x, y):
        return _at_least(b, sizes.i64(x, b), sizes.i64(y, b))

    return win.valid_outputs(axis, tap, in_size, out_size, least, most)


def _at_most(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", y, x), y, x)


def _at_least(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), y, x)


def _im2col_function(low, shape: ConvShape, dtype):
    """col[(c·kh + i)·kw + j, oh·OW + ow] = x[c, oh·sh + i·dh - pt, ow·sw + j·dw - pl], zero
    where that is padding; over channels [lo, hi) of one image."""
    fn, b = _channel_function(low, "im2col", dtype, 2)
    x, col, _, lo, hi = fn.args
    win, hw, pixels = shape.win, shape.h * shape.w, shape.pixels
    ow_size, oh_size = sizes.i64(shape.ow, b), sizes.i64(shape.oh, b)
    with for_range(b, hi, "c", start=lo) as c, _taps(b, shape) as taps:
        plane = _offset(b, x, c, hw)
        for k, i, j, (r0, r1), (c0, c1) in taps:
            row = _offset(b, col, b.add(b.mul(c, ir.Constant(T.I64, shape.taps)), k), pixels)
            _zero(b, row, b.mul(r0, ow_size), dtype)
            _zero(b, _offset(b, row, r1, shape.ow), b.mul(b.sub(oh_size, r1), ow_size), dtype)
            with for_range(b, r1, "oh", start=r0) as oh:
                dst = _offset(b, row, oh, shape.ow)
                ih = b.add(b.mul(oh, ir.Constant(T.I64, win.stride[0])), _tap_offset(b, win, 0, i))
                src = _offset(b, _offset(b, plane, ih, shape.w), win.offset(1, j))
                _zero(b, dst, c0, dtype)
                _zero(b, _offset(b, dst, c1), b.sub(ow_size, c1), dtype)
                with for_range(b, c1, "ow", start=c0) as ow:
                    value = b.load(_offset(b, src, ow, win.stride[1]))
                    b.store(value, b.gep(dst, [ow]))
    b.ret_void()
    return fn


def _col2im_function(low, shape: ConvShape, dtype):
    """The transpose of im2col: x[c] = 0, then each tap's column added at the input
    position it was read from; over channels [lo, hi) of one image."""
    fn, b = _channel_function(low, "col2im", dtype, 2)
    col, x, _, lo, hi = fn.args
    win, hw, pixels = shape.win, shape.h * shape.w, shape.pixels
    with for_range(b, hi, "c", start=lo) as c:
        plane = _offset(b, x, c, hw)
        _zero(b, plane, hw, dtype)
        with _taps(b, shape) as taps:
            for k, i, j, (r0, r1), (c0, c1) in taps:  # (in order: the same bits)
                row = _offset(b, col, b.add(b.mul(c, ir.Constant(T.I64, shape.taps)), k), pixels)
                with for_range(b, r1, "oh", start=r0) as oh:
                    src = _offset(b, row, oh, shape.ow)
                    ih = b.add(
                        b.mul(oh, ir.Constant(T.I64, win.stride[0])), _tap_offset(b, win, 0, i)
                    )
                    dst = _offset(b, _offset(b, plane, ih, shape.w), win.offset(1, j))
                    with for_range(b, c1, "ow", start=c0) as ow:
                        at = _offset(b, dst, ow, win.stride[1])
                        b.store(b.fadd(b.load(at), b.load(b.gep(src, [ow]))), at)
    b.ret_void()
    return fn


def _gemm(low, dtype, pointers, sizes, transposed, accumulate=False) -> None:
    """C = op(A)·op(B) (+ C), row-major; an empty product leaves C to the caller. As a
    matmul's: split into blocks on graphjit's threads when large (blas.split_matmul), else
    one single-threaded call. Never NumPy's threaded OpenBLAS, whose threads spin waiting
    for each other: with one other busy process they took 56% of conv2d's time."""
    if not all(sizes):
        return
    scaling = (1.0, accumulate)

    def direct():
        low.gemm(dtype, *pointers, sizes, transposed, scaling)

    split_matmul(low, dtype.name, pointers, (), ((), ()), sizes, transposed, scaling, direct)


def _per_group(low, count: int):
    """Loop over the groups (a runtime loop: depthwise convolutions have hundreds)."""
    return for_range(low.b, count, "group")


# ---- convolutions --------------------------------------------------------------------------

# Images whose products are too small to split (under blas.SPLIT_MIN_MACS: LeNet's 16x100
# outputs of 150 taps) ran one after another on one thread, each product a BLAS call too
# small to share: such a batch runs as IMAGE_BLOCKS blocks of images on graphjit's threads,
# each block with an im2col matrix of its own. (LeNet's second convolution, 128 images:
# 0.74 ms on one thread.) A fixed count, not one per core: the filter gradient sums by
# blocks, and its bits must not depend on the machine.
IMAGE_BLOCKS = 16


def _small_image_gemm(shape: ConvShape, dtype, macs):
    """The single-threaded gemm for images whose product of `macs` multiply-adds is too
    small to split, where there are several such images; else None."""
    if dtype.name not in ("float32", "float64") or hint(macs) >= SPLIT_MIN_MACS:
        return None
    if not is_symbolic(shape.n) and shape.n < 2:
        return None
    return single_threaded_gemm(dtype.name, (1, 1, 1))


def _image_blocks(low, shape: ConvShape, dtype, blas, buffers, own, per_image, begin=None):
    """per_image(b, gemm, buffers, image, scratch, dims) for every image, in IMAGE_BLOCKS
    blocks of images on graphjit's threads: `buffers` the task's own pointers to the
    given ones, `scratch` the `own` elements of scratch the block owns (its im2col
    matrix, say), after begin(b, scratch) at the block's start; gemm(pointers, sizes,
    transposed, accumulate=False) a product on the calling thread (`blas`). Returns the
    blocks' scratch, one block after another (the caller's pointer)."""
    ptr = T.storage_type(dtype).as_pointer()
    arguments = [ptr] * (len(buffers) + 1) + [T.I64.as_pointer(), T.I64, T.I64]
    fn = ir.Function(low.module, ir.FunctionType(ir.VoidType(), arguments), f"images{low.kernels}")
    low.kernels += 1
    fn.linkage = "internal"
    *pointers, scratch, dims, lo, hi = fn.args
    sizes.register(fn, dims)
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)

    def local(typ):
        with b.goto_block(entry):
            b.position_at_start(entry)
            return b.alloca(typ)

    def gemm(pointers, sizes_, transposed, accumulate=False):
        scaling = (1.0, accumulate)
        if small_gemm.takes(dtype.name, sizes_, transposed):  # (no BLAS call: Lowering.gemm's)
            small_gemm.call_small_gemm(b, dtype.name, pointers, sizes_, transposed, scaling)
            return
        call_gemm(b, local, dtype.name, pointers, sizes_, transposed, scaling, None, blas, dims)

    poll = interrupt.returning_poll(b, low.module)
    count = sizes.i64(shape.n, b)
    with for_range(b, hi, "images", start=lo) as block:
        first = b.udiv(b.mul(count, block), _i64(IMAGE_BLOCKS))
        end = b.udiv(b.mul(count, b.add(block, _i64(1))), _i64(IMAGE_BLOCKS))
        mine = _offset(b, scratch, block, own)
        if begin is not None:
            begin(b, mine)
        with for_range(b, end, "image", start=first) as image:
            poll(b)
            per_image(b, gemm, pointers, image, mine, dims)
    b.ret_void()
    (space,) = low.scratch([IMAGE_BLOCKS * own * dtype.np.itemsize])
    space = T.typed_pointer(low.b, space, dtype)
    work = shape.n * shape.o * shape.pixels * shape.rows_per_group
    call_split(low, fn, [*buffers, space, low.dims], IMAGE_BLOCKS, work, IMAGE_BLOCKS)
    low.poll_interrupt()
    return space


def _image_matrix(b: ir.IRBuilder, shape: ConvShape, im2col, x, image, scratch, dims):
    """Image `image`'s im2col matrix, filled into `scratch` on the calling thread (or the
    image itself, for a pointwise convolution)."""
    matrix = _offset(b, x, image, shape.c * shape.h * shape.w)
    if im2col is None:
        return matrix
    b.call(im2col, [matrix, scratch, dims, _i64(0), sizes.i64(shape.c, b)])
    return scratch


def _matrix(shape: ConvShape, im2col) -> int:
    """The elements of an image's im2col matrix, where there is one (0: pointwise)."""
    return shape.c * shape.taps * shape.pixels if im2col is not None else 0


def _i64(n: int) -> ir.Constant:
    return ir.Constant(T.I64, n)


def _columns(low, shape: ConvShape, dtype):
    """(the im2col function, its scratch matrix), or (None, None) for a pointwise conv."""
    if shape.pointwise:
        return None, None
    size = shape.c * shape.taps * shape.pixels
    (scratch,) = low.scratch([size * dtype.np.itemsize])
    return _im2col_function(low, shape, dtype), T.typed_pointer(low.b, scratch, dtype)


def _fill_columns(low, shape, im2col, col, image):
    """The image's im2col matrix: col filled from it, or the image itself (pointwise)."""
    if im2col is None:
        return image
    work = shape.c * shape.taps * shape.pixels
    call_split(low, im2col, [image, col, low.dims], shape.c, work)
    return col


def op_conv2d(low, op: Operation) -> None:
    """out[n, group] = w[group] @ im2col(x[n])[group rows], one gemm per image and group."""
    x, w, out = op.operands[0], op.operands[1], op.result
    shape, dtype, b = _conv_shape(x, w, out, op.attrs), out.type.dtype, low.b
    og, k = shape.o // shape.groups, shape.rows_per_group
    im2col, col = _columns(low, shape, dtype)
    xp, wp, outp = low.typed(x), low.typed(w), low.typed(out)
    if not k:  # no input channels: the sum of nothing
        _zero(b, outp, shape.n * shape.o * shape.pixels, dtype)
        return
    blas = _small_image_gemm(shape, dtype, og * k * shape.pixels)
    if blas is not None:

        def forward(b, gemm, buffers, image, scratch, dims):
            xp, wp, outp = buffers
            matrix = _image_matrix(b, shape, im2col, xp, image, scratch, dims)
            image_out = _offset(b, outp, image, shape.o * shape.pixels)
            with for_range(b, shape.groups, "group") as g:
                pointers = (
                    _offset(b, wp, g, og * k),
                    _offset(b, matrix, g, k * shape.pixels),
                    _offset(b, image_out, g, og * shape.pixels),
                )
                gemm(pointers, (og, shape.pixels, k), (False, False))

        _image_blocks(low, shape, dtype, blas, [xp, wp, outp], _matrix(shape, im2col), forward)
        return
    with for_range(b, shape.n, "image") as n:
        matrix = _fill_columns(
            low, shape, im2col, col, _offset(b, xp, n, shape.c * shape.h * shape.w)
        )
        image_out = _offset(b, outp, n, shape.o * shape.pixels)
        with _per_group(low, shape.groups) as g:
            a = _offset(b, wp, g, og * k)
            rows = _offset(b, matrix, g, k * shape.pixels)
            _gemm(
                low,
                dtype,
                (a, rows, _offset(b, image_out, g, og * shape.pixels)),
                (og, shape.pixels, k),
                (False, False),
            )
        low.poll_interrupt()


def op_conv2d_input_grad(low, op: Operation) -> None:
    """dx[n] = col2im(wᵀ @ g[n]) per group (the gemm writes straight into dx[n] when the
    convolution is pointwise)."""
    g, w, dx = op.operands[0], op.operands[1], op.result
    shape, dtype, b = _conv_shape(dx, w, g, op.attrs), dx.type.dtype, low.b
    og, k = shape.o // shape.groups, shape.rows_per_group
    gp, wp, dxp = low.typed(g), low.typed(w), low.typed(dx)
    image_size = shape.c * shape.h * shape.w
    if shape.pointwise:
        col2im, col = None, None
    else:
        (scratch,) = low.scratch([shape.c * shape.taps * shape.pixels * dtype.np.itemsize])
        col2im, col = _col2im_function(low, shape, dtype), T.typed_pointer(b, scratch, dtype)
    if not og:  # no output channels: nothing flows back
        _zero(b, dxp, shape.n * image_size, dtype)
        return
    blas = _small_image_gemm(shape, dtype, og * k * shape.pixels)
    if blas is not None:

        def backward(b, gemm, buffers, image, scratch, dims):
            gp, wp, dxp = buffers
            image_dx = _offset(b, dxp, image, image_size)
            matrix = image_dx if col2im is None else scratch
            image_g = _offset(b, gp, image, shape.o * shape.pixels)
            with for_range(b, shape.groups, "group") as grp:
                pointers = (
                    _offset(b, wp, grp, og * k),
                    _offset(b, image_g, grp, og * shape.pixels),
                    _offset(b, matrix, grp, k * shape.pixels),
                )
                gemm(pointers, (k, shape.pixels, og), (True, False))
            if col2im is not None:
                b.call(col2im, [scratch, image_dx, dims, _i64(0), sizes.i64(shape.c, b)])

        _image_blocks(low, shape, dtype, blas, [gp, wp, dxp], _matrix(shape, col2im), backward)
        return
    with for_range(b, shape.n, "image") as n:
        image = _offset(b, dxp, n, image_size)
        matrix = image if col is None else col
        image_g = _offset(b, gp, n, shape.o * shape.pixels)
        with _per_group(low, shape.groups) as grp:
            a = _offset(b, wp, grp, og * k)
            cot = _offset(b, image_g, grp, og * shape.pixels)
            _gemm(
                low,
                dtype,
                (a, cot, _offset(b, matrix, grp, k * shape.pixels)),
                (k, shape.pixels, og),
                (True, False),
            )
        if col2im is not None:
            call_split(
                low, col2im, [col, image, low.dims], shape.c, shape.c * shape.taps * shape.pixels
            )
        low.poll_interrupt()


def op_conv2d_filter_grad(low, op: Operation) -> None:
    """dw[group] = Σₙ g[n, group] @ im2col(x[n])[group rows]ᵀ, accumulated by BLAS (small
    images: by blocks of images, then the blocks' sums in order)."""
    x, g, dw = op.operands[0], op.operands[1], op.result
    shape, dtype, b = _conv_shape(x, dw, g, op.attrs), dw.type.dtype, low.b
    og, k = shape.o // shape.groups, shape.rows_per_group
    im2col, col = _columns(low, shape, dtype)
    xp, gp, dwp = low.typed(x), low.typed(g), low.typed(dw)
    blas = _small_image_gemm(shape, dtype, og * k * shape.pixels)
    if blas is not None:  # each block sums its images' products, then the blocks in order
        columns, weights = _matrix(shape, im2col), shape.o * k

        def filter_grad(b, gemm, buffers, image, scratch, dims):
            xp, gp = buffers
            matrix = _image_matrix(b, shape, im2col, xp, image, scratch, dims)
            image_g = _offset(b, gp, image, shape.o * shape.pixels)
            with for_range(b, shape.groups, "group") as grp:
                pointers = (
                    _offset(b, image_g, grp, og * shape.pixels),
                    _offset(b, matrix, grp, k * shape.pixels),
                    _offset(b, _offset(b, scratch, columns), grp, og * k),
                )
                gemm(pointers, (og, k, shape.pixels), (False, True), accumulate=True)

        def begin(b, scratch):
            _zero(b, _offset(b, scratch, columns), weights, dtype)

        blocks = _image_blocks(
            low, shape, dtype, blas, [xp, gp], columns + weights, filter_grad, begin
        )
        _zero(b, dwp, weights, dtype)
        with for_range(b, IMAGE_BLOCKS, "block") as block:
            partial = _offset(b, _offset(b, blocks, block, columns + weights), columns)
            with for_range(b, weights, "weight") as i:
                at = b.gep(dwp, [i])
                b.store(b.fadd(b.load(at), b.load(b.gep(partial, [i]))), at)
        return
    _zero(b, dwp, shape.o * k, dtype)
    with for_range(b, shape.n, "image") as n:
        matrix = _fill_columns(
            low, shape, im2col, col, _offset(b, xp, n, shape.c * shape.h * shape.w)
        )
        image_g = _offset(b, gp, n, shape.o * shape.pixels)
        with _per_group(low, shape.groups) as grp:
            cot = _offset(b, image_g, grp, og * shape.pixels)
            rows = _offset(b, matrix, grp, k * shape.pixels)
            _gemm(
                low,
                dtype,
                (cot, rows, _offset(b, dwp, grp, og * k)),
                (og, k, shape.pixels),
                (False, True),
                True,
            )
        low.poll_interrupt()


# ---- pooling --------------------------------------------------------------------------------
# One kernel scans each output's window (taps unrolled, those outside the input masked
# off); what it does with the scan depends on the op:
#   max_pool2d        out = the maximum (the first NaN, if any)
#   max_pool2d_grad   dx[position of the first maximum] += g
#   max_pool2d_pick   out = v[position of the first maximum]
#   avg_pool2d        out = Σ taps / (kh·kw)
#   avg_pool2d_grad   dx[each tap inside] += g / (kh·kw)
# Operands and result, in kernel order, for each: (source of the window, other inputs,
# output); the gradients zero their output plane first.
POOLS = {
    "max_pool2d": ("max", (0,), True),
    "max_pool2d_grad": ("max", (0, 1), False),
    "max_pool2d_pick": ("max", (0, 1), True),
    "avg_pool2d": ("sum", (0,), True),
    "avg_pool2d_grad": ("spread", (0,), False),
}


@dataclass(frozen=True)
class PoolShape:
    h: int  # input plane
    w: int
    oh: int  # output plane
    ow: int
    win: Window
    checked: bool = True  # False: every tap of the outputs scanned is inside the input


def _plane_size(v: Value) -> int:
    return v.type.shape[2] * v.type.shape[3]


def _tap(b, shape: PoolShape, oh, ow, i: int, j: int):
    """(inside the input?, flat position in the plane, clamped to 0 outside) of tap (i, j)
    of output (oh, ow)."""
    win = shape.win
    ih = b.add(b.mul(oh, ir.Constant(T.I64, win.stride[0])), ir.Constant(T.I64, win.offset(0, i)))
    iw = b.add(b.mul(ow, ir.Constant(T.I64, win.stride[1])), ir.Constant(T.I64, win.offset(1, j)))
    if not shape.checked:
        return ir.Constant(T.I1, 1), b.add(b.mul(ih, sizes.i64(shape.w, b)), iw)
    inside = b.and_(
        b.icmp_unsigned("<", ih, sizes.i64(shape.h, b)),
        b.icmp_unsigned("<", iw, sizes.i64(shape.w, b)),
    )
    position = b.add(b.mul(ih, sizes.i64(shape.w, b)), iw)
    return inside, b.select(inside, position, ir.Constant(T.I64, 0))


def _scan_max(b, shape, plane, oh, ow, dtype):
    """(best value, its position or -1 for no tap inside) over the window."""
    best, where = T.constant(dtype, float("-inf")), ir.Constant(T.I64, -1)
    for i in range(shape.win.kernel[0]):
        for j in range(shape.win.kernel[1]):
            inside, at = _tap(b, shape, oh, ow, i, j)
            v = b.load(b.gep(plane, [at]))
            beats = b.or_(
                b.icmp_signed("<", where, ir.Constant(T.I64, 0)),
                b.or_(
                    b.fcmp_ordered(">", v, best),
                    b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", best, best)),
                ),
            )
            better = b.and_(inside, beats)
            best, where = b.select(better, v, best), b.select(better, at, where)
    return best, where


def _pool_function(low, op: Operation, shape: PoolShape):
    kind, inputs, returns = POOLS[op.name]
    dtype = op.result.type.dtype
    fn, b = _channel_function(low, op.name.replace("2d", ""), dtype, len(inputs) + 1)
    *srcs, dst, _, lo, hi = fn.args
    src_sizes = [_plane_size(op.operands[k]) for k in inputs]
    dst_size = _plane_size(op.result)
    count = T.constant(dtype, shape.win.kernel[0] * shape.win.kernel[1])
    rows, columns = _interior(b, shape, 0), _interior(b, shape, 1)
    ow_size = sizes.i64(shape.ow, b)
    lanes = _pair_lanes(op.name, shape, dtype)
    poll = interrupt.returning_poll(b, low.module)
    with for_range(b, hi, "plane", start=lo) as p:
        poll(b)
        planes = [_offset(b, s, p, size) for s, size in zip(srcs, src_sizes)]
        out = _offset(b, dst, p, dst_size)
        if not returns and not (kind == "max" and _tiles_the_plane(shape)):
            _zero(b, out, dst_size, dtype)
        with for_range(b, shape.oh, "oh") as oh:

            def scan(start, end, checked: bool):
                """Outputs [start, end) of row oh; unchecked: every tap inside."""
                inner = replace(shape, checked=checked)
                with for_range(b, end, "ow", start=start) as ow:
                    o = b.add(b.mul(oh, ow_size), ow)
                    _pool_element(b, op.name, kind, inner, planes, out, oh, ow, o, count, dtype)

            inside_row = b.and_(b.icmp_signed(">=", oh, rows[0]), b.icmp_signed("<", oh, rows[1]))
            with b.if_else(inside_row) as (inner_row, edge_row):
                with inner_row:
                    scan(ir.Constant(T.I64, 0), columns[0], True)
                    if lanes:
                        pairs = _Pairs(b, op.name, shape, planes, out, oh, lanes, dtype)
                        pairs.scan(*columns, lambda lo, hi: scan(lo, hi, False))
                    else:
                        scan(*columns, False)
                    scan(columns[1], ow_size, True)
                with edge_row:
                    scan(ir.Constant(T.I64, 0), ow_size, True)
    b.ret_void()
    return fn


# 2x2 max pooling with stride 2 (LeNet's and VGG's; not ResNet's 3x3 stem) and its gradient:
# a row of outputs reads two input rows whose even and odd elements are the window's taps.
# The scalar scan had LLVM gather each tap and scatter each gradient element (LeNet's first
# pooling gradient, 64x6x28x28, 150 us on 2 threads); `_Pairs` loads both rows contiguously,
# splits even from odd elements by shuffles, and stores its results contiguously, `lanes`
# outputs a step. Same comparisons in the same order, so the same bits.
PAIR_LANES = {"float32": (16, 8, 4), "float64": (8, 4, 2)}  # widest first (512-bit vectors)


def _pair_lanes(name: str, shape: PoolShape, dtype) -> int:
    """Outputs a step of the paired scan (the widest vector the row's outputs fill, as far
    as its size is known when compiling), or 0 where it does not apply."""
    win = shape.win
    if name not in ("max_pool2d", "max_pool2d_grad") or dtype.name not in PAIR_LANES:
        return 0
    if win.kernel != (2, 2) or win.stride != (2, 2) or win.dilation != (1, 1):
        return 0
    width = hint(shape.ow)
    return next((n for n in PAIR_LANES[dtype.name] if n <= width), 0)


class _Pairs:
    """The paired scan of one row `oh` of 2x2 stride-2 max pooling (`name`), see above."""

    def __init__(self, b, name, shape: PoolShape, planes, out, oh, lanes: int, dtype):
        self.b, self.name, self.shape, self.lanes = b, name, shape, lanes
        self.planes, self.out, self.oh = planes, out, oh
        self.element, self.align = T.storage_type(dtype), dtype.np.itemsize
        self.zero = ir.Constant(ir.VectorType(self.element, lanes), [T.constant(dtype, 0)] * lanes)

    def scan(self, start, end, scalar) -> None:
        """Outputs [start, end): steps at start, start + lanes, ..., and a last one at
        end - lanes, which may overlap the step before it (its outputs are computed and
        written again, with the same values: no two windows share a tap). Fewer outputs
        than a step: `scalar(start, end)`."""
        b, lanes = self.b, ir.Constant(T.I64, self.lanes)
        count = b.sub(end, start)
        with b.if_else(b.icmp_signed(">=", count, lanes)) as (paired, short):
            with paired:
                with for_range(b, b.sdiv(b.sub(count, ir.Constant(T.I64, 1)), lanes), "pair") as k:
                    self.step(b.add(start, b.mul(k, lanes)))
                self.step(b.sub(end, lanes))
            with short:
                scalar(start, end)

    def step(self, ow) -> None:
        """Outputs [ow, ow + lanes) of row oh."""
        b, n, win = self.b, self.lanes, self.shape.win
        w = sizes.i64(self.shape.w, b)
        column = b.add(b.mul(ow, ir.Constant(T.I64, 2)), ir.Constant(T.I64, win.offset(1, 0)))
        row0 = b.add(b.mul(self.oh, ir.Constant(T.I64, 2)), ir.Constant(T.I64, win.offset(0, 0)))
        starts = [b.add(b.mul(b.add(row0, ir.Constant(T.I64, i)), w), column) for i in (0, 1)]
        taps = []
        for at in starts:  # taps (0, 0), (0, 1), (1, 0), (1, 1): the scalar scan's order
            both = self._load(self.planes[0], at, 2 * n)
            taps += [b.shuffle_vector(both, both, _lane_mask(range(j, 2 * n, 2))) for j in (0, 1)]
        best, which = taps[0], self._splat_i32(0)  # (the first tap: inside, so taken)
        for t, v in enumerate(taps[1:], start=1):
            beats = b.or_(
                b.fcmp_ordered(">", v, best),
                b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", best, best)),
            )
            best, which = b.select(beats, v, best), b.select(beats, self._splat_i32(t), which)
        o = b.add(b.mul(self.oh, sizes.i64(self.shape.ow, b)), ow)
        if self.name == "max_pool2d":
            self._store(best, self.out, o)
            return
        routed = b.fadd(self.zero, self._load(self.planes[1], o, n))  # (-0.0 made +0.0)
        routes = [
            b.select(b.icmp_signed("==", which, self._splat_i32(t)), routed, self.zero)
            for t in range(4)
        ]
        interleave = _lane_mask(i for pair in zip(range(n), range(n, 2 * n)) for i in pair)
        for i, at in enumerate(starts):
            self._store(
                b.shuffle_vector(routes[2 * i], routes[2 * i + 1], interleave), self.out, at
            )

    def _load(self, base, at, count: int):
        vector = ir.VectorType(self.element, count).as_pointer()
        return self.b.load(self.b.bitcast(self.b.gep(base, [at]), vector), align=self.align)

    def _store(self, value, base, at) -> None:
        vector = value.type.as_pointer()
        self.b.store(value, self.b.bitcast(self.b.gep(base, [at]), vector), align=self.align)

    def _splat_i32(self, value: int):
        return ir.Constant(
            ir.VectorType(T.I32, self.lanes), [ir.Constant(T.I32, value)] * self.lanes
        )


def _lane_mask(indices):
    indices = list(indices)
    return ir.Constant(ir.VectorType(T.I32, len(indices)), [ir.Constant(T.I32, i) for i in indices])


def _tiles_the_plane(shape: PoolShape) -> bool:
    """Whether the windows cover every input position exactly once (kernel = stride, no
    padding, sides their multiples, known when compiling): max_pool2d_grad then writes
    every element of its plane (_route_max), and zeroing it first would be a wasted pass."""
    win = shape.win
    return (
        win.kernel == win.stride
        and win.dilation == (1, 1)
        and win.padding == ((0, 0), (0, 0))
        and not any(is_symbolic(d) for d in (shape.h, shape.w, shape.oh, shape.ow))
        and shape.h == shape.oh * win.stride[0]
        and shape.w == shape.ow * win.stride[1]
    )


def _interior(b: ir.IRBuilder, shape: PoolShape, axis: int) -> tuple[ir.Value, ir.Value]:
    """[lo, hi): the outputs along `axis` whose every tap is inside the input, where the
    scan needs no check (and vectorises): the border's few are checked."""
    size, out = (shape.h, shape.oh) if axis == 0 else (shape.w, shape.ow)
    taps = range(shape.win.kernel[axis])
    bounds = [_valid_outputs(b, shape.win, axis, t, size, out) for t in taps]
    lo, hi = bounds[0]
    for tap_lo, tap_hi in bounds[1:]:
        lo = b.select(b.icmp_signed("<", lo, tap_lo), tap_lo, lo)
        hi = _at_most(b, hi, tap_hi)
    return lo, b.select(b.icmp_signed("<", hi, lo), lo, hi)


def _pool_element(b, name, kind, shape, planes, out, oh, ow, o, count, dtype) -> None:
    """One output position's window, as POOLS describes."""
    zero = T.constant(dtype, 0)
    if kind == "max":
        best, where = _scan_max(b, shape, planes[0], oh, ow, dtype)
        if name == "max_pool2d":
            b.store(best, b.gep(out, [o]))
        elif name == "max_pool2d_pick":
            found = b.icmp_signed(">=", where, ir.Constant(T.I64, 0))
            at = b.select(found, where, ir.Constant(T.I64, 0))
            b.store(b.select(found, b.load(b.gep(planes[1], [at])), zero), b.gep(out, [o]))
        elif shape.win.overlaps():  # max_pool2d_grad, a tap shared by windows: add
            with b.if_then(b.icmp_signed(">=", where, ir.Constant(T.I64, 0))):
                at = b.gep(out, [where])
                b.store(b.fadd(b.load(at), b.load(b.gep(planes[1], [o]))), at)
        else:
            _route_max(b, shape, planes[1], out, oh, ow, o, where, dtype)
        return
    if kind == "sum":
        total = zero
        for i in range(shape.win.kernel[0]):
            for j in range(shape.win.kernel[1]):
                inside, at = _tap(b, shape, oh, ow, i, j)
                total = b.fadd(total, b.select(inside, b.load(b.gep(planes[0], [at])), zero))
        b.store(b.fdiv(total, count), b.gep(out, [o]))
        return
    share = b.fdiv(b.load(b.gep(planes[0], [o])), count)  # spread: avg_pool2d_grad
    for i in range(shape.win.kernel[0]):
        for j in range(shape.win.kernel[1]):
            inside, at = _tap(b, shape, oh, ow, i, j)
            target = b.gep(out, [at])
            b.store(b.fadd(b.load(target), b.select(inside, share, zero)), target)


def _route_max(b, shape: PoolShape, g, out, oh, ow, o, where, dtype) -> None:
    """max_pool2d_grad where no two windows share a tap: each tap of the window is written
    once, g where it is the maximum's, else zero (0 + g: the bits the addition into the
    zeroed plane gives, -0.0 made +0.0); positions no window covers keep the plane's
    zeros. Unconditional stores, unlike a store at the maximum alone, let the border-free
    part of the scan vectorise (LeNet's first pooling gradient, 64x6x28x28: 1.1 ms -> 0.3
    ms on one thread)."""
    zero = T.constant(dtype, 0)
    routed = b.fadd(zero, b.load(b.gep(g, [o])))
    for i in range(shape.win.kernel[0]):
        for j in range(shape.win.kernel[1]):
            inside, at = _tap(b, shape, oh, ow, i, j)
            value = b.select(b.icmp_signed("==", at, where), routed, zero)
            if shape.checked:
                with b.if_then(inside):
                    b.store(value, b.gep(out, [at]))
            else:
                b.store(value, b.gep(out, [at]))


def op_pool(low, op: Operation) -> None:
    kind, inputs, returns = POOLS[op.name]
    window_source = op.operands[0] if kind != "spread" else op.operands[1]  # (g, like)
    pooled = op.result if returns else (op.operands[1] if kind != "spread" else op.operands[0])
    n, c, h, w = window_source.type.shape
    shape = PoolShape(h, w, *pooled.type.shape[2:], pool_window(**op.attrs))
    fn = _pool_function(low, op, shape)
    buffers = [low.typed(op.operands[k]) for k in inputs] + [low.typed(op.result)]
    taps = shape.win.kernel[0] * shape.win.kernel[1]
    # every image's planes in one split (one per image waited for the threads 64 times
    # for LeNet's 6 planes of 28x28 each; the kernel polls for Ctrl-C between planes)
    planes = n * c
    call_split(low, fn, [*buffers, low.dims], planes, planes * shape.oh * shape.ow * taps * 4)
    low.poll_interrupt()


LOWERINGS: dict = {
    "conv2d": op_conv2d,
    "conv2d_input_grad": op_conv2d_input_grad,
    "conv2d_filter_grad": op_conv2d_filter_grad,
    **dict.fromkeys(POOLS, op_pool),
}
