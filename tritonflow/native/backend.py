"""Core: the C backend — compiled graphs whose row-wise parts run as generated C loops.

`compile(graph)` splits the graph into steps (regions.py): regions of elementwise ops, reductions,
broadcasts and gathers over one rows x columns space become C functions (c_source.py), compiled by
the system compiler into a few shared libraries (toolchain.py; up to one per core, built in
threads from the moment the runner is made, and waited for by its first call); every other node is a
NumPy step, run by the op table's meaning as the numpy backend runs it. A graph with no region
worth compiling (small tensors, or no row-wise part) is the numpy backend's runner.

Errors keep their meaning: a region that meets a value it cannot compute (a gather position out
of range) makes the call run again on the NumPy evaluator, which raises the op's own error naming
the user's line. Under `tritonflow.profile()` graphs run on the NumPy evaluator, node by node.
"""
from __future__ import annotations

import ctypes
import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from tritonflow import profile_hooks
from tritonflow.errors import UnsupportedError
from tritonflow.interpreter import (call_meaning, direct_meaning, frees_after_last_read, graph_slots,
                                    has_symbolic_inputs, run_numpy)
from tritonflow.ir.graph import Graph
from tritonflow.ir.types import TensorType
from tritonflow.native import c_source, regions, toolchain
from tritonflow.native.regions import partition
from tritonflow.numpy_backend import NumpyRunner
from tritonflow.ops.registry import OPS, Kind, OpDef

_stats = {"graphs": 0}   # compiled graphs whose libraries are loaded (compiled or from the cache)


# A graph's regions go to at most one library per core, of at least this many lines each: a
# compiler process costs ~30 ms before its first line, and ~0.8 ms per line of generated C after.
_MAX_LIBRARIES = max(os.cpu_count() or 1, 1)
_MIN_LINES_PER_LIBRARY = 150


