"""One `fused` region op (made by the fusion pass) -> CUDA kernel source.

Without a reduction: a grid-stride loop over the flat iteration space; each thread loads
element i of its inputs (broadcast inputs through their strides), evaluates the region
with the scalar table and stores element i of every output. Loads come before stores
within one element, so an output the memory plan puts over an input is safe.

With a reduction (always the region's last op): the space splits into M outputs (the
kept axes) times R reduced elements. A block takes a (output, part) task, its threads
fold strided elements into registers, then a shared-memory tree combines them. When M is
too small to fill the GPU, each output is split over P blocks that write partial results,
and a second kernel folds those: no atomics, so the result does not depend on timing.
Outputs other than the reduction (values also used outside the kernel) are stored at
every element on the way.

float16/bfloat16 (narrow.py): loads widen to float32, each op's narrow result is rounded
once, a reduction folds in float32 (its partial results too) and rounds when stored."""

from __future__ import annotations

import math

from graphjit.codegen.cuda.narrow import load, rounded, store
from graphjit.codegen.cuda.scalar import (
    CUDA_CHECKS,
    combine,
    identity,
    needs_rounding,
    scalar_expression,
)
from graphjit.codegen.cuda.source import (
    KernelSource,
    Launch,
    Scratch,
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
from graphjit.codegen.layout import (
    broadcast_strides,
    coalesce,
    contiguous_strides,
    iteration_space,
    keepdims_shape,
    size_of,
)
from graphjit.ir.core import Block, Operation, Value
from graphjit.ir.ops import CONSTANT, REDUCTION
from graphjit.ir.ops.elementwise import value_checked_ops
from graphjit.ir.types import int64


def fused_launches(op: Operation, cfg: LaunchConfig, check: bool = False) -> list[Launch]:
    """The launches computing fused `op`; with `check` (check_numerics) its kernel flags
    the first op of the region whose result has a NaN or an infinity."""
    body = op.regions[0].block
    reduction = next((inner for inner in body.ops if inner.opdef.has(REDUCTION)), None)
    flag = _Flag(body, check) if check or value_checked_ops(body) else None
    if reduction is None:
        return [_elementwise(op, body, cfg, flag)]
    return _ReductionKernel(op, body, reduction, cfg, flag).launches()


class _Flag:
    """Checks inside a kernel, folded into one int64 by atomic min. check_numerics: after
    each floating-point op n, a non-finite result (x - x is 0 exactly for finite x) lowers
    the flag to 2n (NaN) or 2n + 1 (infinity). Value checks (an integer power with a
    negative exponent, the CUDA_CHECKS table) lower it to -(n + 1), below every numerics
    code: a failed check is reported first, as the other backends stop at it."""

    def __init__(self, body: Block, numerics: bool):
        self.scratch = Scratch(int64, 1)
        self.checks = tuple(body.ops)
        self.numerics = numerics
        self.fallible = frozenset(value_checked_ops(body))

    def emit(self, w: Writer, n: int, inner: Operation, name: str, args: list[str]) -> None:
        if inner in self.fallible:
            with w.block(f"if {CUDA_CHECKS[inner.name].format(*args)}"):
                w.line(f"cuda.atomic.min(flag, 0, {-(n + 1)})")
        if self.numerics and inner.result.type.dtype.is_floating:
            with w.block(f"if {name} - {name} != 0"):
                w.line(f"cuda.atomic.min(flag, 0, {2 * n} if {name} != {name} else {2 * n + 1})")

    def launch(self, kernel, grid, block, args) -> Launch:
        return Launch(kernel, grid, block, args + (self.scratch,), self.scratch, self.checks)


def _params(op: Operation, flag) -> list[tuple[str, object]]:
    params = [(f"in{k}", v.type.dtype) for k, v in enumerate(op.operands)]
    params += [(f"out{j}", v.type.dtype) for j, v in enumerate(op.results)]
    return params + ([("flag", int64)] if flag else [])


def _launch(kernel, grid, block, args, flag) -> Launch:
    if flag is None:
        return Launch(kernel, grid, block, args)
    return flag.launch(kernel, grid, block, args)


class _Evaluator:
    """Emits the region's scalar code for one element. `index(k, arg)` gives the expression
    indexing input k at the current element; loads are emitted on first use."""

    def __init__(self, w: Writer, body: Block, index, flag: _Flag | None):
        self.w, self.body, self.index, self.flag = w, body, index, flag
        self.env: dict[Value, str] = {}

    def value(self, v: Value) -> str:
        if v not in self.env:
            k = self.body.args.index(v)
            self.w.line(f"a{k} = {load(f'in{k}[{self.index(k, v)}]', v.type.dtype)}")
            self.env[v] = f"a{k}"
        return self.env[v]

    def run(self, stop: Operation | None = None) -> None:
        for n, inner in enumerate(self.body.ops[:-1]):
            if inner is stop:
                return
            if inner.opdef.has(CONSTANT):
                scalar = inner.attrs["value"].reshape(-1)[0]
                self.env[inner.result] = literal(scalar, inner.result.type.dtype)
                continue
            skip = inner.opdef.shape_only_operands(len(inner.operands))
            args = [self.value(v) for k, v in enumerate(inner.operands) if k not in skip]
            self.w.line(f"t{n} = {scalar_expression(inner, args)}")
            if needs_rounding(inner):
                self.w.line(f"t{n} = {rounded(f't{n}', inner.result.type.dtype)}")
            self.env[inner.result] = f"t{n}"
            if self.flag:
                self.flag.emit(self.w, n, inner, f"t{n}", args)

    def store(self, outputs, where: str, skip: Value | None = None) -> None:
        for j, v in enumerate(outputs):
            if v is not skip:
                self.w.line(f"out{j}[{where}] = {store(self.value(v), v.type.dtype)}")


def _elementwise(op: Operation, body: Block, cfg: LaunchConfig, flag) -> Launch:
    space = iteration_space(body)
    n = size_of(space)
    flat = contiguous_strides(space)
    strides = [broadcast_strides(a.type.shape, space) for a in body.args]
    # inputs of the space's own shape are read at element i; the others through strides
    broadcast = [k for k, s in enumerate(strides) if s != flat and n > 1]
    w = Writer()
    params = _params(op, flag)
    with w.block(header(params)):
        with w.block(f"for i in range(cuda.grid(1), {n}, cuda.gridsize(1))"):
            indexes = _broadcast_indexes(w, space, flat, [strides[k] for k in broadcast])
            by_input = dict(zip(broadcast, indexes, strict=True))
            ev = _Evaluator(w, body, lambda k, _: by_input.get(k, "i"), flag)
            ev.run()
            ev.store(body.terminator.operands, "i")
    kernel = kernel_source(w, params, f"fused elementwise over {list(space)}")
    return _launch(kernel, cfg.grid(n), cfg.block, tuple(op.operands + op.results), flag)


def _broadcast_indexes(w: Writer, space, flat, strides_list) -> list[str]:
    """The index expression of each broadcast input at flat element `i`: coordinates over
    the (coalesced) space, dotted with the input's strides."""
    if not strides_list:
        return []
    shape, coalesced = coalesce(space, [flat] + strides_list)
    coords = coordinates(w, "i", shape, "c")
    return [offset(coords, s) for s in coalesced[1:]]


class _ReductionKernel:
    def __init__(self, op, body: Block, reduction: Operation, cfg: LaunchConfig, flag):
        self.op, self.body, self.reduction, self.cfg, self.flag = op, body, reduction, cfg, flag
        self.space = iteration_space(body)
        self.dtype = reduction.result.type.dtype
        self.acc_dtype = register_dtype(self.dtype)  # (partial results are not rounded)
        keep = keepdims_shape(reduction, self.space)
        self.reduced = [k for k, d in enumerate(self.space) if keep[k] == 1 and d != 1]
        self.kept = [k for k, d in enumerate(self.space) if k not in self.reduced and d != 1]
        self.outputs = size_of([self.space[k] for k in self.kept])  # M
        self.length = size_of([self.space[k] for k in self.reduced])  # R
        self.parts = self._parts()  # P

    def _parts(self) -> int:
        """Blocks per output: 1 when the outputs alone fill the grid, else enough that each
        thread folds about items_per_thread elements (at most one per thread of the
        finishing block)."""
        cfg = self.cfg
        if self.outputs >= cfg.max_blocks:
            return 1
        wanted = math.ceil(self.length / (cfg.block * cfg.items_per_thread))
        return max(1, min(wanted, cfg.block, math.ceil(cfg.max_blocks / max(self.outputs, 1))))

    def launches(self) -> list[Launch]:
        result = self.body.terminator.operands.index(self.reduction.result)
        target = self.op.results[result]
        cfg, m, p = self.cfg, self.outputs, self.parts
        args = tuple(self.op.operands + self.op.results)
        if p == 1:
            return [_launch(self._fold(result), cfg.blocks(m), cfg.block, args, self.flag)]
        partial = Scratch(self.acc_dtype, m * p)
        fold = self._fold(None)
        return [
            _launch(fold, cfg.blocks(m * p), cfg.block, args + (partial,), self.flag),
            Launch(self._finish(), cfg.blocks(m), cfg.block, (partial, target)),
        ]

    def _fold(self, result: int | None) -> KernelSource:
        """The first pass; `result` is the output index it writes, or None: partials."""
        cfg, m, p, r = self.cfg, self.outputs, self.parts, self.length
        partial = [] if result is not None else [("part", self.acc_dtype)]
        params = _params(self.op, None) + partial
        params += [("flag", int64)] if self.flag else []
        w = Writer()
        with w.block(header(params)):
            self._prologue(w)
            with w.block(f"for task in range(cuda.blockIdx.x, {m * p}, cuda.gridDim.x)"):
                w.line(f"o = task // {p}")
                kept = coordinates(w, "o", [self.space[k] for k in self.kept], "k")
                w.line(f"acc = {identity(self.reduction.name, self.dtype)}")
                step = p * cfg.block
                with w.block(f"for r in range((task % {p}) * {cfg.block} + t, {r}, {step})"):
                    self._element(w, kept)
                if result is None:
                    self._tree(w, "part[task]", self.acc_dtype)
                else:
                    self._tree(w, f"out{result}[o]", self.dtype)
        return kernel_source(w, params, f"fused reduction over {list(self.space)}")

    def _element(self, w: Writer, kept: list[str]) -> None:
        """One element of the space: kept coordinates are known, reduced ones come from r."""
        coords = dict(zip(self.kept, kept))
        reduced = coordinates(w, "r", [self.space[k] for k in self.reduced], "q")
        coords.update(zip(self.reduced, reduced))
        axes = sorted(coords)
        names = [coords[k] for k in axes]

        def index(k, arg):
            strides = broadcast_strides(arg.type.shape, self.space)
            return offset(names, [strides[a] for a in axes])

        ev = _Evaluator(w, self.body, index, self.flag)
        ev.run(stop=self.reduction)
        x = ev.value(self.reduction.operands[0])
        w.line(f"acc = {combine(self.reduction.name, 'acc', x, self.dtype)}")
        flat = contiguous_strides(self.space)
        where = offset(names, [flat[a] for a in axes])
        ev.store(self.body.terminator.operands, where, skip=self.reduction.result)

    def _finish(self) -> KernelSource:
        """The second pass: each output folds its P partial results."""
        cfg, m, p = self.cfg, self.outputs, self.parts
        params = [("part", self.acc_dtype), ("out", self.dtype)]
        w = Writer()
        with w.block(header(params)):
            self._prologue(w)
            with w.block(f"for o in range(cuda.blockIdx.x, {m}, cuda.gridDim.x)"):
                w.line(f"acc = {identity(self.reduction.name, self.dtype)}")
                with w.block(f"for j in range(t, {p}, {cfg.block})"):
                    w.line(f"x = part[o * {p} + j]")
                    w.line(f"acc = {combine(self.reduction.name, 'acc', 'x', self.dtype)}")
                self._tree(w, "out[o]", self.dtype)
        return kernel_source(w, params, f"reduction of {p} partial results")

    def _prologue(self, w: Writer) -> None:
        w.line("t = cuda.threadIdx.x")
        w.line(f"shared = cuda.shared.array({self.cfg.block}, {numba_type(self.dtype)})")

    def _tree(self, w: Writer, target: str, dtype) -> None:
        """Combine the block's `acc`s in shared memory, halving the active threads each
        step; thread 0 writes the result (an element of `dtype`). The closing barrier keeps
        the next task from overwriting `shared` while a slow thread still reads it."""
        name = self.reduction.name
        w.line("shared[t] = acc")
        w.line("cuda.syncthreads()")
        half = self.cfg.block // 2
        while half:
            with w.block(f"if t < {half}"):
                w.line("x = shared[t]")
                w.line(f"y = shared[t + {half}]")
                w.line(f"shared[t] = {combine(name, 'x', 'y', self.dtype)}")
            w.line("cuda.syncthreads()")
            half //= 2
        with w.block("if t == 0"):
            w.line(f"{target} = {store('shared[0]', dtype)}")
        w.line("cuda.syncthreads()")
