"""The op registry proper: `OpDef` (what an op is: its rules and its declared traits and
region signature), `register`, `get_op`. A leaf of the IR: it imports nothing else of
graphjit's IR, so the core (`Operation.opdef`) and the builder look ops up here without
an import running back up. The op families (`ir/ops/*.py`) register themselves, and
`graphjit.ir.ops` re-exports all of this beside `bind` and `P`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from graphjit.errors import DTypeError, GraphjitError, ShapeError

NONDIFF = "nondifferentiable"  # a VJP marker: the op passes no cotangent to any operand

# ---- traits: what passes and backends ask about an op, declared with the op ----------------
# (tinygrad's GroupOp and xDSL's traits are the models: layers test a trait, not a name.)
ENDS_FUNCTION = "ends_function"  # the terminator of a function's body (return)
ENDS_REGION = "ends_region"  # a terminator that ends a region of a region op (yield, ...)
REDUCTION = "reduction"  # folds its operand's elements over axes (a fused kernel's last op)
INDEX_MAP = "index_map"  # reads its operand at a mapped index (broadcasts): fused as loads
VIEW = "view"  # its result is its first operand's bytes unchanged (a new shape): may alias
CONSTANT = "constant"  # its result is its `value` attribute (folded, inlined, a global)
KERNEL = "kernel"  # a fused kernel: its region runs once per element of its iteration space
FEED = "feed"  # a function input the caller feeds (a placeholder)
STATE = "state"  # a function input that keeps its value between runs (a variable)
STATE_UPDATE = "state_update"  # computes a STATE's new value, written back after the run
BROADCAST = "broadcast"  # its result is its first operand broadcast to a larger shape
# Each result element combines a window of an operand's elements (convolutions, pooling and
# their gradients): NumPy has no such kernel, so eager mode compiles them (eager_compiled.py).
WINDOWED = "windowed"
# Its result's shape depends on its operands' values (the positions of a mask's True
# elements), so it is known only when it runs: backends that plan buffers ahead run it on
# the host, between compiled stages (runtime/staged.py).
VALUE_SHAPED = "value_shaped"


@dataclass(frozen=True)
class RegionSpec:
    """The structure of one region of a region op: the terminator that must end it, and
    what its block arguments are: "operands" (one per operand of the op, of its type: a
    while's carried values), "none", or "free" (whatever the op's builder made: a fused
    kernel's inputs)."""

    terminator: str = "yield"
    args: str = "none"


@dataclass(eq=False)  # one object per op: compared and hashed by identity
class OpDef:
    """One primitive. `infer(types, attrs) -> [result types]`; `kernel(*arrays, **attrs)`
    returns an array (or a tuple for several results); `vjp(cts, ins, outs, attrs)` returns
    one cotangent (or None for zero) per operand."""

    name: str
    infer: Callable
    kernel: Callable | None = None
    vjp: Callable | str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # name -> default (REQUIRED if none)
    elementwise: bool = False  # result[i] depends on operand[i] alone (after broadcasting)
    side_effect: bool = False  # kept by DCE and kept in order
    regions: tuple[RegionSpec, ...] = ()  # a region op's regions, in order
    shape_only: tuple[int, ...] | str = ()  # operands read for their shape alone (or REST)
    # (result, operand) pairs a backend may compute in place: it reads each element of
    # the operand before it writes that element of the result (elementwise ops: any pair)
    overwrites: tuple[tuple[int, int], ...] = ()
    traits: frozenset = frozenset()  # ENDS_FUNCTION, ENDS_REGION, REDUCTION, INDEX_MAP
    # a REDUCTION's starting value for a dtype (a NumPy scalar): what an empty fold gives
    identity: Callable | None = None
    # rewrite patterns rooted at this op, run by the canonicalize pass (MLIR's
    # canonicalization patterns): `pattern(op) -> [replacement values] | None`
    canonicalize: tuple[Callable, ...] = ()
    # the ops it stands for, for an op eager mode runs as one kernel where a graph needs
    # none of its own (PyTorch's tanh_backward): `decompose(op) -> [replacement values]`,
    # applied to every program before its passes (runtime/program.py), so no backend,
    # pass or exporter ever meets the op
    decompose: Callable | None = None

    is_terminator: bool = field(init=False)  # (computed once: interpreters ask per op)
    attr_names: tuple[str, ...] = field(init=False)  # (the keys of attrs, in order)
    required_attrs: tuple[str, ...] = field(init=False)  # (those without a default)
    # the kernel for operands none of which is a float16/bfloat16 array: without the
    # wrapper that computes those in float32 (types.computes_in_float32), whose Python
    # eager mode pays on every op of a tiny tensor
    float_kernel: Callable | None = field(init=False)
    # whether the VJP rule reads the op's inputs, its outputs (values, shapes or dtypes):
    # declared with the rule (`vjp_reading`); eager mode's tape keeps only what it reads
    vjp_reads_inputs: bool = field(init=False)
    vjp_reads_outputs: bool = field(init=False)

    def __post_init__(self):
        self.is_terminator = bool(self.traits & {ENDS_FUNCTION, ENDS_REGION})
        self.attr_names = tuple(self.attrs)
        self.required_attrs = tuple(k for k, v in self.attrs.items() if v is REQUIRED)
        self.float_kernel = getattr(self.kernel, "float_kernel", self.kernel)
        self.vjp_reads_inputs = getattr(self.vjp, "reads_inputs", True)
        self.vjp_reads_outputs = getattr(self.vjp, "reads_outputs", True)

    @property
    def num_regions(self) -> int:
        return len(self.regions)

    @property
    def is_loop(self) -> bool:
        """Its regions run on carried values (block arguments typed as its operands), the
        first computing the predicate: a loop, whose results are the final carried values."""
        return bool(self.regions) and all(spec.args == "operands" for spec in self.regions)

    @property
    def is_branch(self) -> bool:
        """Its regions take no arguments and yield its results: one of them runs."""
        return bool(self.regions) and all(spec.args == "none" for spec in self.regions)

    def has(self, trait: str) -> bool:
        return trait in self.traits

    def normalize_attrs(self, attrs: dict) -> dict:
        """Every declared attribute, in declaration order, defaults filled in. (The dict
        given may be returned: every caller passes one it made for the call.)"""
        if not attrs and not self.attrs:
            return attrs  # most primitives: nothing to check (and this is eager's hot path)
        if tuple(attrs) == self.attr_names:  # (all given, in order: eager's other hot path)
            return attrs
        declared = self.attrs
        for key in attrs:  # (a loop, not sets: a VJP rule's P.matmul(g, b, transpose_b=True))
            if key not in declared:
                unknown = sorted(set(attrs) - set(declared))
                raise GraphjitError(f"op '{self.name}' has no attribute(s) {unknown}")
        for key in self.required_attrs:
            if key not in attrs:
                raise GraphjitError(f"op '{self.name}' needs attribute '{key}'")
        return {**declared, **attrs}  # (declaration order: every key given is declared)

    def infer_types(self, operands, attrs, regions=(), loc=None) -> list:
        types = [v.type for v in operands]
        try:
            if any(getattr(t, "shape", ()) is None for t in types):
                return self._infer_unranked(types, attrs, regions)
            return self._infer(types, attrs, regions)
        except GraphjitError as e:
            if e.location is None and loc is not None:
                raise type(e)(f"{e.raw_message} [op '{self.name}', built at {loc}]") from None
            raise
        except (ValueError, TypeError, IndexError, ArithmeticError) as e:  # (a dim of inf)
            err = DTypeError if isinstance(e, TypeError) else ShapeError
            raise err(f"{self.name}: {e}", location=loc) from None

    def _infer(self, types, attrs, regions) -> list:
        if self.num_regions:
            return list(self.infer(types, attrs, regions))
        return list(self.infer(types, attrs))

    def _infer_unranked(self, types, attrs, regions) -> list:
        """An operand of unknown rank: the results' ranks are unknown too until the feed
        gives it (the Session infers every type again then, so a shape error surfaces
        there, naming this op). Their dtypes come from the rule applied with the operand
        given some rank of unknown dimensions: dtype rules do not depend on the rank."""
        inferred, first_error = [], None
        for rank in STAND_IN_RANKS:
            stand_ins = [
                t.with_shape((None,) * rank) if getattr(t, "shape", ()) is None else t
                for t in types
            ]
            try:
                inferred.append(self._infer(stand_ins, attrs, regions))
            except GraphjitError as e:
                first_error = first_error or e
            if len(inferred) == 2:
                break
        if not inferred:
            raise first_error
        if len(inferred) == 2 and inferred[0] == inferred[1]:
            return inferred[0]  # the same whatever the rank (a flattening reshape: rank 1)
        return [_unranked(t) for t in inferred[0]]

    def shape_only_operands(self, n: int) -> tuple[int, ...]:
        return tuple(range(1, n)) if self.shape_only == REST else self.shape_only

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None and self.vjp != NONDIFF


STAND_IN_RANKS = (2, 1, 0, 3, 4)  # (the first that an op's rule accepts gives the dtypes)


def _unranked(t):
    """A tensor type (ir/types.py, above this module) with its rank forgotten."""
    return replace(t, shape=None) if hasattr(t, "shape") else t


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()
REST = "rest"  # shape_only: every operand after the first


_REGISTRY: dict[str, OpDef] = {}


def vjp_reading(rule: Callable, inputs: bool = True, outputs: bool = True) -> Callable:
    """Declare what VJP rule `rule` reads of its op's inputs and outputs (values, shapes or
    dtypes). Where it reads no input (or no output), eager mode's tape keeps none of those
    arrays and the rule gets None for each: what PyTorch's autograd does, saving only what
    a derivative formula names. A rule declares nothing reads both."""
    rule.reads_inputs, rule.reads_outputs = inputs, outputs
    return rule


def register(opdef: OpDef) -> OpDef:
    if opdef.name in _REGISTRY:
        raise GraphjitError(f"op '{opdef.name}' registered twice")
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GraphjitError(f"unknown op '{name}'") from None


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)
