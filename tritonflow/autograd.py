"""Eager reverse-mode autograd: a tape of GradNodes, run backward with the op table's vjp rules.

Framework stage. The vjp rules are written with tritonflow ops, so the same engine runs on
concrete tensors (eager) and on proxies (under tracing, recording the backward into the graph).
In-place ops rebind a tensor's storage instead of writing into it, so values saved for backward
are never corrupted.

The tape: every tensor made by a differentiable op points at its node (`tensor._grad_fn`). A node
knows, per input, where that input's gradient goes: an edge `(parent node, output slot, leaf)`.
Nodes have one output (an op) or several (a compiled function's FunctionNode); a tensor that is
output `i` of a multi-output node points at an `OutputSlot(node, i)` marker.
"""
from __future__ import annotations

import threading
import weakref

from tritonflow import autograd_hooks
from tritonflow.amp.autocast_mode import suspended as autocast_suspended
from tritonflow.errors import AutogradError
from tritonflow.ops.lazy_api import T  # the tritonflow functions, installed by tritonflow.api (above this)
from tritonflow.ops.movement import sum_to_shape
from tritonflow.tracer import state as _trace_state

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class no_grad:
    """Context manager and decorator: ops inside record no gradient."""

    mode = False

    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(self.mode)

    def __exit__(self, *exc):
        set_grad_enabled(self.prev)

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Context manager and decorator: record gradients even inside `no_grad`."""

    mode = True


def is_inference_mode_enabled() -> bool:
    return getattr(_state, "inference", False)


class inference_mode:
    """torch.inference_mode, as a context manager or decorator: inside it nothing records gradients
    (no_grad; jit compiles forward-only graphs). tritonflow has no separate inference tensors:
    what is made inside is an ordinary tensor that simply has no autograd history.
    inference_mode(False) leaves the grad mode as it finds it."""

    def __init__(self, mode: bool = True) -> None:
        self.enabled = bool(mode)

    def __enter__(self):
        self.prev = (is_grad_enabled(), is_inference_mode_enabled())
        _state.inference = self.enabled
        if self.enabled:
            set_grad_enabled(False)

    def __exit__(self, *exc):
        set_grad_enabled(self.prev[0])
        _state.inference = self.prev[1]

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(self.enabled):
                return fn(*args, **kwargs)
        return wrapper


class recording:
    """`with recording() as nodes:` collects the ids of the tape nodes made inside (the region
    of tritonflow.utils.checkpoint, whose backward runs only within it: `backward_many(region=)`)."""

    def __enter__(self) -> set:
        self.prev = getattr(_state, "recording", None)
        self.nodes: set = set()
        _state.recording = self.nodes
        return self.nodes

    def __exit__(self, *exc) -> None:
        _state.recording = self.prev


def _note(node) -> None:
    nodes = getattr(_state, "recording", None)
    if nodes is not None:
        nodes.add(id(node))


# ---------------------------------------------------------------- the tape

class OutputSlot:
    """What a tensor's `_grad_fn` holds when it is output `index` of a multi-output node."""

    __slots__ = ("node", "index")

    def __init__(self, node, index: int) -> None:
        self.node = node
        self.index = index

    def __repr__(self) -> str:
        return f"<{self.node!r} output {self.index}>"


def _edge_of(t) -> tuple:
    """(parent node, slot, leaf tensor) for one input: where its gradient is sent."""
    if not t.requires_grad:
        return (None, 0, None)
    fn = t._grad_fn
    if fn is None:
        return (None, 0, t)
    if isinstance(fn, OutputSlot):
        return (fn.node, fn.index, None)
    return (fn, 0, None)


class GradNode:
    """How one output was made: the op, its attributes, saved inputs and output, and the edges back."""

    __slots__ = ("op", "attrs", "saved", "out", "edges", "vjp", "meta", "n_outputs", "out_ref", "freed",
                 "__weakref__")

    def __init__(self, op, attrs: dict, inputs: list, out) -> None:
        self.op = op
        self.attrs = attrs
        self.vjp = op.vjp
        # Aliases share storage but not identity, so later in-place rebinding leaves them intact.
        self.saved = [t._alias() for t in inputs]
        self.out = out._alias()
        self.edges = [_edge_of(t) for t in inputs]
        self.meta = [(t.shape, t.dtype) for t in inputs]
        self.n_outputs = 1
        self.out_ref = weakref.ref(out)  # for retain_grad() on the output tensor
        self.freed = False
        _note(self)

    @property
    def name(self) -> str:
        return self.op.name if hasattr(self.op, "name") else str(self.op)

    def input_grads(self, grads: list) -> tuple:
        return self.vjp(grads[0], self.out, *self.saved, **self.attrs)

    def release(self) -> None:
        self.saved = None
        self.out = None
        self.freed = True

    def __repr__(self) -> str:
        return f"<GradNode {self.name}>"


