"""The memory planner: every plan is checked by running the function symbolically against
its own plan (each write stamps the bytes it covers; each read must find the stamp its
value was written with), so a value whose bytes are reused while it lives fails."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import graphjit as gj
from graphjit.ir.ops import REDUCTION, VIEW
from graphjit.passes import memory as mem
from graphjit.passes.pipeline import default_passes, optimize
from graphjit.runtime.program import build_program

RNG = np.random.default_rng(0)
LOOP_ITERATIONS = 3  # the symbolic run goes round each loop this often


# -- the checker -------------------------------------------------------------------------
class Simulation:
    """Runs `fn` on stamps instead of numbers. The arena is an array of stamps, one per
    byte; outputs, arguments and constants are cells. Both branches of a cond run, one
    after the other; loops run LOOP_ITERATIONS times."""

    def __init__(self, fn, plan):
        self.fn, self.plan = fn, plan
        self.arena = np.full(plan.arena_bytes, -1, np.int64)
        self.cells: dict = {}
        self.expected: dict = {}
        self.stamps = itertools.count()

    def where(self, v):
        b = self.plan.buffers.get(v)
        if b is None or b.kind == mem.OUTPUT:
            return ("cell", v)  # an argument, a constant or an output
        if b.offset is not None:
            return ("arena", b.offset, b.nbytes)
        return self.where(b.alias_of) if b.kind == mem.ALIAS else ("cell", b.variable)

    def write(self, v):
        stamp = self.expected[v] = next(self.stamps)
        loc = self.where(v)
        if loc[0] == "arena":
            self.arena[loc[1] : loc[1] + loc[2]] = stamp
        else:
            self.cells[loc[1]] = stamp

    def read(self, v, what="read"):
        if not isinstance(v.type, gj.ir.TensorType):
            return
        loc = self.where(v)
        held = self.arena[loc[1] : loc[1] + loc[2]] if loc[0] == "arena" else self.cells.get(loc[1])
        name = self.plan.names.get(v, repr(v))
        assert v in self.expected, f"{name} {what} before it is written"
        assert np.all(held == self.expected[v]), f"{name} was overwritten before {what}"

    def define(self, v):
        """A new value: views take their source's stamp; other buffers are written."""
        if not isinstance(v.type, gj.ir.TensorType):
            return
        b = self.plan.buffers.get(v)
        if b is not None and b.kind == mem.ALIAS:
            self.expected[v] = self.expected[b.alias_of]
        elif b is not None and b.kind == mem.VARIABLE and v.op.name == "assign":
            self.expected[v] = self.expected[v.op.operands[0]]
        else:
            self.write(v)

    def run(self):
        for arg in self.fn.args:
            self.define(arg)
        self.block(self.fn.block)

    def block(self, block):
        for op in block.ops:
            self.op(op)
        return block.terminator

    def op(self, op):
        if op.name == "cond":
            self.read(op.operands[0])
            for region in op.regions:
                self.results(op, self.block(region.block))
        elif op.name == "while":
            self.loop(op)
        else:
            for v in data_reads(op):
                self.read(v, f"'{op.name}' reads it")
            for r in op.results:
                self.define(r)
            for r in op.results:
                self.read(r, f"'{op.name}' finishes")

    def results(self, op, term):
        """The yield copies its operands into the op's results, one after the other."""
        for v, r in zip(term.operands, op.results):
            self.read(v, "the yield copies it")
            self.define(r)

    def copy_back(self, slots, values):
        """A loop's yield copies its operands into the loop-carried buffers one by one;
        operands that live in carried buffers (a permutation) are read first, as a
        parallel copy does."""
        held = {self.where(slot) for slot in slots if slot in self.plan.buffers}
        passed = [v for v in values if v in self.plan.buffers and self.where(v) in held]
        for v in passed:
            self.read(v, "the yield copies it")
        for slot, v in zip(slots, values):
            if v not in passed:
                self.read(v, "the yield copies it")
            self.write(slot)

    def loop(self, op):
        before, after = (r.block for r in op.regions)
        for v in op.operands:
            self.read(v, "the loop starts")
        for a in before.args:
            self.define(a)
        for _ in range(LOOP_ITERATIONS):
            self.read(self.block(before).operands[0], "the loop condition")
            for a in after.args:
                self.define(a)
            self.copy_back(before.args, self.block(after).operands)
        self.block(before)
        for slot, r in zip(before.args, op.results):
            if r in self.plan.buffers and self.plan.buffers[r].kind == mem.OUTPUT:
                self.read(slot, "the loop's result is copied out")
            self.define(r)


