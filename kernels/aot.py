"""Lowering stage (ahead of time): compile a function's kernels for a named GPU on any machine.

`compile_many([(name, graphs, symbols, target), ...])` lowers each final IR graph for its target (its code and
launch configurations, as a run on that GPU would choose them at these sizes), turns every kernel
launch into a compile request with the arguments a real launch passes (contiguous inputs, 16-byte
aligned buffers, the size arguments' values), compiles them with Triton for the target
(aot_pool.py, aot_worker.py) and reports, per kernel: the configuration (blocks, warps, stages),
the grid, registers and stack (spilled) bytes per thread, shared memory against the target's
limit, wgmma/TMA use, compile seconds, and the static cost model's bytes, FLOPs and predicted
time (cost_model.py). Kernels identical in source and specialization are compiled once.

Because compilation goes through Triton's own JIT binder, each compiled kernel is filed in
Triton's cache under the key a launch on that GPU computes: `cache_dir` (or TRITON_CACHE_DIR)
prepared on a login node is a warm cache for the GPU nodes (`tritonflow precompile`).
`launch_request` makes the same request from a launch observed at run time (the test suite's
compile check: every kernel it ran in the interpreter compiles for a GPU with the same code).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from tritonflow.errors import UnsupportedError
from tritonflow.kernels import cost_model
from tritonflow import environment
from tritonflow.kernels.aot_pool import CompilePool, compile_requests, triton_available
from tritonflow.kernels.kernel_identity import program_key
from tritonflow.kernels.lowering import lower
from tritonflow.kernels.runtime.launch import launch_setup
from tritonflow.target import Target, get_target

ABBREVIATIONS = (("XBLOCK", "X"), ("RBLOCK", "R"), ("BLOCK_M", "BM"), ("BLOCK_N", "BN"), ("BLOCK_K", "BK"),
                 ("GROUP_M", "G"), ("num_warps", "w"), ("num_stages", "s"))


@dataclass
class KernelReport:
    """One kernel of an ahead-of-time compile (module docstring)."""

    graph: str
    name: str
    kind: str
    config: dict
    grid: tuple
    path: str
    shared_limit: int
    registers: Optional[int] = None
    stack_bytes: Optional[int] = None      # local memory per thread: register spills
    shared_bytes: Optional[int] = None     # Triton's dynamic shared memory plus the cubin's static
    wgmma: Optional[bool] = None
    tma: Optional[bool] = None
    seconds: float = 0.0
    error: Optional[str] = None
    same_as: Optional[str] = None          # an earlier kernel of the report with this exact compile
    cost: Optional[cost_model.KernelCost] = None

    @property
    def spills(self) -> bool:
        return bool(self.stack_bytes)

    @property
    def over_shared(self) -> bool:
        return self.shared_bytes is not None and self.shared_bytes > self.shared_limit

    def config_text(self) -> str:
        parts = [f"{short}{self.config[key]}" for key, short in ABBREVIATIONS if key in self.config]
        if "num_stages" not in self.config and self.error is None:
            parts.append("s3")  # Triton's default
        return " ".join(parts)


@dataclass
class AotReport:
    """All kernels of one function compiled for one target; `str()` is the table."""

    name: str
    target: Target
    symbols: dict
    kernels: list = field(default_factory=list)
    cost: Optional[cost_model.FunctionCost] = None
    symbol_names: dict = field(default_factory=dict)   # graph symbol -> the user's name for the dim

    @property
    def failures(self) -> list:
        return [k for k in self.kernels if k.error]

    @property
    def spilled(self) -> list:
        return [k for k in self.kernels if k.spills]

    @property
    def over_shared(self) -> list:
        return [k for k in self.kernels if k.over_shared]

    @property
    def ok(self) -> bool:
        return not (self.failures or self.spilled or self.over_shared)

    def __str__(self) -> str:
        return render_table(self)

    __repr__ = __str__


def render_table(report: AotReport) -> str:
    t = report.target
    sizes = ", ".join(f"{report.symbol_names.get(k, k)}={v}" for k, v in sorted(report.symbols.items()))
    lines = [f"tritonflow.aot: {report.name} for {t.name} ({t.description}; {t.sm_count} SMs, "
             f"{t.shared_memory // 1024} KB shared per program)" + (f"; sizes {sizes}" if sizes else ""), "",
             "| graph | kernel | kind | config | grid | regs | stack B | shared KB | wgmma | tma | compile s "
             "| bytes MB | GFLOP | predicted us |",
             "| --- | --- | --- | --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    for k in report.kernels:
        cost = k.cost
        money = (f"{cost.bytes / 1e6:.1f} | {cost.flops / 1e9:.2f} | {1e6 * cost.seconds:.1f}" if cost
                 else " | | ")
        if k.error:
            first = k.error.strip().splitlines()[-1][:160]
            lines.append(f"| {k.graph} | {k.name} | {k.kind} | {k.config_text()} | {k.grid} | FAILED: {first} "
                         f"| | | | | {k.seconds:.2f} | {money} |")
            continue
        shared = f"{k.shared_bytes / 1024:.1f}" + (" OVER" if k.over_shared else "")
        compile_s = f"{k.seconds:.2f}" if k.same_as is None else f"= {k.same_as}"
        lines.append(f"| {k.graph} | {k.name} | {k.kind} | {k.config_text()} | {k.grid} | {k.registers} "
                     f"| {k.stack_bytes} | {shared} | {_yes(k.wgmma)} | {_yes(k.tma)} | {compile_s} | {money} |")
    lines.append("")
    lines.append(f"{len(report.kernels)} kernels: {len(report.failures)} failed, {len(report.spilled)} spill, "
                 f"{len(report.over_shared)} over the shared-memory limit")
    if report.cost is not None:
        lines.append(str(report.cost))
    return "\n".join(lines)


def _yes(flag) -> str:
    return "yes" if flag else ("" if flag is None else "no")


def kernel_request(kernel, symbols: dict, target: Target):
    """(compile request, config, grid) of a lowered kernel's launch at `symbols`; None if it never launches."""
    g = kernel.generated
    if g.numel(symbols) == 0:
        return None
    config, grid = launch_setup(kernel, symbols, target).heuristic()
    args = []
    for arg in g.args:
        if arg.kind == "buffer":
            args.append(["ptr", arg.ref.dtype.name, True])   # fresh torch allocations are 256-byte aligned
        elif arg.kind == "symbol":
            args.append(["int", int(symbols[arg.ref])])
        else:
            raise UnsupportedError(f"aot: kernel {g.name} takes strides (non-contiguous inputs); "
                                   "ahead-of-time compilation assumes contiguous inputs")
    return _request(kernel, args, config, target), config, grid


