"""Matmul through BLAS's Fortran sgemm/dgemm, called from generated code by name.

Which BLAS: NumPy's own OpenBLAS when its wheel bundles one (scipy-openblas, 64-bit
integers), else the gemm SciPy exports to Cython (as Numba uses). Sharing NumPy's library
matters twice over: two OpenBLAS builds in one process keep two thread pools spinning
against each other on the same cores, and NumPy's newer build is ~1.5x faster than
SciPy's on the MLP's 128x1024 @ 1024x1024 here. Generated code calls `graphjit_sgemm` /
`graphjit_dgemm`, bound to the library's address in this process (llvm.add_symbol), so the
IR and any cached object code stay valid across processes and address-space layouts."""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import warnings
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from graphjit import config
from graphjit.codegen.llvm import sgemm, small_gemm
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range
from graphjit.codegen.llvm.sizes import run_size
from graphjit.codegen.llvm.types import F32, F64, I8, I32, I64
from graphjit.errors import BackendError
from graphjit.ir.symbolic import hint, is_symbolic, known_at_least

# (symbol pattern, integer width) of the Fortran gemm in NumPy's bundled OpenBLAS builds
_NUMPY_GEMMS = (("scipy_{}gemm_64_", I64), ("{}gemm_64_", I64), ("scipy_{}gemm_", I32))


@dataclass(frozen=True)
class Gemm:
    """A Fortran ?gemm: where it is and how wide its integer arguments are."""

    symbol: str  # the name generated code calls it by
    provider: str
    address: int
    int_type: ir.IntType


def _numpy_openblas() -> ctypes.CDLL | None:
    """The OpenBLAS NumPy's wheel bundles (already loaded: opening it again shares it)."""
    import numpy

    root = os.path.dirname(numpy.__file__)
    patterns = [
        os.path.join(root + ".libs", "lib*openblas*.so*"),  # Linux wheels
        os.path.join(root, ".dylibs", "lib*openblas*.dylib"),  # macOS wheels
    ]
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _scipy_gemm_address(letter: str) -> int:
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[f"{letter}gemm"]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


@functools.cache
def gemm(dtype_name: str) -> Gemm:
    """The gemm for float32/float64, registered with LLVM under its symbol."""
    letter = "s" if dtype_name == "float32" else "d"
    symbol = f"graphjit_{letter}gemm"
    found = None
    library = None if config.blas() == "scipy" else _numpy_openblas()
    for pattern, int_type in _NUMPY_GEMMS if library is not None else ():
        function = getattr(library, pattern.format(letter), None)
        if function is not None:
            address = ctypes.cast(function, ctypes.c_void_p).value
            found = Gemm(symbol, "numpy-openblas", address, int_type)
            break
    if found is None:
        found = Gemm(symbol, "scipy-cython-blas", _scipy_gemm_address(letter), I32)
    llvm.add_symbol(found.symbol, found.address)
    return found


