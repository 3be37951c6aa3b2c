"""Layers import downwards only (issue 15):

    leaf ← ir ← passes ← codegen ← runtime ← frontend ← root (graphjit/__init__.py) ← app

A module may import its own layer, any lower layer, and the leaf modules (errors, config,
version, files, nest), which import nothing but leaves themselves. Every import counts:
module-level, inside functions and under `if TYPE_CHECKING:`, absolute and relative, and
`importlib.import_module` / `__import__` with a literal name. A lower layer that needs
something from a higher one is handed it instead (the eager mode registers its handler with
the op registry, the frontend registers the default graph with the Session and the default
block with the builder).

Inside `ir/` the modules are ordered too (IR_ORDER), the registry (`ir/registry.py`) a
leaf below the core. ALLOWED_UPWARD would list tolerated exceptions one by one; it is
empty, and a listed import that no longer exists fails too (the list only shrinks).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import graphjit

PACKAGE = Path(graphjit.__file__).resolve().parent
ROOT = "graphjit"

LEAVES = {
    "graphjit.errors",
    "graphjit.config",
    "graphjit.version",
    "graphjit.files",
    "graphjit.nest",
}

# Layer of each top-level part of the package, lowest first.
LAYERS = ["leaf", "ir", "passes", "codegen", "runtime", "frontend", "root", "app"]
PARTS = {
    "ir": "ir",
    "passes": "passes",
    "codegen": "codegen",
    "runtime": "runtime",
    "frontend": "frontend",
    "distributed": "frontend",  # gj.distributed: optimizers and modules over MPI
    "mlir": "runtime",  # export to upstream MLIR; the IREE backend the runtime selects
    "bench": "app",  # `graphjit bench`: a user of the public API
    "cli": "app",
}

# The order inside ir/, lowest first; a module belongs to the longest entry that prefixes
# it (graphjit.ir.ops.elementwise is in graphjit.ir.ops). `graphjit.ir` itself, the
# package's __init__, sits above them all. A new ir/ module must be placed here.
IR_ORDER = [
    "graphjit.ir.registry",
    "graphjit.ir.core",
    "graphjit.ir.symbolic",
    "graphjit.ir.types",
    "graphjit.ir.builder",
    "graphjit.ir.clone",
    "graphjit.ir.patterns",
    "graphjit.ir.ops",
    "graphjit.ir.printer",
    "graphjit.ir.parser",
    "graphjit.ir.verifier",
    "graphjit.ir",
]

# (importing module, imported module): upward imports tolerated, none today; nothing
# outside ir/ may ever be listed.
ALLOWED_UPWARD: set = set()


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    file: Path
    line: int
    text: str

    def where(self) -> str:
        return f"{self.file.relative_to(PACKAGE.parent)}:{self.line}: {self.text}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    base = PACKAGE.parent / relative
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, source: str | None = None) -> list[Import]:
    importer = module_name(path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    found = []

    def add(node: ast.AST, name: str) -> None:
        if name == ROOT or name.startswith(ROOT + "."):
            found.append(Import(importer, name, path, node.lineno, ast.unparse(node)))

    source = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = importlib.util.resolve_name("." * node.level, package)
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:  # `from a import b`: the module a.b, else a itself
                sub = f"{source}.{alias.name}"
                add(node, sub if is_module(sub) else source)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    add(node, arg.value)
    return sorted(found, key=lambda imp: imp.line)


def all_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(path)]


def layer_of(module: str) -> str:
    if module == ROOT:
        return "root"
    if module in LEAVES:
        return "leaf"
    part = module.split(".")[1]
    if part not in PARTS:
        raise AssertionError(f"{module}: no layer; add graphjit.{part} to PARTS or LEAVES")
    return PARTS[part]


def ir_rank(module: str) -> int:
    matches = [m for m in IR_ORDER if module == m or module.startswith(m + ".")]
    if not matches:
        raise AssertionError(f"{module}: not placed in IR_ORDER (tests/test_layering.py)")
    return IR_ORDER.index(max(matches, key=len))


def is_upward(imp: Import) -> bool:
    if imp.imported.startswith(imp.importer + "."):
        return False  # a package's __init__ collecting its own parts
    low, high = layer_of(imp.imported), layer_of(imp.importer)
    if low == "leaf":
        return False
    if low == "ir" and high == "ir":
        below = ir_rank(imp.imported)
        here = ir_rank(imp.importer)
        # one ir group's own modules (the registry and its op families) share a rank
        return below > here
    return LAYERS.index(low) > LAYERS.index(high)


def test_every_module_has_a_layer():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        layer = layer_of(name)
        if layer == "ir":
            ir_rank(name)


def test_imports_run_downwards_only():
    imports = all_imports()
    assert len(imports) > 100, "the scan found too few imports: is it reading graphjit/?"
    upward = [imp for imp in imports if is_upward(imp)]
    offending = [imp for imp in upward if (imp.importer, imp.imported) not in ALLOWED_UPWARD]
    assert not offending, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"  {imp.where()}  ({layer_of(imp.importer)} -> {layer_of(imp.imported)})"
        for imp in offending
    )
    stale = ALLOWED_UPWARD - {(imp.importer, imp.imported) for imp in upward}
    assert not stale, f"ALLOWED_UPWARD lists imports that are gone; delete them: {sorted(stale)}"


def test_allow_list_stays_inside_ir():
    for importer, imported in ALLOWED_UPWARD:
        assert layer_of(importer) == layer_of(imported) == "ir", (importer, imported)


def test_the_check_sees_function_level_and_relative_imports():
    source = (
        "from graphjit.ir.core import Value\n"
        "def f():\n"
        "    from graphjit.frontend.graph import Graph\n"
        "    from .. import runtime\n"
        "    import importlib\n"
        "    importlib.import_module('graphjit.runtime.session')\n"
    )
    probe = PACKAGE / "passes" / "probe.py"  # read from `source`, not from disk
    found = [(imp.imported, imp.line) for imp in imports_of(probe, source)]
    assert found == [
        ("graphjit.ir.core", 1),
        ("graphjit.frontend.graph", 3),
        ("graphjit.runtime", 4),
        ("graphjit.runtime.session", 6),
    ]
    upward = [imp.imported for imp in imports_of(probe, source) if is_upward(imp)]
    assert upward == ["graphjit.frontend.graph", "graphjit.runtime", "graphjit.runtime.session"]


# ---- the pipeline runs in one place -------------------------------------------------------


def _unplanned_program():
    from graphjit.runtime.program import build_program

    g = graphjit.Graph()
    with g.as_default():
        out = graphjit.exp(graphjit.constant([1.0, 2.0])) * 2.0
    return build_program(g, [out], [], {})


@pytest.mark.parametrize("backend", ["llvm", "cuda"])
def test_backends_refuse_a_function_the_pipeline_has_not_planned(backend):
    from graphjit.runtime.executable import BACKENDS

    program = _unplanned_program()
    with pytest.raises(graphjit.BackendError, match="memory plan.*compile_program"):
        BACKENDS[backend].factory(program, False, True)


def test_compile_program_runs_the_pipeline_the_backends_need():
    from graphjit.runtime.executable import compile_program

    program = _unplanned_program()
    executable = compile_program(program, "llvm", optimize_ir=False)
    assert program.function.memory_plan is not None
    np.testing.assert_allclose(executable.run([])[0], np.exp([1.0, 2.0]) * 2.0)


def test_session_without_a_graph_uses_the_frontends_default():
    graphjit.reset_default_graph()
    x = graphjit.constant(3.0) + 1.0
    with graphjit.Session() as sess:
        assert sess.graph is graphjit.get_default_graph()
        assert sess.run(x) == 4.0


# ---- structure is declared with the op, not known by name ------------------------------------
# Only an op's own definition (ir/ops/) and the backends' lowerings (codegen/, and the
# reference interpreter's table) may ask for an op by its name; everything else asks traits.
NAME_TESTS_ALLOWED = ("graphjit/ir/ops/", "graphjit/codegen/", "graphjit/runtime/interpreter.py")


def _string_literals(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and all(_string_literals(e) for e in node.elts)
    if isinstance(node, ast.Call) and node.args:  # frozenset({...})
        return _string_literals(node.args[0])
    return False


def op_name_tests(source: str) -> list[int]:
    """Lines comparing some op's `.name` with string literals (a dtype's name is not an op's)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        left = node.left
        if not (isinstance(left, ast.Attribute) and left.attr == "name"):
            continue
        if isinstance(left.value, ast.Attribute) and left.value.attr == "dtype":
            continue
        if any(_string_literals(c) for c in node.comparators):
            lines.append(node.lineno)
    return lines


def test_only_op_definitions_and_lowerings_test_op_names():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = str(path.relative_to(PACKAGE.parent))
        if relative.startswith(NAME_TESTS_ALLOWED):
            continue
        found += [f"{relative}:{line}" for line in op_name_tests(path.read_text())]
    assert not found, "ask the op's traits (ir/registry.py), not its name:\n" + "\n".join(found)


def test_the_name_check_sees_the_forms_passes_used():
    source = (
        'if op.name == "neg": pass\n'
        'if x.op.name in ("add", "sub"): pass\n'
        'if op.name not in frozenset({"while"}): pass\n'
        'if x.dtype.name == "int32": pass\n'
        "if op.name == other.name: pass\n"
    )
    assert op_name_tests(source) == [1, 2, 3]
