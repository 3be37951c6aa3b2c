"""Small float matrix products as register-tiled loops in the program's own code, with no
BLAS call.

Why: below half a million multiply-adds a product costs more around its arithmetic
than in it when it goes to BLAS. The RNN workload's step (16x32 @ 32x64 and
16x64 @ 64x64, in a while_loop) spent 80% of its time in OpenBLAS, half of that copying
its operands into OpenBLAS's own layout (`sgemm_itcopy`) before a kernel that ran a few
hundred cycles; jax.jit, which emits such products inline, took half graphjit's time.
Here each product of static sizes is a function of the module, specialised to its sizes,
transposes and scaling, that reads the operands where they lie:

- `op(B)` not transposed (its rows are contiguous): a tile of 4 rows x 4 accumulator
  vectors of C (of 16 floats with AVX-512; 4 x 2 with 16 vector registers) is summed
  over the inner dimension, each step loading vectors of B's row and broadcasting one
  element of A per row.
  Every element of C is then one chain of fused multiply-adds in the inner dimension's
  order, as in BLAS's kernels.
- `op(B)` transposed (x @ w.T, backward's `g @ W^T`): C's elements are dot products of
  contiguous rows, so the tile holds 4 x 4 vectors along the inner dimension, summed lane
  by lane and then across the lanes, all 16 together by a transposing fold (a fixed tree
  per element); or, where the dot products are short or many rows share each of B's,
  blocks of B's rows copied transposed into a scratch block, then the rows form.
- both transposed: BLAS (no bench workload makes such a product).
- one row or one column of C: whichever of the two forms makes its tiles vectors
  (_canonical).

Products of up to MAX_BLOCKED_MACS (and batches of small ones) run as blocks of rows or
columns of C on graphjit's threads (blas.split_matmul): each block is a function of the
same form for the block's sizes, reading and writing with the whole product's row strides,
so each element of C is the same chain of multiply-adds whichever block holds it.

The sizes are constants, so the tiles at C's right and bottom edges are narrower tiles of
the same code (vectors of fewer lanes), not masked or padded ones, and nothing is read or
written outside the matrices. Every order of summation is fixed at compile time: a
product gives the same bits on every call. The inner dimension is at most MAX_INNER, so a
lane's chain stays short (accuracy as BLAS's blocked kernels).
"""

from __future__ import annotations

import dataclasses
import functools

from llvmlite import ir

from graphjit.codegen.llvm import target
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range
from graphjit.ir.symbolic import is_symbolic

# Up to this many multiply-adds the tiles here ran 2-4x faster than OpenBLAS's Haswell
# kernels on a Zen 5 (docs/benchmarks.md); larger products are split between threads
# (blas.SPLIT_MIN_MACS), into blocks of the tiles below MAX_BLOCKED_MACS.
MAX_MACS = 1 << 19
MAX_INNER = 1024
# Products up to this size are split into blocks of C on graphjit's threads, each block
# this module's tiles (takes_blocks); larger ones are BLAS's. On two threads, us per
# product against OpenBLAS's (and sgemm.py's) blocks: 64x84x120 3.5 / 8.3, 64x128x128
# 5.7 / 11.8, 128x128x128 11.4 / 14.5, 128x256x128 17.8 / 19.4, 256x256x64 (B
# transposed) 23.9 / 19.3: from 4M the packed kernels win. No block has fewer than
# BLOCK_MIN_MACS.
MAX_BLOCKED_MACS = 1 << 21
BLOCK_MIN_MACS = 1 << 16
# The most stack a product's copy of a block of B takes (emit_packed_dots): a constant,
# whatever the data, and small beside any thread's stack (pool workers run convolutions'
# products too).
SCRATCH_BYTES = 8192
_ELEMENT = {"float32": T.F32, "float64": T.F64}


@functools.cache
def _vector_bits() -> tuple[int, int]:
    """(bits of a vector register, how many there are) on this CPU."""
    features = target.features().split(",")
    if "+avx512f" in features:
        return 512, 32
    if "+avx" in features:
        return 256, 16
    return 128, 16


