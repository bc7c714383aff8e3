"""Tracer stage: call a Python function on proxy tensors and record every op into an IR graph.

Arguments become graph inputs; tensors the function reads from outside (globals, closures,
module and optimizer attributes) become captured inputs read at every call, named after where
they live (tracer/sources.py, tracer/captured.py); random numbers read a seed and an offset
input; in-place writes to arguments and captured tensors, and the gradients left on them, become
extra outputs that the runtime writes back.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

from tritonflow.ir.graph import Graph
from tritonflow.ir.types import TensorType
from tritonflow.tracer import leaf, pytree
from tritonflow.tracer.captured import CaptureSummary
from tritonflow.tracer.sources import find_sources
from tritonflow.tracer.state import TraceContext, tracing


@dataclass
class Traced:
    """The result of one trace: the graph and how to map values in and out of it."""

    graph: Graph
    out_spec: object
    n_args: int                       # graph inputs [0, n_args) are the tensor arguments, in leaf order
    captured: list                    # concrete tensors read from outside, graph inputs after the args
    rng_count: int                    # random numbers drawn per call (0: no seed/offset inputs)
    n_outputs: int                    # the function's own tensor outputs come first in graph.outputs
    mutated: list = field(default_factory=list)   # arg leaf index for each written-back output
    state: CaptureSummary | None = None           # captured tensors, gradients, guards and effects

    @property
    def grads(self) -> list:
        """The owner (("arg", leaf index) or ("outside", index)) of each gradient output."""
        return [owner for owner, has_output in self.state.grads if has_output] if self.state else []

    def forget_gradients(self) -> None:
        """Drop the trace-time gradients a compiled entry would keep alive (None in `captured`):
        each call finds the gradient as `owner.grad` (tracer/binding.py)."""
        if self.state is not None:
            self.state.forget_gradients()
            self.captured = [self.state.outside[i].tensor for i in self.state.captured]

    @property
    def n_written(self) -> int:
        """Outputs after the function's own: written-back arguments, captured tensors, gradients."""
        return len(self.mutated) + (len(self.state.written) if self.state else 0) + len(self.grads)


RESERVED_NAMES = ("rng_seed", "rng_offset")


def input_names(fn, args: tuple, kwargs: dict, count: int) -> list[str]:
    """A graph input name per tensor leaf of (args, kwargs), in flatten order, from fn's parameters:
    `x` for a tensor parameter, `x_0, x_1, ...` for the tensors nested in one, the key for a keyword
    argument, `args_0, ...` for *args. Falls back to a0, a1, ... when the signature cannot say."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
    names: list[str] = []
    labelled = [(positional[i].name if i < len(positional) else f"{varargs or 'arg'}_{i - len(positional)}", value)
                for i, value in enumerate(args)]
    labelled += list(kwargs.items())
    for label, value in labelled:
        found: list = []
        pytree.flatten(value, found)
        if len(found) == 1 and leaf.is_tensor(value):
            names.append(str(label))
            continue
        labels = getattr(type(value), "__tritonflow_labels__", None)
        inner = labels(value) if labels is not None else None
        if inner is not None and len(inner) == len(found):
            names.extend(f"{label}.{k}" for k in inner)   # a module's state-dict keys
        else:
            names.extend(f"{label}_{k}" for k in range(len(found)))
    if len(names) != count:
        return [f"a{i}" for i in range(count)]
    return _unique([n if _DOTTED.fullmatch(n) else f"a{i}" for i, n in enumerate(names)])


# Names other parts give values: captured inputs (c0, ...) and the buffers of generated kernels.
_NUMBERED = re.compile(r"(c|out|buf|const|tmp)[0-9]+")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")


def _unique(names: list[str]) -> list[str]:
    """Distinct names, none of them a captured, rng or kernel buffer name."""
    taken: set = set(RESERVED_NAMES)
    out = []
    for name in names:
        candidate = name
        if _NUMBERED.fullmatch(candidate) or candidate in taken:
            suffix = 1
            while f"{name}_{suffix}" in taken:
                suffix += 1
            candidate = f"{name}_{suffix}"
        taken.add(candidate)
        out.append(candidate)
    return out


def trace(fn, args: tuple, kwargs: dict, leaves: list, tensor_keys: tuple, name: str, named_as=None) -> Traced:
    """Trace `fn(*args, **kwargs)`; `leaves` are the tensors in the arguments, keyed by `tensor_keys`.
    `named_as`: the user's function when `fn` wraps it, for the names of inputs and captured state."""
    from tritonflow.tracer.guards import symbolic_shape

    graph = Graph(name)
    ctx = TraceContext(graph, find_sources(named_as or fn))
    ctx.leaves = list(leaves)
    proxies = []
    names = input_names(named_as or fn, args, kwargs, len(leaves))
    first_proxy: dict = {}
    for i, (tensor, key) in enumerate(zip(leaves, tensor_keys)):
        node = graph.add_input(names[i], TensorType(symbolic_shape(key[0]), tensor.dtype))
        if id(tensor) in first_proxy:
            # The same tensor passed twice (a model and its optimizer): one proxy, so a gradient
            # or an in-place write seen through one reference is seen through the other.
            proxies.append(first_proxy[id(tensor)])
            continue
        proxy = leaf.proxy_for(node, ctx, tensor)
        proxies.append(proxy)
        first_proxy[id(tensor)] = proxy
        ctx.input_tensors[id(proxy)] = proxy
        ctx.book.add_argument(tensor, proxy, i)
    ctx.device = leaves[0].device if leaves else "cpu"
    in_spec_leaves: list = []
    spec = pytree.flatten((args, kwargs), in_spec_leaves)
    proxy_args, proxy_kwargs = pytree.unflatten(spec, proxies) if leaves else (args, kwargs)

    with tracing(ctx):
        result = fn(*proxy_args, **proxy_kwargs)
        out_leaves: list = []
        out_spec = pytree.flatten_output(result, out_leaves)
        out_nodes = [ctx.node_of(t) for t in out_leaves]
        mutated_nodes = [p._node for p in proxies if id(p) in ctx.mutated_inputs]
        state, written_nodes = ctx.book.finish(ctx.node_of)

    n_args = len(proxies)
    # Inputs are ordered: arguments, then captured tensors, then the rng seed/offset.
    arg_inputs = graph.inputs[:n_args]
    captured_inputs = [n for n in graph.inputs[n_args:] if n.attrs.get("captured")]
    rng_inputs = [n for n in graph.inputs[n_args:] if "rng" in n.attrs]
    rng_inputs.sort(key=lambda n: 0 if n.attrs["rng"] == "seed" else 1)
    graph.inputs = arg_inputs + captured_inputs + rng_inputs

    # Outputs: the function's, then written-back arguments, captured tensors and gradients.
    mutated = [i for i, p in enumerate(proxies) if id(p) in ctx.mutated_inputs]
    graph.outputs = list(out_nodes) + mutated_nodes + written_nodes
    return Traced(graph=graph, out_spec=out_spec, n_args=n_args, captured=list(ctx.captured),
                  rng_count=ctx.rng_count, n_outputs=len(out_nodes), mutated=mutated, state=state)
