"""The fused attention backward on large scores: within 3x torch float32's error, against float64.

Issue 12: self-attention sdpa(v, v, v) with scores near 1e3 gave gradients with 14x the error of
torch's float32. The cause was delta = rowsum(dO * O): with large scores sum_j dS_ij = 0 only
holds when delta is computed from the same p and dp as dS (torch's softmax backward does that),
and the mismatch, multiplied by |k| in dq and dk, dominated (tritonflow/ops/attention.py explains
the fix). The cases:

- "peaked": random v scaled so that the largest score is 1e3, as the fuzzer's programs made it:
  most rows are one-hot (torch's error is then ~0, so ours must be too), a few nearly tied;
- "shared": v = c + small noise, every score near 1e3 and the rows far from one-hot.

Torch's reference is its math path (3-D tensors on CPU) in float32 and float64. The comparison
takes the worst error over several seeds on each side: single cases swing by 3x either way with
rounding luck, for torch itself as much as for us.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf

F = tf.nn.functional
SEEDS = range(5)
CASES = [("peaked", (1, 33, 8)), ("peaked", (2, 9, 16)), ("shared", (2, 9, 16))]


def _inputs(kind: str, shape: tuple, seed: int) -> tuple:
    r = np.random.default_rng(seed)
    e = shape[-1]
    if kind == "peaked":
        v = r.uniform(-2, 2, shape)
        scores = v @ np.swapaxes(v, -1, -2) / np.sqrt(e)
        v = v * np.sqrt(1e3 / np.abs(scores).max())
    else:
        c = r.uniform(-1, 1, e)
        c = c * np.sqrt(1e3 * np.sqrt(e)) / np.linalg.norm(c)          # |c|^2 / sqrt(e) = 1e3
        v = c + r.uniform(-1, 1, shape) * 10 * np.sqrt(e) / np.linalg.norm(c)
    return v.astype(np.float32), r.uniform(-1, 1, shape).astype(np.float32)


def _torch_grad(v: np.ndarray, w: np.ndarray, dtype) -> np.ndarray:
    x = torch.tensor(v, dtype=dtype, requires_grad=True)
    (torch.nn.functional.scaled_dot_product_attention(x, x, x) * torch.tensor(w, dtype=dtype)).sum().backward()
    return x.grad.double().numpy()


def _loss(x, w):
    return (F.scaled_dot_product_attention(x, x, x) * w).sum()


@pytest.mark.parametrize("mode", ["eager", "numpy", "triton"])
@pytest.mark.parametrize("kind,shape", CASES, ids=[f"{k}-{'x'.join(map(str, s))}" for k, s in CASES])
def test_large_score_self_attention_gradient_within_3x_torch_float32(mode, kind, shape):
    run = _loss if mode == "eager" else tf.jit(_loss, backend=mode)
    ours, theirs = [], []
    for seed in SEEDS:
        v, w = _inputs(kind, shape, seed)
        want = _torch_grad(v, w, torch.float64)
        theirs.append(np.abs(_torch_grad(v, w, torch.float32) - want).max())
        x = tf.tensor(v, requires_grad=True)
        run(x, tf.tensor(w)).backward()
        ours.append(np.abs(x.grad.numpy().astype(np.float64) - want).max())
    # 1e-12: the one-hot cases, where torch's float32 error is float64 rounding (~1e-14)
    assert max(ours) <= 3 * max(theirs) + 1e-12, (ours, theirs)
