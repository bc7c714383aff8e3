"""Benchmarks: the workload list — defined once, shared by the GPU benchmark runner and the AOT check.

Each `Workload` names a function, written once against an `Api` (tritonflow or torch: the same
code runs on both), and builds its arguments as `tritonflow.TensorSpec`s for a size class: "gpu"
(the full sizes the GPU benchmarks measure, several times the L2 cache, the sizes of DESIGN.md's
anchors), "cpu" and "small" (`tritonflow bench` on a CPU, full and --quick, in float32) or "tiny"
(a few thousand elements, same structure, for CPU runs in Triton's interpreter). Specs hold no data: the AOT check (benchmarks/aot_check.py) compiles the
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

SIZES = ("gpu", "cpu", "small", "tiny")
# On a CPU, half-precision floats are computed in float32 by every library (and bfloat16 is not what a
# CPU user trains in): the CPU size classes run every workload in float32.
CPU_SIZES = ("cpu", "small")


class Api:
    """The library a workload's function is written against: `lib` (tritonflow or torch) and its
    `F` (nn.functional). One definition of each workload runs on tritonflow and on torch alike."""

    def __init__(self, lib, functional) -> None:
        self.lib, self.F = lib, functional


TRITONFLOW = Api(tf, F)


def torch_api() -> Api:
    import torch
    import torch.nn.functional as torch_F
    return Api(torch, torch_F)


@dataclass(frozen=True)
class Workload:
    name: str
    build: Callable[[str, Api], tuple]  # (size class, library) -> (function, [TensorSpec, ...])
    key: str = ""                      # short name for --only (defaults to name)
    kind: str = "memory"               # "memory" (bandwidth-bound) or "compute" (matmul, attention)
    matmul_precision: str = "highest"
    note: str = ""
    integer_high: Callable[[str], int] = None   # size class -> exclusive bound of integer arguments
    nonnegative: tuple = ()            # positions of float arguments drawn as |normal| (variances)
    fan_in: tuple = ()                 # positions of float arguments drawn with std 1/sqrt(last dim)
    init: tuple = ()                   # per argument position: (mean, std) of its normal draw, None: (0, 1)
    trains: bool = False               # a training step: it differentiates and updates its arguments itself
    on_cpu: bool = True                # False: its CPU form would repeat another workload's
    quick: bool = False                # one of `tritonflow bench --quick`'s workloads

    def make(self, size: str, api: Api = TRITONFLOW) -> tuple:
        if size not in SIZES:
            raise ValueError(f"workload size must be one of {', '.join(SIZES)}, got {size!r}")
        return self.build(size, api)

    def arguments(self, size: str, device: str = "cpu", seed: int = 0) -> list:
        """Random tensors for the specs at `size` (integer arguments below `integer_high`)."""
        _, specs = self.make(size)
        high = self.integer_high(size) if self.integer_high else 2
        init = list(self.init) + [None] * (len(specs) - len(self.init))
        return [materialize(spec, device, seed + i, high=high, nonnegative=i in self.nonnegative,
                            mean_std=init[i] or (0.0, spec.shape[-1] ** -0.5 if i in self.fan_in else 1.0))
                for i, spec in enumerate(specs)]

    def label(self, size: str) -> str:
        """The name with the sizes and dtypes of `size`: "softmax 4096x1024 f32"."""
        if size == "gpu" and self.kind != "overhead":
            return self.name
        _, specs = self.make(size)
        shape = "x".join(str(d) for d in specs[0].shape)
        # The dtype computed in: the first float argument's (a training step starts with its tokens).
        dtype = next((s.dtype for s in specs if s.dtype.is_floating_point), specs[0].dtype).name
        return f"{self.key or self.name} {shape} {_SHORT_DTYPE.get(dtype, dtype)}"


_SHORT_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "fp16", "float64": "f64"}


def _pick(size, gpu, tiny, cpu=None, small=None):
    """The value for a size class; the CPU classes default to the tiny value."""
    return {"gpu": gpu, "tiny": tiny, "cpu": tiny if cpu is None else cpu,
            "small": (tiny if cpu is None else cpu) if small is None else small}[size]


def _spec(shape, dtype, grad: bool = False, size: str = "gpu") -> TensorSpec:
    if size in CPU_SIZES and dtype in ("bfloat16", "float16"):
        dtype = "float32"
    return TensorSpec(shape, dtype, requires_grad=grad)


# ---------------------------------------------------------------- memory-bound

def relu_mul_add(size, api):
    n = _pick(size, 2 ** 26, 3000, 2 ** 22, 2 ** 20)
    return (lambda a, b, c: api.lib.relu(a * b + c)), [_spec((n,), "float32") for _ in range(3)]


def gelu_tanh(size, api):
    n = _pick(size, 2 ** 27, 3000, 2 ** 22, 2 ** 20)
    return (lambda x: api.F.gelu(x, approximate="tanh")), [_spec((n,), "bfloat16", size=size)]


def swiglu(size, api):
    n = _pick(size, 2 ** 27, 3000, 2 ** 22, 2 ** 20)
    return (lambda gate, x: api.F.silu(gate) * x), [_spec((n,), "bfloat16", size=size) for _ in range(2)]


def softmax(size, api):
    shape = _pick(size, (16384, 4096), (24, 200), (4096, 1024), (1024, 1024))
    return (lambda x: api.F.softmax(x, dim=-1)), [_spec(shape, "float32")]


# The normalisations' epsilon, shared with peers that call their own kernels (benchmarks/liger_peer.py).
NORM_EPS = 1e-5


def _norm(rms: bool, backward: bool):
    def build(size, api):
        rows, cols = _pick(size, (8192, 4096), (24, 200), (4096, 1024), (1024, 1024))
        specs = [_spec((rows, cols), "bfloat16", backward, size), _spec((cols,), "bfloat16", backward, size)]
        if rms:
            return (lambda x, w: api.F.rms_norm(x, (cols,), w, NORM_EPS)), specs
        specs.append(_spec((cols,), "bfloat16", backward, size))
        return (lambda x, w, b: api.F.layer_norm(x, (cols,), w, b, NORM_EPS)), specs
    return build


def _cross_entropy(backward: bool):
    def build(size, api):
        rows, classes = _pick(size, (8192, 32000), (16, 300), (1024, 8000), (256, 8000))
        specs = [_spec((rows, classes), "bfloat16", backward, size), _spec((rows,), "int64")]
        return (lambda logits, target: api.F.cross_entropy(logits, target)), specs
    return build


def _classes(size):
    return _pick(size, 32000, 300, 8000, 8000)


def linear_cross_entropy(size, api):
    """A language model's head and loss: logits = x @ W^T, then cross_entropy (mean), forward and backward
    into x and W — the sizes of Liger-Kernel's fused linear cross-entropy benchmark (Llama-2's vocabulary)."""
    tokens, hidden, vocab = _linear_ce_sizes(size)
    specs = [_spec((tokens, hidden), "bfloat16", True, size), _spec((vocab, hidden), "bfloat16", True, size),
             _spec((tokens,), "int64")]
    return (lambda x, weight, target: api.F.cross_entropy(api.F.linear(x, weight), target)), specs


def _linear_ce_sizes(size):
    return _pick(size, (8192, 4096, 32000), (16, 32, 300), (512, 256, 8000), (256, 128, 4000))


def _vocabulary(size):
    return _linear_ce_sizes(size)[2]


def column_normalize(size, api):
    shape = _pick(size, (65536, 1024), (300, 24), (8192, 512), (2048, 512))
    return (lambda x: x / x.sum(0, keepdim=True)), [_spec(shape, "float32")]


def adamw_update(lib, p, g, m, v, step: int = 10):
    """AdamW's new (parameter, first moment, second moment) at `step` (bias corrections for it)."""
    lr, beta1, beta2, eps, decay = 1e-3, 0.9, 0.999, 1e-8, 0.01
    m = m * beta1 + g * (1 - beta1)
    v = v * beta2 + g * g * (1 - beta2)
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    p = p * (1 - lr * decay) - lr * m_hat / (lib.sqrt(v_hat) + eps)
    return p, m, v