def takes(dtype_name: str, sizes, transposed) -> bool:
    """Whether an m x n x k product of this dtype is emitted here rather than sent to BLAS."""
    m, n, k = sizes
    if dtype_name not in _ELEMENT or any(is_symbolic(d) for d in sizes):
        return False
    if not (m and n and k) or m * n * k > MAX_MACS or k > MAX_INNER:
        return False
    ta, tb = _canonical(sizes, transposed)[1]
    return not (ta and tb)


def call_small_gemm(b: ir.IRBuilder, dtype_name: str, pointers, sizes, transposed, scaling):
    """C (m x n) = alpha op(A) @ op(B) (+ C when accumulating) for row-major, contiguous
    matrices (A m x k, or k x m transposed; B k x n, or n x k transposed), by a call to
    the module's function for these sizes (made on first use)."""
    sizes, transposed, swapped = _canonical(tuple(sizes), tuple(transposed))
    a, bm, c = pointers
    layout = _Layout(sizes, transposed, _natural_strides(sizes, transposed))
    fn = _function(b.module, dtype_name, layout, tuple(scaling), _form(dtype_name, layout))
    pointer = _ELEMENT[dtype_name].as_pointer()
    b.call(fn, [b.bitcast(p, pointer) for p in ((bm, a, c) if swapped else (a, bm, c))])


def takes_blocks(dtype_name: str, sizes, transposed) -> bool:
    """Whether a product of MAX_MACS to MAX_BLOCKED_MACS multiply-adds is split into
    blocks of rows or columns of C emitted here (blas.split_matmul runs them on graphjit's
    threads), rather than into blocks for BLAS. Not one row or column (_canonical's forms
    need the whole matrices), and B transposed into copies only where C's columns split:
    each block copies the columns it reads, and a block of rows would copy all of them
    (256x128x32: 11.9 us in blocks of rows against OpenBLAS's 10.6)."""
    m, n, k = sizes
    if dtype_name not in _ELEMENT or any(is_symbolic(d) for d in sizes):
        return False
    if m < 2 or n < 2 or not k or m * n * k > MAX_BLOCKED_MACS or k > MAX_INNER:
        return False
    if transposed[0] and transposed[1]:
        return False
    layout = _Layout(tuple(sizes), tuple(transposed), _natural_strides(sizes, transposed))
    return _form(dtype_name, layout) != "copied" or n >= 2 * _span_of(_ELEMENT[dtype_name])


