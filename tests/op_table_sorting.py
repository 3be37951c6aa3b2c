"""Op-table records for sorting ops (issue 16); op_table.py adds them to OP_TABLE."""

from __future__ import annotations

from op_table import OpCase  # noqa: F401

SORTING_CASES: list = []
