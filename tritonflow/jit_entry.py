"""Framework stage: one compiled specialization of a jitted function, and what a run hands back.

A CompiledEntry holds the traced graph, its final form after the passes, and the backend's
runner; jit_function.py makes them and compiled_autograd.py makes the differentiable ones.
`write_back` lands the in-place writes and gradients the function made on its arguments and on
the tensors it captured (found again for the call by the entry's binding, tracer/binding.py).
"""
from __future__ import annotations

from tritonflow import backends
from tritonflow.ir.graph import Graph
from tritonflow.passes.pipeline import run_passes
from tritonflow.tensor_class import Tensor
from tritonflow.tracer.binding import CapturedBinding


class CompiledEntry:
    """One specialization: the traced graph, its final form, and a runner for the backend."""

    def __init__(self, key, traced, graph, pass_record, runner, backend: str, device: str, guards) -> None:
        self.key = key
        self.traced = traced
        self.graph = graph
        self._pass_record = pass_record
        self.runner = runner
        self.backend = backend
        self.device = device
        self.guards = guards
        self.backward = None  # set by the autograd support for entries that need gradients
        self.free_guards: tuple = ()  # globals and closure variables the trace read (see _compile)
        self.binding = CapturedBinding(traced.state)
        self.unguarded = False   # set by jit: no captured state and no globals to check at a call
        self.arg_names = [n.name for n in traced.graph.inputs[:traced.n_args]]

    @property
    def pass_record(self) -> list:
        """(pass name, graph text) after the trace and after each pass, for explain().

        Printing a large graph after every pass costs more than tracing it, so a compile does not
        record; the passes are pure Graph -> Graph functions, so rerunning them on the traced graph
        reproduces the record exactly when someone asks for it.
        """
        if self._pass_record is None:
            record: list = []
            run_passes(self.traced.graph, record=record)
            self._pass_record = record
        return self._pass_record


def make_runner(graph: Graph, backend: str, device: str, mode: str = "default"):
    """The runner of `graph` on `backend` for tensors on `device` (the registry's backend object)."""
    engine = backends.get(backend, device)
    if not getattr(engine, "runs_collectives", False):
        from tritonflow.segmented_runner import SegmentedRunner, has_collectives
        if has_collectives(graph):  # kernels cannot talk to other processes: run those ops between kernels
            return SegmentedRunner(graph, backend, device, mode)
    return engine.compile(graph, mode=mode)


def write_back(traced, leaves: list, bound: list, outs: list, entry: CompiledEntry) -> None:
    """In-place writes to arguments and captured tensors (`bound`: the outside tensors of this
    call), and the gradients left on them, made inside the function, land now."""
    position = traced.n_outputs
    for index in traced.mutated:
        target = leaves[index]
        target._data = outs[position]
        target._version += 1
        position += 1
    state = traced.state
    device = entry.device
    for index in state.written:
        target = bound[index]
        data = outs[position]
        if target.device != device:
            data = Tensor._wrap(data, target.dtype, device).to(target.device)._data
        target._data = data
        target._version += 1
        position += 1
    outputs = entry.graph.outputs
    for (kind, index), has_output in state.grads:
        target = leaves[index] if kind == "arg" else bound[index]
        if has_output:
            target.grad = Tensor._wrap(outs[position], outputs[position].type.dtype, device)
            position += 1
        else:
            target.grad = None
