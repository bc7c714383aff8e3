"""`tritonflow.save` / `tritonflow.load`: state dicts in the safetensors format, never pickle.

Framework stage. Tensors are written with safetensors' NumPy API (bfloat16 through ml_dtypes, so
it round-trips bit for bit). Nested containers (an optimizer's state dict) are flattened to
"/"-joined keys; the nesting and any plain Python values (numbers, strings, bools, None) are kept
as JSON in the file's metadata. Loading never executes code from the file.
"""
from __future__ import annotations

import json
import os

import numpy as np

from tritonflow.errors import DTypeError, TritonflowError

_META_KEY = "tritonflow.structure"
_FORMAT = 1


class SerializationError(TritonflowError, ValueError):
    """A value that cannot be saved, or a file that is not a tritonflow/safetensors checkpoint."""


def _encode(obj, prefix: str, tensors: dict):
    from tritonflow.tensor_class import Tensor
    if isinstance(obj, Tensor):
        if obj._node is not None:
            raise SerializationError(f"save: {prefix or 'the value'} is a traced tensor (inside jit); "
                                     f"save concrete tensors outside the compiled function")
        key = prefix or "tensor"
        tensors[key] = np.array(obj.detach().numpy(), order="C", copy=True)  # keeps 0-d (ascontiguousarray would not)
        return {"__tensor__": key}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise SerializationError(f"save: dict keys must be str or int, got {type(k).__name__} at {prefix!r}")
            out[str(k)] = _encode(v, f"{prefix}/{k}" if prefix else str(k), tensors)
        keys_int = [isinstance(k, int) for k in obj]
        return {"__dict__": out, "__int_keys__": all(keys_int) and bool(keys_int)}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, f"{prefix}/{i}" if prefix else str(i), tensors) for i, v in enumerate(obj)]
        return {"__tuple__" if isinstance(obj, tuple) else "__list__": items}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"__value__": obj}
    if isinstance(obj, np.generic):
        return {"__value__": obj.item()}
    raise SerializationError(f"save: cannot save a {type(obj).__name__} at {prefix or 'the top level'!r} "
                             f"(only tensors, dicts, lists, tuples, numbers, strings, bools and None)")


def _decode(spec, tensors: dict, device: str):
    from tritonflow.api.convert import from_numpy, to
    if "__tensor__" in spec:
        t = from_numpy(tensors[spec["__tensor__"]])
        return to(t, device) if device != "cpu" else t
    if "__dict__" in spec:
        items = {k: _decode(v, tensors, device) for k, v in spec["__dict__"].items()}
        if spec.get("__int_keys__"):
            items = {int(k): v for k, v in items.items()}
        return items
    if "__list__" in spec:
        return [_decode(v, tensors, device) for v in spec["__list__"]]
    if "__tuple__" in spec:
        return tuple(_decode(v, tensors, device) for v in spec["__tuple__"])
    return spec["__value__"]


def save(obj, path) -> None:
    """Write a tensor, or a (nested) dict/list of tensors and plain values, to `path` (safetensors)."""
    from safetensors.numpy import save_file
    tensors: dict = {}
    structure = _encode(obj, "", tensors)
    metadata = {_META_KEY: json.dumps({"format": _FORMAT, "root": structure})}
    save_file(tensors, os.fspath(path), metadata=metadata)


def load(path, map_location: str = "cpu", device: str | None = None):
    """Read what `save` wrote (or any safetensors file: a flat dict of tensors)."""
    from safetensors import safe_open
    from safetensors.numpy import load_file
    path = os.fspath(path)
    device = device or map_location or "cpu"
    try:
        tensors = load_file(path)
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
    except (OSError, ValueError, Exception) as exc:  # safetensors raises its own error types
        if isinstance(exc, FileNotFoundError):
            raise
        raise SerializationError(f"load: {path!r} is not a readable safetensors file ({exc})") from exc
    if _META_KEY not in metadata:
        from tritonflow.api.convert import from_numpy, to
        return {k: (to(from_numpy(v), device) if device != "cpu" else from_numpy(v)) for k, v in tensors.items()}
    info = json.loads(metadata[_META_KEY])
    if info.get("format") != _FORMAT:
        raise SerializationError(f"load: {path!r} was written by an unknown tritonflow format {info.get('format')}")
    try:
        return _decode(info["root"], tensors, device)
    except KeyError as exc:
        raise DTypeError(f"load: {path!r} names tensor {exc} in its structure but does not contain it") from None
