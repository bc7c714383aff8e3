"""IR stage: the graph — a flat SSA list of nodes in topological order, and its text form.

A node has an op name, input nodes, attributes, one output type and the user's source location.
Graph inputs are nodes with op "input"; constants are nodes with op "constant" and a NumPy value.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from tritonflow.errors import SourceLoc
from tritonflow.ir.types import TensorType


class Node:
    """One SSA value: `op(inputs; attrs) -> type`, recorded at `loc`."""

    __slots__ = ("op", "inputs", "attrs", "type", "loc", "name", "__weakref__")

    def __init__(self, op: str, inputs: tuple, attrs: dict, type: TensorType,
                 loc: SourceLoc | None = None, name: str | None = None) -> None:
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = attrs
        self.type = type
        self.loc = loc
        self.name = name

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    def __repr__(self) -> str:
        return f"<Node {self.op} {self.type}>"


class Graph:
    """A function in the IR: inputs, body nodes in topological order, outputs."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.inputs: list[Node] = []
        self.nodes: list[Node] = []
        self.outputs: list[Node] = []

    def add_input(self, name: str, type: TensorType, loc: SourceLoc | None = None) -> Node:
        node = Node("input", (), {}, type, loc, name)
        self.inputs.append(node)
        return node

    def add(self, op: str, inputs: Iterable[Node], attrs: dict, type: TensorType,
            loc: SourceLoc | None = None) -> Node:
        node = Node(op, tuple(inputs), attrs, type, loc)
        self.nodes.append(node)
        return node

    def add_constant(self, value: np.ndarray, type: TensorType, loc: SourceLoc | None = None) -> Node:
        return self.add("constant", (), {"value": value}, type, loc)

    def users(self) -> dict[int, list[Node]]:
        """id(node) -> the body nodes that read it."""
        result: dict[int, list[Node]] = {}
        for node in self.nodes:
            for inp in node.inputs:
                result.setdefault(id(inp), []).append(node)
        return result

    def copy(self) -> "Graph":
        """A shallow structural copy: same Node objects, fresh lists."""
        g = Graph(self.name)
        g.inputs = list(self.inputs)
        g.nodes = list(self.nodes)
        g.outputs = list(self.outputs)
        return g

    def __len__(self) -> int:
        return len(self.nodes)

    def __str__(self) -> str:
        return format_graph(self)


def format_attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return format_constant(value)
    if hasattr(value, "name") and hasattr(value, "short"):
        return value.name  # a DType
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return str(value)


def format_constant(value: np.ndarray) -> str:
    if value.ndim == 0:
        if value.dtype.kind in "fV":
            # The shortest text that reads back to the same value in the constant's own dtype:
            # a float32 0.044715 prints as 0.044715, not as its float64 expansion.
            return str(value[()])
        return repr(value.item())
    if value.size <= 8:
        return np.array2string(np.asarray(value, dtype=np.float64 if value.dtype.kind == "V" else None),
                               separator=",").replace("\n", "")
    return f"<array {value.shape}>"


def format_graph(graph: Graph) -> str:
    names: dict[int, str] = {}
    for node in graph.inputs:
        names[id(node)] = f"%{node.name}"
    params = ", ".join(f"%{n.name}: {n.type}" for n in graph.inputs)
    lines = [f"graph {graph.name}({params}) {{"]
    for index, node in enumerate(graph.nodes):
        names[id(node)] = f"%{index}"
    for node in graph.nodes:
        if node.op == "constant":
            rhs = f"constant {format_constant(node.attrs['value'])}"
        else:
            attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
            args = ", ".join(names.get(id(i), "%?") for i in node.inputs)
            rhs = node.op + (f"[{attrs}]" if attrs else "") + (f" {args}" if args else "")
        line = f"  {names[id(node)]}: {node.type} = {rhs}"
        if node.loc is not None:
            line = f"{line:<48}  # {node.loc.short()}"
        lines.append(line)
    outs = ", ".join(names.get(id(n), "%?") for n in graph.outputs)
    lines.append(f"  return {outs}")
    lines.append("}")
    return "\n".join(lines)
