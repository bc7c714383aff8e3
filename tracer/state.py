"""Tracer stage: the tracing state — is a trace recording on this thread, and into which graph.

The front end asks `current()` before every op: dispatch records into the TraceContext instead of
computing, the API makes proxies and constants through it, optimizers and jit see they are inlined.
"""
from __future__ import annotations

import threading

import numpy as np

from tritonflow.errors import TraceError, user_location
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType

_local = threading.local()


class TraceContext:
    """One function being traced: its graph, captured outside tensors and in-place writes."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.captured: list = []           # concrete Tensors read by the trace, in input order
        self._captured_nodes: dict[int, Node] = {}
        self.input_tensors: dict[int, object] = {}  # id(proxy Tensor object passed as argument) -> itself
        self.mutated_inputs: dict[int, object] = {}  # argument tensors written in place
        self.rng_draws: list = []           # (offset_delta node users) count of random numbers drawn
        self.rng_count = 0
        self.rng_nodes: tuple | None = None
        self.backward_stages: list | None = None  # groups of tensors (staged_backward.mark_backward_stages)

    def node_of(self, tensor) -> Node:
        node = tensor._node
        if node is not None:
            if tensor._trace is not self:
                raise TraceError("a traced tensor escaped its jitted function and was used outside it "
                                 "(or in another trace); return it from the function instead")
            return node
        return self.capture(tensor)

    def capture(self, tensor) -> Node:
        """A concrete tensor from outside the function: a graph input, read at every call."""
        key = id(tensor)
        node = self._captured_nodes.get(key)
        if node is None:
            node = self.graph.add_input(f"c{len(self.captured)}", TensorType(tensor.shape, tensor.dtype),
                                        user_location())
            node.attrs["captured"] = True
            self.captured.append(tensor)
            self._captured_nodes[key] = node
        return node

    def constant(self, value: np.ndarray, type: TensorType) -> Node:
        return self.graph.add_constant(value, type, user_location())

    def rng_inputs(self) -> tuple:
        """The graph's (seed, base offset) inputs, created on first use."""
        if self.rng_nodes is None:
            from tritonflow import dtypes as D
            seed = self.graph.add_input("rng_seed", TensorType((), D.int64))
            offset = self.graph.add_input("rng_offset", TensorType((), D.int64))
            seed.attrs["rng"] = "seed"
            offset.attrs["rng"] = "offset"
            self.rng_nodes = (seed, offset)
        return self.rng_nodes


def current() -> TraceContext | None:
    return getattr(_local, "trace", None)


class tracing:
    """Context manager: record ops into `ctx` on this thread."""

    def __init__(self, ctx: TraceContext) -> None:
        self.ctx = ctx
        self.previous = None

    def __enter__(self) -> TraceContext:
        self.previous = current()
        _local.trace = self.ctx
        return self.ctx

    def __exit__(self, *exc) -> None:
        _local.trace = self.previous
