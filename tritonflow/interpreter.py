"""Core: the NumPy interpreter — the meaning of every op and the one graph evaluator.

`run_numpy` applies one op table entry to arrays (eager CPU tensors use it too). `Evaluator` turns a
verified graph once into a flat plan of slot-indexed steps and runs it, dropping each intermediate
right after its last reader. It is the only whole-array graph evaluator: the numpy backend
(numpy_backend.py, which runs large row-wise graphs a block of rows at a time), constant folding
(passes/fold.py, through `run_numpy`) and debug.verify (spec_check.py, through `observe`) all run it.
Symbolic dims in attributes (a reshape to (s0, 128)) are resolved from the bound input shapes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import sympy

from tritonflow.errors import TritonflowError, UnsupportedError
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import OPS, OpDef


# ---------------------------------------------------------------- one op

def run_numpy(op: OpDef, arrays: list, attrs: dict, out_type: TensorType) -> np.ndarray:
    """The op's meaning on NumPy arrays, with the result in exactly the inferred dtype and shape."""
    # IEEE special values (NaN compares, 0/0, overflow) are results, not errors: no NumPy warnings.
    with np.errstate(all="ignore"):
        return run_numpy_quiet(op, arrays, attrs, out_type)


def run_numpy_quiet(op: OpDef, arrays: list, attrs: dict, out_type: TensorType) -> np.ndarray:
    """`run_numpy` for a caller that already holds `np.errstate(all="ignore")` (a whole graph run:
    entering errstate costs about as much as a small op)."""
    result = call_meaning(op, op.numpy, arrays, attrs)
    if result.dtype != out_type.dtype.np:
        result = result.astype(out_type.dtype.np)
    return result


def call_meaning(op: OpDef, meaning: Callable, arrays: list, attrs: dict) -> np.ndarray:
    """`meaning(*arrays, **attrs)` (the op's NumPy meaning, or a form of it) as an array; a NumPy
    failure the type rule did not foresee is our bug, raised as an UnsupportedError naming the op."""
    try:
        result = meaning(*arrays, **attrs)
    except TritonflowError:
        raise
    except Exception as exc:
        raise reference_failure(op, arrays, exc) from exc
    return result if type(result) is np.ndarray else np.asarray(result)


def reference_failure(op: OpDef, arrays: list, exc: Exception) -> UnsupportedError:
    return UnsupportedError(f"{op.name}: the reference implementation failed on inputs "
                            f"{[tuple(np.shape(a)) for a in arrays]}: {exc}")


# ---------------------------------------------------------------- symbolic dims

def bind_symbols(graph: Graph, arrays: list) -> dict:
    """Symbol -> int, read off the inputs whose declared dims are symbols (arrays: anything with .shape)."""
    bindings = {}
    for node, array in zip(graph.inputs, arrays):
        for declared, actual in zip(node.type.shape, array.shape):
            if isinstance(declared, sympy.Symbol):
                bindings[declared] = int(actual)
    return bindings


def has_symbolic_inputs(graph: Graph) -> bool:
    return any(not isinstance(d, int) for n in graph.inputs for d in n.type.shape)


def _resolve(value, bindings):
    if isinstance(value, sympy.Expr):
        return int(value.xreplace(bindings))
    if isinstance(value, tuple):
        return tuple(_resolve(v, bindings) for v in value)
    return value


def _symbolic_attrs(attrs: dict) -> bool:
    for v in attrs.values():
        if isinstance(v, sympy.Expr):
            return True
        if isinstance(v, tuple) and any(isinstance(e, sympy.Expr) or isinstance(e, tuple) for e in v):
            return True
    return False


# ---------------------------------------------------------------- the graph evaluator

# observe(node, input_arrays, attrs with symbols resolved, value): called after each computed node.
Observer = Callable[[Node, list, dict, np.ndarray], None]


def graph_slots(graph: Graph) -> tuple:
    """(id(node) -> slot, the slots' initial values): the graph's inputs first, then every node in
    order; a constant's slot holds its value, the others None."""
    slot_of: dict[int, int] = {id(node): i for i, node in enumerate(graph.inputs)}
    template: list = [None] * len(graph.inputs)
    for node in graph.nodes:
        slot_of[id(node)] = len(template)
        template.append(node.attrs["value"] if node.op == "constant" else None)
    return slot_of, template


def frees_after_last_read(graph: Graph, slot_of: dict, reads: list) -> list:
    """Per step (`reads[k]`: the slots step k reads), the slots to drop after it: each value after
    its last reader, except the caller's inputs, constants and the graph's outputs."""
    kept = {slot_of[id(n)] for n in graph.outputs} | set(range(len(graph.inputs)))
    kept.update(slot_of[id(n)] for n in graph.nodes if n.op == "constant")
    last_reader: dict[int, int] = {}
    for step, slots in enumerate(reads):
        for slot in slots:
            last_reader[slot] = step
    frees: list[list[int]] = [[] for _ in reads]
    for slot, step in last_reader.items():
        if slot not in kept:
            frees[step].append(slot)
    return frees


