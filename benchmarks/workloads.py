"""Benchmarks: the workload list — defined once, shared by the GPU benchmark runner and the AOT check.

Each `Workload` names a tritonflow function and builds its arguments as `tritonflow.TensorSpec`s for
a size class: "gpu" (the full sizes the GPU benchmarks measure, several times the L2 cache, the
sizes of DESIGN.md's anchors) or "tiny" (a few thousand elements, same structure, for CPU runs in
Triton's interpreter). Specs hold no data: the AOT check (benchmarks/aot_check.py) compiles the
workloads for a target from them, and a runner that needs data makes random tensors with
`materialize(spec, device)`. A spec with requires_grad=True makes the workload a forward+backward
one: compiling it compiles the backward graph too, as a jitted training step does.

Matmul precision: "tf32" workloads compile (and run) under `set_matmul_precision("high")`;
`precision(workload)` is a context manager that sets and restores it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow.aot import TensorSpec

SIZES = ("gpu", "tiny")


@dataclass(frozen=True)
class Workload:
    name: str
    build: Callable[[str], tuple]      # size class -> (function, [TensorSpec, ...])
    kind: str = "memory"               # "memory" (bandwidth-bound) or "compute" (matmul, attention)
    matmul_precision: str = "highest"
    note: str = ""
    integer_high: Callable[[str], int] = None   # size class -> exclusive bound of integer arguments
    nonnegative: tuple = ()            # positions of float arguments drawn as |normal| (variances)

    def make(self, size: str) -> tuple:
        if size not in SIZES:
            raise ValueError(f"workload size must be one of {', '.join(SIZES)}, got {size!r}")
        return self.build(size)

    def arguments(self, size: str, device: str = "cpu", seed: int = 0) -> list:
        """Random tensors for the specs at `size` (integer arguments below `integer_high`)."""
        _, specs = self.make(size)
        high = self.integer_high(size) if self.integer_high else 2
        return [materialize(spec, device, seed + i, high=high, nonnegative=i in self.nonnegative)
                for i, spec in enumerate(specs)]


def _pick(size: str, gpu, tiny):
    return gpu if size == "gpu" else tiny


def _spec(shape, dtype, grad: bool = False) -> TensorSpec:
    return TensorSpec(shape, dtype, requires_grad=grad)


# ---------------------------------------------------------------- memory-bound

def relu_mul_add(size):
    n = _pick(size, 2 ** 26, 3000)
    return (lambda a, b, c: tf.relu(a * b + c)), [_spec((n,), "float32") for _ in range(3)]


def gelu_tanh(size):
    n = _pick(size, 2 ** 27, 3000)
    return (lambda x: F.gelu(x, approximate="tanh")), [_spec((n,), "bfloat16")]


def swiglu(size):
    n = _pick(size, 2 ** 27, 3000)
    return (lambda gate, x: F.silu(gate) * x), [_spec((n,), "bfloat16"), _spec((n,), "bfloat16")]


def softmax(size):
    shape = _pick(size, (16384, 4096), (24, 200))
    return (lambda x: F.softmax(x, dim=-1)), [_spec(shape, "float32")]


def _norm(rms: bool, backward: bool):
    def build(size):
        rows, cols = _pick(size, (8192, 4096), (24, 200))
        specs = [_spec((rows, cols), "bfloat16", backward), _spec((cols,), "bfloat16", backward)]
        if rms:
            return (lambda x, w: F.rms_norm(x, (cols,), w, 1e-5)), specs
        specs.append(_spec((cols,), "bfloat16", backward))
        return (lambda x, w, b: F.layer_norm(x, (cols,), w, b, 1e-5)), specs
    return build


def _cross_entropy(backward: bool):
    def build(size):
        rows, classes = _pick(size, (8192, 32000), (16, 300))
        specs = [_spec((rows, classes), "bfloat16", backward), _spec((rows,), "int64")]
        return (lambda logits, target: F.cross_entropy(logits, target)), specs
    return build


def _classes(size):
    return _pick(size, 32000, 300)


def column_normalize(size):
    shape = _pick(size, (65536, 1024), (300, 24))
    return (lambda x: x / x.sum(0, keepdim=True)), [_spec(shape, "float32")]


def adamw(size):
    """One AdamW update of one parameter tensor (DESIGN's anchor: 50M parameters in 200 tensors)."""
    n = _pick(size, 250_000, 3000)
    lr, beta1, beta2, eps, decay, step = 1e-3, 0.9, 0.999, 1e-8, 0.01, 10

    def update(p, g, m, v):
        m = m * beta1 + g * (1 - beta1)
        v = v * beta2 + g * g * (1 - beta2)
        m_hat = m / (1 - beta1 ** step)
        v_hat = v / (1 - beta2 ** step)
        p = p * (1 - lr * decay) - lr * m_hat / (tf.sqrt(v_hat) + eps)
        return p, m, v
    return update, [_spec((n,), "float32") for _ in range(4)]


# ---------------------------------------------------------------- matmul and attention

def _matmul(dtype: str, gpu_size: int):
    def build(size):
        n = _pick(size, gpu_size, 96)
        return (lambda a, b: a @ b), [_spec((n, n), dtype), _spec((n, n), dtype)]
    return build


def linear_gelu(size):
    """Linear layer with bias and tanh-GELU: one matmul with a fused epilogue."""
    rows, features = _pick(size, (8192, 8192), (64, 96))
    specs = [_spec((rows, features), "bfloat16"), _spec((features, features), "bfloat16"),
             _spec((features,), "bfloat16")]
    return (lambda x, w, b: F.gelu(F.linear(x, w, b), approximate="tanh")), specs


def mlp_train(size):
    """x @ w1 -> tanh-GELU -> @ w2, forward and backward (the weights' gradients)."""
    rows, width, hidden = _pick(size, (8192, 4096, 16384), (64, 32, 96))
    specs = [_spec((rows, width), "bfloat16"), _spec((width, hidden), "bfloat16", True),
             _spec((hidden, width), "bfloat16", True)]
    return (lambda x, w1, w2: F.gelu(x @ w1, approximate="tanh") @ w2), specs


def _attention(head_dim: int, backward: bool):
    def build(size):
        batch, heads, tokens = _pick(size, (8, 16, 2048), (1, 2, 40))
        d = _pick(size, head_dim, min(head_dim, 32))
        specs = [_spec((batch, heads, tokens, d), "bfloat16", backward) for _ in range(3)]
        return (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)), specs
    return build


