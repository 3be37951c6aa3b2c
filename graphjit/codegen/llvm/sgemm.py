"""graphjit's own single-threaded float32 matrix product for AVX-512 CPUs, with the
Fortran sgemm's interface, so that generated code calls it as it calls BLAS (blas.py).

Why: the MLP's 128x1024 @ 1024x1024 products were its gap to jax.jit, and OpenBLAS's
SkylakeX sgemm spent a third of their time copying the weights into its own layout
(`sgemm_itcopy`, 45% of its kernel's time). One thread at 3.67 GHz (a peak of 117
GFLOP/s), this kernel runs their halves (128x1024 @ 1024x512) at 100-102 GFLOP/s
against OpenBLAS's 94-97, and seven shapes of the MLP, the transformer and square ones at
91-110 against 83-104 (docs/benchmarks.md). This is the Goto/BLIS algorithm (Van Zee and van de Geijn, "BLIS: A
Framework for Rapidly Instantiating BLAS Functionality", 2015), in column-major terms as
sgemm is: C (M x N) = alpha op(A) op(B) + beta C.

    for each NC columns of C:                 (jc)
      for each KC of the inner dimension:     (pc)  pack op(B)[pc, jc] in slivers of NR
        for each MC rows of C:                (ic)  pack op(A)[ic, pc] in slivers of MR
          for each sliver of B, of A:         (jr, ir)  the MR x NR micro-kernel

The micro-kernel keeps an MR x NR = 32 x 12 tile of C in 24 vector registers of 16 floats
and per step of the inner dimension loads two vectors of A and broadcasts 12 values of B
(24 fused multiply-adds; Zen 4 issues one 512-bit FMA a cycle). A's packed block (MC x
KC, 256 KiB) stays in L2 and B's sliver (KC x NR, 12 KiB) in L1 while the ir loop reuses
it. Slivers are padded with zeros, so edge tiles compute as full ones and are written
back element by element. Packing lines whose elements are adjacent along the inner
dimension (B not transposed, A transposed: x in x @ w) transposes 16 x 16 blocks in
registers; element by element it took more time than the products on thin matrices.

Every element of C is computed by the same operations in the same order whichever tile
holds it, so a product split into blocks of rows or columns (blas.split_matmul) has the
bits of the whole product. beta = 0 does not read C (BLAS's rule: C may hold NaN), and
alpha = 0 or K = 0 only scales C. Where C has fewer than MR rows or NR columns (the
slivers would be mostly padding), or the product fewer than MIN_MACS multiply-adds, the
call goes to the fallback sgemm (OpenBLAS, one thread) with the same arguments; where the packing buffers cannot be allocated, to a loop
of dot products that needs none.

Compiled (or found in the compile caches) once per process on first use, and never freed:
generated code calls it by its symbol."""

from __future__ import annotations

import functools
import threading

import llvmlite.binding as llvm
from llvmlite import ir

from graphjit.codegen.llvm import jit, target
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range

SYMBOL = "graphjit_sgemm_own"
MR, NR = 32, 12  # the micro-kernel's tile: MR rows (two vectors of 16), NR columns
KERNEL_WIDTHS = (4, 8, NR)  # a sliver's columns are computed by the narrowest that covers
KC, MC, NC = 256, 256, 2048  # cache blocks: KC x NR in L1, MC x KC in L2, KC x NC in L3
# Products of fewer multiply-adds go to the fallback, whose small-matrix kernels skip
# packing: one thread, 64x64 @ 64x128 took 13.7 us here against OpenBLAS's 9.5, 128x64 @
# 64x128 (1M) 22.5 against 23.7; the RNN's 16x64 @ 64x64 steps ~3 against 1.6 (its
# backward pass 1.5 ms against 0.89).
MIN_MACS = 1 << 20
VECTOR = 16
F32, I64, I1 = T.F32, T.I64, ir.IntType(1)
V16 = ir.VectorType(F32, VECTOR)
FP = F32.as_pointer()
IP = I64.as_pointer()
_ARGS = [T.I8P, T.I8P, IP, IP, IP, FP, FP, IP, FP, IP, FP, FP, IP]

_lock = threading.Lock()
_kept: list = []  # the compiled module, alive for the life of the process


