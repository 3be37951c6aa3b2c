"""Upstream MLIR -> graphjit IR: the inverse of export, for the subset it writes (`func`,
`arith`, `math`, `tensor`, `linalg`, `scf`), so a model written in those dialects runs
on every graphjit backend.

MLIR's own parser (the `mlir` extra's `iree.compiler.ir`) reads and verifies the text;
the importer walks the parsed ops and maps each through one table, IMPORT_RULES (MLIR op
name -> rule), as emitters.py maps graphjit ops out. `gj.ir.parse` hands text in these
dialects here (graphjit.mlir registers `import_module` with the parser), so it returns
the same `Module` for upstream text as for graphjit's own; `import_graph` puts a
function into a Graph, its arguments as placeholders, for a Session to run."""

from __future__ import annotations

import functools
import threading
from typing import NamedTuple

from graphjit.errors import GraphjitError
from graphjit.ir import builder
from graphjit.ir.clone import clone_op
from graphjit.ir.core import Block, Function, Module, Region
from graphjit.ir.ops import ENDS_FUNCTION, FEED, STATE
from graphjit.ir.parser import parse
from graphjit.ir.verifier import verify
from graphjit.mlir.import_core import Importer, MLIRImportError, line_and_column, tensor_type
from graphjit.mlir.import_linalg import LINALG_RULES
from graphjit.mlir.import_scalar import SCALAR_RULES
from graphjit.mlir.import_tensor import TENSOR_RULES
from graphjit.passes.dce import DCE
from graphjit.runtime.session import _default_graph

INSTALL_HINT = "pip install graphjit[mlir]"

# ---- structured control flow: scf.if -> cond, scf.while -> while ---------------------------


def read_if(im, op):
    """scf.if: a cond on the i1 (a bool scalar); a missing else yields nothing."""
    branches = []
    for region in op.regions:
        with im.into(Block()) as block:
            yielded = (
                im.values(im.read_block(region.blocks[0], []).operands) if region.blocks else []
            )
            im.create("yield", yielded)
        branches.append(Region(block))
    cond = im.create("cond", [im.value(op.operands[0])], branches)
    return _results(cond)


def read_while(im, op):
    """scf.while. graphjit's before region only computes the predicate: when scf.condition
    forwards other values than the before region's arguments, the body and the results
    compute them again from the carried values (the before region read once more each)."""
    before, after = (region.blocks[0] for region in op.regions)
    inits = [
        im.conform(im.value(v), arg.type, exact=True)
        for v, arg in zip(op.operands, before.arguments, strict=True)
    ]
    types = [v.type for v in inits]
    with im.into(Block(types)) as test:
        condition = im.read_block(before, test.args)
        im.create("condition", [im.value(condition.operands[0])])
    forwards_arguments = list(condition.operands[1:]) == list(before.arguments)
    with im.into(Block(types)) as body:
        args = body.args if forwards_arguments else _forwarded(im, before, body.args)
        yielded = im.read_block(after, args).operands
        im.create(
            "yield",
            [
                im.conform(v, arg.type, exact=True)
                for v, arg in zip(im.values(yielded), before.arguments)
            ],
        )
    loop = im.create("while", inits, [Region(test), Region(body)])
    results = _results(loop)
    return results if forwards_arguments else _forwarded(im, before, results)


def _forwarded(im, before, carried: list) -> list:
    """What the before region's scf.condition forwards for `carried` values."""
    return im.values(im.read_block(before, carried).operands[1:])


def _results(op_or_value) -> list:
    return op_or_value.results if hasattr(op_or_value, "results") else [op_or_value]


# ---- the table --------------------------------------------------------------------------------

IMPORT_RULES = {
    **SCALAR_RULES,
    **TENSOR_RULES,
    **LINALG_RULES,
    "scf.if": read_if,
    "scf.while": read_while,
}
# The dialects of the ops above: gj.ir.parse hands text with ops in them to import_module
# (and cf, whose cf.assert the exporter writes for run-time checks: it is named unread).
IMPORTED_DIALECTS = sorted({name.split(".")[0] for name in IMPORT_RULES} | {"cf"})


# ---- entry points -------------------------------------------------------------------------------


@functools.cache
def _mlir_bindings():
    try:
        from iree.compiler import ir
    except ImportError as e:
        raise MLIRImportError(
            f"reading upstream MLIR needs MLIR's parser from the mlir extra ({e}): {INSTALL_HINT}"
        ) from None
    return ir


def import_module(text: str | bytes) -> Module:
    """The module of upstream MLIR `text` as graphjit IR (what `gj.ir.parse` returns for
    graphjit's own text): one Function per `func.func`. Raises MLIRImportError (a
    ParseError) with MLIR's diagnostic for malformed text, and naming the op and its line
    and column for an op outside the imported subset."""
    ir = _mlir_bindings()
    text = text.decode("utf-8") if isinstance(text, (bytes, bytearray)) else text
    with _context(ir, len(text)):
        try:
            parsed = ir.Module.parse(text)
        except ir.MLIRError as e:
            raise _diagnosed(e) from None
        module = Module(
            [_top_level(Importer(IMPORT_RULES, ir), op) for op in parsed.body.operations]
        )
    verify(module)
    return module


