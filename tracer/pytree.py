"""Tracer stage: flatten nested tuples, lists and dicts of tensors into leaves and a hashable spec.

Non-tensor values stay in the spec: they are static, part of the cache key, compared by type and
value (so `f(x, 1)`, `f(x, 1.0)` and `f(x, True)` are three specializations: they trace
differently, `int_tensor * 1.0` is float32). An unhashable static value is keyed by its type and
repr and passed to the function as the object itself. What a function returns is flattened the
same way (`flatten_output`), except that its non-tensor values are kept as they are: a NumPy
array or a Python number computed while tracing is returned at every call (an array as a copy).
"""
from __future__ import annotations

import types
from typing import Any

import numpy as np

from tritonflow.tracer import leaf

TENSOR = "T"


class Opaque:
    """An unhashable static value: keyed by (type, repr), carrying the object itself."""

    __slots__ = ("value", "key")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.key = (type(value).__qualname__, repr(value))

    def __eq__(self, other) -> bool:
        return isinstance(other, Opaque) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return self.key[1]


class Returned:
    """A non-tensor value a traced function returned: handed back at every call (arrays copied)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value.copy() if isinstance(self.value, np.ndarray) else self.value


def flatten(obj: Any, leaves: list, output: bool = False) -> Any:
    """Append the tensors of `obj` to `leaves`; return the structure spec (hashable unless `output`)."""
    kind = type(obj)
    tensor_type = leaf.tensor_type
    if kind is tensor_type or isinstance(obj, tensor_type):
        leaves.append(obj)
        return TENSOR
    if kind is tuple:
        return ("tuple", tuple([flatten(o, leaves, output) for o in obj]))
    if kind is list:
        return ("list", tuple([flatten(o, leaves, output) for o in obj]))
    if kind is dict:
        keys = tuple(obj)
        return ("dict", keys, tuple([flatten(obj[k], leaves, output) for k in keys]))
    if isinstance(obj, tuple):
        if hasattr(obj, "_fields"):
            return ("namedtuple", kind, tuple([flatten(o, leaves, output) for o in obj]))
        return ("tuple", tuple([flatten(o, leaves, output) for o in obj]))
    if isinstance(obj, list):
        return ("list", tuple([flatten(o, leaves, output) for o in obj]))
    if isinstance(obj, dict):
        keys = tuple(obj)
        return ("dict", keys, tuple([flatten(obj[k], leaves, output) for k in keys]))
    if hasattr(kind, "__tritonflow_flatten__"):
        # Framework objects (nn.Module, optim.Optimizer) passed to jit: their tensors are leaves.
        children, aux = obj.__tritonflow_flatten__()
        return ("node", kind, aux, (flatten(children, leaves, output),))
    if output:
        return ("static", kind, _returned(obj))
    return ("static", kind, _static_key(obj))


def flatten_output(obj: Any, leaves: list) -> Any:
    """`flatten` for what a traced function returns (see the module docstring)."""
    return flatten(obj, leaves, output=True)


def _returned(value: Any) -> Returned:
    from tritonflow.errors import UnsupportedError
    inner = _tensors_inside(value)
    if inner:
        raise UnsupportedError(f"jit: the function returned a {type(value).__name__} holding {inner}; a "
                               f"jitted function returns tensors in tuples, lists, dicts or namedtuples, "
                               f"and NumPy arrays or Python values as they are")
    if isinstance(value, np.ndarray) and value.dtype == object:
        raise UnsupportedError(f"jit: the function returned a NumPy array of Python objects (shape "
                               f"{value.shape}); return a numeric array or tensors")
    if isinstance(value, types.GeneratorType):
        raise UnsupportedError("jit: the function returned a generator, which would run once, while "
                               "tracing; return a list or a tuple")
    return Returned(value)


def _tensors_inside(value: Any) -> str:
    """'a tensor (field name)' when a returned object keeps tensors where jit cannot reach them."""
    if isinstance(value, (set, frozenset)):
        fields = [("an element", v) for v in value]
    elif isinstance(value, np.ndarray) and value.dtype == object:
        fields = [("an element", v) for v in value.reshape(-1)]
    else:
        attributes = getattr(value, "__dict__", None)
        fields = list(attributes.items()) if isinstance(attributes, dict) else []
        fields += [(k, getattr(value, k)) for k in getattr(type(value), "__slots__", ()) if hasattr(value, k)]
    for name, field in fields:
        if leaf.is_tensor(field):
            return f"a tensor ({name})"
    return ""


def _static_key(value: Any) -> Any:
    if isinstance(value, np.ndarray):  # its repr is truncated: two arrays could share one cache key
        from tritonflow.errors import DTypeError
        raise DTypeError(f"jit: an argument is a numpy.ndarray of shape {value.shape}; jitted functions "
                         f"take tritonflow tensors (wrap it with tritonflow.from_numpy)")
    try:
        hash(value)
        return value
    except TypeError:
        return Opaque(value)


def unflatten(spec: Any, leaves: list, position: list | None = None) -> Any:
    """Rebuild the structure of `spec`, taking tensors from `leaves` in order."""
    if position is None:
        position = [0]
    if spec == TENSOR:
        value = leaves[position[0]]
        position[0] += 1
        return value
    tag = spec[0]
    if tag == "tuple":
        return tuple([unflatten(s, leaves, position) for s in spec[1]])
    if tag == "namedtuple":
        return spec[1](*[unflatten(s, leaves, position) for s in spec[2]])
    if tag == "list":
        return [unflatten(s, leaves, position) for s in spec[1]]
    if tag == "dict":
        return {k: unflatten(s, leaves, position) for k, s in zip(spec[1], spec[2])}
    if tag == "node":
        return spec[1].__tritonflow_unflatten__(spec[2], unflatten(spec[3][0], leaves, position))
    value = spec[2]
    if isinstance(value, Returned):
        return value.get()
    return value.value if isinstance(value, Opaque) else value


def static_values(spec: Any) -> list:
    """The static (non-tensor) leaves of a spec, in order."""
    if spec == TENSOR:
        return []
    if spec[0] == "static":
        value = spec[2]
        return [value.value if isinstance(value, Opaque) else value]
    children = spec[-1]
    out = []
    for child in children:
        out.extend(static_values(child))
    return out


def static_keys(spec: Any) -> list:
    """(type, key) of each static leaf, in order: what the cache compares."""
    if spec == TENSOR:
        return []
    if spec[0] == "static":
        return [(spec[1], spec[2])]
    out = []
    for child in spec[-1]:
        out.extend(static_keys(child))
    return out
