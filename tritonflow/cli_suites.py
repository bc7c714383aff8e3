"""`tritonflow bench`'s supporting parts: machine information for result files (CPU, cores,
versions, git commit) and the extra CPU suites of `--suites` (the compiler's cost as graphs grow,
the per-call overhead, the NumPy interpreter against hand-written NumPy, and the suites other issues
added), each a module of tritonflow.benchmarks with `run(quick)` and `markdown(result)`.
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


class BenchError(Exception):
    """A bad `tritonflow bench` request: reported in one line, exit status 2."""


SUITES = ("compiler_cost", "call_overhead", "interpreter_large")
# Suites other issues add: run when their module exists; a failure in one is reported, not fatal.
EXTRA_SUITES = ("train_step_cpu", "generation_bench", "closed_over_step", "aot_compile_time",
                "ddp_overhead", "checkpoint_memory")


def repo_root() -> Path:
    """The folder above the tritonflow package: the source checkout whose git commit stamps results
    (site-packages when installed: the commit is then "unknown")."""
    import tritonflow
    return Path(tritonflow.__file__).resolve().parents[1]


def _version(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def machine_info(root: Path) -> dict:
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in ("tritonflow", "numpy", "sympy", "ml_dtypes", "triton", "torch")},
        "commit": _git_commit(root),
    }


def _generic_markdown(name: str, result: dict) -> str:
    """A table of a suite's numbers, for a suite module without its own `markdown`."""
    lines = [f"### {name}", "", "| measure | value |", "| --- | ---: |"]
    for key, value in result.items():
        if isinstance(value, dict):
            for inner, number in value.items():
                if isinstance(number, (int, float)):
                    lines.append(f"| {key}: {inner} | {number:.4g} |")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "suite_seconds":
            lines.append(f"| {key} | {value:.4g} |")
    return "\n".join(lines)


def run_cpu_suites(quick: bool) -> dict:
    import importlib
    import importlib.util
    names = list(SUITES) + [n for n in EXTRA_SUITES if importlib.util.find_spec(f"tritonflow.benchmarks.{n}")]
    results = {}
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"tritonflow.benchmarks.{name}")
            result = module.run(quick=quick)
        except Exception as exc:  # noqa: BLE001 - one broken suite must not hide the others' numbers
            if name in SUITES:
                raise
            result = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
            result["markdown"] = f"### {name}\n\nfailed: {result['error']}"
        else:
            result.setdefault("name", name)
            render_fn = getattr(module, "markdown", None)
            result["markdown"] = render_fn(result) if render_fn else _generic_markdown(name, result)
        result["suite_seconds"] = time.perf_counter() - start
        results[name] = result
    return results


def run_suites(quick: bool) -> str:
    """The extra CPU suites (`--suites`) as Markdown: each suite's table, then its target's verdict."""
    results = run_cpu_suites(quick)
    lines = [r["markdown"] + "\n" for r in results.values()] + ["| suite target | result |", "| --- | --- |"]
    for key, result in results.items():
        verdict = "ERROR" if "error" in result else {True: "PASS", False: "FAIL"}.get(result.get("pass"), "(no target)")
        lines.append(f"| {result.get('name', key)} | {verdict} |")
    return "\n".join(lines) + "\n"
