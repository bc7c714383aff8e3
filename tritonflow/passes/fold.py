"""Pass: constant folding — evaluate small nodes whose inputs are all constants, at compile time.

The value comes from `interpreter.run_numpy`, the step the graph evaluator runs for every node,
so a folded graph gives the same bits as the unfolded one. Not folded: random ops (their value depends on the seed inputs of each call),
collectives (their value comes from other processes), symbolic shapes, and anything larger than
FOLD_LIMIT elements (a big constant would be baked into every kernel instead of computed on the fly).
"""
from __future__ import annotations

from tritonflow.interpreter import run_numpy
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import is_static
from tritonflow.ops.registry import OPS
from tritonflow.passes.rewrite import rebuilt, remap_inputs

FOLD_LIMIT = 64
NEVER_FOLDED = frozenset({"philox_uniform"})


def _small(node: Node) -> bool:
    shape = node.type.shape
    if not is_static(shape):
        return False
    size = 1
    for d in shape:
        size *= d
    return size <= FOLD_LIMIT


def _foldable(node: Node) -> bool:
    if node.op == "constant" or node.op in NEVER_FOLDED or node.op not in OPS:
        return False
    if OPS[node.op].extra.get("random") or OPS[node.op].extra.get("collective"):
        return False  # a collective's value comes from the other processes, at each call
    return all(i.op == "constant" and _small(i) for i in node.inputs) and _small(node)


def fold_constants(graph: Graph) -> Graph:
    replace: dict[int, Node] = {}
    nodes: list[Node] = []
    for original in graph.nodes:
        node = remap_inputs(original, replace)
        if _foldable(node):
            value = run_numpy(OPS[node.op], [i.attrs["value"] for i in node.inputs], node.attrs, node.type)
            value.flags.writeable = False  # shared by every call of the compiled graph
            node = Node("constant", (), {"value": value}, node.type, node.loc, node.name)
        if node is not original:
            replace[id(original)] = node
        nodes.append(node)
    return rebuilt(graph, nodes, replace)
