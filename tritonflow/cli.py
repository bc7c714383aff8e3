"""The `tritonflow` console script. `tritonflow bench [--quick]` runs the benchmark suites;
`tritonflow aot` and `tritonflow precompile` compile a function for a GPU target (cli_aot.py).

On CPU: the compiler's cost (trace + passes) as graphs grow, the per-call overhead of a jitted
function, and the NumPy interpreter against hand-written NumPy. With a CUDA GPU it also runs the GPU
suite (benchmarks/gpu_bench.py). Results are printed as Markdown and written, with machine info,
versions and the git commit, to benchmarks/results/cpu-<date>.json and .md.
"""
from __future__ import annotations

import argparse
import datetime
import json
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


def bench(quick: bool, out_dir: Path | None, save: bool) -> int:
    root = repo_root()
    if not (root / "benchmarks" / "__init__.py").exists():
        print("tritonflow bench: benchmarks/ not found next to the tritonflow package; run it from a "
              "source checkout installed with `pip install -e .`", file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    info = machine_info(root)
    results = run_cpu_suites(quick)
    text = render(info, results, quick)
    print(text)
    if save:
        out_dir = out_dir or root / "benchmarks" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"cpu-{datetime.date.today().isoformat()}{'-quick' if quick else ''}"
        payload = {"machine": info, "quick": quick,
                   "results": {k: {kk: vv for kk, vv in r.items() if kk != "markdown"} for k, r in results.items()}}
        (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
        (out_dir / f"{stem}.md").write_text(text)
        print(f"[bench] wrote {out_dir / stem}.json and .md", file=sys.stderr)
    status = 0
    gpu_script = root / "benchmarks" / "gpu_bench.py"
    if _cuda_available() and gpu_script.exists():
        print("[bench] CUDA present: running the GPU suite", file=sys.stderr, flush=True)
        takes_quick = "--quick" in gpu_script.read_text()
        command = [sys.executable, str(gpu_script)] + (["--quick"] if quick and takes_quick else [])
        status = subprocess.run(command, cwd=root).returncode
    elif gpu_script.exists():
        print("[bench] no CUDA GPU here: skipping the GPU suite (benchmarks/gpu_bench.py)", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tritonflow", description="tritonflow command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    bench_parser = commands.add_parser("bench", help="run the benchmark suites and write benchmarks/results/")
    bench_parser.add_argument("--quick", action="store_true", help="fewer repeats: finishes in under a minute")
    bench_parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    bench_parser.add_argument("--no-save", action="store_true", help="print only; write no result files")
    from tritonflow import cli_aot
    cli_aot.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench(args.quick, args.out, not args.no_save)
    if args.command in ("aot", "precompile"):
        return cli_aot.run(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