def block_plan(dtype_name: str, sizes, transposed, blocks: int) -> tuple[bool, int]:
    """(split C by columns rather than rows, rows or columns a block) for about `blocks`
    blocks of an m x n x k product: whole tiles each (4 rows, or the rows form's span of
    columns), along C's longer side in tiles (by columns where B is copied), none under
    BLOCK_MIN_MACS. Any split gives the same bits: every element's sum is the same chain
    whatever block holds it."""
    m, n, k = sizes
    span = _span_of(_ELEMENT[dtype_name])
    layout = _Layout(tuple(sizes), tuple(transposed), _natural_strides(sizes, transposed))
    by_columns = n // span > m // 4 or _form(dtype_name, layout) == "copied"
    width, unit = (n, span) if by_columns else (m, 4)
    most = max(1, min(blocks, -(-width // unit), m * n * k // BLOCK_MIN_MACS))
    step = -(-width // most)
    return by_columns, -(-step // unit) * unit


def call_block(b, dtype_name: str, pointers, sizes, transposed, scaling, block) -> None:
    """A block of C (`block`: its rows and columns) of the m x n x k product `sizes`, at
    pointers to its first elements in A, B and C: the whole product's strides and form
    (call_small_gemm's, as takes_blocks allows)."""
    layout = _Layout(sizes, tuple(transposed), _natural_strides(sizes, transposed))
    form = _form(dtype_name, layout)
    rows, cols = block
    layout = _Layout((rows, cols, sizes[2]), layout.transposed, layout.strides)
    fn = _function(b.module, dtype_name, layout, tuple(scaling), form)
    pointer = _ELEMENT[dtype_name].as_pointer()
    b.call(fn, [b.bitcast(p, pointer) for p in pointers])


def _canonical(sizes: tuple, transposed: tuple) -> tuple:
    """(sizes, transposes, whether A and B swap) of the same product in the form the
    kernels run best. A vector is the same memory whether it is a row or a column: with
    one column (x @ w for a single output, X^T @ r in its gradient) C is C^T, and a tile of
    one vector lane wide would be a scalar chain. Then x @ w is dot products of x's rows
    with w (B transposed), and A^T @ r is r^T @ A, one row of C^T (A and B swapped)."""
    (m, n, k), (ta, tb) = sizes, transposed
    if n == 1:
        return ((1, m, k), (False, False), True) if ta else ((m, 1, k), (False, True), False)
    if m == 1:
        return (1, n, k), (False, tb), False
    return sizes, transposed, False


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The m x n x k product a function computes, and the row strides of op(A)'s, op(B)'s
    and C's matrices as stored (a block of a larger product keeps the larger's)."""

    sizes: tuple
    transposed: tuple
    strides: tuple  # (A's, B's, C's), in elements

    def key(self) -> str:
        (m, n, k), (ta, tb) = self.sizes, self.transposed
        flags = f"{'t' if ta else 'n'}{'t' if tb else 'n'}"
        natural = _natural_strides(self.sizes, self.transposed)
        strides = "" if self.strides == natural else ".ld" + "x".join(map(str, self.strides))
        return f"{m}x{n}x{k}.{flags}{strides}"


def _natural_strides(sizes, transposed) -> tuple:
    """The row strides of contiguous operands: A is m x k (k x m transposed), B k x n
    (n x k transposed), C m x n."""
    (m, n, k), (ta, tb) = sizes, transposed
    return (m if ta else k, k if tb else n, n)


def _form(dtype_name: str, layout: _Layout) -> str:
    """How the product is summed: "rows" where op(B)'s rows are contiguous; with B
    transposed, "dots" where the dot products are long and few rows share each of B's (one
    column of C, k of two vectors or more and fewer than 2k rows), else "copied" (B's rows
    copied transposed, then the rows form): the copy, k x n elements once, costs less than
    folding every dot product across lanes (us per product, dots against copy: 128x64x32
    4.07 / 2.52, 512x64x8 12.3 / 2.38; 16x64x64 0.74 / 1.44, 4x64x256 0.72 / 5.69)."""
    (m, n, k), (_, tb) = layout.sizes, layout.transposed
    element = _ELEMENT[dtype_name]
    lanes = _vector_bits()[0] // _bits(element)
    fits = k * _span_of(element) * _bits(element) // 8 <= SCRATCH_BYTES
    if not tb:
        return "rows"
    if n == 1 or not fits or (k >= 2 * lanes and m < 2 * k):
        return "dots"
    return "copied"


def _function(module: ir.Module, dtype_name: str, layout: _Layout, scaling, form: str):
    alpha, accumulate = scaling
    flags = f"{form}{'+' if accumulate else ''}"
    name = f"graphjit.small_gemm.{dtype_name}.{layout.key()}.{flags}.{float(alpha).hex()}"
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    pointer = _ELEMENT[dtype_name].as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [pointer] * 3), name)
    fn.linkage = "internal"
    for arg in fn.args:
        arg.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    _Product(b, _ELEMENT[dtype_name], fn.args, layout, scaling).emit(form)
    b.ret_void()
    return fn


class _Product:
    """One product's emission: the operands, sizes and the vector shape of this CPU."""

    def __init__(self, b, element, args, layout: _Layout, scaling):
        self.b, self.element = b, element
        self.a, self.bm, self.c = args
        (self.m, self.n, self.k), (self.ta, self.tb) = layout.sizes, layout.transposed
        self.lda, self.ldb, self.ldc = layout.strides
        self.alpha, self.accumulate = float(scaling[0]), scaling[1]
        bits, self.registers = _vector_bits()
        self.lanes = bits // _bits(element)

    def emit(self, form: str) -> None:
        """The form _form chose for the whole product."""
        {"rows": self.emit_rows, "dots": self.emit_dots, "copied": self.emit_packed_dots}[form]()

    # ---- op(B) not transposed: C's rows as sums of B's rows --------------------------------

    def emit_rows(self) -> None:
        """Tiles of 4 rows x 4 vectors of C (2 vectors with 16 registers)."""
        self._over_tiles(
            4, self._span(), lambda i, j, rows, cols: self._row_tile(i, j, rows, self._widths(cols))
        )

    def _row_tile(self, i, j, rows: int, widths: list, b_row_at=None) -> None:
        """C[i : i + rows, j : j + sum(widths)]; `b_row_at(p)` is where that block's row p
        of op(B) starts (default: in B itself)."""
        b = self.b
        acc = self._accumulators(widths * rows)
        with for_range(b, self.k, "sg.p") as p:
            if b_row_at is None:
                b_row = b.gep(self.bm, [b.add(b.mul(p, self._i(self.ldb)), j)])
            else:
                b_row = b_row_at(p)
            starts = _starts(widths)
            loaded = [self._load(b_row, s, w) for s, w in zip(starts, widths)]
            for r in range(rows):
                scalar = b.load(self._a_at(b.add(i, self._i(r)), p))
                for v, w in enumerate(widths):
                    slot = acc[r * len(widths) + v]
                    b.store(self._fma(self._splat(scalar, w), loaded[v], b.load(slot)), slot)
        for r in range(rows):
            c_row = b.gep(self.c, [b.add(b.mul(b.add(i, self._i(r)), self._i(self.ldc)), j)])
            for v, (s, w) in enumerate(zip(_starts(widths), widths)):
                at = self._vector_pointer(c_row, s, w)
                b.store(self._finish(b.load(acc[r * len(widths) + v]), at, w), at, align=1)

    def _a_at(self, row, p):
        """Where op(A)[row, p] is."""
        if self.ta:
            return self.b.gep(self.a, [self.b.add(self.b.mul(p, self._i(self.lda)), row)])
        return self.b.gep(self.a, [self.b.add(self.b.mul(row, self._i(self.lda)), p)])

    # ---- op(B) transposed: C's elements as dot products of rows ------------------------

    def emit_dots(self) -> None:
        """Tiles of 4 x 4 elements of C (4 x 2 with 16 registers), each a dot product of a
        row of A and a row of B."""
        self._over_tiles(4, 4 if self.registers >= 32 else 2, self._dot_tile)

    def emit_packed_dots(self) -> None:
        """B transposed, summed as the rows form sums: each block of `span` rows of B is
        first copied, transposed, into a scratch block of k x span elements on the stack
        (at most SCRATCH_BYTES), which the tiles then read as op(B)."""
        b, span = self.b, self._span()
        with b.goto_entry_block():
            block = b.alloca(ir.ArrayType(self.element, self.k * span))
        scratch = b.gep(block, [self._i(0), self._i(0)])

        def column_block(j, width: int) -> None:
            self._pack_transposed(scratch, j, width, span)
            row_at = lambda p: b.gep(scratch, [b.mul(p, self._i(span))])  # noqa: E731
            self._over_rows(
                4, lambda i, rows: self._row_tile(i, j, rows, self._widths(width), row_at)
            )

        full_cols = self.n - self.n % span
        if full_cols:
            with for_range(b, full_cols, "pack.j", step=span) as j:
                column_block(j, span)
        if self.n > full_cols:
            column_block(self._i(full_cols), self.n - full_cols)

    def _pack_transposed(self, scratch, j, width: int, span: int) -> None:
        """scratch[p * span + c] = B[j + c, p] for c < width, p < k."""
        b = self.b
        with for_range(b, width, "pack.c") as c:
            row = b.gep(self.bm, [b.mul(b.add(j, c), self._i(self.ldb))])
            for p in range(self.k):
                value = b.load(b.gep(row, [self._i(p)]))
                b.store(value, b.gep(scratch, [b.add(self._i(p * span), c)]))

    def _dot_tile(self, i, j, rows: int, cols: int) -> None:
        b, lanes, k = self.b, self.lanes, self.k
        a_rows = [
            b.gep(self.a, [b.mul(b.add(i, self._i(r)), self._i(self.lda))]) for r in range(rows)
        ]
        b_rows = [
            b.gep(self.bm, [b.mul(b.add(j, self._i(c)), self._i(self.ldb))]) for c in range(cols)
        ]
        whole, tail = k - k % lanes, k % lanes
        acc = self._accumulators([lanes] * (rows * cols))

        def step(av: list, bv: list) -> None:
            for r in range(rows):
                for c in range(cols):
                    slot = acc[r * cols + c]
                    b.store(self._fma(av[r], bv[c], b.load(slot)), slot)

        if whole:
            with for_range(b, whole, "sd.p", step=lanes) as p:
                step(
                    [self._load(b.gep(row, [p]), 0, lanes) for row in a_rows],
                    [self._load(b.gep(row, [p]), 0, lanes) for row in b_rows],
                )
        if tail:  # the last k % lanes products: shorter loads, zero-padded to whole vectors
            step(
                [self._padded(self._load(row, whole, tail)) for row in a_rows],
                [self._padded(self._load(row, whole, tail)) for row in b_rows],
            )
        sums = _sum_lanes(b, [b.load(slot) for slot in acc], lanes)
        for r in range(rows):
            c_row = b.gep(self.c, [b.add(b.mul(b.add(i, self._i(r)), self._i(self.ldc)), j)])
            for c in range(cols):
                at = b.gep(c_row, [self._i(c)])
                b.store(self._finish_scalar(sums[r * cols + c], at), at)

    def _padded(self, vector):
        """A vector of fewer lanes, widened to `lanes` with zeros."""
        width = vector.type.count
        zero = ir.Constant(vector.type, None)
        picks = [w if w < width else width for w in range(self.lanes)]
        return self.b.shuffle_vector(vector, zero, _lanes(picks))

    # ---- shared pieces ---------------------------------------------------------------------

    def _over_tiles(self, rows: int, cols: int, tile) -> None:
        """tile(i, j, tile_rows, tile_cols) over C in tiles of `rows` x `cols` elements:
        the whole ones in loops, then the narrower tile at the right edge of each row of
        tiles and the shorter row of tiles at the bottom."""
        full_cols = self.n - self.n % cols

        def row_of_tiles(i, tile_rows: int) -> None:
            if full_cols:
                with for_range(self.b, full_cols, "tile.j", step=cols) as j:
                    tile(i, j, tile_rows, cols)
            if self.n > full_cols:
                tile(i, self._i(full_cols), tile_rows, self.n - full_cols)

        self._over_rows(rows, row_of_tiles)

    def _over_rows(self, rows: int, body) -> None:
        """body(i, tile_rows) for each row of tiles `rows` high, then the shorter last."""
        full_rows = self.m - self.m % rows
        for first_row, row_end, tile_rows in (
            (0, full_rows, rows),
            (full_rows, self.m, self.m - full_rows),
        ):
            if first_row < row_end:
                with for_range(self.b, row_end, "tile.i", start=first_row, step=tile_rows) as i:
                    body(i, tile_rows)

    def _span(self) -> int:
        return _span_of(self.element)

    def _i(self, value: int) -> ir.Constant:
        return ir.Constant(T.I64, value)

    def _widths(self, count: int) -> list:
        """Vectors of `lanes` lanes covering `count` elements, the last one shorter."""
        return [min(self.lanes, count - s) for s in range(0, count, self.lanes)]

    def _vector_pointer(self, base, start: int, width: int):
        at = self.b.gep(base, [self._i(start)])
        return self.b.bitcast(at, ir.VectorType(self.element, width).as_pointer())

    def _load(self, base, start: int, width: int):
        return self.b.load(self._vector_pointer(base, start, width), align=1)

    def _accumulators(self, widths: list) -> list:
        """Zeroed vectors, one of each width, in allocas of the entry block (which LLVM
        promotes to registers)."""
        b = self.b
        with b.goto_entry_block():
            slots = [b.alloca(ir.VectorType(self.element, w)) for w in widths]
        for slot, w in zip(slots, widths, strict=True):
            b.store(ir.Constant(ir.VectorType(self.element, w), None), slot)
        return slots

    def _splat(self, scalar, width: int):
        vector = ir.VectorType(self.element, width)
        one = self.b.insert_element(ir.Constant(vector, ir.Undefined), scalar, _i32(0))
        return self.b.shuffle_vector(one, one, ir.Constant(ir.VectorType(T.I32, width), None))

    def _fma(self, x, y, z):
        name = f"llvm.fma.v{x.type.count}{_suffix(self.element)}"
        fma = self.b.module.globals.get(name) or ir.Function(
            self.b.module, ir.FunctionType(x.type, [x.type] * 3), name
        )
        return self.b.call(fma, [x, y, z])

    def _finish(self, value, at, width: int):
        """alpha * value, plus C's value at `at` when accumulating (vectors)."""
        if self.alpha != 1.0:
            value = self.b.fmul(self._splat(ir.Constant(self.element, self.alpha), width), value)
        if self.accumulate:
            value = self.b.fadd(self.b.load(at, align=1), value)
        return value

    def _finish_scalar(self, value, at):
        if self.alpha != 1.0:
            value = self.b.fmul(ir.Constant(self.element, self.alpha), value)
        if self.accumulate:
            value = self.b.fadd(self.b.load(at), value)
        return value


def _span_of(element) -> int:
    """Columns of the rows form's tile: 4 vectors (2 with 16 vector registers)."""
    bits, registers = _vector_bits()
    return (4 if registers >= 32 else 2) * (bits // _bits(element))


def _starts(widths: list) -> list:
    starts, at = [], 0
    for w in widths:
        starts.append(at)
        at += w
    return starts


def _sum_lanes(b: ir.IRBuilder, vectors: list, width: int) -> list:
    """The sum of each vector's lanes, for all of them at once (a transposing reduction):
    pairs of vectors are folded into one, each half of it the two halves of one of them
    added (the first vector's lanes then the second's), until each vector's sum is one
    lane (a last vector folds alone). Every sum is a fixed tree of
    additions, whatever the tile, so the bits do not depend on where an element lies."""
    groups = [(v, [index], width) for index, v in enumerate(vectors)]  # (vector, owners, span)
    zero = ir.Constant(vectors[0].type, None)
    while len(groups) & (len(groups) - 1):  # (zeros up to a power of two: pairs alike)
        groups.append((zero, [None], width))
    while any(span > 1 for _, _, span in groups):
        folded = []
        for g in range(0, len(groups), 2):
            pair = groups[g : g + 2]
            vector, owners, span = pair[0]
            other = pair[1][0] if len(pair) == 2 else vector
            count = vector.type.count
            low = [s * span + t for s in range(len(owners)) for t in range(span // 2)]
            high = [s * span + span // 2 + t for s in range(len(owners)) for t in range(span // 2)]
            if len(pair) == 2:
                low += [count + x for x in low]
                high += [count + x for x in high]
                owners = owners + pair[1][1]
            summed = b.fadd(
                b.shuffle_vector(vector, other, _lanes(low)),
                b.shuffle_vector(vector, other, _lanes(high)),
            )
            folded.append((summed, owners, span // 2))
        groups = folded
    sums: list = [None] * len(vectors)
    for vector, owners, _ in groups:
        for lane, owner in enumerate(owners):
            if owner is not None:
                sums[owner] = b.extract_element(vector, _i32(lane))
    return sums


def _lanes(indices) -> ir.Constant:
    indices = list(indices)
    return ir.Constant(ir.VectorType(T.I32, len(indices)), [_i32(i) for i in indices])


def _i32(value: int) -> ir.Constant:
    return ir.Constant(T.I32, value)


def _bits(element) -> int:
    return 32 if element == T.F32 else 64


def _suffix(element) -> str:
    return "f32" if element == T.F32 else "f64"