def adamw(size, api):
    """One AdamW update of one parameter tensor (DESIGN's anchor: 50M parameters in 200 tensors)."""
    n = _pick(size, 250_000, 3000, 200_000, 100_000)
    return (lambda p, g, m, v: adamw_update(api.lib, p, g, m, v)), [_spec((n,), "float32") for _ in range(4)]


# ---------------------------------------------------------------- matmul and attention

def _matmul(dtype: str, gpu_size: int):
    def build(size, api):
        n = _pick(size, gpu_size, 96, 1024, 512)
        return (lambda a, b: a @ b), [_spec((n, n), dtype, size=size), _spec((n, n), dtype, size=size)]
    return build


def linear_gelu(size, api):
    """Linear layer with bias and tanh-GELU: one matmul with a fused epilogue."""
    rows, features = _pick(size, (8192, 8192), (64, 96), (1024, 1024), (512, 512))
    specs = [_spec((rows, features), "bfloat16", size=size), _spec((features, features), "bfloat16", size=size),
             _spec((features,), "bfloat16", size=size)]
    return (lambda x, w, b: api.F.gelu(api.F.linear(x, w, b), approximate="tanh")), specs


def mlp_train(size, api):
    """x @ w1 -> tanh-GELU -> @ w2, forward and backward (the weights' gradients)."""
    rows, width, hidden = _pick(size, (8192, 4096, 16384), (64, 32, 96), (1024, 256, 1024), (256, 256, 1024))
    specs = [_spec((rows, width), "bfloat16", size=size), _spec((width, hidden), "bfloat16", True, size),
             _spec((hidden, width), "bfloat16", True, size)]
    return (lambda x, w1, w2: api.F.gelu(x @ w1, approximate="tanh") @ w2), specs


