"""Lowering stage: `lower(graph)` and the LoweredGraph it returns — the compiled function's runtime.

`lower` schedules the graph once, for a `Target` (tritonflow/target.py: the interpreter or a CUDA
device; the default one unless given), which decides the generated code's target-specific parts and
every launch configuration. A LoweredGraph holds one set of generated kernels per
*variant*: the layout of its inputs (contiguous, or strided with strides passed as arguments)
and the index width (32-bit, or 64-bit when an iteration space could pass 2**31 elements).
Calling it checks the inputs, picks the variant, allocates the buffers the schedule stores
(outputs and intermediates between kernels) and launches the kernels in order.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import sympy

from tritonflow.kernels import cache, heuristics
from tritonflow.kernels.codegen.pointwise import generate_pointwise
from tritonflow.kernels.codegen.reduction import generate_reduction
from tritonflow.kernels.codegen.context import GeneratedKernel
from tritonflow.kernels.fusion import Schedule, schedule_graph
from tritonflow import matmul_precision as _matmul_precision
from tritonflow.errors import LoweringError
from tritonflow.ir.graph import Graph
from tritonflow.target import Target, get_target
from tritonflow import profile_hooks as profiler_hooks

INT32_LIMIT = 2 ** 31
MODES = ("default", "max-autotune", "reduce-overhead")
log = logging.getLogger("tritonflow.kernels")


@dataclass
class KernelInfo:
    """What `explain()` shows for one kernel."""

    name: str
    source: str
    path: str
    node_lines: list
    kind: str = ""


class CompiledKernel:
    """A generated kernel bound to its imported @triton.jit function."""

    def __init__(self, generated: GeneratedKernel, fn, path: str, key: str) -> None:
        self.generated = generated
        self.fn = fn
        self.path = path
        self.key = key
        self.tuned: dict = {}


def torch_dtype(dtype):
    import torch
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
            "float64": torch.float64, "int8": torch.int8, "int32": torch.int32, "int64": torch.int64,
            "bool": torch.bool}[dtype.name]


def _is_contiguous(tensor) -> bool:
    """Whether `tensor` takes the contiguous variant (torch's test: size-1 dims' strides ignored).

    LoweredGraph.__call__ keys its plans with the same test that start_run picks variants with."""
    return tensor.is_contiguous()


class LoweredGraph:
    """The graph as kernels; call it with torch tensors (any strides) and the symbol values."""

    def __init__(self, graph: Graph, mode: str = "default", target: Target | str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"lower: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.graph = graph
        self.mode = mode
        self.target = get_target(target)
        self.schedule: Schedule = schedule_graph(graph, self.target)
        self._variants: dict = {}
        self._lock = threading.Lock()
        self._constants: dict = {}
        self._plans: dict = {}          # (layouts, symbols, device, precision) -> runtime.CallPlan
        self._graphed: dict = {}        # same key -> cuda_graphs.GraphedPlan (mode="reduce-overhead")
        self._noted_no_graphs = False
        default_layout = tuple(True for _ in graph.inputs)
        self._default = self._variant(default_layout, self._static_wide())

    # ------------------------------------------------------------ variants

    def _static_wide(self) -> bool:
        for node in list(self.graph.inputs) + list(self.graph.nodes):
            total = sympy.Integer(1)
            for d in node.shape:
                total = total * d
            if total.is_number and int(total) >= INT32_LIMIT:
                return True
        return False

    @property
    def compiled_kernels(self) -> list:
        """The CompiledKernels of the contiguous-input variant, in launch order (one per schedule plan)."""
        return list(self._default)

    @property
    def kernels(self) -> list:
        return [KernelInfo(k.generated.name, k.generated.source, k.path, k.generated.node_lines,
                           k.generated.kind) for k in self._default]

    def _variant(self, layout: tuple, wide: bool) -> list:
        found = self._variants.get((layout, wide))
        if found is not None:
            return found
        with self._lock:
            found = self._variants.get((layout, wide))
            if found is not None:
                return found
            layout_map = {node.name: contiguous for node, contiguous in zip(self.graph.inputs, layout)}
            compiled = [self._compile(plan, layout_map, wide) for plan in self.schedule.kernels]
            self._variants[(layout, wide)] = compiled
            return compiled

    def _compile(self, plan, layout_map: dict, wide: bool) -> CompiledKernel:
        from tritonflow.kernels.codegen.scan_scatter import generate_scan, generate_scatter
        name = f"k{plan.index}_{plan.kind}"
        try:
            if plan.kind == "pointwise":
                generated = generate_pointwise(self.schedule, plan, layout_map, wide, name)
            elif plan.kind == "reduction":
                persistent = heuristics.use_persistent(_static_rnumel(plan), rows_contiguous(plan), self.target)
                generated = generate_reduction(self.schedule, plan, layout_map, wide, name, persistent)
            elif plan.kind == "scan":
                generated = generate_scan(self.schedule, plan, layout_map, wide, name)
            elif plan.kind in ("sort", "sort_merge"):
                from tritonflow.kernels.codegen.sort import generate_sort, generate_sort_merge
                generate = generate_sort if plan.kind == "sort" else generate_sort_merge
                generated = generate(self.schedule, plan, layout_map, wide, name)
            elif getattr(plan, "template", None) is not None:
                from tritonflow.kernels.templates import generate_template  # matmul/attention templates
                generated = generate_template(self.schedule, plan, layout_map, wide, name)
            else:
                generated = generate_scatter(self.schedule, plan, layout_map, wide, name)
        except LoweringError:
            raise
        except Exception as exc:
            lines = "\n  ".join(self.schedule.node_line(m) for m in plan.members + [v for _, v in plan.outputs])
            raise LoweringError(f"code generation failed for kernel {name} ({type(exc).__name__}: {exc})\n"
                                f"  IR nodes:\n  {lines}") from exc
        ir_text = "\n".join(generated.node_lines) + "\n---\n" + generated.source
        key = cache.make_key(ir_text, self.target)
        try:
            fn, path = cache.get_kernel(key, name, lambda: generated.source)
        except Exception as exc:
            raise LoweringError(f"kernel {name} failed to load ({type(exc).__name__}: {exc})\n  IR nodes:\n  "
                                + "\n  ".join(generated.node_lines)) from exc
        return CompiledKernel(generated, fn, path, key)

    # ------------------------------------------------------------ calling

    def __call__(self, inputs: list, symbols: dict = None, device=None) -> list:
        """Run the kernels on `inputs` (torch tensors); returns the graph's outputs.

        The first call per (input layouts, symbol values, device, matmul precision) takes the
        general path and records a CallPlan (kernels/runtime/call_plan.py); later calls replay the plan.
        """
        if len(inputs) != len(self.graph.inputs):
            raise LoweringError(f"{self.graph.name}: expected {len(self.graph.inputs)} inputs, got {len(inputs)}")
        device = inputs[0].device if device is None and inputs else self._device(inputs, device)
        key = (tuple([t.is_contiguous() for t in inputs]), tuple(sorted(symbols.items())) if symbols else (),
               device, _matmul_precision._precision)
        plan = self._plans.get(key)
        if plan is not None and profiler_hooks.active() is not None:
            return self._call_general(inputs, dict(symbols or {}), device)[0]   # profiling: kernel by kernel
        if plan is not None:
            return self._run_plan(plan, key, inputs)
        from tritonflow.kernels.runtime import call_plan, launch
        launches = launch.start_recording()
        try:
            outputs, env = self._call_general(inputs, dict(symbols or {}), device)
        finally:
            launch.stop_recording()
        plan = call_plan.build_plan(self.graph, self.schedule, env, inputs, dict(symbols or {}), launches, device)
        self._plans[key] = plan
        return outputs

    def _run_plan(self, plan, key, inputs: list) -> list:
        if self.mode != "reduce-overhead":
            return plan.run(inputs)
        if plan.interpreted:
            if not self._noted_no_graphs:
                self._noted_no_graphs = True
                log.warning("tritonflow: %s: mode='reduce-overhead' captures CUDA graphs; on %s tensors "
                            "(Triton's interpreter) it runs as mode='default'", self.graph.name, plan.device)
            return plan.run(inputs)
        graphed = self._graphed.get(key)
        if graphed is None:
            from tritonflow.kernels.runtime.cuda_graphs import GraphedPlan
            graphed = self._graphed[key] = GraphedPlan(plan, self.graph.name)
        return graphed.run(inputs)

    @staticmethod
    def _device(inputs: list, device):
        import torch
        if device is None:
            return inputs[0].device if inputs else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return device if isinstance(device, torch.device) else torch.device(device)

    def _call_general(self, inputs: list, symbols: dict, device) -> tuple:
        """Every decision made afresh: variant, buffers, launch configurations (the recorded path)."""
        run = self.start_run(inputs, symbols, device)
        for kernel in run.kernels:
            run.launch(kernel)
        return [run.output(node) for node in self.graph.outputs], run.buffers

    def start_run(self, inputs: list, symbols: dict | None = None, device=None, *, poison: bool = False) -> "KernelRun":
        """A call set up as `__call__`'s general path sets it up (variant, buffers), its kernels left
        for the caller to launch one at a time (the per-kernel hook debug.verify uses).

        poison=True fills the stored buffers with NaN (or -123, True) instead of leaving them
        uninitialized, so an element no kernel writes shows up instead of whatever memory held."""
        import torch
        symbols = dict(symbols or {})
        device = self._device(inputs, device)
        layout = tuple(_is_contiguous(t) for t in inputs)
        compiled = self._variant(layout, self._static_wide() or self._dynamic_wide(symbols))
        env = {id(node): tensor for node, tensor in zip(self.graph.inputs, inputs)}
        for node in self.graph.nodes:
            if node.op == "constant":
                env[id(node)] = self._constant(node, device)
        for node in self.schedule.stored.values():
            target = self.schedule.aliases.get(id(node), node)
            if id(target) in env and target is not node:
                env[id(node)] = env[id(target)]
                continue
            shape = tuple(_evaluate(d, symbols) for d in node.shape)
            env[id(node)] = torch.empty(shape, dtype=torch_dtype(node.dtype), device=device)
            if poison:
                dtype = node.dtype
                env[id(node)].fill_(float("nan") if dtype.is_floating_point else (True if dtype.is_bool else -123))
        for node_id, node in list(self.schedule.stored.items()):
            target = self.schedule.aliases.get(node_id)
            if target is not None:
                env[node_id] = env[id(target)]
        return KernelRun(self, compiled, env, symbols)

    def _output(self, node, env):
        buffer = self.schedule.output_buffers.get(id(node), node)
        return env[id(buffer)]

    def _dynamic_wide(self, symbols: dict) -> bool:
        for node in list(self.graph.inputs) + list(self.graph.nodes):
            total = 1
            for d in node.shape:
                total *= _evaluate(d, symbols)
            if total >= INT32_LIMIT:
                return True
        return False

    def _constant(self, node, device):
        key = (id(node), str(device))
        found = self._constants.get(key)
        if found is None:
            import torch
            value = np.ascontiguousarray(node.attrs["value"])
            if node.dtype.name == "bfloat16":
                found = torch.from_numpy(value.view(np.uint16).copy()).view(torch.bfloat16)
            else:
                found = torch.from_numpy(value.astype(node.dtype.np).copy())
            found = found.reshape(tuple(int(d) for d in node.shape)).to(device)
            self._constants[key] = found
        return found

    def _launch(self, kernel: CompiledKernel, env: dict, symbols: dict) -> None:
        from tritonflow.kernels.runtime.launch import launch
        recorder = profiler_hooks.active()   # tritonflow.profile(): time each kernel
        if recorder is None:
            launch(kernel, env, symbols, self.mode, self.target)
            return
        device = next((t.device for t in env.values() if hasattr(t, "device")), None)
        recorder.kernel_launch(self.graph, kernel, device,
                               lambda: launch(kernel, env, symbols, self.mode, self.target))


class KernelRun:
    """One call of a LoweredGraph whose caller launches the kernels (`LoweredGraph.start_run`).

    Between launches any buffer may be read or overwritten: `buffers` maps id(IR node) to its
    torch tensor (inputs, constants, every stored value); `kernels` are in launch order, each with
    `.generated` (name, node_lines, reads, writes) and `.path`."""

    def __init__(self, lowered: LoweredGraph, kernels: list, buffers: dict, symbols: dict) -> None:
        self.lowered = lowered
        self.kernels = kernels
        self.buffers = buffers
        self.symbols = symbols

    def launch(self, kernel: CompiledKernel) -> None:
        self.lowered._launch(kernel, self.buffers, self.symbols)

    def output(self, node):
        """The tensor the call returns for graph output `node`."""
        return self.lowered._output(node, self.buffers)


def _evaluate(d, symbols: dict) -> int:
    if isinstance(d, int):
        return d
    expr = sympy.sympify(d)
    if expr.is_number:
        return int(expr)
    return int(expr.subs({s: symbols[s.name] for s in expr.free_symbols}))


def rows_contiguous(plan) -> bool:
    """Whether a reduction plan reduces its innermost dim (rows laid out contiguously in memory)."""
    return (len(plan.shape) - 1) in plan.rdims


def _static_rnumel(plan):
    total = sympy.Integer(1)
    for d in plan.rdims:
        total = total * plan.shape[d]
    return int(total) if total.is_number else None


def lower(graph: Graph, mode: str = "default", target: Target | str | None = None) -> LoweredGraph:
    """Schedule, generate and load the kernels of `graph` for `target` (see the module docstring)."""
    return LoweredGraph(graph, mode, target)
