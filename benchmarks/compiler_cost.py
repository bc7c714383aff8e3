"""Benchmark: the compiler's own cost — trace plus passes — on generated graphs of growing size.

A generated program is a loop over a small rotating set of ops (elementwise, broadcasting,
reshape/transpose chains, a reduction) so every pass has work; its node count is measured from the
traced graph, never assumed. The target: at least 20,000 nodes per second, and 10x the nodes
costing at most 12x the time (linear growth).

Compiling is single-threaded, so the figures judged are the process's CPU time (best of the
repeats); wall time is reported beside it. On an idle machine the two agree; on a shared one the
wall time measures the other processes' load as much as the compiler.
"""
from __future__ import annotations

import time

import numpy as np

import tritonflow as tflow
from tritonflow.tracer import guards, pytree
from tritonflow.tracer.trace import trace
from tritonflow.jit_function import JitFunction, gc_paused
from tritonflow.passes.pipeline import run_passes

SIZES = (100, 1_000, 10_000)
TARGET_NODES_PER_S = 20_000
TARGET_SCALING = 12.0


def make_program(n_steps: int):
    """A function of (x, w) recording about 10 nodes per step."""
    def program(x, w):
        h = x
        for i in range(n_steps):
            kind = i % 4
            if kind == 0:
                h = tflow.tanh(h * 0.5 + w)
            elif kind == 1:
                h = (h - w).reshape(8, 4).transpose(0, 1).transpose(0, 1).reshape(4, 8)
            elif kind == 2:
                h = tflow.maximum(h, w * w) + h.sum(dim=-1, keepdim=True) * 0.01
            else:
                h = tflow.where(h > 0, h, -h) + 1.0
        return h
    return program


def compile_once(fn, args: tuple) -> dict:
    """Seconds (CPU and wall) of trace and passes for one fresh compile of `fn`, done the way
    `JitFunction.build` does it (the collector paused, no pass record kept), and the node count."""
    leaves: list = []
    pytree.flatten((args, {}), leaves)
    keys = guards.tensor_keys(leaves, False)
    with gc_paused():
        wall0, cpu0 = time.perf_counter(), time.process_time()
        traced = trace(fn, args, {}, leaves, keys, "generated")
        cpu1 = time.process_time()
        run_passes(traced.graph)
        wall2, cpu2 = time.perf_counter(), time.process_time()
    return {"nodes": len(traced.graph.nodes), "trace_s": cpu1 - cpu0, "passes_s": cpu2 - cpu1,
            "total_s": cpu2 - cpu0, "wall_s": wall2 - wall0}


def jit_build_seconds(fn, args: tuple) -> float:
    """One whole `JitFunction.build` (trace, passes, guards, runner): the cost of a cache miss."""
    jf = JitFunction(fn, backend="numpy")
    key, leaves = jf.key_of(args, {})
    start = time.perf_counter()
    jf.build(key, leaves, args, {})
    return time.perf_counter() - start


def steps_for(nodes: int, args: tuple) -> int:
    """The loop length that records about `nodes` nodes (measured on a small trace)."""
    per_100 = compile_once(make_program(100), args)["nodes"]
    return max(1, round(nodes * 100 / per_100))


def run(quick: bool = False) -> dict:
    rng = np.random.default_rng(0)
    args = (tflow.from_numpy(rng.standard_normal((4, 8)).astype(np.float32)),
            tflow.from_numpy(rng.standard_normal((4, 8)).astype(np.float32)))
    repeats = 3 if quick else 7
    rows = []
    for target in SIZES:
        fn = make_program(steps_for(target, args))
        compile_once(fn, args)  # warm caches (op table lookups, imports)
        runs = [compile_once(fn, args) for _ in range(repeats if target < 10_000 else max(2, repeats // 2))]
        best = min(runs, key=lambda r: r["total_s"])
        best["wall_s"] = min(r["wall_s"] for r in runs)
        best["nodes_per_s"] = best["nodes"] / best["total_s"]
        best["jit_build_s"] = jit_build_seconds(fn, args)
        rows.append(best)
    small, large = rows[1], rows[2]
    scaling = (large["total_s"] / small["total_s"]) / (large["nodes"] / small["nodes"]) * 10
    worst_rate = min(r["nodes_per_s"] for r in rows)
    return {
        "name": "compiler cost (trace + passes)",
        "rows": rows,
        "scaling_10x": scaling,
        "min_nodes_per_s": worst_rate,
        "targets": {"nodes_per_s": TARGET_NODES_PER_S, "scaling_10x": TARGET_SCALING},
        "pass": worst_rate >= TARGET_NODES_PER_S and scaling <= TARGET_SCALING,
    }


def markdown(result: dict) -> str:
    lines = ["### Compiler cost: trace + passes", "",
             "| nodes | trace ms | passes ms | total ms (CPU) | nodes/s | total ms (wall) | whole jit miss ms (wall) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["rows"]:
        lines.append(f"| {r['nodes']:,} | {r['trace_s'] * 1e3:.1f} | {r['passes_s'] * 1e3:.1f} | "
                     f"{r['total_s'] * 1e3:.1f} | {r['nodes_per_s']:,.0f} | {r['wall_s'] * 1e3:.1f} | "
                     f"{r['jit_build_s'] * 1e3:.1f} |")
    lines += ["", f"10x nodes (1k -> 10k) costs {result['scaling_10x']:.2f}x the time "
              f"(target <= {TARGET_SCALING:g}x); slowest rate {result['min_nodes_per_s']:,.0f} nodes/s "
              f"(target >= {TARGET_NODES_PER_S:,}): {'PASS' if result['pass'] else 'FAIL'}"]
    return "\n".join(lines)
