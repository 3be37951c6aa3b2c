"""An optimised function -> the host driver's schedule: a list of steps, each a Python
callable on the run's frame (IR value -> device array, or tensor list).

Buffers follow the memory plan. Arena values are views of one device arena allocated
once per compiled function, at the plan's offsets (aliases share their source's view,
in-place outputs the view of the input they overwrite); constants are uploaded once;
arguments and returned values are bound per run (`Frame`). Fused ops, matmul and copies
become kernel launches; `cond` and `while` become Python control flow that reads their
predicate back from the device; tensor lists are Python lists of device arrays. A bfloat16
value's device array holds its bits as uint16 (narrow.py); `to_host` gives it its dtype."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graphjit.codegen.cuda import (
    collectives,
    conv,
    dynamic_slice,
    indexing,
    random,
    scan,
    sorting,
)
from graphjit.codegen.cuda.compiler import compiled
from graphjit.codegen.cuda.copies import COPY_LAUNCHES
from graphjit.codegen.cuda.fused import fused_launches
from graphjit.codegen.cuda.lists import ListOps
from graphjit.codegen.cuda.matmul import matmul_launch
from graphjit.codegen.cuda.source import Launch, Scratch, storage_np
from graphjit.codegen.cuda.target import LaunchConfig
from graphjit.codegen.layout import size_of
from graphjit.codegen.lists import list_lowerings
from graphjit.errors import BackendError, GraphjitError, NumericsError, RuntimeCheckError
from graphjit.ir.core import Block, Function, Operation, Value
from graphjit.ir.ops import CONSTANT, KERNEL, REDUCTION
from graphjit.ir.ops.control import runtime_shape_error
from graphjit.ir.ops.debug import numerics_message
from graphjit.ir.ops.elementwise import VALUE_CHECKS
from graphjit.ir.types import TensorType
from graphjit.passes.memory import ALIAS, ARENA, VARIABLE

Step = Callable[[dict], None]
# Ops whose results Session(check_numerics=True) does not scan: region ops' results come
# from their regions' ops (checked there), the check_numerics op reports in its own words.
NOT_SCANNED = frozenset({"check_numerics"})  # checked by its own lowering
# Ops with no float16/bfloat16 kernels: their type rules refuse narrow floats today, so
# this only keeps a future rule change from running a float32 kernel on 16-bit storage.
NOT_NARROW = frozenset({"random_uniform", "random_normal", "random_truncated_normal", "dropout"})


def run_steps(steps: list[Step], frame: dict) -> None:
    for step in steps:
        step(frame)


def read_scalar(array):
    """One element copied back from the device (a predicate, a list index)."""
    return array.copy_to_host()[0]


def to_host(array, v: Value) -> np.ndarray:
    """Tensor value v's device array copied back, with v's dtype and shape."""
    return array.copy_to_host().view(v.type.dtype.np).reshape(v.type.shape)


def refuse_narrow(op: Operation) -> None:
    """A BackendError for an op of NOT_NARROW on a float16/bfloat16 tensor."""
    for v in op.operands + op.results:
        if isinstance(v.type, TensorType) and v.type.dtype.is_narrow_float:
            raise BackendError(
                f"the cuda backend has no {v.type.dtype.name} kernel for '{op.name}'", op=op
            )


class Lowering:
    """Builds the schedule of one function; `LOWERINGS` maps op names to methods that
    return the op's steps."""

    def __init__(self, fn: Function, cuda, cfg: LaunchConfig, check_numerics: bool = False):
        self.fn, self.cuda, self.cfg = fn, cuda, cfg
        self.check_numerics = check_numerics
        self.plan = fn.memory_plan
        if self.plan.arena_bytes is None:
            raise runtime_shape_error(fn, "cuda") or BackendError(
                "the cuda backend needs every shape known (specialise first)"
            )
        self.arena = cuda.device_array(max(self.plan.arena_bytes, 1), np.uint8)
        self.static: dict = {}  # value (or Scratch) -> device array, the same every run
        self.views: dict[tuple, object] = {}  # (offset, nbytes, dtype) -> arena view
        self.bound: dict[Value, Value] = {}  # value -> the argument or output it lives in
        self.outputs: list[Value] = []  # values computed into a per-function output buffer
        self.kernels = 0  # launches in the schedule
        self.lists = ListOps(self)

    # -- buffers --------------------------------------------------------------------------
    def storage(self, v: Value) -> Value:
        """The value owning v's storage: itself, an argument, or what it aliases."""
        if v.op is None and v in self.fn.args:
            return v
        if v.op is not None and v.op.opdef.has(CONSTANT):
            return v
        buf = self.plan.buffers.get(v)
        if buf is None:
            raise BackendError(f"cuda backend: the memory plan has no buffer for {v!r}", op=v.op)
        if buf.kind == ALIAS:
            return self.storage(buf.alias_of)
        if buf.kind == VARIABLE:
            return self.storage(buf.variable)
        return v

    def place(self, v: Value) -> None:
        """Record where tensor value v lives: a static device array, or bound per run."""
        if v in self.static or v in self.bound or not isinstance(v.type, TensorType):
            return
        root = self.storage(v)
        if root.op is not None and root.op.opdef.has(CONSTANT):
            if root not in self.static:  # uploaded once, shared by the views of it
                value = root.op.attrs["value"].astype(root.type.dtype.np).reshape(-1)
                value = np.ascontiguousarray(value).view(storage_np(root.type.dtype))
                self.static[root] = self.cuda.to_device(value)
            self.static[v] = self.static[root]
        elif root in self.fn.args:
            self.bound[v] = root
        elif self.plan.buffers[root].kind == ARENA:
            self.static[v] = self._view(self.plan.buffers[root].offset, root)
        else:  # a returned value: its own buffer, bound per run
            self.bound[v] = root
            if root not in self.outputs:
                self.outputs.append(root)

    def _view(self, offset: int, v: Value):
        dtype = storage_np(v.type.dtype)
        key = (offset, size_of(v.type.shape), dtype)
        if key not in self.views:
            raw = self.arena[offset : offset + key[1] * dtype.itemsize]
            self.views[key] = raw.view(dtype)
        return self.views[key]

    def same_storage(self, a: Value, b: Value) -> bool:
        for v in (a, b):
            self.place(v)
        if a in self.static and b in self.static:
            return self.static[a] is self.static[b]
        return self.bound.get(a, a) is self.bound.get(b, b)

    @staticmethod
    def read_index(array) -> int:
        return int(read_scalar(array))

    def scratch(self, s: Scratch):
        if s not in self.static:
            self.static[s] = self.cuda.device_array(s.size, storage_np(s.dtype))
        return s

    # -- steps ----------------------------------------------------------------------------
    def lower(self) -> tuple[list[Step], list[Value]]:
        """The top-level schedule and the returned values."""
        for arg in self.fn.args:
            self.place(arg)
        return self.lower_block(self.fn.block)

    def lower_block(self, block: Block) -> tuple[list[Step], list[Value]]:
        steps: list[Step] = []
        for op in block.ops:
            if op.opdef.is_terminator:
                for v in op.operands:
                    self.place(v)
                return steps, list(op.operands)
            method = LOWERINGS.get(op.name)
            if method is None:
                raise BackendError(f"the cuda backend cannot lower op '{op.name}'", op=op)
            if op.name in NOT_NARROW:
                refuse_narrow(op)
            for v in op.operands + op.results:
                self.place(v)
            try:
                steps += method(self, op)
            except GraphjitError:
                raise
            except Exception as e:  # name the IR op whose lowering failed
                raise BackendError(f"lowering '{op.name}' failed: {e}", op=op) from e
            if (
                self.check_numerics
                and op.name not in NOT_SCANNED
                and not op.opdef.has(CONSTANT)
                and not (op.opdef.is_branch or op.opdef.is_loop)
            ):
                steps.append(self._numerics_check(op))
        return steps, []

    def launch(self, launches: list[Launch]) -> list[Step]:
        steps = []
        for launch in launches:
            kernel = compiled(self.cuda, launch.kernel)
            args = tuple(self.scratch(a) if isinstance(a, Scratch) else a for a in launch.args)
            step = _launch_step(kernel, (launch.grid, launch.block), args)
            steps += [step] if launch.flag is None else _flagged(step, launch)
            self.kernels += 1
        return steps

    def move(self, dst: Value, src: Value) -> list[Step]:
        """dst takes src's value: a device copy between tensors (none when they share
        storage), the same list object for tensor lists."""
        if not isinstance(src.type, TensorType):
            return [lambda frame: frame.__setitem__(dst, frame[src])]
        if self.same_storage(dst, src) or not size_of(src.type.shape):
            return []
        return [lambda frame: frame[dst].copy_to_device(frame[src])]

    def _numerics_check(self, op: Operation) -> Step:
        """check_numerics on the host: NaN or inf in a result names the op that made it. A
        fused kernel checks its ops itself (Launch.flag); only its reduction is left."""
        pairs = [(r, op) for r in op.results]
        if op.opdef.has(KERNEL):
            made_by = [v.op for v in op.regions[0].block.terminator.operands]
            pairs = [(r, m) for r, m in zip(op.results, made_by) if m and m.opdef.has(REDUCTION)]
        pairs = [(r, m) for r, m in pairs if _is_float_tensor(r)]

        def check(frame):
            for v, maker in pairs:
                a = to_host(frame[v], v)
                if not np.all(np.isfinite(a)):
                    _non_finite(maker, bool(np.isnan(a).any()))

        return check

    # -- ops ------------------------------------------------------------------------------
    def op_fused(self, op: Operation) -> list[Step]:
        return self.launch(fused_launches(op, self.cfg, self.check_numerics))

    def op_matmul(self, op: Operation) -> list[Step]:
        return self.launch([matmul_launch(op, self.cfg)])

    def op_copies(self, op: Operation) -> list[Step]:
        return self.launch(COPY_LAUNCHES[op.name](op, self.cfg))

    def op_view(self, op: Operation) -> list[Step]:
        """reshape-like ops and assign: the same elements (a view when the plan allows)."""
        return self.move(op.result, op.operands[0])

    def op_nothing(self, op: Operation) -> list[Step]:
        return []

    def op_check_numerics(self, op: Operation) -> list[Step]:
        """The identity (a view in the plan), or a NumericsError with the op's message."""
        x, message = op.operands[0], op.attrs["message"]

        def check(frame):
            a = to_host(frame[x], x)
            if not np.all(np.isfinite(a)):
                has_nan = bool(np.isnan(a).any())
                raise NumericsError(numerics_message(message, has_nan), op=op)

        return [check] + self.move(op.result, x)

    def op_cond(self, op: Operation) -> list[Step]:
        branches = [self._branch(region.block, op.results) for region in op.regions]
        pred = op.operands[0]

        def cond(frame):
            run_steps(branches[0] if read_scalar(frame[pred]) else branches[1], frame)

        return [cond]

    def _branch(self, block: Block, results) -> list[Step]:
        steps, yields = self.lower_block(block)
        for r, v in zip(results, yields, strict=True):
            steps += self.move(r, v)
        return steps

    def op_while(self, op: Operation) -> list[Step]:
        before, after = (r.block for r in op.regions)
        carried = before.args
        enter = [s for c, v in zip(carried, op.operands, strict=True) for s in self.move(c, v)]
        test, (pred,) = self.lower_block(before)
        bind = [s for a, c in zip(after.args, carried, strict=True) for s in self.move(a, c)]
        body, yields = self.lower_block(after)
        body = bind + body + self._carry(carried, yields)
        leave = [s for r, c in zip(op.results, carried, strict=True) for s in self.move(r, c)]
        limit = op.attrs["max_iterations"]

        def loop(frame):
            run_steps(enter, frame)
            count = 0
            while limit is None or count < limit:
                run_steps(test, frame)
                if not read_scalar(frame[pred]):
                    break
                run_steps(body, frame)
                count += 1
            run_steps(leave, frame)

        return [loop]

    def _carry(self, carried, yields) -> list[Step]:
        """Each iteration's yields into the carried buffers as one parallel copy: a yield
        that lives in another carried buffer (a swap) is staged in a buffer of its own
        first; list handles are read before any is rebound."""
        tensors = [c for c in carried if isinstance(c.type, TensorType)]
        staged, steps = {}, []
        for c, v in zip(carried, yields, strict=True):
            if _is_tensor(v) and size_of(v.type.shape) and not self.same_storage(c, v):
                if any(self.same_storage(v, other) for other in tensors):
                    staged[c] = Scratch(v.type.dtype, size_of(v.type.shape))
                    self.scratch(staged[c])
                    steps.append(_copy_step(staged[c], v))
        for c, v in zip(carried, yields, strict=True):
            if c in staged:
                steps.append(_copy_step(c, staged[c]))
            elif isinstance(v.type, TensorType):
                steps += self.move(c, v)
        lists = [(c, v) for c, v in zip(carried, yields, strict=True) if c not in tensors]
        if lists:
            steps.append(_rebind(lists))
        return steps


