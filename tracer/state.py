"""Tracer stage: the tracing state — is a trace recording on this thread, and into which graph.

The front end asks `current()` before every op: dispatch records into the TraceContext instead of
computing, the API makes proxies and constants through it, optimizers and jit see they are inlined.
Tensors from outside the function are kept by the context's CaptureBook (tracer/captured.py).
"""
from __future__ import annotations

import threading

import numpy as np

from tritonflow.errors import TraceError, user_location
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType
from tritonflow.tracer.captured import CaptureBook

_local = threading.local()


class TraceContext:
    """One function being traced: its graph, the tensors from outside it, in-place writes."""

    def __init__(self, graph: Graph, sources: dict | None = None) -> None:
        self.graph = graph
        self.input_tensors: dict[int, object] = {}  # id(proxy Tensor object passed as argument) -> itself
        self.mutated_inputs: dict[int, object] = {}  # argument tensors written in place
        self.leaves: list = []                      # the concrete argument tensors, in leaf order
        self.book = CaptureBook(self, sources or {})
        self.rng_draws: list = []           # (offset_delta node users) count of random numbers drawn
        self.rng_count = 0
        self.rng_nodes: tuple | None = None
        self.backward_stages: list | None = None  # groups of tensors (staged_backward.mark_backward_stages)

    @property
    def captured(self) -> list:
        """The concrete outside tensors whose values are graph inputs, in input order."""
        return [self.book.outside[i].tensor for i in self.book.captured]

    def node_of(self, tensor) -> Node:
        node = tensor._node
        if node is not None:
            if tensor._trace is not self:
                raise TraceError("a traced tensor escaped its jitted function and was used outside it "
                                 "(or in another trace); return it from the function instead")
            return node
        return self.book.shadow_of(tensor)._node

    def capture(self, tensor) -> Node:
        """A concrete tensor from outside the function: a graph input, read at every call."""
        return self.book.shadow_of(tensor)._node

    def shadow_of(self, tensor):
        """The proxy that stands for concrete `tensor` here: in-place writes to `tensor` rebind it."""
        return self.book.shadow_of(tensor)

    def read_grad(self, tensor):
        """`tensor.grad` while tracing (captured/argument tensors: their gradient slot)."""
        return self.book.read_grad(tensor)

    def write_grad(self, tensor, value) -> bool:
        """`tensor.grad = value` while tracing; False when the tensor keeps its own attribute."""
        return self.book.write_grad(tensor, value)

    def guard_value(self, key, read, what: str, show: bool = True) -> None:
        """Reuse the compiled graph only while `read()` returns what it returns now (a Python flag);
        `show=False` keeps the value out of messages (a tuple of object ids)."""
        self.book.guard_value(key, read, what, show)

    def defer(self, key, run, *, before: bool | None, what: str, writes: tuple = ()) -> None:
        """Run `run()` at every call of the compiled function, before or after its graph, instead of
        once now (Python state that must advance per call: a learning-rate scheduler's step).
        `before=None` decides from `writes`, the tensors it updates (CaptureBook.defer)."""
        self.book.defer(key, run, before, what, writes)

    def name_of(self, obj, default: str) -> str:
        """Where `obj` lives as seen from the traced function (`model.1`), else `default`."""
        source = self.book.sources.get(id(obj))
        return source.display if source is not None else default

    def note_backward(self) -> None:
        """A backward pass ran inside the function: it handles its own gradients."""
        self.book.ran_backward = True

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


class suspended:
    """Context manager: run eagerly on this thread although a trace is recording (the trace-time
    part of Python state that jit also refreshes at every call, e.g. hyperparameter tensors)."""

    def __enter__(self) -> None:
        self.previous = current()
        _local.trace = None

    def __exit__(self, *exc) -> None:
        _local.trace = self.previous


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
