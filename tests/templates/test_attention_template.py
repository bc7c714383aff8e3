"""Fused attention (forward, log-sum-exp, fused backward) against float64 NumPy under Triton's interpreter.

The independent reference is written here from the definition (softmax of masked, scaled
scores, Philox dropout as tritonflow/philox.py defines the stream); gradients come from that
reference's hand-derived backward and are checked against finite differences once.
"""
import numpy as np
import pytest

from tritonflow import kernels
from tests.kernels.kernel_helpers import Builder, assert_close, to_numpy, to_torch
from tritonflow import dtypes as D
from tritonflow import philox

F32, F16, BF16 = D.float32, D.float16, D.bfloat16
RNG = np.random.default_rng(21)


def ref_forward(q, k, v, scale, causal=False, mask=None, kind="none", p=0.0, seed=0, offset=0):
    """softmax(q k^T * scale + mask) (dropped) @ v in float64; returns (out, probs, dropped probs, keep)."""
    s = np.einsum("...ld,...sd->...ls", q, k) * scale
    L, S = s.shape[-2:]
    if causal:
        s = np.where(np.arange(S)[None, :] <= np.arange(L)[:, None], s, -np.inf)
    if kind == "bool":
        s = np.where(mask, s, -np.inf)
    elif kind == "additive":
        s = s + mask
    mx = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isinf(mx), 0, mx))
    total = e.sum(-1, keepdims=True)
    probs = e / np.where(total == 0, 1, total)
    keep = np.ones(probs.shape, bool)
    if p > 0:
        keep = philox.uniform(seed, offset, probs.shape) >= np.float32(p)
    dropped = np.where(keep, probs / (1 - p), 0)
    return dropped @ v, probs, dropped, keep


def ref_backward(q, k, v, g, scale, p, probs, dropped, keep):
    dv = np.swapaxes(dropped, -1, -2) @ g
    dpd = g @ np.swapaxes(v, -1, -2)
    dp = np.where(keep, dpd / (1 - p), 0)
    ds = probs * (dp - (dp * probs).sum(-1, keepdims=True))
    dq = ds @ k * scale
    dk = np.swapaxes(ds, -1, -2) @ q * scale
    return dq, dk, dv


def test_reference_backward_matches_finite_differences():
    q, k, v, g = (RNG.standard_normal(s) for s in ((3, 4), (5, 4), (5, 2), (3, 2)))
    mask = RNG.standard_normal((3, 5))
    _, probs, dropped, keep = ref_forward(q, k, v, 0.7, mask=mask, kind="additive")
    grads = ref_backward(q, k, v, g, 0.7, 0.0, probs, dropped, keep)
    for which, grad in enumerate(grads):
        args = [q, k, v]
        num = np.zeros_like(args[which])
        for idx in np.ndindex(num.shape):
            hi = [a.copy() for a in args]
            lo = [a.copy() for a in args]
            hi[which][idx] += 1e-6
            lo[which][idx] -= 1e-6
            f_hi = (ref_forward(*hi, 0.7, mask=mask, kind="additive")[0] * g).sum()
            f_lo = (ref_forward(*lo, 0.7, mask=mask, kind="additive")[0] * g).sum()
            num[idx] = (f_hi - f_lo) / 2e-6
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)


def attention_graph(shapes, dtype, attrs, mask_shape=None, mask_dtype=None):
    b = Builder("attn")
    q, k, v, g = (b.input(n, s, dtype) for n, s in zip("qkvg", shapes))
    extra = [b.input("mask", mask_shape, mask_dtype)] if mask_shape else []
    rng = [b.input("seed", (), D.int64), b.input("offset", (), D.int64)] if attrs["dropout_p"] > 0 else []
    out = b("attention", q, k, v, *extra, *rng, **attrs)
    stats = b("attention_delta", q, k, v, g, *extra, *rng, **attrs)
    dq = b("attention_dq", q, k, v, g, stats, *extra, *rng, **attrs)
    dkv = b("attention_dkv", q, k, v, g, stats, *extra, *rng, **attrs)
    return b.finish(out, dq, dkv)


CASES = [
    # (q, k, v shapes), causal, mask kind, dropout
    (((2, 19, 8), (2, 23, 8), (2, 23, 12)), False, "none", 0.0),
    (((2, 21, 16), (2, 21, 16), (2, 21, 16)), True, "none", 0.0),
    (((2, 3, 9, 5), (1, 3, 17, 5), (2, 1, 17, 5)), False, "additive", 0.0),   # batch broadcast, head dim 5
    (((2, 13, 8), (2, 18, 8), (2, 18, 8)), False, "bool", 0.25),
    (((17, 8), (17, 8), (17, 4)), True, "none", 0.3),
]


# Every case in float32; the half dtypes on two representative cases (the interpreter is slow).
RUNS = [(c, F32) for c in range(len(CASES))] + [(c, d) for c in (1, 3) for d in (F16, BF16)]