def data_reads(op):
    """Operands whose data `op` reads (shape-only operands, per the registry, are not)."""
    if op.name == "fused":
        body = op.regions[0].block
        return [v for v, a in zip(op.operands, body.args) if any(reads(o, a) for o in body.ops)]
    skip = op.opdef.shape_only_operands(len(op.operands))
    return [v for i, v in enumerate(op.operands) if i not in skip]


def reads(op, v):
    skip = op.opdef.shape_only_operands(len(op.operands))
    return any(x is v and i not in skip for i, x in enumerate(op.operands))


def check_plan(fn, plan):
    """The plan covers what needs storage, its fields are consistent, and no value is
    overwritten while something may still read it."""
    returned = set(fn.block.terminator.operands)
    for op in walk_outside_kernels(fn.block):
        for v in op.results:
            needs = isinstance(v.type, gj.ir.TensorType) and op.name != "constant"
            assert (v in plan.buffers) == needs, f"{op.name} result planned: {not needs}"
    for v, b in plan.buffers.items():
        assert b.nbytes == v.type.size * v.type.dtype.np.itemsize
        assert (b.kind == mem.OUTPUT) <= (v in returned)
        if v in returned:
            assert b.kind in (mem.OUTPUT, mem.VARIABLE), "a returned value is in the arena"
        if b.kind == mem.ARENA:
            assert b.offset % 64 == 0 and b.offset + b.nbytes <= plan.arena_bytes
        if b.kind == mem.ALIAS:
            assert v.op is None or v.op.opdef.has(VIEW) or v.op.opdef.is_loop
        if b.reuses is not None:
            check_reuse(v, b, plan)
        if b.kind == mem.VARIABLE:
            assert b.variable in fn.args and b.variable.type == v.type
    Simulation(fn, plan).run()


def check_reuse(v, b, plan):
    op = v.op
    assert b.reuses in op.operands and b.reuses.type == v.type
    if op.name == "fused":
        assert not any(inner.opdef.has(REDUCTION) for inner in op.regions[0].block.ops)
    elif op.opdef.overwrites:  # declared by the op (a gemm's accumulator)
        assert (0, op.operands.index(b.reuses)) in op.opdef.overwrites
    else:
        assert op.opdef.elementwise
    if b.kind == mem.ARENA:
        assert plan.buffers[b.reuses].offset == b.offset


def walk_outside_kernels(block):
    for op in block.ops:
        yield op
        if op.name != "fused":
            for region in op.regions:
                yield from walk_outside_kernels(region.block)


# -- building plans ------------------------------------------------------------------------
def planned(g, fetches, ops=(), feeds=None):
    """Optimise the program of `fetches` with `feeds` (placeholder -> shape); check its plan."""
    feed_types = {p: p.type.with_shape(shape) for p, shape in (feeds or {}).items()}
    program = build_program(g, list(fetches), list(ops), feed_types)
    optimize(program.function, verify_each=True)
    plan = program.function.memory_plan
    check_plan(program.function, plan)
    return program, plan


def fused_ops(program):
    return [op for op in program.function.block.ops if op.name == "fused"]


