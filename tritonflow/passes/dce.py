"""Pass: dead-code elimination — drop nodes no output depends on."""
from __future__ import annotations

from tritonflow.ir.graph import Graph


def dce(graph: Graph) -> Graph:
    live = {id(n) for n in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if id(node) in live:
            kept.append(node)
            for inp in node.inputs:
                live.add(id(inp))
    out = graph.copy()
    out.nodes = kept[::-1]
    return out
