"""Op-table records for indexing ops (issue 17); op_table.py adds them to OP_TABLE."""

from __future__ import annotations

from op_table import OpCase  # noqa: F401

INDEXING_CASES: list = []