def _launch_step(kernel, config: tuple, args: tuple) -> Step:
    """Configured at each launch: the simulator's kernel[grid, block] configures (and
    returns) the kernel object itself, which other launch sites share."""

    def launch(frame):
        kernel[config](*[frame[a] for a in args])

    return launch


_UNFLAGGED = 2**62


def _flagged(step: Step, launch: Launch) -> list[Step]:
    """Reset the launch's numerics flag, launch, and raise for the op the kernel flagged."""
    flag, checks = launch.flag, launch.checks
    reset = np.array([_UNFLAGGED], np.int64)

    def check(frame):
        code = int(read_scalar(frame[flag]))
        if code < 0:  # a value check failed (see fused._Flag)
            op = checks[-code - 1]
            raise RuntimeCheckError(VALUE_CHECKS[op.name], op=op)
        if code != _UNFLAGGED:
            _non_finite(checks[code // 2], code % 2 == 0)

    return [lambda frame: frame[flag].copy_to_device(reset), step, check]


def _non_finite(op: Operation, nan: bool):
    what = "NaN" if nan else "infinity"
    raise NumericsError(f"check_numerics: {what} in the result of '{op.name}'", op=op)


def _is_tensor(v: Value) -> bool:
    return isinstance(v.type, TensorType)


def _is_float_tensor(v: Value) -> bool:
    return _is_tensor(v) and v.type.dtype.is_floating


def _copy_step(dst, src) -> Step:
    return lambda frame: frame[dst].copy_to_device(frame[src])


def _rebind(pairs) -> Step:
    def rebind(frame):
        values = [frame[v] for _, v in pairs]
        for (c, _), value in zip(pairs, values, strict=True):
            frame[c] = value

    return rebind


LOWERINGS = {
    "fused": Lowering.op_fused,
    "matmul": Lowering.op_matmul,
    "gemm": Lowering.op_matmul,
    **dict.fromkeys(COPY_LAUNCHES, Lowering.op_copies),
    **dict.fromkeys(
        ("reshape", "reshape_like", "expand_dims", "squeeze", "shape_invariant"), Lowering.op_view
    ),
    "assign": Lowering.op_view,
    "check_numerics": Lowering.op_check_numerics,
    "constant": Lowering.op_nothing,
    "group": Lowering.op_nothing,
    "cond": Lowering.op_cond,
    "while": Lowering.op_while,
    **list_lowerings(),
    # op families lowered in their own modules
    **indexing.LOWERINGS,
    **dynamic_slice.LOWERINGS,
    **conv.LOWERINGS,
    **random.LOWERINGS,
    **scan.LOWERINGS,
    **sorting.LOWERINGS,
    **collectives.LOWERINGS,
}
