"""Tracer stage: guards — what must stay the same for a compiled graph to be reused.

A key holds the argument structure with static values, and for each tensor its shape (or its
symbolic form with dynamic=True), dtype, device and requires_grad. `describe_change` turns two
keys into the plain-language reason for a recompile.
"""
from __future__ import annotations

import sympy

from tritonflow.tracer import leaf


def tensor_keys(leaves: list, dynamic: bool) -> tuple:
    """Per tensor: (shape key, dtype name, device, requires_grad)."""
    if not dynamic:
        return tuple([(t._shape, t.dtype.name, t.device, t.requires_grad) for t in leaves])
    # Duck sizing: equal leading sizes share one symbol. 0 and 1 stay static (broadcast
    # semantics), and so does a leading size that also appears at a non-leading position of any
    # argument: a weight's (in, out) or a batch equal to a feature size must match static dims
    # exactly (x @ w needs x's last dim == w's first), so making it a symbol would break the trace.
    # Parameters keep static shapes, as in PyTorch: a weight's rows are not a batch, and slicing
    # them (q, k, v out of one projection) needs concrete sizes (tracer/leaf.py).
    inner_sizes = set()
    for t in leaves:
        inner_sizes.update(t._shape[1:])
    symbol_of: dict[int, int] = {}
    keys = []
    for t in leaves:
        shape = t._shape
        if shape and shape[0] not in (0, 1) and shape[0] not in inner_sizes and not leaf.has_static_shape(t):
            sym = symbol_of.setdefault(shape[0], len(symbol_of))
            shape_key = (("sym", sym),) + tuple(shape[1:])
        else:
            shape_key = tuple(shape)
        keys.append((shape_key, t.dtype.name, t.device, t.requires_grad))
    return tuple(keys)


def symbolic_shape(shape_key: tuple) -> tuple:
    return tuple(sympy.Symbol(f"s{d[1]}", integer=True, positive=True) if isinstance(d, tuple) else d
                 for d in shape_key)


def describe_guards(spec, keys, dynamic: bool) -> list[str]:
    from tritonflow.tracer.pytree import static_values
    lines = []
    for i, (shape, dtype, device, rg) in enumerate(keys):
        shown = ", ".join(f"s{d[1]}" if isinstance(d, tuple) else str(d) for d in shape)
        lines.append(f"tensor argument {i}: shape ({shown}), dtype {dtype}, device {device}, "
                     f"requires_grad={rg}")
    for value in static_values(spec):
        lines.append(f"static argument equal to {value!r}")
    if dynamic:
        lines.append("leading dims marked s0, s1, ... may change without recompiling")
    return lines


def _same_skeleton(a, b) -> bool:
    """Whether two specs nest alike with tensors in the same places (statics may differ)."""
    if a == "T" or b == "T":
        return a == b
    if a[0] != b[0]:
        return False
    if a[0] == "static":
        return True
    if a[:-1] != b[:-1] or len(a[-1]) != len(b[-1]):
        return False
    return all(_same_skeleton(x, y) for x, y in zip(a[-1], b[-1]))


def describe_change(old, new) -> str:
    """Why `new` missed the cache entry made for `old` (both (spec, tensor_keys, extra))."""
    old_spec, old_keys = old[0], old[1]
    new_spec, new_keys = new[0], new[1]
    if old_spec != new_spec:
        from tritonflow.tracer.pytree import static_keys
        a, b = static_keys(old_spec), static_keys(new_spec)
        if len(a) == len(b) and _same_skeleton(old_spec, new_spec):
            for i, ((ta, x), (tb, y)) in enumerate(zip(a, b)):
                if ta is not tb:
                    return (f"static argument {i} changed from {x!r} ({ta.__name__}) "
                            f"to {y!r} ({tb.__name__})")
                if x != y:
                    return f"static argument {i} changed from {x!r} to {y!r}"
        return "the structure of the arguments changed (a different nesting or number of tensors)"
    names = ("shape", "dtype", "device", "requires_grad")
    for i, (ka, kb) in enumerate(zip(old_keys, new_keys)):
        for name, va, vb in zip(names, ka, kb):
            if va != vb:
                return f"tensor argument {i}: {name} changed from {va} to {vb}"
    if len(old) > 2 and old[2:] != new[2:]:
        return f"global state changed from {old[2:]} to {new[2:]}"
    return "unknown change"


# ---------------------------------------------------------------- globals and closure variables

_BY_VALUE = (bool, int, float, complex, str, type(None))
_MISSING = object()


def free_value_guards(fn) -> tuple:
    """The globals and closure variables `fn`'s own code reads, with the values they hold now.

    A trace bakes a Python number read from a global into the graph, and reads a global tensor
    through the object the name held: rebinding either name afterwards must retrace, not silently
    reuse the old value. Only names in `fn`'s code (and the lambdas and comprehensions inside it)
    are covered, not those of the functions it calls. Module objects (`np`, `tf`) are skipped.
    Each guard: (dict of globals or closure cell, name, value at trace time).
    """
    fn = getattr(fn, "__func__", fn)  # a bound method: its function
    code = getattr(fn, "__code__", None)
    if code is None:
        return ()
    import types
    guards = []
    namespace = getattr(fn, "__globals__", {})
    seen: set = set()
    pending = [code]
    while pending:
        current = pending.pop()
        pending.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        for name in current.co_names:
            value = namespace.get(name, _MISSING)
            if name in seen or value is _MISSING or isinstance(value, types.ModuleType):
                continue
            seen.add(name)
            guards.append((namespace, name, value))
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # not assigned yet
            continue
        if not isinstance(value, types.ModuleType):
            guards.append((cell, name, value))
    return tuple(guards)


def changed_free_value(guards: tuple):
    """None while every guarded name holds what it held at trace time, else the reason it does not."""
    for holder, name, value in guards:
        if type(holder) is dict:
            now = holder.get(name, _MISSING)
        else:
            try:
                now = holder.cell_contents
            except ValueError:
                now = _MISSING
        if now is value:
            continue
        if type(value) in _BY_VALUE and type(now) is type(value) and (now == value or now != now and value != value):
            continue  # an equal number or string: the graph baked in the same constant
        kind = "global" if type(holder) is dict else "closure variable"
        if now is _MISSING:
            return f"{kind} {name!r} was deleted"
        if type(value) in _BY_VALUE:
            return f"{kind} {name!r} changed from {value!r} to {now!r}"
        if type(now) is type(value):
            return f"{kind} {name!r} now holds a different {type(now).__name__} object"
        return f"{kind} {name!r} now holds a {type(now).__name__} (was a {type(value).__name__})"
    return None


def describe_free_value_guards(guards: tuple) -> list[str]:
    """Plain-language lines for explain(): the numbers, strings and tensors guarded (not functions)."""
    lines = []
    for holder, name, value in guards:
        kind = "global" if type(holder) is dict else "closure variable"
        if type(value) in _BY_VALUE:
            lines.append(f"{kind} {name!r} equal to {value!r}")
        elif leaf.is_tensor(value):
            lines.append(f"{kind} {name!r} is the same tensor object (its values are read at each call)")
    return lines
