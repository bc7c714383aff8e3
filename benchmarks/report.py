"""Benchmarks: the peer table's report — ratios, geomeans and the issue's targets from a run's
`WorkloadResult`s, as Markdown, JSON and a PNG bar chart of speedups over torch eager.

Speedup of a provider = torch eager's time / the provider's time (above 1: faster than torch eager).
An optional provider (Liger-Kernel) gets its columns only when it ran somewhere, with the compiled
provider's speedup over it; its geomeans are over the workloads it ran.
CPU targets (issue 11 item 4): the compiled provider never slower than tritonflow eager (5% allowed
for timing noise on a shared machine; on a CPU judged by the median of the per-round ratios, the
two having run back to back in each round), its geomean at most 1.25x slower than torch eager, its
compile cost at least 50x below torch.compile's (total over the workloads both compiled). GPU
targets (item 5) are judged only from a CUDA run.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from tritonflow.benchmarks.liger_peer import PROVIDER as LIGER
from tritonflow.benchmarks.peers import OPTIONAL, PROVIDERS, WorkloadResult
from tritonflow.benchmarks.timing import paired_ratio

BASELINE = "torch eager"
NOISE = 1.05


def _seconds(result: WorkloadResult, provider: str) -> float | None:
    entry = result.providers.get(provider)
    return entry.seconds if entry is not None else None


def speedup(result: WorkloadResult, provider: str, over: str = BASELINE) -> float | None:
    mine, theirs = _seconds(result, provider), _seconds(result, over)
    return theirs / mine if mine and theirs else None


def compiled_over_eager(result: WorkloadResult) -> float | None:
    """tritonflow compiled's time over tritonflow eager's: on a CPU the median over rounds of the
    per-round ratio (the two ran back to back in each round, so a burst of outside load that slows
    one round slows both: timing.paired_ratio), else the ratio of medians."""
    compiled, eager = result.providers.get("tritonflow compiled"), result.providers.get("tritonflow eager")
    if compiled is None or eager is None or not compiled.seconds or not eager.seconds:
        return None
    if compiled.samples and eager.samples and len(compiled.samples) == len(eager.samples):
        return paired_ratio(compiled.samples, eager.samples)
    return compiled.seconds / eager.seconds


def geomean(values: list) -> float | None:
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summarize(results: list, device: str, anchors: dict | None = None) -> dict:
    """Geomean speedups per provider and the targets' verdicts (None where not measurable)."""
    geomeans = {p: geomean([speedup(r, p) for r in results]) for p in PROVIDERS if p != BASELINE}
    slower = [r.label for r in results if (compiled_over_eager(r) or 0.0) > NOISE]
    pairs = [(r.providers["tritonflow compiled"].compile_seconds, r.providers["torch.compile"].compile_seconds)
             for r in results if "torch.compile" in r.providers and r.providers["torch.compile"].compile_seconds]
    compile_ratio = sum(t for _, t in pairs) / max(sum(m for m, _ in pairs), 1e-9) if pairs else None
    over_liger = [speedup(r, "tritonflow compiled", LIGER) for r in results]
    summary = {"geomean_speedup": geomeans, "compile_cost_ratio": compile_ratio,
               "compiled_slower_than_eager": slower,
               "compiled_over_liger": {"geomean": geomean(over_liger), "workloads": sum(1 for v in over_liger if v)}}
    compiled = geomeans.get("tritonflow compiled")
    if device == "cpu":
        summary["targets"] = {
            "compiled never slower than tritonflow eager": not slower,
            "compiled geomean at most 1.25x slower than torch eager": None if compiled is None else compiled >= 1 / 1.25,
            "compile cost at least 50x below torch.compile's": None if compile_ratio is None else compile_ratio >= 50,
        }
    else:
        summary["targets"] = _gpu_targets(results, geomeans, anchors or {})
    return summary


def _gpu_targets(results: list, geomeans: dict, anchors: dict) -> dict:
    ours, theirs = geomeans.get("tritonflow compiled"), geomeans.get("torch.compile")
    bandwidth = [r.providers["tritonflow compiled"].bandwidth_fraction for r in results if r.kind == "memory"]
    bandwidth = [b for b in bandwidth if b is not None]
    matmul = [speedup(r, "tritonflow compiled") for r in results if r.key.startswith("matmul")]
    attention = [speedup(r, "tritonflow compiled") for r in results if r.key.startswith("attention")]
    return {
        "geomean speedup at least 1.1x torch.compile's": None if not (ours and theirs) else ours >= 1.1 * theirs,
        "memory-bound workloads at 85%+ of the copy bandwidth": None if not bandwidth else min(bandwidth) >= 0.85,
        "matmul at 90%+ of cuBLAS (torch eager)": None if not all(matmul) or not matmul else min(matmul) >= 0.9,
        "causal attention at 70%+ of SDPA (torch eager)": None if not all(attention) or not attention
        else min(attention) >= 0.7,
    }


# ---------------------------------------------------------------- rendering

def _time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def shown_providers(results: list) -> list:
    """The providers the table and the plot show: every one but an optional provider that never ran."""
    return [p for p in PROVIDERS if p not in OPTIONAL or any(_seconds(r, p) for r in results)]


