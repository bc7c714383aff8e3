"""Tracer stage: call a Python function on proxy tensors and record every op into an IR graph.

Arguments become graph inputs; tensors the function reads from outside (globals, closures,
module attributes) become captured inputs read at every call; random numbers read a seed and an
offset input; in-place writes to arguments and gradients left on them become extra outputs that
the runtime writes back.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

from tritonflow.errors import TraceError
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType
from tritonflow.tracer import leaf, pytree
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
    grads: list = field(default_factory=list)     # arg leaf index for each gradient output


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
        else:
            names.extend(f"{label}_{k}" for k in range(len(found)))
    if len(names) != count:
        return [f"a{i}" for i in range(count)]
    return _unique([n if n.isidentifier() else f"a{i}" for i, n in enumerate(names)])


# Names other parts give values: captured inputs (c0, ...) and the buffers of generated kernels.
_NUMBERED = re.compile(r"(c|out|buf|const|tmp)[0-9]+")


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


def trace(fn, args: tuple, kwargs: dict, leaves: list, tensor_keys: tuple, name: str) -> Traced:
    """Trace `fn(*args, **kwargs)`; `leaves` are the tensors in the arguments, keyed by `tensor_keys`."""
    from tritonflow.tracer.guards import symbolic_shape

    graph = Graph(name)
    ctx = TraceContext(graph)
    proxies = []
    names = input_names(fn, args, kwargs, len(leaves))
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
    ctx.device = leaves[0].device if leaves else "cpu"
    in_spec_leaves: list = []
    spec = pytree.flatten((args, kwargs), in_spec_leaves)
    proxy_args, proxy_kwargs = pytree.unflatten(spec, proxies) if leaves else (args, kwargs)

    with tracing(ctx):
        result = fn(*proxy_args, **proxy_kwargs)
        out_leaves: list = []
        out_spec = pytree.flatten(result, out_leaves)
        out_nodes = [ctx.node_of(t) for t in out_leaves]

    n_args = len(proxies)
    # Inputs are ordered: arguments, then captured tensors, then the rng seed/offset.
    arg_inputs = graph.inputs[:n_args]
    captured_inputs = [n for n in graph.inputs[n_args:] if n.attrs.get("captured")]
    rng_inputs = [n for n in graph.inputs[n_args:] if "rng" in n.attrs]
    rng_inputs.sort(key=lambda n: 0 if n.attrs["rng"] == "seed" else 1)
    graph.inputs = arg_inputs + captured_inputs + rng_inputs

    outputs: list[Node] = list(out_nodes)
    mutated, grads = [], []
    for index, proxy in enumerate(proxies):
        if id(proxy) in ctx.mutated_inputs:
            outputs.append(proxy._node)
            mutated.append(index)
    for index, proxy in enumerate(proxies):
        if proxy.grad is not None:
            if proxy.grad._node is None or proxy.grad._trace is not ctx:
                raise TraceError("a gradient computed inside the jitted function is not a traced value")
            outputs.append(proxy.grad._node)
            grads.append(index)
    graph.outputs = outputs
    return Traced(graph=graph, out_spec=out_spec, n_args=n_args, captured=list(ctx.captured),
                  rng_count=ctx.rng_count, n_outputs=len(out_nodes), mutated=mutated, grads=grads)
