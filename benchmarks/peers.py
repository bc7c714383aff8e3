"""Benchmarks: one workload against its peers — tritonflow eager, tritonflow compiled, torch eager,
torch.compile and, on a GPU, Liger-Kernel's Triton kernels where it has them (benchmarks/liger_peer.py)
— each checked against a float64 reference before it is timed.

`measure(workload, size, device)` prepares the workload's arguments once (the same values for every
provider), runs each provider once and compares its outputs (and, for a forward+backward workload,
its gradients under the same random cotangent) with the workload run by torch in float64; a provider
that disagrees raises `Mismatch`, naming the workload. Then it times them all:

- CPU: the providers interleaved (a, b, c, d, a, b, ...) so that outside load hits all alike;
  medians of this process's CPU time and of wall time per call, one thread per library;
  peak memory of the tritonflow providers by tracemalloc (NumPy reports its buffers to it; torch's
  CPU allocator does not, so torch's CPU peak is not measured).
- CUDA: `triton.testing.do_bench` medians; peak memory by `torch.cuda.max_memory_allocated`.

Compile cost: a compiled provider's first call minus its steady time (tracing, passes, codegen and,
for torch.compile, Dynamo + Inductor with their caches off, so both are cold).
A torch or Liger provider that cannot run here (torch missing, no C++ compiler for Inductor, Liger not
installed or without a kernel for the workload) is reported unavailable with the reason; a tritonflow
provider that fails is an error of the run.
"""
from __future__ import annotations

import contextlib
import statistics
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import tritonflow as tf
from tritonflow import backends
from tritonflow.benchmarks import liger_peer
from tritonflow.benchmarks.timing import calls_per_sample
from tritonflow.benchmarks.workloads import Workload, precision, torch_api

PROVIDERS = ("tritonflow eager", "tritonflow compiled", "torch eager", "torch.compile", liger_peer.PROVIDER)
COMPILED = ("tritonflow compiled", "torch.compile")
# Providers for a few workloads on some machines: the report shows them only where one ran.
OPTIONAL = (liger_peer.PROVIDER,)
# Largest error allowed, relative to the reference's largest magnitude, by the dtype computed in.
TOLERANCE = {"float32": 2e-4, "tf32": 1e-2, "float16": 1e-2, "bfloat16": 4e-2}


class Mismatch(Exception):
    """A provider's result disagrees with the float64 reference."""


@dataclass
class ProviderResult:
    seconds: float | None = None          # median per call (CPU: process CPU time; CUDA: do_bench)
    wall_seconds: float | None = None     # CPU only: median wall time per call
    samples: list | None = None           # CPU only: process CPU seconds per call, one per round (in turn)
    compile_seconds: float | None = None  # compiled providers: first call minus steady time
    peak_bytes: int | None = None
    max_error: float | None = None        # relative to the reference's largest magnitude
    bandwidth_fraction: float | None = None  # CUDA, memory-bound: minimum bytes / time / copy bandwidth
    unavailable: str | None = None        # why this provider did not run


@dataclass
class WorkloadResult:
    key: str
    label: str
    kind: str
    providers: dict = field(default_factory=dict)    # provider name -> ProviderResult
    predicted: dict | None = None                    # CUDA: the cost model's bytes, FLOPs, seconds
    note: str = ""


# ---------------------------------------------------------------- one provider's step

