"""The `tritonflow bench` command: every workload of tritonflow.benchmarks.workloads run by tritonflow
eager, tritonflow compiled, torch eager and torch.compile, each checked against float64 first; a
progress bar while it runs, the table at the end, JSON + Markdown + a PNG bar chart written.

    tritonflow bench [--quick] [--device cpu|cuda] [--only NAME ...] [--json PATH] [--markdown PATH]
                     [--plot PATH] [--threads N] [--budget SECONDS] [--suites] [--list]

Results go to ./benchmarks/results in a source checkout, else the current directory, unless paths
are given. A bad request (unknown workload, --device cuda without a GPU) is one line on stderr and
exit status 2; a provider disagreeing with the reference fails the run (status 1, the workload named).
"""
from __future__ import annotations

import contextlib
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

from tritonflow import cli_suites
from tritonflow.cli_suites import BenchError


def add_command(commands) -> None:
    bench = commands.add_parser("bench", help="every workload against torch eager and torch.compile")
    bench.add_argument("--quick", action="store_true",
                       help="a representative subset at small sizes (under 2 minutes on a 2-core CPU)")
    bench.add_argument("--device", choices=("cpu", "cuda"), default=None,
                       help="where to run (default: cuda when a GPU is present, else cpu)")
    bench.add_argument("--only", nargs="+", metavar="NAME", default=None,
                       help="run only these workloads (key or full name; see --list)")
    bench.add_argument("--list", action="store_true", help="print the workloads and exit")
    bench.add_argument("--json", type=Path, default=None, help="JSON results path")
    bench.add_argument("--markdown", type=Path, default=None, help="Markdown table path")
    bench.add_argument("--plot", type=Path, default=None, help="PNG bar chart path (default: beside the JSON)")
    bench.add_argument("--threads", type=int, default=1, help="CPU threads per library (default 1)")
    bench.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                       help="bound the run: torch.compile is skipped past 60%% of it, workloads past all of it")
    bench.add_argument("--suites", action="store_true",
                       help="also run the extra CPU suites of a source checkout (compiler cost, call overhead, ...)")


def cuda_available() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no torch, or a broken CUDA setup, is no GPU
        return False


def choose(only: list | None, device: str, quick: bool) -> list:
    """The workloads of this run; raises BenchError naming an unknown or off-device one."""
    from tritonflow.benchmarks.workloads import BENCH_EXTRAS, WORKLOADS
    every = WORKLOADS + BENCH_EXTRAS
    here = [w for w in every if device != "cpu" or w.on_cpu]
    if not only:
        return [w for w in here if w.quick] if quick else here
    chosen = []
    for name in only:
        match = [w for w in every if name in (w.key, w.name)]
        if not match:
            raise BenchError(f"unknown workload {name!r}; known: {', '.join(w.key for w in every)}")
        if match[0] not in here:
            raise BenchError(f"workload {name!r} runs on cuda only (its CPU form repeats another's)")
        if match[0] not in chosen:
            chosen.append(match[0])
    return chosen


def results_dir() -> Path:
    """./benchmarks/results in a source checkout of tritonflow, else the current directory."""
    cwd = Path.cwd()
    if (cwd / "pyproject.toml").is_file() and (cwd / "benchmarks").is_dir():
        return cwd / "benchmarks" / "results"
    return cwd