class FunctionNode(GradNode):
    """A node whose backward is a Python callable (compiled functions, device moves).

    `backward(g)` for one output, `backward([g0, g1, ...])` for several (a missing gradient is
    None); it returns one gradient (or None) per input.
    """

    __slots__ = ("fn_name",)

    def __init__(self, name: str, backward, inputs: list, outputs: list) -> None:  # noqa: D401
        self.op = None
        self.fn_name = name
        self.attrs = {}
        self.vjp = backward
        self.saved = []
        self.out = None
        self.edges = [_edge_of(t) for t in inputs]
        self.meta = [(t.shape, t.dtype) for t in inputs]
        self.n_outputs = len(outputs)
        self.out_ref = None
        self.freed = False
        _note(self)

    @property
    def name(self) -> str:
        return self.fn_name

    def attach(self, outputs: list) -> None:
        """Make each tensor in `outputs` (None for a non-differentiable one) an output of this node."""
        for index, t in enumerate(outputs):
            if t is None:
                continue
            t.requires_grad = True
            t._grad_fn = self if self.n_outputs == 1 else OutputSlot(self, index)

    def input_grads(self, grads: list) -> tuple:
        return self.vjp(grads[0]) if self.n_outputs == 1 else self.vjp(grads)

    def release(self) -> None:
        self.vjp = None  # drops the closure, and with it the saved activations
        self.saved = []  # what a checkpoint keeps (its region's inputs), listed for inspection
        self.freed = True

    def __repr__(self) -> str:
        return f"<FunctionNode {self.fn_name}>"


# ---------------------------------------------------------------- the engine

def _toposort(roots: list, region: set | None = None) -> list:
    """Nodes reachable from `roots` (within `region` if given), each before the nodes it sends
    gradients to."""
    order, seen = [], set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            # Reversed, so the first input's branch (the activations) is ordered last: the branches
            # ending at later inputs (weights, biases) run as soon as their node has, which starts
            # their leaves' hooks (DDP's buckets) early in the backward, as torch's engine does.
            for parent, _, _ in reversed(node.edges):
                if parent is not None and id(parent) not in seen and (region is None or id(parent) in region):
                    stack.append((parent, False))
    return order[::-1]


def _seed(tensor, grad):
    """Check and normalize the gradient seeding one root."""

    if not tensor.requires_grad:
        raise AutogradError(f"backward: the tensor of shape {tuple(tensor.shape)} does not require grad and "
                            f"has no grad_fn (made under no_grad, detached, or no input requires grad)")
    if grad is None:
        if tensor.numel() != 1:
            raise AutogradError(f"backward: grad can be implicitly created only for scalar outputs; got "
                                f"shape {tuple(tensor.shape)}: pass a gradient argument of that shape")
        return T.ones_like(tensor)
    if not hasattr(grad, "_node"):
        grad = T.tensor(grad, dtype=tensor.dtype, device=tensor.device)
    if tuple(grad.shape) != tuple(tensor.shape):
        raise AutogradError(f"backward: gradient shape {tuple(grad.shape)} does not match the tensor's "
                            f"shape {tuple(tensor.shape)}")
    if grad.dtype is not tensor.dtype:
        grad = T.cast(grad, tensor.dtype)
    return grad


def _fit(gi, shape, dtype):
    """A gradient summed down to its input's shape (broadcasting) and cast to its dtype."""

    if tuple(gi.shape) != tuple(shape):
        gi = sum_to_shape(gi, shape)
    if gi.dtype is not dtype and dtype.is_floating_point:
        gi = T.cast(gi, dtype)
    return gi


def _add(prev, g):
    return g if prev is None else prev + g