def _attention(head_dim: int, backward: bool):
    def build(size, api):
        batch, heads, tokens = _pick(size, (8, 16, 2048), (1, 2, 40), (2, 4, 256), (1, 4, 128))
        d = _pick(size, head_dim, min(head_dim, 32), head_dim, head_dim)
        specs = [_spec((batch, heads, tokens, d), "bfloat16", backward, size) for _ in range(3)]
        return (lambda q, k, v: api.F.scaled_dot_product_attention(q, k, v, is_causal=True)), specs
    return build



# ---------------------------------------------------------------- GPT-2

def _block_shapes(width: int) -> list:
    """A pre-LN block's parameters in argument order: ln_1, attention's qkv and output projection,
    ln_2, the MLP's 4x expansion and projection (weights (out, in), as F.linear takes them)."""
    c = width
    return [(c,), (c,), (3 * c, c), (3 * c,), (c, c), (c,), (c,), (c,), (4 * c, c), (4 * c,), (c, 4 * c), (c,)]


_NORM_INIT = ((1.0, 0.1), (0.0, 0.02))      # layer_norm weight and bias: near GPT-2's ones and zeros
_LINEAR_INIT = ((0.0, 0.02), (0.0, 0.02))   # GPT-2's N(0, 0.02) weights; biases small rather than zero
_BLOCK_INIT = _NORM_INIT + _LINEAR_INIT * 2 + _NORM_INIT + _LINEAR_INIT * 2