def _verdict(value) -> str:
    return {True: "PASS", False: "FAIL", None: "not measured"}[value]


def markdown(info: dict, results: list, summary: dict, device: str, quick: bool) -> str:
    v = info["versions"]
    head = [f"## tritonflow bench — {device}{' (quick)' if quick else ''}", "",
            f"{info['date']}, commit {info['commit']}; {info['machine']}; load average before the run "
            f"{info['load_before']}, after {info['load_after']}; threads per library: {info['threads']}; "
            f"Python {info['python']}, numpy {v.get('numpy')}, torch {v.get('torch')}, triton {v.get('triton')}; "
            f"tritonflow compiled: backend {info.get('compiled_backend', '?')}.", "",
            "Times: median per call (" + ("process CPU time, providers interleaved" if device == "cpu"
                                          else "triton.testing.do_bench") + "); speedup = torch eager's time / "
            "the provider's. Every provider was checked against a float64 reference first.", ""]
    gpu = device != "cpu"
    providers = shown_providers(results)
    liger = LIGER in providers
    columns = ["workload", *providers, "compiled vs torch eager", "compiled vs torch.compile",
               *(["compiled vs liger"] if liger else []),
               "compile s (tritonflow / torch.compile)", "peak MB (compiled / torch eager)"]
    if gpu:
        columns += ["predicted (cost model)", "of copy bandwidth"]
    lines = head + ["| " + " | ".join(columns) + " |", "|" + " --- |" + " ---: |" * (len(columns) - 1)]
    for r in results:
        p = r.providers
        cells = [r.label] + [_time(p[name].seconds) if name in p else "—" for name in providers]
        cells += [_ratio(speedup(r, "tritonflow compiled")), _ratio(speedup(r, "tritonflow compiled", "torch.compile"))]
        if liger:
            cells.append(_ratio(speedup(r, "tritonflow compiled", LIGER)))
        cc, tc = (p.get(n) for n in ("tritonflow compiled", "torch.compile"))
        cells.append(f"{_num(cc and cc.compile_seconds)} / {_num(tc and tc.compile_seconds)}")
        cells.append(f"{_mb(cc and cc.peak_bytes)} / {_mb(p.get(BASELINE) and p[BASELINE].peak_bytes)}")
        if gpu:
            cells.append(_time(r.predicted["seconds"]) if r.predicted else "—")
            fraction = cc.bandwidth_fraction if cc else None
            cells.append("—" if fraction is None else f"{100 * fraction:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    g = summary["geomean_speedup"]
    over_liger = summary["compiled_over_liger"]
    liger_line = (f" tritonflow compiled over Liger-Kernel: {_ratio(over_liger['geomean'])} on the "
                  f"{over_liger['workloads']} workloads it ran (its geomean above is over those)." if liger else "")
    lines += ["", "Geomean speedup over torch eager: "
              + ", ".join(f"{name} {_ratio(g[name])}" for name in providers if name != BASELINE)
              + f". Compile cost, torch.compile / tritonflow compiled: {_ratio(summary['compile_cost_ratio'])}."
              + liger_line, ""]
    unavailable = sorted({f"{name}: {e.unavailable}" for r in results for name, e in r.providers.items() if e.unavailable})
    if unavailable:
        lines += ["Not run: " + "; ".join(unavailable) + ".", ""]
    lines += ["| target | result |", "| --- | --- |"]
    lines += [f"| {name} | {_verdict(value)} |" for name, value in summary["targets"].items()]
    ratios = [(compiled_over_eager(r), r.label) for r in results if compiled_over_eager(r)]
    if ratios:
        worst, label = max(ratios)
        lines += ["", f"tritonflow compiled / tritonflow eager (per-round ratios' median on a CPU), highest: "
                      f"{worst:.3f} ({label}); slower means above {NOISE}."]
    if summary["compiled_slower_than_eager"]:
        lines += ["", "Compiled slower than tritonflow eager: " + ", ".join(summary["compiled_slower_than_eager"])]
    return "\n".join(lines) + "\n"


def _num(value) -> str:
    return "—" if value is None else f"{value:.3g}"


def _mb(value) -> str:
    return "—" if value is None else f"{value / 2 ** 20:.1f}"


def to_json(info: dict, results: list, summary: dict, settings: dict) -> str:
    payload = {"machine": info, "settings": settings, "summary": summary,
               "workloads": [dataclasses.asdict(r) for r in results]}
    return json.dumps(payload, indent=2, default=str) + "\n"


def plot(results: list, path: Path, title: str) -> None:
    """A horizontal bar chart: each workload's speedup over torch eager, one bar per other provider."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    others = [p for p in shown_providers(results) if p != BASELINE]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(results) * len(others) / 2 + 1.5))
    height = 0.8 / len(others)
    for i, provider in enumerate(others):
        values = [speedup(r, provider) or 0.0 for r in results]
        ax.barh([k + i * height for k in range(len(results))], values, height=height, label=provider)
    ax.set_yticks([k + height for k in range(len(results))], [r.label for r in results], fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("speedup over torch eager (log scale; right of the line = faster)")
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
