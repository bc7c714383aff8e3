"""IR stage: verify(graph) — nodes in topological order, every type equal to its op's type rule."""
from __future__ import annotations

from tritonflow.errors import VerificationError
from tritonflow.ir.graph import Graph
from tritonflow.ops.registry import OPS


def verify_graph(graph: Graph) -> None:
    defined = {id(n) for n in graph.inputs}
    for n in graph.inputs:
        if n.op != "input":
            raise VerificationError(f"graph input {n.name} has op {n.op!r}")
    for index, node in enumerate(graph.nodes):
        for inp in node.inputs:
            if id(inp) not in defined:
                raise VerificationError(f"node %{index} ({node.op}) uses a value defined later or not at all")
        if node.op == "constant":
            value = node.attrs.get("value")
            if value is None or tuple(value.shape) != tuple(node.type.shape):
                raise VerificationError(f"node %{index}: constant value does not match its type {node.type}")
        elif node.op not in OPS:
            raise VerificationError(f"node %{index}: unknown op {node.op!r}")
        else:
            expected = OPS[node.op].infer([i.type for i in node.inputs], node.attrs)
            if expected != node.type:
                raise VerificationError(f"node %{index} ({node.op}): type {node.type} but its rule gives {expected}")
        if id(node) in defined:
            raise VerificationError(f"node %{index} ({node.op}) appears twice")
        defined.add(id(node))
    for out in graph.outputs:
        if id(out) not in defined:
            raise VerificationError("a graph output is not defined in the graph")


verify = verify_graph