def launch_request(kernel, args: list, config: dict, target: Target) -> dict:
    """The compile request of a launch seen at run time (tensors and integers as passed)."""
    stand_ins = []
    for value in args:
        if hasattr(value, "data_ptr"):
            stand_ins.append(["ptr", str(value.dtype).replace("torch.", ""), value.data_ptr() % 16 == 0])
        else:
            stand_ins.append(["int", int(value)])
    return _request(kernel, stand_ins, config, target)


def _request(kernel, args: list, config: dict, target: Target) -> dict:
    return {"path": kernel.path, "name": kernel.generated.name, "args": args, "kwargs": dict(config),
            "arch": target.arch, "warp_size": target.warp_size}


def request_identity(request: dict) -> str:
    """Requests equal in this compile the same kernel (the module path is named by its source's key)."""
    return json.dumps(request, sort_keys=True)


def program_identity(kernel, request: dict) -> str:
    """Requests equal in this compile the same program: equal but for the kernel's generated names
    and comments (kernel_identity.py), with the same arguments, configuration and target."""
    rest = {k: v for k, v in request.items() if k not in ("path", "name")}
    return json.dumps([program_key(kernel.generated.source, kernel.generated.name), rest], sort_keys=True)


def _check_target(target) -> Target:
    target = get_target(target)
    if target.interpreted:
        raise UnsupportedError("aot: choose a GPU target to compile for (sm_80, sm_89, sm_90, ...); the "
                               "interpreter target has nothing to compile")
    return target


