"""Structured control flow with regions, after MLIR's scf dialect.

    %r = cond %pred { then: ...; yield %a } { else: ...; yield %b }
    %r = while (%x = %init) { before(%x): ...; condition %p } do { after(%x): ...; yield %x' }

`while` runs `before` on the carried values; when its predicate is false the carried values
are the results, otherwise `after` computes the next ones. `max_iterations` (or None) stops
the loop after that many iterations, as TensorFlow 1 does. Regions may use values defined
above them. The interpreter and code generators give these ops their meaning; autodiff
differentiates them as region transformations.
"""

from __future__ import annotations

from graphjit.errors import BackendError, ControlFlowError, DTypeError
from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.ops import (
    ENDS_FUNCTION,
    ENDS_REGION,
    KERNEL,
    NONDIFF,
    REQUIRED,
    VIEW,
    OpDef,
    P,
    RegionSpec,
    register,
)
from graphjit.ir.patterns import constant_value
from graphjit.ir.types import ListType, TensorType, shape_str


def _type_list(types) -> str:
    return "(" + ", ".join(str(t) for t in types) + ")"


def yielded_types(region) -> list:
    term = region.block.terminator
    if term is None or not term.opdef.has(ENDS_REGION):
        raise ControlFlowError("region does not end in a terminator")
    return [v.type for v in term.operands]


def _check_pred(t, what) -> None:
    if not (t.dtype.is_bool and t.shape == ()):
        raise DTypeError(f"{what} must be a boolean scalar, got {t}")


def _cond_infer(types, attrs, regions):
    """The branches' types merged as TensorFlow 1 merges them: a dimension where the
    branches differ becomes unknown (None); dtypes, ranks and list types must agree."""
    _check_pred(types[0], "cond predicate")
    then_types, else_types = (yielded_types(r) for r in regions)
    merged = [merge_types(a, b) for a, b in zip(then_types, else_types)]
    if len(then_types) != len(else_types) or None in merged:
        raise ControlFlowError(
            f"cond branches return different types: true branch {_type_list(then_types)}, "
            f"false branch {_type_list(else_types)}"
        )
    return merged


def merge_types(a, b):
    """The most specific type both `a` and `b` have (None where their dims differ), or
    None when no tensor type holds both (different dtypes or ranks, or list types)."""
    if a == b:
        return a
    if not (isinstance(a, TensorType) and isinstance(b, TensorType)):
        return None
    if a.dtype != b.dtype or a.rank != b.rank:
        return None
    return a.with_shape([x if x == y else None for x, y in zip(a.shape, b.shape)])


# Native loops count iterations in a signed 64-bit integer. A larger bound cannot be
# reached (2**63 iterations take centuries): the frontend clamps to this one, which is
# exact, and the shape rule refuses anything else (parsed IR included).
MAX_ITERATIONS_LIMIT = 2**63 - 1


def _check_iteration_limit(limit) -> None:
    if limit is not None and not (type(limit) is int and 0 <= limit <= MAX_ITERATIONS_LIMIT):
        raise ControlFlowError(
            f"while's max_iterations must be none or an integer in [0, 2**63 - 1], got {limit!r}"
        )


def _while_infer(types, attrs, regions):
    _check_iteration_limit(attrs["max_iterations"])
    before, after = regions
    arg_types = [a.type for a in before.block.args]
    if arg_types != list(types) or [a.type for a in after.block.args] != list(types):
        raise ControlFlowError(f"while region arguments do not match {_type_list(types)}")
    pred_types = yielded_types(before)
    if len(pred_types) != 1:
        raise ControlFlowError("while's before region must end in `condition %pred`")
    _check_pred(pred_types[0], "while_loop condition")
    body_types = yielded_types(after)
    if len(body_types) != len(types):
        raise ControlFlowError(
            f"while_loop body returns {len(body_types)} values for {len(types)} loop variables"
        )
    for i, (old, new) in enumerate(zip(types, body_types)):
        if old != new:
            raise ControlFlowError(
                f"while_loop body changes loop variable {i} from {old} to {new} "
                f"(shapes {shape_str(old.shape)} -> {shape_str(new.shape)}); loop variables "
                "must keep their shape and dtype, or be given a shape invariant with None "
                "where the shape may change (while_loop's shape_invariants)"
            )
    return list(types)


def _shape_invariant_infer(types, attrs):
    """The operand's dtype with the declared shape; every declared dimension must agree
    with the operand's where both are known."""
    (t,) = types
    shape = attrs["shape"]
    if not isinstance(t, TensorType):
        raise DTypeError(f"shape_invariant takes a tensor, got {t}")
    if len(shape) != t.rank or any(
        d is not None and k is not None and d != k for d, k in zip(shape, t.shape)
    ):
        raise ControlFlowError(
            f"shape invariant {shape_str(shape)} does not hold for a value of shape {shape_str(t.shape)}"
        )
    return [t.with_shape(shape)]


