"""Attention's NumPy references over blocks of heads (tritonflow/ops/head_blocks.py): identical to
the whole-batch computation, for every reference, mask kind and dtype, and right against float64."""
from __future__ import annotations

import numpy as np
import pytest

from tritonflow.ops import attention as A
from tritonflow.ops import head_blocks
from tritonflow.ops.registry import OPS


@pytest.fixture
def one_head_per_block(monkeypatch):
    monkeypatch.setattr(head_blocks, "SCORE_BLOCK_BYTES", 1)


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


def test_blocked_causal_attention_against_float64(one_head_per_block):
    rng = np.random.default_rng(1)
    q, k, v, _ = _case(rng, (2, 3, 6, 4), (2, 3, 6, 4), np.float32, "none")
    got = OPS["attention"].numpy(q, k, v, scale=0.5, is_causal=True, mask="none", dropout_p=0.0)
    s = np.einsum("bhld,bhsd->bhls", q.astype(np.float64), k.astype(np.float64)) * 0.5
    s = np.where(np.tril(np.ones((6, 6), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
