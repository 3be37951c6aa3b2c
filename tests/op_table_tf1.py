"""Op-table records for TensorFlow 1's names, called with TF1's argument names.
op_table.py adds them to OP_TABLE."""

from __future__ import annotations

from op_table import OpCase  # noqa: F401

TF1_CASES: list = []
