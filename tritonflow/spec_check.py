"""Debugging stage: judge one compiled entry against the interpreter (the spec), kernel by kernel.

The triton backend's entries: the interpreter evaluates every IR node, then the backend's
per-kernel hook (`kernel_run`, kernels/backend.py) runs the compiled kernels one at a time.
Before each kernel, every buffer it reads is filled with the interpreter's value, so each kernel
is judged on exactly the inputs the spec saw, and one wrong kernel cannot hide behind or blame
another. The report names the first kernel whose outputs leave the tolerance: its IR nodes, the
user's source lines, the generated source path and the error measured.

The numpy backend has no kernels: each IR node is checked against the same node evaluated in
float64 on upcast inputs (int64 for integers), which finds ops whose low-precision meaning loses
accuracy.

`maybe_verify` is the TRITONFLOW_VERIFY hook jit calls on the first run of every entry: it warns
with the report when a kernel diverges (`TRITONFLOW_VERIFY=raise` raises instead). The user's
entry point, `tritonflow.debug.verify(fn, *args)`, is in debug.py.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from tritonflow import backends, environment
from tritonflow import dtypes as D
from tritonflow.errors import VerificationError
from tritonflow.interpreter import Evaluator
from tritonflow.ir.graph import Graph, format_graph
from tritonflow.ops.registry import OPS
from tritonflow.storage import torch_to_numpy

TOLERANCES = {"float64": (1e-12, 1e-14), "float32": (1.3e-6, 1e-5), "float16": (1e-3, 1e-5),
              "bfloat16": (1.6e-2, 1e-5)}
SAFETY = 4.0


@dataclass
class KernelCheck:
    """One kernel (or, on the numpy backend, one IR node) compared with the interpreter."""

    index: int
    name: str
    ir_nodes: list                 # the kernel's IR lines
    user_lines: list               # "file:line in fn:   code" for every user line it computes
    source_path: str | None        # the generated Triton source file (None on the numpy backend)
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    ratio: float = 0.0             # worst error / allowance; above 1 is a divergence
    ok: bool = True
    detail: str = ""

    def __str__(self) -> str:
        unit = "kernel" if self.source_path else "IR node"
        head = f"{unit} {self.index} {self.name}: " + ("ok" if self.ok else "DIVERGES")
        lines = [head,
                 f"  error: max abs {self.max_abs_error:.3g}, max rel {self.max_rel_error:.3g} "
                 f"({self.ratio:.3g}x the allowance)"]
        if self.detail:
            lines.append(f"  {self.detail}")
        if self.source_path:
            lines.append(f"  generated source: {self.source_path}")
        lines += section("IR nodes", self.ir_nodes)
        if self.user_lines:
            lines += section("user source", self.user_lines)
        return "\n".join(lines)


def section(title: str, items) -> list:
    """A report's titled, indented block of lines (kernel reports here and in explain())."""
    return [f"  {title}:"] + [f"    {item}" for item in items]


@dataclass
class VerifyReport:
    """The result of `verify`: `.ok`, `.first_divergence` (None when all agree), `.checks`."""

    function: str
    backend: str
    checks: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def first_divergence(self) -> KernelCheck | None:
        return next((c for c in self.checks if not c.ok), None)

    def __str__(self) -> str:
        unit = "kernels" if self.backend == "triton" else "IR nodes"
        first = self.first_divergence
        if first is None:
            return f"verify {self.function} ({self.backend}): all {len(self.checks)} {unit} agree with the interpreter"
        bad = sum(not c.ok for c in self.checks)
        return (f"verify {self.function} ({self.backend}): {bad} of {len(self.checks)} {unit} diverge; "
                f"the first:\n{first}")

    __repr__ = __str__


# ---------------------------------------------------------------- comparing arrays

