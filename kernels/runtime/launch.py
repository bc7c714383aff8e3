"""Lowering stage: launching one compiled kernel — arguments, setup, autotuning, the JIT launch.

Every kernel, generated or template, launches through `launch`: its `LaunchSetup` for the call's
sizes and the lowering target (launch_setup.py; templates/launch.py for matmul and attention), in
mode="max-autotune" on a GPU the fastest of a few candidates (benchmarked on the first call with
real arguments, remembered in memory and on disk under the setup's tuning key), then one launch
through Triton's JIT dispatch. A Triton compile failure becomes a LoweringError naming the kernel,
its IR nodes and the path of its generated source.

Launches are reported to whoever listens: the call plan being recorded on this thread
(runtime/call_plan.py builds a plan from them) and the observers added with `add_observer`
(the test suite's compile check collects every kernel it ran).

Every interpreted launch (TRITON_INTERPRET=1) goes through `run_jit`, which takes one
process-wide lock: for the length of a launch Triton's interpreter patches `triton.language`
and keeps the program id in module globals, so two threads launching at once break each other
("Did you forget to add @triton.jit?"). GPU launches are not serialized.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable

from tritonflow import environment
from tritonflow.errors import LoweringError, UnsupportedError
from tritonflow.kernels import cache, heuristics
from tritonflow.kernels.runtime.launch_setup import LaunchSetup, cdiv
from tritonflow.target import Target

_recorder = threading.local()
_observers: list = []


# ---------------------------------------------------------------- listeners

def start_recording() -> list:
    """Collect this thread's launches as (kernel, grid, config, compiled) until stop_recording()."""
    launches: list = []
    _recorder.launches = launches
    return launches


def stop_recording() -> None:
    _recorder.launches = None


def add_observer(callback: Callable) -> None:
    """Call `callback(kernel, grid, args, config)` after every launch through `launch` (any thread)."""
    _observers.append(callback)


def remove_observer(callback: Callable) -> None:
    if callback in _observers:
        _observers.remove(callback)


def _report(kernel, grid: tuple, args: list, config: dict, compiled) -> None:
    launches = getattr(_recorder, "launches", None)
    if launches is not None:
        launches.append((kernel, tuple(grid), dict(config), compiled))
    for callback in list(_observers):
        callback(kernel, tuple(grid), args, dict(config))


# ---------------------------------------------------------------- one launch

def bind_args(kernel, env: dict, symbols: dict) -> list:
    values = []
    for arg in kernel.generated.args:
        if arg.kind == "buffer":
            values.append(env[id(arg.ref)])
        elif arg.kind == "stride":
            node, dim = arg.ref
            values.append(env[id(node)].stride(dim))
        else:
            values.append(int(symbols[arg.ref]))
    return values


def launch_setup(kernel, symbols: dict, target: Target) -> LaunchSetup:
    """The setup of `kernel` for these sizes on `target` (no tensors needed)."""
    g = kernel.generated
    if g.config.get("template"):
        from tritonflow.kernels.templates.launch import template_setup
        return template_setup(g, symbols, target)
    numel = g.numel(symbols)

    def grid(config: dict) -> tuple:
        return (cdiv(numel, config["XBLOCK"]),)

    if g.kind == "reduction":
        rnumel = g.config["rnumel"](symbols)
        itemsize = max((node.dtype.itemsize for node in g.reads), default=4)
        persistent = g.config["persistent"]
        base = heuristics.reduction_config(numel, rnumel, itemsize, persistent,
                                           g.config.get("rows_contiguous", True), target, loads=len(g.loads))
    elif g.kind == "scan":
        persistent = False
        base = heuristics.scan_config(numel, g.config["rnumel"](symbols), target)
    elif g.kind in ("sort", "sort_merge"):
        return _sort_setup(g, numel, symbols, target)
    else:
        persistent = False
        base = heuristics.pointwise_config(numel, target)
    tuned = g.kind in ("pointwise", "reduction")
    size_key = tuple(sorted(symbols.items())) + (numel,)
    return LaunchSetup(
        base=base, grid=grid,
        candidates=lambda: heuristics.autotune_candidates(g.kind, base, persistent),
        tuning_key=(lambda: cache.make_key(f"{kernel.key} sizes={size_key}", target)) if tuned else None)


