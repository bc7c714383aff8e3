"""Benchmark (GPU): tritonflow's generated kernels on the memory-bound workloads of issue 3,
against torch eager and torch.compile in the same run, as a fraction of a 1 GiB device copy;
then the runtime's own costs: host time per call of a one-kernel function (Triton's JIT dispatch,
its CompiledKernel launcher, a LoweredGraph call plan, a whole `tritonflow.jit` call), a small
multi-kernel graph with and without mode="reduce-overhead" (CUDA graphs), and cold / warm-disk
compile time of a one-kernel function in a fresh process.

Run with PYTHONPATH=. on a CUDA machine: `python benchmarks/gpu_bench.py [--out DIR] [--budget S]`.
`--budget` (seconds, default 100) bounds the run: torch.compile peers are skipped (and say so)
once 60% of it is spent, workloads once all of it is. Graphs are built directly in the IR
(kernels.lower), so the workload rows measure the code generator and launcher, not the tracer.
Prints a Markdown table last and writes JSON + Markdown under benchmarks/results/.

Without a GPU, `python benchmarks/gpu_bench.py --overhead-only` measures the host overhead on
CPU under Triton's interpreter: a real interpreted call, and the same call with the kernel body
stubbed out, which leaves tritonflow's own per-call cost (plan lookup, allocation, arguments).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

if not torch.cuda.is_available():
    # CPU: only --overhead-only runs, in Triton's interpreter (switched on before triton loads).
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402
import triton.testing  # noqa: E402

from tritonflow import kernels  # noqa: E402
import tritonflow as tf  # noqa: E402
import tritonflow.ops  # noqa: E402,F401
from tritonflow import dtypes as D
from tritonflow.ir import Graph, TensorType
from tritonflow.ops.registry import OPS

F32, BF16 = D.float32, D.bfloat16


class B:
    def __init__(self, name):
        self.g = Graph(name)

    def inp(self, name, shape, dtype=F32):
        return self.g.add_input(name, TensorType(tuple(shape), dtype))

    def const(self, v):
        a = np.asarray(v, dtype=np.float32)
        return self.g.add_constant(a, TensorType((), F32))

    def __call__(self, op, *xs, **attrs):
        return self.g.add(op, xs, attrs, OPS[op].infer([x.type for x in xs], attrs))

    def done(self, *outs):
        self.g.outputs = list(outs)
        return self.g


def bench(fn):
    return triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")


def rand(shape, dtype):
    return torch.randn(shape, device="cuda", dtype=dtype)


def try_compile(fn):
    try:
        return torch.compile(fn)
    except Exception:
        return None


# ---------------------------------------------------------------- workloads: (graph, inputs, torch fn, bytes)

def relu_mul_add():
    n = 2 ** 26
    b = B("relu_mul_add")
    x, y, z = (b.inp(k, (n,)) for k in "abc")
    g = b.done(b("relu", b("add", b("mul", x, y), z)))
    args = [rand((n,), torch.float32) for _ in range(3)]
    return g, args, lambda a, b_, c: torch.relu(a * b_ + c), 4 * n * 4


def gelu_bf16():
    n = 2 ** 27
    b = B("gelu")
    x = b.inp("x", (n,), BF16)
    xf = b("cast", x, dtype=F32)
    inner = b("mul", b("add", xf, b("mul", b("mul", b("mul", xf, xf), xf), b.const(0.044715))), b.const(0.7978845608))
    y = b("mul", b("mul", xf, b.const(0.5)), b("add", b.const(1.0), b("tanh", inner)))
    g = b.done(b("cast", y, dtype=BF16))
    return g, [rand((n,), torch.bfloat16)], lambda t: torch.nn.functional.gelu(t, approximate="tanh"), 2 * n * 2


def swiglu_bf16():
    n = 2 ** 27
    b = B("swiglu")
    gate, x = b.inp("gate", (n,), BF16), b.inp("x", (n,), BF16)
    gf, xf = b("cast", gate, dtype=F32), b("cast", x, dtype=F32)
    g = b.done(b("cast", b("mul", b("mul", gf, b("sigmoid", gf)), xf), dtype=BF16))
    args = [rand((n,), torch.bfloat16) for _ in range(2)]
    return g, args, lambda a, c: torch.nn.functional.silu(a) * c, 3 * n * 2


def softmax_f32():
    shape = (16384, 4096)
    b = B("softmax")
    x = b.inp("x", shape)
    m = b("reduce_max", x, dims=(1,), keepdim=True)
    e = b("exp", b("sub", x, b("expand", m, shape=shape)))
    s = b("reduce_sum", e, dims=(1,), keepdim=True)
    g = b.done(b("div", e, b("expand", s, shape=shape)))
    return g, [rand(shape, torch.float32)], lambda t: torch.softmax(t, -1), 2 * shape[0] * shape[1] * 4


def norm_bf16(rms):
    shape = (8192, 4096)
    n = shape[1]
    b = B("rms_norm" if rms else "layer_norm")
    x, w = b.inp("x", shape, BF16), b.inp("w", (n,), BF16)
    bias = None if rms else b.inp("bias", (n,), BF16)
    xf = b("cast", x, dtype=F32)
    if rms:
        c = xf
    else:
        mean = b("mul", b("reduce_sum", xf, dims=(1,), keepdim=True), b.const(1.0 / n))
        c = b("sub", xf, b("expand", mean, shape=shape))
    var = b("mul", b("reduce_sum", b("mul", c, c), dims=(1,), keepdim=True), b.const(1.0 / n))
    y = b("mul", b("mul", c, b("expand", b("rsqrt", b("add", var, b.const(1e-5))), shape=shape)), b("cast", w, dtype=F32))
    if not rms:
        y = b("add", y, b("cast", bias, dtype=F32))
    g = b.done(b("cast", y, dtype=BF16))
    args = [rand(shape, torch.bfloat16), rand((n,), torch.bfloat16)]
    if rms:
        ref = lambda t, ww: torch.nn.functional.rms_norm(t, (n,), ww, 1e-5)  # noqa: E731
    else:
        args.append(rand((n,), torch.bfloat16))
        ref = lambda t, ww, bb: torch.nn.functional.layer_norm(t, (n,), ww, bb, 1e-5)  # noqa: E731
    return g, args, ref, 2 * shape[0] * shape[1] * 2


def cross_entropy_bf16():
    rows, classes = 8192, 32000
    b = B("cross_entropy")
    logits, target = b.inp("logits", (rows, classes), BF16), b.inp("target", (rows,), D.int64)
    x = b("cast", logits, dtype=F32)
    m = b("reduce_max", x, dims=(1,), keepdim=True)
    lse = b("add", b("log", b("reduce_sum", b("exp", b("sub", x, b("expand", m, shape=(rows, classes)))),
                              dims=(1,), keepdim=True)), m)
    logp = b("sub", x, b("expand", lse, shape=(rows, classes)))
    picked = b("gather", logp, b("reshape", target, shape=(rows, 1)), dim=1)
    g = b.done(b("div", b("neg", b("reduce_sum", picked, dims=(0, 1), keepdim=False)), b.const(float(rows))))
    args = [rand((rows, classes), torch.bfloat16), torch.randint(0, classes, (rows,), device="cuda")]
    return g, args, lambda l, t: torch.nn.functional.cross_entropy(l, t), rows * classes * 2


def column_normalize():
    shape = (65536, 1024)
    b = B("column_normalize")
    x = b.inp("x", shape)
    s = b("reduce_sum", x, dims=(0,), keepdim=True)
    g = b.done(b("div", x, b("expand", s, shape=shape)))
    return g, [rand(shape, torch.float32)], lambda t: t / t.sum(0, keepdim=True), 2 * shape[0] * shape[1] * 4


def adam_graph(n):
    b = B("adam")
    p, gr, m, v = (b.inp(k, (n,)) for k in ("p", "g", "m", "v"))
    one = b.const(1.0)
    b1, b2, lr, eps = b.const(0.9), b.const(0.999), b.const(1e-3), b.const(1e-8)
    m2 = b("add", b("mul", m, b1), b("mul", gr, b("sub", one, b1)))
    v2 = b("add", b("mul", v, b2), b("mul", b("mul", gr, gr), b("sub", one, b2)))
    p2 = b("sub", p, b("div", b("mul", m2, lr), b("add", b("sqrt", v2), eps)))
    return b.done(p2, m2, v2)


WORKLOADS = [
    ("relu(a*b+c) f32 2^26", relu_mul_add),
    ("tanh-GELU bf16 2^27", gelu_bf16),
    ("SwiGLU bf16 2^27", swiglu_bf16),
    ("softmax f32 16384x4096", softmax_f32),
    ("layer_norm bf16 8192x4096", lambda: norm_bf16(False)),
    ("rms_norm bf16 8192x4096", lambda: norm_bf16(True)),
    ("cross_entropy bf16 8192x32000", cross_entropy_bf16),
    ("column-normalize f32 65536x1024", column_normalize),
]


def copy_bandwidth() -> float:
    n = 2 ** 30 // 4
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src))
    return 2 * n * 4 / ms / 1e6  # GB/s


class Budget:
    """Wall-clock budget of the run: peers and workloads are skipped, visibly, past it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def spent(self) -> float:
        return (time.perf_counter() - self.start) / self.seconds