def _compare(got: np.ndarray, want: np.ndarray, dtype: D.DType, ops: int, check: KernelCheck) -> None:
    """Fill `check`'s error fields from `got` vs `want` at `dtype`'s tolerance, widened for `ops` roundings."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        check.ok, check.ratio = False, float("inf")
        check.detail = f"shape {got.shape}, interpreter {want.shape}"
        return
    if not dtype.is_floating_point:
        bad = got.astype(np.int64) != want.astype(np.int64)
        if bad.any():
            check.ok, check.ratio = False, float("inf")
            check.max_abs_error = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
            first = [int(i) for i in np.argwhere(bad)[0]]
            check.detail = f"{int(bad.sum())} of {got.size} values differ; first at {first}"
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    nan_g, nan_w = np.isnan(g), np.isnan(w)
    if not np.array_equal(nan_g, nan_w):
        check.ok, check.ratio = False, float("inf")
        check.detail = f"NaN positions differ; first at {[int(i) for i in np.argwhere(nan_g != nan_w)[0]]}"
        return
    inf = np.isinf(w) | np.isinf(g)
    if not np.array_equal(g[inf], w[inf]):
        check.ok, check.ratio = False, float("inf")
        check.detail = "infinities differ"
        return
    finite = ~(nan_w | inf)
    if not finite.any():
        return
    rtol, atol = TOLERANCES[dtype.name]
    rtol = SAFETY * rtol * max(ops, 1)
    scale = float(np.abs(w[finite]).max())
    err = np.abs(g - w)[finite]
    allowed = atol + rtol * (np.abs(w[finite]) + scale * 1e-3)
    check.max_abs_error = max(check.max_abs_error, float(err.max()))
    check.max_rel_error = max(check.max_rel_error, float((err / np.maximum(np.abs(w[finite]), 1e-300)).max()))
    ratio = float((err / allowed).max())
    check.ratio = max(check.ratio, ratio)
    if ratio > 1.0:
        check.ok = False
        worst = int(np.argmax(err / allowed))
        check.detail = (f"worst element: got {g[finite][worst]!r}, interpreter {w[finite][worst]!r} "
                        f"(rtol {rtol:.3g}, atol {atol:.3g})")


# ---------------------------------------------------------------- the interpreter's value of every node

def interpreter_values(graph: Graph, arrays: list) -> dict:
    """id(node) -> the interpreter's value, for every input, constant and node of `graph`."""
    values = {id(node): np.asarray(array) for node, array in zip(graph.inputs, arrays)}
    values.update((id(node), np.asarray(node.attrs["value"])) for node in graph.nodes if node.op == "constant")

    def keep(node, inputs, attrs, value) -> None:
        values[id(node)] = np.asarray(value)
    Evaluator(graph)(arrays, observe=keep)
    return values


def _user_lines(nodes) -> list:
    out = []
    for node in nodes:
        loc = getattr(node, "loc", None)
        if loc is not None:
            text = loc.describe()
            if text not in out:
                out.append(text)
    return out