def _leaves(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _step(fn: Callable, args: list, wants_grad: list, make_cotangent: Callable, trains: bool = False) -> Callable:
    """One call of the workload: forward, then (when arguments want gradients) backward of the
    first output under a fixed cotangent. The same code runs tritonflow and torch tensors.
    A training step (`trains`) differentiates and updates its arguments itself: its results are
    its outputs, the gradients it left and every float argument after its update."""
    cotangent: list = []

    def step():
        for a in wants_grad:
            a.grad = None
        outs = _leaves(fn(*args))
        if trains:
            return outs + [a.grad for a in wants_grad] + [a.detach() for a in args if a.dtype.is_floating_point]
        if not wants_grad:
            return outs
        if not cotangent:
            cotangent.append(make_cotangent(outs[0]))
        outs[0].backward(cotangent[0])
        return outs + [a.grad for a in wants_grad]
    return step


def _as_f64(t) -> np.ndarray:
    """A result as float64 NumPy: a float64 reference keeps every bit; others go through float32
    (NumPy has no bfloat16 for torch to hand over)."""
    t = t.detach().to("cpu")
    if "float64" not in str(t.dtype):
        t = t.float()
    return np.asarray(t.numpy(), dtype=np.float64)


def _copies(args: list, lib, device: str, float_dtype: str | None = None) -> list:
    """Copies of tritonflow arguments (same values) as `lib` tensors (tritonflow or torch) on
    `device`, floats cast to `float_dtype` when given, wanting gradients as the originals do."""
    copies = []
    for a in args:
        values = a.detach().to("cpu").float().numpy() if a.dtype.is_floating_point else a.detach().to("cpu").numpy()
        values = np.array(values)  # a copy: torch.from_numpy would share the original's memory
        dtype = (float_dtype or a.dtype.name) if a.dtype.is_floating_point else a.dtype.name
        if lib is tf:
            t = tf.tensor(values, dtype=dtype).to(device)
            t.requires_grad = a.requires_grad
        else:
            t = lib.from_numpy(values).to(device=device, dtype=getattr(lib, dtype)).requires_grad_(a.requires_grad)
        copies.append(t)
    return copies


def _cotangent_maker(lib, values: np.ndarray, device: str) -> Callable:
    """The cotangent for an output: the first numel of `values` in the output's shape and dtype."""
    def make(out):
        shape = tuple(out.shape)
        part = values[:int(np.prod(shape))].reshape(shape)
        if lib is tf:
            return tf.tensor(part, dtype=out.dtype).to(device)
        return lib.from_numpy(part).to(device=device, dtype=out.dtype)
    return make


def _tolerance(workload: Workload, specs: list) -> float:
    names = {s.dtype.name for s in specs if s.dtype.is_floating_point}
    if workload.matmul_precision != "highest" and names == {"float32"}:
        names = {"tf32"}
    return max(TOLERANCE.get(n, 2e-4) for n in names)


def compare(provider: str, workload_label: str, got: list, want: list, tolerance: float) -> float:
    """The largest error of `got` against `want` relative to each reference's largest magnitude;
    raises Mismatch over `tolerance`, or on a shape difference or a non-finite value."""
    if len(got) != len(want):
        raise Mismatch(f"{workload_label}: {provider} returned {len(got)} results, the reference {len(want)}")
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            raise Mismatch(f"{workload_label}: {provider} result {i} has shape {g.shape}, the reference {w.shape}")
        if not np.all(np.isfinite(g)):
            raise Mismatch(f"{workload_label}: {provider} result {i} holds inf or NaN")
        scale = max(float(np.abs(w).max(initial=0.0)), 1e-30)
        worst = max(worst, float(np.abs(g - w).max(initial=0.0)) / scale)
    if worst > tolerance:
        raise Mismatch(f"{workload_label}: {provider} differs from the float64 reference by {worst:.3g} "
                       f"of its largest magnitude (tolerance {tolerance:g})")
    return worst


# ---------------------------------------------------------------- preparing the providers

def _torch():
    try:
        return torch_api()
    except ImportError:
        return None


def prepare(workload: Workload, size: str, device: str, compiled_backend: str, providers: tuple = PROVIDERS) -> tuple:
    """(steps, unavailable, reference step): a zero-argument step per provider on the same argument
    values, the reasons of providers that cannot run, and the workload's float64 step (torch's when
    torch is installed, else tritonflow's numpy backend). Liger's step is made only when chosen
    (importing it costs seconds), on its own copies of the arguments (it overwrites them)."""
    fn, specs = workload.make(size)
    args = workload.arguments(size, device=device, seed=1)
    cot_values = np.random.default_rng(7).standard_normal(max(int(np.prod(s.shape)) for s in specs))
    cot_values = cot_values.astype(np.float32)
    steps: dict = {}
    unavailable: dict = {}

    def add(name: str, lib, function, provider_args: list) -> None:
        if workload.trains:  # a training step updates its arguments: each provider starts from its own copy
            provider_args = _copies(args, lib, device)
        wants = [a for a in provider_args if a.requires_grad]
        steps[name] = _step(function, provider_args, wants, _cotangent_maker(lib, cot_values, device), workload.trains)

    add("tritonflow eager", tf, fn, args)
    add("tritonflow compiled", tf, tf.jit(fn, backend=compiled_backend), args)
    api = _torch()
    if api is None:
        unavailable["torch eager"] = unavailable["torch.compile"] = "torch is not installed"
        unavailable[liger_peer.PROVIDER] = "torch is not installed"
        ref_lib, ref_fn = tf, fn
        ref_args = _copies(args, tf, "cpu", "float64")
    else:
        torch = api.lib
        torch_fn, _ = workload.make(size, api)
        torch_args = _copies(args, torch, device)
        add("torch eager", torch, torch_fn, torch_args)
        torch._dynamo.reset()
        add("torch.compile", torch, torch.compile(torch_fn), torch_args)
        if liger_peer.PROVIDER in providers:
            reason = liger_peer.unavailable(workload, device, compiled_backend)
            if reason:
                unavailable[liger_peer.PROVIDER] = reason
            else:
                add(liger_peer.PROVIDER, torch, liger_peer.function(workload), _copies(args, torch, device))
        ref_lib, ref_fn = torch, torch_fn
        ref_args = _copies(args, torch, device, "float64")
    ref_wants = [a for a in ref_args if a.requires_grad]
    reference = _step(ref_fn, ref_args, ref_wants, _cotangent_maker(ref_lib, cot_values.astype(np.float64),
                                                                    "cpu" if ref_lib is tf else device),
                      workload.trains)
    return steps, unavailable, reference, _tolerance(workload, specs)


# ---------------------------------------------------------------- timing and memory

def _synchronize(device: str) -> None:
    if device != "cpu":
        import torch
        torch.cuda.synchronize()


def _first_call(step: Callable, device: str) -> tuple:
    """(results as float64 arrays, wall seconds of the call)."""
    start = time.perf_counter()
    results = step()
    _synchronize(device)
    seconds = time.perf_counter() - start
    return [_as_f64(t) for t in results], seconds


def time_cpu(steps: dict, repeats: int, target_s: float) -> dict:
    """Provider -> (median process CPU seconds, median wall seconds, CPU seconds of each round) per
    call, sampled in turn: round i of every provider ran back to back."""
    import gc
    number = {name: calls_per_sample(step, target_s) for name, step in steps.items()}
    cpu: dict = {name: [] for name in steps}
    wall: dict = {name: [] for name in steps}
    for _ in range(repeats):
        gc.collect()
        with _collector_paused():
            for name, step in steps.items():
                w0, c0 = time.perf_counter(), time.process_time()
                for _ in range(number[name]):
                    step()
                cpu[name].append((time.process_time() - c0) / number[name])
                wall[name].append((time.perf_counter() - w0) / number[name])
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name]), cpu[name]) for name in steps}