def run_workload(name, make, copy_gbs, budget: Budget):
    graph, args, ref, nbytes = make()
    low = kernels.lower(graph, mode="default")
    outs = low(args, {})
    torch.cuda.synchronize()
    want = ref(*args)
    err = (outs[0].float() - want.float()).abs().max().item()
    ours = bench(lambda: low(args, {}))
    eager = bench(lambda: ref(*args))
    compiled, note = float("nan"), ""
    if budget.spent() < 0.6:
        compiled_fn = try_compile(ref)
        try:
            compiled = bench(lambda: compiled_fn(*args)) if compiled_fn is not None else float("nan")
        except Exception as exc:  # a peer failing is reported, not fatal
            note = f"torch.compile failed: {type(exc).__name__}"
    else:
        note = "torch.compile skipped (time budget)"
    gbs = nbytes / ours / 1e6
    return {"workload": name, "kernels": len(low.kernels), "tritonflow_ms": ours, "eager_ms": eager,
            "compile_ms": compiled, "GB/s": gbs, "fraction_of_copy": gbs / copy_gbs, "max_abs_err": err,
            "predicted_ms": predicted_ms(graph, low.target), "note": note}


def predicted_ms(graph, target) -> float:
    """The static cost model's roofline time for `graph` on `target` (kernels/cost_model.py)."""
    from tritonflow.kernels.aot import graphs_cost
    try:
        return 1e3 * graphs_cost([graph], target).seconds
    except Exception:  # the model is a column of the table, never a reason to lose the row
        return float("nan")


