"""Benchmark (GPU): tritonflow's generated kernels on the memory-bound workloads of issue 3,
against torch eager and torch.compile in the same run, as a fraction of a 1 GiB device copy.

Run with PYTHONPATH=. on a CUDA machine: `python benchmarks/gpu_bench.py [--out DIR]`.
Graphs are built directly in the IR (the lowering's own entry point, kernels.lower), so this
measures the code generator and launcher, not the tracer. Prints a Markdown table last and
writes JSON + Markdown under benchmarks/results/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess

import numpy as np
import torch
import triton
import triton.testing

import kernels
import tritonflow.ops  # noqa: F401
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
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


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


def run_workload(name, make, copy_gbs):
    graph, args, ref, nbytes = make()
    low = kernels.lower(graph, mode="default")
    outs = low(args, {})
    torch.cuda.synchronize()
    want = ref(*args)
    err = (outs[0].float() - want.float()).abs().max().item()
    ours = bench(lambda: low(args, {}))
    eager = bench(lambda: ref(*args))
    compiled_fn = try_compile(ref)
    compiled = bench(lambda: compiled_fn(*args)) if compiled_fn is not None else float("nan")
    gbs = nbytes / ours / 1e6
    return {"workload": name, "kernels": len(low.kernels), "tritonflow_ms": ours, "eager_ms": eager,
            "compile_ms": compiled, "GB/s": gbs, "fraction_of_copy": gbs / copy_gbs, "max_abs_err": err}


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
            "max_abs_err": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    opts = parser.parse_args()
    copy_gbs = copy_bandwidth()
    rows = []
    for name, make in WORKLOADS:
        try:
            rows.append(run_workload(name, make, copy_gbs))
        except Exception as exc:  # report and keep going: one failure must not hide the rest
            rows.append({"workload": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        torch.cuda.empty_cache()
    try:
        rows.append(run_adam(copy_gbs))
    except Exception as exc:
        rows.append({"workload": "Adam 50M f32 in 200 tensors", "error": f"{type(exc).__name__}: {exc}"[:300]})
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    meta = {"card": torch.cuda.get_device_name(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__, "triton": triton.__version__, "commit": commit, "copy_GBps": copy_gbs}
    lines = [f"GPU check: {meta['card']}, {meta['date']}, torch {meta['torch']}, triton {meta['triton']}, "
             f"commit {commit}; 1 GiB copy {copy_gbs:.0f} GB/s", "",
             "| workload | kernels | tritonflow ms | torch eager ms | torch.compile ms | GB/s | of copy | max err |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['workload']} | ERROR: {r['error']} | | | | | | |")
            continue
        lines.append(f"| {r['workload']} | {r['kernels']} | {r['tritonflow_ms']:.3f} | {r['eager_ms']:.3f} | "
                     f"{r['compile_ms']:.3f} | {r['GB/s']:.0f} | {100 * r['fraction_of_copy']:.0f}% | "
                     f"{r['max_abs_err']:.2e} |")
    table = "\n".join(lines)
    os.makedirs(opts.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(opts.out, f"gpu_check-{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    with open(os.path.join(opts.out, f"gpu_check-{stamp}.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
