"""Export to upstream MLIR (`export`, `verify`) and IREE as a backend (`Session(g,
backend="iree")`). Exporting needs nothing extra; verifying and running need the `mlir`
extra (`pip install graphjit[mlir]`). docs/mlir.md lists which ops export."""

from graphjit.mlir.emitters import EMITTERS, NOT_EXPORTED
from graphjit.mlir.export import export, export_program, verify
from graphjit.mlir.writer import ExportError

__all__ = ["EMITTERS", "NOT_EXPORTED", "ExportError", "export", "export_program", "verify"]