def run_adam(copy_gbs):
    total, tensors = 50_000_000, 200
    n = total // tensors
    low = kernels.lower(adam_graph(n))
    states = [[rand((n,), torch.float32) for _ in range(3)] + [torch.rand(n, device="cuda")] for _ in range(tensors)]

    def ours():
        for p, g, m, v in states:
            low([p, g, m, v], {})

    params = [torch.nn.Parameter(s[0].clone()) for s in states]
    for p, s in zip(params, states):
        p.grad = s[1].clone()
    opt = torch.optim.Adam(params, lr=1e-3, foreach=True)
    opt.step()
    t_ours = bench(ours)
    t_eager = bench(opt.step)
    nbytes = total * 4 * 7  # read p, g, m, v; write p, m, v
    gbs = nbytes / t_ours / 1e6
    return {"workload": "Adam 50M f32 in 200 tensors", "kernels": 200 * len(low.kernels), "tritonflow_ms": t_ours,
            "eager_ms": t_eager, "compile_ms": float("nan"), "GB/s": gbs, "fraction_of_copy": gbs / copy_gbs,
            "max_abs_err": 0.0, "note": "200 calls of one compiled update; no torch.compile peer"}


# ---------------------------------------------------------------- runtime overhead

def host_us(fn, calls: int) -> float:
    """Host time per call (us): the calls queue faster than tiny kernels run, so this is launch cost."""
    for _ in range(20):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return elapsed / calls * 1e6


def tiny_graph(n: int):
    b = B("tiny_relu_mul_add")
    x, y, z = (b.inp(k, (n,)) for k in "abc")
    return b.done(b("relu", b("add", b("mul", x, y), z)))


