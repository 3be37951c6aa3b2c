"""The IR: types, structure, builder, the op registry, printer, parser and verifier."""

from graphjit.ir import ops  # noqa: F401  (registers every primitive)
from graphjit.ir.core import Block, Function, Location, Module, Operation, Region, Value
from graphjit.ir.parser import parse
from graphjit.ir.printer import print_module
from graphjit.ir.types import DType, ListType, TensorType, as_dtype
from graphjit.ir.verifier import verify

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
    "parse",
    "print_module",
    "verify",
]
