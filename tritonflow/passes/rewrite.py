"""Passes stage: the two steps every rewriting pass shares.

A pass walks the nodes in order, keeping `replace` (id of an original node -> the node that now
stands for it). Each node first has its inputs redirected to their replacements; at the end the
new node list and the redirected outputs make the rewritten graph.
"""
from __future__ import annotations

from tritonflow.ir.graph import Graph, Node


def remap_inputs(node: Node, replace: dict) -> Node:
    """`node` itself when none of its inputs was replaced, else a copy reading the replacements."""
    if any(id(i) in replace for i in node.inputs):
        node = Node(node.op, tuple(replace.get(id(i), i) for i in node.inputs), node.attrs, node.type,
                    node.loc, node.name)
    return node


def rebuilt(graph: Graph, nodes: list, replace: dict) -> Graph:
    """A copy of `graph` with `nodes` as its body and its outputs redirected through `replace`."""
    out = graph.copy()
    out.nodes = nodes
    out.outputs = [replace.get(id(n), n) for n in graph.outputs]
    return out
