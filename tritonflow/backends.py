"""Framework stage: the backends a compiled graph runs on — `numpy` (the interpreter) and `triton`.

A backend turns a final graph into a runner: `runner(arrays) -> arrays`, where arrays are NumPy
arrays for CPU tensors and torch tensors for CUDA tensors. The triton backend on CPU tensors runs
generated kernels under Triton's interpreter, which must be switched on before triton is imported.
"""
from __future__ import annotations

import os
import sys

from tritonflow.errors import UnsupportedError
from tritonflow.interpreter import bind_symbols, run_graph
from tritonflow.ir.graph import Graph

BACKENDS = ("numpy", "triton")


def check_backend(name: str | None) -> None:
    if name is not None and name not in BACKENDS:
        raise UnsupportedError(f"jit: unknown backend {name!r} (choose from {', '.join(BACKENDS)})")


def triton_interpreter_ready() -> None:
    """Raise a clear error unless CPU tensors can run Triton kernels here."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        hint = ("set TRITON_INTERPRET=1 in the environment before triton is first imported "
                "(for example `TRITON_INTERPRET=1 python your_script.py`)")
        if "triton" in sys.modules:
            hint += "; triton is already imported in this process, so restart it with the variable set"
        raise UnsupportedError(f"backend='triton' on CPU tensors runs kernels in Triton's interpreter: {hint}")
    try:
        import triton  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise UnsupportedError(f"backend='triton' needs triton and torch installed: pip install "
                               f"'tritonflow[gpu]' ({exc})") from exc


class NumpyRunner:
    kernels: list = []

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.symbolic = any(not isinstance(d, int) for n in graph.inputs for d in n.type.shape)

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        if device != "cpu":
            from tritonflow.storage import numpy_to_torch, torch_to_numpy
            outs = run_graph(self.graph, [torch_to_numpy(a) for a in arrays])
            return [numpy_to_torch(o, "cuda") for o in outs]
        bindings = bind_symbols(self.graph, arrays) if self.symbolic else {}
        return run_graph(self.graph, arrays, bindings)


class TritonRunner:
    def __init__(self, graph: Graph, mode: str = "default") -> None:
        import kernels
        self.graph = graph
        self.lowered = kernels.lower(graph, mode=mode)
        self.kernels = self.lowered.kernels
        self.symbolic = any(not isinstance(d, int) for n in graph.inputs for d in n.type.shape)

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        symbols = {}
        if self.symbolic:
            shapes = [_shape_of(a) for a in arrays]
            symbols = {str(k): v for k, v in bind_symbols(self.graph, [_Shaped(s) for s in shapes]).items()}
        if device == "cpu":
            from tritonflow.storage import numpy_to_torch, torch_to_numpy
            outs = self.lowered([numpy_to_torch(a) for a in arrays], symbols)
            return [torch_to_numpy(o) for o in outs]
        return self.lowered(list(arrays), symbols)


class _Shaped:
    __slots__ = ("shape",)

    def __init__(self, shape) -> None:
        self.shape = shape


def _shape_of(a) -> tuple:
    return tuple(a.shape)


def make_runner(graph: Graph, backend: str, device: str, mode: str = "default"):
    if backend == "numpy":
        return NumpyRunner(graph)
    if device == "cpu":
        triton_interpreter_ready()
    return TritonRunner(graph, mode)
