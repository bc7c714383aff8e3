"""Compiled backward in stages: gradients handed to autograd group by group as the backward runs.

Framework stage (the autodiff pass's runtime). While a function is traced for the compiled
backward, code inside it may mark groups of tensors with `mark_backward_stages` (DDP marks its
gradient buckets, in the order it reduces them). The backward graph is then cut so that stage k
computes the gradients of group k and what they need that no earlier stage made
(tritonflow/ir/split.py); the FunctionNode hands each stage's gradients to the engine before the
next stage runs (autograd_hooks.StagedGradients), so the hooks of those tensors — DDP starting an
asynchronous all-reduce — overlap the rest of the backward. Tensors in no group come last.
"""
from __future__ import annotations

from typing import Iterator

from tritonflow.tracer import state as trace_state
from tritonflow.ir.graph import Graph
from tritonflow.ir.split import StagedRun, split_graph, stages_by_output_groups
from tritonflow.ir.types import is_static


def mark_backward_stages(groups: list) -> bool:
    """Ask the compiled backward of the function being traced to deliver the gradients of
    `groups[0]` first, then `groups[1]`, ... (each a list of the traced tensors). Returns whether
    a trace was there to mark (outside jit the eager engine already delivers leaf by leaf)."""
    ctx = trace_state.current()
    if ctx is None:
        return False
    ctx.backward_stages = [list(group) for group in groups]
    return True


def target_stages(ctx, target_tensors: list) -> list | None:
    """The stage of each gradient target of a joint trace, or None when nothing was marked."""
    groups = getattr(ctx, "backward_stages", None)
    if not groups:
        return None
    stage_of = {id(t): k for k, group in enumerate(groups) for t in group}
    return [stage_of.get(id(t), len(groups)) for t in target_tensors]


def output_groups(stages: list | None, graph: Graph) -> list | None:
    """Positions of the backward graph's outputs, grouped by stage, or None when one stage will do."""
    if stages is None or len(set(stages)) < 2 or not all(is_static(n.type.shape) for n in graph.inputs):
        return None
    return [[p for p, s in enumerate(stages) if s == number] for number in sorted(set(stages))]


class StagedBackwardRunner:
    """The backward graph as a sequence of stage runners; also callable as one runner."""

    def __init__(self, graph: Graph, groups: list, backend: str, device: str, mode: str) -> None:
        from tritonflow.jit_entry import make_runner
        self.graph = graph
        self.groups = groups
        self.stages = split_graph(graph, stages_by_output_groups(graph, groups))
        self.runners = [make_runner(stage.graph, backend, device, mode) for stage in self.stages]
        self.kernels = [k for r in self.runners for k in getattr(r, "kernels", [])]

    def run_in_stages(self, arrays: list, device: str) -> Iterator[list]:
        """Yield, after each stage, [(output position, array)] for the outputs it made available."""
        run = StagedRun(self.graph, self.stages, arrays)
        for number, runner in enumerate(self.runners):
            ready = run.run_stage(number, lambda inputs, runner=runner: runner(inputs, device))
            yield [(p, run.output(p)) for p in ready]

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        outs = [None] * len(self.graph.outputs)
        for stage in self.run_in_stages(arrays, device):
            for position, array in stage:
                outs[position] = array
        return outs
