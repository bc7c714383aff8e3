"""Benchmark: one training step of the digits MLP on CPU — eager against compiled (numpy backend).

The step is examples/train_digits.py's: zero_grad, forward, cross-entropy, loss.backward(),
AdamW update. Three contenders, sampled in turn (interleaved medians):

- eager: op by op, the tape built and walked in Python;
- compiled step: the whole step jitted (one forward+backward+update graph, run by the interpreter);
- compiled model: `tritonflow.compile(model)` forward with the compiled backward, eager optimizer
  (whose update is itself one compiled graph per group).

BLAS is limited to one thread: the matrices are small and threads only add synchronisation.
Run: python -m benchmarks.train_step_cpu [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tritonflow as tflow  # noqa: E402
import tritonflow.nn.functional as F  # noqa: E402
from tritonflow.benchmarks.timing import interleaved_medians  # noqa: E402


def _setup(batch: int):
    from examples.train_digits import make_model
    tflow.manual_seed(0)
    model = make_model("mlp")
    opt = tflow.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = tflow.tensor(rng.random((batch, 1, 8, 8)), dtype="float32")
    y = tflow.tensor(rng.integers(0, 10, batch))
    return model, opt, x, y


def _step(model, opt, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def run(quick: bool = False, batch: int = 64) -> dict:
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:
        limits = None
    try:
        eager = _setup(batch)
        compiled = _setup(batch)
        staged = _setup(batch)
        step = tflow.jit(_step, backend="numpy")
        forward = tflow.compile(staged[0], backend="numpy")

        def staged_step():
            model, opt, x, y = staged
            opt.zero_grad()
            loss = F.cross_entropy(forward(x), y)
            loss.backward()
            opt.step()
            return loss

        fns = {"eager": lambda: _step(*eager), "compiled step": lambda: step(*compiled),
               "compiled model": staged_step}
        times = interleaved_medians(fns, 15 if quick else 61, number=1, warmup=3)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    return {"batch": batch, "ms": {k: v * 1e3 for k, v in times.items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="digits MLP training step: eager vs compiled (numpy backend)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    result = run(args.quick, args.batch)
    base = result["ms"]["eager"]
    print(f"digits MLP (64-256-128-10, dropout) training step, batch {result['batch']}, CPU, numpy backend")
    print("| contender | ms per step | speed-up vs eager |")
    print("| --- | --- | --- |")
    for name, ms in result["ms"].items():
        print(f"| {name} | {ms:.3f} | {base / ms:.2f}x |")


if __name__ == "__main__":
    main()
