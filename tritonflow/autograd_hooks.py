"""The eager autograd engine's extension points: leaf hooks, staged gradients, end-of-backward callbacks.

Framework stage (used by tritonflow/autograd.py). Three small, general mechanisms, named after
PyTorch's, that data-parallel training builds on (tritonflow/nn/parallel):

- `register_post_accumulate_grad_hook(leaf, hook)`: `hook(leaf)` runs once per backward, after the
  last gradient for `leaf` in that backward has been accumulated into `leaf.grad`.
- `StagedGradients`: a FunctionNode's backward (a compiled backward) may hand its input gradients
  over in stages; the engine accumulates each stage and runs the hooks of the leaves it completed
  before asking for the next, so work started by a hook overlaps the rest of the backward.
- `queue_callback(fn)`: run `fn()` when the current backward pass has finished.

Hooks are kept in a table keyed by the tensor's id (Tensor's `==` is elementwise, so tensors cannot
be dictionary keys by value); a weak reference drops the entry when the tensor dies.
"""
from __future__ import annotations

import functools
import itertools
import threading
import weakref
from typing import Callable, Iterable

from tritonflow.errors import AutogradError

_hooks: dict[int, tuple] = {}        # id(tensor) -> (weakref to it, {hook id: hook})
_hook_ids = itertools.count()
_local = threading.local()


class RemovableHandle:
    """What registering a hook returns: `handle.remove()` unregisters it."""

    def __init__(self, key: int, hook_id: int) -> None:
        self._key = key
        self._hook_id = hook_id

    def remove(self) -> None:
        entry = _hooks.get(self._key)
        if entry is not None:
            entry[1].pop(self._hook_id, None)
            if not entry[1]:
                _hooks.pop(self._key, None)


def register_post_accumulate_grad_hook(tensor, hook: Callable) -> RemovableHandle:
    """Run `hook(tensor)` after each backward has accumulated its gradient into `tensor.grad`."""
    if not callable(hook):
        raise AutogradError(f"register_post_accumulate_grad_hook: expected a callable, got {type(hook).__name__}")
    if not tensor.requires_grad:
        raise AutogradError(f"register_post_accumulate_grad_hook: the tensor of shape {tuple(tensor.shape)} "
                            f"does not require grad, so it never accumulates one")
    if tensor._grad_fn is not None:
        raise AutogradError(f"register_post_accumulate_grad_hook: only leaf tensors accumulate gradients; this "
                            f"one (shape {tuple(tensor.shape)}) is the result of {tensor._grad_fn!r}")
    key = id(tensor)
    entry = _hooks.get(key)
    if entry is None or entry[0]() is not tensor:
        entry = (weakref.ref(tensor, functools.partial(_forget, _hooks, key)), {})
        _hooks[key] = entry
    hook_id = next(_hook_ids)
    entry[1][hook_id] = hook
    return RemovableHandle(key, hook_id)


def _forget(table: dict, key: int, ref) -> None:
    # `table` is bound when the reference is made: at interpreter exit module globals are gone.
    entry = table.get(key)
    if entry is not None and entry[0] is ref:
        del table[key]


def _hooks_of(tensor) -> list:
    entry = _hooks.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        return []
    return list(entry[1].values())


def has_hooks() -> bool:
    return bool(_hooks)


class StagedGradients:
    """A backward's input gradients handed over in stages: an iterable of lists of
    (input position, gradient or None). Each input appears in at most one stage; inputs that
    appear in none get no gradient. The iterable is consumed lazily, one stage at a time."""

    def __init__(self, stages: Iterable[list]) -> None:
        self._stages = stages

    def __iter__(self):
        return iter(self._stages)


class LeafHookSchedule:
    """When, in one backward's node order, each hooked leaf has received its last gradient.

    A leaf is complete once every edge of the last node that sends it a gradient has delivered
    (in a staged node: at the end of the stage that delivers it); a node that sends nothing still
    completes the leaves whose last node it is, once the engine has moved past it.
    """

    def __init__(self, order: list) -> None:
        self.last: dict[int, int] = {}          # id(leaf) -> index of its last node
        self.remaining: dict[int, int] = {}     # id(leaf) -> edges of that node still to deliver
        self.due: dict[int, list] = {}          # node index -> leaves whose last node it is
        hooked: dict[int, object] = {}
        for index, node in enumerate(order):
            for _, _, leaf in node.edges:
                if leaf is not None and (id(leaf) in hooked or _hooks_of(leaf)):
                    hooked[id(leaf)] = leaf
                    self.last[id(leaf)] = index
        for key, index in self.last.items():
            self.due.setdefault(index, []).append(hooked[key])
            self.remaining[key] = sum(1 for _, _, leaf in order[index].edges if leaf is hooked[key])
        self.received: dict[int, object] = {}
        self.fired: set[int] = set()
        self.ready: list = []

    def delivered(self, leaf, node_index: int | None) -> None:
        key = id(leaf)
        if key not in self.last and not _hooks_of(leaf):
            return
        self.received[key] = leaf
        if node_index is not None and self.last.get(key) == node_index:
            self.remaining[key] -= 1
            if self.remaining[key] == 0:
                self.ready.append(leaf)

    def fire_ready(self) -> None:
        ready, self.ready = self.ready, []
        for leaf in ready:
            self._fire(leaf)

    def sweep(self, node_index: int) -> None:
        """Past node `node_index`: its leaves that received anything are complete."""
        self.fire_ready()
        for leaf in self.due.get(node_index, ()):
            if id(leaf) in self.received:
                self._fire(leaf)

    def fire_unscheduled(self) -> None:
        """Roots that are hooked leaves no node sends gradients to: complete as soon as seeded."""
        for key, leaf in list(self.received.items()):
            if key not in self.last:
                self._fire(leaf)

    def _fire(self, leaf) -> None:
        if id(leaf) in self.fired:
            return
        self.fired.add(id(leaf))
        for hook in _hooks_of(leaf):
            hook(leaf)


def queue_callback(fn: Callable[[], None]) -> None:
    """Run `fn()` once the backward pass now running has finished (from a hook, during backward)."""
    stack = getattr(_local, "callbacks", None)
    if not stack:
        raise AutogradError("queue_callback: can only be called while a backward pass runs (from a hook)")
    stack[-1].append(fn)


def current_backward():
    """A token for the backward pass now running (the same object until it ends), or None."""
    stack = getattr(_local, "callbacks", None)
    return stack[-1] if stack else None


class backward_callbacks:
    """Context manager the engine runs one backward in: collects queue_callback()s and runs them,
    in order, when the backward finishes normally (a failed backward drops them)."""

    def __enter__(self) -> None:
        stack = getattr(_local, "callbacks", None)
        if stack is None:
            stack = _local.callbacks = []
        stack.append([])

    def __exit__(self, exc_type, *exc) -> None:
        pending = _local.callbacks[-1]
        try:
            if exc_type is None:
                while pending:  # a callback may queue another
                    pending.pop(0)()
        finally:
            _local.callbacks.pop()
