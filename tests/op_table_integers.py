"""Op-table records for integer and bitwise semantics (bitwise ops, floor division,
modulo, prod, argmin).
op_table.py adds them to OP_TABLE."""

from __future__ import annotations

from op_table import OpCase  # noqa: F401

INTEGERS_CASES: list = []
