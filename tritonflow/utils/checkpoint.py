"""Front end: activation checkpointing — `tritonflow.utils.checkpoint(fn, *args)`, as torch's.

The region `fn(*args)` runs forward and keeps only its inputs and outputs; its backward runs the
region again (same random numbers, same autocast) and differentiates that recomputation. Memory
for the region's activations is traded for a second forward.

How, eagerly: the forward runs on detached copies of the tensor arguments with the tape on and
records which tape nodes the region made (autograd.recording); the gradients that would leave
the region (to the arguments, to parameters and other tensors `fn` reaches from outside) become
the edges of one FunctionNode, the outputs are re-attached to it, and the region's own nodes,
with their saved activations, are dropped. Its backward recomputes the region and runs reverse
mode only within the new region's nodes (`backward_many(region=)`), returning what crosses out.

Under `tritonflow.jit` the same code runs on proxies: the recomputation is traced into the joint
graph during its backward, and its nodes are marked (`TraceContext.recomputed`) so that the
partition (compiled_autograd.partition) puts them in the backward graph. The forward graph then
saves the region's inputs, not its activations. (A jitted function that calls `.backward()`
itself is one graph; its fusion decides what is kept, and the gradients are the same.)

Like torch's non-reentrant checkpoint, the region may take and return any nesting of tensors
and other values, may read parameters from outside, and works with `tritonflow.grad`.
`use_reentrant` is accepted and ignored (there is one implementation); `preserve_rng_state`
(default True) replays the default generator's draws.
"""
from __future__ import annotations

import sys
import types
from typing import Any, Callable

from tritonflow import autograd, philox
from tritonflow.amp import autocast_mode
from tritonflow.errors import TritonflowError
from tritonflow.ops.lazy_api import T
from tritonflow.tracer import pytree
from tritonflow.tracer import state as trace_state

__all__ = ["checkpoint", "CheckpointError"]


class CheckpointError(TritonflowError):
    """A checkpointed region that cannot be replayed (its recomputation differs from its forward)."""


def _rng_state():
    ctx = trace_state.current()
    return ("trace", ctx.rng_count) if ctx is not None else ("eager", philox.default_generator.get_state())


class _replayed_rng:
    """The random stream positioned where the forward found it, for the recomputation only."""

    def __init__(self, state) -> None:
        self.state = state

    def __enter__(self) -> None:
        self.now = _rng_state()
        if self.state is not None:
            self._set(self.state)

    def __exit__(self, *exc) -> None:
        self._set(self.now)

    @staticmethod
    def _set(state) -> None:
        kind, value = state
        if kind == "trace":
            trace_state.current().rng_count = value
        else:
            philox.default_generator.set_state(value)


def _run_region(fn, args: tuple, kwargs: dict, leaves: list, spec):
    """fn on detached copies of the tensor leaves, tape on; (outputs, output leaves, copies, node ids)."""
    copies = [t.detach().requires_grad_(t.requires_grad) if T.is_tensor(t) else t for t in leaves]
    call_args, call_kwargs = pytree.unflatten(spec, copies)
    with autograd.enable_grad(), autograd.recording() as nodes:
        result = fn(*call_args, **call_kwargs)
    outs: list = []
    out_spec = pytree.flatten_output(result, outs)
    return result, outs, out_spec, copies, nodes


def _edge_key(edge) -> tuple:
    parent, slot, leaf = edge
    return ("leaf", id(leaf)) if leaf is not None else ("node", id(parent), slot)


def _crossings(outs: list, copies: list, region: set) -> tuple[list, list]:
    """The edges by which gradients leave the region: (keys, (edge, (shape, dtype)) per key).

    Keys are ("arg", i) for the i-th tensor leaf of the arguments, else the edge's own key."""
    arg_of = {id(c): i for i, c in enumerate(copies) if T.is_tensor(c) and c.requires_grad}
    keys, edges, seen, visited = [], [], set(), set()

    def add(key, edge, meta):
        if key not in seen:
            seen.add(key)
            keys.append(key)
            edges.append((edge, meta))

    stack = []
    for t in outs:
        if T.is_tensor(t) and t.requires_grad:
            stack.append(("root", t))
    while stack:
        kind, item = stack.pop()
        if kind == "root":
            edge, meta = autograd._edge_of(item), (tuple(item.shape), item.dtype)
            if edge[0] is None or id(edge[0]) not in region:
                add(_region_key(edge, arg_of), edge, meta)
                continue
            item = edge[0]
        if id(item) in visited:
            continue
        visited.add(id(item))
        for edge, meta in zip(item.edges, item.meta):
            parent, _, leaf = edge
            if parent is None and leaf is None:
                continue
            if leaf is not None or id(parent) not in region:
                add(_region_key(edge, arg_of), edge, meta)
            else:
                stack.append(("node", parent))
    return keys, edges


