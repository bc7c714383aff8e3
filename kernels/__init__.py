"""Lowering stage (kernels/): schedule -> fuse -> Triton source -> disk cache -> launch.

Public entry points:
    lower(graph, mode="default" | "max-autotune" | "reduce-overhead", target=None) -> LoweredGraph
    LoweredGraph.kernels            -> [KernelInfo(name, source, path, node_lines, kind)]
    LoweredGraph(inputs, symbols)   -> [torch.Tensor]   (inputs: torch tensors, any strides;
                                       the first call per layout/sizes records a call plan that
                                       later calls replay: runtime/call_plan.py, runtime/cuda_graphs.py)
    cache_stats()                   -> {"compiled", "memory_hits", "disk_hits", ...}
    eager.run_op(opdef, tensors, attrs, out_type) -> torch.Tensor

Import this only with triton installed; under TRITON_INTERPRET=1 (set before triton is first
imported) the kernels run on CPU tensors in Triton's interpreter.
"""
from __future__ import annotations

from tritonflow.kernels.cache import stats as cache_stats
from tritonflow.kernels.lowering import KernelInfo, LoweredGraph, lower

__all__ = ["KernelInfo", "LoweredGraph", "cache_stats", "lower"]