def available() -> bool:
    """Whether this CPU runs the kernel (AVX-512F: 32 vector registers of 16 floats)."""
    return "+avx512f" in target.features().split(",")


@functools.cache
def address(fallback: str, fallback_width: int) -> int:
    """The kernel's address in this process, compiled (or loaded from the compile caches)
    on the first call. `fallback` names the sgemm it hands the calls it does not take to
    (bound with llvm.add_symbol, so the IR and cached code hold no address), whose integer
    arguments are `fallback_width` bits wide."""
    with _lock:
        compiled = jit.compile_module(str(_module(fallback, fallback_width)))
        _kept.append(compiled)
        return compiled.address(SYMBOL)


def _module(fallback: str, fallback_width: int) -> ir.Module:
    module = ir.Module(name="graphjit_sgemm")
    module.triple = llvm.get_process_triple()
    # Without LLVM's O3 IR pipeline (target.CODEGEN_ONLY): the kernel is already what the
    # machine code should be, and ran as fast without it (one thread, best of 15, three
    # shapes and transposes: 2544-2748 us against 2548-2759), which was 0.19 s of its
    # 0.45 s compile (the first large float32 product of a process waits for it).
    marker = ir.GlobalVariable(module, ir.IntType(8), target.CODEGEN_ONLY)
    marker.linkage, marker.global_constant = "internal", True
    marker.initializer = ir.Constant(ir.IntType(8), 0)
    kernels = {width: _micro_kernel(module, width) for width in KERNEL_WIDTHS}
    pack_a, pack_b = _pack(module, "a", MR), _pack(module, "b", NR)
    _entry(module, kernels, pack_a, pack_b, (fallback, fallback_width))
    return module


def _function(module, name, ret, args, names):
    fn = ir.Function(module, ir.FunctionType(ret, args), name)
    fn.linkage = "internal"
    for arg, n in zip(fn.args, names, strict=True):
        arg.name = n
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _i(v: int):
    return ir.Constant(I64, v)


def _min(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _micro_kernel(module, width: int):
    """void kernel(kc, a, b, c, ldc, rows, cols, alpha, beta, read_c): C's rows x cols
    tile (at most MR x width; B's slivers NR wide) = alpha * sum_p a[p] b[p]^T +
    (read_c ? beta * C : 0). Narrower than NR for a last sliver of few columns (the MLP's
    128 rows are 10 slivers of 12 and one of 8): the same operations on each element."""
    names = ("kc", "a", "b", "c", "ldc", "rows", "cols", "alpha", "beta", "read_c")
    args = [I64, FP, FP, FP, I64, I64, I64, F32, F32, I1]
    fn, b = _function(module, f"sgemm.kernel{width}", ir.VoidType(), args, names)
    kc, pa, pb, c, ldc, rows, cols, alpha, beta, read_c = fn.args
    for arg in (pa, pb, c):
        arg.add_attribute("noalias")
    fma = module.globals.get("llvm.fma.v16f32") or ir.Function(
        module, ir.FunctionType(V16, [V16] * 3), "llvm.fma.v16f32"
    )
    vp = V16.as_pointer()
    entry = b.block
    head, body, tail = (fn.append_basic_block(n) for n in ("steps", "step", "store"))
    b.branch(head)
    b.position_at_end(head)
    p = b.phi(I64, "p")
    p.add_incoming(_i(0), entry)
    zero = ir.Constant(V16, None)
    acc = []
    for _ in range(2 * width):
        phi = b.phi(V16)
        phi.add_incoming(zero, entry)
        acc.append(phi)
    b.cbranch(b.icmp_signed("<", p, kc), body, tail)

    b.position_at_end(body)
    a_row = b.gep(pa, [b.mul(p, _i(MR))])
    a = [b.load(b.bitcast(b.gep(a_row, [_i(h * VECTOR)]), vp), align=64) for h in range(2)]
    b_row = b.gep(pb, [b.mul(p, _i(NR))])
    updated = []
    for j in range(width):
        value = b.load(b.gep(b_row, [_i(j)]), align=4)
        splat = b.insert_element(ir.Constant(V16, ir.Undefined), value, ir.Constant(T.I32, 0))
        splat = b.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(T.I32, VECTOR), None))
        for h in range(2):
            updated.append(b.call(fma, [a[h], splat, acc[2 * j + h]]))
    for phi, value in zip(acc, updated, strict=True):
        phi.add_incoming(value, body)
    p.add_incoming(b.add(p, _i(1)), body)
    b.branch(head)

    b.position_at_end(tail)
    full = b.and_(b.icmp_signed("==", rows, _i(MR)), b.icmp_signed("==", cols, _i(width)))
    alphas = _splat(b, alpha)
    with b.if_else(full) as (whole, edge):
        with whole:
            betas = _splat(b, beta)
            for j in range(width):
                column = b.gep(c, [b.mul(_i(j), ldc)])
                for h in range(2):
                    at = b.bitcast(b.gep(column, [_i(h * VECTOR)]), vp)
                    _store_tile_vector(b, at, b.fmul(alphas, acc[2 * j + h]), betas, read_c)
        with edge:
            with b.goto_entry_block():
                tile = b.alloca(ir.ArrayType(V16, 2 * width))  # (fixed size: 1.5 KiB)
            for i, value in enumerate(acc):
                b.store(b.fmul(alphas, value), b.gep(tile, [_i(0), _i(i)]))
            flat = b.bitcast(tile, FP)
            with for_range(b, cols, "col") as j:
                with for_range(b, rows, "row") as i:
                    value = b.load(b.gep(flat, [b.add(b.mul(j, _i(MR)), i)]))
                    at = b.gep(c, [b.add(b.mul(j, ldc), i)])
                    _store_tile_scalar(b, at, value, beta, read_c)
    b.ret_void()
    return fn


