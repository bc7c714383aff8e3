"""Benchmark: per-call overhead of a jitted function — guard check, argument flattening, dispatch.

A 10-op function on tiny tensors, so the arithmetic is negligible. Reported: the eager call, the
jitted call, and the compiled entry's interpreter runner called directly on the arrays (the
interpreter's own work: running the graph's nodes); the overhead is jitted call minus that, i.e.
flattening the arguments, building and looking up the guard key, wrapping the outputs.
Target: under 30 us. Times are this process's CPU time per call (see timing.interleaved_samples):
on the shared 2-core machine, wall-clock samples of a 25 us call were bimodal, 25 or 70-115 us.
"""
from __future__ import annotations

import numpy as np

import tritonflow as tflow
import statistics
import time

from tritonflow.benchmarks.timing import calls_per_sample, interleaved_samples

TARGET_US = 30.0


def ten_ops(x, y):
    h = x * y + 1.0                  # 2: mul, add
    h = tflow.tanh(h) - y            # 2: tanh, sub
    h = tflow.maximum(h, x) * 0.5    # 2: maximum, mul
    h = tflow.exp(-h)                # 2: neg, exp
    return (h + x) / (y * y + 2.0)   # the rest: add, mul, add, div


def run(quick: bool = False) -> dict:
    rng = np.random.default_rng(0)
    x = tflow.from_numpy(rng.standard_normal(4).astype(np.float32))
    y = tflow.from_numpy(rng.standard_normal(4).astype(np.float32))
    jitted = tflow.jit(ten_ops, backend="numpy")
    jitted(x, y)
    entry = next(iter(jitted.entries.values()))
    graph = entry.graph
    runner = entry.runner
    arrays = [x._data, y._data]
    repeats = 31 if quick else 201

    def interp():
        return runner(arrays, "cpu")

    def eager():
        return ten_ops(x, y)

    def jit_call():
        return jitted(x, y)

    number = calls_per_sample(jit_call, 0.005)
    samples = interleaved_samples({"eager": eager, "jit": jit_call, "interpreter": interp}, repeats,
                                  number=number, warmup=50, clock=time.process_time)
    times = {name: statistics.median(values) for name, values in samples.items()}
    # Per-round differences: a burst of outside load slows both sides of one round alike.
    overhead = statistics.median(j - i for j, i in zip(samples["jit"], samples["interpreter"]))
    wall = interleaved_samples({"jit": jit_call, "interpreter": interp}, max(5, repeats // 4), number=number)
    n_nodes = len(graph.nodes)
    return {
        "name": "per-call overhead",
        "graph_nodes": n_nodes,
        "eager_us": times["eager"] * 1e6,
        "jit_us": times["jit"] * 1e6,
        "interpreter_us": times["interpreter"] * 1e6,
        "overhead_us": overhead * 1e6,
        "wall_jit_us": statistics.median(wall["jit"]) * 1e6,
        "wall_interpreter_us": statistics.median(wall["interpreter"]) * 1e6,
        "targets": {"overhead_us": TARGET_US},
        "pass": overhead * 1e6 < TARGET_US,
    }


def markdown(result: dict) -> str:
    return "\n".join([
        "### Per-call overhead: a 10-op function on 4-element tensors", "",
        "CPU time per call:", "",
        "| eager us | jit us | interpreter's own work us | jit overhead us |", "| ---: | ---: | ---: | ---: |",
        f"| {result['eager_us']:.1f} | {result['jit_us']:.1f} | {result['interpreter_us']:.1f} | "
        f"{result['overhead_us']:.1f} |", "",
        f"Wall clock (medians): jit {result['wall_jit_us']:.1f} us, interpreter {result['wall_interpreter_us']:.1f} us. "
        f"Compiled graph: {result['graph_nodes']} nodes. Overhead target < {TARGET_US:g} us: "
        f"{'PASS' if result['pass'] else 'FAIL'}",
    ])