def rand(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def test_chain_reuses_memory():
    """a → b → c → d: each value dies when the next is made, so the arena holds two."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (64, 64), "x")
        h = x
        for _ in range(4):
            h = gj.matmul(h, gj.constant(rand(64, 64)))
        out = gj.sum(h)
    _, plan = planned(g, [out])
    assert default_passes()[-1].name == "memory"
    arena = plan.of_kind(mem.ARENA)
    assert len(arena) >= 4
    assert len({plan.buffers[v].offset for v in arena}) < len(arena)
    assert plan.arena_bytes < plan.unplanned_bytes
    assert plan.arena_bytes == plan.peak_live_bytes == 2 * 64 * 64 * 4
    assert set(plan.arena_offsets()) == set(arena)


def test_elementwise_kernel_writes_in_place():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (32, 32), "x")
        m = gj.matmul(x, gj.constant(rand(32, 32)))
        out = gj.sum(gj.matmul(gj.exp(m) * 2.0, x))
    program, plan = planned(g, [out])
    (kernel,) = [op for op in fused_ops(program) if op.result.shape == (32, 32)]
    b = plan.buffers[kernel.result]
    assert b.kind == mem.ARENA and b.reuses is kernel.operands[0]
    assert b.offset == plan.buffers[b.reuses].offset
    assert plan.in_place == {kernel.result: kernel.operands[0]}


def test_no_in_place_over_broadcast_or_reduced_input():
    """sum(x * s, axis=1) with s of shape (8, 1) last read there: the result has s's type,
    but the kernel broadcasts s and reduces, so it must not write over s."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (8, 8), "x")
        s = gj.matmul(x, gj.constant(rand(8, 1)))
        row = gj.sum(x * s, axis=1, keepdims=True)
        out = gj.sum(gj.matmul(gj.transpose(row), x))
    program, plan = planned(g, [out])
    (kernel,) = [op for op in fused_ops(program) if op.result.shape == (8, 1)]
    (s_value,) = [op.result for op in program.function.block.ops if op.name == "matmul"][:1]
    assert s_value in kernel.operands and s_value.type == kernel.result.type
    assert mem.in_place_pairs(kernel) == [] and plan.in_place == {}


def test_reshape_aliases_its_source():
    """The view keeps its source's bytes alive after the source's own last read."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (16, 16), "x")
        m = gj.matmul(x, x)
        view = gj.reshape(m, (8, 32))
        later = gj.matmul(gj.matmul(m, x), x)  # could take m's bytes but for the view
        out = gj.sum(gj.matmul(view, gj.constant(rand(32, 16)))) + gj.sum(later)
    program, plan = planned(g, [out])
    (view,) = plan.of_kind(mem.ALIAS)
    source = program.function.block.ops[0].result
    assert view.op.name == "reshape" and plan.buffers[view].alias_of is source
    assert plan.buffers[view].offset == plan.buffers[source].offset


def test_returned_values_get_their_own_allocation():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (16, 16), "x")
        m = gj.matmul(x, x)
        flat = gj.reshape(m, (256,))
    program, plan = planned(g, [m, flat])
    returned = program.function.block.terminator.operands
    assert [plan.buffers[v].kind for v in returned] == [mem.OUTPUT, mem.OUTPUT]
    assert plan.arena_bytes == 0 and plan.unplanned_bytes == 2 * 16 * 16 * 4


def sgd_graph(read_after=False, fetch_new=False, assign_twice=False):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (8, 8), "x")
        w = gj.Variable(rand(8, 8), name="w")
        loss = gj.sum(gj.square(gj.matmul(x, w)))
        (grad,) = gj.gradients(loss, [w])
        new = w - grad * 0.1
        steps = [w.assign(new).op] + ([w.assign(new * 2.0).op] if assign_twice else [])
        fetches = [loss] + ([gj.matmul(w.value, x)] if read_after else [])
        fetches += [new] if fetch_new else []
    return g, fetches, steps


def test_variable_updated_in_place():
    program, plan = planned(*sgd_graph())
    (assign,) = [op for op in program.function.block.ops if op.name == "assign"]
    w = program.function.args[-1]
    for v in (assign.result, assign.operands[0]):
        assert plan.buffers[v].kind == mem.VARIABLE and plan.buffers[v].variable is w
    assert plan.buffers[assign.operands[0]].reuses is w


@pytest.mark.parametrize("case", ["read_after", "fetch_new", "assign_twice"])
def test_variable_not_in_place_when_unsafe(case):
    """Not when the old value is read after the update, the new value is fetched too (the
    caller would get the variable's storage), or the variable is assigned twice."""
    program, plan = planned(*sgd_graph(**{case: True}))
    assigns = [op for op in program.function.block.ops if op.name == "assign"]
    assert all(plan.buffers[op.result].kind == mem.OUTPUT for op in assigns)
    assert plan.of_kind(mem.VARIABLE) == []


def mlp(sizes, batch):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (None, sizes[0]), "x")
        y = gj.placeholder(gj.int64, (None,), "y")
        h = x
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            w = gj.Variable(rand(n_in, n_out) * 0.1, name=f"w{i}")
            b = gj.Variable(np.zeros(n_out, np.float32), name=f"b{i}")
            h = gj.matmul(h, w) + b
            h = gj.relu(h) if i < len(sizes) - 2 else h
        loss = gj.mean(-gj.sum(gj.one_hot(y, sizes[-1]) * gj.log_softmax(h), axis=1))
        step = gj.train.SGD(0.1).minimize(loss)
    return g, x, y, loss, step


def test_mlp_training_step_plan():
    g, x, y, loss, step = mlp([64, 64, 10], 16)
    program, plan = planned(g, [loss], [step], {x: (16, 64), y: (16,)})
    ratio = plan.arena_bytes / plan.unplanned_bytes
    print(f"MLP 64-64-10, batch 16: arena / one buffer per value = {ratio:.3f}")
    assert plan.arena_bytes < plan.unplanned_bytes
    assert plan.peak_live_bytes <= plan.arena_bytes
    assigns = [op.result for op in program.function.block.ops if op.name == "assign"]
    assert len(assigns) == 4 and all(plan.buffers[v].kind == mem.VARIABLE for v in assigns)
    assert "variable" in plan.describe() and "arena" in plan.describe()


def test_inspect_reports_the_plan():
    g, x, y, loss, step = mlp([8, 8, 3], 4)
    feeds = {x: rand(4, 8), y: np.array([0, 1, 2, 0])}
    with gj.Session(g, backend="interpreter", optimize=True) as sess:
        report = sess.inspect([loss, step], feeds)
        plan = report.memory_plan
        assert report.arena_bytes == plan.arena_bytes < report.unplanned_bytes
        assert report.unplanned_bytes == plan.unplanned_bytes
        assert report.variables_in_place == 4 and report.in_place >= 4
        text = str(report)
        assert f"arena:            {plan.arena_bytes} bytes" in text and "in place:" in text
        sess.run([loss, step], feeds)  # the plan does not change what the interpreter runs


def test_unknown_shapes_leave_sizes_open():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (None, 4), "x")
        out = gj.exp(gj.matmul(x, gj.constant(rand(4, 4))))
    program = build_program(g, [out], [], {})
    plan = mem.plan_memory(program.function)
    assert plan.arena_bytes is None and all(b.nbytes is None for b in plan.buffers.values())
    assert "unknown" in plan.describe()


