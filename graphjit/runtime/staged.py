"""Running a function whose shapes change while it runs on a compiling backend.

The llvm and cuda backends plan every buffer before the first call, so they compile only
functions whose shapes are all known once the feeds are. A while_loop value whose shape
invariant has None dimensions (a tensor that grows each iteration) or a cond whose branches
differ in shape has no such plan: its shapes become known only as the program runs.

The staged runner runs such a function the way TensorFlow 1's executor does, stepping the
control flow on the host, but keeps the arithmetic compiled: the control ops whose shapes
change run here, and each run of other ops between them (in the function and in every
region stepped into) is a *stage*, specialised to the shapes its inputs have (types
inferred again, as the Session does for fed shapes) and compiled once per distinct set of
shapes. The tensor lists such loops carry (their gradients' tapes) live here as the
interpreter's lists, and the ops that push and pop them run as the interpreter runs them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Block, Function, Operation, Value, captured_values
from graphjit.ir.ops import VALUE_SHAPED, VIEW
from graphjit.ir.types import ListType, TensorType
from graphjit.runtime.interpreter import Interpreter

# A loop that grows a tensor meets a new shape every iteration: keep the runners of the
# shapes met most recently, not one per iteration ever run.
SHAPES_KEPT_PER_STAGE = 64


def has_runtime_shapes(fn: Function) -> bool:
    """Does `fn` hold a value whose shape is known only at run time?"""
    return any(_runtime_sized(v) for op in fn.walk() for v in op.results)


def _runtime_sized(v: Value) -> bool:
    t = v.type.elem if isinstance(v.type, ListType) else v.type
    return isinstance(t, TensorType) and not t.is_static


def _steps_on_host(op: Operation) -> bool:
    """Control flow with a runtime-sized value inside, every op that takes or makes a tensor
    list (compiled code passes tensors in and out, never lists), views that make a
    runtime-sized value (types inferred again would not know that size) and ops whose
    result's shape depends on values (VALUE_SHAPED)."""
    if any(isinstance(v.type, ListType) for v in op.operands + op.results + captured_values(op)):
        return True
    if op.opdef.has(VIEW) and any(_runtime_sized(v) for v in op.results):
        return True  # a shape invariant relaxing a shape: no arithmetic, nothing to compile
    if op.opdef.has(VALUE_SHAPED):
        return True  # its result's size comes from its operands' values
    return bool(op.regions) and any(
        _runtime_sized(v) for inner in op.walk() for v in list(inner.results) + _args(inner)
    )


def _args(op: Operation) -> list:
    return [a for r in op.regions for b in r.blocks for a in b.args]


class Stage:
    """Consecutive ops of one block, compiled as a function of the values they read from
    outside, once per distinct set of input shapes."""

    def __init__(self, ops: list, later_uses: set):  # later_uses: what ops after it read
        inside = {v for op in ops for v in op.results}
        self.ops = ops
        self.inputs = _ordered(
            v for op in ops for v in list(op.operands) + captured_values(op) if v not in inside
        )
        self.outputs = [v for op in ops for v in op.results if v in later_uses]
        self.compiled: OrderedDict = OrderedDict()  # input shapes -> runner, oldest first
        self.lock = threading.Lock()  # (a Session may run from several threads)

    def run(self, env: dict, compile_function) -> list:
        args = [env[v] for v in self.inputs]
        key = tuple((a.shape, a.dtype) for a in args)
        with self.lock:
            runner = self.compiled.get(key)
            if runner is not None:
                self.compiled.move_to_end(key)
        if runner is None:  # (two threads may both compile it: the same code, one kept)
            runner = compile_function(self._specialise(args))
            with self.lock:
                self.compiled[key] = runner
                if len(self.compiled) > SHAPES_KEPT_PER_STAGE:
                    self.compiled.popitem(last=False)
        return runner.run(args)

    def _specialise(self, args: list) -> Function:
        fn = Function("stage")
        types = [TensorType(a.shape, v.type.dtype) for v, a in zip(self.inputs, args)]
        fn.body.blocks[0] = block = Block(types, [v.name_hint for v in self.inputs])
        block.parent = fn.body
        vmap = dict(zip(self.inputs, block.args))
        for op in self.ops:
            clone_op(op, vmap, block)  # types inferred again from the concrete inputs
        builder.create("return", [vmap[v] for v in self.outputs], block=block, loc=None)
        return fn


def _ordered(values) -> list:
    return list(dict.fromkeys(values))


def plan_block(block: Block) -> list:
    """The block's ops as steps: a Stage per run of compilable ops, the op itself for one
    that steps on the host; the terminator last."""
    last_read = _last_reads(block)
    steps, run = [], []
    for i, op in enumerate(block.ops):
        if op.opdef.is_terminator or _steps_on_host(op):
            if run:
                steps.append(Stage(run, {v for v, j in last_read.items() if j >= i}))
            steps.append(op)
            run = []
        else:
            run.append(op)
    return steps


def _last_reads(block: Block) -> dict:
    """Each value read in the block (its regions included) -> the index of the last op
    that reads it."""
    return {v: i for i, op in enumerate(block.ops) for v in list(op.operands) + captured_values(op)}


class StagedRunner:
    """Runs `fn` (specialised to the feeds, shapes still unknown inside) on a compiling
    backend: `compile_function(fn)` gives a runner, with run(arrays) -> arrays, for a
    function whose shapes are all known."""

    def __init__(self, fn: Function, compile_function, check_numerics: bool = False):
        self.fn = fn
        self.stepper = _Stepper(compile_function, check_numerics)

    def run(self, args: list) -> list:
        return self.stepper.run(self.fn, args)


class _Stepper(Interpreter):
    """The interpreter's control flow (while, cond) over blocks run as planned steps."""

    def __init__(self, compile_function, check_numerics: bool):
        super().__init__(check_numerics)
        self.compile_function = compile_function
        self.plans: dict[Block, list] = {}

    def run_block(self, block: Block, env: dict) -> list:
        plan = self.plans.get(block)
        if plan is None:
            plan = self.plans[block] = plan_block(block)
        for step in plan:
            if isinstance(step, Stage):
                env.update(zip(step.outputs, step.run(env, self.compile_function)))
            elif step.opdef.is_terminator:
                return [env[v] for v in step.operands]
            else:
                run = self.region_ops.get(step.name, self.run_kernel)
                env.update(zip(step.results, run(step, env)))
        return []
