"""Tracer stage: binding a compiled entry's captured state at a call, and the guards that decide it.

At every call, each captured tensor is found again: along its path from the function's globals
(`model.0.weight`; the path must still lead to the very object traced, else a captured name was
rebound), as the gradient of its owner (`model.0.weight.grad`), or as the object itself when no
path to it was found. Then its shape, dtype, device and requires_grad must be those traced; a
gradient the trace read before writing must still be absent or present as it was; the Python
values the trace depended on (training flags, an optimizer's flags) must be unchanged. The first
guard that fails is the reason the function retraces. A captured tensor that can no longer be
found, or that is another object now, makes the entry stale: jit replaces it rather than keeping
it beside the new one (the old object is gone for good), as it does for rebound globals.
"""
from __future__ import annotations

from tritonflow.tracer import leaf

_MISSING = object()


def _shown(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


class CapturedBinding:
    """The per-call side of a trace's CaptureSummary: `bind(leaves)` -> (objects, None, False), or
    (None, why not, whether the entry is stale)."""

    def __init__(self, summary) -> None:
        self.summary = summary
        self.outside = summary.outside
        self.grad_guards = [(owner, initial) for owner, initial in summary.grad_guards if initial is None]
        self.value_guards = summary.value_guards
        self.empty = not (self.outside or self.value_guards)

    def _owner(self, owner: tuple, leaves: list, objects: list):
        kind, index = owner
        return leaves[index] if kind == "arg" else objects[index]

    def _owner_name(self, owner: tuple, arg_names: list) -> str:
        kind, index = owner
        if kind == "arg":
            return arg_names[index] if index < len(arg_names) else f"argument {index}"
        return self.outside[index].name

    def bind(self, leaves: list, arg_names: list = ()):
        """The outside tensors for this call in order, or why the entry does not apply."""
        if self.empty:
            return [], None, False
        objects = []
        for entry in self.outside:
            if entry.grad_of is not None:
                obj = leaf.raw_grad(self._owner(entry.grad_of, leaves, objects))
                if obj is None:
                    return None, f"{entry.name} is None now (it held a tensor when traced)", False
            elif entry.source is not None:
                obj = entry.source.resolve(_MISSING)
                if obj is not entry.tensor:
                    if obj is _MISSING:
                        return None, f"captured {entry.name} can no longer be found (a name or key on its path is gone)", True
                    return None, f"captured {entry.name} is now a different {type(obj).__name__} object (rebound)", True
            else:
                obj = entry.tensor
            shape, dtype, device, requires_grad = entry.key
            if obj.shape != shape or obj.dtype is not dtype or obj.device != device or \
                    bool(obj.requires_grad) is not requires_grad:
                return None, self._changed(entry, obj), False
            objects.append(obj)
        for owner, _ in self.grad_guards:
            if leaf.raw_grad(self._owner(owner, leaves, objects)) is not None:
                return None, f"{self._owner_name(owner, arg_names)}.grad is a tensor now (it was None when traced)", False
        for guard in self.value_guards:
            now = guard.read()
            if now != guard.expected:
                if not guard.show:
                    return None, f"{guard.what} changed", False
                return None, f"{guard.what} changed from {guard.expected!r} to {now!r}", False
        return objects, None, False

    @staticmethod
    def _changed(entry, obj) -> str:
        shape, dtype, device, requires_grad = entry.key
        if obj.shape != shape:
            return f"captured {entry.name}: shape changed from {_shown(shape)} to {_shown(obj.shape)}"
        if obj.dtype is not dtype:
            return f"captured {entry.name}: dtype changed from {dtype.name} to {obj.dtype.name}"
        if obj.device != device:
            return f"captured {entry.name}: device changed from {device} to {obj.device}"
        return f"captured {entry.name}: requires_grad changed from {requires_grad} to {bool(obj.requires_grad)}"

    def describe(self, arg_names: list = ()) -> list[str]:
        """Plain-language guard lines for explain()."""
        lines = []
        for entry in self.outside:
            shape, dtype, device, requires_grad = entry.key
            if entry.grad_of is not None:
                how = "present"
            elif entry.source is not None:
                how = "the same tensor object as when traced"
            else:
                how = "held by reference"
            used = "read at each call" if entry.node is not None else "its gradient only"
            lines.append(f"captured %{entry.name}: {how} ({used}), shape {_shown(shape)}, dtype {dtype.name}, "
                         f"device {device}, requires_grad={requires_grad}")
        for owner, _ in self.grad_guards:
            lines.append(f"{self._owner_name(owner, arg_names)}.grad is None")
        for guard in self.value_guards:
            lines.append(f"{guard.what} == {guard.expected!r}" if guard.show else f"{guard.what} unchanged")
        return lines
