"""Profiler stage: `Profile`, what `with tritonflow.profile() as prof:` records into.

While open it is the active recorder (tritonflow/profile_hooks.py), and the runtime reports to it:
- jit: each call of a compiled function (`compiled_call`), wall time around the graph's run;
- the NumPy interpreter: each IR node (`node_step`), host time and the bytes its arrays hold;
- the kernel launcher: each kernel (`kernel_launch`); on a GPU timed by CUDA events recorded
  around the launch on the current stream and read when the block closes, on CPU (Triton's
  interpreter) by the host clock.
Bytes and FLOPs of a kernel come from the kernels' cost model where it provides one: a kernel
object with a `cost` attribute holding `bytes` and `flops` (see `kernel_cost`).
"""
from __future__ import annotations

import re
import time

from tritonflow import profile_hooks as hooks
from tritonflow.profiler.events import Cost, Event, aggregate

_LOCATION = re.compile(r"#\s*(\S+:[0-9]+)\s*$")


def kernel_cost(kernel) -> Cost | None:
    """The cost model's estimate for one launch of `kernel`, where the kernel carries one."""
    cost = getattr(kernel, "cost", None)
    if cost is None:
        return None
    return Cost(getattr(cost, "bytes", None), getattr(cost, "flops", None))


def _kernel_sources(kernel) -> list:
    sources = []
    for line in getattr(getattr(kernel, "generated", None), "node_lines", []):
        found = _LOCATION.search(str(line))
        if found and found.group(1) not in sources:
            sources.append(found.group(1))
    return sources


class Profile:
    """Timed events of compiled functions, IR nodes and kernels; see the module docstring."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._origin = time.perf_counter_ns()
        self._positions: dict = {}   # id(graph) -> {id(node): its index in graph.nodes}
        self._open = False

    # ---------------------------------------------------------------- the block

    def __enter__(self) -> "Profile":
        self._origin = time.perf_counter_ns()
        self._open = True
        hooks.push(self)
        return self

    def __exit__(self, *exc) -> None:
        hooks.pop(self)
        self._open = False
        self._read_gpu_times()

    def _now(self) -> int:
        return time.perf_counter_ns() - self._origin

    def _timed(self, run):
        start = self._now()
        result = run()
        return result, start, self._now() - start

    # ---------------------------------------------------------------- what the runtime reports

    def compiled_call(self, fn, entry, run):
        """Time one call of a compiled function (`run()` does it)."""
        name = getattr(fn, "display_name", None) or getattr(fn, "__name__", "compiled")
        result, start, duration = self._timed(run)
        self.events.append(Event("function", name, ("function", name, entry.backend), start, duration,
                                 device=f"{entry.device} ({entry.backend})"))
        return result

    def node_step(self, graph, nodes: list, run_step):
        """A stand-in for the interpreter's per-node step function: the same call, timed. Steps run
        in order, so the k-th call is `nodes[k]`."""
        positions = self._positions.get(id(graph))
        if positions is None:
            positions = self._positions[id(graph)] = {id(n): i for i, n in enumerate(graph.nodes)}
        steps = iter(nodes)

        def step(op, arrays, attrs, out_type):
            node = next(steps)
            result, start, duration = self._timed(lambda: run_step(op, arrays, attrs, out_type))
            index = positions.get(id(node), -1)
            nbytes = sum(getattr(a, "nbytes", 0) for a in arrays) + getattr(result, "nbytes", 0)
            self.events.append(Event("node", f"%{index} {node.op} ({graph.name})", ("node", id(graph), index),
                                     start, duration, source=[node.loc.short()] if node.loc else [],
                                     cost=Cost(bytes=int(nbytes))))
            return result
        return step

    def kernel_launch(self, graph, kernel, device, launch) -> None:
        """Launch one kernel (`launch()`) and time it: CUDA events on a GPU, the host clock on CPU."""
        name = f"{getattr(getattr(kernel, 'generated', None), 'name', 'kernel')} ({graph.name})"
        key = ("kernel", id(graph), name)
        is_cuda = getattr(device, "type", str(device)) == "cuda"
        if not is_cuda:
            _, start, duration = self._timed(launch)
            self.events.append(Event("kernel", name, key, start, duration, source=_kernel_sources(kernel),
                                     cost=kernel_cost(kernel)))
            return
        import torch
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        _, start, duration = self._timed(launch)
        end.record()
        self.events.append(Event("kernel", name, key, start, duration, device="cuda", source=_kernel_sources(kernel),
                                 cost=kernel_cost(kernel), pending=(begin, end)))

    def _read_gpu_times(self) -> None:
        pending = [e for e in self.events if e.pending is not None]
        if not pending:
            return
        import torch
        torch.cuda.synchronize()
        for event in pending:
            begin, end = event.pending
            event.duration_ns = int(begin.elapsed_time(end) * 1e6)   # milliseconds -> ns
            event.pending = None

    # ---------------------------------------------------------------- results

    def key_averages(self, kind: str | None = None) -> list:
        """Rows of added-up events, the longest total first ("function", "node", "kernel" or all)."""
        return aggregate(self.events, kind)

    def table(self, row_limit: int = 20) -> str:
        from tritonflow.profiler.report import format_table
        return format_table(self, row_limit)

    def export_chrome_trace(self, path) -> None:
        from tritonflow.profiler.report import write_chrome_trace
        write_chrome_trace(self, path)

    def __str__(self) -> str:
        return self.table()


def profile() -> Profile:
    """`with tritonflow.profile() as prof:` records compiled calls, IR nodes and kernels."""
    return Profile()
