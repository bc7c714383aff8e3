"""Debugging stage: `tritonflow.debug.verify(fn, *args)` — which kernel disagrees with the spec?

It compiles `fn` for `args` as `tritonflow.jit` would, evaluates every IR node with the NumPy
interpreter (the spec), then runs the compiled kernels one at a time. Before each kernel, every
buffer it reads is filled with the interpreter's value, so each kernel is judged on exactly the
inputs the spec saw, and one wrong kernel cannot hide behind or blame another. The report names
the first kernel whose outputs leave the tolerance: its IR nodes, the user's source lines, the
generated source path and the error measured.

On the numpy backend there are no kernels: each IR node is checked against the same node
evaluated in float64 on upcast inputs (int64 for integers), which finds ops whose low-precision
meaning loses accuracy.

`TRITONFLOW_VERIFY=1` runs the same check on the first call of every compiled entry and warns
with the report when a kernel diverges (`TRITONFLOW_VERIFY=raise` raises instead).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from tritonflow import environment
from tritonflow import dtypes as D
from tritonflow.errors import VerificationError
from tritonflow.ir.graph import Graph

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
        lines.append("  IR nodes:")
        lines += [f"    {n}" for n in self.ir_nodes]
        if self.user_lines:
            lines.append("  user source:")
            lines += [f"    {u}" for u in self.user_lines]
        return "\n".join(lines)


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
    from tritonflow.interpreter import run_graph
    every = graph.copy()
    every.outputs = list(graph.inputs) + [n for n in graph.nodes]
    values = run_graph(every, arrays)
    return {id(node): np.asarray(v) for node, v in zip(every.outputs, values)}


def _user_lines(nodes) -> list:
    out = []
    for node in nodes:
        loc = getattr(node, "loc", None)
        if loc is not None:
            text = loc.describe()
            if text not in out:
                out.append(text)
    return out


# ---------------------------------------------------------------- numpy backend: node by node

def _check_nodes(graph: Graph, arrays: list) -> list:
    from tritonflow.interpreter import bind_symbols, _resolve, _symbolic_attrs
    from tritonflow.ir.graph import format_graph
    from tritonflow.ops.registry import OPS
    values = interpreter_values(graph, arrays)
    lines = format_graph(graph).splitlines()[1:-2]
    bindings = bind_symbols(graph, arrays)
    checks = []
    for index, node in enumerate(graph.nodes):
        if node.op == "constant":
            continue
        op = OPS[node.op]
        attrs = node.attrs
        if bindings and _symbolic_attrs(attrs):
            attrs = {k: _resolve(v, bindings) for k, v in attrs.items()}
        upcast = [_upcast(values[id(i)]) for i in node.inputs]
        check = KernelCheck(index, node.op, [lines[index].strip()], _user_lines([node]), None)
        try:
            with np.errstate(all="ignore"):
                wide = np.asarray(op.numpy(*upcast, **attrs))
        except Exception as exc:  # an op whose meaning does not take float64: nothing to compare
            check.detail = f"float64 evaluation not possible ({type(exc).__name__})"
            checks.append(check)
            continue
        _compare(values[id(node)], wide, node.dtype, 1, check)
        checks.append(check)
    return checks


def _upcast(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "fV":
        return array.astype(np.float64)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    return array


# ---------------------------------------------------------------- triton backend: kernel by kernel

def _check_kernels(lowered, arrays: list, device: str, symbols: dict) -> list:
    from tritonflow.kernels.lowering import _is_contiguous
    from tritonflow.storage import numpy_to_torch, torch_to_numpy

    graph, sched = lowered.graph, lowered.schedule
    reference = interpreter_values(graph, [a if isinstance(a, np.ndarray) else torch_to_numpy(a) for a in arrays])
    to_device = "cpu" if device == "cpu" else device
    inputs = [numpy_to_torch(a, to_device) if isinstance(a, np.ndarray) else a for a in arrays]
    layout = tuple(_is_contiguous(t) for t in inputs)
    wide = lowered._static_wide() or lowered._dynamic_wide(symbols)
    compiled = lowered._variant(layout, wide)

    env = _buffers(lowered, inputs, symbols, to_device)
    nodes_by_id = {id(n): n for n in list(graph.inputs) + list(graph.nodes)}
    checks = []
    for index, kernel in enumerate(compiled):
        gen = kernel.generated
        # Feed the spec's values into every buffer this kernel reads (written by earlier kernels).
        for node in gen.reads:
            if id(node) in reference and id(node) in env and node.op not in ("input", "constant"):
                _fill(env[id(node)], reference[id(node)], numpy_to_torch)
        lowered._launch(kernel, env, symbols)
        members = _kernel_nodes(gen, sched, nodes_by_id)
        ir_lines = list(gen.node_lines) + [sched.node_line(n) for n in members
                                           if sched.node_line(n) not in gen.node_lines]
        check = KernelCheck(index, gen.name, ir_lines, _user_lines(members), kernel.path)
        ops = max(len(gen.node_lines), 1)
        for node in gen.writes:
            if id(node) not in reference:
                continue
            got = torch_to_numpy(env[id(node)].detach().to("cpu"))
            want = reference[id(node)]
            if got.shape != want.shape and got.size == want.size:
                got = got.reshape(want.shape)
            _compare(got, want, node.dtype, ops, check)
            if not check.ok:
                check.detail = f"buffer of {sched.node_line(node).split('=')[0].strip()}: {check.detail}"
                break
        checks.append(check)

    # Chained: the kernels as the compiled function runs them, each reading what the earlier ones
    # wrote. A kernel that agrees in isolation but not here reads a buffer the schedule did not fill
    # the way the IR says (a plumbing bug between kernels, not in any one kernel's code).
    env = _buffers(lowered, inputs, symbols, to_device)
    for index, kernel in enumerate(compiled):
        lowered._launch(kernel, env, symbols)
        if not checks[index].ok:
            break
        gen = kernel.generated
        chained = KernelCheck(index, f"{gen.name} (run after the kernels before it)", checks[index].ir_nodes,
                              checks[index].user_lines, kernel.path)
        for node in gen.writes:
            if id(node) in reference:
                got = torch_to_numpy(env[id(node)].detach().to("cpu"))
                want = reference[id(node)]
                if got.shape != want.shape and got.size == want.size:
                    got = got.reshape(want.shape)
                _compare(got, want, node.dtype, max(len(gen.node_lines), 1) * (index + 1), chained)
        if not chained.ok:
            chained.detail = ("agrees with the interpreter on the interpreter's inputs but not on what the "
                              "earlier kernels left in its input buffers: " + chained.detail)
            checks.append(chained)
            break
    else:
        final = KernelCheck(len(compiled), "graph outputs", [sched.node_line(n) for n in graph.outputs],
                            _user_lines(graph.outputs), None)
        for node in graph.outputs:
            got = torch_to_numpy(lowered._output(node, env).detach().to("cpu"))
            _compare(got, reference[id(node)], node.dtype, max(len(graph.nodes), 1), final)
        if not final.ok:
            final.detail = "every kernel agrees, but the returned buffers do not: " + final.detail
        checks.append(final)
    return checks


def _buffers(lowered, inputs: list, symbols: dict, to_device: str) -> dict:
    """id(node) -> torch tensor for every input, constant and stored buffer, as LoweredGraph.__call__ sets them up."""
    import torch
    from tritonflow.kernels.lowering import _evaluate, torch_dtype
    graph, sched = lowered.graph, lowered.schedule
    env = {id(node): tensor for node, tensor in zip(graph.inputs, inputs)}
    for node in graph.nodes:
        if node.op == "constant":
            env[id(node)] = lowered._constant(node, inputs[0].device if inputs else to_device)
    for node in sched.stored.values():
        target = sched.aliases.get(id(node), node)
        if id(target) in env and target is not node:
            env[id(node)] = env[id(target)]
            continue
        shape = tuple(_evaluate(d, symbols) for d in node.shape)
        # Poisoned, not empty: an element no kernel writes shows up as NaN (or -123), instead of
        # whatever an earlier run happened to leave in recycled memory.
        buffer = torch.empty(shape, dtype=torch_dtype(node.dtype), device=inputs[0].device if inputs else to_device)
        buffer.fill_(float("nan") if node.dtype.is_floating_point else (True if node.dtype.is_bool else -123))
        env[id(node)] = buffer
    for node_id in list(sched.stored):
        target = sched.aliases.get(node_id)
        if target is not None:
            env[node_id] = env[id(target)]
    return env


def _kernel_nodes(gen, sched, nodes_by_id: dict) -> list:
    """The IR nodes a kernel computes: those its source names, and everything between what it
    reads and what it writes (views fold into index math and may not be named in the source)."""
    found = [n for n in nodes_by_id.values() if sched.node_line(n) in gen.node_lines and n.op != "input"]
    boundary = {id(n) for n in gen.reads}
    pending = [n for n in gen.writes if n.op not in ("input", "constant")]
    seen = {id(n) for n in found}
    while pending:
        node = pending.pop()
        if id(node) in seen or id(node) in boundary or node.op in ("input", "constant"):
            continue
        seen.add(id(node))
        found.append(node)
        pending.extend(node.inputs)
    order = {id(n): i for i, n in enumerate(sched.graph.nodes)}
    return sorted(found, key=lambda n: order.get(id(n), -1))


def _fill(buffer, value: np.ndarray, numpy_to_torch) -> None:
    source = numpy_to_torch(np.ascontiguousarray(value), "cpu").to(buffer.device)
    if tuple(source.shape) != tuple(buffer.shape):
        source = source.reshape(buffer.shape)
    buffer.copy_(source)


# ---------------------------------------------------------------- entry points

def verify_entry(entry, arrays: list, name: str = "fn") -> VerifyReport:
    """Check one compiled entry of a JitFunction on the arrays its runner takes."""
    report = VerifyReport(name, entry.backend)
    runner = entry.runner
    if entry.backend == "numpy" or not hasattr(runner, "lowered"):
        from tritonflow.storage import torch_to_numpy
        host = [a if isinstance(a, np.ndarray) else torch_to_numpy(a) for a in arrays]
        report.checks = _check_nodes(entry.graph, host)
        return report
    symbols = {}
    if getattr(runner, "symbolic", False):
        from tritonflow.interpreter import bind_symbols
        symbols = {str(k): v for k, v in bind_symbols(entry.graph, arrays).items()}
    report.checks = _check_kernels(runner.lowered, arrays, entry.device, symbols)
    return report


def verify(fn, *args, backend: str | None = None, **kwargs) -> VerifyReport:
    """Run `fn` (a function or a `tritonflow.jit` function) kernel by kernel against the interpreter.

    Returns a VerifyReport: `.ok`, `.first_divergence` (None when every kernel agrees) and a
    readable `str()`. `backend` picks the backend for a plain function (default: the one jit picks).
    """
    from tritonflow.jit_function import as_jit_function
    jitfn, args, kwargs = as_jit_function(fn, args, kwargs, backend=backend, who="verify")
    entry, leaves = jitfn.entry_for(args, kwargs)
    if entry.backward is not None:  # a differentiable entry: verify its forward graph
        forward = getattr(entry, "forward_entry", None)
        if forward is not None:
            entry = forward
    arrays = jitfn.input_arrays(entry, leaves)
    return verify_entry(entry, arrays, getattr(jitfn.fn, "__qualname__", "fn"))


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
