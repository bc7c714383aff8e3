"""Profiler stage: a recording as text (`Profile.table()`) and as a Chrome trace (Perfetto and
chrome://tracing open it: the Trace Event Format's JSON object form, complete "X" events)."""
from __future__ import annotations

import json
import os
import tempfile

HOST_THREAD, GPU_THREAD = 0, 1


def _time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.0f} ns"


def _amount(value, unit: str) -> str:
    if value is None:
        return "-"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def _columns(header: list, rows: list) -> list:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]

    def line(cells) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def format_table(prof, row_limit: int = 20) -> str:
    functions = prof.key_averages("function")
    work = [r for r in prof.key_averages() if r.kind != "function"]
    lines = []
    if functions:
        lines.append("compiled functions")
        lines += _columns(["name", "device", "calls", "total", "avg"],
                          [[r.name, r.device, r.calls, _time(r.total_ns), _time(r.total_ns / r.calls)]
                           for r in functions])
        lines.append("")
    total = sum(r.total_ns for r in work) or 1
    shown = work[:row_limit]
    lines.append(f"top kernels and IR nodes by total time ({len(shown)} of {len(work)})")
    lines += _columns(["name", "kind", "device", "calls", "total", "%", "avg", "bytes", "FLOPs", "source"],
                      [[r.name, r.kind, r.device, r.calls, _time(r.total_ns), f"{100 * r.total_ns / total:.1f}",
                        _time(r.total_ns / r.calls), _amount(r.bytes, "B"), _amount(r.flops, ""),
                        ", ".join(r.source) or "-"] for r in shown])
    return "\n".join(lines)


def chrome_trace(prof) -> dict:
    """The recording in the Trace Event Format: one complete event per call, node and kernel."""
    pid = os.getpid()
    events = [{"name": "thread_name", "ph": "M", "pid": pid, "tid": HOST_THREAD, "args": {"name": "host"}},
              {"name": "thread_name", "ph": "M", "pid": pid, "tid": GPU_THREAD, "args": {"name": "gpu kernels"}}]
    for event in prof.events:
        args = {"device": event.device}
        if event.source:
            args["source"] = ", ".join(event.source)
        if event.cost is not None:
            args.update({k: v for k, v in (("bytes", event.cost.bytes), ("flops", event.cost.flops)) if v is not None})
        events.append({"name": event.name, "cat": event.kind, "ph": "X", "pid": pid,
                       "tid": GPU_THREAD if event.device == "cuda" else HOST_THREAD,
                       "ts": event.start_ns / 1e3, "dur": event.duration_ns / 1e3, "args": args})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_chrome_trace(prof, path) -> None:
    """Write the trace JSON to `path` whole (a temporary file renamed into place)."""
    path = os.fspath(path)
    handle, temporary = tempfile.mkstemp(prefix=".tritonflow-trace-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(chrome_trace(prof), out)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