# -- control flow --------------------------------------------------------------------------
def loop_graph():
    """while sum(a) < 50: a = a * exp(w / 10) + 1 (a data-dependent trip count)."""
    g = gj.Graph()
    with g.as_default():
        w = gj.placeholder(gj.float64, (3,), "w")
        a0 = gj.placeholder(gj.float64, (3,), "a0")
        scale = gj.exp(w * 0.1)  # in the arena, read by every iteration
        grow = lambda a: (a * scale + 1.0,)  # noqa: E731
        (a,) = gj.while_loop(lambda a: gj.sum(a) < 50.0, grow, [a0 * 2.0])
        loss = gj.sum(gj.square(a))
    return g, w, a0, loss


def test_while_carried_values_share_the_loop_buffer():
    g, w, a0, loss = loop_graph()
    program, plan = planned(g, [loss], feeds={w: (3,), a0: (3,)})
    (loop,) = [op for op in program.function.block.ops if op.name == "while"]
    before, after = (r.block for r in loop.regions)
    assert plan.buffers[before.args[0]].kind == mem.ARENA
    assert plan.buffers[after.args[0]].alias_of is before.args[0]
    assert plan.buffers[loop.results[0]].alias_of is before.args[0]


@pytest.mark.parametrize("order", [1, 2])
def test_while_gradient_plans(order):
    g, w, a0, loss = loop_graph()
    with g.as_default():
        grads = gj.gradients(loss, [w, a0])
        if order == 2:
            grads = gj.gradients(gj.sum(grads[0] * grads[1]), [w])
    _, plan = planned(g, [loss, *grads], feeds={w: (3,), a0: (3,)})
    assert plan.peak_live_bytes <= plan.arena_bytes


def test_nested_loops_and_cond_plans():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, (4,), "x")
        p = gj.placeholder(gj.bool_, (), "p")
        y = gj.cond(
            p,
            lambda: gj.exp(x) * 2.0,
            lambda: gj.matmul(x[None], gj.constant(rand(4, 4).astype(np.float64)))[0],
        )

        def outer(i, v):
            (u,) = gj.while_loop(lambda u: gj.sum(u) < 100.0, lambda u: (u * 1.5 + y,), [v])
            return i + 1, u * 0.5

        _, z = gj.while_loop(lambda i, v: i < 3, outer, [gj.constant(0), x + 1.0])
        swap = lambda a, b, i: (b, a * 0.5 + b, i + 1)  # noqa: E731 (a permutation of slots)
        a, b, _ = gj.while_loop(lambda a, b, i: i < 4, swap, [z * 2.0, y + 1.0, gj.constant(0)])
        loss = gj.sum(a * b)
        grads = gj.gradients(loss, [x])
    planned(g, [loss, *grads], feeds={x: (4,), p: ()})


def test_checker_catches_a_clobbered_value():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, (16, 16), "x")
        a = gj.matmul(x, x)
        b = gj.matmul(a, x)
        out = gj.sum(gj.matmul(b, a))  # a is still needed after b is made
    program, plan = planned(g, [out])
    fn = program.function
    a_val, b_val = fn.block.ops[0].result, fn.block.ops[1].result
    plan.buffers[b_val] = plan.buffers[a_val]  # pretend b took a's bytes
    with pytest.raises(AssertionError, match="overwritten"):
        check_plan(fn, plan)


