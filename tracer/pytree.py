"""Tracer stage: flatten nested tuples, lists and dicts of tensors into leaves and a hashable spec.

Non-tensor values stay in the spec (they are static: part of the cache key, compared by value).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tritonflow.tensor_class import Tensor

TENSOR = "T"


def flatten(obj: Any, leaves: list) -> Any:
    """Append the tensors of `obj` to `leaves`; return the structure spec (hashable)."""
    if isinstance(obj, Tensor):
        leaves.append(obj)
        return TENSOR
    if isinstance(obj, tuple):
        kind = type(obj)
        if kind is not tuple and hasattr(obj, "_fields"):
            return ("namedtuple", kind, tuple(flatten(o, leaves) for o in obj))
        return ("tuple", tuple(flatten(o, leaves) for o in obj))
    if isinstance(obj, list):
        return ("list", tuple(flatten(o, leaves) for o in obj))
    if isinstance(obj, dict):
        keys = tuple(obj.keys())
        return ("dict", keys, tuple(flatten(obj[k], leaves) for k in keys))
    return ("static", _static_key(obj))


def _static_key(value: Any) -> Any:
    if isinstance(value, np.ndarray):  # its repr is truncated: two arrays could share one cache key
        from tritonflow.errors import DTypeError
        raise DTypeError(f"jit: an argument is a numpy.ndarray of shape {value.shape}; jitted functions "
                         f"take tritonflow tensors (wrap it with tritonflow.from_numpy)")
    try:
        hash(value)
        return value
    except TypeError:
        return ("unhashable", type(value).__name__, repr(value))


def unflatten(spec: Any, leaves: list, position: list | None = None) -> Any:
    if position is None:
        position = [0]
    if spec == TENSOR:
        value = leaves[position[0]]
        position[0] += 1
        return value
    tag = spec[0]
    if tag == "tuple":
        return tuple(unflatten(s, leaves, position) for s in spec[1])
    if tag == "namedtuple":
        return spec[1](*[unflatten(s, leaves, position) for s in spec[2]])
    if tag == "list":
        return [unflatten(s, leaves, position) for s in spec[1]]
    if tag == "dict":
        return {k: unflatten(s, leaves, position) for k, s in zip(spec[1], spec[2])}
    value = spec[1]
    if isinstance(value, tuple) and value[:1] == ("unhashable",):
        from tritonflow.errors import TraceError
        raise TraceError(f"jit: a non-tensor value of type {value[1]} (unhashable) cannot pass through a "
                         f"jitted function's arguments or results; use tensors or hashable values")
    return value


def static_values(spec: Any) -> list:
    """The static (non-tensor) leaves of a spec, in order."""
    if spec == TENSOR:
        return []
    if spec[0] == "static":
        return [spec[1]]
    children = spec[-1]
    out = []
    for child in children:
        out.extend(static_values(child))
    return out