def _shaped_like(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """A buffer read back flat (or with a view's shape) compared in the IR value's shape."""
    if got.shape != want.shape and got.size == want.size:
        return got.reshape(want.shape)
    return got


# ---------------------------------------------------------------- numpy backend: node by node

def _check_nodes(graph: Graph, arrays: list) -> list:
    lines = format_graph(graph).splitlines()[1:-2]
    index_of = {id(node): index for index, node in enumerate(graph.nodes)}
    checks = []

    def check_node(node, inputs: list, attrs: dict, value) -> None:
        index = index_of[id(node)]
        check = KernelCheck(index, node.op, [lines[index].strip()], _user_lines([node]), None)
        checks.append(check)
        upcast = [_upcast(np.asarray(v)) for v in inputs]
        try:
            wide = np.asarray(OPS[node.op].numpy(*upcast, **attrs))
        except Exception as exc:  # an op whose meaning does not take float64: nothing to compare
            check.detail = f"float64 evaluation not possible ({type(exc).__name__})"
            return
        _compare(value, wide, node.dtype, 1, check)

    Evaluator(graph)(arrays, observe=check_node)  # the observer runs under the evaluator's errstate
    return checks


def _upcast(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "fV":
        return array.astype(np.float64)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    return array


# ---------------------------------------------------------------- triton backend: kernel by kernel

def _check_kernels(backend, runner, arrays: list, device: str) -> list:
    run = backend.kernel_run(runner, arrays, device)
    graph = run.graph
    reference = interpreter_values(graph, [a if isinstance(a, np.ndarray) else torch_to_numpy(a) for a in arrays])
    checks = []
    for step in run.steps:
        # Feed the spec's values into every buffer this kernel reads (written by earlier kernels).
        for node in step.reads:
            if id(node) in reference and run.has_buffer(node) and node.op not in ("input", "constant"):
                run.fill(node, reference[id(node)])
        run.launch(step)
        check = KernelCheck(step.index, step.name, step.ir_lines, _user_lines(step.nodes), step.path)
        for node in step.writes:
            if id(node) not in reference:
                continue
            want = reference[id(node)]
            _compare(_shaped_like(run.read(node), want), want, node.dtype, max(len(step.node_lines), 1), check)
            if not check.ok:
                check.detail = f"buffer of {run.node_line(node).split('=')[0].strip()}: {check.detail}"
                break
        checks.append(check)

    # Chained: the kernels as the compiled function runs them, each reading what the earlier ones
    # wrote. A kernel that agrees in isolation but not here reads a buffer the schedule did not fill
    # the way the IR says (a plumbing bug between kernels, not in any one kernel's code).
    run = backend.kernel_run(runner, arrays, device)
    for step in run.steps:
        run.launch(step)
        alone = checks[step.index]
        if not alone.ok:
            break
        chained = KernelCheck(step.index, f"{step.name} (run after the kernels before it)", alone.ir_nodes,
                              alone.user_lines, step.path)
        for node in step.writes:
            if id(node) in reference:
                want = reference[id(node)]
                _compare(_shaped_like(run.read(node), want), want, node.dtype,
                         max(len(step.node_lines), 1) * (step.index + 1), chained)
        if not chained.ok:
            chained.detail = ("agrees with the interpreter on the interpreter's inputs but not on what the "
                              "earlier kernels left in its input buffers: " + chained.detail)
            checks.append(chained)
            break
    else:
        final = KernelCheck(len(run.steps), "graph outputs", [run.node_line(n) for n in graph.outputs],
                            _user_lines(graph.outputs), None)
        for node in graph.outputs:
            _compare(run.output(node), reference[id(node)], node.dtype, max(len(graph.nodes), 1), final)
        if not final.ok:
            final.detail = "every kernel agrees, but the returned buffers do not: " + final.detail
        checks.append(final)
    return checks

# ---------------------------------------------------------------- entry points

def verify_entry(entry, arrays: list, name: str = "fn") -> VerifyReport:
    """Check one compiled entry of a JitFunction on the arrays its runner takes."""
    report = VerifyReport(name, entry.backend)
    backend = backends.get(entry.backend)
    if hasattr(backend, "kernel_run"):
        report.checks = _check_kernels(backend, entry.runner, arrays, entry.device)
    else:
        host = [a if isinstance(a, np.ndarray) else torch_to_numpy(a) for a in arrays]
        report.checks = _check_nodes(entry.graph, host)
    return report


def maybe_verify(jitfn, entry, arrays: list, outs) -> None:
    """The TRITONFLOW_VERIFY hook JitFunction calls after running an entry (first call only)."""
    mode = environment.verify_mode()
    if mode is None or getattr(entry, "_verified", False):
        return
    entry._verified = True
    report = verify_entry(entry, list(arrays), getattr(jitfn.fn, "__qualname__", "fn"))
    if report.ok:
        return
    if mode == "raise":
        raise VerificationError(str(report))
    warnings.warn(f"TRITONFLOW_VERIFY: {report}", RuntimeWarning, stacklevel=3)
