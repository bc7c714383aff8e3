"""Attention's NumPy references run blockwise (tritonflow/ops/head_blocks.py): over blocks of heads
identical to the whole-batch computation, for every reference, mask kind and dtype; a causal
attention over blocks of queries equal to it up to the order of additions, for queries and keys of
different lengths; both right against float64."""
from __future__ import annotations

import numpy as np
import pytest

from tritonflow.ops import attention as A
from tritonflow.ops import head_blocks
from tritonflow.ops.registry import OPS


@pytest.fixture
def one_head_per_block(monkeypatch):
    monkeypatch.setattr(head_blocks, "SCORE_BLOCK_BYTES", 1)
    monkeypatch.setattr(head_blocks, "QUERY_BLOCK", 10 ** 9)    # causal queries whole: exact


@pytest.fixture
def small_query_blocks(monkeypatch):
    monkeypatch.setattr(head_blocks, "QUERY_BLOCK", 2)


def _case(rng, shape, kv, dtype, mask):
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in (shape, kv, kv))
    extra = []
    if mask == "additive":
        extra = [rng.standard_normal(shape[:-1] + kv[-2:-1]).astype(dtype)]
    elif mask == "bool":
        extra = [rng.random(shape[-2:-1] + kv[-2:-1]) < 0.7]
    return q, k, v, extra


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("mask", ["none", "additive", "bool"])
@pytest.mark.parametrize("shape,kv", [((2, 3, 16, 8), (2, 3, 16, 8)), ((5, 6, 8), (5, 9, 8)),
                                      ((2, 3, 5, 8), (9, 8))])
def test_blocks_of_heads_equal_the_whole_batch(one_head_per_block, shape, kv, dtype, mask):
    rng = np.random.default_rng(0)
    q, k, v, extra = _case(rng, shape, kv, dtype, mask)
    for causal in (True, False):
        attrs = dict(scale=0.3, is_causal=causal, mask=mask, dropout_p=0.0)
        g = rng.standard_normal(A._np_attention(q, k, v, *extra, **attrs).shape).astype(dtype)
        stats = A._np_delta(q, k, v, g, *extra, **attrs)
        pairs = {
            "attention": (OPS["attention"].numpy(q, k, v, *extra, **attrs), A._np_attention(q, k, v, *extra, **attrs)),
            "attention_delta": (OPS["attention_delta"].numpy(q, k, v, g, *extra, **attrs), stats),
            "attention_dq": (OPS["attention_dq"].numpy(q, k, v, g, stats, *extra, **attrs),
                             A._np_dq(q, k, v, g, stats, *extra, **attrs)),
            "attention_dkv": (OPS["attention_dkv"].numpy(q, k, v, g, stats, *extra, **attrs),
                              A._np_dkv(q, k, v, g, stats, *extra, **attrs)),
        }
        if mask != "bool":
            pairs["attention_lse"] = (OPS["attention_lse"].numpy(q, k, *extra, **attrs),
                                      A._np_lse(q, k, *extra, **attrs))
        for name, (blocked, whole) in pairs.items():
            assert blocked.shape == whole.shape and blocked.dtype == whole.dtype, name
            np.testing.assert_array_equal(blocked, whole, err_msg=name)


def _references(q, k, v, g, attrs, blocked: bool) -> dict:
    """Every reference's result, through the op table (blocked) or the plain functions."""
    if blocked:
        stats = OPS["attention_delta"].numpy(q, k, v, g, **attrs)
        return {"attention": OPS["attention"].numpy(q, k, v, **attrs), "lse": OPS["attention_lse"].numpy(q, k, **attrs),
                "delta": stats, "dq": OPS["attention_dq"].numpy(q, k, v, g, stats, **attrs),
                "dkv": OPS["attention_dkv"].numpy(q, k, v, g, stats, **attrs)}
    stats = A._np_delta(q, k, v, g, **attrs)
    return {"attention": A._np_attention(q, k, v, **attrs), "lse": A._np_lse(q, k, **attrs), "delta": stats,
            "dq": A._np_dq(q, k, v, g, stats, **attrs), "dkv": A._np_dkv(q, k, v, g, stats, **attrs)}


@pytest.mark.parametrize("shape,kv", [((2, 3, 9, 4), (2, 3, 9, 4)), ((5, 4), (7, 4)), ((2, 7, 4), (2, 5, 4)),
                                      ((2, 3, 8, 4), (8, 4))])
def test_causal_query_blocks_equal_the_whole_scores(small_query_blocks, shape, kv):
    rng = np.random.default_rng(2)
    q, k, v, _ = _case(rng, shape, kv, np.float32, "none")
    attrs = dict(scale=0.4, is_causal=True, mask="none", dropout_p=0.0)
    g = rng.standard_normal(A._np_attention(q, k, v, **attrs).shape).astype(np.float32)
    blocked, whole = _references(q, k, v, g, attrs, True), _references(q, k, v, g, attrs, False)
    for name in whole:
        assert blocked[name].shape == whole[name].shape and blocked[name].dtype == whole[name].dtype, name
        np.testing.assert_allclose(blocked[name], whole[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_causal_query_blocks_gradients_against_float64(small_query_blocks):
    # dq, dk, dv of sum(attention * w) by finite differences of the float64 formula.
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((5, 3)) for _ in range(3))
    w = rng.standard_normal((5, 3))
    attrs = dict(scale=0.7, is_causal=True, mask="none", dropout_p=0.0)

    def loss(q, k, v):
        s = q @ k.T * 0.7
        s = np.where(np.tril(np.ones((5, 5), bool)), s, -np.inf)
        p = np.exp(s - s.max(1, keepdims=True))
        return ((p / p.sum(1, keepdims=True)) @ v * w).sum()
    f32 = [a.astype(np.float32) for a in (q, k, v)]
    got = _references(*f32, w.astype(np.float32), attrs, True)
    dk, dv = got["dkv"][:, :3], got["dkv"][:, 3:]
    for arg, want_grad in ((0, got["dq"]), (1, dk), (2, dv)):
        numeric = np.zeros((5, 3))
        for idx in np.ndindex(5, 3):
            plus, minus = [a.copy() for a in (q, k, v)], [a.copy() for a in (q, k, v)]
            plus[arg][idx] += 1e-6
            minus[arg][idx] -= 1e-6
            numeric[idx] = (loss(*plus) - loss(*minus)) / 2e-6
        np.testing.assert_allclose(want_grad, numeric, rtol=1e-3, atol=1e-4)


def test_blocked_causal_attention_against_float64(one_head_per_block):
    rng = np.random.default_rng(1)
    q, k, v, _ = _case(rng, (2, 3, 6, 4), (2, 3, 6, 4), np.float32, "none")
    got = OPS["attention"].numpy(q, k, v, scale=0.5, is_causal=True, mask="none", dropout_p=0.0)
    s = np.einsum("bhld,bhsd->bhls", q.astype(np.float64), k.astype(np.float64)) * 0.5
    s = np.where(np.tril(np.ones((6, 6), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
