"""Batched matmul as a tiled kernel: a block of tile x tile threads computes one tile of
one output matrix, staging tiles of both operands through shared memory so each element
is read from global memory once per tile instead of once per product. Batch dimensions
broadcast as in np.matmul (stride 0 along broadcast axes). float16/bfloat16 operands are
staged widened to float32 and accumulated in float32; the result is rounded once."""

from __future__ import annotations

from graphjit.codegen.cuda.narrow import load, store
from graphjit.codegen.cuda.source import (
    Launch,
    Writer,
    coordinates,
    header,
    kernel_source,
    literal,
    numba_type,
    offset,
    register_dtype,
)
from graphjit.codegen.cuda.target import LaunchConfig
from graphjit.codegen.layout import broadcast_strides, contiguous_strides, size_of
from graphjit.ir.core import Operation
from graphjit.ir.ops.linalg import matrix_dims


def matmul_launch(op: Operation, cfg: LaunchConfig) -> Launch:
    a, b, out = op.operands[0], op.operands[1], op.result
    ta, tb = op.attrs["transpose_a"], op.attrs["transpose_b"]
    m, k = matrix_dims(a.type.shape, ta)
    n = matrix_dims(b.type.shape, tb)[1]
    batch = out.type.shape[:-2]
    t = cfg.tile
    tiles_m, tiles_n = -(-m // t), -(-n // t)
    tasks = size_of(batch) * tiles_m * tiles_n
    dtype = out.type.dtype
    ctor, zero = numba_type(dtype), literal(0, dtype)
    accumulate = op.name == "gemm"  # c = c_in + alpha * a @ b
    params = [("a", dtype), ("b", dtype)] + [("c_in", dtype)] * accumulate + [("c", dtype)]
    w = Writer()
    with w.block(header(params)):
        w.line("tx = cuda.threadIdx.x")
        w.line("ty = cuda.threadIdx.y")
        w.line(f"sa = cuda.shared.array(({t}, {t}), {ctor})")
        w.line(f"sb = cuda.shared.array(({t}, {t}), {ctor})")
        with w.block(f"for task in range(cuda.blockIdx.x, {tasks}, cuda.gridDim.x)"):
            w.line(f"row = ((task // {tiles_n}) % {tiles_m}) * {t} + ty")
            w.line(f"col = (task % {tiles_n}) * {t} + tx")
            coords = coordinates(w, f"(task // {tiles_m * tiles_n})", batch, "c")
            for name, v, size in (("abase", a, m * k), ("bbase", b, k * n)):
                strides = broadcast_strides(v.type.shape[:-2], batch)
                w.line(f"{name} = {offset(coords, [s * size for s in strides])}")
            w.line(f"cbase = {offset(coords, [s * m * n for s in contiguous_strides(batch)])}")
            w.line(f"acc = {zero}")
            with w.block(f"for k0 in range(0, {k}, {t})"):
                a_at = _element("abase", "row", "k0 + tx", m, k, ta)
                _stage(w, "sa", f"row < {m} and k0 + tx < {k}", load(f"a[{a_at}]", dtype), zero)
                b_at = _element("bbase", "k0 + ty", "col", k, n, tb)
                _stage(w, "sb", f"k0 + ty < {k} and col < {n}", load(f"b[{b_at}]", dtype), zero)
                w.line("cuda.syncthreads()")
                with w.block(f"for q in range({t})"):
                    w.line(f"acc = {ctor}(acc + sa[ty, q] * sb[q, tx])")
                w.line("cuda.syncthreads()")
            with w.block(f"if row < {m} and col < {n}"):
                at = f"cbase + row * {n} + col"
                if accumulate:  # (a narrow gemm's alpha is float32: the interpreter's)
                    alpha = literal(op.attrs["alpha"], register_dtype(dtype))
                    w.line(f"acc = {ctor}({load(f'c_in[{at}]', dtype)} + {alpha} * acc)")
                w.line(f"c[{at}] = {store('acc', dtype)}")
    flags = "".join(f" {name}" for name in ("transpose_a", "transpose_b") if op.attrs[name])
    title = f"matmul {list(a.type.shape)} @ {list(b.type.shape)}{flags}"
    kernel = kernel_source(w, params, title)
    return Launch(kernel, cfg.blocks(tasks), (t, t), (*op.operands, out))


def _element(base: str, row: str, col: str, rows: int, cols: int, transposed: bool) -> str:
    """The flat index of [row, col] of a rows×cols row-major matrix, stored transposed
    (cols×rows) when `transposed`."""
    if transposed:
        return f"{base} + ({col}) * {rows} + {row}"
    return f"{base} + ({row}) * {cols} + {col}"


def _stage(w: Writer, tile: str, inside: str, load: str, zero: str) -> None:
    """Each thread copies one element of the operand's tile (zero past its edge)."""
    with w.block(f"if {inside}"):
        w.line(f"{tile}[ty, tx] = {load}")
    with w.block("else"):
        w.line(f"{tile}[ty, tx] = {zero}")
