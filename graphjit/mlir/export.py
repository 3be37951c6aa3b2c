"""Graph -> a module in upstream MLIR dialects (func, arith, math, tensor, linalg, scf).

Export works on the unoptimised program (pruned to the fetches, placeholders and variables
as arguments, types specialised from `feed_dict` when one is given): graphjit's pipeline
ends in fused kernels and a memory plan made for its own code generators, while an MLIR
compiler such as IREE fuses, tiles and vectorises the plain ops itself. (A fused op met
anyway, from an optimised program, exports as the ops it holds.)"""

from __future__ import annotations

from graphjit.mlir.emit_checks import flush
from graphjit.mlir.emitters import emit_op
from graphjit.mlir.writer import Writer, tensor_type
from graphjit.nest import flatten
from graphjit.runtime.program import Program, build_program
from graphjit.runtime.session import _default_graph, _unwrap


def export(fetches, feed_dict=None, graph=None) -> str:
    """The module computing `fetches` as `func.func @main`: arguments are the placeholders
    the fetches need, then the variables they read; results are the fetched values, then
    the new value of each variable they assign. Dimensions not fixed by `feed_dict`
    (placeholder -> array) are `?`. Raises ExportError naming the first op that has no
    upstream form."""
    graph = graph if graph is not None else _default_graph()
    values, ops = [], []
    for leaf in flatten(fetches)[0]:
        leaf = _unwrap(leaf)
        (ops if leaf.__class__.__name__ == "Operation" else values).append(leaf)
    feed_types = {
        _unwrap(p): _unwrap(p).type.with_shape(getattr(a, "shape", ()))
        for p, a in (feed_dict or {}).items()
    }
    return export_program(build_program(graph, values, ops, feed_types))


def export_program(program: Program) -> str:
    """The MLIR text of a built (pruned, specialised) program's function."""
    return export_with_checks(program)[0]


def export_with_checks(
    program: Program,
    check_numerics: bool = False,
    own_math: frozenset = frozenset(),
    linalg_ext: bool = False,
) -> tuple[str, list]:
    """The MLIR text of a program's function, and the (message, op, error class) of each
    run-time check in it: `cf.assert` number k fails with "graphjit check k"
    (writer.CHECK_PREFIX). `check_numerics`: every op's float results are checked too.
    `own_math`: the (function, dtype name) pairs written by graphjit in `arith`
    (own_math.OWN_MATH) rather than as `math` ops; `linalg_ext`: IREE's `iree_linalg_ext`
    ops where upstream has none (the IREE backend: not upstream MLIR)."""
    fn = program.function
    w = Writer(check_numerics, own_math, linalg_ext)
    args = [f"%arg{i}" for i in range(len(fn.args))]
    w.names.update(zip(fn.args, args))
    for op in fn.block.ops:
        if not op.opdef.is_terminator:
            emit_op(w, op)
    flush(w)
    results = fn.block.terminator.operands
    result_types = ", ".join(tensor_type(v.type) for v in results)
    w.emit(
        f"return {', '.join(w.name(v) for v in results)} : {result_types}" if results else "return"
    )
    params = ", ".join(f"{a}: {tensor_type(v.type)}" for a, v in zip(args, fn.args, strict=True))
    head = f"  func.func @main({params}) -> ({result_types}) {{"
    return "\n".join(["module {", head, *w.lines, "  }", "}", ""]), w.checks


def verify(text: str) -> None:
    """Parse `text` with MLIR's own parser and run its verifier (the mlir extra); raises
    ExportError with MLIR's diagnostics when either fails."""
    from graphjit.mlir.iree import require_iree
    from graphjit.mlir.writer import ExportError

    ir = require_iree().compiler_ir
    with ir.Context():
        try:
            module = ir.Module.parse(text)
            if not module.operation.verify():
                raise ExportError("the exported module does not verify")
        except ir.MLIRError as e:
            raise ExportError(f"MLIR rejects the exported module: {e}") from None
