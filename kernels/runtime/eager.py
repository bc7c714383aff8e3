"""Lowering stage: eager CUDA ops — one primitive as a one-op graph through the same lowering.

`run_op` builds (and caches, keyed by op, attributes and input types) a one-node graph and
runs its LoweredGraph, so eager and compiled code share one code generator and one kernel cache.
Torch only holds memory and launches: no torch compute op touches the data.
"""
from __future__ import annotations

import threading

import numpy as np

from tritonflow.kernels.lowering import LoweredGraph
from tritonflow.ir.graph import Graph
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import OpDef, attrs_key

_graphs: dict = {}
_lock = threading.Lock()


def _dtype_of(tensor):
    from tritonflow import dtypes as D
    return D.as_dtype(tensor.dtype)


def _attr_key(attrs: dict):
    try:
        key = attrs_key(attrs)
        hash(key)
        return key
    except TypeError:
        return repr(sorted((k, repr(v)) for k, v in attrs.items()))


def run_op(opdef: OpDef, input_tensors: list, attrs: dict, out_type: TensorType):
    """Run one primitive on torch tensors (CUDA, or CPU under TRITON_INTERPRET=1)."""
    in_types = tuple(TensorType(tuple(t.shape), _dtype_of(t)) for t in input_tensors)
    key = (opdef.name, _attr_key(attrs), tuple(str(t) for t in in_types), str(out_type))
    lowered = _graphs.get(key)
    if lowered is None:
        with _lock:
            lowered = _graphs.get(key)
            if lowered is None:
                graph = Graph(f"eager_{opdef.name}")
                inputs = [graph.add_input(f"in{i}", t) for i, t in enumerate(in_types)]
                node = graph.add(opdef.name, inputs, dict(attrs), out_type)
                graph.outputs = [node]
                lowered = LoweredGraph(graph)
                _graphs[key] = lowered
    device = input_tensors[0].device if input_tensors else None
    (out,) = lowered(list(input_tensors), {}, device=device)
    return out


__all__ = ["run_op", "np"]