def _splat(b, value):
    v = b.insert_element(ir.Constant(V16, ir.Undefined), value, ir.Constant(T.I32, 0))
    return b.shuffle_vector(v, v, ir.Constant(ir.VectorType(T.I32, VECTOR), None))


def _store_tile_vector(b, at, value, betas, read_c):
    with b.if_else(read_c) as (add, overwrite):
        with add:
            b.store(b.fadd(value, b.fmul(betas, b.load(at, align=4))), at, align=4)
        with overwrite:
            b.store(value, at, align=4)


def _store_tile_scalar(b, at, value, beta, read_c):
    """C = value + beta C where read_c, else value (as is: -0.0 stays -0.0, as in the
    vector path's tiles)."""
    b.store(b.select(read_c, b.fadd(value, b.fmul(beta, b.load(at))), value), at)


def _pack(module, which: str, width: int):
    """void pack(src, ld, transposed, first, count, p0, kc, dst): op(X)'s lines
    [first, first + count) (rows of op(A), columns of op(B)) over the inner dimension
    [p0, p0 + kc), into slivers of `width` lines: dst[s][p][w], zero past `count`.
    op(A)(x, p) is A[x + p ld] (A[p + x ld] transposed); op(B)(p, y) is B[p + y ld]
    (B[y + p ld] transposed): a line's elements are adjacent for A transposed and for B
    not transposed, else the lines are."""
    names = ("src", "ld", "transposed", "first", "count", "p0", "kc", "dst")
    args = [FP, I64, I1, I64, I64, I64, I64, FP]
    fn, b = _function(module, f"sgemm.pack_{which}", ir.VoidType(), args, names)
    src, ld, transposed, first, count, p0, kc, dst = fn.args
    along_p = b.not_(transposed) if which == "b" else transposed
    one = _i(1)
    slivers = b.sdiv(b.add(count, _i(width - 1)), _i(width))
    last = b.sub(slivers, one)
    edge = b.sub(count, b.mul(last, _i(width)))  # lines in the last sliver
    with b.if_then(b.icmp_signed("<", edge, _i(width))):  # zero its padding
        base = b.gep(dst, [b.mul(last, b.mul(kc, _i(width)))])
        with for_range(b, kc, "pad.p") as p:
            with for_range(b, _i(width), "pad.w", start=edge) as w:
                b.store(ir.Constant(F32, 0.0), b.gep(base, [b.add(b.mul(p, _i(width)), w)]))
    with b.if_else(along_p) as (lines_apart, lines_adjacent):
        with lines_apart:  # lines along p: transposed 16 x 16 at a time, the rest alone
            whole = b.sdiv(count, _i(width))
            steps = b.sub(kc, b.srem(kc, _i(VECTOR)))
            with for_range(b, whole, "sliver") as s:
                lines = b.add(first, b.mul(s, _i(width)))
                base = b.gep(dst, [b.mul(s, b.mul(kc, _i(width)))])
                with for_range(b, steps, "p16", step=VECTOR) as p:
                    _transpose_block(b, src, ld, lines, b.add(p0, p), width, base, p)
            with for_range(b, count, "line") as line:
                s, w = b.sdiv(line, _i(width)), b.srem(line, _i(width))
                base = b.gep(dst, [b.add(b.mul(s, b.mul(kc, _i(width))), w)])
                row = b.gep(src, [b.add(b.mul(b.add(first, line), ld), p0)])
                done = b.select(b.icmp_signed("<", line, b.mul(whole, _i(width))), steps, _i(0))
                with for_range(b, kc, "p", start=done) as p:
                    b.store(b.load(b.gep(row, [p])), b.gep(base, [b.mul(p, _i(width))]))
        with lines_adjacent:  # for each p, the whole run of lines (long reads)
            with for_range(b, kc, "p") as p:
                run = b.gep(src, [b.add(first, b.mul(b.add(p0, p), ld))])
                with for_range(b, slivers, "sliver") as s:
                    at = b.gep(run, [b.mul(s, _i(width))])
                    out = b.gep(dst, [b.add(b.mul(s, b.mul(kc, _i(width))), b.mul(p, _i(width)))])
                    lines = _min(b, _i(width), b.sub(count, b.mul(s, _i(width))))
                    with b.if_else(b.icmp_signed("==", lines, _i(width))) as (whole, part):
                        with whole:
                            vp = ir.VectorType(F32, width).as_pointer()
                            value = b.load(b.bitcast(at, vp), align=4)
                            b.store(value, b.bitcast(out, vp), align=4)
                        with part:
                            with for_range(b, lines, "w") as w:
                                b.store(b.load(b.gep(at, [w])), b.gep(out, [w]))
    b.ret_void()
    return fn


