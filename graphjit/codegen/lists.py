"""The tensor-list ops (loop-gradient tapes) as both code generators lower them: each by
the method of the same name on the generator's list helper (`lowering.lists.op_new`, ...)."""

from __future__ import annotations

LIST_OPS = ("list_new", "list_push", "list_get", "list_zeros_like", "list_add_at", "list_add")


def _method(name: str):
    return lambda lowering, op: getattr(lowering.lists, name)(op)


def list_lowerings() -> dict:
    """op name -> lowering(lowering, op), for a backend's table of lowerings."""
    return {op: _method("op_" + op.removeprefix("list_")) for op in LIST_OPS}