@contextlib.contextmanager
def _collector_paused():
    import gc
    was = gc.isenabled()
    gc.disable()  # a collection landing in one sample is noise, not the code's cost
    try:
        yield
    finally:
        if was:
            gc.enable()


def time_cuda(step: Callable, quick: bool) -> float:
    import triton.testing
    return triton.testing.do_bench(step, warmup=10 if quick else 25, rep=40 if quick else 100,
                                   return_mode="median") / 1e3


def peak_bytes(step: Callable, device: str, provider: str) -> int | None:
    """Peak memory one call allocates: CUDA's allocator statistics, or tracemalloc for the NumPy
    buffers of the tritonflow providers on a CPU (None for torch on a CPU: not traced)."""
    if device != "cpu":
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    if not provider.startswith("tritonflow"):
        return None
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@contextlib.contextmanager
def _torch_settings(workload: Workload):
    """torch under the workload's float32 matmul precision, with Inductor's caches off (a cold
    compile, as tritonflow's first call is)."""
    api = _torch()
    if api is None:
        yield
        return
    torch = api.lib
    # With the caches off, Dynamo warns once per compile that its profile-guided cache is off too.
    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")
    precision_before = torch.get_float32_matmul_precision()
    caches_before = torch._inductor.config.force_disable_caches
    torch.set_float32_matmul_precision(workload.matmul_precision)
    torch._inductor.config.force_disable_caches = True
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision_before)
        torch._inductor.config.force_disable_caches = caches_before


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


