"""Building IR: an insertion point (a block) and `create`, which infers result types.

The insertion point is a thread-local stack; `with insertion_point(block):` makes ops land
in `block` for the duration of the `with`, so nested control-flow regions are built by
nesting `with` blocks. The graph frontend registers a provider for the default block, so
ops built outside any `with` go to the default graph.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

from graphjit.ir.core import Block, Operation, Region, user_location
from graphjit.ir.registry import get_op

_state = threading.local()
_default_block_provider: Callable[[], Block] | None = None


def set_default_block_provider(fn: Callable[[], Block]) -> None:
    global _default_block_provider
    _default_block_provider = fn


def _stack() -> list[Block]:
    if not hasattr(_state, "stack"):
        _state.stack = []
    return _state.stack


@contextmanager
def insertion_point(block: Block):
    stack = _stack()
    stack.append(block)
    try:
        yield block
    finally:
        stack.pop()


def current_block() -> Block:
    stack = _stack()
    if stack:
        return stack[-1]
    if _default_block_provider is None:
        raise RuntimeError("no insertion point: build ops inside `with insertion_point(block)`")
    return _default_block_provider()


def create(
    name: str,
    operands=(),
    attrs=None,
    regions: list[Region] | tuple = (),
    result_types=None,
    block: Block | None = None,
    loc=None,
) -> Operation:
    """Create op `name` at the insertion point; result types come from its shape rule."""
    opdef = get_op(name)
    attrs = opdef.normalize_attrs(dict(attrs or {}))
    loc = loc if loc is not None else user_location()
    if result_types is None:
        result_types = opdef.infer_types(operands, attrs, regions, loc)
    op = Operation(name, operands, result_types, attrs, regions, loc)
    (block or current_block()).append(op)
    return op