def call_gemm(
    b: ir.IRBuilder,
    local,
    dtype_name: str,
    pointers,
    sizes,
    transposed,
    scaling,
    block=None,
    blas: Gemm | None = None,
    dims=None,
):
    """C (m×n) = alpha·op(A) @ op(B) (+ C when accumulating), row-major, op a transpose
    where `transposed` says so (A is k×m, B n×k then). Column-major BLAS computes
    Cᵀ = op(B)ᵀ op(A)ᵀ: B's row-major storage is its transpose in column-major, so the
    flags carry over unchanged. `block` (rows, cols; i64 values) computes a block of C
    whose pointers the caller offset, with the full matrices' leading dimensions. `blas`:
    the gemm to call (gemm(dtype_name) by default). Sizes of the run (SymInts) are read
    from `dims`, the function's `i64*` of them (sizes.py)."""
    (a, bmat, c), (m, n, k), (ta, tb), (alpha, accumulate) = pointers, sizes, transposed, scaling
    t = F32 if dtype_name == "float32" else F64
    blas = blas or gemm(dtype_name)
    tp, ip, i8p = t.as_pointer(), blas.int_type.as_pointer(), I8.as_pointer()
    args = [i8p, i8p, ip, ip, ip, tp, tp, ip, tp, ip, tp, tp, ip]
    function = T.external_function(b.module, blas.symbol, ir.VoidType(), args)

    def slot(value, typ):
        ptr = local(typ)
        if is_symbolic(value):
            value = run_size(b, dims, value)
        if isinstance(value, ir.Value):  # an i64 computed at run time
            value = b.trunc(value, typ) if typ.width < 64 else value
        else:
            value = ir.Constant(typ, value)
        b.store(value, ptr)
        return ptr

    def integer(value):
        return slot(value, blas.int_type)

    def flag(transposed):
        return slot(ord("T" if transposed else "N"), I8)

    if any(d >= 1 << (blas.int_type.width - 1) for d in (m, n, k)):  # (32-bit sizes)
        raise BackendError(
            f"a {m}x{k} @ {k}x{n} matrix product is too large for the BLAS at hand "
            f"({blas.provider}: {blas.int_type.width}-bit sizes)"
        )
    rows, cols = block if block is not None else (m, n)
    beta = slot(1.0 if accumulate else 0.0, t)
    args = [flag(tb), flag(ta), integer(cols), integer(rows), integer(k), slot(alpha, t), bmat]
    args += [integer(k if tb else n), a, integer(m if ta else k), beta, c, integer(n)]
    b.call(function, args)


# -- matmuls split over graphjit's threads -------------------------------------------------
# OpenBLAS splits a matmul over its own threads statically and they wait for each other
# spinning: on a machine where one other process is busy, the transformer training step
# took 0.35-2.4 s with NumPy's OpenBLAS on 2 threads against 80 ms on one (each call waits
# for a thread that has no core). So a large matmul (or a batch of small ones) runs as
# blocks claimed by graphjit's threads (parallel.call_split: a stalled thread holds up one
# block), each block a single-threaded BLAS call. Single-threaded calls need a BLAS whose
# thread count graphjit may set without changing NumPy's: the OpenBLAS SciPy's wheel
# bundles (a library of its own), set to one thread when first used -- SciPy's own linear
# algebra in the process then runs on one thread too. Where SciPy bundles none, matmuls
# call NumPy's BLAS as one call (its own threads). Quiet, 2 cores, the transformer step
# went from 72 to 52 ms; the 128x1024 @ 1024x1024 product is within ~10% of OpenBLAS's
# own two threads (1.66 against 1.51 ms). (With graphjit's own float32 kernel on its
# blocks, sgemm.py: 1.35-1.40 ms, as jax.jit's.)
# Below SPLIT_MIN_MACS one call is cheaper than a split; a block has at least
# BLOCK_MIN_MACS. Since the pool's workers wait for the next job without sleeping for a
# while (pool.WORKER_YIELDS), a split costs microseconds, and products of 0.5-2M
# multiply-adds pay for it (best of 5, 2 threads): 128x1024 @ 1024x10 67 -> 27 us (NumPy's
# OpenBLAS on its 2 threads: 35), 64x1024 @ 1024x64 111 -> 65 us (62). (Were 2M and 1M;
# NARROWEST_BLOCK was 64.)
SPLIT_MIN_MACS = 1 << 19
BLOCK_MIN_MACS = 1 << 18
# Each block packs the whole of the operand it does not split (OpenBLAS copies operands
# into its own layout first): a block w wide packs ~1/w of an element per multiply-add,
# where the kernel does ~32 multiply-adds a cycle and a copy ~1 element, so blocks 64 wide
# spent a third of their time packing (the transformer step: 19% of it in OpenBLAS's
# copy routines). Blocks at least 512 wide, at most 8 a matrix, keep packing near a
# twentieth and still let a stalled thread hand its blocks to the others. (256 wide: the
# MLP's 128x1024 @ 1024x1024 products ran in 4 blocks, and its training step 4-6% slower,
# alternated quiet; under a busy process the two were level. No other bench row moved.)
# The split does not depend on the run-time thread count, so neither do the bits.
BLOCK_MIN_WIDTH = 512
NARROWEST_BLOCK = 32
MAX_BLOCKS = 8
# A batch of products is already work for every thread: split its matrices only until
# there are this many blocks in all (call_split's default chunk count), else each block
# repacks what it shares with its sibling for nothing. 64 products of 128x128x128 in 2
# blocks each ran 4.4-4.6 ms, whole 4.1-4.3 ms (batched_matmul, alternated).
ENOUGH_BLOCKS = config.MAX_THREADS * 4


