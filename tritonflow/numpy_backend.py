"""Core: the numpy backend — compiled graphs run by the interpreter's op meanings on NumPy arrays.

A graph becomes a `NumpyRunner`: large row-wise graphs run a block of rows at a time
(row_blocks.py), everything else through the interpreter's whole-array `Evaluator`; the profiler
always times whole-array nodes. CUDA tensors handed to it are copied to NumPy and back.
"""
from __future__ import annotations

import numpy as np

from tritonflow import profile_hooks
from tritonflow.interpreter import Evaluator, run_numpy, run_numpy_quiet
from tritonflow.ir.graph import Graph
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import Kind, OpDef
from tritonflow.row_blocks import RowBlockedPlan


class NumpyRunner:
    """A compiled graph on the numpy backend: the evaluator, taking torch tensors for CUDA inputs."""

    kernels: list = []

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.evaluator = Evaluator(graph)
        # Large row-wise graphs run a block of rows at a time (row_blocks.py); None: whole arrays.
        self.blocked = RowBlockedPlan.build(graph)

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        recorder = profile_hooks.active()   # tritonflow.profile(): each IR node timed, whole arrays
        if device != "cpu":
            from tritonflow.storage import numpy_to_torch, torch_to_numpy
            outs = self._run([torch_to_numpy(a) for a in arrays], recorder)
            return [numpy_to_torch(o, device) for o in outs]
        return self._run(arrays, recorder)

    def _run(self, arrays: list, recorder) -> list:
        if recorder is not None:
            step = recorder.node_step(self.graph, [s[0] for s in self.evaluator.steps], run_numpy_quiet)
            return self.evaluator(arrays, step=step)
        if self.blocked is not None:
            return self.blocked(arrays)
        return self.evaluator(arrays)


class NumpyBackend:
    """The interpreter as a backend (see tritonflow/backends.py for what a backend object offers)."""

    name = "numpy"
    runs_collectives = True   # the evaluator runs collective ops' meanings (jit_entry.make_runner)

    def compile(self, graph: Graph, *, mode: str = "default") -> NumpyRunner:
        return NumpyRunner(graph)  # every mode means the same thing here: no kernels to tune or capture

    def run_op(self, op: OpDef, arrays: list, attrs: dict, out_type: TensorType) -> np.ndarray:
        return run_numpy(op, arrays, attrs, out_type)

    def cache_stats(self) -> dict:
        return {}

    def recomputes(self, op: OpDef) -> bool:
        """Whether a compiled backward recomputes this op's forward value instead of saving it:
        views, fills and iotas, and NumPy's one-pass arithmetic and selections. A
        large backward runs a block of rows at a time (row_blocks.py), where such an op is one pass
        over rows already in cache, while saving its value writes a whole-size array in the forward
        and reads it back. Transcendentals (an erf is a pass many times over) and reductions are
        saved."""
        if op.kind in (Kind.MOVEMENT, Kind.CREATION):
            return True
        return op.kind is Kind.ELEMENTWISE and getattr(op.numpy, "full_precision", op.numpy) in _ONE_PASS


# Comparisons stay saved: a one-hot mask (a gather's gradient) is one byte per element to keep,
# but recomputing it means an int64 iota and a compare per element (measured: cross-entropy's
# forward+backward 20% slower).
_ONE_PASS = frozenset({np.add, np.subtract, np.multiply, np.negative, np.absolute, np.maximum, np.minimum,
                       np.where})


BACKEND = NumpyBackend()
