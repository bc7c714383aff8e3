"""IR stage: cut one graph into a sequence of smaller graphs that run one after another.

Used where something has to happen between parts of a graph: a compiled backward hands its
gradients over stage by stage (data-parallel training starts each bucket's all-reduce while the
rest of the backward runs), and a graph holding a collective runs it on the host between kernel
segments. Every body node is assigned a stage; stages must respect the graph's order (a node's
inputs are in its own or an earlier stage). Values cross stages as extra outputs and inputs, keyed
by the original node; constants are copied into each stage that reads them instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import is_static


@dataclass
class Stage:
    """One piece: its graph, the values it reads and writes (keys: id of the original node)."""

    graph: Graph
    reads: list
    writes: list


def split_graph(graph: Graph, stage_of: Callable[[Node], int]) -> list[Stage]:
    """The stages of `graph`, in order; `stage_of(node)` numbers each non-constant body node."""
    index_of = {}
    for node in graph.nodes:
        if node.op != "constant":
            index_of[id(node)] = stage_of(node)
    for node in graph.nodes:
        for inp in node.inputs:
            if id(inp) in index_of and id(node) in index_of and index_of[id(inp)] > index_of[id(node)]:
                raise ValueError(f"split_graph: {node!r} is in stage {index_of[id(node)]} but reads a value "
                                 f"from the later stage {index_of[id(inp)]}")
    read_later: dict[int, int] = {}  # id(value) -> the last stage reading it (graph outputs: beyond all)
    for node in graph.nodes:
        if id(node) in index_of:
            for inp in node.inputs:
                read_later[id(inp)] = max(read_later.get(id(inp), -1), index_of[id(node)])
    beyond = max(index_of.values(), default=0) + 1
    for out in graph.outputs:
        read_later[id(out)] = beyond
    # Symbols of dynamic shapes are bound from input shapes: every stage sees the inputs carrying them.
    symbolic_inputs = [n for n in graph.inputs if not is_static(n.type.shape)]
    stages = []
    for number in sorted(set(index_of.values())):
        members = [n for n in graph.nodes if index_of.get(id(n)) == number]
        stages.append(_build_stage(graph, number, members, read_later, symbolic_inputs))
    return stages


def _build_stage(graph: Graph, number: int, members: list, read_later: dict, symbolic_inputs: list) -> Stage:
    stage = Graph(f"{graph.name}_stage{number}")
    remap: dict[int, Node] = {}
    reads: list = []

    def value(node: Node) -> Node:
        if id(node) in remap:
            return remap[id(node)]
        if node.op == "constant":
            remap[id(node)] = stage.add_constant(node.attrs["value"], node.type, node.loc)
        else:
            remap[id(node)] = stage.add_input(node.name if node.op == "input" else f"v{len(reads)}", node.type)
            reads.append(id(node))
        return remap[id(node)]

    for node in symbolic_inputs:
        value(node)
    for node in members:
        inputs = tuple(value(i) for i in node.inputs)
        remap[id(node)] = stage.add(node.op, inputs, node.attrs, node.type, node.loc)
    writes = [id(n) for n in members if read_later.get(id(n), -1) > number]
    stage.outputs = [remap[key] for key in writes]
    return Stage(stage, reads, writes)


def stages_by_output_groups(graph: Graph, groups: list[list[int]]) -> Callable[[Node], int]:
    """A `stage_of` putting each node in the first stage whose outputs need it: stage k computes
    outputs `groups[k]` (positions in graph.outputs) and whatever they need that no earlier stage made."""
    stage: dict[int, int] = {}
    for number, positions in enumerate(groups):
        stack = [graph.outputs[p] for p in positions]
        while stack:
            node = stack.pop()
            if id(node) in stage or node.op == "input":
                continue
            stage[id(node)] = number
            stack.extend(node.inputs)
    last = len(groups)
    return lambda node: stage.get(id(node), last)


class StagedRun:
    """Runs stages one after another over a table of values; `run_stage(i, runner)` returns the
    original graph's output positions that became available."""

    def __init__(self, graph: Graph, stages: list[Stage], arrays: list) -> None:
        self.stages = stages
        self.env = {id(n): a for n, a in zip(graph.inputs, arrays)}
        self.outputs = [id(n) for n in graph.outputs]
        constants = {id(n): n.attrs["value"] for n in graph.nodes if n.op == "constant"}
        self.env.update((k, v) for k, v in constants.items() if k in self.outputs)
        last_read: dict[int, int] = {}
        for number, stage in enumerate(stages):
            for key in stage.reads:
                last_read[key] = number
        self.drop_after: list[list] = [[] for _ in stages]
        kept = set(self.outputs)
        for key, number in last_read.items():
            if key not in kept:
                self.drop_after[number].append(key)
        self.delivered: set[int] = set()

    def run_stage(self, number: int, runner) -> list[int]:
        stage = self.stages[number]
        outs = runner([self.env[k] for k in stage.reads])
        self.env.update(zip(stage.writes, outs))
        for key in self.drop_after[number]:
            self.env.pop(key, None)
        return self.ready_outputs()

    def ready_outputs(self) -> list[int]:
        ready = [p for p, key in enumerate(self.outputs) if p not in self.delivered and key in self.env]
        self.delivered.update(ready)
        return ready

    def output(self, position: int):
        return self.env[self.outputs[position]]