def _shape_invariant_kernel(x, shape):
    if x.ndim != len(shape) or any(d is not None and d != k for d, k in zip(shape, x.shape)):
        raise ControlFlowError(
            f"a value of shape {list(x.shape)} breaks its shape invariant {shape_str(shape)}"
        )
    return x


# Declares a value's static shape, more general than the operand's (None where a while
# loop's value may change shape between iterations, TensorFlow 1's shape invariants) or
# more specific (a cotangent given back its primal's shape); checked when it runs.
register(
    OpDef(
        "shape_invariant",
        _shape_invariant_infer,
        _shape_invariant_kernel,
        lambda cts, ins, outs, a: [
            None if cts[0] is None else P.shape_invariant(cts[0], shape=ins[0].type.shape)
        ],
        attrs={"shape": REQUIRED},
        traits=frozenset({VIEW}),  # the same bytes: backends may share the storage
    )
)


def runtime_shape_error(fn, backend: str):
    """A BackendError naming the first op of `fn` whose result's shape is still unknown
    once the Session has specialised the fed shapes, or None. Such shapes come from a
    while_loop shape invariant with None dimensions (a value that changes shape between
    iterations) or a cond whose branches differ in shape; code generators that plan every
    buffer when the Session is built cannot run them."""
    for op in fn.walk():
        for v in op.results:
            t = v.type.elem if isinstance(v.type, ListType) else v.type
            if isinstance(t, TensorType) and not t.is_static:
                return BackendError(
                    f"the {backend} backend cannot run '{op.name}': its result {v.type} has "
                    "a shape known only at run time (a while_loop value whose shape "
                    "invariant has None dimensions, or a cond whose branches differ in "
                    "shape), and a function given to this backend directly must have "
                    "every buffer planned; compile it with runtime.executable."
                    "compile_program, which runs such a function staged",
                    op=op,
                )
    return None


REGION = "region"  # a VJP marker: autodiff differentiates this op as a region transformation
BRANCH = RegionSpec("yield", "none")  # a cond branch: no arguments, yields the results
LOOP_TEST = RegionSpec("condition", "operands")  # a while's before region: the predicate
LOOP_BODY = RegionSpec("yield", "operands")  # a while's after region: the next values


def constant_predicate(op):
    """cond on a constant predicate is its taken branch, inlined."""
    predicate = constant_value(op.operands[0])
    if predicate is None:
        return None
    branch = op.regions[0 if bool(predicate) else 1].block
    vmap: dict = {}
    for inner in branch.ops[:-1]:
        clone_op(inner, vmap, builder.current_block(), reinfer=False)
    return [vmap.get(v, v) for v in branch.terminator.operands]


register(
    OpDef(
        "cond",
        _cond_infer,
        None,
        REGION,
        regions=(BRANCH, BRANCH),
        canonicalize=(constant_predicate,),
    )
)
# `taped` (set by autodiff) is the number of original loop values of a loop augmented to
# also carry an iteration count and one tape per loop value (see passes/autodiff.py).
WHILE_ATTRS = {"max_iterations": None, "taped": None}
register(
    OpDef(
        "while",
        _while_infer,
        None,
        REGION,
        attrs=WHILE_ATTRS,
        regions=(LOOP_TEST, LOOP_BODY),
    )
)
# A fused kernel made by the fusion pass: its region computes the results from the
# operands (block arguments) with elementwise ops, broadcasts and a final reduction.
register(
    OpDef(
        "fused",
        lambda t, a, regions: yielded_types(regions[0]),
        None,
        REGION,
        regions=(RegionSpec("yield", "free"),),
        traits=frozenset({KERNEL}),
    )
)
# Terminators pass values out of a region (yield, condition) or a function (return);
# autodiff never meets them (they have no results), so they pass no cotangent.
register(OpDef("yield", lambda t, a: [], None, NONDIFF, traits=frozenset({ENDS_REGION})))


def _condition_infer(types, attrs):
    """`condition %p` passes one boolean scalar, the loop's predicate."""
    if len(types) != 1:
        raise DTypeError(f"'condition' takes one boolean scalar, got {_type_list(types)}")
    _check_pred(types[0], "'condition' operand")
    return []


register(OpDef("condition", _condition_infer, None, NONDIFF, traits=frozenset({ENDS_REGION})))
register(OpDef("return", lambda t, a: [], None, NONDIFF, traits=frozenset({ENDS_FUNCTION})))
