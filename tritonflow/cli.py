"""The `tritonflow` console script: `tritonflow bench` (cli_bench.py: every workload against torch
eager and torch.compile), `tritonflow aot` and `tritonflow precompile` (cli_aot.py: compile a function
for a GPU target). Here: the parser, machine information for result files, and the extra CPU suites
of a source checkout (`tritonflow bench --suites`: the compiler's cost as graphs grow, the per-call
overhead, the NumPy interpreter against hand-written NumPy, and the suites other issues added).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

SUITES = ("compiler_cost", "call_overhead", "interpreter_large")
# Suites other issues add: run when their file exists; a failure in one is reported, not fatal.
EXTRA_SUITES = ("train_step_cpu", "generation_bench", "closed_over_step", "aot_compile_time")


def repo_root() -> Path:
    """The source checkout holding benchmarks/ (the project is installed editable: `pip install -e .`)."""
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


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:
        return False


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
    root = repo_root()
    names = list(SUITES) + [n for n in EXTRA_SUITES if (root / "benchmarks" / f"{n}.py").exists()]
    results = {}
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
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


def render(info: dict, results: dict, quick: bool) -> str:
    v = info["versions"]
    lines = [f"## tritonflow CPU benchmarks{' (quick)' if quick else ''}", "",
             f"{info['date']}, commit {info['commit']}; {info['cpu']} ({info['cores']} cores), {info['platform']}; "
             f"Python {info['python']}, numpy {v['numpy']}, sympy {v['sympy']}, triton {v['triton']}, torch {v['torch']}",
             ""]
    for result in results.values():
        lines += [result["markdown"], ""]
    lines.append("| target | result |")
    lines.append("| --- | --- |")
    for result in results.values():
        if "error" in result:
            verdict = "ERROR"
        elif "pass" in result:
            verdict = "PASS" if result["pass"] else "FAIL"
        else:
            verdict = "(no target)"
        lines.append(f"| {result['name']} | {verdict} |")
    return "\n".join(lines) + "\n"


def run_suites(quick: bool) -> str:
    """The extra CPU suites (`--suites`): compiler cost, call overhead, interpreter, ... as Markdown."""
    root = repo_root()
    if not (root / "benchmarks" / "__init__.py").exists():
        raise BenchError("--suites needs a source checkout (benchmarks/*.py beside the package)")
    results = run_cpu_suites(quick)
    return "\n".join(r["markdown"] + "\n" for r in results.values())


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(prog="tritonflow", description="tritonflow command-line tools")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)
    from tritonflow import cli_aot, cli_bench
    cli_bench.add_command(commands)
    cli_aot.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return cli_bench.run(args)
    if args.command in ("aot", "precompile"):
        return cli_aot.run(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


class BenchError(Exception):
    """A bad `tritonflow bench` request: reported in one line, exit status 2."""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line (`tritonflow bench: error: ...`), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