@contextlib.contextmanager
def thread_limit(threads: int):
    """Every library on `threads` threads: torch's intra-op pool and the BLAS/OpenMP pools NumPy
    and torch use (threadpoolctl, when installed)."""
    with contextlib.ExitStack() as stack:
        try:
            import torch
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            stack.callback(torch.set_num_threads, before)
        except ImportError:
            pass
        try:
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(threads))
        except ImportError:
            pass
        yield


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run(args) -> int:
    try:
        return _run(args)
    except BenchError as exc:
        print(f"tritonflow bench: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from tritonflow.benchmarks import report
    device = args.device or ("cuda" if cuda_available() else "cpu")
    if device == "cuda" and not cuda_available():
        raise BenchError("--device cuda: no CUDA GPU is available here (torch.cuda.is_available() is False)")
    if args.threads < 1:
        raise BenchError(f"--threads must be at least 1, got {args.threads}")
    workloads = choose(args.only, device, args.quick)
    if args.list:
        for w in workloads:
            print(f"{w.key:20s} {w.name}")
        return 0
    size = "gpu" if device == "cuda" else ("small" if args.quick else "cpu")
    stem = f"{device}-{datetime.date.today().isoformat()}{'-quick' if args.quick else ''}"
    json_path = args.json or results_dir() / f"{stem}.json"
    markdown_path = args.markdown or json_path.with_suffix(".md")
    plot_path = args.plot or json_path.with_suffix(".png")
    if device == "cpu":
        print("tritonflow bench: no GPU used: CPU providers only (the GPU suite needs --device cuda on a "
              "CUDA machine)", file=sys.stderr)
    info = machine(device, args.threads)
    results, anchors, failure = _measure_all(workloads, size, device, args)
    info["load_after"] = _load()
    info["anchors"] = anchors
    summary = report.summarize(results, device, anchors)
    text = report.markdown(info, results, summary, device, args.quick)
    if args.suites:
        text += "\n" + cli_suites.run_suites(args.quick)
    print(text)
    settings = {"device": device, "size": size, "quick": args.quick, "threads": args.threads,
                "workloads": [w.key for w in workloads]}
    for path in (json_path, markdown_path, plot_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(report.to_json(info, results, summary, settings))
    markdown_path.write_text(text)
    if results:
        report.plot(results, plot_path, f"tritonflow bench, {info['machine']}")
    print(f"tritonflow bench: wrote {json_path}, {markdown_path}" + (f", {plot_path}" if results else ""),
          file=sys.stderr)
    if failure:
        print(f"tritonflow bench: FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


def _measure_all(workloads: list, size: str, device: str, args) -> tuple:
    """The results of every workload up to the first failure, the CUDA anchors (copy bandwidth,
    torch.matmul's rate; None on a CPU), and the failure's one line (or None)."""
    from tqdm import tqdm
    from tritonflow.benchmarks import peers
    target = anchors = None
    if device == "cuda":
        from tritonflow.target import device_target
        import torch
        target = device_target(torch.cuda.current_device())
        anchors = peers.cuda_anchors(args.quick)
    results = []
    start = time.perf_counter()
    with thread_limit(args.threads), cold_cache(device), tqdm(workloads, desc="tritonflow bench", unit="workload",
                                          file=sys.stderr) as bar:
        for workload in bar:
            bar.set_postfix_str(workload.key)
            spent = (time.perf_counter() - start) / args.budget if args.budget else 0.0
            if spent >= 1.0:
                print(f"tritonflow bench: --budget {args.budget:g} s spent: skipped {workload.key}", file=sys.stderr)
                continue
            chosen = peers.PROVIDERS if spent < 0.6 else tuple(p for p in peers.PROVIDERS if p != "torch.compile")
            try:
                results.append(peers.measure(workload, size, device, quick=args.quick, target=target,
                                             copy_bandwidth=anchors and anchors["copy_bandwidth"], providers=chosen))
            except peers.Mismatch as exc:
                return results, anchors, str(exc)
            except Exception as exc:  # noqa: BLE001 - a tritonflow provider failing fails the run, named
                return results, anchors, f"{workload.label(size)}: {peers.one_line(exc)}"
    return results, anchors, None


@contextlib.contextmanager
def cold_cache(device: str):
    """On a CPU, tritonflow's compile cache in a new empty folder for the run: the compiled
    provider's first call then includes compiling its C (as torch.compile's includes its own, with
    Inductor's caches off); the user's own cache is left as it was."""
    if device != "cpu":
        yield
        return
    from tritonflow import environment
    with tempfile.TemporaryDirectory(prefix="tritonflow-bench-cache-") as folder, \
            environment.cache_dir_set_to(folder):
        yield


def machine(device: str, threads: int) -> dict:
    info = cli_suites.machine_info(cli_suites.repo_root())
    info["machine"] = f"{info['cpu']} ({info['cores']} cores)"
    if device == "cuda":
        import torch
        info["machine"] = torch.cuda.get_device_name()
    info["threads"] = threads
    info["load_before"] = _load()
    info["compiled_backend"] = _backend_line(device)
    return info


def _backend_line(device: str) -> str:
    from tritonflow import backends
    name = backends.default_backend(device)
    if name != "c":
        return name
    from tritonflow.native import toolchain
    return f"c ({toolchain.describe()}, compiled cold: an empty cache folder for the run)"
