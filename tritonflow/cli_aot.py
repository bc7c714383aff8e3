"""The `tritonflow aot` and `tritonflow precompile` commands (ahead-of-time compilation, tritonflow/aot.py).

    tritonflow aot --target sm_90 model.py:train_step --spec 8192,4096:bfloat16:grad --spec 4096:bfloat16
    tritonflow precompile --target sm_90 --cache-dir /shared/triton-cache model.py:forward --spec batch,784

FILE.py:FUNCTION names a function (or `object.attribute`) of a Python file. Each --spec is one
positional argument: comma-separated dims (an integer, or a name for a dynamic dim sized with
--size NAME=VALUE), then `:dtype` (default float32) and `:grad` for an argument that requires grad
(the backward graph is compiled too). `aot` prints the resource table (and fails, exit status 1,
when a kernel fails to compile, spills or needs more shared memory than the target has; `--json`
writes the report as JSON too); `precompile` compiles into Triton's cache (--cache-dir, else
TRITON_CACHE_DIR or ~/.triton/cache) and says what a GPU machine must set to find it.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path

from tritonflow.errors import TritonflowError


def add_commands(commands) -> None:
    """Register `aot` and `precompile` on the `tritonflow` argument parser's subcommands."""
    for name, text in (("aot", "compile a function's kernels for a GPU target here and print the resource table"),
                       ("precompile", "compile a function's kernels into Triton's cache for a GPU target")):
        parser = commands.add_parser(name, help=text)
        parser.add_argument("function", help="FILE.py:FUNCTION (or FILE.py:object.attribute)")
        parser.add_argument("--target", default="sm_90", help="sm_80, sm_89, sm_90, h100, a100, l4, ... (default sm_90)")
        parser.add_argument("--spec", action="append", default=[], metavar="DIMS[:DTYPE][:grad]",
                            help="one positional argument, e.g. 8192,4096:bfloat16 or batch,784:float32:grad")
        parser.add_argument("--size", action="append", default=[], metavar="NAME=VALUE",
                            help="the size of a dynamic dim named in a --spec")
        parser.add_argument("--jobs", type=int, default=None, help="parallel compiles (default: one per core)")
        parser.add_argument("--cache-dir", default=None, help="Triton cache directory to compile into")
        if name == "aot":
            parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")


def parse_spec(text: str):
    """'8192,4096:bfloat16:grad' -> TensorSpec((8192, 4096), bfloat16, requires_grad=True)."""
    from tritonflow.aot import TensorSpec
    parts = text.split(":")
    dims_text, rest = parts[0], parts[1:]
    grad = bool(rest) and rest[-1] == "grad"
    if grad:
        rest = rest[:-1]
    if len(rest) > 1:
        raise ValueError(f"--spec {text!r}: expected DIMS[:DTYPE][:grad]")
    dims = [d.strip() for d in dims_text.split(",") if d.strip()]
    shape = tuple(int(d) if d.lstrip("-").isdigit() else d for d in dims)
    return TensorSpec(shape, rest[0] if rest else "float32", requires_grad=grad)


def parse_sizes(items: list) -> dict:
    sizes = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--size {item!r}: expected NAME=VALUE with an integer value")
        sizes[name.strip()] = int(value)
    return sizes


def load_function(reference: str):
    """The object FILE.py:NAME[.ATTR...] names."""
    path, sep, attribute = reference.rpartition(":")
    if not sep or not path.endswith(".py"):
        raise ValueError(f"{reference!r}: expected FILE.py:FUNCTION")
    if not os.path.isfile(path):
        raise ValueError(f"{reference!r}: no file {path}")
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = module
    for name in attribute.split("."):
        if not hasattr(found, name):
            raise ValueError(f"{reference!r}: {path} has no {attribute}")
        found = getattr(found, name)
    return found


def report_json(report) -> dict:
    kernels = []
    for k in report.kernels:
        entry = {f.name: getattr(k, f.name) for f in dataclasses.fields(k) if f.name != "cost"}
        if k.cost is not None:
            entry["cost"] = {"bytes": k.cost.bytes, "flops": k.cost.flops, "predicted_seconds": k.cost.seconds}
        kernels.append(entry)
    cost = report.cost
    return {"function": report.name, "target": report.target.name, "symbols": report.symbols, "ok": report.ok,
            "kernels": kernels, "bytes": cost.bytes, "minimum_bytes": cost.minimum_bytes,
            "predicted_seconds": cost.seconds}


def run(args) -> int:
    from tritonflow import aot
    try:
        fn = load_function(args.function)
        specs = [parse_spec(s) for s in args.spec]
        sizes = parse_sizes(args.size)
        report = aot.compile(fn, *specs, target=args.target, sizes=sizes, jobs=args.jobs, cache_dir=args.cache_dir)
    except (TritonflowError, ValueError) as exc:
        print(f"tritonflow {args.command}: {exc}", file=sys.stderr)
        return 2
    print(report)
    if args.command == "precompile":
        where = args.cache_dir or "Triton's default cache (TRITON_CACHE_DIR, else ~/.triton/cache)"
        compiled = len([k for k in report.kernels if not k.error and k.same_as is None])
        print(f"\n{compiled} kernels compiled into {where} for {report.target.name}. On the GPU machines, "
              f"use the same triton and tritonflow install" + (f" and set TRITON_CACHE_DIR={args.cache_dir}"
                                                                 if args.cache_dir else "") + ".")
        return 1 if report.failures else 0
    if args.json is not None:
        args.json.write_text(json.dumps(report_json(report), indent=2, default=str) + "\n")
    return 0 if report.ok else 1
