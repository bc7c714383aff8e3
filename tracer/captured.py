"""Tracer stage: captured state — the tensors a trace reaches from outside the function.

A tensor the function reads from a global, a closure cell or an attribute of a captured module or
optimizer is never changed while tracing. The trace keeps a *shadow* for it instead: a proxy
standing for its value, created on first use as a graph input named after where the tensor lives
(`model.0.weight`). In-place writes rebind the shadow, so later reads in the trace see the new
value, and a shadow that ends on another node is written back after each call. The same holds for
`.grad`: a gradient slot per tensor records whether the trace read the gradient before writing it
(then its presence is guarded and, when there is one, it is a graph input found as `owner.grad`)
and what it holds at the end (a graph output, or None, written back). An argument's concrete
tensor reached from outside (an optimizer closed over, its model passed in) resolves to the
argument's proxy, so one tensor is always one graph value.

The book also keeps what the Python side of the function asked for at every call: guards on
Python values (a module's training flag, an optimizer's flags) and deferred effects (a learning
rate scheduler's step) run before or after the graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from tritonflow.errors import TraceError, user_location
from tritonflow.ir.types import TensorType
from tritonflow.tracer import leaf


def tensor_key(t) -> tuple:
    """What a captured tensor is guarded on besides its identity."""
    return (tuple(t.shape), t.dtype, t.device, bool(t.requires_grad))


class Outside:
    """One tensor from outside the function that the trace touched (its value, its gradient or both)."""

    __slots__ = ("tensor", "name", "source", "grad_of", "node", "shadow", "key")

    def __init__(self, tensor, name: str, source, grad_of) -> None:
        self.tensor = tensor          # the object at trace time
        self.name = name              # what explain() and errors call it
        self.source = source          # tracer.sources.Source, or None: the object itself is held
        self.grad_of = grad_of        # ("arg", leaf index) or ("outside", index): it is that tensor's .grad
        self.node = None              # its graph input, once its value is read or written
        self.shadow = None            # the proxy standing for its value in the trace
        self.key = tensor_key(tensor)


class GradSlot:
    """The `.grad` of one argument or outside tensor while tracing."""

    __slots__ = ("owner", "value", "read_first", "initial", "written")

    def __init__(self, owner: tuple) -> None:
        self.owner = owner            # ("arg", leaf index) or ("outside", index)
        self.value = None             # the proxy it holds now, or None
        self.read_first = False       # read before any write: the call guards what it held
        self.initial = None           # then: None (no gradient) or the outside index of the gradient
        self.written = False


@dataclass
class Effect:
    """Python code a traced function asked jit to run at every call, before or after the graph."""

    run: Callable[[], Any]
    before: bool
    what: str


@dataclass
class ValueGuard:
    """A Python value the trace depended on: the entry is reused while `read()` still equals `expected`."""

    read: Callable[[], Any]
    expected: Any
    what: str
    show: bool = True


@dataclass
class CaptureSummary:
    """What a compiled call does with the captured state (the result of `CaptureBook.finish`)."""

    outside: list                       # Outside per tensor touched
    captured: list                      # outside index per captured graph input, in input order
    written: list                       # outside index per written-back value output
    grads: list                         # (owner, has output) per gradient written back, outputs in order
    grad_guards: list                   # (owner, None or outside index of the gradient) read before written
    value_guards: list = field(default_factory=list)
    before: list = field(default_factory=list)
    after: list = field(default_factory=list)
    ran_backward: bool = False

    def forget_gradients(self) -> None:
        """Drop the trace-time gradient tensors (each call finds the gradient as `owner.grad`)."""
        for entry in self.outside:
            if entry.grad_of is not None:
                entry.tensor = None


class CaptureBook:
    """The outside tensors, gradient slots, guards and effects of one trace (module docstring)."""

    def __init__(self, ctx, sources: dict) -> None:
        self.ctx = ctx
        self.sources = sources
        self.outside: list[Outside] = []
        self.index_of: dict[int, int] = {}
        self.captured: list[int] = []
        self.slots: dict[int, GradSlot] = {}
        self.arg_proxy: dict[int, Any] = {}      # id(argument's concrete tensor) -> its proxy
        self.arg_index: dict[int, int] = {}      # id(argument proxy) -> its first leaf index
        self.value_guards: dict = {}
        self.effects: dict = {}
        self.after_checks: list = []             # (what, graph inputs it writes, first node after it)
        self.ran_backward = False

    # ---------------------------------------------------------------- values

    def add_argument(self, tensor, proxy, index: int) -> None:
        self.arg_proxy.setdefault(id(tensor), proxy)
        self.arg_index.setdefault(id(proxy), index)

    def register(self, tensor, grad_of=None) -> int:
        """The outside index of `tensor`, registered now if new."""
        index = self.index_of.get(id(tensor))
        if index is None:
            source = self.sources.get(id(tensor))
            if grad_of is not None:
                source = None
                name = f"{self._owner_name(grad_of)}.grad"
            else:
                name = source.display if source is not None else f"c{len(self.outside)}"
            index = len(self.outside)
            self.outside.append(Outside(tensor, name, source, grad_of))
            self.index_of[id(tensor)] = index
        return index

    def shadow_of(self, tensor):
        """The proxy standing for concrete `tensor` in this trace (capturing it as an input if new)."""
        proxy = self.arg_proxy.get(id(tensor))
        if proxy is not None:
            return proxy
        entry = self.outside[self.register(tensor)]
        if entry.shadow is None:
            graph = self.ctx.graph
            taken = {n.name for n in graph.inputs}
            name, suffix = entry.name, 1
            while name in taken:
                name, suffix = f"{entry.name}_{suffix}", suffix + 1
            entry.node = graph.add_input(name, TensorType(tuple(tensor.shape), tensor.dtype), user_location())
            entry.node.attrs["captured"] = True
            entry.shadow = leaf.proxy_for(entry.node, self.ctx, tensor)
            self.captured.append(self.index_of[id(tensor)])
        return entry.shadow

    def is_shadowed(self, tensor) -> bool:
        index = self.index_of.get(id(tensor))
        return id(tensor) in self.arg_proxy or (index is not None and self.outside[index].shadow is not None)

    def is_outside(self, tensor) -> bool:
        """Whether concrete `tensor` is state from outside the function (found from its globals, or
        already captured), not a constant made while tracing."""
        return id(tensor) in self.sources or self.is_shadowed(tensor)

    def was_written(self, tensor) -> bool:
        index = self.index_of.get(id(tensor))
        if index is None:
            return False
        entry = self.outside[index]
        return entry.shadow is not None and entry.shadow._node is not entry.node

    def describe(self, tensor) -> str:
        """A tensor's name for an error: its captured name, an argument's name, or its shape."""
        proxy = self.arg_proxy.get(id(tensor), tensor)
        index = self.arg_index.get(id(proxy))
        if index is not None:
            return f"argument %{self.ctx.graph.inputs[index].name}"
        index = self.index_of.get(id(tensor))
        if index is not None or id(tensor) in self.sources:
            name = self.outside[index].name if index is not None else self.sources[id(tensor)].display
            return f"captured tensor %{name}"
        return f"the tensor of shape {tuple(tensor.shape)}"

    # ---------------------------------------------------------------- gradients

    def _owner_name(self, owner: tuple) -> str:
        kind, index = owner
        if kind == "arg":
            return self.ctx.graph.inputs[index].name
        return self.outside[index].name

    def _slot(self, tensor):
        """The gradient slot of an argument proxy or a concrete outside tensor; None for other proxies."""
        if tensor._node is not None:
            index = self.arg_index.get(id(tensor))
            if index is None:
                return None
            owner, key = ("arg", index), id(tensor)
        else:
            proxy = self.arg_proxy.get(id(tensor))
            if proxy is not None:
                return self._slot(proxy)
            owner, key = ("outside", self.register(tensor)), id(tensor)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = GradSlot(owner)
        return slot

    def _concrete_owner(self, owner: tuple):
        kind, index = owner
        return self.ctx.leaves[index] if kind == "arg" else self.outside[index].tensor

    def read_grad(self, tensor):
        slot = self._slot(tensor)
        if slot is None:
            return leaf.raw_grad(tensor)
        if not slot.written and not slot.read_first:
            slot.read_first = True
            grad = leaf.raw_grad(self._concrete_owner(slot.owner))
            if grad is not None:
                slot.initial = self.register(grad, grad_of=slot.owner)
                slot.value = self.shadow_of(grad)
        return slot.value

    def write_grad(self, tensor, value) -> bool:
        """Record `tensor.grad = value`; False when `tensor` is a proxy made inside the trace."""
        slot = self._slot(tensor)
        if slot is None:
            return False
        slot.value = value
        slot.written = True
        return True

    # ---------------------------------------------------------------- Python-side guards and effects

    def guard_value(self, key, read: Callable[[], Any], what: str, show: bool = True) -> None:
        if key not in self.value_guards:
            self.value_guards[key] = ValueGuard(read, read(), what, show)

    def _input_node(self, tensor):
        """The graph input standing for `tensor` (an argument's or a captured one), or None."""
        proxy = self.arg_proxy.get(id(tensor))
        if proxy is not None:
            return self.ctx.graph.inputs[self.arg_index[id(proxy)]]
        index = self.index_of.get(id(tensor))
        return self.outside[index].node if index is not None else None

    def _first_reader(self, inputs: list, start: int = 0):
        """The first graph node from position `start` on that reads one of `inputs`."""
        wanted = {id(n) for n in inputs if n is not None}
        return next((n for n in self.ctx.graph.nodes[start:] if any(id(i) in wanted for i in n.inputs)), None)

    def defer(self, key, run: Callable[[], Any], before: bool | None, what: str, writes: tuple = ()) -> None:
        """`before=None`: before the graph unless the graph has already read one of the tensors the
        effect writes (`writes`), else after it, and then nothing later in the trace may read them."""
        if key is None:
            key = len(self.effects)         # not deduplicated: each call of it is one effect
        if key in self.effects:
            return
        inputs = [self._input_node(t) for t in writes]
        if before is None:
            before = self._first_reader(inputs) is None
        self.effects[key] = Effect(run, before, what)
        if not before and writes:
            self.after_checks.append((what, inputs, len(self.ctx.graph.nodes)))

    # ---------------------------------------------------------------- the result

    def finish(self, node_of: Callable) -> tuple[CaptureSummary, list]:
        """(the summary, the extra graph output nodes: written-back values, then gradients)."""
        for what, inputs, start in self.after_checks:
            reader = self._first_reader(inputs, start)
            if reader is not None:
                name = next(n.name for n in inputs if n is not None and n in reader.inputs)
                raise TraceError(f"{what} runs after the compiled graph, but the function reads %{name} again "
                                 f"after it; call it last in the function", reader.loc)
        outputs, written, grads, grad_guards = [], [], [], []
        for index in self.captured:
            entry = self.outside[index]
            if entry.shadow._node is not entry.node:
                written.append(index)
                outputs.append(entry.shadow._node)
        for slot in self.slots.values():
            if slot.read_first:
                grad_guards.append((slot.owner, slot.initial))
            if not slot.written:
                continue
            value = slot.value
            if value is None:
                grads.append((slot.owner, False))
                continue
            if slot.initial is not None and value is self.outside[slot.initial].shadow:
                continue        # the gradient tensor itself, written back in place if it changed
            outputs.append(node_of(value))
            grads.append((slot.owner, True))
        effects = list(self.effects.values())
        for entry in self.outside:
            entry.shadow = None   # a proxy keeps its trace (and the trace its argument tensors) alive
        summary = CaptureSummary(self.outside, list(self.captured), written, grads, grad_guards,
                                 list(self.value_guards.values()), [e for e in effects if e.before],
                                 [e for e in effects if not e.before], self.ran_backward)
        return summary, outputs
