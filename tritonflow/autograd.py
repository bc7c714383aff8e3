"""Eager reverse-mode autograd: a tape of GradNodes, run backward with the op table's vjp rules.

Framework stage. The vjp rules are written with tritonflow ops, so the same engine runs on
concrete tensors (eager) and on proxies (under tracing, recording the backward into the graph).
In-place ops rebind a tensor's storage instead of writing into it, so values saved for backward
are never corrupted.
"""
from __future__ import annotations

import threading

from tritonflow.errors import AutogradError

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class no_grad:
    """Context manager and decorator: ops inside record no gradient."""

    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(False)

    def __exit__(self, *exc):
        set_grad_enabled(self.prev)

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapper.__wrapped__ = fn
        return wrapper


class enable_grad(no_grad):
    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(True)


class GradNode:
    """How one output was made: the op, its attributes, saved inputs and output, and the edges back."""

    __slots__ = ("op", "attrs", "saved", "out", "edges", "vjp")

    def __init__(self, op, attrs: dict, inputs: list, out) -> None:
        self.op = op
        self.attrs = attrs
        self.vjp = op.vjp
        # Aliases share storage but not identity, so later in-place rebinding leaves them intact.
        self.saved = [t._alias() for t in inputs]
        self.out = out._alias()
        # Per input: (its GradNode, or the leaf tensor to accumulate into, or None).
        self.edges = [(t._grad_fn, t if (t.requires_grad and t._grad_fn is None) else None)
                      if t.requires_grad else (None, None) for t in inputs]

    def __repr__(self) -> str:
        return f"<GradNode {self.op.name if hasattr(self.op, 'name') else self.op}>"


class FunctionNode(GradNode):
    """A GradNode whose backward is a Python callable (used by compiled functions)."""

    def __init__(self, name: str, backward, inputs: list, out_aliases) -> None:  # noqa: D401
        self.op = name
        self.attrs = {}
        self.vjp = backward
        self.saved = []
        self.out = out_aliases
        self.edges = [(t._grad_fn, t if (t.requires_grad and t._grad_fn is None) else None)
                      if t.requires_grad else (None, None) for t in inputs]


def _toposort(root: GradNode) -> list:
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent, _ in node.edges:
            if parent is not None and id(parent) not in seen:
                stack.append((parent, False))
    return order[::-1]


def run_backward(tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) * grad into every leaf's `.grad`."""
    import tritonflow.api as T
    from tritonflow.ops.movement import sum_to_shape

    if not tensor.requires_grad:
        raise AutogradError("backward: the tensor does not require grad and has no grad_fn "
                            "(did you call it under no_grad, or on a detached tensor?)")
    if grad is None:
        if tensor.numel() != 1:
            raise AutogradError(f"backward: grad can be implicitly created only for scalar outputs; "
                                f"got shape {tuple(tensor.shape)}, pass a gradient argument")
        grad = T.ones_like(tensor)
    elif not hasattr(grad, "_node"):
        grad = T.tensor(grad, dtype=tensor.dtype, device=tensor.device)
    if tuple(grad.shape) != tuple(tensor.shape):
        raise AutogradError(f"backward: gradient shape {tuple(grad.shape)} does not match the tensor's "
                            f"shape {tuple(tensor.shape)}")
    root = tensor._grad_fn
    if root is None:  # a leaf
        _accumulate(tensor, grad)
        return
    grads = {id(root): grad}
    with no_grad_unless_tracing():
        for node in _toposort(root):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if isinstance(node, FunctionNode):
                input_grads = node.vjp(g)
            else:
                input_grads = node.vjp(g, node.out, *node.saved, **node.attrs)
            for (parent, leaf), saved, gi in zip(node.edges, node.saved or [None] * len(node.edges),
                                                 input_grads):
                if gi is None or (parent is None and leaf is None):
                    continue
                target = saved if saved is not None else leaf
                if target is not None:
                    if tuple(gi.shape) != tuple(target.shape):
                        gi = sum_to_shape(gi, target.shape)
                    if gi.dtype is not target.dtype and target.dtype.is_floating_point:
                        gi = T.cast(gi, target.dtype)
                if leaf is not None:
                    _accumulate(leaf, gi)
                elif parent is not None:
                    prev = grads.get(id(parent))
                    grads[id(parent)] = gi if prev is None else prev + gi
            if not retain_graph and not isinstance(node, FunctionNode):
                pass


def _accumulate(leaf, g) -> None:
    g = g.detach()
    leaf.grad = g if leaf.grad is None else (leaf.grad + g).detach()


class no_grad_unless_tracing:
    """Backward itself records no tape (no higher-order gradients); tracing still records ops."""

    def __enter__(self):
        self.prev = is_grad_enabled()
        set_grad_enabled(False)

    def __exit__(self, *exc):
        set_grad_enabled(self.prev)
