"""Benchmark (CPU): how long ahead-of-time compilation for a GPU target takes on this machine.

- one kernel, cold: a fresh process (empty tritonflow and Triton caches, no interpreter) compiles
  relu(a*b+c) for sm_90; Triton's compile of the kernel (source to cubin) must take under 1.5 s;
  the whole call (trace, lowering, compile, resources) and the process start-up are reported too;
- the whole AOT check (benchmarks/aot_check.py: every workload at full size for sm_90 and sm_80),
  cold, must take under 3 minutes (skipped with --quick).

Run alone: `python benchmarks/aot_compile_time.py [--quick]`; `tritonflow bench` runs it too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_KERNEL_LIMIT_S = 1.5
WHOLE_CHECK_LIMIT_S = 180.0

ONE_KERNEL = r"""
import json, time
start = time.perf_counter()
import tritonflow as tf
from tritonflow import aot
imported = time.perf_counter()
n = 1 << 24
report = aot.compile(lambda a, b, c: tf.relu(a * b + c), *[tf.TensorSpec((n,)) for _ in range(3)],
                     target="sm_90", jobs=1)
done = time.perf_counter()
(kernel,) = report.kernels
assert kernel.error is None, kernel.error
print(json.dumps({"import_s": imported - start, "aot_call_s": done - imported, "triton_compile_s": kernel.seconds}))
"""


def _environment(folder: str) -> dict:
    from tritonflow import environment
    return environment.child_environment(unset=("TRITON_INTERPRET",), PYTHONPATH=ROOT,
                                         TRITON_CACHE_DIR=os.path.join(folder, "triton"),
                                         TRITONFLOW_CACHE_DIR=os.path.join(folder, "tritonflow"))


def one_kernel_cold() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-c", ONE_KERNEL], env=_environment(folder), capture_output=True,
                              text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"one-kernel compile failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def whole_check_cold() -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "aot_check.py")],
                              env=_environment(folder), capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"aot_check failed:\n{done.stdout[-3000:]}")
    return seconds


def run(quick: bool = False) -> dict:
    one = one_kernel_cold()
    result = {"name": "aot_compile_time", "one_kernel": one,
              "pass": one["triton_compile_s"] < ONE_KERNEL_LIMIT_S}
    if not quick:
        result["whole_check_s"] = whole_check_cold()
        result["pass"] = result["pass"] and result["whole_check_s"] < WHOLE_CHECK_LIMIT_S
    return result


def markdown(result: dict) -> str:
    one = result["one_kernel"]
    lines = ["### aot_compile_time (sm_90, cold caches)", "", "| measure | seconds | target |", "| --- | ---: | --- |",
             f"| one kernel: Triton compile (source to cubin) | {one['triton_compile_s']:.2f} | < {ONE_KERNEL_LIMIT_S} |",
             f"| one kernel: whole aot.compile call | {one['aot_call_s']:.2f} | |",
             f"| one kernel: importing tritonflow | {one['import_s']:.2f} | |"]
    if "whole_check_s" in result:
        lines.append(f"| whole AOT check (every workload, sm_90 + sm_80) | {result['whole_check_s']:.0f} "
                     f"| < {WHOLE_CHECK_LIMIT_S:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    outcome = run(quick="--quick" in sys.argv)
    print(markdown(outcome))
    sys.exit(0 if outcome["pass"] else 1)
