"""Benchmark check (no GPU needed): every workload of benchmarks/workloads.py, at its full GPU size,
compiled with Triton for real GPU targets (sm_90 and sm_80 by default) on this machine.

It fails (exit status 1) when a kernel fails to compile, spills registers to local memory beyond
its written-down allowance (ALLOWANCES below, each with its reason), or needs more shared memory
than the target gives one program. Prints one row per workload and target, then every problem,
then the distinct kernel count and the wall time (CI runs it: under 3 minutes on a 2-core machine).

    python benchmarks/aot_check.py [--targets sm_90,sm_80] [--size gpu|tiny] [--jobs N]
                                   [--only SUBSTRING] [--verbose] [--json FILE]

`--verbose` prints every function's full resource table (configuration, registers, stack, shared
memory, wgmma/TMA, compile seconds, cost model).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tritonflow.benchmarks.workloads import WORKLOADS, precision  # noqa: E402
from tritonflow import aot  # noqa: E402

# (workload, graph/kernel, target) -> (stack bytes allowed, why). Empty: no kernel may spill.
ALLOWANCES: dict = {}


def check(targets: list, size: str, jobs, only: str) -> tuple:
    chosen = [w for w in WORKLOADS if only.lower() in w.name.lower()]
    rows = []
    for matmul_precision in sorted({w.matmul_precision for w in chosen}):
        group = [w for w in chosen if w.matmul_precision == matmul_precision]
        items, labels = [], []
        for workload in group:
            fn, specs = workload.make(size)
            for target in targets:
                items.append((fn, specs, target, None, workload.name))
                labels.append((workload, target))
        with precision(group[0]):
            # A resource check: kernels that are one program under other names compile once.
            reports = aot.compile_all(items, jobs=jobs, share_programs=True)
        rows += [(w, t, r) for (w, t), r in zip(labels, reports)]
    order = {w.name: i for i, w in enumerate(chosen)}
    rows.sort(key=lambda row: (order[row[0].name], targets.index(row[1])))
    return rows


def problems(workload, target: str, report) -> list:
    found = []
    for k in report.kernels:
        where = f"{workload.name} [{target}] {k.graph}/{k.name} ({k.config_text()})"
        if k.error:
            found.append(f"{where}: FAILED {k.error.strip().splitlines()[-1][:300]}")
            continue
        allowed, reason = ALLOWANCES.get((workload.name, f"{k.graph}/{k.name}", target), (0, ""))
        if k.stack_bytes > allowed:
            found.append(f"{where}: {k.stack_bytes} bytes of stack (spills), {k.registers} registers")
        elif k.stack_bytes:
            print(f"allowed: {where}: {k.stack_bytes} bytes of stack ({reason})")
        if k.over_shared:
            found.append(f"{where}: {k.shared_bytes} bytes of shared memory, over the {k.shared_limit} limit")
    return found


def render(rows: list) -> str:
    lines = ["| workload | target | kernels | failed | spilling (stack bytes) | max shared KB / limit | compile s "
             "| predicted us | bytes / minimum |",
             "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for workload, target, report in rows:
        spills = ", ".join(f"{k.graph}/{k.name} {k.stack_bytes}" for k in report.spilled) or "none"
        shared = max((k.shared_bytes or 0 for k in report.kernels), default=0)
        seconds = sum(k.seconds for k in report.kernels)
        cost = report.cost
        lines.append(f"| {workload.name} | {target} | {len(report.kernels)} | {len(report.failures)} | {spills} "
                     f"| {shared / 1024:.0f} / {report.target.shared_memory // 1024} | {seconds:.1f} "
                     f"| {1e6 * cost.seconds:.0f} | {cost.ratio:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="sm_90,sm_80")
    parser.add_argument("--size", default="gpu", choices=("gpu", "tiny"))
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--only", default="", help="only workloads whose name contains this")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", default=None)
    opts = parser.parse_args(argv)
    targets = [t.strip() for t in opts.targets.split(",") if t.strip()]
    start = time.perf_counter()
    rows = check(targets, opts.size, opts.jobs, opts.only)
    wall = time.perf_counter() - start
    if opts.verbose:
        for _, _, report in rows:
            print(report, end="\n\n")
    print(render(rows))
    found = [p for workload, target, report in rows for p in problems(workload, target, report)]
    distinct = sum(1 for _, _, r in rows for k in r.kernels if k.same_as is None)
    total = sum(len(r.kernels) for _, _, r in rows)
    print(f"\n{total} kernels ({distinct} distinct compiles) of {len(rows)} workload x target pairs; "
          f"{len(found)} problems; {wall:.0f} s wall")
    for line in found:
        print(f"PROBLEM: {line}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump([{"workload": w.name, "target": t, "ok": r.ok,
                        "kernels": [{"kernel": f"{k.graph}/{k.name}", "config": k.config, "registers": k.registers,
                                     "stack_bytes": k.stack_bytes, "shared_bytes": k.shared_bytes,
                                     "wgmma": k.wgmma, "tma": k.tma, "seconds": k.seconds, "error": k.error,
                                     "predicted_us": 1e6 * k.cost.seconds if k.cost else None}
                                    for k in r.kernels]} for w, t, r in rows], f, indent=2, default=str)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