def test_loop_body_writes_carried_values_in_place_unless_read_later():
    """j + 1 and w * 0.5 + t are written into their carried buffers (the yield copies
    nothing); t + 1 is not, because the kernel of w reads the old t after it."""
    g = gj.Graph()
    with g.as_default():
        n = gj.placeholder(gj.int32, (), "n")
        v = gj.placeholder(gj.float64, (5,), "v")
        body = lambda j, t, w: (j + 1, t + 1.0, w * 0.5 + t)
        out = gj.while_loop(lambda j, t, w: j < n, body, [0, gj.constant(0.0, gj.float64), v])
    program, plan = planned(g, list(out), feeds={v: (5,)})
    (loop,) = [op for op in program.function.block.ops if op.name == "while"]
    body_block = loop.regions[1].block
    j_next, t_next, w_next = body_block.terminator.operands
    j_arg, t_arg, w_arg = body_block.args
    assert plan.buffers[j_next].reuses is j_arg
    assert plan.buffers[w_next].reuses is w_arg
    assert plan.buffers[t_next].reuses is None
    assert plan.buffers[w_next].offset == plan.buffers[w_arg].offset


def test_row_groups_keep_their_values_apart_row_for_row():
    """A plan for row groups (a backend running consecutive kernels row by row) is valid in
    program order, and within a group two values share bytes only when one is written over
    the other in place and both are row-local: run row by row (each member on row r, then
    row r + 1), every read still finds the row it wants."""
    g = gj.Graph()
    with g.as_default():
        x, dy = (gj.placeholder(gj.float32, (48, 96), n) for n in ("x", "dy"))
        w, b = (gj.placeholder(gj.float32, (96,), n) for n in ("w", "b"))
        y = gj.nn.layer_norm(gj.tanh(x), [96], w, b)
        grads = gj.gradients(y, [x, w, b], dy)
    program, plain = planned(g, [y, *grads])
    fn = program.function
    groups = [
        mem.RowGroup(tuple(run), frozenset(_row_local_values(run)))
        for run in _runs_of_row_kernels(fn.block.ops, rows=48)
    ]
    assert groups and max(len(group.ops) for group in groups) >= 4
    plan = mem.plan_memory(fn, groups)
    check_plan(fn, plan)
    for group in groups:
        _simulate_row_by_row(group, plan, rows=48)
    assert plan.arena_bytes >= plain.arena_bytes  # (values kept apart over the group)


def _runs_of_row_kernels(ops, rows):
    """Consecutive fused ops over (rows, ...) spaces, in runs (a stand-in for a backend's
    chains: the planner's rules do not depend on which runs a backend picks)."""
    run = []
    for op in ops:
        if op.name == "fused" and _space(op)[:1] == (rows,):
            run.append(op)
            continue
        if len(run) >= 2:
            yield run
        run = []
    if len(run) >= 2:
        yield run


def _space(op):
    from graphjit.codegen.layout import iteration_space

    return tuple(iteration_space(op.regions[0].block))


def _row_local_values(run):
    """Values of the run that each member touching them reads or writes row by row."""
    rows = _space(run[0])[0]

    def local(op, v):
        return len(v.type.shape) == len(_space(op)) and v.type.shape[0] == rows

    values = {v for op in run for v in op.operands + op.results}
    return {v for v in values if all(local(op, v) for op in run if v in op.operands + op.results)}


def _simulate_row_by_row(group, plan, rows):
    """Each member on row r, for every row: a write stamps the row's bytes of its value (the
    whole value when it is not row-local), a read checks them."""

    def region(v, r):
        buf = plan.buffers.get(v)
        if buf is None or buf.offset is None:
            return None  # an argument, an output, a constant: bytes of its own
        row = buf.nbytes // rows
        if v in group.row_local:
            return buf.offset + r * row, buf.offset + (r + 1) * row
        return buf.offset, buf.offset + buf.nbytes

    arena = np.full(plan.arena_bytes, -1, np.int64)
    stamps = {}
    for r in range(rows):
        for op in group.ops:
            for v in op.operands:
                bytes_ = region(v, r)
                if bytes_ is not None and v in stamps:
                    lo, hi = bytes_
                    assert np.all(arena[lo:hi] == stamps[v]), f"row {r}: {v!r} was overwritten"
            for v in op.results:
                bytes_ = region(v, r)
                if bytes_ is not None:
                    stamps[v] = id(v)
                    arena[bytes_[0] : bytes_[1]] = id(v)
