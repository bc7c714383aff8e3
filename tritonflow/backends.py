"""Framework stage: the backends a compiled graph runs on — `numpy` (the interpreter) and `triton`.

A backend turns a final graph into a runner: `runner(arrays) -> arrays`, where arrays are NumPy
arrays for CPU tensors and torch tensors for CUDA tensors. The triton backend on CPU tensors runs
generated kernels under Triton's interpreter, which must be switched on before triton is imported.
"""
from __future__ import annotations

import sys

import numpy as np

from tritonflow import environment
from tritonflow.dispatch import run_numpy_quiet
from tritonflow.errors import UnsupportedError
from tritonflow.interpreter import _resolve, _symbolic_attrs, bind_symbols, run_graph
from tritonflow.ir.graph import Graph
from tritonflow.ops.registry import OPS

BACKENDS = ("numpy", "triton")


def check_backend(name: str | None) -> None:
    if name is not None and name not in BACKENDS:
        raise UnsupportedError(f"jit: unknown backend {name!r} (choose from {', '.join(BACKENDS)})")


def _installed(name: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def triton_interpreter_ready() -> None:
    """Raise a clear error unless CPU tensors can run Triton kernels here."""
    # Checked first, without importing triton (that would fix its interpreter setting too early):
    # telling someone without triton to set TRITON_INTERPRET only sends them to a second error.
    missing = [name for name in ("triton", "torch") if not _installed(name)]
    if missing:
        raise UnsupportedError(f"backend='triton' needs triton and torch installed: pip install "
                               f"'tritonflow[gpu]' (missing: {', '.join(missing)})")
    if not environment.triton_interpret():
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
    """The interpreter as a backend: the graph turned once into a flat plan of slot-indexed steps.

    Same meaning as `interpreter.run_graph` (each step is `run_numpy` of the op table entry), but
    the per-call work is a list walk, and each intermediate is dropped right after its last reader.
    Keeping every intermediate alive until the end made large graphs touch fresh memory for each
    node (page faults, cold caches): 1.5x the time of the same hand-written NumPy.
    """

    kernels: list = []

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.symbolic = any(not isinstance(d, int) for n in graph.inputs for d in n.type.shape)
        slot_of: dict[int, int] = {}
        for node in graph.inputs:
            slot_of[id(node)] = len(slot_of)
        self.n_inputs = len(graph.inputs)
        template: list = [None] * self.n_inputs
        body = []
        for node in graph.nodes:
            slot_of[id(node)] = len(template)
            template.append(node.attrs["value"] if node.op == "constant" else None)
            if node.op != "constant":
                body.append(node)
        self.template = template
        kept = {slot_of[id(n)] for n in graph.outputs}
        kept.update(slot_of[id(n)] for n in graph.inputs)  # the caller owns those
        kept.update(slot_of[id(n)] for n in graph.nodes if n.op == "constant")
        last_reader: dict[int, int] = {}
        for step, node in enumerate(body):
            for inp in node.inputs:
                last_reader[slot_of[id(inp)]] = step
        frees: list[list[int]] = [[] for _ in body]
        for slot, step in last_reader.items():
            if slot not in kept:
                frees[step].append(slot)
        self.steps = [(OPS[node.op], tuple(slot_of[id(i)] for i in node.inputs), node.attrs, node.type,
                       slot_of[id(node)], tuple(frees[k]), self.symbolic and _symbolic_attrs(node.attrs))
                      for k, node in enumerate(body)]
        self.outputs = [slot_of[id(n)] for n in graph.outputs]

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        if device != "cpu":
            from tritonflow.storage import numpy_to_torch, torch_to_numpy
            outs = run_graph(self.graph, [torch_to_numpy(a) for a in arrays])
            return [numpy_to_torch(o, "cuda") for o in outs]
        bindings = bind_symbols(self.graph, arrays) if self.symbolic else None
        assert len(arrays) == self.n_inputs, f"graph {self.graph.name} takes {self.n_inputs} inputs, got {len(arrays)}"
        env = self.template.copy()
        env[:self.n_inputs] = arrays
        # IEEE special values are results, not warnings (as in run_numpy), set once for the graph.
        with np.errstate(all="ignore"):
            for op, inputs, attrs, out_type, out, frees, symbolic in self.steps:
                if symbolic:
                    attrs = {k: _resolve(v, bindings) for k, v in attrs.items()}
                env[out] = run_numpy_quiet(op, [env[i] for i in inputs], attrs, out_type)
                for slot in frees:
                    env[slot] = None
        return [env[i] for i in self.outputs]


class TritonRunner:
    def __init__(self, graph: Graph, mode: str = "default") -> None:
        from tritonflow import kernels
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
    from tritonflow.segmented_runner import SegmentedRunner, has_collectives
    if has_collectives(graph):  # kernels cannot talk to other processes: run those ops between kernels
        return SegmentedRunner(graph, backend, device, mode)
    return TritonRunner(graph, mode)