def _sort_setup(g, numel: int, symbols: dict, target: Target) -> LaunchSetup:
    """Sorts and their merge passes (kernels/codegen/sort.py) are never autotuned: their block is
    the row (or the chunk) they sort."""
    rnumel = g.config["rnumel"](symbols)
    if g.kind == "sort_merge":
        return LaunchSetup(base=heuristics.merge_config(numel, rnumel, target),
                           grid=lambda c: (cdiv(numel, c["XBLOCK"]), cdiv(rnumel, c["RBLOCK"])))
    chunk = g.config.get("chunk")
    if chunk is not None:  # a long row in chunks, merged by the kernels after this one
        return LaunchSetup(base=heuristics.sort_config(numel, rnumel, target, chunk),
                           grid=lambda c: (cdiv(numel, c["XBLOCK"]), cdiv(rnumel, chunk)))
    if rnumel > heuristics.SORT_MAX:  # a dynamic length (static ones are sorted in chunks)
        raise UnsupportedError(heuristics.sort_too_long(g.config["op"], rnumel), loc=g.config["where"])
    return LaunchSetup(base=heuristics.sort_config(numel, rnumel, target),
                       grid=lambda c: (cdiv(numel, c["XBLOCK"]),))


def launch(kernel, env: dict, symbols: dict, mode: str, target: Target) -> None:
    if kernel.generated.numel(symbols) == 0:
        return
    args = bind_args(kernel, env, symbols)
    setup = launch_setup(kernel, symbols, target)
    config = setup.base
    if mode == "max-autotune" and not target.interpreted and setup.tuning_key is not None:
        config = autotune(kernel, args, setup)
    config = setup.finish(config)
    grid = setup.grid(config)
    compiled = run_jit(kernel, grid, args, config)
    _report(kernel, grid, args, config, compiled)


_INTERPRETER_LOCK = threading.RLock()


def run_jit(kernel, grid: tuple, args: list, config: dict):
    """One launch through Triton's JIT dispatch; returns its CompiledKernel (None when interpreted)."""
    turn = _INTERPRETER_LOCK if environment.triton_interpret() else contextlib.nullcontext()
    try:
        with turn:
            return kernel.fn[grid](*args, **config)
    except Exception as exc:
        if isinstance(exc, LoweringError):
            raise
        lines = "\n  ".join(kernel.generated.node_lines)
        raise LoweringError(f"Triton failed to compile or run kernel {kernel.generated.name} "
                            f"({type(exc).__name__}: {str(exc)[:2000]})\n  generated source: {kernel.path}\n"
                            f"  IR nodes:\n  {lines}") from exc


# ---------------------------------------------------------------- autotuning

def autotune(kernel, args: list, setup: LaunchSetup) -> dict:
    """The fastest candidate of `setup`, benchmarked once per tuning key and remembered on disk."""
    key = setup.tuning_key()
    found = kernel.tuned.get(key)
    if found is not None:
        return found
    remembered = cache.load_tuned(key)
    if remembered is not None:
        kernel.tuned[key] = remembered
        return remembered
    import triton.testing
    best, best_time = setup.base, float("inf")
    for config in setup.candidates():
        full = setup.finish(config)
        grid = setup.grid(full)
        try:
            ms = triton.testing.do_bench(lambda: kernel.fn[grid](*args, **full), warmup=10, rep=40)
        except Exception:  # a candidate that does not fit this chip (shared memory, registers) is skipped
            continue
        if ms < best_time:
            best, best_time = config, ms
    kernel.tuned[key] = best
    cache.save_tuned(key, best)
    return best