def lowered_launches(graphs: list, target: Target, symbols: dict, mode: str = "default"):
    """Per kernel launch of `graphs` ([(label, Graph)]) lowered for `target`:
    (label, lowered graph, schedule plan, kernel, compile request, config, grid)."""
    for label, graph in graphs:
        lowered = lower(graph, mode=mode, target=target)
        for plan, kernel in zip(lowered.schedule.kernels, lowered.compiled_kernels):
            made = kernel_request(kernel, symbols, target)
            if made is not None:
                yield (label, lowered, plan, kernel) + made


def graphs_cost(graphs: list, target, symbols: Optional[dict] = None, mode: str = "default"):
    """The cost model of `graphs` (final IR graphs) lowered for `target`, without compiling anything."""
    target = _check_target(target)
    symbols = dict(symbols or {})
    kernels = [cost_model.kernel_cost(lowered.schedule, plan, kernel, config, grid, symbols, target)
               for _, lowered, plan, kernel, _, config, grid in lowered_launches(
                   [("graph", g) for g in graphs], target, symbols, mode)]
    return cost_model.function_cost(kernels, graphs, symbols, target)


def compile_many(functions: list, *, mode: str = "default", jobs: Optional[int] = None,
                 cache_dir: Optional[str] = None, share_programs: bool = False) -> list:
    """One AotReport per (name, [(label, Graph)], symbols, target) of `functions`, compiled together:
    one pool of workers, and a kernel several functions share is compiled once. `share_programs`:
    also compile once the kernels that are one program under different generated names (the two
    layers of a model) — for a resource check; a cache being warmed needs every source compiled,
    since Triton keys its cache by the source."""
    triton_available()
    # Workers start compiling with the first distinct kernel, while the rest are still being lowered.
    pool = None if (jobs == 1 and cache_dir is None and not environment.triton_interpret()) else \
        CompilePool(jobs, cache_dir)
    reports: list = []
    requests: list = []          # the distinct compiles
    compile_of: list = []        # per (report, kernel): its position in `requests`
    position_of: dict = {}       # request identity -> position in `requests`
    first_kernel: dict = {}      # position -> "function/graph/kernel" that asked for it first
    for name, graphs, symbols, target in functions:
        target = _check_target(target)
        symbols = dict(symbols or {})
        report = AotReport(name, target, symbols)
        for label, lowered, plan, kernel, request, config, grid in lowered_launches(graphs, target, symbols, mode):
            entry = KernelReport(label, kernel.generated.name, kernel.generated.kind, config, grid, kernel.path,
                                 target.shared_memory)
            entry.cost = cost_model.kernel_cost(lowered.schedule, plan, kernel, config, grid, symbols, target)
            identity = program_identity(kernel, request) if share_programs else request_identity(request)
            if identity in position_of:
                entry.same_as = first_kernel[position_of[identity]]
            else:
                position_of[identity] = len(requests)
                first_kernel[len(requests)] = f"{label}/{entry.name}" if len(functions) == 1 else \
                    f"{name}/{label}/{entry.name}"
                requests.append(request)
                if pool is not None:
                    pool.submit(request)
            compile_of.append((report, entry, position_of[identity]))
            report.kernels.append(entry)
        report.cost = cost_model.function_cost([k.cost for k in report.kernels], [g for _, g in graphs], symbols,
                                               target)
        reports.append(report)
    results = pool.results() if pool is not None else compile_requests(requests, jobs=1)
    for _, entry, position in compile_of:
        _fill(entry, results[position], duplicate=entry.same_as is not None)
    return reports


def _fill(entry: KernelReport, result: dict, duplicate: bool) -> None:
    entry.error = result.get("error")
    entry.seconds = 0.0 if duplicate else float(result.get("seconds", 0.0))
    if entry.error:
        return
    entry.registers = result["registers"]
    entry.stack_bytes = result["stack_bytes"]
    entry.shared_bytes = result["shared"] + result["static_shared"]
    entry.wgmma = result["wgmma"]
    entry.tma = result["tma"]
