"""An independent float64 definition of the attention primitives, for the generated op-table tests.

Written from the math (not from tritonflow/ops/attention.py): scores by einsum, the row
log-sum-exp by np.logaddexp.reduce; the backward's row statistics are the row max m,
z = rowsum(exp(S - m)) and delta = rowsum(exp(S - m) * dP) / z, and the gradients come from
P = exp(S - m) / z and dS = P * (dP - delta).
Dropout is not covered here (tests/templates checks it against the Philox stream).
"""
from __future__ import annotations

import numpy as np


def _scores(q, k, mask, scale, is_causal, kind):
    s = np.einsum("...id,...jd->...ij", q, k) * scale
    if is_causal:
        i, j = np.indices(s.shape[-2:])
        s = np.where(j <= i, s, -np.inf)
    if kind == "bool":
        s = np.where(mask, s, -np.inf)
    elif kind == "additive":
        s = s + mask
    return s


def _lse(s):
    return np.logaddexp.reduce(s, axis=-1)


def _probs(s, lse):
    finite = np.isfinite(lse)[..., None]
    return np.where(finite, np.exp(s - np.where(finite, lse[..., None], 0)), 0.0)


def _split(arrays, n, attrs):
    head, rest = list(arrays[:n]), list(arrays[n:])
    mask = rest[0] if attrs.get("mask", "none") != "none" else None
    return head, mask


def attention(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0):
    (q, k, v), m = _split(arrays, 3, {"mask": mask})
    s = _scores(q, k, m, scale, is_causal, mask)
    return np.einsum("...ij,...jd->...id", _probs(s, _lse(s)), v)


def attention_lse(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0):
    (q, k), m = _split(arrays, 2, {"mask": mask})
    return _lse(_scores(q, k, m, scale, is_causal, mask))


def attention_delta(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0):
    (q, k, v, g), m = _split(arrays, 4, {"mask": mask})
    s = _scores(q, k, m, scale, is_causal, mask)
    top = np.max(s, axis=-1)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(s - top[..., None])
    z = e.sum(-1)
    safe = np.where(z == 0, 1.0, z)
    delta = np.where(z == 0, 0.0, np.einsum("...ij,...id,...jd->...i", e, g, v) / safe)
    return np.stack([delta, top, np.where(z == 0, 0.0, 1.0 / safe)], -1)


def _grads(arrays, scale, is_causal, mask):
    (q, k, v, g, stats), m = _split(arrays, 5, {"mask": mask})
    s = _scores(q, k, m, scale, is_causal, mask)
    p = np.exp(s - stats[..., 1:2]) * stats[..., 2:]
    ds = p * (np.einsum("...id,...jd->...ij", g, v) - stats[..., :1])
    return q, k, g, p, ds


def attention_dq(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0):
    q, k, g, p, ds = _grads(arrays, scale, is_causal, mask)
    return np.einsum("...ij,...jd->...id", ds, k) * scale


def attention_dkv(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0):
    q, k, g, p, ds = _grads(arrays, scale, is_causal, mask)
    dk = np.einsum("...ij,...id->...jd", ds, q) * scale
    dv = np.einsum("...ij,...id->...jd", p, g)
    return np.concatenate([dk, np.broadcast_to(dv, dk.shape[:-1] + dv.shape[-1:])], -1)


REFERENCES = {"attention": attention, "attention_lse": attention_lse, "attention_delta": attention_delta,
              "attention_dq": attention_dq, "attention_dkv": attention_dkv}