def _balanced_groups(sizes: list, most: int, least: int) -> list:
    """Indices of `sizes` in at most `most` groups of about equal sums, each at least `least`."""
    count = max(1, min(most, sum(sizes) // max(least, 1), len(sizes)))
    groups: list = [[] for _ in range(count)]
    totals = [0] * count
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        g = totals.index(min(totals))
        groups[g].append(i)
        totals[g] += sizes[i]
    return [sorted(g) for g in groups if g]


def _named(text: str, number: int) -> str:
    return text.replace("int tf_region(", f"int tf_region_{number}(", 1)


class _OutOfRange(Exception):
    """A region's gather read a position outside its row."""


@dataclass
class RegionKernel:
    """What `tritonflow.explain` shows for one region: its C function and the IR nodes it computes."""

    name: str
    source: str
    path: str
    node_lines: list
    kind: str = "c region"


class CRunner:
    """A compiled graph on the C backend: NumPy steps and C region calls over slot-indexed values."""

    def __init__(self, graph: Graph, min_elements: int | None = None) -> None:
        self.graph = graph
        self._fallback = None
        self.regions: list = []
        self.sources: list = []
        self._texts: list = []
        self.library = None
        self.plan = None
        self._kernels: list = []
        self._lock = threading.Lock()
        if has_symbolic_inputs(graph) or toolchain.compiler() is None:
            return
        steps = partition(graph, regions.MIN_REGION_ELEMENTS if min_elements is None else min_elements)
        self.regions = [body for kind, body in steps if kind == "region"]
        if not self.regions:
            return
        self.sources = [c_source.write(r, "tf_region") for r in self.regions]
        # Regions of the same code (two layers' norms, the AdamW updates of equal-shaped weights)
        # share one function; the functions are spread over a library per core, compiled at once.
        unique: dict = {}
        self._function_of = [unique.setdefault(s.text, len(unique)) for s in self.sources]
        texts = self._texts = list(unique)
        groups = _balanced_groups([t.count("\n") for t in texts], _MAX_LIBRARIES, _MIN_LINES_PER_LIBRARY)
        self._builds, self._library_of = [], {}
        for g, members in enumerate(groups):
            functions = set().union(*(s.functions for s in self.sources if unique[s.text] in members))
            body = "\n".join(_named(texts[u], u) for u in members)
            self._builds.append(toolchain.start_build(c_source.PRELUDE + toolchain.declarations(functions) + body,
                                                      functions))
            self._library_of.update({u: g for u in members})
        self._steps_found = steps

    def _ready(self) -> None:
        """Wait for the library (compiling since the runner was made), then plan the steps. A
        compiler that fails leaves the graph on the NumPy evaluator, with a warning saying why."""
        with self._lock:
            if self.plan is None and self.regions:
                self._wait_and_plan()

    def _wait_and_plan(self) -> None:
        try:
            self.library = [build.result() for build in self._builds]
        except toolchain.CompileFailed as exc:
            warnings.warn(f"tritonflow c backend: graph {self.graph.name} runs on NumPy: {exc}", RuntimeWarning,
                          stacklevel=4)
            self.regions = []
            return
        _stats["graphs"] += 1
        self._plan(self._steps_found)

    @property
    def fallback(self) -> NumpyRunner:
        """The numpy backend's runner of the graph: for graphs with no region, under the profiler,
        and to raise a NumPy meaning's own error (made when first needed)."""
        if self._fallback is None:
            self._fallback = NumpyRunner(self.graph)
        return self._fallback

    @property
    def kernels(self) -> list:
        """A RegionKernel per region (waiting for the compile when it is still running)."""
        if self.plan is None and self.regions:
            self._ready()
        if self.regions and not self._kernels:
            lines = str(self.graph).splitlines()[1:]
            index = {id(n): k for k, n in enumerate(self.graph.nodes)}
            for i, (region, source) in enumerate(zip(self.regions, self.sources)):
                u = self._function_of[i]
                self._kernels.append(RegionKernel(f"tf_region_{u}", _named(source.text, u),
                                                  self.library[self._library_of[u]]._name,
                                                  [lines[index[id(m.node)]] for m in region.members]))
        return self._kernels

    @property
    def source(self) -> str:
        """The generated C functions, each once ("" when the graph runs on NumPy alone)."""
        return "\n".join(_named(text, u) for u, text in enumerate(self._texts))

    def _plan(self, steps: list) -> None:
        graph = self.graph
        slot_of, template = graph_slots(graph)
        self.template, self.n_inputs = template, len(graph.inputs)
        plan, reads = [], []
        region_index = 0
        for kind, body in steps:
            if kind == "node":
                op = OPS[body.op]
                ins = tuple(slot_of[id(i)] for i in body.inputs)
                plan.append(("node", direct_meaning(body, op), ins, body.attrs, body.type.dtype.np,
                             slot_of[id(body)], op))
                reads.append(ins)
            else:
                source = self.sources[region_index]
                u = self._function_of[region_index]
                fn = getattr(self.library[self._library_of[u]], f"tf_region_{u}")
                fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
                space = self.regions[region_index].space
                region_index += 1
                ins = tuple((slot_of[id(n)], n.type.dtype.np) for n in source.inputs)
                outs = tuple((slot_of[id(m.node)], tuple(m.node.shape), m.node.type.dtype.np) for m in source.outputs)
                plan.append(("region", fn, ins, outs, len(ins) + len(outs), space.rows, space.cols))
                reads.append(tuple(s for s, _ in ins))
        frees = frees_after_last_read(graph, slot_of, reads)
        self.plan = [(*step, tuple(f)) for step, f in zip(plan, frees)]
        self.outputs = [(slot_of[id(n)], n.op == "constant") for n in graph.outputs]

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        if self.plan is None and self.regions:
            self._ready()
        if self.library is None or profile_hooks.active() is not None:
            return self.fallback(arrays, device)
        if device != "cpu":
            from tritonflow.storage import numpy_to_torch, torch_to_numpy
            outs = self._run([torch_to_numpy(a) for a in arrays])
            return [numpy_to_torch(o, device) for o in outs]
        return self._run(arrays)

    def _run(self, arrays: list) -> list:
        if len(arrays) != self.n_inputs:
            raise UnsupportedError(f"graph {self.graph.name} takes {self.n_inputs} inputs, got {len(arrays)}")
        try:
            env = self.template.copy()
            env[:self.n_inputs] = arrays
            self._steps(env)
        except _OutOfRange:
            # The NumPy meanings raise the op's own error (naming the user's line).
            self.fallback(arrays)
            raise UnsupportedError(f"graph {self.graph.name}: a generated region reported a position out of "
                                   "range that the NumPy evaluator accepted") from None
        return [np.array(env[i]) if constant else env[i] for i, constant in self.outputs]

    def _steps(self, env: list) -> None:
        with np.errstate(all="ignore"):
            for step in self.plan:
                if step[0] == "node":
                    _, meaning, ins, attrs, dtype, out, op, frees = step
                    result = call_meaning(op, meaning, [env[i] for i in ins], attrs)
                    env[out] = result if result.dtype == dtype else result.astype(dtype)
                else:
                    _, fn, ins, outs, count, rows, cols, frees = step
                    held = [np.ascontiguousarray(env[s], dtype=dt) for s, dt in ins]
                    made = [np.empty(shape, dtype=dt) for _, shape, dt in outs]
                    pointers = (ctypes.c_void_p * count)(*[a.ctypes.data for a in held], *[a.ctypes.data for a in made])
                    if fn(pointers, rows, cols):
                        raise _OutOfRange()
                    for (slot, _, _), array in zip(outs, made):
                        env[slot] = array
                for s in frees:
                    env[s] = None


class CBackend:
    """Generated C for row-wise regions, NumPy for the rest (tritonflow/backends.py: the interface)."""

    name = "c"
    runs_collectives = True   # a collective is a NumPy step like any other (jit_entry.make_runner)

    def compile(self, graph: Graph, *, mode: str = "default"):
        """A CRunner, or for a graph with no region worth compiling the numpy backend's runner
        itself (no extra call layer: a small jitted function's per-call cost stays NumPy's)."""
        runner = CRunner(graph)
        return runner if runner.regions else runner.fallback

    def run_op(self, op: OpDef, arrays: list, attrs: dict, out_type: TensorType) -> np.ndarray:
        return run_numpy(op, arrays, attrs, out_type)

    def cache_stats(self) -> dict:
        return {"compiled": toolchain.compiled_count(), **_stats}

    def recomputes(self, op: OpDef) -> bool:
        """A compiled backward recomputes views, fills, iotas and elementwise values instead of saving
        them: inside a region they are a few instructions on values already in registers, where a
        saved value is a whole-size array written by the forward and read back."""
        return op.kind in (Kind.MOVEMENT, Kind.CREATION, Kind.ELEMENTWISE)


BACKEND = CBackend()