def gpt_block(api, heads: int, x, ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, out_w,
              out_b):
    """GPT-2's block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); causal attention, tanh-GELU."""
    F_ = api.F
    batch, tokens, width = x.shape
    q, k, v = F_.linear(F_.layer_norm(x, (width,), ln1_w, ln1_b, 1e-5), attn_w, attn_b).split(width, dim=2)
    q, k, v = (t.reshape(batch, tokens, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    y = F_.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(batch, tokens, width)
    x = x + F_.linear(y, proj_w, proj_b)
    h = F_.gelu(F_.linear(F_.layer_norm(x, (width,), ln2_w, ln2_b, 1e-5), fc_w, fc_b), approximate="tanh")
    return x + F_.linear(h, out_w, out_b)


def gpt2_block(size, api):
    """One GPT-2 block forward+backward: the gradients of its input and of all 12 parameters."""
    batch, tokens, width, heads = _pick(size, (8, 1024, 768, 12), (2, 16, 32, 2), (4, 128, 256, 4), (2, 64, 128, 4))
    specs = [_spec((batch, tokens, width), "bfloat16", True, size)]
    specs += [_spec(shape, "bfloat16", True, size) for shape in _block_shapes(width)]
    return (lambda x, *params: gpt_block(api, heads, x, *params)), specs


GPT_LAYERS = 2


def _gpt_shapes(vocab: int, tokens: int, width: int) -> list:
    """The parameters of a GPT: token and position embeddings (the token one tied to the LM head),
    the blocks', the final layer_norm's."""
    return [(vocab, width), (tokens, width)] + _block_shapes(width) * GPT_LAYERS + [(width,), (width,)]


_GPT_INIT = ((0.0, 0.02), (0.0, 0.01)) + _BLOCK_INIT * GPT_LAYERS + _NORM_INIT
_GPT_PARAMETERS = len(_GPT_INIT)
# AdamW's moments as after some steps (m ~ recent gradients, v ~ their squares), so that the
# update is smooth in the gradient and the float64 check compares like with like.
_GPT_STATE_INIT = (None, None) + _GPT_INIT + ((0.0, 1e-3),) * _GPT_PARAMETERS + ((0.0, 1e-6),) * _GPT_PARAMETERS


def _gpt_size(size):
    """(batch, tokens, width, heads, vocabulary)."""
    return _pick(size, (8, 1024, 768, 12, 50304), (2, 8, 16, 2, 40), (8, 64, 128, 4, 2048), (4, 64, 64, 4, 1024))


def gpt_loss(api, heads: int, tokens, targets, params):
    """Next-token cross-entropy of a GPT (GPT_LAYERS blocks) on `tokens` against `targets`."""
    F_ = api.F
    wte, wpe, *blocks, lnf_w, lnf_b = params
    x = F_.embedding(tokens, wte) + wpe
    for layer in range(GPT_LAYERS):
        x = gpt_block(api, heads, x, *blocks[12 * layer:12 * layer + 12])
    width = x.shape[-1]
    logits = F_.linear(F_.layer_norm(x, (width,), lnf_w, lnf_b, 1e-5), wte)
    return F_.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def gpt_train_step(size, api):
    """A whole training step of a GPT: forward, loss, backward, AdamW on every parameter in place
    (what opt.zero_grad(); loss.backward(); opt.step() does; the gradients stay set, as there).
    Arguments: tokens, targets, the parameters, their first moments, their second moments."""
    batch, tokens, width, heads, vocab = _gpt_size(size)
    shapes = _gpt_shapes(vocab, tokens, width)
    n = len(shapes)
    lib = api.lib

    def step(idx, targets, *state):
        params, moments, squares = state[:n], state[n:2 * n], state[2 * n:]
        loss = gpt_loss(api, heads, idx, targets, params)
        loss.backward()
        with lib.no_grad():
            for p, m, v in zip(params, moments, squares):
                for old, new in zip((p, m, v), adamw_update(lib, p, p.grad, m, v)):
                    old.copy_(new)
        return loss.detach()
    specs = [_spec((batch, tokens), "int64"), _spec((batch, tokens), "int64")]
    specs += [_spec(shape, "bfloat16", True, size) for shape in shapes]
    specs += [_spec(shape, "bfloat16", size=size) for shape in shapes * 2]
    return step, specs


WORKLOADS = [
    Workload("relu(a*b+c) f32", relu_mul_add, key="relu_mul_add", quick=True),
    Workload("tanh-GELU bf16", gelu_tanh, key="gelu_tanh", quick=True),
    Workload("SwiGLU bf16", swiglu, key="swiglu"),
    Workload("softmax f32 16384x4096", softmax, key="softmax", quick=True),
    Workload("layer_norm bf16 8192x4096", _norm(False, False), key="layer_norm"),
    Workload("layer_norm bf16 8192x4096 fwd+bwd", _norm(False, True), key="layer_norm_bwd", quick=True),
    Workload("rms_norm bf16 8192x4096", _norm(True, False), key="rms_norm"),
    Workload("rms_norm bf16 8192x4096 fwd+bwd", _norm(True, True), key="rms_norm_bwd"),
    Workload("cross_entropy bf16 8192x32000", _cross_entropy(False), key="cross_entropy", integer_high=_classes,
             quick=True),
    Workload("cross_entropy bf16 8192x32000 fwd+bwd", _cross_entropy(True), key="cross_entropy_bwd",
             integer_high=_classes),
    Workload("linear+cross_entropy bf16 8192x4096x32000 fwd+bwd", linear_cross_entropy, key="linear_cross_entropy",
             kind="compute", integer_high=_vocabulary, fan_in=(1,),
             note="the weight drawn as nn.Linear's, std 1/sqrt(4096), so the logits are of order one"),
    Workload("column-normalize f32 65536x1024", column_normalize, key="column_normalize"),
    Workload("AdamW f32 250k", adamw, key="adamw", note="one of 200 tensors of 250k parameters", nonnegative=(3,)),
    Workload("matmul bf16 8192^3", _matmul("bfloat16", 8192), key="matmul", kind="compute", quick=True),
    Workload("matmul fp16 4096^3", _matmul("float16", 4096), key="matmul_fp16", kind="compute", on_cpu=False),
    Workload("matmul tf32 4096^3", _matmul("float32", 4096), key="matmul_tf32", kind="compute",
             matmul_precision="high", on_cpu=False),
    Workload("linear+GELU bf16 8192^3", linear_gelu, key="linear_gelu", kind="compute"),
    Workload("MLP bf16 8192x4096x16384 fwd+bwd", mlp_train, key="mlp_bwd", kind="compute"),
    Workload("causal attention bf16 8x16x2048x64", _attention(64, False), key="attention", kind="compute"),
    Workload("causal attention bf16 8x16x2048x64 fwd+bwd", _attention(64, True), key="attention_bwd",
             kind="compute", quick=True),
    Workload("causal attention bf16 8x16x2048x128 fwd+bwd", _attention(128, True), key="attention_d128_bwd",
             kind="compute", on_cpu=False),
    Workload("GPT-2-small block bf16 8x1024x768 fwd+bwd", gpt2_block, key="gpt2_block", kind="compute", quick=True,
             init=(None,) + _BLOCK_INIT),
    Workload(f"GPT training step bf16 ({GPT_LAYERS} layers of 768, vocabulary 50304, batch 8x1024, AdamW)",
             gpt_train_step, key="gpt_train_step", kind="compute", trains=True, init=_GPT_STATE_INIT,
             integer_high=lambda size: _gpt_size(size)[4],
             nonnegative=tuple(range(2 + 2 * _GPT_PARAMETERS, 2 + 3 * _GPT_PARAMETERS))),
]


def ten_ops(size, api):
    """A 10-op elementwise function on 4-element tensors: the time is the per-call overhead."""
    lib = api.lib

    def fn(x, y):
        h = x * y + 1.0                 # mul, add
        h = lib.tanh(h) - y             # tanh, sub
        h = lib.maximum(h, x) * 0.5     # maximum, mul
        h = lib.exp(-h)                 # neg, exp
        return (h + x) / (y * y + 2.0)  # add, mul, add, div
    return fn, [_spec((4,), "float32"), _spec((4,), "float32")]


# Workloads of `tritonflow bench` beyond the GPU list (their sizes do not scale with the device).
BENCH_EXTRAS = [
    Workload("10-op call, 4 elements", ten_ops, key="ten_op_call", kind="overhead", quick=True,
             note="per-call overhead"),
]


def by_name(name: str) -> Workload:
    """The workload with this name or key."""
    for workload in WORKLOADS + BENCH_EXTRAS:
        if name in (workload.name, workload.key):
            return workload
    raise KeyError(f"no workload named {name!r}; known: {', '.join(w.name for w in WORKLOADS)}")


def precision(workload: Workload) -> contextlib.ExitStack:
    """A context that runs or compiles `workload` under its float32 matmul precision, then restores it."""
    restore = contextlib.ExitStack()
    restore.callback(tf.set_matmul_precision, tf.get_matmul_precision())
    tf.set_matmul_precision(workload.matmul_precision)
    return restore


def materialize(spec: TensorSpec, device: str = "cpu", seed: int = 0, sizes: dict = None, high: int = 2,
                nonnegative: bool = False, mean_std: tuple = (0.0, 1.0)):
    """A random tritonflow tensor for `spec`: normal floats of `mean_std` (standard by default; their
    absolute values when `nonnegative`), integers in [0, high); named dims take their value from
    `sizes` (4096 when absent)."""
    rng = np.random.default_rng(seed)
    shape = tuple((sizes or {}).get(d, 4096) if isinstance(d, str) else d for d in spec.shape)
    if spec.dtype.is_floating_point:
        values = rng.standard_normal(shape, dtype=np.float32)
        values = np.abs(values) if nonnegative else values
        mean, std = mean_std
        tensor = tf.tensor(values * np.float32(std) + np.float32(mean), dtype=spec.dtype)
    else:
        tensor = tf.tensor(rng.integers(0, high, shape), dtype=spec.dtype)
    if device != "cpu":
        tensor = tensor.to(device)
    tensor.requires_grad = spec.requires_grad
    return tensor