class Evaluator:
    """A graph turned once into slot-indexed steps; `evaluator(arrays)` returns one array per output.

    Each intermediate is dropped right after its last reader: keeping every value alive to the end
    made large graphs touch fresh memory for each node (page faults, cold caches), 1.5x the time of
    the same hand-written NumPy. Inputs (the caller's), constants and outputs are never dropped.
    """

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.symbolic = has_symbolic_inputs(graph)
        self.n_inputs = len(graph.inputs)
        slot_of, self.template = graph_slots(graph)
        body = [node for node in graph.nodes if node.op != "constant"]
        frees = frees_after_last_read(graph, slot_of, [[slot_of[id(i)] for i in node.inputs] for node in body])
        self.steps = [(node, OPS[node.op], tuple(slot_of[id(i)] for i in node.inputs), node.attrs, node.type,
                       slot_of[id(node)], tuple(frees[k]), self.symbolic and _symbolic_attrs(node.attrs))
                      for k, node in enumerate(body)]
        # The plain run's steps: each op's meaning called directly (see _run_plain).
        self.plain_steps = [(direct_meaning(node, op), inputs, attrs, out_type.dtype.np, out, free, symbolic, op)
                            for node, op, inputs, attrs, out_type, out, free, symbolic in self.steps]
        # A constant is shared by every run of the graph: outputs get copies, never the graph's array.
        self.outputs = [(slot_of[id(n)], n.op == "constant") for n in graph.outputs]

    def __call__(self, arrays: list, observe: Observer | None = None, step: Callable = run_numpy_quiet) -> list:
        """`step(op, arrays, attrs, out_type)` computes one node (the profiler passes a timed one)."""
        if len(arrays) != self.n_inputs:
            raise UnsupportedError(f"graph {self.graph.name} takes {self.n_inputs} inputs, got {len(arrays)}")
        bindings = bind_symbols(self.graph, arrays) if self.symbolic else None
        env = self.template.copy()
        env[:self.n_inputs] = arrays
        if observe is None and step is run_numpy_quiet:
            self._run_plain(env, bindings)
            return [np.array(env[i]) if constant else env[i] for i, constant in self.outputs]
        # IEEE special values are results, not warnings (as in run_numpy), set once for the graph.
        with np.errstate(all="ignore"):
            for node, op, inputs, attrs, out_type, out, frees, symbolic in self.steps:
                if symbolic:
                    attrs = {k: _resolve(v, bindings) for k, v in attrs.items()}
                values = [env[i] for i in inputs]
                env[out] = step(op, values, attrs, out_type)
                if observe is not None:
                    observe(node, values, attrs, env[out])
                for slot in frees:
                    env[slot] = None
        return [np.array(env[i]) if constant else env[i] for i, constant in self.outputs]


    def _run_plain(self, env: list, bindings: dict | None) -> None:
        """The steps without observer or timing: what `run_numpy_quiet` does for each, with the op's
        meaning looked up once (a small graph's run is mostly this loop's own cost)."""
        values: list = []
        op = None
        with np.errstate(all="ignore"):
            try:
                for meaning, inputs, attrs, dtype, out, frees, symbolic, op in self.plain_steps:
                    if symbolic:
                        attrs = {k: _resolve(v, bindings) for k, v in attrs.items()}
                    values = [env[i] for i in inputs]
                    result = meaning(*values, **attrs)
                    if type(result) is not np.ndarray:
                        result = np.asarray(result)
                    env[out] = result if result.dtype == dtype else result.astype(dtype)
                    for slot in frees:
                        env[slot] = None
            except TritonflowError:
                raise
            except Exception as exc:  # as in run_numpy_quiet: a NumPy failure the type rule did not foresee
                raise reference_failure(op, values, exc) from exc


def direct_meaning(node: Node, op: OpDef) -> Callable:
    """The op's NumPy meaning for this node: a function computing half precision in float32 is
    called as its full-precision self (which takes no attributes) when no operand is
    float16/bfloat16 (the evaluator holds np.errstate already)."""
    direct = getattr(op.numpy, "full_precision", None)
    if direct is not None and not node.attrs and \
            not any(i.type.dtype.name in ("float16", "bfloat16") for i in node.inputs):
        return direct
    return op.numpy


def run_graph(graph: Graph, arrays: list) -> list:
    """Evaluate `graph` once on NumPy arrays (one per graph input); returns one array per output."""
    return Evaluator(graph)(arrays)