# ---------------------------------------------------------------- one workload

def measure(workload: Workload, size: str, device: str = "cpu", quick: bool = False,
            compiled_backend: str | None = None, target=None, copy_bandwidth: float | None = None,
            providers: tuple = PROVIDERS, repeats: int | None = None) -> WorkloadResult:
    """Every provider on `workload` at `size`: checked against float64, then timed (module docstring).
    `target` (a tritonflow Target, CUDA runs) adds the cost model's prediction, and with
    `copy_bandwidth` (bytes/s) each memory-bound provider's fraction of it. `providers` picks some
    (the others are reported as not chosen); `repeats` overrides the CPU samples per provider."""
    backend = compiled_backend or backends.default_backend(device)
    label = workload.label(size)
    result = WorkloadResult(workload.key, label, workload.kind, note=workload.note)
    with precision(workload), _torch_settings(workload):
        steps, unavailable, reference, tolerance = prepare(workload, size, device, backend, providers)
        want = [_as_f64(t) for t in reference()]
        first: dict = {}
        for name in PROVIDERS:
            if name not in providers:
                unavailable.setdefault(name, "not chosen")
            if name in unavailable:
                result.providers[name] = ProviderResult(unavailable=unavailable[name])
                continue
            try:
                got, first[name] = _first_call(steps[name], device)
            except Exception as exc:  # noqa: BLE001 - a peer that cannot run here is reported, not fatal
                if name.startswith("tritonflow"):
                    raise
                result.providers[name] = ProviderResult(unavailable=one_line(exc))
                steps.pop(name)
                continue
            result.providers[name] = ProviderResult(max_error=compare(name, label, got, want, tolerance))
        runnable = {name: steps[name] for name in PROVIDERS if name in steps and name not in unavailable}
        if device == "cpu":
            times = time_cpu(runnable, repeats=repeats or (5 if quick else 11), target_s=0.02 if quick else 0.05)
            for name, (cpu, wall, rounds) in times.items():
                entry = result.providers[name]
                entry.seconds, entry.wall_seconds, entry.samples = cpu, wall, rounds
        else:
            for name, step in runnable.items():
                result.providers[name].seconds = time_cuda(step, quick)
        for name, step in runnable.items():
            entry = result.providers[name]
            entry.peak_bytes = peak_bytes(step, device, name)
            if name in COMPILED:
                steady = entry.wall_seconds if entry.wall_seconds is not None else entry.seconds
                entry.compile_seconds = max(first[name] - steady, 0.0)
        if target is not None:
            result.predicted = predicted_cost(workload, size, target)
            if copy_bandwidth and workload.kind == "memory":
                for entry in result.providers.values():
                    if entry.seconds:
                        entry.bandwidth_fraction = result.predicted["minimum_bytes"] / entry.seconds / copy_bandwidth
    return result


def cuda_anchors(quick: bool) -> dict:
    """The limits measured in the same run: a 1 GiB device copy's bandwidth (bytes read + written
    per second) and torch.matmul's bfloat16 rate at 8192^3 (FLOP/s)."""
    import torch
    source = torch.empty(2 ** 28, device="cuda", dtype=torch.float32)
    target = torch.empty_like(source)
    copy_s = time_cuda(lambda: target.copy_(source), quick)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    matmul_s = time_cuda(lambda: a @ a, quick)
    return {"copy_bandwidth": 2 * 2 ** 30 / copy_s, "matmul_bf16_flops": 2 * 8192 ** 3 / matmul_s}


def predicted_cost(workload: Workload, size: str, target) -> dict:
    """The static cost model's bytes, minimum bytes, FLOPs and seconds for the compiled workload."""
    from tritonflow import aot
    fn, specs = workload.make(size)
    cost = aot.cost(fn, *specs, target=target)
    return {"bytes": cost.bytes, "minimum_bytes": cost.minimum_bytes, "flops": cost.flops, "seconds": cost.seconds,
            "target": cost.target.name}
