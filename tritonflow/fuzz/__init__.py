"""Fuzzer stage: differential testing of a backend against the float64 NumPy reference.

`python -m tritonflow.fuzz --graphs N --seed S --backend triton` draws N random programs (see
generate.py), runs each on the reference and on the backend (check.py), shrinks every failure and
writes it as a standalone reproducer (shrink.py), prints the counts and exits non-zero when any
program disagreed or crashed. With `--grad` the programs are differentiated instead, eagerly,
jitted and under `jit(grad)`, against torch float64 (or central differences): fuzz/grad.py.
"""
from __future__ import annotations

import os
import time
from typing import Callable
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tritonflow.fuzz.check import Outcome, check
from tritonflow.fuzz.generate import generate
from tritonflow.fuzz.grad import check_grad
from tritonflow.fuzz.program import Program
from tritonflow.fuzz.shrink import reproducer, shrink

__all__ = ["FuzzSummary", "Outcome", "Program", "check", "check_grad", "fuzz", "generate", "shrink"]


@dataclass
class FuzzSummary:
    """Counts of one fuzzing run; `failures` holds (index, outcome, reproducer path)."""

    programs: int = 0
    statuses: Counter = field(default_factory=Counter)
    dtypes: Counter = field(default_factory=Counter)
    regenerated: int = 0
    failures: list = field(default_factory=list)
    seconds: float = 0.0
    worst_ratio: float = 0.0

    @property
    def mismatches(self) -> int:
        return self.statuses["mismatch"] + self.statuses["error"] + self.statuses["eager-crash"]

    def __str__(self) -> str:
        per_dtype = ", ".join(f"{k} {v}" for k, v in sorted(self.dtypes.items()))
        per_status = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        lines = [f"programs run: {self.programs} in {self.seconds:.1f} s ({per_dtype})",
                 f"outcomes: {per_status}",
                 f"mismatches (wrong values or crashes): {self.mismatches}",
                 f"candidate lines regenerated because the reference overflowed (or neared a kink, for "
                 f"gradients): {self.regenerated}",
                 f"worst error seen, as a fraction of the allowance: {self.worst_ratio:.3g}"]
        for index, outcome, path in self.failures:
            lines.append(f"  program {index}: {outcome.status}: {outcome.detail.splitlines()[0][:200]}"
                         + (f"\n    reproducer: {path}" if path else ""))
        return "\n".join(lines)


def fuzz(graphs: int, seed: int, backend: str = "numpy", device: str = "cpu", out_dir: str | None = None,
         shrink_failures: bool = True, dtypes: tuple | None = None, log=None, grad: bool = False,
         checker: Callable | None = None) -> FuzzSummary:
    """Run `graphs` random programs from `seed` on `backend` (see module docstring); with `grad`,
    programs to differentiate, checked by fuzz/grad.py's `check_grad` (or `checker`)."""
    if checker is None:
        checker = check_grad if grad else check
    summary = FuzzSummary()
    start = time.perf_counter()
    seeds = np.random.default_rng(seed).integers(0, 2**62, size=graphs)
    for index, program_seed in enumerate(seeds):
        prog, rejected, crashes = generate(int(program_seed), dtypes, grad=grad)
        summary.regenerated += rejected
        for source, line, error in crashes:  # eager code raised a raw exception: a bad error message
            summary.statuses["eager-crash"] += 1
            detail = f"eager `{line}` raised {error}\nafter:\n{source}"
            summary.failures.append((index, Outcome("eager-crash", detail), None))
        outcome = checker(prog, backend, device)
        summary.programs += 1
        summary.statuses[outcome.status] += 1
        summary.dtypes[prog.dtype] += 1
        if outcome.status == "ok":
            summary.worst_ratio = max(summary.worst_ratio, outcome.max_error)
        if outcome.failed:
            path = None
            if shrink_failures:
                prog, outcome = shrink(prog, outcome, backend, device, checker=checker)
            if out_dir is not None:
                os.makedirs(out_dir, exist_ok=True)
                name = f"repro_seed{seed}_{index}_{backend}{'_grad' if grad else ''}.py"
                path = os.path.join(out_dir, name)
                title = f"seed {seed}, program {index}, backend {backend} on {device}"
                with open(path, "w") as f:
                    f.write(reproducer(prog, outcome, backend, device, title, name))
            summary.failures.append((index, outcome, path))
        if log is not None and (index + 1) % 50 == 0:
            log(f"[fuzz] {index + 1}/{graphs} programs, {summary.mismatches} mismatches")
    summary.seconds = time.perf_counter() - start
    return summary
