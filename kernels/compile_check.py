"""Lowering stage (checks): every kernel a process launches must also compile for real GPU targets.

Triton's interpreter checks what a kernel means, not what a GPU compile checks (tl.dot shapes and
types, constexpr handling, layouts). `CompileCheck` observes every launch (runtime/launch.py's
observers) and sends each distinct one — the same generated source, constexprs, warps and stages,
with its arguments' pointer alignments and integer classes — to compile workers for each target
(kernels/aot_pool.py) while the process goes on. Integers count by the class Triton specializes on
(1, a multiple of 16, anything else; 32- or 64-bit) and block sizes only as 1 or more, so a kernel
launched at many sizes compiles once per class. `finish()` waits and returns the failures. The test suite switches it on with
`pytest --compile-for=sm_90` (tests/conftest.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from tritonflow.kernels.aot import launch_request
from tritonflow.kernels.aot_pool import CompilePool, triton_available
from tritonflow.kernels.runtime import launch
from tritonflow.target import Target, get_target


@dataclass
class CheckedKernel:
    name: str
    path: str
    target: str
    config: dict
    node_lines: list
    error: Optional[str] = None
    seconds: float = 0.0


def integer_class(value: int) -> int:
    """A representative of the integer specialization class of `value` (see module docstring)."""
    wide = not -2 ** 31 <= value < 2 ** 31
    if value == 1:
        return 1
    base = 2 ** 32 if wide else 0
    return base + (16 if value % 16 == 0 else 17)


class CompileCheck:
    """Compile every distinct observed launch for `targets` (module docstring)."""

    def __init__(self, targets: list, jobs: int = 1, cache_dir: Optional[str] = None) -> None:
        triton_available()
        self.targets: list[Target] = [get_target(t) for t in targets]
        for target in self.targets:
            if target.interpreted:
                raise ValueError("compile check: the targets must be GPUs (sm_80, sm_89, sm_90, ...)")
        self.pool = CompilePool(jobs, cache_dir)
        self.seen: set = set()
        self.kernels: list[CheckedKernel] = []

    def start(self) -> None:
        launch.add_observer(self.observe)

    def observe(self, kernel, grid: tuple, args: list, config: dict) -> None:
        classed = [integer_class(int(a)) if isinstance(a, int) else a for a in args]
        # Block sizes count only as 1 or more: one block size per kernel and argument classes
        # stands for the others (test sizes vary them freely; the code compiled is the same).
        shape = {k: (v == 1 if k.endswith("BLOCK") else v) for k, v in config.items()}
        for target in self.targets:
            request = launch_request(kernel, classed, config, target)
            identity = json.dumps(dict(request, kwargs=shape), sort_keys=True, default=str)
            if identity in self.seen:
                continue
            self.seen.add(identity)
            self.pool.submit(dict(request, resources=False))  # compiling is the check; no cuobjdump
            self.kernels.append(CheckedKernel(kernel.generated.name, kernel.path, target.name, dict(config),
                                              list(kernel.generated.node_lines)))

    def finish(self, jobs: Optional[int] = None) -> list:
        """Stop observing, wait for every compile (with `jobs` workers from now on); the failures."""
        launch.remove_observer(self.observe)
        for entry, result in zip(self.kernels, self.pool.results(jobs)):
            entry.error = result.get("error")
            entry.seconds = float(result.get("seconds", 0.0))
        return [k for k in self.kernels if k.error]

    def summary(self) -> str:
        failed = [k for k in self.kernels if k.error]
        targets = ", ".join(t.name for t in self.targets)
        lines = [f"compile check ({targets}): {len(self.kernels)} distinct kernel launches compiled, "
                 f"{len(failed)} failed, {sum(k.seconds for k in self.kernels):.0f} s of compiling"]
        for k in failed:
            lines.append(f"FAILED {k.name} for {k.target} with {k.config}: {k.error.strip().splitlines()[-1][:400]}")
            lines.append(f"  generated source: {k.path}")
            lines += [f"  {line}" for line in k.node_lines]
        return "\n".join(lines)
