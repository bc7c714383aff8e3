"""Framework stage (backends): run a graph holding collectives as kernel segments and host steps.

A collective (tritonflow/ops/collective.py) exchanges data with other processes through
torch.distributed, which no generated kernel can do. The triton backend therefore cuts such a
graph at each collective (tritonflow/ir/split.py): the pieces in between are lowered to kernels
as usual, and each collective runs on the host, on the arrays of the device (NumPy on CPU, torch
tensors on CUDA), between them. The numpy backend needs none of this: its interpreter calls the
collective's implementation like any other op.
"""
from __future__ import annotations

from tritonflow import backends
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.split import StagedRun, split_graph
from tritonflow.ops.registry import OPS


def is_collective(node: Node) -> bool:
    op = OPS.get(node.op)
    return op is not None and bool(op.extra.get("collective"))


def has_collectives(graph: Graph) -> bool:
    return any(is_collective(n) for n in graph.nodes)


def _segments(graph: Graph):
    """stage_of: the nodes between two collectives share a stage; each collective has its own."""
    stage: dict[int, int] = {}
    counter = 0
    for node in graph.nodes:
        if is_collective(node):
            stage[id(node)] = counter + 1
            counter += 2
        else:
            stage[id(node)] = counter
    return lambda node: stage[id(node)]


class HostStep:
    """One collective (and the constants it reads) run on the host."""

    kernels: list = []

    def __init__(self, graph: Graph) -> None:
        (self.node,) = [n for n in graph.nodes if n.op != "constant"]
        self.graph = graph
        self.op = OPS[self.node.op]

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        values = {id(n): a for n, a in zip(self.graph.inputs, arrays)}
        for node in self.graph.nodes:
            if node.op == "constant":
                value = node.attrs["value"]
                if device != "cpu":
                    from tritonflow.storage import numpy_to_torch
                    value = numpy_to_torch(value, device)
                values[id(node)] = value
        result = self.op.numpy(*[values[id(i)] for i in self.node.inputs], **self.node.attrs)
        return [result]


class SegmentedRunner:
    """A runner (same call as the backends' runners) over kernel segments and host collectives."""

    def __init__(self, graph: Graph, backend: str, device: str, mode: str = "default") -> None:
        engine = backends.get(backend, device)
        self.graph = graph
        self.stages = split_graph(graph, _segments(graph))
        self.runners = [HostStep(s.graph) if has_collectives(s.graph) else engine.compile(s.graph, mode=mode)
                        for s in self.stages]
        self.kernels = [k for r in self.runners for k in getattr(r, "kernels", [])]

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        run = StagedRun(self.graph, self.stages, arrays)
        for number, runner in enumerate(self.runners):
            run.run_stage(number, lambda inputs, runner=runner: runner(inputs, device))
        return [run.output(p) for p in range(len(self.graph.outputs))]
