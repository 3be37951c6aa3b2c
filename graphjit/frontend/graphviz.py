"""Graphviz source for a graph: one node per op, edges along data flow, clusters for regions."""

from __future__ import annotations

from graphjit.ir.core import Block


def graph_to_dot(function) -> str:
    lines = ["digraph graphjit {", "  node [shape=box, fontname=monospace];"]
    ids: dict = {}
    _emit_block(function.block, lines, ids, indent="  ")
    lines.append("}")
    return "\n".join(lines)


def _node_id(ids: dict, key) -> str:
    return ids.setdefault(key, f"n{len(ids)}")


def _emit_block(block: Block, lines: list, ids: dict, indent: str) -> None:
    for arg in block.args:
        lines.append(f'{indent}{_node_id(ids, arg)} [label="arg {arg.type}", shape=ellipse];')
    for op in block.ops:
        node = _node_id(ids, op)
        label = str(op.attrs.get("name") or op.attrs.get("var") or "")
        label = label.replace("\\", "\\\\").replace('"', '\\"')  # user names are free text
        types = ", ".join(str(r.type) for r in op.results)
        lines.append(f'{indent}{node} [label="{op.name} {label}\\n{types}"];')
        for r in op.results:
            ids[r] = node
        for v in op.operands:
            lines.append(f"{indent}{_node_id(ids, v)} -> {node};")
        for i, region in enumerate(op.regions):
            lines.append(f'{indent}subgraph cluster_{node}_{i} {{ label="{op.name} region {i}";')
            _emit_block(region.block, lines, ids, indent + "  ")
            lines.append(f"{indent}}}")
