"""The NumPy interpreter: runs any verified graph — the spec of every op, and the CPU backend.

Symbolic dims in attributes (a reshape to (s0, 128)) are resolved from the bound input shapes.
"""
from __future__ import annotations

import numpy as np
import sympy

from tritonflow.dispatch import run_numpy
from tritonflow.ir.graph import Graph
from tritonflow.ops.registry import OPS


def bind_symbols(graph: Graph, arrays: list) -> dict:
    """Symbol -> int, read off the inputs whose declared dims are symbols."""
    bindings = {}
    for node, array in zip(graph.inputs, arrays):
        for declared, actual in zip(node.type.shape, array.shape):
            if isinstance(declared, sympy.Symbol):
                bindings[declared] = int(actual)
    return bindings


def _resolve(value, bindings):
    if isinstance(value, sympy.Expr):
        return int(value.xreplace(bindings))
    if isinstance(value, tuple):
        return tuple(_resolve(v, bindings) for v in value)
    return value


def _symbolic_attrs(attrs: dict) -> bool:
    for v in attrs.values():
        if isinstance(v, sympy.Expr):
            return True
        if isinstance(v, tuple) and any(isinstance(e, sympy.Expr) or isinstance(e, tuple) for e in v):
            return True
    return False


class _Resolved:
    """An out_type stand-in with concrete shape (only dtype is read by run_numpy)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype) -> None:
        self.dtype = dtype


def run_graph(graph: Graph, arrays: list, bindings: dict | None = None) -> list:
    """Evaluate `graph` on NumPy arrays (one per graph input); returns one array per output."""
    env: dict[int, np.ndarray] = {}
    for node, array in zip(graph.inputs, arrays):
        env[id(node)] = array
    if bindings is None:
        bindings = bind_symbols(graph, arrays) if any(
            not isinstance(d, int) for n in graph.inputs for d in n.type.shape) else {}
    for node in graph.nodes:
        if node.op == "constant":
            env[id(node)] = node.attrs["value"]
            continue
        op = OPS[node.op]
        attrs = node.attrs
        if bindings and _symbolic_attrs(attrs):
            attrs = {k: _resolve(v, bindings) for k, v in attrs.items()}
        env[id(node)] = run_numpy(op, [env[id(i)] for i in node.inputs], attrs, node.type)
    # A constant is shared by every run of the graph: hand out copies, never the graph's own array.
    return [np.array(env[id(n)]) if n.op == "constant" else env[id(n)] for n in graph.outputs]