def chain_graph(rows: int, cols: int):
    """Four reductions that cannot share a kernel (each reads the previous one's result)."""
    b = B("chain")
    shape = (rows, cols)
    x = b.inp("x", shape)
    s1 = b("reduce_sum", x, dims=(1,), keepdim=True)
    s2 = b("reduce_sum", b("div", x, b("expand", s1, shape=shape)), dims=(0,), keepdim=True)
    s3 = b("reduce_sum", b("mul", x, b("expand", s2, shape=shape)), dims=(1,), keepdim=True)
    return b.done(b("reduce_sum", b("div", x, b("expand", s3, shape=shape)), dims=(0,), keepdim=False))


class _NoKernel:
    """Stands in for a kernel on CPU so a timing keeps only tritonflow's own per-call work."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def overhead_rows() -> list:
    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    calls = 3000 if on_gpu else 300
    rows = []
    low = kernels.lower(tiny_graph(1024))
    args = [torch.rand(1024, device=device) for _ in range(3)]
    low(args, {})
    low(args, {})
    (plan,) = low._plans.values()
    step = plan.steps[0]
    if on_gpu:
        fn, grid, config = step.kernel.fn, step.grid, step.config
        out = torch.empty(1024, device=device)
        targs = [args[0], args[1], args[2], out]
        rows.append(("Triton JIT dispatch kernel[grid](...), 4 args", host_us(lambda: fn[grid](*targs, **config), calls)))
        compiled = fn[grid](*targs, **config)
        runner = compiled[grid]
        tail = step.tail or ()
        rows.append(("Triton CompiledKernel[grid](...)", host_us(lambda: runner(*targs, *tail), calls)))
    else:
        interpreted = host_us(lambda: low(args, {}), 50)
        rows.append(("LoweredGraph call, interpreted kernel (CPU)", interpreted))
        step.kernel.fn = _NoKernel()
    rows.append(("LoweredGraph call (call plan" + (", direct launcher)" if on_gpu else "; kernel stubbed)"),
                 host_us(lambda: low(args, {}), calls)))
    for variant in low._variants.values():      # the general path launches the variant's kernels
        for kernel in variant:
            kernel.fn = step.kernel.fn
    general = lambda: low._call_general(args, {}, args[0].device)  # noqa: E731
    rows.append(("LoweredGraph general path (each call decides afresh, JIT dispatch; before call plans)"
                 + ("" if on_gpu else ", kernel stubbed"), host_us(general, calls)))
    f = tf.jit(lambda a, b, c: tf.relu(a * b + c), backend="triton")
    xs = [tf.tensor(np.random.rand(1024).astype(np.float32)).to(device) for _ in range(3)]
    f(*xs)
    if not on_gpu:
        rows.append(("tritonflow.jit call, interpreted kernel (CPU)", host_us(lambda: f(*xs), 50)))
        for lowered in _lowered_graphs_of(f):
            for p in lowered._plans.values():
                for st in p.steps:
                    st.kernel.fn = _NoKernel()
    rows.append(("tritonflow.jit call, one kernel" + ("" if on_gpu else " (kernel stubbed)"), host_us(lambda: f(*xs), calls)))
    for entry in f.entries.values():
        outs = entry.runner([x._data for x in xs], entry.device)
        entry.runner = lambda arrays, device, outs=outs: outs
    rows.append(("tritonflow.jit layer alone (guards, wrapping; runner stubbed)", host_us(lambda: f(*xs), calls)))
    if on_gpu:
        x = torch.rand(64, 512, device=device) + 1
        for mode in ("default", "reduce-overhead"):
            chain = kernels.lower(chain_graph(64, 512), mode=mode)
            rows.append((f"4-kernel chain, LoweredGraph mode={mode}", host_us(lambda: chain([x], {}), calls)))
    return rows


def _lowered_graphs_of(jitted) -> list:
    found = []
    for entry in jitted.entries.values():
        lowered = getattr(getattr(entry, "runner", None), "lowered", None)
        if lowered is not None:
            found.append(lowered)
    return found


COMPILE_SCRIPT = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np, torch, kernels
sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
from gpu_bench import tiny_graph
args = [torch.rand(4096, device="cuda") for _ in range(3)]
torch.cuda.synchronize()
t1 = time.perf_counter()
low = kernels.lower(tiny_graph(4096))
low(args, {})
torch.cuda.synchronize()
t2 = time.perf_counter()
print(json.dumps({"startup_s": t1 - t0, "first_call_s": t2 - t1, "stats": kernels.cache_stats()}))
"""