_contexts = threading.local()
# MLIR keeps every constant a context has parsed until the context goes: a thread's
# context is replaced once the texts it has read pass this many characters.
CONTEXT_CHARS = 1 << 26


def _context(ir, chars: int):
    """This thread's MLIR context (making one registers every dialect: ~20 ms)."""
    read = getattr(_contexts, "chars", CONTEXT_CHARS)
    if read >= CONTEXT_CHARS:
        _contexts.context, read = ir.Context(), 0
    _contexts.chars = read + chars
    return _contexts.context


def _diagnosed(e) -> MLIRImportError:
    """MLIR's first error diagnostic, with its line and column."""
    for diagnostic in e.error_diagnostics:
        where = line_and_column(diagnostic.location)
        return MLIRImportError(f"MLIR rejects the text: {diagnostic.message}", *where)
    return MLIRImportError(f"MLIR rejects the text: {e}")


def _top_level(im: Importer, op) -> Function:
    """A module's op: only functions are read (no globals, no declarations)."""
    op = op.operation
    reader = TOP_LEVEL_RULES.get(op.name)
    if reader is None:
        raise im.unsupported(f"'{op.name}' at the top of a module (only func.func)", op)
    try:
        return reader(im, op)
    except MLIRImportError:
        raise
    except GraphjitError as e:  # (a signature's type with no graphjit dtype)
        raise im.error(e.raw_message, op) from None


def _function(im: Importer, op) -> Function:
    name = op.attributes["sym_name"].value
    if not op.regions[0].blocks:
        raise im.unsupported(f"func.func @{name}, a declaration without a body,", op)
    if len(op.regions[0].blocks) > 1:
        raise im.unsupported(f"func.func @{name}, with several blocks (cf branches),", op)
    entry = op.regions[0].blocks[0]
    im.op = op
    with im.into(Block([tensor_type(a.type) for a in entry.arguments])) as block:
        ret = im.read_block(entry, block.args)
        im.op = ret
        result_types = im.ir.FunctionType(op.attributes["function_type"].value).results
        returned = [
            im.conform(im.value(v), t) for v, t in zip(ret.operands, result_types, strict=True)
        ]
        im.create("return", returned)
    fn = Function(name, Region(block))
    DCE().run(fn)  # (constants only a fill's identity used, what a loop does not need)
    return fn


TOP_LEVEL_RULES = {"func.func": _function}


class Imported(NamedTuple):
    """What import_graph added to the graph: the placeholders (or given values) that
    stand for the function's arguments, and the values it returns."""

    inputs: list
    outputs: list


def import_graph(source, graph=None, inputs=None, function: str | None = None) -> Imported:
    """Put a function into `graph` (default: the default graph): `source` is MLIR text
    (upstream dialects or graphjit's own), a Module or a Function; `function` names it
    (default: the module's only function, or `main`). Its arguments become placeholders
    named `arg0`, `arg1`, ... unless `inputs` gives a value for each, and its returned
    values are `outputs`, to fetch in a Session:

        ins, outs = gj.mlir.import_graph(text, graph=g)
        gj.Session(g).run(outs, {ins[0]: x})"""
    graph = graph if graph is not None else _default_graph()
    fn = _pick(parse(source) if isinstance(source, (str, bytes)) else source, function)
    if inputs is None:
        inputs = [_placeholder(graph, f"arg{i}", a.type) for i, a in enumerate(fn.args)]
    if len(inputs) != len(fn.args):
        raise GraphjitError(f"function @{fn.name} takes {len(fn.args)} inputs, got {len(inputs)}")
    vmap = dict(zip(fn.args, inputs))
    for op in fn.block.ops:
        if op.opdef.is_terminator:
            continue
        if op.opdef.has(STATE):
            raise GraphjitError("variables do not import: make them arguments", op=op)
        if op.opdef.has(FEED):  # (graphjit text of a graph: its placeholders stay ones)
            vmap[op.result] = _placeholder(graph, op.attrs["name"], op.result.type)
        else:
            clone_op(op, vmap, graph.block)
    end = fn.block.terminator
    returns = end is not None and end.opdef.has(ENDS_FUNCTION)
    outputs = [vmap.get(v, v) for v in end.operands] if returns else []
    return Imported(list(inputs), outputs)


def _pick(source, name: str | None) -> Function:
    if isinstance(source, Function):
        return source
    if name is None and len(source.functions) == 1:
        return source.functions[0]
    try:
        return source.get(name or "main")
    except KeyError:
        names = ", ".join(f"@{f.name}" for f in source.functions)
        raise GraphjitError(f"no function @{name or 'main'} among {names or 'none'}") from None


def _placeholder(graph, base: str, t):
    name = _unique(graph, base)
    value = builder.create(
        "placeholder",
        (),
        {"name": name, "shape": t.shape, "dtype": t.dtype.name},
        block=graph.block,
    ).result
    value.name_hint = name
    graph.placeholders[name] = value
    return value


def _unique(graph, base: str) -> str:
    return graph.unique_name(base) if hasattr(graph, "unique_name") else base
