"""Pass: common-subexpression elimination — one node per (op, inputs, attributes)."""
from __future__ import annotations

from tritonflow.ir.graph import Graph, Node
from tritonflow.ops.registry import attrs_key
from tritonflow.passes.rewrite import rebuilt, remap_inputs


def cse(graph: Graph) -> Graph:
    seen: dict = {}
    replace: dict[int, Node] = {}
    nodes = []
    for node in graph.nodes:
        new = remap_inputs(node, replace)
        if new.op == "constant":
            value = new.attrs["value"]
            key = ("constant", str(value.dtype), value.shape, value.tobytes(), new.type.dtype.name)
        else:
            key = (new.op, tuple(id(i) for i in new.inputs), attrs_key(new.attrs))
        existing = seen.get(key)
        if existing is not None and existing.type == new.type:
            replace[id(node)] = existing
            continue
        seen[key] = new
        if new is not node:
            replace[id(node)] = new
        nodes.append(new)
    return rebuilt(graph, nodes, replace)