def _region_key(edge, arg_of: dict) -> tuple:
    leaf = edge[2]
    if leaf is not None and id(leaf) in arg_of:
        return ("arg", arg_of[id(leaf)])
    return _edge_key(edge)


def checkpoint(function: Callable, *args, use_reentrant: bool | None = None, preserve_rng_state: bool = True,
               **kwargs) -> Any:
    """`function(*args, **kwargs)`, its activations recomputed in backward instead of saved."""
    if not callable(function):
        raise TypeError(f"checkpoint: the first argument must be callable, got {type(function).__name__}")
    leaves: list = []
    spec = pytree.flatten((args, kwargs), leaves)
    if not autograd.is_grad_enabled():
        return function(*args, **kwargs)   # no gradients to compute: the region simply runs
    rng = _rng_state() if preserve_rng_state else None
    amp_state = autocast_mode.snapshot()
    result, outs, out_spec, copies, region = _run_region(function, args, kwargs, leaves, spec)
    keys, edges = _crossings(outs, copies, region)
    diff = [i for i, t in enumerate(outs) if T.is_tensor(t) and t.requires_grad]
    if not keys or not diff:
        return result
    originals = {i: t for i, t in enumerate(leaves) if T.is_tensor(t) and t.requires_grad}
    shapes = [(tuple(outs[i].shape), outs[i].dtype) for i in diff]
    ctx = trace_state.current()

    def backward(grads: list) -> tuple:
        with _replayed_rng(rng), autocast_mode.restored(amp_state):
            start = len(ctx.graph.nodes) if ctx is not None else 0
            _, again, _, copies2, region2 = _run_region(function, args, kwargs, leaves, spec)
            if ctx is not None:
                marked = getattr(ctx, "recomputed", None)
                if marked is None:
                    marked = ctx.recomputed = set()
                marked.update(id(n) for n in ctx.graph.nodes[start:])
        roots, seeds = [], []
        for i, g, (shape, dtype) in zip(diff, grads, shapes):
            t = again[i]
            if g is None or not (T.is_tensor(t) and t.requires_grad):
                continue
            if tuple(t.shape) != shape or t.dtype is not dtype:
                raise CheckpointError(f"checkpoint: recomputing {getattr(function, '__qualname__', function)} "
                                      f"gave output {i} as {t.dtype.name}{list(t.shape)}, the forward gave "
                                      f"{dtype.name}{list(shape)}; the region must compute the same thing twice")
            roots.append(t)
            seeds.append(g)
        found = _leaving(roots, seeds, copies2, region2)
        return tuple(found.get(key) for key in keys)

    vjp = (lambda g: backward([g])) if len(diff) == 1 else backward   # FunctionNode's convention
    node = autograd.FunctionNode(f"checkpoint({getattr(function, '__qualname__', 'fn')})",
                                 vjp, [], [outs[i] for i in diff])
    node.edges = [autograd._edge_of(originals[key[1]]) if key[0] == "arg" else edge for key, (edge, _) in
                  zip(keys, edges)]
    node.meta = [meta for _, meta in edges]
    node.saved = [t for t in leaves if T.is_tensor(t)]   # what the region keeps: its inputs
    detached = [t.detach() if T.is_tensor(t) else t for t in outs]
    node.attach([detached[i] for i in diff])
    return pytree.unflatten(out_spec, detached)


def _leaving(roots: list, seeds: list, copies: list, region: set) -> dict:
    """Reverse mode within the recomputed region: the gradients leaving it, keyed as _crossings does."""
    arg_of = {("leaf", id(c)): ("arg", i) for i, c in enumerate(copies) if T.is_tensor(c) and c.requires_grad}
    found: dict = {}
    inside_roots, inside_seeds = [], []
    for t, g in zip(roots, seeds):
        edge = autograd._edge_of(t)
        if edge[0] is None or id(edge[0]) not in region:   # an output the region did not compute
            key = _edge_key(edge)
            key = arg_of.get(key, key)
            found[key] = g if key not in found else found[key] + g
        else:
            inside_roots.append(t)
            inside_seeds.append(g)
    if inside_roots:
        for key, g in autograd.backward_many(inside_roots, inside_seeds, region=region).items():
            key = arg_of.get(key, key)
            found[key] = g if key not in found else found[key] + g
    return found


class _CallableModule(types.ModuleType):
    """`tritonflow.utils.checkpoint(fn, *args)` and `tritonflow.utils.checkpoint.checkpoint(...)` both
    work: the module calls its function."""

    def __call__(self, function: Callable, *args, **kwargs) -> Any:
        return checkpoint(function, *args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