@pytest.mark.parametrize("case,dtype", RUNS, ids=[f"{c}-{d.name}" for c, d in RUNS])
def test_forward_and_fused_backward(case, dtype):
    (qs, ks, vs), causal, kind, p = CASES[case]
    batch = np.broadcast_shapes(qs[:-2], ks[:-2], vs[:-2])
    L, S = qs[-2], ks[-2]
    gs = batch + (L, vs[-1])
    mask_shape = mask_dtype = None
    mask = None
    if kind == "additive":
        mask_shape, mask_dtype = (L, S), F32
        mask = RNG.standard_normal(mask_shape).astype(np.float32)
    elif kind == "bool":
        mask_shape, mask_dtype = (batch[0], 1, S), D.bool_
        mask = RNG.random(mask_shape) > 0.3
        mask[0, 0, :] = False   # a fully masked batch entry: zeros, never NaN
    scale = 0.35
    attrs = {"scale": scale, "is_causal": causal, "mask": kind, "dropout_p": p}
    graph = attention_graph((qs, ks, vs, gs), dtype, attrs, mask_shape, mask_dtype)
    xs = [RNG.uniform(-1, 1, s).astype(dtype.np) for s in (qs, ks, vs, gs)]
    inputs = xs + ([mask] if mask is not None else []) + ([np.array(9, np.int64), np.array(40, np.int64)] if p else [])
    low = kernels.lower(graph)
    kinds = [k.kind for k in low.kernels]
    # The forward, then the backward's row statistics (delta, max, 1 / z), dq, dk/dv.
    assert kinds == ["attention", "attention_delta", "attention_dq", "attention_dkv"]
    out, dq, dkv = [to_numpy(o) for o in low([to_torch(a) for a in inputs], {})]
    # The reference works on operands broadcast to the full batch: dkv is per full batch entry.
    w = [np.broadcast_to(x.astype(np.float64), batch + x.shape[-2:]) for x in xs]
    want, probs, dropped, keep = ref_forward(*w[:3], scale, causal, mask, kind, p, 9, 40)
    dq_w, dk_w, dv_w = ref_backward(*w[:3], w[3], scale, p, probs, dropped, keep)
    tol = 2.0 * S
    e = qs[-1]
    assert_close(out, want, dtype, scale=tol)
    assert_close(dq, dq_w, dtype, scale=4 * tol)
    assert_close(dkv[..., :e], dk_w, dtype, scale=4 * tol)
    assert_close(dkv[..., e:], dv_w, dtype, scale=4 * tol)


def test_strided_views_are_read_in_place():
    # q, k, v as permuted views of (B, T, H, D) projections: no copy kernels before the attention.
    b = Builder()
    x = b.input("x", (2, 11, 3, 16), F32)
    qkv = b("permute", x, perm=(0, 2, 1, 3))
    out = b("attention", qkv, qkv, qkv, scale=0.25, is_causal=True, mask="none", dropout_p=0.0)
    g = b.finish(out)
    a = RNG.uniform(-1, 1, (2, 11, 3, 16)).astype(np.float32)
    low = kernels.lower(g)
    assert [k.kind for k in low.kernels] == ["attention"]
    (got,) = low([to_torch(a)], {})
    t = a.astype(np.float64).transpose(0, 2, 1, 3)
    want = ref_forward(t, t, t, 0.25, causal=True)[0]
    assert_close(to_numpy(got), want, F32, scale=22)


def test_forward_writes_the_log_sum_exp_a_training_step_saves():
    # A training step's forward graph holds attention and attention_lse over the same scores:
    # one kernel writes both.
    b = Builder()
    q, k, v = b.input("q", (2, 13, 16)), b.input("k", (2, 15, 16)), b.input("v", (2, 15, 16))
    attrs = {"scale": 0.25, "is_causal": True, "mask": "none", "dropout_p": 0.0}
    g = b.finish(b("attention", q, k, v, **attrs), b("attention_lse", q, k, **attrs))
    xs = [RNG.uniform(-1, 1, s).astype(np.float32) for s in ((2, 13, 16), (2, 15, 16), (2, 15, 16))]
    low = kernels.lower(g)
    assert [kern.kind for kern in low.kernels] == ["attention"]
    out, lse = [to_numpy(o) for o in low([to_torch(a) for a in xs], {})]
    w = [x.astype(np.float64) for x in xs]
    assert_close(out, ref_forward(*w, 0.25, causal=True)[0], F32, scale=30)
    s = np.einsum("bld,bsd->bls", w[0], w[1]) * 0.25
    s = np.where(np.arange(15)[None, :] <= np.arange(13)[:, None], s, -np.inf)
    assert_close(lse, np.logaddexp.reduce(s, axis=-1), F32, scale=30)