def compile_rows() -> list:
    """A one-kernel function's first call in a fresh process: cold caches, then a warm disk cache."""
    rows = []
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as triton_cache:
        env = dict(os.environ, TRITONFLOW_CACHE_DIR=cache, TRITON_CACHE_DIR=triton_cache)
        for label in ("cold (code generation + Triton compile)", "warm disk cache"):
            done = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True,
                                  timeout=120)
            if done.returncode != 0:
                rows.append((f"first call, {label}", float("nan"), done.stderr.strip().splitlines()[-1:]))
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((f"first call, {label}", 1e3 * result["first_call_s"], result["stats"]))
    return rows


# ---------------------------------------------------------------- report

def machine_meta(copy_gbs) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu (Triton interpreter)"
    return {"card": card, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__, "triton": triton.__version__, "commit": commit, "copy_GBps": copy_gbs}


def fmt(value, spec: str) -> str:
    return "n/a" if value != value else format(value, spec)  # NaN: not measured


def render(meta: dict, rows: list, overhead: list, compiles: list) -> str:
    lines = [f"GPU check: {meta['card']}, {meta['date']}, torch {meta['torch']}, triton {meta['triton']}, "
             f"commit {meta['commit']}" + (f"; 1 GiB copy {meta['copy_GBps']:.0f} GB/s" if meta["copy_GBps"] else "")]
    if rows:
        lines += ["", "| workload | kernels | tritonflow ms | cost model ms | torch eager ms | torch.compile ms | GB/s "
                      "| of copy | max err |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['workload']} | ERROR: {r['error']} | | | | | | | |")
                continue
            compile_text = fmt(r["compile_ms"], ".3f") if not r.get("note") else f"{fmt(r['compile_ms'], '.3f')} ({r['note']})"
            lines.append(f"| {r['workload']} | {r['kernels']} | {r['tritonflow_ms']:.3f} | "
                         f"{fmt(r.get('predicted_ms', float('nan')), '.3f')} | {r['eager_ms']:.3f} | "
                         f"{compile_text} | {r['GB/s']:.0f} | {100 * r['fraction_of_copy']:.0f}% | "
                         f"{r['max_abs_err']:.2e} |")
    if overhead:
        lines += ["", "| host cost per call (tiny inputs) | us |", "| --- | --- |"]
        lines += [f"| {name} | {fmt(us, '.1f')} |" for name, us in overhead]
    if compiles:
        lines += ["", "| compile, one-kernel function, fresh process | ms | cache stats |", "| --- | --- | --- |"]
        lines += [f"| {name} | {fmt(ms, '.0f')} | {stats} |" for name, ms, stats in compiles]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--budget", type=float, default=100.0, help="seconds for the workload part")
    parser.add_argument("--overhead-only", action="store_true", help="only the runtime's host cost (CPU too)")
    opts = parser.parse_args()
    if not torch.cuda.is_available() and not opts.overhead_only:
        raise SystemExit("gpu_bench.py: no CUDA device; use --overhead-only to measure host overhead on CPU")
    budget = Budget(opts.budget)
    rows, copy_gbs = [], 0.0
    if not opts.overhead_only:
        copy_gbs = copy_bandwidth()
        for name, make in WORKLOADS:
            if budget.spent() >= 1.0:
                rows.append({"workload": name, "error": "skipped: time budget spent"})
                continue
            try:
                rows.append(run_workload(name, make, copy_gbs, budget))
            except Exception as exc:  # report and keep going: one failure must not hide the rest
                rows.append({"workload": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            torch.cuda.empty_cache()
        try:
            rows.append(run_adam(copy_gbs))
        except Exception as exc:
            rows.append({"workload": "Adam 50M f32 in 200 tensors", "error": f"{type(exc).__name__}: {exc}"[:300]})
        torch.cuda.empty_cache()
    overhead = overhead_rows()
    compiles = compile_rows() if torch.cuda.is_available() else []
    meta = machine_meta(copy_gbs)
    table = render(meta, rows, overhead, compiles)
    os.makedirs(opts.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    prefix = "gpu_check" if torch.cuda.is_available() else "cpu_overhead"
    with open(os.path.join(opts.out, f"{prefix}-{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "overhead_us": overhead,
                   "compile_ms": [(n, ms, str(st)) for n, ms, st in compiles]}, f, indent=2, default=str)
    with open(os.path.join(opts.out, f"{prefix}-{stamp}.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
