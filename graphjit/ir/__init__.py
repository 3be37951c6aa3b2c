"""The IR: types, structure, builder, the op registry, printer, parser and verifier."""

from graphjit.ir import ops  # noqa: F401  (registers every primitive)
from graphjit.ir.core import Block, Function, Location, Module, Operation, Region, Value
from graphjit.ir.types import DType, ListType, TensorType, as_dtype

__all__ = [
    "Block",
    "DType",
    "Function",
    "ListType",
    "Location",
    "Module",
    "Operation",
    "Region",
    "TensorType",
    "Value",
    "as_dtype",
    "ops",
]
