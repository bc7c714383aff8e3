"""Benchmark (GPU): the matmul and attention templates (issue 5) against torch in the same run.

Workloads (each also checks its result against torch, so a wrong kernel cannot post a time):
- matmul bf16/fp16 at 4096^3 and 8192^3, and float32 with tf32 (`set_matmul_precision("high")`,
  autotuned with mode="max-autotune"), as a fraction of torch.matmul (cuBLAS);
- the MLP block bf16 8192x4096 -> 16384 -> 4096 with bias + GELU, against torch eager and
  torch.compile (goal: faster than torch.compile);
- causal attention bf16 B=8, H=16, T=2048, D=64, forward (goal: >= 70% of
  F.scaled_dot_product_attention's throughput) and backward (reported).

Run on a CUDA machine from the repository root: `PYTHONPATH=. python benchmarks/gpu_bench_matmul.py`.
Prints a Markdown table last and writes JSON + Markdown under benchmarks/results/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import time

import numpy as np
import torch
import torch.nn.functional as TF
import triton
import triton.testing

from tritonflow import kernels
import tritonflow
import tritonflow.ops  # noqa: F401
from tritonflow import dtypes as D
from tritonflow.ir import Graph, TensorType
from tritonflow.ops.registry import OPS

F32, F16, BF16 = D.float32, D.float16, D.bfloat16
TORCH = {F32: torch.float32, F16: torch.float16, BF16: torch.bfloat16}


class B:
    """A graph builder with types from the op table."""

    def __init__(self, name):
        self.g = Graph(name)

    def inp(self, name, shape, dtype):
        return self.g.add_input(name, TensorType(tuple(shape), dtype))

    def const(self, v):
        return self.g.add_constant(np.asarray(v, dtype=np.float32), TensorType((), F32))

    def __call__(self, op, *xs, **attrs):
        return self.g.add(op, xs, attrs, OPS[op].infer([x.type for x in xs], attrs))

    def done(self, *outs):
        self.g.outputs = list(outs)
        return self.g


def bench(fn) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def max_rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.float(), want.float()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-6))


# ---------------------------------------------------------------- matmul

def matmul_row(dtype, n: int, mode: str) -> dict:
    b = B(f"mm_{dtype.name}_{n}")
    x, w = b.inp("a", (n, n), dtype), b.inp("b", (n, n), dtype)
    graph = b.done(b("matmul", x, w))
    tf32 = dtype is F32
    tritonflow.set_matmul_precision("high" if tf32 else "highest")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn((n, n), device="cuda", dtype=TORCH[dtype])
    c = torch.randn((n, n), device="cuda", dtype=TORCH[dtype])
    start = time.time()
    low = kernels.lower(graph, mode=mode)
    (out,) = low([a, c], {})      # compiles (and in max-autotune, tunes) once
    setup_s = time.time() - start
    err = max_rel_err(out, torch.matmul(a, c))
    ms = bench(lambda: low([a, c], {}))
    ref = bench(lambda: torch.matmul(a, c))
    flops = 2 * n ** 3
    torch.backends.cuda.matmul.allow_tf32 = False
    tritonflow.set_matmul_precision("highest")
    name = f"matmul {'tf32' if tf32 else dtype.name} {n}^3"
    return {"workload": name, "tritonflow_ms": ms, "torch_ms": ref, "tflops": flops / ms / 1e9,
            "torch_tflops": flops / ref / 1e9, "fraction_of_torch": ref / ms, "max_rel_err": err,
            "setup_s": setup_s, "mode": mode}


# ---------------------------------------------------------------- MLP block

def mlp_row(mode: str) -> dict:
    m, d, h = 8192, 4096, 16384
    b = B("mlp")
    x = b.inp("x", (m, d), BF16)
    w1, b1 = b.inp("w1", (h, d), BF16), b.inp("b1", (h,), BF16)
    w2, b2 = b.inp("w2", (d, h), BF16), b.inp("b2", (d,), BF16)
    pre = b("cast", b("add", b("matmul", x, b("permute", w1, perm=(1, 0))), b1), dtype=F32)
    gelu = b("mul", b("mul", pre, b.const(0.5)),
             b("add", b("erf", b("mul", pre, b.const(1.0 / math.sqrt(2.0)))), b.const(1.0)))
    hidden = b("cast", gelu, dtype=BF16)
    y = b("add", b("matmul", hidden, b("permute", w2, perm=(1, 0))), b2)
    graph = b.done(y)
    args = [torch.randn(s, device="cuda", dtype=torch.bfloat16) * sc
            for s, sc in (((m, d), 1.0), ((h, d), d ** -0.5), ((h,), 0.1), ((d, h), h ** -0.5), ((d,), 0.1))]

    def eager(x, w1, b1, w2, b2):
        return TF.linear(TF.gelu(TF.linear(x, w1, b1)), w2, b2)
    low = kernels.lower(graph, mode=mode)
    (out,) = low(args, {})
    err = max_rel_err(out, eager(*args))
    ms = bench(lambda: low(args, {}))
    ref = bench(lambda: eager(*args))
    compiled_ms = None
    try:
        compiled = torch.compile(eager)
        compiled(*args)
        compiled_ms = bench(lambda: compiled(*args))
    except Exception as exc:  # torch.compile unavailable on this machine: report eager only
        print(f"torch.compile failed: {type(exc).__name__}: {exc}")
    flops = 2 * 2 * m * d * h
    return {"workload": "MLP bf16 8192x4096->16384->4096 GELU", "tritonflow_ms": ms, "torch_ms": ref,
            "torch_compile_ms": compiled_ms, "tflops": flops / ms / 1e9, "max_rel_err": err,
            "kernels": len(low.kernels), "mode": mode}


# ---------------------------------------------------------------- causal attention

def attention_rows(mode: str) -> list:
    bsz, heads, t, dim = 8, 16, 2048, 64
    shape = (bsz, heads, t, dim)
    scale = 1.0 / math.sqrt(dim)
    attrs = {"scale": scale, "is_causal": True, "mask": "none", "dropout_p": 0.0}
    b = B("attention_fwd")
    q, k, v = (b.inp(n, shape, BF16) for n in "qkv")
    fwd_graph = b.done(b("attention", q, k, v, **attrs))
    b = B("attention_bwd")   # the backward recomputes its own row statistics (ops/attention.py)
    q, k, v, g = (b.inp(n, shape, BF16) for n in "qkvg")
    stats = b("attention_delta", q, k, v, g, **attrs)
    dq = b("attention_dq", q, k, v, g, stats, **attrs)
    dkv = b("attention_dkv", q, k, v, g, stats, **attrs)
    bwd_graph = b.done(dq, dkv)

    qt, kt, vt = (torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    gt = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    ref_out = TF.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    ref_grads = torch.autograd.grad(ref_out, (qt, kt, vt), gt, retain_graph=True)
    qd, kd, vd = (x.detach() for x in (qt, kt, vt))

    fwd = kernels.lower(fwd_graph, mode=mode)
    (out,) = fwd([qd, kd, vd], {})
    fwd_err = max_rel_err(out, ref_out)
    fwd_ms = bench(lambda: fwd([qd, kd, vd], {}))
    ref_fwd_ms = bench(lambda: TF.scaled_dot_product_attention(qd, kd, vd, is_causal=True))

    bwd = kernels.lower(bwd_graph, mode=mode)
    got_dq, got_dkv = bwd([qd, kd, vd, gt], {})
    bwd_err = max(max_rel_err(got_dq, ref_grads[0]), max_rel_err(got_dkv[..., :dim], ref_grads[1]),
                  max_rel_err(got_dkv[..., dim:], ref_grads[2]))
    bwd_ms = bench(lambda: bwd([qd, kd, vd, gt], {}))
    ref_bwd_ms = bench(lambda: torch.autograd.grad(ref_out, (qt, kt, vt), gt, retain_graph=True))
    fwd_flops = 4 * bsz * heads * t * t * dim / 2          # causal: half the score matrix
    bwd_flops = 2.5 * fwd_flops
    return [
        {"workload": "causal attention bf16 8x16x2048x64 fwd", "tritonflow_ms": fwd_ms, "torch_ms": ref_fwd_ms,
         "tflops": fwd_flops / fwd_ms / 1e9, "torch_tflops": fwd_flops / ref_fwd_ms / 1e9,
         "fraction_of_torch": ref_fwd_ms / fwd_ms, "max_rel_err": fwd_err, "kernels": len(fwd.kernels), "mode": mode},
        {"workload": "causal attention bf16 8x16x2048x64 bwd", "tritonflow_ms": bwd_ms, "torch_ms": ref_bwd_ms,
         "tflops": bwd_flops / bwd_ms / 1e9, "torch_tflops": bwd_flops / ref_bwd_ms / 1e9,
         "fraction_of_torch": ref_bwd_ms / bwd_ms, "max_rel_err": bwd_err, "kernels": len(bwd.kernels),
         "mode": mode, "note": "row statistics (delta, max, 1/z) + dq + dk/dv kernels; FLOPs counted as 2.5x the "
                               "forward's, the recomputation not included"},
    ]


# ---------------------------------------------------------------- driver

def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def table(rows: list) -> str:
    cols = ["workload", "tritonflow_ms", "torch_ms", "torch_compile_ms", "tflops", "torch_tflops",
            "fraction_of_torch", "max_rel_err", "mode"]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--quick", action="store_true", help="skip the 8192^3 matmuls")
    opts = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    plan = [("matmul", (BF16, 4096, "default")), ("matmul", (F16, 4096, "default")),
            ("matmul", (F32, 4096, "max-autotune")), ("mlp", ("default",)), ("attention", ("default",))]
    if not opts.quick:
        plan[3:3] = [("matmul", (BF16, 8192, "default")), ("matmul", (F16, 8192, "default")),
                     ("matmul", (F32, 8192, "max-autotune"))]
    for kind, params in plan:
        try:
            if kind == "matmul":
                rows.append(matmul_row(*params))
            elif kind == "mlp":
                rows.append(mlp_row(*params))
            else:
                rows.extend(attention_rows(*params))
        except Exception as exc:  # one failing workload must not hide the others' numbers
            rows.append({"workload": f"{kind} {params}", "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            print(f"FAILED {kind} {params}: {type(exc).__name__}: {exc}")
        print(json.dumps(rows[-1]))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    meta = {"card": torch.cuda.get_device_name(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__, "triton": triton.__version__, "commit": commit}
    os.makedirs(opts.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(opts.out, f"gpu_matmul_{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    text = f"# matmul/attention templates, {meta['card']}, {meta['date']} (commit {commit})\n\n" + table(rows)
    with open(os.path.join(opts.out, f"gpu_matmul_{stamp}.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
