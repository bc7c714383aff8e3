"""Tracer stage: where the tensors a function reaches from outside live — named paths from its globals.

Before a trace, `find_sources(fn)` walks breadth-first from what the function's code names (its
globals, closure cells, the `self` of a bound method, and the same for the functions it names)
through containers: lists, tuples, dicts, plain objects' public attributes, and the framework
objects that registered how to list their state (`register_container`: a Module's parameters,
buffers and submodules; an optimizer's state and hyperparameters). Each tensor and object found
gets the shortest path to it, so a captured input can be named after what it is
(`model.0.weight`, `opt.state.0.exp_avg`) and found again at every call: a path that no longer
leads to the same object means a captured name was rebound, and the function retraces.
"""
from __future__ import annotations

import keyword
import types
from collections import deque
from typing import Any, Callable

from tritonflow.tracer import leaf

MAX_OBJECTS = 20_000       # a walk stops after visiting this many objects
MAX_DEPTH = 12

ATTR, ITEM = 0, 1          # a step reads getattr(obj, key) or obj[key]

_SCALARS = (bool, int, float, complex, str, bytes, type(None), range, slice)
_OPAQUE = (types.ModuleType, type, types.BuiltinFunctionType, types.CodeType, types.FrameType,
           types.GeneratorType, property, staticmethod, classmethod)
_containers: list = []     # (class, children(obj) -> [(display, steps, child, low_priority)])


def register_container(cls: type, children: Callable[[Any], list]) -> None:
    """Objects of `cls` list their state with `children(obj)`: (display part, steps, child, low
    priority) per child, where steps is a tuple of (ATTR or ITEM, key) leading from obj to child."""
    _containers.insert(0, (cls, children))


class Source:
    """A path from a root (a globals dict, a closure cell, or an object held) to one object."""

    __slots__ = ("root_kind", "holder", "key", "steps", "display", "_read")

    def __init__(self, root_kind: str, holder, key, steps: tuple, display: str) -> None:
        self.root_kind = root_kind   # "global" (holder[key]), "cell" (holder.cell_contents), "object" (holder)
        self.holder = holder
        self.key = key
        self.steps = steps
        self.display = display
        self._read = None

    def resolve(self, missing=None):
        """The object the path leads to now, or `missing` when a step fails."""
        if self._read is None:
            self._read = self._compile()
        try:
            return self._read()
        except (KeyError, IndexError, AttributeError, TypeError, ValueError):
            return missing

    def _compile(self):
        """The path as one Python expression (it is evaluated at every call of a jitted function)."""
        namespace = {"holder": self.holder, "root_key": self.key}
        text = {"global": "holder[root_key]", "cell": "holder.cell_contents", "object": "holder"}[self.root_kind]
        for position, (how, key) in enumerate(self.steps):
            if how == ATTR and isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key):
                text += f".{key}"
            else:
                namespace[f"k{position}"] = key
                text = f"getattr({text}, k{position})" if how == ATTR else f"{text}[k{position}]"
        return eval(f"lambda: {text}", namespace)  # noqa: S307 - built from attribute names and held keys

    def extend(self, steps: tuple, display: str) -> "Source":
        return Source(self.root_kind, self.holder, self.key, self.steps + steps, display)

    def __repr__(self) -> str:
        return f"Source({self.display})"


def _join(prefix: str, part: str) -> str:
    if not part:
        return prefix
    return f"{prefix}.{part}" if prefix else part


def _roots(fn) -> list:
    """(Source of a root object, the object) for what `fn` and the functions it names read from outside."""
    roots, seen_code, seen_names = [], set(), set()
    pending = [fn]
    while pending:
        f = pending.pop(0)
        self_obj = getattr(f, "__self__", None)
        if isinstance(f, types.MethodType) and self_obj is not None:
            roots.append((Source("object", self_obj, None, (), "self"), self_obj))
            f = f.__func__
        wrapped = getattr(f, "fn", None)      # a jitted function: what it wraps
        if not isinstance(f, types.FunctionType) and callable(wrapped):
            pending.append(wrapped)
            continue
        code = getattr(f, "__code__", None)
        if code is None or id(code) in seen_code:
            continue
        seen_code.add(id(code))
        namespace = getattr(f, "__globals__", {})
        codes = [code]
        while codes:
            c = codes.pop()
            codes.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
            for name in c.co_names:
                if (id(namespace), name) in seen_names or name not in namespace:
                    continue
                seen_names.add((id(namespace), name))
                value = namespace[name]
                if isinstance(value, types.FunctionType):
                    pending.append(value)
                elif not isinstance(value, _OPAQUE + _SCALARS):
                    roots.append((Source("global", namespace, name, (), name), value))
        for name, cell in zip(code.co_freevars, f.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if isinstance(value, types.FunctionType):
                pending.append(value)
            elif not isinstance(value, _OPAQUE + _SCALARS):
                roots.append((Source("cell", cell, name, (), name), value))
    return roots


def _children(obj) -> list:
    for cls, children in _containers:
        if isinstance(obj, cls):
            return children(obj)
    if isinstance(obj, (list, tuple)):
        return [(str(i), ((ITEM, i),), v, False) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return [(str(k), ((ITEM, k),), v, False) for k, v in obj.items() if isinstance(k, (str, int))]
    if type(obj).__module__.startswith("tritonflow"):
        return []      # framework objects are opaque unless they registered their state
    attributes = getattr(obj, "__dict__", None)
    if not isinstance(attributes, dict):
        return []
    return [(k, ((ATTR, k),), v, False) for k, v in attributes.items() if not k.startswith("_")]


def public_attributes(obj) -> list:
    """The default children of a plain object: its public attributes (containers may add these)."""
    return [(k, ((ATTR, k),), v, False) for k, v in vars(obj).items() if not k.startswith("_")]


def find_sources(fn) -> dict:
    """{id(object): Source} for every tensor and container reachable from `fn` (module docstring)."""
    found: dict = {}
    queue: deque = deque()
    later: deque = deque()      # low-priority children (an optimizer's parameter lists)
    for source, value in _roots(fn):
        queue.append((source, value, 0))
    visited = 0
    while (queue or later) and visited < MAX_OBJECTS:
        source, obj, depth = queue.popleft() if queue else later.popleft()
        if id(obj) in found or isinstance(obj, _SCALARS + _OPAQUE) or callable(obj) and \
                isinstance(obj, (types.FunctionType, types.MethodType)):
            continue
        found[id(obj)] = (source, obj)
        visited += 1
        if leaf.is_tensor(obj) or depth >= MAX_DEPTH:
            continue
        try:
            children = _children(obj)
        except Exception:  # noqa: BLE001 - a user object whose attributes cannot be listed is skipped
            continue
        for display, steps, child, low in children:
            if id(child) in found or isinstance(child, _SCALARS + _OPAQUE):
                continue
            (later if low else queue).append((source.extend(steps, _join(source.display, display)), child,
                                              depth + 1))
    return {key: source for key, (source, _) in found.items()}
