"""Lowering stage: the triton backend object — what the front end reaches the lowering through.

tritonflow/backends.py (the core's registry) imports this module by name the first time someone
asks for backend "triton", so nothing in the core or the front end imports kernels/. The object
wraps the rest of kernels/: `compile` (lower() for a target and a runner over the LoweredGraph),
`run_op` (eager CUDA ops, runtime/eager.py), `cache_stats` (cache.py), `kernel_run`, the per-kernel
hook that debug.verify uses to judge each kernel on the interpreter's values, and ahead-of-time
compilation for a GPU target: `compile_ahead` (kernels/aot.py) and `cost` (kernels/cost_model.py).
"""
from __future__ import annotations

import numpy as np

from tritonflow.interpreter import bind_symbols, has_symbolic_inputs
from tritonflow.ir.graph import Graph, Node
from tritonflow.ir.types import TensorType
from tritonflow.kernels import cache
from tritonflow.kernels.lowering import KernelInfo, LoweredGraph, lower
from tritonflow.ops.registry import OpDef
from tritonflow.storage import numpy_to_torch, torch_to_numpy


class TritonRunner:
    """A compiled graph on the triton backend: NumPy arrays (CPU, Triton's interpreter) or torch tensors in."""

    def __init__(self, graph: Graph, mode: str = "default", target=None) -> None:
        self.graph = graph
        self.lowered: LoweredGraph = lower(graph, mode=mode, target=target)
        self.symbolic = has_symbolic_inputs(graph)

    @property
    def kernels(self) -> list[KernelInfo]:
        return self.lowered.kernels

    def symbols(self, arrays: list) -> dict:
        """Symbol name -> size, read off the inputs (empty for a graph with static shapes)."""
        if not self.symbolic:
            return {}
        return {str(k): v for k, v in bind_symbols(self.graph, arrays).items()}

    def __call__(self, arrays: list, device: str = "cpu") -> list:
        symbols = self.symbols(arrays)
        if device == "cpu":
            outs = self.lowered([numpy_to_torch(a) for a in arrays], symbols)
            return [torch_to_numpy(o) for o in outs]
        return self.lowered(list(arrays), symbols)


class KernelStep:
    """One kernel of a KernelRun, as debug.verify reports it."""

    def __init__(self, index: int, kernel, nodes: list, ir_lines: list) -> None:
        self.index = index
        self.kernel = kernel
        gen = kernel.generated
        self.name: str = gen.name
        self.path: str = kernel.path
        self.node_lines: list = list(gen.node_lines)  # the IR lines the generated source names
        self.ir_lines: list = ir_lines                # those and the view nodes folded into its indexing
        self.nodes: list = nodes                      # every IR node it computes, in graph order
        self.reads: list = list(gen.reads)            # nodes whose buffers it reads
        self.writes: list = list(gen.writes)          # nodes whose buffers it writes


class KernelRun:
    """A compiled call run kernel by kernel, on NumPy values: fill buffers, launch, read them back.

    Buffers no kernel has written yet hold NaN (or -123 for integers), never leftover memory."""

    def __init__(self, runner: TritonRunner, arrays: list, device: str) -> None:
        lowered = runner.lowered
        self.graph: Graph = lowered.graph
        self._schedule = lowered.schedule
        target = "cpu" if device == "cpu" else device
        inputs = [numpy_to_torch(a, target) if isinstance(a, np.ndarray) else a for a in arrays]
        self._run = lowered.start_run(inputs, runner.symbols(arrays), poison=True)
        order = {id(n): i for i, n in enumerate(self._schedule.graph.nodes)}
        self.steps = []
        for index, kernel in enumerate(self._run.kernels):
            nodes = self._computed_nodes(kernel.generated, order)
            lines = list(kernel.generated.node_lines)
            lines += [self.node_line(n) for n in nodes if self.node_line(n) not in lines]
            self.steps.append(KernelStep(index, kernel, nodes, lines))

    def node_line(self, node: Node) -> str:
        return self._schedule.node_line(node)

    def has_buffer(self, node: Node) -> bool:
        return id(node) in self._run.buffers

    def fill(self, node: Node, value: np.ndarray) -> None:
        """Overwrite `node`'s buffer with `value` (same number of elements)."""
        buffer = self._run.buffers[id(node)]
        source = numpy_to_torch(np.ascontiguousarray(value), "cpu").to(buffer.device)
        buffer.copy_(source.reshape(buffer.shape) if tuple(source.shape) != tuple(buffer.shape) else source)

    def read(self, node: Node) -> np.ndarray:
        return torch_to_numpy(self._run.buffers[id(node)].detach().to("cpu"))

    def launch(self, step: KernelStep) -> None:
        self._run.launch(step.kernel)

    def output(self, node: Node) -> np.ndarray:
        """What the call returns for graph output `node`, after every kernel ran."""
        return torch_to_numpy(self._run.output(node).detach().to("cpu"))

    def _computed_nodes(self, gen, order: dict) -> list:
        """The IR nodes a kernel computes: those its source names, and everything between what it
        reads and what it writes (views fold into index math and may not be named in the source)."""
        names = set(gen.node_lines)
        candidates = list(self.graph.inputs) + list(self.graph.nodes)
        found = [n for n in candidates if n.op != "input" and self.node_line(n) in names]
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
        return sorted(found, key=lambda n: order.get(id(n), -1))


class TritonBackend:
    """Backend "triton": graphs lowered to fused Triton kernels (see tritonflow/backends.py)."""

    name = "triton"

    def compile(self, graph: Graph, *, mode: str = "default", target=None) -> TritonRunner:
        """`graph` lowered for `target` (tritonflow/target.py; None: the default target)."""
        return TritonRunner(graph, mode, target)

    def compile_ahead(self, functions: list, *, mode: str = "default", jobs=None, cache_dir=None,
                      share_programs: bool = False) -> list:
        """Ahead-of-time compilation (kernels/aot.py): one AotReport per (name, [(label, Graph)],
        symbols, target), every kernel compiled with Triton for its GPU target on this machine."""
        from tritonflow.kernels.aot import compile_many
        return compile_many(functions, mode=mode, jobs=jobs, cache_dir=cache_dir, share_programs=share_programs)

    def cost(self, graphs: list, target, symbols: dict, *, mode: str = "default"):
        """The static cost model of `graphs` lowered for `target` (kernels/cost_model.py), no compiling."""
        from tritonflow.kernels.aot import graphs_cost
        return graphs_cost(graphs, target, symbols, mode=mode)

    def run_op(self, op: OpDef, arrays: list, attrs: dict, out_type: TensorType):
        """One primitive on torch tensors (CUDA, or CPU under TRITON_INTERPRET=1), as a one-op graph."""
        from tritonflow.kernels.runtime import eager
        return eager.run_op(op, arrays, attrs, out_type)

    def cache_stats(self) -> dict:
        return cache.stats()

    def kernel_run(self, runner: TritonRunner, arrays: list, device: str) -> KernelRun:
        """`runner`'s call on `arrays`, set up for the caller to launch its kernels one at a time."""
        return KernelRun(runner, arrays, device)


BACKEND = TritonBackend()
