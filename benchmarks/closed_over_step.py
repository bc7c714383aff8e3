"""Benchmark: a jitted training step that closes over its model, optimizer and scheduler against
the same step taking the model and optimizer as arguments (issue 15), on CPU, numpy backend.

Both run one compiled graph per step, benchmarks/train_step_cpu.py's step: zero_grad, forward,
cross-entropy, backward, the AdamW update; the argument-passing step then calls the scheduler eagerly,
the closed-over one has it inside (jit runs it after the graph). What differs is the per-call
work around the graph: arguments are flattened and keyed at every call (the model's and the
optimizer's tensors), captured state is found again along its paths and guarded. Two models: the
digits MLP (the graph's own work dominates) and a tiny MLP (the per-call work does). Samples are
taken in turn and compared round by round (CPU time), BLAS limited to one thread.
Target: the closed-over step at least as fast as the argument-passing one on both.
Run: python -m benchmarks.closed_over_step [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tritonflow as tflow  # noqa: E402
from tritonflow import nn  # noqa: E402
from tritonflow.benchmarks.timing import interleaved_samples, paired_ratio  # noqa: E402
from tritonflow.benchmarks.train_step_cpu import _step as _update  # noqa: E402

MODELS = {"digits MLP 64-256-128-10, batch 64": ((64, 256, 128, 10), 64),
          "tiny MLP 8-16-4, batch 4": ((8, 16, 4), 4)}
NOISE = 1.02   # round-to-round jitter on a shared machine; a slower closed-over step shows above it


def _state(widths: tuple, batch: int):
    tflow.manual_seed(0)
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    opt = tflow.optim.AdamW(model.parameters(), lr=1e-3)
    sched = tflow.optim.lr_scheduler.CosineWarmupLR(opt, warmup_steps=10, total_steps=100_000)
    rng = np.random.default_rng(0)
    x = tflow.tensor(rng.random((batch, widths[0])), dtype="float32")
    y = tflow.tensor(rng.integers(0, widths[-1], batch))
    return model, opt, sched, x, y


def contenders(widths: tuple, batch: int) -> dict:
    """({name: a callable running one training step, each on its own copy of the state}, the two
    jitted functions)."""
    model_a, opt_a, sched_a, x, y = _state(widths, batch)
    by_argument = tflow.jit(_update, backend="numpy")

    def arguments():
        by_argument(model_a, opt_a, x, y)
        sched_a.step()

    model_c, opt_c, sched_c, _, _ = _state(widths, batch)

    def step(x, y):
        loss = _update(model_c, opt_c, x, y)
        sched_c.step()
        return loss

    closed = tflow.jit(step, backend="numpy")
    return {"arguments": arguments, "closed over": lambda: closed(x, y)}, (by_argument, closed)


def run(quick: bool = False) -> dict:
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:
        limits = None
    rows = {}
    try:
        for label, (widths, batch) in MODELS.items():
            fns, jitted = contenders(widths, batch)
            samples = interleaved_samples(fns, 15 if quick else 61, number=3 if quick else 10, warmup=3,
                                          clock=time.process_time)
            rows[label] = {"arguments_us": statistics.median(samples["arguments"]) * 1e6,
                           "closed_over_us": statistics.median(samples["closed over"]) * 1e6,
                           "ratio": paired_ratio(samples["closed over"], samples["arguments"]),
                           "compiles": [j.cache_info().misses for j in jitted]}
    finally:
        if limits is not None:
            limits.restore_original_limits()
    ok = all(r["ratio"] <= NOISE and r["compiles"] == [1, 1] for r in rows.values())
    return {"name": "closed_over_step", "rows": rows, "pass": ok}


def markdown(result: dict) -> str:
    lines = ["### closed_over_step: a jitted step closing over its state vs passing it (numpy backend)", "",
             "| model | arguments (us/step) | closed over (us/step) | closed / arguments | compiles |",
             "| --- | ---: | ---: | ---: | --- |"]
    for label, r in result["rows"].items():
        lines.append(f"| {label} | {r['arguments_us']:.0f} | {r['closed_over_us']:.0f} | {r['ratio']:.3f} | "
                     f"{r['compiles'][0]} and {r['compiles'][1]} |")
    lines += ["", f"target: closed over / arguments <= {NOISE} (at least as fast, within round-to-round noise), "
                  f"each compiled once"]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(markdown(result))
    print("PASS" if result["pass"] else "FAIL")


if __name__ == "__main__":
    main()
