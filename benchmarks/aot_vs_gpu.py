"""GPU check: ahead-of-time compilation and the cost model against a real GPU (run it on one).

For each workload (benchmarks/workloads.py, full GPU size):
1. `tritonflow.aot.compile` for the named target of this GPU ("sm_90" on an H100/H200, so the named
   target's keys are what is tested), into an empty Triton cache: the AOT resource report and the
   cost model's predicted time;
2. a fresh process with that cache runs the workload jitted on CUDA tensors (forward, and backward
   for training workloads) with Triton's compilation listener on: every kernel must be a cache hit
   (the warm cache works), and the kernels the JIT loaded give their real registers, spills and
   shared memory; the call is timed with triton.testing.do_bench.
Prints one row per workload: cache misses, registers and spills AOT vs real, predicted vs measured
time. Exit status 1 if a kernel missed the cache or the numbers disagree.

    python benchmarks/aot_vs_gpu.py [--all | --only SUBSTRING] [--budget SECONDS]

All chosen workloads are precompiled together (one pool of compile workers) into one cache, then
run one after another in one fresh process, which skips the rest once the budget is spent.

By default it checks one workload of each kind of kernel (DEFAULT below); --all checks every one.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# The default selection, in order (each costs a compile and a fresh process): one of each kernel family.
DEFAULT = ("softmax f32 16384x4096", "layer_norm bf16 8192x4096 fwd+bwd", "cross_entropy bf16 8192x32000 fwd+bwd",
           "matmul bf16 8192^3", "causal attention bf16 8x16x2048x64 fwd+bwd", "MLP bf16 8192x4096x16384 fwd+bwd")

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch, triton, triton.testing
from triton import knobs
import tritonflow as tf
from tritonflow.benchmarks.workloads import by_name, precision
budget_end = time.perf_counter() + float(sys.argv[2])
hits = []
knobs.compilation.listener = lambda **kw: hits.append(kw["cache_hit"])


def run(workload):
    fn, specs = workload.make("gpu")
    with precision(workload):
        args = workload.arguments("gpu", "cuda")
        jitted = tf.jit(fn)
        training = any(s.requires_grad for s in specs)
        del hits[:]
        out = jitted(*args)
        cotangent = None
        if training:
            cotangent = tf.tensor(torch.randn(tuple(out.shape)).numpy(), dtype=out.dtype).to("cuda")
            out.backward(cotangent)
        torch.cuda.synchronize()
        misses = hits.count(False)

        def step():
            y = jitted(*args)
            if training:
                y.backward(cotangent)
        ms = triton.testing.do_bench(step, warmup=5, rep=30, return_mode="median")
    real = {}
    for entry in jitted.entries.values():
        for runner, suffix in ((entry.runner, ""), (getattr(entry, "backward_runner", None), "@backward")):
            lowered = getattr(runner, "lowered", None)
            for kernel in (lowered.compiled_kernels if lowered is not None else []):
                for caches in kernel.fn.device_caches.values():
                    for compiled in caches[0].values():
                        compiled = compiled.result() if hasattr(compiled, "result") else compiled
                        real[kernel.generated.name + suffix] = {"registers": compiled.n_regs,
                                                                "spills": compiled.n_spills}
    return {"ms": ms, "misses": misses, "real": real}


for name in sys.argv[3:]:
    if time.perf_counter() > budget_end:
        print(json.dumps({"workload": name, "error": "skipped: time budget spent"}), flush=True)
        continue
    try:
        print(json.dumps(dict(run(by_name(name)), workload=name)), flush=True)
    except Exception as exc:
        print(json.dumps({"workload": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}), flush=True)
"""


def named_target():
    import torch
    from tritonflow.target import NAMED, device_target
    capability = torch.cuda.get_device_capability()
    same = [t for t in NAMED.values() if t.capability == capability and not t.name.startswith("rtx")]
    return same[0] if same else device_target(torch.cuda.current_device())


def compare(report, run: dict) -> dict:
    """A table row: the GPU run of one workload against its AOT report."""
    if "error" in run:
        return run
    aot_kernels = {k.name + ("" if k.graph == "forward" else "@backward"): k for k in report.kernels}
    mismatches = []
    for name, numbers in run["real"].items():
        k = aot_kernels.get(name)
        if k is None:
            mismatches.append(f"{name}: not in the AOT report")
        elif (k.registers, bool(k.stack_bytes)) != (numbers["registers"], bool(numbers["spills"])):
            mismatches.append(f"{name}: AOT {k.registers} regs / {k.stack_bytes} B stack, real "
                              f"{numbers['registers']} regs / {numbers['spills']} spills")
    return {"workload": run["workload"], "kernels": len(report.kernels), "misses": run["misses"],
            "mismatches": mismatches, "predicted_ms": 1e3 * report.cost.seconds, "measured_ms": run["ms"]}


def check(chosen: list, target, budget: float) -> list:
    """Precompile every chosen workload into one fresh cache, then run them all in one fresh process."""
    from tritonflow.benchmarks.workloads import precision
    from tritonflow import aot
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        reports = {}
        for matmul_precision in sorted({w.matmul_precision for w in chosen}):
            group = [w for w in chosen if w.matmul_precision == matmul_precision]
            with precision(group[0]):
                found = aot.compile_all([(*w.make("gpu"), target, None, w.name) for w in group], cache_dir=cache)
            reports.update({w.name: r for w, r in zip(group, found)})
        env = dict(os.environ, TRITON_CACHE_DIR=cache, PYTHONPATH=ROOT)
        env.pop("TRITON_INTERPRET", None)
        left = max(10.0, budget - (time.perf_counter() - start))
        done = subprocess.run([sys.executable, "-c", CHILD, ROOT, str(left)] + [w.name for w in chosen], env=env,
                              capture_output=True, text=True, timeout=left + 120)
    runs = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            run = json.loads(line)
            runs[run["workload"]] = run
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return [compare(reports[w.name], runs.get(w.name, {"workload": w.name, "error": tail})) for w in chosen]


def main(argv=None) -> int:
    from tritonflow.benchmarks.workloads import WORKLOADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="workloads whose name contains this")
    parser.add_argument("--all", action="store_true", help="every workload, not only DEFAULT")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds; later workloads are skipped")
    opts = parser.parse_args(argv)
    target = named_target()
    if opts.only is not None:
        chosen = [w for w in WORKLOADS if opts.only.lower() in w.name.lower()]
    else:
        chosen = [w for w in WORKLOADS if opts.all or w.name in DEFAULT]
    rows = check(chosen, target, opts.budget)
    print(f"AOT for {target.name} vs this GPU; warm-cache misses must be 0\n")
    print("| workload | kernels | cache misses | AOT vs real resources | predicted ms | measured ms | measured / predicted |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    failed = False
    for r in rows:
        if "error" in r:
            print(f"| {r['workload']} | ERROR: {r['error']} | | | | | |")
            failed = failed or not r["error"].startswith("skipped")
            continue
        failed = failed or bool(r["misses"]) or bool(r["mismatches"])
        agree = "agree" if not r["mismatches"] else "; ".join(r["mismatches"])[:300]
        print(f"| {r['workload']} | {r['kernels']} | {r['misses']} | {agree} | {r['predicted_ms']:.3f} "
              f"| {r['measured_ms']:.3f} | {r['measured_ms'] / r['predicted_ms']:.2f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