WORKLOADS = [
    Workload("relu(a*b+c) f32", relu_mul_add),
    Workload("tanh-GELU bf16", gelu_tanh),
    Workload("SwiGLU bf16", swiglu),
    Workload("softmax f32 16384x4096", softmax),
    Workload("layer_norm bf16 8192x4096", _norm(False, False)),
    Workload("layer_norm bf16 8192x4096 fwd+bwd", _norm(False, True)),
    Workload("rms_norm bf16 8192x4096", _norm(True, False)),
    Workload("rms_norm bf16 8192x4096 fwd+bwd", _norm(True, True)),
    Workload("cross_entropy bf16 8192x32000", _cross_entropy(False), integer_high=_classes),
    Workload("cross_entropy bf16 8192x32000 fwd+bwd", _cross_entropy(True), integer_high=_classes),
    Workload("column-normalize f32 65536x1024", column_normalize),
    Workload("AdamW f32 250k", adamw, note="one of 200 tensors of 250k parameters", nonnegative=(3,)),
    Workload("matmul bf16 8192^3", _matmul("bfloat16", 8192), kind="compute"),
    Workload("matmul fp16 4096^3", _matmul("float16", 4096), kind="compute"),
    Workload("matmul tf32 4096^3", _matmul("float32", 4096), kind="compute", matmul_precision="high"),
    Workload("linear+GELU bf16 8192^3", linear_gelu, kind="compute"),
    Workload("MLP bf16 8192x4096x16384 fwd+bwd", mlp_train, kind="compute"),
    Workload("causal attention bf16 8x16x2048x64", _attention(64, False), kind="compute"),
    Workload("causal attention bf16 8x16x2048x64 fwd+bwd", _attention(64, True), kind="compute"),
    Workload("causal attention bf16 8x16x2048x128 fwd+bwd", _attention(128, True), kind="compute"),
]


def by_name(name: str) -> Workload:
    for workload in WORKLOADS:
        if workload.name == name:
            return workload
    raise KeyError(f"no workload named {name!r}; known: {', '.join(w.name for w in WORKLOADS)}")


def precision(workload: Workload) -> contextlib.ExitStack:
    """A context that runs or compiles `workload` under its float32 matmul precision, then restores it."""
    restore = contextlib.ExitStack()
    restore.callback(tf.set_matmul_precision, tf.get_matmul_precision())
    tf.set_matmul_precision(workload.matmul_precision)
    return restore


def materialize(spec: TensorSpec, device: str = "cpu", seed: int = 0, sizes: dict = None, high: int = 2,
                nonnegative: bool = False):
    """A random tritonflow tensor for `spec`: standard-normal floats (never zeros; their absolute
    values when `nonnegative`), integers in [0, high); named dims take their value from `sizes`
    (4096 when absent)."""
    rng = np.random.default_rng(seed)
    shape = tuple((sizes or {}).get(d, 4096) if isinstance(d, str) else d for d in spec.shape)
    if spec.dtype.is_floating_point:
        values = rng.standard_normal(shape, dtype=np.float32)
        tensor = tf.tensor(np.abs(values) if nonnegative else values, dtype=spec.dtype)
    else:
        tensor = tf.tensor(rng.integers(0, high, shape), dtype=spec.dtype)
    if device != "cpu":
        tensor = tensor.to(device)
    tensor.requires_grad = spec.requires_grad
    return tensor