def _scipy_openblas() -> ctypes.CDLL | None:
    """The OpenBLAS SciPy's wheel bundles, when it is another library than NumPy's."""
    try:
        import scipy
    except ImportError:
        return None
    numpy_library = _numpy_openblas()
    root = os.path.dirname(scipy.__file__)
    for path in sorted(glob.glob(os.path.join(root + ".libs", "lib*openblas*.so*"))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        if numpy_library is None or library._handle != numpy_library._handle:
            return library
    return None


def single_threaded_gemm(dtype_name: str, sizes) -> Gemm | None:
    """The single-threaded gemm for an m×n×k product whose sizes it takes, or None:
    graphjit's own float32 kernel (sgemm.py) where the product may be large enough for it,
    else the OpenBLAS split matmuls call. (A program of small products never compiles
    the kernel: ~0.2 s once a process.)"""
    found = split_gemm(dtype_name)
    if found is None or not all(d < 1 << 31 for d in sizes):
        return None
    if dtype_name == "float32" and _may_run_own_kernel(sizes):
        return own_sgemm() or found
    return found


def _may_run_own_kernel(sizes) -> bool:
    """Whether sgemm.py's kernel takes some of an m×n×k product (row-major C is m×n: the
    kernel's rows are its columns), rather than handing it all to OpenBLAS."""
    m, n, k = sizes
    if any(is_symbolic(d) for d in sizes):
        return True
    return m >= sgemm.NR and n >= sgemm.MR and m * n * k >= sgemm.MIN_MACS


@functools.cache
def own_sgemm() -> Gemm | None:
    """graphjit's float32 kernel, compiled on first use, where the CPU runs it (AVX-512)
    and a single-threaded OpenBLAS takes the products it hands over; else None."""
    fallback = split_gemm("float32")
    if fallback is None or not sgemm.available():
        return None
    try:
        address = sgemm.address(fallback.symbol, fallback.int_type.width)
    except BackendError as e:  # (no compile worker, say): OpenBLAS does them all
        warnings.warn(
            f"graphjit's sgemm could not be compiled ({e}); float32 matmuls call OpenBLAS",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    own = Gemm(sgemm.SYMBOL, "graphjit-avx512", address, I64)
    llvm.add_symbol(own.symbol, own.address)
    return own


@functools.cache
def split_gemm(dtype_name: str) -> Gemm | None:
    """The single-threaded OpenBLAS split matmuls call (see above), or None."""
    if config.blas() != "auto":
        return None
    library = _scipy_openblas()
    letter = "s" if dtype_name == "float32" else "d"
    setter = getattr(library, "scipy_openblas_set_num_threads", None) if library else None
    function = getattr(library, f"scipy_{letter}gemm_", None) if library else None
    if setter is None or function is None:
        return None
    setter.argtypes, setter.restype = [ctypes.c_int], None
    setter(1)
    symbol = f"graphjit_{letter}gemm_1"
    found = Gemm(symbol, "scipy-openblas-1", ctypes.cast(function, ctypes.c_void_p).value, I32)
    llvm.add_symbol(symbol, found.address)
    return found


def _blocks(m: int, n: int, k: int, count: int) -> tuple[bool, int]:
    """(split C's columns rather than its rows, how many blocks) for each of `count`
    m×n×k products. Under 2 * BLOCK_MIN_WIDTH wide, a large product still takes two
    blocks down to NARROWEST_BLOCK: a convolution's filter gradient (64 x 288, summed over
    784 pixels an image) would otherwise run on one thread. (Sizes of the run:
    _block_count.)"""
    by_columns = n >= m
    width = n if by_columns else m
    wide = width // BLOCK_MIN_WIDTH
    if wide < 2:
        wide = 2 if width >= 2 * NARROWEST_BLOCK else 1
    enough = -(-ENOUGH_BLOCKS // count)
    return by_columns, max(1, min(wide, (m * n * k) // BLOCK_MIN_MACS, MAX_BLOCKS, enough))


def split_matmul(
    low, dtype_name: str, pointers, batch, strides, sizes, transposed, scaling, direct
) -> None:
    """C = op(A) @ op(B) over `batch` (A's and B's matrix strides in `strides`, broadcast
    0) as blocks on graphjit's threads, or by `direct()` (which emits the caller's one
    BLAS call per matrix) where that does not pay or no single-threaded BLAS is at hand.
    A product whose size is known only when it runs (ir/symbolic.py) chooses then."""
    from graphjit.codegen.llvm.parallel import call_split

    (m, n, k), count = sizes, 1
    for d in batch:
        count *= d
    macs = count * m * n * k
    if not is_symbolic(macs) and macs < SPLIT_MIN_MACS:
        direct()
        return
    if small_gemm.takes_blocks(dtype_name, sizes, transposed):
        task, blocks = _one_per_module(
            low.module, _tile_task, dtype_name, batch, strides, sizes, transposed, scaling
        )
        call_split(low, task, [*pointers, low.dims], blocks, macs)
        return
    blas = single_threaded_gemm(dtype_name, sizes)
    if blas is None:
        direct()
        return
    if not is_symbolic(macs):
        by_columns, blocks = _blocks(m, n, k, count)
        if count * blocks < 2:
            direct()
            return
        task = _one_per_module(
            low.module,
            _block_task,
            blas,
            dtype_name,
            batch,
            strides,
            sizes,
            transposed,
            scaling,
            by_columns,
        )
        call_split(low, task, [*pointers, low.dims], count * blocks, macs)
        return
    task_args = (blas, dtype_name, batch, strides, sizes, transposed, scaling)
    by_columns = known_at_least(n, m)
    if by_columns is None:  # the longer side at the hints: either split is right for all
        by_columns = hint(n) >= hint(m)
    _split_at_run_time(low, pointers, count, direct, task_args, by_columns)


def _split_at_run_time(low, pointers, count, direct, task_args, by_columns: bool) -> None:
    """split_matmul's blocks for sizes of the run: how many, and whether they pay, are
    computed when it runs."""
    from graphjit.codegen.llvm.parallel import call_split

    b = low.b
    sizes = task_args[4]
    m, n, k = sizes
    task = _one_per_module(low.module, _block_task, *task_args, by_columns)
    extent = b.mul(low.i64(count), _block_count(b, low.dims, sizes, count, by_columns))
    large = b.and_(
        b.icmp_signed(">=", low.i64(count * m * n * k), ir.Constant(I64, SPLIT_MIN_MACS)),
        b.icmp_signed(">=", extent, ir.Constant(I64, 2)),
    )
    with b.if_else(large) as (split, small):
        with split:
            call_split(low, task, [*pointers, low.dims], extent, count * m * n * k)
        with small:
            direct()


def _one_per_module(module, make, *args):
    """make(module, *args), made once per module for the same arguments: a model's layers
    multiply matrices of the same shapes, and each product made its own task function (an
    8-layer transformer step: 294 of them, 18 different, 0.7 s of its lowering). The key
    is the arguments' repr, since strides and sizes come as lists and SymInts."""
    made = getattr(module, "graphjit_tasks", None)
    if made is None:
        made = module.graphjit_tasks = {}
    key = (make.__name__, repr(args))
    if key not in made:
        made[key] = make(module, *args)
    return made[key]


def _block_count(b: ir.IRBuilder, dims, sizes, count, by_columns: bool) -> ir.Value:
    """_blocks's count as an i64 computed at `b` (from the run's sizes where they are
    symbolic: the split is then chosen when the program runs, for any batch size)."""
    m, n, k = sizes
    width = n if by_columns else m
    if not (is_symbolic(width) or is_symbolic(m * n * k) or is_symbolic(count)):
        return ir.Constant(I64, _blocks(m, n, k, count)[1])

    def at_most(x, y):
        return b.select(b.icmp_unsigned("<", x, y), x, y)

    width, macs = run_size(b, dims, width), run_size(b, dims, m * n * k)
    wide = at_most(b.udiv(width, ir.Constant(I64, BLOCK_MIN_WIDTH)), ir.Constant(I64, MAX_BLOCKS))
    fits_two = b.icmp_unsigned(">=", width, ir.Constant(I64, 2 * NARROWEST_BLOCK))
    narrow = b.select(fits_two, ir.Constant(I64, 2), ir.Constant(I64, 1))
    wide = b.select(b.icmp_unsigned("<", wide, ir.Constant(I64, 2)), narrow, wide)
    blocks = at_most(wide, b.udiv(macs, ir.Constant(I64, BLOCK_MIN_MACS)))
    count = run_size(b, dims, count)
    enough = b.udiv(b.add(ir.Constant(I64, ENOUGH_BLOCKS - 1), count), count)
    blocks = at_most(blocks, enough)
    one = ir.Constant(I64, 1)
    return b.select(b.icmp_unsigned("<", blocks, one), one, blocks)


def _block_task(module, blas, dtype_name, batch, strides, sizes, transposed, scaling, by_columns):
    """void task(A, B, C, i64* dims, i64 lo, i64 hi): blocks [lo, hi) of the batch's
    products, block t being block t % blocks of matrix t // blocks; `dims` the run's sizes
    (sizes.py)."""
    m, n, _ = sizes
    width = n if by_columns else m
    fn = _task_function(module, dtype_name, "gemm_blocks")
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    a, bm, c, dims, lo, hi = fn.args

    def local(typ):
        with b.goto_block(entry):
            b.position_at_start(entry)
            return b.alloca(typ)

    def const(v):
        return run_size(b, dims, v)

    count = 1
    for d in batch:
        count *= d
    blocks = _block_count(b, dims, sizes, count, by_columns)
    step = b.udiv(b.add(const(width), b.sub(blocks, const(1))), blocks)  # (rounded up)
    with for_range(b, hi, "block", start=lo) as t:
        matrix, part = b.udiv(t, blocks), b.urem(t, blocks)
        first = b.mul(part, step)
        size = b.sub(
            b.select(
                b.icmp_unsigned("<", b.add(first, step), const(width)),
                b.add(first, step),
                const(width),
            ),
            first,
        )
        block = (const(m), size) if by_columns else (size, const(n))
        pointers = _block_pointers(
            b, const, (a, bm, c), matrix, first, by_columns, batch, strides, sizes, transposed
        )
        call_gemm(b, local, dtype_name, pointers, sizes, transposed, scaling, block, blas, dims)
    b.ret_void()
    return fn


# Thread-count setters of NumPy's bundled OpenBLAS builds (the library gemm() calls)
_THREAD_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads")
_THREAD_SETTERS += ("openblas_set_num_threads64_", "openblas_set_num_threads")


def set_blas_threads(n: int) -> bool:
    """Run BLAS calls on `n` threads; False where the BLAS graphjit calls has no known
    setter (SciPy's, chosen with GRAPHJIT_BLAS=scipy: use threadpoolctl for it)."""
    library = None if config.blas() == "scipy" else _numpy_openblas()
    for name in _THREAD_SETTERS if library is not None else ():
        setter = getattr(library, name, None)
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            setter(n)
            return True
    return False


def _task_function(module, dtype_name: str, prefix: str) -> ir.Function:
    """A new internal `void task(A, B, C, i64* dims, i64 lo, i64 hi)` of the module, the
    signature call_split calls with blocks [lo, hi)."""
    ptr = (F32 if dtype_name == "float32" else F64).as_pointer()
    fn = ir.Function(
        module,
        ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, T.I64.as_pointer(), T.I64, T.I64]),
        f"{prefix}{len(module.functions)}",
    )
    fn.linkage = "internal"
    return fn


def _block_pointers(
    b, const, pointers, matrix, first, by_columns, batch, strides, sizes, transposed
):
    """A, B and C where the block of product `matrix` of the batch starts whose first
    column (by_columns) or row of C is `first` (an i64). A product's place is its index
    unravelled over the batch (a broadcast operand's stride is 0)."""
    (m, n, k), (ta, tb) = sizes, transposed
    a_off, b_off, rest = const(0), const(0), matrix
    for d in reversed(range(len(batch))):
        coord = b.urem(rest, const(batch[d]))
        rest = b.udiv(rest, const(batch[d]))
        a_off = b.add(a_off, b.mul(coord, const(strides[0][d] * m * k)))
        b_off = b.add(b_off, b.mul(coord, const(strides[1][d] * k * n)))
    c_off = b.mul(matrix, const(m * n))
    if by_columns:  # C[:, first:...] = op(A) @ op(B)[:, first:...]
        b_off = b.add(b_off, b.mul(first, const(k)) if tb else first)
        c_off = b.add(c_off, first)
    else:  # C[first:..., :] = op(A)[first:...] @ op(B)
        a_off = b.add(a_off, first if ta else b.mul(first, const(k)))
        c_off = b.add(c_off, b.mul(first, const(n)))
    a, bm, c = pointers
    return b.gep(a, [a_off]), b.gep(bm, [b_off]), b.gep(c, [c_off])


def _tile_task(module, dtype_name, batch, strides, sizes, transposed, scaling) -> tuple:
    """(void task(A, B, C, i64* dims, i64 lo, i64 hi), its block count) for a batch of
    products small_gemm.takes_blocks (of a size of the run, perhaps: `dims` the run's
    sizes, sizes.py): block t is part t % parts of product t // parts,
    whole products where the batch alone gives the threads enough blocks, else blocks of
    rows or columns of C (small_gemm.block_plan), each a call of small_gemm's function for
    its static sizes. No BLAS, no packing: between 0.5M and 2M multiply-adds OpenBLAS's
    blocks spent more in packing and calls than the tiles do in all."""
    m, n, _ = sizes
    count = 1
    for d in batch:
        count *= d
    blocks = -(-ENOUGH_BLOCKS // hint(count))  # (a batch of the run's: its hint, unpinned)
    by_columns, step = small_gemm.block_plan(dtype_name, sizes, transposed, blocks)
    width = n if by_columns else m
    parts, last = -(-width // step), width - (-(-width // step) - 1) * step
    fn = _task_function(module, dtype_name, "gemm_tiles")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    a, bm, c, dims, lo, hi = fn.args

    def const(v):
        return run_size(b, dims, v)

    with for_range(b, hi, "block", start=lo) as t:
        matrix, part = b.udiv(t, const(parts)), b.urem(t, const(parts))
        first = b.mul(part, const(step))
        pointers = _block_pointers(
            b, const, (a, bm, c), matrix, first, by_columns, batch, strides, sizes, transposed
        )

        def block(size: int) -> None:
            shape = (m, size) if by_columns else (size, n)
            small_gemm.call_block(b, dtype_name, pointers, sizes, transposed, scaling, shape)

        if last == step:
            block(step)
        else:
            with b.if_else(b.icmp_unsigned("==", part, const(parts - 1))) as (tail, whole):
                with tail:
                    block(last)
                with whole:
                    block(step)
    b.ret_void()
    return fn, count * parts
