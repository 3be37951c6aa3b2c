"""Checks the IR's invariants, so a pass that breaks one fails at that pass, not later.

Run after every pass in tests and debug mode. Each error names the op, says what is wrong
and prints the IR around it. The checks: registered op names and attributes, SSA
dominance (regions may capture values from enclosing blocks, never values defined later
or inside another region), result types equal to the op's shape rule, region counts,
region block arguments and terminators, and terminators only at the end of a block.
"""

from __future__ import annotations

from graphjit.errors import GraphjitError, VerificationError
from graphjit.ir.core import Block, Function, Module, Operation, Value
from graphjit.ir.ops import ENDS_FUNCTION, ENDS_REGION, OpDef, RegionSpec, get_op
from graphjit.ir.printer import print_op_context, value_names
from graphjit.ir.types import TensorType


def verify(target: Module | Function) -> None:
    """Raise VerificationError at the first broken invariant; return None if all hold."""
    functions = target.functions if isinstance(target, Module) else [target]
    seen: set[str] = set()
    for fn in functions:
        if fn.name in seen:
            raise VerificationError(f"function @{fn.name} is defined more than once")
        seen.add(fn.name)
        if len(fn.body.blocks) != 1:
            raise VerificationError(
                f"function @{fn.name} has {len(fn.body.blocks)} blocks, not one"
            )
        _FunctionVerifier(fn).block(fn.block, top=True)


class _FunctionVerifier:
    """Walks one function in order, tracking which values are visible at each op."""

    def __init__(self, fn: Function):
        self.fn = fn
        self.visible: set[Value] = set()  # defined earlier here or in an enclosing block
        self.seen: set[Value] = set()  # defined earlier anywhere in the function
        self._names: dict[Value, str] | None = None

    def fail(self, op: Operation, what: str) -> VerificationError:
        where = f" at {op.loc}" if op.loc is not None else ""
        context = print_op_context(op, function=self.fn)
        err = VerificationError(f"op '{op.name}'{where}: {what}\n{context}")
        err.op, err.location = op, op.loc
        return err

    def name(self, value: Value) -> str:
        if self._names is None:
            self._names = value_names(self.fn)
        return self._names.get(value, "a value from outside this function")

    def block(self, block: Block, top: bool) -> None:
        defined = list(block.args)
        self.visible.update(block.args)
        self.seen.update(block.args)
        for i, op in enumerate(block.ops):
            self.op(op, block, last=i == len(block.ops) - 1, top=top)
            defined.extend(op.results)
        self.visible.difference_update(defined)

    def op(self, op: Operation, block: Block, last: bool, top: bool) -> None:
        opdef = self.opdef(op)
        self.placement(op, opdef, block, last, top)
        self.operands(op)
        self.regions(op, opdef)
        self.result_types(op, opdef)
        self.visible.update(op.results)
        self.seen.update(op.results)

    def opdef(self, op: Operation) -> OpDef:
        try:
            opdef = get_op(op.name)
        except GraphjitError:
            raise self.fail(op, f"unknown op '{op.name}' (not in the op registry)") from None
        missing, unknown = set(opdef.attrs) - set(op.attrs), set(op.attrs) - set(opdef.attrs)
        if missing or unknown:
            raise self.fail(
                op, f"attributes missing: {sorted(missing)}, unknown: {sorted(unknown)}"
            )
        return opdef

    def placement(self, op: Operation, opdef: OpDef, block: Block, last: bool, top: bool):
        if op.parent is not block:
            raise self.fail(op, "its parent pointer is not the block that holds it")
        if opdef.is_terminator and not last:
            raise self.fail(op, f"'{op.name}' must be the last op of its block")
        if opdef.has(ENDS_FUNCTION) and not top:
            raise self.fail(op, f"'{op.name}' may only end a function's body, not a region")
        if opdef.has(ENDS_REGION) and top:
            raise self.fail(op, f"'{op.name}' may only end a region, not a function's body")

    def operands(self, op: Operation) -> None:
        for i, v in enumerate(op.operands):
            if not isinstance(v, Value):
                raise self.fail(op, f"operand #{i} is {v!r}, not a Value")
            if v in self.visible:
                continue
            if v in self.seen:
                why = "is defined inside a region that does not enclose this use"
            else:
                why = "is used before it is defined (or is not defined in this function)"
            raise self.fail(op, f"operand #{i} ({self.name(v)}) {why}")

    def regions(self, op: Operation, opdef: OpDef) -> None:
        if len(op.regions) != opdef.num_regions:
            raise self.fail(op, f"has {len(op.regions)} region(s), expected {opdef.num_regions}")
        for i, (region, spec) in enumerate(zip(op.regions, opdef.regions)):
            if len(region.blocks) != 1:
                raise self.fail(op, f"region #{i} has {len(region.blocks)} blocks, not one")
            block = region.block
            self.region_args(op, i, block, _expected_args(op, spec))
            self.block(block, top=False)  # first, so a misplaced op inside is named itself
            self.terminator(op, i, block, spec.terminator)

    def region_args(self, op: Operation, i: int, block: Block, expected) -> None:
        types = [a.type for a in block.args]
        if expected is not None and types != expected:
            raise self.fail(
                op, f"region #{i} has block arguments {_types(types)}, expected {_types(expected)}"
            )

    def terminator(self, op: Operation, i: int, block: Block, expected: str) -> None:
        term = block.terminator
        if term is None or term.name != expected:
            found = "is empty" if term is None else f"ends in '{term.name}'"
            raise self.fail(op, f"region #{i} must end in '{expected}' but {found}")
        # (what a terminator's operands must be is its own shape rule's, checked with it)

    def result_types(self, op: Operation, opdef: OpDef) -> None:
        try:
            inferred = opdef.infer_types(op.operands, op.attrs, op.regions)
        except GraphjitError as e:
            raise self.fail(op, f"its shape rule rejects it: {e.raw_message}") from None
        except (KeyError, AttributeError, ValueError, TypeError, IndexError, ArithmeticError) as e:
            # a rule fed malformed IR (a list-typed operand, say) may fail in other ways
            raise self.fail(op, f"its shape rule fails: {type(e).__name__}: {e}") from None
        actual = [r.type for r in op.results]
        if actual != inferred:
            raise self.fail(
                op, f"result types {_types(actual)} differ from the inferred {_types(inferred)}"
            )


def _expected_args(op: Operation, spec: RegionSpec) -> list | None:
    """The block-argument types a region must have (None: the op's builder decides)."""
    if spec.args == "operands":
        return [v.type for v in op.operands]
    return [] if spec.args == "none" else None


def _is_bool_scalar(t) -> bool:
    return isinstance(t, TensorType) and t.dtype.is_bool and t.shape == ()


def _types(types) -> str:
    return "(" + ", ".join(str(t) for t in types) + ")"
