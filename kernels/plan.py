"""Lowering stage: what the scheduler decides — the kernels of a graph and the buffers between them.

Data only (kernels/fusion.py fills these in; codegen/ and templates/ read them): a `KernelPlan` per
kernel, in launch order, and the `Schedule` holding them with buffer ownership and names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import sympy

from tritonflow.ir.graph import Graph, Node, format_attr, format_constant
from tritonflow.target import Target


def safe_name(name: str) -> str:
    """`name` as a Python identifier (buffer, argument and helper names in generated source)."""
    name = re.sub(r"\W", "_", str(name))
    return name if name and not name[0].isdigit() else f"v_{name}"


@dataclass
class TemplateInfo:
    """What a template plan needs beyond KernelPlan: its template and materialized operands."""

    template: str
    sources: dict = field(default_factory=dict)   # id(producer) -> synthetic node holding its value


@dataclass
class SortPass:
    """A sort whose rows do not fit one block (kernels/codegen/sort.py). The chunk kernel (kind
    "sort") sorts blocks of `run` elements of each row into the `*_out` scratch buffers; each merge
    kernel (kind "sort_merge") merges runs of `run` from the `*_in` buffers into runs twice as long,
    in the `*_out` buffers, or, the last one (`*_out` None), into the sort's own output."""

    run: int
    keys_in: Optional[Node] = None
    positions_in: Optional[Node] = None
    keys_out: Optional[Node] = None
    positions_out: Optional[Node] = None


@dataclass
class KernelPlan:
    """One kernel: what it computes, over which space, and what it stores."""

    index: int
    kind: str                      # pointwise | reduction | scan | sort | sort_merge | matmul | scatter
    shape: tuple                   # iteration shape (reduction/scan: the input's shape)
    rdims: tuple = ()              # reduced (or scanned) dims
    members: list = field(default_factory=list)      # reductions / the anchor node
    stages: dict = field(default_factory=dict)       # id(reduction) -> stage number
    outputs: list = field(default_factory=list)      # (buffer node, value node), full space
    row_outputs: list = field(default_factory=list)  # (buffer node, value node), one per row
    template: Optional[TemplateInfo] = None          # template kernels: which template, its operands
    sort_pass: Optional[SortPass] = None              # long sorts: this kernel's part (SortPass)

    def stored_members(self, schedule: "Schedule") -> list:
        return [m for m in self.members if id(m) in schedule.stored]


class Schedule:
    """The kernels of a graph, in launch order, and the buffers between them."""

    def __init__(self, graph: Graph, target: Target) -> None:
        self.graph = graph
        self.target = target            # what the kernels are generated for (tritonflow/target.py)
        self.kernels: list[KernelPlan] = []
        self.owner: dict = {}           # id(node) -> kernel index that writes its buffer
        self.stored: dict = {}          # id(node) -> node that needs a global buffer
        self.forced_anchors: set = set()
        self.aliases: dict = {}         # id(node) -> node whose buffer it shares
        self.synthetic_names: dict = {}
        self.output_buffers: dict = {}  # id(graph output) -> node whose buffer holds it
        self.template_materialized: dict = {}  # id(template operand producer) -> its stored copy
        self._numbers = {id(n): i for i, n in enumerate(graph.nodes)}
        self._lines = self._ir_lines(graph)
        self.size_symbols = self._collect_symbols(graph)
        self._output_names = {}
        for k, out in enumerate(graph.outputs):
            self._output_names.setdefault(id(out), f"out{k}")
        # Inputs are `in_<name>`: a parameter named like an internal buffer (out0, buf3, const1)
        # cannot collide with it, and names that sanitize alike (`a.b`, `a_b`) get a suffix.
        self._input_names: dict = {}
        for node in graph.inputs:
            base = name = "in_" + safe_name(node.name)
            suffix = 0
            while name in self._input_names.values():
                suffix += 1
                name = f"{base}_{suffix}"
            self._input_names[id(node)] = name

    # ------------------------------------------------------------ naming

    def number(self, node: Node):
        return self._numbers.get(id(node), self.synthetic_names.get(id(node), "x"))

    def ref(self, node: Node) -> str:
        """How the IR text names `node`: `%x` for input x, `%4` for node 4."""
        return f"%{node.name}" if node.op == "input" else f"%{self.number(node)}"

    def node_line(self, node: Node) -> str:
        """The node's line of the IR text, with its type (the kernel docstring lists these)."""
        if node.op == "input":
            return f"%{node.name}: {node.type} (input)"
        return self._lines.get(id(node), f"%{self.number(node)}: {node.type} = {node.op}")

    def short_line(self, node: Node) -> str:
        """The node as a kernel line's comment: `%4 = mul %3, %3   model.py:12`."""
        if node.op == "input":
            return f"%{node.name} (input)"
        if node.op == "constant":
            rhs = f"constant {format_constant(node.attrs['value'])}"
        else:
            attrs = ", ".join(f"{k}={format_attr(v)}" for k, v in node.attrs.items())
            args = ", ".join(self.ref(i) for i in node.inputs)
            rhs = node.op + (f"[{attrs}]" if attrs else "") + (f" {args}" if args else "")
        line = f"{self.ref(node)} = {rhs}"
        return f"{line}   {node.loc.short()}" if node.loc is not None else line

    def value_name(self, node: Node) -> str:
        """The kernel variable holding `node`'s value: `t4` holds %4, `t_x` holds input %x."""
        if node.op == "input":
            return f"t_{safe_name(node.name)}"
        number = str(self.number(node))
        return f"t{number}" if number[0].isdigit() else f"t_{safe_name(number)}"

    def buffer_name(self, node: Node) -> str:
        node = self.aliases.get(id(node), node)
        # Inputs and constants keep their own names even when they are graph outputs too:
        # the output is then a copy (see schedule_graph) that carries the output's name.
        if node.op == "input":
                return self._input_names.get(id(node)) or "in_" + safe_name(node.name)
        if node.op == "constant":
            return f"const{self.number(node)}"
        if id(node) in self._output_names:
            return self._output_names[id(node)]
        return f"buf{self.number(node)}"

    def is_forced_anchor(self, node: Node) -> bool:
        return id(node) in self.forced_anchors

    @staticmethod
    def _ir_lines(graph: Graph) -> dict:
        text = str(graph).splitlines()[1:-2]
        # Without the printer's column padding before the source location.
        return {id(n): re.sub(r"\s+# ", "  # ", line.strip()) for n, line in zip(graph.nodes, text)}

    @staticmethod
    def _collect_symbols(graph: Graph) -> set:
        names = set()
        for node in list(graph.inputs) + list(graph.nodes):
            for d in node.shape:
                if isinstance(d, sympy.Expr):
                    names |= {s.name for s in d.free_symbols}
        return names

    # ------------------------------------------------------------ bookkeeping

    def store(self, node: Node) -> None:
        self.stored[id(node)] = node

    def new_kernel(self, kind: str, shape: tuple, rdims: tuple = ()) -> KernelPlan:
        plan = KernelPlan(len(self.kernels), kind, tuple(shape), tuple(rdims))
        self.kernels.append(plan)
        return plan

    def deps_ok(self, deps: dict, plan: KernelPlan) -> bool:
        for node in deps.values():
            owner = self.owner.get(id(node))
            if owner is None or owner >= plan.index:
                return False
        return True

    def accept_deps(self, deps: dict) -> None:
        for node in deps.values():
            self.store(node)