def _transpose_block(b, src, ld, first_line, p_src, width: int, base, p_dst) -> None:
    """Pack 16 steps of the inner dimension of `width` lines (each adjacent along p, `ld`
    apart): load 16 values of each line, transpose 16 x 16 blocks in registers (four
    rounds of two-vector shuffles), store each step's `width` values."""
    vp = V16.as_pointer()
    groups = []
    for g in range(-(-width // VECTOR)):
        rows = []
        for r in range(VECTOR):
            line = g * VECTOR + r
            if line < width:
                at = b.gep(src, [b.add(b.mul(b.add(first_line, _i(line)), ld), p_src)])
                rows.append(b.load(b.bitcast(at, vp), align=4))
            else:
                rows.append(ir.Constant(V16, None))
        groups.append(_transpose16(b, rows))
    wide = ir.VectorType(F32, width)
    for q in range(VECTOR):
        parts = [group[q] for group in groups]
        row = (
            parts[0]
            if len(parts) == 1
            else b.shuffle_vector(parts[0], parts[1], _mask(range(2 * VECTOR)))
        )
        if width < len(parts) * VECTOR:
            row = b.shuffle_vector(row, row, _mask(range(width)))
        at = b.gep(base, [b.mul(b.add(p_dst, _i(q)), _i(width))])
        b.store(row, b.bitcast(at, wide.as_pointer()), align=4)


def _mask(indices):
    return ir.Constant(
        ir.VectorType(T.I32, len(list(indices))), [ir.Constant(T.I32, i) for i in indices]
    )


def _transpose16(b, rows):
    """The 16 x 16 transpose of 16 vectors: at each block size d (8, 4, 2, 1), rows i and
    i + d swap their off-diagonal d x d blocks."""
    rows = list(rows)
    for d in (8, 4, 2, 1):
        for i in range(VECTOR):
            if i & d:
                continue
            low, high = rows[i], rows[i + d]
            upper = [c if not c & d else VECTOR + c - d for c in range(VECTOR)]
            lower = [c + d if not c & d else VECTOR + c for c in range(VECTOR)]
            rows[i] = b.shuffle_vector(low, high, _mask(upper))
            rows[i + d] = b.shuffle_vector(low, high, _mask(lower))
    return rows


def _entry(module, kernels, pack_a, pack_b, fallback: tuple[str, int]) -> None:
    """void graphjit_sgemm_own(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C,
    ldc): sgemm's arguments, all by reference (Fortran), 64-bit integers."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), _ARGS), SYMBOL)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ta_p, tb_p, m_p, n_p, k_p, alpha_p, a, lda_p, bm, ldb_p, beta_p, c, ldc_p = fn.args
    ta, tb = (_is_transposed(b, flag) for flag in (ta_p, tb_p))
    m, n, k, lda, ldb, ldc = (b.load(x) for x in (m_p, n_p, k_p, lda_p, ldb_p, ldc_p))
    alpha, beta = b.load(alpha_p), b.load(beta_p)
    zero = ir.Constant(F32, 0.0)

    with b.if_then(b.or_(b.icmp_signed("<=", m, _i(0)), b.icmp_signed("<=", n, _i(0)))):
        b.ret_void()
    only_scale = b.or_(b.icmp_signed("<=", k, _i(0)), b.fcmp_ordered("==", alpha, zero))
    with b.if_then(only_scale):
        _scale(b, c, ldc, m, n, beta)
        b.ret_void()

    malloc = T.external_function(module, "malloc", T.I8P, [I64])
    free = T.external_function(module, "free", ir.VoidType(), [T.I8P])
    # (a product that overflows here is of sizes beyond the fallback's 32 bits: ours)
    area = b.mul(m, n)
    few = b.and_(
        b.icmp_signed("<", area, _i(MIN_MACS)),
        b.icmp_signed("<", b.mul(area, k), _i(MIN_MACS)),
    )
    thin = b.or_(b.icmp_signed("<", m, _i(MR)), b.icmp_signed("<", n, _i(NR)))
    small = b.or_(thin, few)
    sizes = (m, n, k, lda, ldb, ldc)
    with b.if_then(b.and_(small, _all_fit_32_bits(b, sizes))):
        _call_fallback(b, fallback, fn.args, sizes)
        b.ret_void()
    # packing buffers as large as this product's blocks: rows and columns rounded up to
    # whole slivers (A's block is followed by B's, both 64-byte aligned)
    depth = _min(b, _i(KC), k)
    a_floats = b.mul(_round_up(b, _min(b, _i(MC), m), MR), depth)
    b_floats = b.mul(_round_up(b, _min(b, _i(NC), n), NR), depth)
    a_floats = _round_up(b, a_floats, 16)
    raw = b.call(malloc, [b.add(b.mul(b.add(a_floats, b_floats), _i(4)), _i(64))])
    with b.if_then(b.icmp_unsigned("==", raw, ir.Constant(T.I8P, None))):
        _naive(b, (ta, tb), (m, n, k), (a, lda, bm, ldb, c, ldc), (alpha, beta))
        b.ret_void()
    aligned = b.and_(b.add(b.ptrtoint(raw, I64), _i(63)), _i(-64))
    packed_a = b.inttoptr(aligned, FP)
    packed_b = b.gep(packed_a, [a_floats])

    with for_range(b, n, "jc", step=NC) as jc:
        nc = _min(b, _i(NC), b.sub(n, jc))
        with for_range(b, k, "pc", step=KC) as pc:
            kc = _min(b, _i(KC), b.sub(k, pc))
            first = b.icmp_signed("==", pc, _i(0))
            read_c = b.or_(b.not_(first), b.fcmp_unordered("!=", beta, zero))
            beta_now = b.select(first, beta, ir.Constant(F32, 1.0))
            b.call(pack_b, [bm, ldb, tb, jc, nc, pc, kc, packed_b])
            with for_range(b, m, "ic", step=MC) as ic:
                mc = _min(b, _i(MC), b.sub(m, ic))
                b.call(pack_a, [a, lda, ta, ic, mc, pc, kc, packed_a])
                with for_range(b, nc, "jr", step=NR) as jr:
                    cols = _min(b, _i(NR), b.sub(nc, jr))
                    b_sliver = b.gep(packed_b, [b.mul(jr, kc)])
                    with for_range(b, mc, "ir", step=MR) as ir_:
                        rows = _min(b, _i(MR), b.sub(mc, ir_))
                        a_sliver = b.gep(packed_a, [b.mul(ir_, kc)])
                        corner = b.add(b.add(ic, ir_), b.mul(b.add(jc, jr), ldc))
                        args = [kc, a_sliver, b_sliver, b.gep(c, [corner]), ldc, rows, cols]
                        _call_narrowest(b, kernels, cols, args + [alpha, beta_now, read_c])
    b.call(free, [raw])
    b.ret_void()


def _call_narrowest(b, kernels: dict, cols, args) -> None:
    """The kernel of the fewest columns that covers `cols`."""
    *narrow, widest = sorted(kernels)
    if not narrow:
        b.call(kernels[widest], args)
        return
    with b.if_else(b.icmp_signed("<=", cols, _i(narrow[0]))) as (fits, wider):
        with fits:
            b.call(kernels[narrow[0]], args)
        with wider:
            _call_narrowest(b, {w: kernels[w] for w in (*narrow[1:], widest)}, cols, args)


def _round_up(b, value, multiple: int):
    return b.mul(b.sdiv(b.add(value, _i(multiple - 1)), _i(multiple)), _i(multiple))


def _all_fit_32_bits(b, values):
    fits = ir.Constant(I1, 1)
    for value in values:
        fits = b.and_(fits, b.icmp_signed("<", value, _i(2**31)))
    return fits


def _call_fallback(b, fallback: tuple[str, int], args, sizes) -> None:
    """The fallback sgemm with this call's arguments; its integers may be 32-bit (the
    caller checked that they fit)."""
    symbol, width = fallback
    integer = ir.IntType(width)
    args = list(args)
    if width != 64:
        for index, value in zip((2, 3, 4, 7, 9, 12), sizes, strict=True):
            with b.goto_entry_block():
                slot = b.alloca(integer)
            b.store(b.trunc(value, integer), slot)
            args[index] = slot
    function = T.external_function(b.module, symbol, ir.VoidType(), [a.type for a in args])
    b.call(function, args)


def _naive(b, transposed, sizes, operands, scaling) -> None:
    """C = alpha op(A) op(B) + beta C by dot products, with no buffers: where the packing
    buffers could not be allocated."""
    (ta, tb), (m, n, k), (a, lda, bm, ldb, c, ldc), (alpha, beta) = (
        transposed,
        sizes,
        operands,
        scaling,
    )
    zero = ir.Constant(F32, 0.0)
    keep = b.fcmp_unordered("!=", beta, zero)
    with b.goto_entry_block():
        total = b.alloca(F32)
    with for_range(b, n, "naive.col") as y:
        with for_range(b, m, "naive.row") as x:
            b.store(zero, total)
            with for_range(b, k, "naive.p") as p:
                a_at = b.select(ta, b.add(p, b.mul(x, lda)), b.add(x, b.mul(p, lda)))
                b_at = b.select(tb, b.add(y, b.mul(p, ldb)), b.add(p, b.mul(y, ldb)))
                product = b.fmul(b.load(b.gep(a, [a_at])), b.load(b.gep(bm, [b_at])))
                b.store(b.fadd(b.load(total), product), total)
            at = b.gep(c, [b.add(x, b.mul(y, ldc))])
            _store_tile_scalar(b, at, b.fmul(alpha, b.load(total)), beta, keep)


def _is_transposed(b, flag):
    letter = b.load(flag)
    return b.or_(
        b.icmp_unsigned("==", letter, ir.Constant(T.I8, ord("T"))),
        b.icmp_unsigned("==", letter, ir.Constant(T.I8, ord("t"))),
    )


def _scale(b, c, ldc, m, n, beta):
    """C = beta C, not reading C where beta is 0."""
    zero = ir.Constant(F32, 0.0)
    keep = b.fcmp_unordered("!=", beta, zero)
    with for_range(b, n, "scale.col") as j:
        with for_range(b, m, "scale.row") as i:
            at = b.gep(c, [b.add(i, b.mul(j, ldc))])
            old = b.select(keep, b.load(at), zero)
            b.store(b.select(keep, b.fmul(beta, old), zero), at)
