"""Export to upstream MLIR (`export`, `verify`), import from it (`import_module`,
`import_graph`; `gj.ir.parse` reads it too) and IREE as a backend (`Session(g,
backend="iree")`). Exporting needs nothing extra; verifying, importing and running need
the `mlir` extra (`pip install graphjit[mlir]`). docs/mlir.md lists which ops export and
import."""

from graphjit.ir.parser import register_dialect_reader
from graphjit.mlir.emitters import EMITTERS, NOT_EXPORTED
from graphjit.mlir.export import export, export_program, verify
from graphjit.mlir.import_core import MLIRImportError
from graphjit.mlir.importer import IMPORT_RULES, IMPORTED_DIALECTS, import_graph, import_module
from graphjit.mlir.writer import ExportError

register_dialect_reader(IMPORTED_DIALECTS, import_module)

__all__ = [
    "EMITTERS",
    "IMPORT_RULES",
    "NOT_EXPORTED",
    "ExportError",
    "MLIRImportError",
    "export",
    "export_program",
    "import_graph",
    "import_module",
    "verify",
]