def backward_many(tensors: list, grads: list, retain_graph: bool = False, inputs: list | None = None,
                  region: set | None = None):
    """Run reverse mode from several roots at once.

    With `inputs=None`, gradients accumulate into every reachable leaf's `.grad`. With a list of
    tensors, nothing is written: the gradient reaching each of them (or None) is returned. With
    `region` (ids of nodes, see `recording`), only those nodes run, nothing is written, and the
    gradients leaving the region are returned: {("leaf", id(leaf)) or ("node", id(parent), slot): g}.
    """
    seeds = [_seed(t, g) for t, g in zip(tensors, grads)]
    tracing = _trace_state.current()
    if tracing is not None:
        tracing.note_backward()   # the traced function handles its own gradients (jit_function._build)
    want: dict[int, int] = {}        # id(leaf tensor) -> position in `inputs`
    want_slot: dict = {}             # (id(node), slot) -> position, for non-leaf inputs
    if inputs is not None:
        for position, t in enumerate(inputs):
            fn = t._grad_fn
            if fn is None:
                want[id(t)] = position
            elif isinstance(fn, OutputSlot):
                want_slot[(id(fn.node), fn.index)] = position
            else:
                want_slot[(id(fn), 0)] = position
    results = [None] * len(inputs) if inputs is not None else None
    crossing: dict = {}

    def cross(key, g):
        crossing[key] = _add(crossing.get(key), g)

    schedule = None  # post-accumulate-grad hooks to run (autograd_hooks.LeafHookSchedule)

    def deliver_leaf(leaf, g, node_index=None):
        if region is not None:
            cross(("leaf", id(leaf)), g)
        elif inputs is None:
            _accumulate(leaf, g)
            if schedule is not None:
                schedule.delivered(leaf, node_index)
        elif id(leaf) in want:
            results[want[id(leaf)]] = _add(results[want[id(leaf)]], g.detach())

    pending: dict[int, list] = {}
    roots = []
    seeded_leaves = []
    with _no_grad_for_backward(), autograd_hooks.backward_callbacks():
        for t, g in zip(tensors, seeds):
            fn = t._grad_fn
            if fn is None:
                deliver_leaf(t, g)
                seeded_leaves.append(t)
                continue
            node, slot = (fn.node, fn.index) if isinstance(fn, OutputSlot) else (fn, 0)
            slots = pending.setdefault(id(node), [None] * node.n_outputs)
            slots[slot] = _add(slots[slot], g)
            roots.append(node)
        order = _toposort(roots, region)
        if inputs is None and region is None and autograd_hooks.has_hooks():
            schedule = autograd_hooks.LeafHookSchedule(order)
            for leaf in seeded_leaves:
                schedule.delivered(leaf, None)
            schedule.fire_unscheduled()
        for index, node in enumerate(order):
            if schedule is not None and index:
                schedule.sweep(index - 1)
            grads_in = pending.pop(id(node), None)
            if grads_in is None or all(g is None for g in grads_in):
                continue
            if node.freed:
                raise AutogradError(f"backward: trying to backward through {node!r} a second time; its saved "
                                    f"values were freed. Pass retain_graph=True to the first backward()")
            for slot, g in enumerate(grads_in):
                key = (id(node), slot)
                if key in want_slot and g is not None:
                    results[want_slot[key]] = _add(results[want_slot[key]], g)
            if inputs is None and region is None and node.out_ref is not None:
                out = node.out_ref()
                if out is not None and out._retains_grad and out._grad_fn is node:
                    out.grad = _add(out.grad, grads_in[0].detach())
            if node.n_outputs == 1 and grads_in[0] is None:
                continue
            input_grads = node.input_grads(grads_in)
            if isinstance(input_grads, autograd_hooks.StagedGradients):
                stages = input_grads
            else:
                if len(input_grads) != len(node.edges):
                    raise AutogradError(f"backward of {node!r} returned {len(input_grads)} gradients for "
                                        f"{len(node.edges)} inputs")
                stages = [enumerate(input_grads)]
            for stage in stages:
                for position, gi in stage:
                    parent, slot, leaf = node.edges[position]
                    if gi is None or (parent is None and leaf is None):
                        continue
                    gi = _fit(gi, *node.meta[position])
                    if leaf is not None:
                        deliver_leaf(leaf, gi, index)
                    elif region is not None and id(parent) not in region:
                        cross(("node", id(parent), slot), gi)
                    else:
                        slots = pending.setdefault(id(parent), [None] * parent.n_outputs)
                        slots[slot] = _add(slots[slot], gi)
                if schedule is not None:
                    schedule.fire_ready()  # the leaves this stage completed: their hooks start now
            if not retain_graph:
                node.release()
        if schedule is not None and order:
            schedule.sweep(len(order) - 1)
    return crossing if region is not None else results


def run_backward(tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) * grad into every leaf's `.grad` (what `tensor.backward()` does)."""
    backward_many([tensor], [grad], retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool = False, allow_unused: bool = False):
    """Gradients of `outputs` with respect to `inputs`, returned instead of stored in `.grad`."""
    single = not isinstance(outputs, (list, tuple))
    outputs = [outputs] if single else list(outputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    one_input = not isinstance(inputs, (list, tuple))
    inputs = [inputs] if one_input else list(inputs)
    for t in inputs:
        if not t.requires_grad:
            raise AutogradError(f"grad: an input of shape {tuple(t.shape)} does not require grad")
    results = backward_many(outputs, list(grad_outputs), retain_graph, inputs)
    if not allow_unused:
        for position, r in enumerate(results):
            if r is None:
                raise AutogradError(f"grad: input {position} (shape {tuple(inputs[position].shape)}) was not "
                                    f"used to compute the outputs; pass allow_unused=True")
    return results[0] if one_input else tuple(results)


def _accumulate(leaf, g) -> None:
    g = g.detach()
    leaf.grad = g if leaf.grad is None else (leaf.grad + g).detach()


class _no_grad_for_backward:
    """Backward itself records no tape (no higher-order gradients); tracing still records ops.
    Nor does it autocast: the vjp rules follow the dtypes the forward chose."""

    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(False)
        self.autocast = autocast_suspended()
        self.autocast.__enter__()

    def __exit__(self, *exc):
        self.autocast.__exit__(*exc)
        set_grad_enabled(self.prev)


no_grad_unless_tracing = _no_grad_for_backward  # the name the first version used
