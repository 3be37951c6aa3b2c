"""Source-to-source reverse mode: IR in, IR out, using the registry's VJP rules.

`backprop` walks a block's ops in reverse and lets each op's VJP rule emit its cotangent
computation at the builder's insertion point; cotangents of a value are summed, symbolic
zeros are None. `cond` and `while` are differentiated as region transformations:

- cond: a `cond` on the same predicate whose branches recompute the forward branch and
  differentiate it with respect to the values the branch captures.
- while: the forward loop is augmented (in place, once) to count its iterations and push
  each iteration's loop values onto tensor lists; the backward loop runs the count down,
  reads the values back, recomputes that iteration's body and differentiates it, carrying
  the cotangents of the loop values and summing those of captured values.

Everything emitted is ordinary IR, so the result can be differentiated again.
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import GradientError
from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Block, Operation, Region, Value, captured_values
from graphjit.ir.ops import NONDIFF, P
from graphjit.ir.ops.control import REGION
from graphjit.ir.types import ListType, TensorType


def differentiable(v: Value) -> bool:
    t = v.type
    while isinstance(t, ListType):
        t = t.elem
    return isinstance(t, TensorType) and t.dtype.is_floating


def zeros_like(v: Value) -> Value:
    return P.list_zeros_like(v) if isinstance(v.type, ListType) else P.broadcast_like(0, v)


def accumulate(a: Value | None, b: Value | None) -> Value | None:
    if a is None or b is None:
        return b if a is None else a
    return P.list_add(a, b) if isinstance(a.type, ListType) else P.add(a, b)


def _inputs(op: Operation) -> list[Value]:
    return op.operands + (captured_values(op) if op.regions else [])


def ops_on_path(ops: list[Operation], xs, ys) -> list[Operation]:
    """The ops of `ops` that depend on some x through values that carry gradients (float
    tensors and lists of them) and that some y depends on. A dependence through an integer
    (gj.shape(x), a loop bound or a size computed from x) carries no gradient: the ops
    downstream of it alone are not differentiated (a TensorArray whose size is computed
    from x is filled by a loop of list pushes, which have no VJP and need none)."""
    reached = set(xs)
    forward = []
    for op in ops:
        if any(v in reached for v in _inputs(op)):
            reached.update(r for r in op.results if differentiable(r))
            forward.append(op)
    needed = set(ys)
    path = []
    for op in reversed(forward):
        if any(r in needed for r in op.results):
            needed.update(_inputs(op))
            path.append(op)
    return path[::-1]


def backprop(ops: list[Operation], ys, grad_ys, xs) -> list[Value | None]:
    """Emit the cotangents of `xs` given cotangents `grad_ys` of `ys`, for the computation
    `ops` (in program order), at the current insertion point."""
    cts: dict[Value, Value] = {}
    for y, g in zip(ys, grad_ys):
        if g is not None and differentiable(y):
            cts[y] = accumulate(cts.get(y), g)
    for op in reversed(ops_on_path(ops, xs, list(cts))):
        out_cts = [cts.get(r) for r in op.results]
        if all(c is None for c in out_cts):
            continue
        for v, ct in vjp(op, out_cts).items():
            if ct is not None and differentiable(v):
                cts[v] = accumulate(cts.get(v), ct)
    return [cts.get(x) for x in xs]


def vjp(op: Operation, out_cts: list) -> dict[Value, Value | None]:
    rule = op.opdef.vjp
    if rule == NONDIFF:
        return {}
    if rule == REGION:
        return REGION_VJPS[op.name](op, out_cts)
    if rule is None:
        raise GradientError(f"op '{op.name}' has no gradient (VJP) rule", op=op)
    with _error_context(op):
        in_cts = rule(out_cts, op.operands, op.results, op.attrs)
    return _sum_by_value(op.operands, in_cts)


def _sum_by_value(values, cts) -> dict:
    out: dict[Value, Value | None] = {}
    for v, ct in zip(values, cts):
        out[v] = accumulate(out.get(v), ct)
    return out


class _error_context:
    """Errors raised while emitting a VJP name the forward op being differentiated."""

    def __init__(self, op):
        self.op = op

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is not None and not isinstance(err, GradientError):
            raise GradientError(
                f"differentiating '{self.op.name}' failed: {err}", op=self.op
            ) from err
        return False


# ---- recomputation -----------------------------------------------------------------------


def recompute(block: Block, roots: list[Value], vmap: dict) -> list[Value]:
    """Clone into the current block the ops of `block` that `roots` need; return the roots'
    clones. Region gradients recompute forward values instead of exporting them."""
    needed = set(roots)
    keep = []
    for op in reversed(block.ops):
        if any(r in needed for r in op.results):
            needed.update(_inputs(op))
            keep.append(op)
    target = builder.current_block()
    for op in reversed(keep):
        clone_op(op, vmap, target)
    return [vmap.get(r, r) for r in roots]


# ---- cond --------------------------------------------------------------------------------


def cond_vjp(op: Operation, out_cts: list) -> dict:
    captures = [c for c in captured_values(op) if differentiable(c)]
    if not captures:
        return {}
    grad_ys = [
        ct if ct is not None or not differentiable(r) else zeros_like(r)
        for r, ct in zip(op.results, out_cts)
    ]
    regions = [_cond_branch_vjp(region.block, grad_ys, captures) for region in op.regions]
    backward = builder.create("cond", [op.operands[0]], regions=regions, loc=op.loc)
    return dict(zip(captures, backward.results))


def _cond_branch_vjp(forward: Block, grad_ys, captures) -> Region:
    block = Block()
    with builder.insertion_point(block):
        ys = recompute(forward, forward.terminator.operands, {})
        grads = backprop(list(block.ops), ys, grad_ys, captures)
        builder.create(
            "yield", [g if g is not None else zeros_like(c) for g, c in zip(grads, captures)]
        )
    return Region(block)


# ---- while -------------------------------------------------------------------------------


def ensure_tape(op: Operation) -> tuple[Value, list[Value]]:
    """Augment a forward loop, once, to count iterations and push every iteration's loop
    values onto a tensor list each. Returns (count, tapes); attribute `taped` records the
    number of original loop values so the layout survives cloning and printing."""
    n = op.attrs.get("taped")
    if n is None:
        n = len(op.operands)
        _augment(op, n)
    return op.results[n], op.results[n + 1 : 2 * n + 1]


def _augment(op: Operation, n: int) -> None:
    block = op.parent
    scratch = Block()
    with builder.insertion_point(scratch):
        zero = builder.create("constant", (), {"value": np.zeros((), np.int64)}).result
        new_lists = [P.list_new(v) for v in op.operands[:n]]
    index = block.ops.index(op)
    for new in scratch.ops:
        new.parent = block
    block.ops[index:index] = scratch.ops
    extra = [zero] + new_lists
    op.operands += extra
    before, after = (r.block for r in op.regions)
    for b in (before, after):
        b.args += [Value(v.type, b, len(b.args) + i) for i, v in enumerate(extra)]
    count, lists = after.args[n], after.args[n + 1 :]
    yield_op = after.ops.pop()
    with builder.insertion_point(after):
        next_count = P.add(count, 1)
        pushed = [P.list_push(lst, x) for lst, x in zip(lists, after.args[:n])]
        yield_op.operands += [next_count] + pushed
        after.append(yield_op)
    op.results += [Value(v.type, op, len(op.results) + i) for i, v in enumerate(extra)]
    op.attrs["taped"] = n


def while_vjp(op: Operation, out_cts: list) -> dict:
    count, tapes = ensure_tape(op)
    n = op.attrs["taped"]
    out_cts = list(out_cts) + [None] * (len(op.results) - len(out_cts))  # tapes just added
    before, after = (r.block for r in op.regions)
    loop_vals = [i for i in range(n) if differentiable(op.results[i])]
    body_yield = after.terminator.operands[:n]
    captures = [c for c in _body_captures(after, n) if differentiable(c)]
    tape_cts = [out_cts[n + 1 + j] for j in range(n)]
    init_cts = [
        out_cts[i] if out_cts[i] is not None else zeros_like(op.results[i]) for i in loop_vals
    ]
    init_acc = [zeros_like(c) for c in captures]
    inits = [count] + init_cts + init_acc
    cond_block = Block([v.type for v in inits])
    with builder.insertion_point(cond_block):
        builder.create("condition", [P.greater(cond_block.args[0], 0)])
    body = Block([v.type for v in inits])
    with builder.insertion_point(body):
        k = P.sub(body.args[0], 1)
        carried_cts = body.args[1 : 1 + len(loop_vals)]
        acc = body.args[1 + len(loop_vals) :]
        xs = [P.list_get(t, k) for t in tapes]
        vmap = dict(zip(after.args[:n], xs))
        mark = len(body.ops)
        ys = recompute(after, [body_yield[i] for i in loop_vals], vmap)
        grads = backprop(body.ops[mark:], ys, carried_cts, [xs[i] for i in loop_vals] + captures)
        new_cts = []
        for j, i in enumerate(loop_vals):
            ct = grads[j] if grads[j] is not None else zeros_like(xs[i])
            if tape_cts[i] is not None:
                ct = P.add(ct, P.list_get(tape_cts[i], k))
            new_cts.append(ct)
        new_acc = [accumulate(a, g) for a, g in zip(acc, grads[len(loop_vals) :])]
        builder.create("yield", [k] + new_cts + new_acc)
    backward = builder.create(
        "while", inits, {"max_iterations": None}, [Region(cond_block), Region(body)], loc=op.loc
    )
    out = backward.results
    # one value may initialise several loop variables and be captured too: sum its cotangents
    return _sum_by_value([op.operands[i] for i in loop_vals] + captures, out[1:])


def _body_captures(after: Block, n: int) -> list[Value]:
    """Values from outside the loop that the original body (the first n yields) uses."""
    inside = set(after.args)
    needed, seen = list(after.terminator.operands[:n]), {}
    ops = {r: o for o in after.ops for r in o.results}
    stack, visited = list(needed), set()
    while stack:
        v = stack.pop()
        if v in visited:
            continue
        visited.add(v)
        if v in ops:
            for u in _inputs(ops[v]):
                stack.append(u)
        elif v not in inside:
            seen.setdefault(v, None)
    return list(seen)


REGION_VJPS = {"cond": cond_vjp, "while": while_vjp}
